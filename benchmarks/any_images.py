"""The CLI's defaults on colour, larger and cluttered images, raw pixels and random init beside.

For one data set of `image_data.py` (colour32, clutter64, clutter96) this writes its train and
test folders (once, under --data_root), runs exactly what a user types::

    python -m keras_siamese train --data_dir=TRAIN --eval_data_dir=TEST --model_dir=DIR [FLAGS]

timing it, then measures raw pixels, the run's encoder at random init (its recipe, as
config.json records it, with fresh weights) and the trained encoder with `quality_eval`'s
frozen protocols on all 60,000 train and 10,000 test images: weighted kNN (k=200, T=0.1), the
20-epoch linear probe, the 1% and 10%-label linear probes. One JSON line per run is appended
to --output (raw pixels and random init in every line: the same protocols, the same run).

    python benchmarks/any_images.py --data=colour32                 # the defaults
    python benchmarks/any_images.py --data=colour32 --tag=crop24 -- --crop_size=24
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import image_data  # noqa: E402

QUICK_PROBE = {"probe_epochs": 20}
RESULTS = os.path.join(HERE, "results", "any_images.jsonl")


def train(folders: dict, model_dir: str, flags: list[str], log_path: str) -> float:
    """Runs `train` with the CLI's defaults and `flags`; returns its wall-clock seconds."""
    command = [
        sys.executable, "-m", "keras_siamese", "train", f"--data_dir={folders['train']}",
        f"--eval_data_dir={folders['test']}", f"--model_dir={model_dir}", *flags,
    ]  # fmt: skip
    print(" ".join(command), flush=True)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - started


def random_init(model_dir: str, image_shape):
    """The run's model as its recipe builds it, untrained (seed 0)."""
    import keras

    from keras_siamese.cli import methods, run_dir

    config = run_dir.read_config(model_dir)
    recipe_class = type(methods.METHODS[config["method"]].recipe)
    recipe = recipe_class.from_config(config["resolved"]["recipe"])
    keras.utils.set_random_seed(0)
    return recipe.build_model(tuple(image_shape), total_steps=1, seed=0)


def protocols(network, train, test, input_scale=None) -> dict:
    """`quality_eval`'s frozen protocols on one feature pass; top-1 in percent."""
    import quality_eval

    from keras_siamese import evaluation

    extractor = evaluation.FeatureExtractor(network, input_scale=input_scale)
    features = extractor(train, progress=False), extractor(test, progress=False)
    result = quality_eval.frozen_protocols(features, QUICK_PROBE, seed=0)
    return {
        "knn": round(100 * result["knn"]["top1"], 2),
        "linear": round(100 * result["linear_probe"]["top1"], 2),
        "linear_1%": round(100 * result["few_label_linear"]["1%"]["top1"], 2),
        "linear_10%": round(100 * result["few_label_linear"]["10%"]["top1"], 2),
        "dims": result["feature_dims"],
    }


def pixels(image_shape):
    """Raw pixels: the images' values in [0, 1], flattened."""
    import keras

    return keras.Sequential([keras.Input(tuple(image_shape)), keras.layers.Flatten()])


def _earlier_baselines(arguments) -> dict | None:
    """Raw pixels and random init of the last line of --output on the same data, if any."""
    if not os.path.exists(arguments.output):
        return None
    lines = [json.loads(text) for text in open(arguments.output) if text.strip()]
    same = [line for line in lines if line["data"] == arguments.data and "raw_pixels" in line]
    if not same:
        return None
    last = same[-1]
    return {
        "raw_pixels": last["raw_pixels"],
        "random_init": last["random_init"],
        "baselines_from": last["tag"],
    }


def markdown(lines: list[dict]) -> str:
    """One table per line of `lines`: raw pixels, random init and the trained encoder."""
    keys = ("knn", "linear", "linear_1%", "linear_10%")
    parts = ["# The CLI's defaults on other images (benchmarks/any_images.py)\n"]
    for line in lines:
        flags = " ".join(line["flags"]) or "(the defaults)"
        parts.append(
            f"\n## {line['data']}, {line['tag']}: `train {flags}`\n\n"
            f"Views {line['view_shape']}, {line['total_steps']} steps: training "
            f"{line.get('fit_seconds', 0) / 60:.1f} min, the command "
            f"{line['train_seconds'] / 60:.1f} min ({line['precision']}, "
            f"load {line['load_before']} before).\n\n"
            "| encoder | kNN | linear | linear 1% | linear 10% |\n|---|---|---|---|---|\n"
        )
        for name in ("raw_pixels", "random_init", "trained"):
            values = " | ".join(f"{line[name][key]:.1f}" for key in keys)
            parts.append(f"| {name.replace('_', ' ')} | {values} |\n")
    return "".join(parts)


def main(arguments, flags: list[str]) -> dict:
    from keras_siamese import atomic_files
    from keras_siamese.cli import run_dir

    folders = image_data.write_split_folders(arguments.data, arguments.data_root)
    model_dir = os.path.join(arguments.runs, f"{arguments.data}-{arguments.tag}")
    os.makedirs(model_dir, exist_ok=True)
    load = os.getloadavg()[0]
    seconds = train(folders, model_dir, flags, os.path.join(model_dir, "train.log"))
    config = run_dir.read_config(model_dir)
    result = json.load(open(run_dir.path(model_dir, run_dir.TRAIN_RESULT)))
    train_set = image_data.build(arguments.data, "train")
    test_set = image_data.build(arguments.data, "test")
    shape = train_set[0].shape[1:]
    line = {
        "data": arguments.data, "tag": arguments.tag, "flags": flags,
        "train_seconds": round(seconds, 1), "fit_seconds": result["seconds_this_run"],
        "load_before": round(load, 2),
        "precision": config["resolved"].get("precision"),
        "view_shape": config["resolved"]["view_shape"],
        "total_steps": config["resolved"]["total_steps"],
        "recipe": config["resolved"]["recipe"],
    }  # fmt: skip
    earlier = _earlier_baselines(arguments) if arguments.reuse_baselines else None
    if earlier is not None:  # a sweep: the same data and encoder, measured in an earlier line
        line.update(earlier)
    else:
        line["raw_pixels"] = protocols(pixels(shape), train_set, test_set, input_scale=1 / 255)
        print("raw pixels", line["raw_pixels"], flush=True)
        line["random_init"] = protocols(random_init(model_dir, shape), train_set, test_set)
        print("random init", line["random_init"], flush=True)
    line["trained"] = protocols(run_dir.load_model(model_dir), train_set, test_set)
    print("trained", line["trained"], flush=True)
    previous = open(arguments.output).read() if os.path.exists(arguments.output) else ""
    with atomic_files.atomic_write(arguments.output) as handle:
        handle.write(previous + json.dumps(line) + "\n")
    lines = [json.loads(text) for text in (previous + json.dumps(line)).splitlines() if text]
    with atomic_files.atomic_write(os.path.splitext(arguments.output)[0] + ".md") as handle:
        handle.write(markdown(lines))
    return line


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=image_data.NAMES, default="colour32")
    parser.add_argument("--tag", default="defaults")
    parser.add_argument("--data_root", default="/tmp/ks_images")
    parser.add_argument("--runs", default="/tmp/ks_runs")
    parser.add_argument("--output", default=RESULTS)
    parser.add_argument(
        "--reuse_baselines",
        action="store_true",
        help="Copy raw pixels and random init from --output's last line on the same data (a "
        "sweep of the same encoder); the default measures them in this run.",
    )
    known, extra = parser.parse_known_args()
    main(known, [flag for flag in extra if flag != "--"])
