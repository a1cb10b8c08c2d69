"""`export`: write a trained run as a versioned SavedModel for TensorFlow Serving."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
from absl import app, flags

from keras_siamese.cli import run_dir

USAGE = "export --model_dir=DIR --export_dir=saved_models/NAME [flags]"
SUMMARY = "Export the run's encoder as a SavedModel (export_for_serving)."


def define_flags(values: flags.FlagValues) -> None:
    """Defines the flags of `export` in `values`."""
    define = {"flag_values": values}
    flags.DEFINE_string("model_dir", "", "Run directory written by `train` (required).", **define)
    flags.DEFINE_string(
        "export_dir",
        "",
        "Directory of the versions (empty: saved_models/<name of model_dir>).",
        **define,
    )
    flags.DEFINE_integer(
        "version", 0, "Version to write (0: the next free one).", lower_bound=0, **define
    )
    flags.DEFINE_bool("overwrite", False, "Replace --version if it exists.", **define)
    flags.DEFINE_enum(
        "warmup",
        "auto",
        ["auto", "true", "false"],
        "Write TF Serving warm-up requests (auto: when tensorflow-serving-api is installed).",
        **define,
    )
    flags.DEFINE_integer(
        "gallery_examples",
        0,
        "Add a `search` signature over the first N training examples "
        "(ids: their positions in the train split; 0: no search).",
        lower_bound=0,
        **define,
    )
    flags.DEFINE_integer("top_k", 10, "Neighbours returned by `search`.", lower_bound=1, **define)
    flags.DEFINE_integer(
        "calibration_pairs",
        0,
        "Add a `verify` signature whose threshold is the equal error rate of N same/different "
        "pairs of test examples (0: no verify).",
        lower_bound=0,
        **define,
    )


def run(values: flags.FlagValues) -> int:
    """Runs `export` with parsed flags; returns the exit code."""
    options = {name: values[name].value for name in values}
    model_dir = run_dir.require_model_dir(options["model_dir"])
    config = run_dir.read_config(model_dir)
    export_dir = options["export_dir"] or os.path.join(
        "saved_models", os.path.basename(os.path.normpath(model_dir))
    )
    if options["warmup"] == "auto":
        warmup = importlib.util.find_spec("tensorflow_serving") is not None
    else:
        warmup = options["warmup"] == "true"
    import keras_siamese as ks
    from keras_siamese.cli import data

    model = run_dir.load_model(model_dir)
    extras = {}
    if options["gallery_examples"]:
        examples = data.load(
            config["dataset"],
            config["train_split"],
            config["resolved"]["image_shape"],
            supervised=True,
            limit=options["gallery_examples"],
        )
        features, _ = ks.evaluation.extract_features(model, examples, progress=False)
        extras = {
            "gallery": features,
            "gallery_ids": np.arange(len(features)),
            "top_k": min(options["top_k"], len(features)),
        }
    if options["calibration_pairs"]:
        examples = data.load(
            config["dataset"],
            config["test_split"],
            config["resolved"]["image_shape"],
            supervised=True,
            limit=options["calibration_pairs"],
        )
        pairs = ks.sampling.make_pairs(examples, positive_fraction=0.5, seed=0)
        (images_a, images_b), same = next(
            pairs.batch(options["calibration_pairs"]).as_numpy_iterator()
        )
        extras["calibration_pairs"] = (images_a, images_b, same.astype(bool))
    try:
        version_dir = ks.export.export_for_serving(
            model,
            export_dir,
            version=options["version"] or None,
            overwrite=options["overwrite"],
            warmup=warmup,
            **extras,
        )
    except (ImportError, ValueError) as error:
        raise app.UsageError(str(error)) from error
    print(f"SavedModel for TensorFlow Serving: {version_dir}")
    print(
        "Serve it with `tensorflow_model_server --rest_api_port=8501 "
        f"--model_name={os.path.basename(os.path.normpath(export_dir))} "
        f"--model_base_path={os.path.abspath(export_dir)}`."
    )
    return 0
