"""`export`: write a trained run as a versioned SavedModel for TensorFlow Serving.

`--gallery_dir=PATH` adds a `search` signature over every image under PATH (any depth), its
ids being the files' paths relative to PATH (`cats/0001.png`); `--gallery_examples=N`
searches the run's first N training images instead (a folder run: ids are paths relative to
its --data_dir; other runs: positions in the train split, TFRecords counted shard after shard
in sorted file-name order).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
from absl import app, flags

from keras_siamese.cli import run_dir, sources

USAGE = "export --model_dir=DIR --export_dir=saved_models/NAME [--gallery_dir=DIR] [flags]"
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
    flags.DEFINE_string(
        "gallery_dir",
        "",
        "Add a `search` signature over the images of this folder (any depth; ids: their "
        "paths relative to it).",
        **define,
    )
    flags.DEFINE_integer(
        "gallery_examples",
        0,
        "Without --gallery_dir: add a `search` signature over the first N training examples "
        "(ids: paths in a --data_dir run, else positions in the train split; 0: no search). "
        "With it: at most N of its images (0: all).",
        lower_bound=0,
        **define,
    )
    flags.DEFINE_integer("top_k", 10, "Neighbours returned by `search`.", lower_bound=1, **define)
    flags.DEFINE_integer(
        "max_pixels",
        4096 * 4096,
        "embed_bytes refuses images with more pixels, read from the header before decoding; "
        "--gallery_dir leaves such files out by name (0: no limit).",
        lower_bound=0,
        **define,
    )
    flags.DEFINE_integer(
        "calibration_pairs",
        0,
        "Add a `verify` signature whose threshold is the equal error rate of N same/different "
        "pairs of test examples (a folder run: of --eval_data_dir; 0: no verify).",
        lower_bound=0,
        **define,
    )


def _gallery(model, source, config: dict, gallery_dir: str, options: dict) -> dict:
    """`export_for_serving`'s gallery arguments: embeddings (arrays, not a dataset) and ids."""
    import keras_siamese as ks
    from keras_siamese.cli import source_data

    config = dict(config, max_pixels=options["max_pixels"])  # the export's limit
    images, ids = source_data.gallery_images(
        source, config, config["resolved"]["image_shape"], gallery_dir, options["gallery_examples"]
    )
    features, positions = ks.evaluation.extract_features(model, images, progress=False)
    if not np.array_equal(positions, np.arange(len(ids))):
        raise app.UsageError(
            f"{len(ids) - len(positions)} gallery images could not be decoded (on_error='skip' "
            "dropped them), so the embeddings no longer match their ids. Remove or replace the "
            f"files under {gallery_dir or source.location}."
        )
    return {
        "gallery": features,
        "gallery_ids": ids,
        "top_k": min(options["top_k"], len(features)),
    }


def run(values: flags.FlagValues) -> int:
    """Runs `export` with parsed flags; returns the exit code."""
    options = {name: values[name].value for name in values}
    model_dir = run_dir.require_model_dir(options["model_dir"])
    config = run_dir.read_config(model_dir)
    source = sources.from_run(config)
    gallery_dir = options["gallery_dir"]
    if gallery_dir and not os.path.isdir(gallery_dir):
        raise app.UsageError(
            "--gallery_dir must be an existing folder of images. "
            f"Received: --gallery_dir={gallery_dir}"
        )
    export_dir = options["export_dir"] or os.path.join(
        "saved_models", os.path.basename(os.path.normpath(model_dir))
    )
    if options["warmup"] == "auto":
        warmup = importlib.util.find_spec("tensorflow_serving") is not None
    else:
        warmup = options["warmup"] == "true"
    import keras_siamese as ks
    from keras_siamese.cli import source_data

    image_shape = config["resolved"]["image_shape"]
    calibration = None
    if options["calibration_pairs"]:
        calibration = source_data.calibration_examples(
            source, config, image_shape, options["calibration_pairs"]
        )
    model = run_dir.load_model(model_dir)
    extras = {}
    if gallery_dir or options["gallery_examples"]:
        extras = _gallery(model, source, config, gallery_dir, options)
    if calibration is not None:
        pairs = ks.sampling.make_pairs(calibration, positive_fraction=0.5, seed=0)
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
            max_pixels=options["max_pixels"] or None,
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
