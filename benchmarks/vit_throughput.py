"""Training images/s of each method on the same ViT, relative to SimCLR's.

Every method is built exactly as `quality.py --budget=quick --encoder=vit` builds it
(`ks.recipes.get(name, encoder_type="vit")`: the same ViT, each method's own heads, views
and, for DINO, its ViT recipe's multi-crop local views; MAE's masking), compiled with its
recipe's optimizer, and Keras' own `train_function` (what `fit` runs each step) is traced on
one batch of `--batch_size` uint8 28x28x1 images. Then `--rounds` rounds each run one step of
every method in turn; a method's step time is its median. Interleaving makes a change of load
on a shared machine hit every method alike. Images/s count each source image once.

Writes `benchmarks/results/vit_throughput.md` (and `.json`).

Run: `python benchmarks/vit_throughput.py` (~5 min on 2 quiet CPU cores);
`--vit_methods=simclr,mae` picks a subset (SimCLR, the reference, is always timed).
"""

import json
import os
import statistics
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from quality import IMAGE_SHAPE, build_method, images_per_step, method_recipe  # noqa: E402
from quality_budgets import RECIPE_NAMES  # noqa: E402
from quality_report import environment  # noqa: E402

VIT_METHODS = ["simclr", "simsiam", "byol", "moco", "nnclr", "dino", "barlow_twins", "vicreg",
               "swav", "mae"]  # fmt: skip
# quality.py's flags (imported above) are this script's too: `--output_dir` is used.
flags.DEFINE_list("vit_methods", VIT_METHODS, "Methods to time (SimCLR is always added).")
flags.DEFINE_integer("batch_size", None, "Source images per step (default: SimCLR's recipe's).")
flags.DEFINE_integer("rounds", 7, "Timed rounds (one step of every method each).")
flags.DEFINE_integer("warmup", 1, "Untimed rounds first (the second call builds the optimizer).")
FLAGS = flags.FLAGS

TOTAL_STEPS = 1000  # schedules span this many steps; the timed steps are far from its end


def batch_size() -> int:
    """`--batch_size`, else SimCLR's ViT recipe's (every method then steps on one batch)."""
    return FLAGS.batch_size or method_recipe("simclr", "quick", encoder="vit").batch_size


def build_step(name, images):
    """`(recipe, run)`: the method's quick ViT recipe and a function running one traced step."""
    import keras
    import tensorflow as tf

    recipe = method_recipe(name, "quick", encoder="vit").replace(batch_size=len(images))
    model, optimizer = build_method(name, "quick", TOTAL_STEPS, recipe=recipe)
    model.compile(optimizer=optimizer)
    model.make_train_function()
    iterator = iter(tf.data.Dataset.from_tensors(images).repeat())

    def run():
        return float(keras.ops.convert_to_numpy(model.train_function(iterator)["loss"]))

    return recipe, run


def time_methods(names):
    """Rows `{method, first_step_seconds, step_seconds, images_per_second}`, interleaved."""
    import numpy as np

    images = np.random.default_rng(0).integers(0, 256, (batch_size(), *IMAGE_SHAPE))
    images = images.astype("uint8")
    runners = []
    for name in names:
        started = time.perf_counter()
        recipe, run = build_step(name, images)
        loss = run()  # traces
        row = {
            "method": name,
            "recipe": RECIPE_NAMES[name],
            "first_step_seconds": time.perf_counter() - started,
            "images_per_step": images_per_step(recipe),
        }
        if not np.isfinite(loss):
            raise FloatingPointError(f"{name}'s first step gave a non-finite loss: {loss}")
        print(f"{name}: traced in {row['first_step_seconds']:.1f} s", flush=True)
        runners.append((row, run, []))
    for round_index in range(FLAGS.warmup + FLAGS.rounds):
        for _, run, seconds in runners:
            started = time.perf_counter()
            run()
            if round_index >= FLAGS.warmup:
                seconds.append(time.perf_counter() - started)
        print(f"round {round_index + 1}/{FLAGS.warmup + FLAGS.rounds} done", flush=True)
    rows = []
    for row, _, seconds in runners:
        row["step_seconds"] = statistics.median(seconds)
        row["images_per_second"] = row["images_per_step"] / row["step_seconds"]
        rows.append(row)
    reference = next(row for row in rows if row["method"] == "simclr")["images_per_second"]
    for row in rows:
        row["vs_simclr"] = row["images_per_second"] / reference
    return rows


def write_outputs(rows, wall, load_before):
    """Writes the Markdown table and the JSON rows."""
    import keras
    import tensorflow as tf

    import keras_siamese as ks

    vit = method_recipe("simclr", "quick", encoder="vit")
    machine = environment()
    lines = [
        "# Training images/s of each method on the same ViT (Fashion-MNIST's 28x28x1)",
        "",
        f"Produced by `python benchmarks/vit_throughput.py` in {wall / 60:.1f} minutes on "
        f"{machine['cpu']} ({os.cpu_count()} cores, load average "
        f"{load_before:.1f} before). TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"keras_siamese {ks.__version__}, float32. ViT: patch {vit.patch_size}, dim "
        f"{vit.vit_dim}, depth {vit.vit_depth}, heads {vit.vit_heads}, "
        f"{vit.vit_pooling} pooling; batch {rows[0]['images_per_step']}; median of {FLAGS.rounds} "
        f"interleaved steps of Keras' `train_function` after {FLAGS.warmup} untimed.",
        "",
        "| Method | Recipe | Step (s) | Images/s | vs SimCLR | First step (s) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {row['method']} | `{row['recipe']}` | {row['step_seconds']:.3f} | "
        f"{row['images_per_second']:.0f} | {row['vs_simclr']:.2f}x | "
        f"{row['first_step_seconds']:.1f} |"
        for row in rows
    ]
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    for suffix, text in ((".md", "\n".join(lines) + "\n"), (".json", json.dumps(rows, indent=1))):
        with ks.atomic_files.atomic_write(
            os.path.join(FLAGS.output_dir, "vit_throughput" + suffix)
        ) as file:
            file.write(text)
    print("\n".join(lines))


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.vit_methods) - set(VIT_METHODS))
    if unknown:
        raise ValueError(f"--vit_methods: unknown {unknown}; expected some of {VIT_METHODS}")
    names = ["simclr"] + [name for name in FLAGS.vit_methods if name != "simclr"]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows = time_methods(names)
    write_outputs(rows, time.perf_counter() - started, load_before)


if __name__ == "__main__":
    app.run(main)
