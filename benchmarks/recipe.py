"""Recipe sweep on Fashion-MNIST: which recipe learns most per CPU-minute?

Each configuration overrides a recipe of `recipe_parts.RECIPES` (SimCLR, SimSiam or the
Siamese network; `"method"` picks it): `keras_siamese.recipes`' values in the sweep's keys,
built back into that recipe (`recipe_parts.to_recipe`) on the configuration's encoder. What it
can vary:

- encoder: `widths` (filters per stage), `blocks` (residual blocks per stage), `stem_stride`
  (1 or 2), `pool` (`avg`, or `grid2`: a 2x2 average grid, 4x the features), `view_size`
  (side of the training views, e.g. 24: the model still takes and serves 28x28);
- optimisation: `optimizer` (sgd, lars, adam, adamw, lamb), `learning_rate`, `weight_decay`,
  `warmup`, `batch`, `epochs`, `precision` (float32, bfloat16, auto: the faster, probed);
- SimCLR / SimSiam: `temperature`, `min_crop`, `strength` (colour), `blur`, `projection`,
  `predictor`;
- Siamese (`"method": "siamese"`): `loss` (contrastive, triplet), `classes_per_batch` x
  `samples_per_class`, `batch` (pairs), `margin`, `embedding`, `mining`, `distance`,
  `augment` (strength of SimCLR-style augmentation of the pairs/triplets, 0 for none),
  `train_examples`.

A run trains for `epochs` (or, with `--minutes`, as many steps as fit in that many minutes
at the step time measured first), then measures the self-supervised encoders with the kNN,
the linear probe and the 1% few-label linear probe on the 10,000 test images, and the
Siamese networks on the unseen classes 7-9 (ROC AUC of fixed pairs, recall@1). Every run
appends one JSON line to `--output` (config, seed, steps, steady ms/step, load average) and
rewrites the Markdown table beside it. `--mode=time` only times the configurations'
training steps, interleaved (fair on a loaded machine), and prints ms/step.

Run, e.g.:
    python benchmarks/recipe.py --configs='[{}, {"optimizer": "adam", "learning_rate": 2e-3}]'
    python benchmarks/recipe.py --seeds=0,1,2 --configs='[{"method": "siamese"}]'
    python benchmarks/recipe.py --mode=time --configs='[{}, {"stem_stride": 2}]'
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import app, flags  # noqa: E402

flags.DEFINE_string("configs", "[{}]", "JSON list of overrides of a recipe, one per run.")
flags.DEFINE_list("seeds", ["0"], "Seeds; every configuration runs once per seed.")
flags.DEFINE_float("minutes", 0.0, "Pretraining budget per run (0: the config's epochs).")
flags.DEFINE_enum("mode", "train", ["train", "time"], "train and evaluate, or time steps.")
flags.DEFINE_string("output", "benchmarks/results/sweep.jsonl", "JSON-lines results file.")
flags.DEFINE_string("note", "", "A note stored with each row (what the run tests).")
flags.DEFINE_integer("probe_epochs", 20, "Linear-probe epochs (the quick budget's).")
FLAGS = flags.FLAGS

TRAIN_IMAGES = 60000


def build(config, steps, seed, seen=None, pretrain=True):
    """`(model, dataset)` of a configuration, seeded: its `ks.recipes` recipe's model on the
    configuration's encoder (with `pretrain`, a Siamese one is first pretrained with SimCLR
    for its `pretrain_epochs`; timing runs skip that)."""
    import keras
    import recipe_parts as parts

    keras.utils.set_random_seed(seed)
    parts.set_precision(config["precision"])
    encoder = parts.encoder(config)
    recipe = parts.to_recipe(config)
    if config["method"] == "siamese" and recipe.pretrain_epochs and pretrain:
        parts.simclr_pretraining(recipe, encoder, seen[0], seed)
    model = recipe.build_model(parts.IMAGE_SHAPE, steps, encoder=encoder, seed=seed)
    model.compile(optimizer=parts.optimizer(config, steps))
    if config["method"] in ("simclr", "simsiam"):
        train_images = ssl_images(config)
        dataset = parts.images_dataset(train_images, config["batch"], seed)
    else:
        dataset = siamese_batches(config, seen, seed)
    return model, dataset


def ssl_images(config):
    """The images a self-supervised run trains on: all, or those of the seen classes 0-6."""
    import recipe_parts as parts

    import keras_siamese as ks

    train = ks.datasets.load_arrays("fashion_mnist", "train")
    if config["train_on"] == "seen":
        train, _ = ks.sampling.split_classes(train, parts.SEEN_CLASSES)
    return train[0]


def siamese_batches(config, seen, seed):
    import tensorflow as tf

    import keras_siamese as ks

    if config["loss"] == "contrastive":
        batches = ks.sampling.make_pairs(seen, 0.5, seed=seed)
        batches = batches.batch(config["batch"], drop_remainder=True)
    else:
        batches = ks.sampling.class_balanced_batches(
            seen, config["classes_per_batch"], config["samples_per_class"], seed=seed
        )
    return batches.repeat().prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(config, seen_count):
    if config["method"] in ("simclr", "simsiam"):
        images = seen_count if config["train_on"] == "seen" else TRAIN_IMAGES
        return images // config["batch"]
    if config["loss"] == "contrastive":
        return seen_count // config["batch"]
    return seen_count // (config["classes_per_batch"] * config["samples_per_class"])


def images_per_step(config):
    if config["method"] == "siamese" and config["loss"] == "triplet":
        return config["classes_per_batch"] * config["samples_per_class"]
    return config["batch"]  # SSL: images (two views each); contrastive: pairs


def resolve_precision(config, seed):
    """`config` with `precision: auto` replaced by the probed faster one (and the timings)."""
    import recipe_parts as parts

    if config["precision"] != "auto":
        return config, None
    keys = ("blocks", "widths", "stem_stride", "pool", "view_size", "batch")
    probe_config = {**parts.RECIPES["simclr"], **{key: config[key] for key in keys}}
    choice, timings = parts.precision_probe(
        parts.to_recipe(probe_config), seed, config=probe_config
    )
    print(f"precision probe: {timings} -> {choice}", flush=True)
    return {**config, "precision": choice}, timings


class StepTimes:
    """Keras callback factory: wall-clock time of every training batch."""

    def __new__(cls):
        import keras

        class Callback(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.ends = []

            def on_train_batch_end(self, batch, logs=None):
                self.ends.append(time.perf_counter())

        return Callback()


def steady_ms_per_step(ends, started):
    """Median-free steady rate: time after the 3rd step over the steps after it."""
    if len(ends) > 5:
        return 1000 * (ends[-1] - ends[2]) / (len(ends) - 3)
    return 1000 * (ends[-1] - started) / max(1, len(ends))


def time_steps(configs, rounds=5, steps=4):
    """Interleaved timing: every config runs `steps` steps per round; median ms/step."""
    import numpy as np
    import recipe_parts as parts

    built = []
    for overrides in configs:
        config = parts.recipe(overrides)
        seen = None
        if config["method"] == "siamese":
            seen, _, _ = parts.siamese_data(0, config["train_examples"])
        model, dataset = build(config, 1000, 0, seen, pretrain=False)
        model.fit(dataset, epochs=1, steps_per_epoch=3, verbose=0)  # traces
        built.append((overrides, config, model, dataset))
    parts.set_precision("float32")
    times = [[] for _ in built]
    for _ in range(rounds):
        for index, (_, _, model, dataset) in enumerate(built):
            started = time.perf_counter()
            model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
            times[index].append(1000 * (time.perf_counter() - started) / steps)
    for (overrides, config, _, dataset), values in zip(built, times, strict=True):
        row = {
            "mode": "time",
            "overrides": overrides,
            "ms_per_step": round(float(np.median(values)), 1),
            "input_ms_per_batch": round(1000 / parts.batches_per_second(dataset), 2),
            "images_per_second": round(images_per_step(config) * 1000 / np.median(values), 1),
            "load": parts.load_average(),
        }
        print(json.dumps(row), flush=True)


def train_and_evaluate(overrides, seed):
    import recipe_parts as parts

    import keras_siamese as ks

    config = parts.recipe(overrides)
    config, probe = resolve_precision(config, seed)
    load_before = parts.load_average()
    seen, unseen, pairs = parts.siamese_data(seed, config.get("train_examples", 0))
    seen_count = len(seen[1])
    per_epoch = steps_per_epoch(config, seen_count)
    steps = max(10, round(config["epochs"] * per_epoch))
    if FLAGS.minutes:
        model, dataset = build(config, 1000, seed, seen, pretrain=False)
        timer = StepTimes()
        started = time.perf_counter()
        model.fit(dataset, epochs=1, steps_per_epoch=11, verbose=0, callbacks=[timer])
        steps = max(10, int(FLAGS.minutes * 60000 / steady_ms_per_step(timer.ends, started)))
    build_started = time.perf_counter()
    model, dataset = build(config, steps, seed, seen)
    build_seconds = time.perf_counter() - build_started  # with a Siamese run's SimCLR pretraining
    print(
        f"\n== {overrides} seed {seed}: {steps} steps ({steps / per_epoch:.2f} epochs)", flush=True
    )
    timer = StepTimes()
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=2, callbacks=[timer])
    seconds = time.perf_counter() - started
    parts.set_precision("float32")
    evaluation_started = time.perf_counter()
    if config["method"] == "siamese":
        scores = parts.unseen_class_report(model, unseen, pairs)
    else:
        train = ks.datasets.load_arrays("fashion_mnist", "train")
        test = ks.datasets.load_arrays("fashion_mnist", "test")
        report = ks.evaluation.representation_report(
            model,
            train,
            test,
            label_fractions=(),
            linear_label_fractions=(0.01,),
            linear_probe_options={"epochs": FLAGS.probe_epochs},
            seed=seed,
            progress=False,
        )
        unseen_scores = parts.unseen_class_report(model, unseen, pairs)
        scores = {
            **{f"unseen_{key}": value for key, value in unseen_scores.items()},
            "knn_top1": report["knn"]["top1"],
            "linear_top1": report["linear_probe"]["top1"],
            "linear_1%_top1": report["few_label_linear"]["1%"]["top1"],
            "feature_dims": report["feature_dims"],
        }
    row = {
        "overrides": overrides,
        "config": config,
        "seed": seed,
        "note": FLAGS.note,
        "steps": steps,
        "epochs": round(steps / per_epoch, 2),
        "pretrain_seconds": round(seconds, 1),
        "build_seconds": round(build_seconds, 1),
        "ms_per_step": round(steady_ms_per_step(timer.ends, started), 1),
        "encoder_parameters": int(model.encoder.count_params()),
        "precision_probe": probe,
        **scores,
        "eval_seconds": round(time.perf_counter() - evaluation_started, 1),
        "load_before": load_before,
        "load_after": parts.load_average(),
    }
    print(json.dumps(row), flush=True)
    with open(FLAGS.output, "a") as file:
        file.write(json.dumps(row) + "\n")
    write_table(FLAGS.output)


def baseline_path(path):
    return path.rsplit(".", 1)[0] + "_baseline.json"


def raw_pixel_baseline(path):
    """The raw pixels on the sweep's own protocols, measured once per linear-probe length and
    kept beside the results (`<output>_baseline.json`): the first row of every table."""
    import keras
    import recipe_parts as parts

    import keras_siamese as ks

    baselines = {}
    if os.path.exists(baseline_path(path)):
        with open(baseline_path(path)) as file:
            baselines = json.load(file)
    key = f"probe_epochs={FLAGS.probe_epochs}"
    if key in baselines:
        return
    train = ks.datasets.load_arrays("fashion_mnist", "train")
    test = ks.datasets.load_arrays("fashion_mnist", "test")
    pixels = keras.Sequential(
        [keras.Input(parts.IMAGE_SHAPE), keras.layers.Flatten(dtype="float32")], name="pixels"
    )
    report = ks.evaluation.representation_report(
        pixels,
        train,
        test,
        label_fractions=(),
        linear_label_fractions=(0.01,),
        linear_probe_options={"epochs": FLAGS.probe_epochs},
        progress=False,
        input_scale=1 / 255,
    )
    _, unseen, pairs = parts.siamese_data(0, 0)
    unseen_scores = parts.unseen_class_report(
        pixels, unseen, pairs, distance="cosine", input_scale=1 / 255
    )
    baselines[key] = {
        "knn_top1": report["knn"]["top1"],
        "linear_top1": report["linear_probe"]["top1"],
        "linear_1%_top1": report["few_label_linear"]["1%"]["top1"],
        "feature_dims": report["feature_dims"],
        **{f"unseen_{name}": value for name, value in unseen_scores.items()},
    }
    with open(baseline_path(path), "w") as file:
        json.dump(baselines, file, indent=2)


def main(argv):
    del argv
    configs = json.loads(FLAGS.configs)
    if FLAGS.mode == "time":
        time_steps(configs)
        return
    raw_pixel_baseline(FLAGS.output)
    for overrides in configs:
        for seed in FLAGS.seeds:
            train_and_evaluate(overrides, int(seed))


def percent(row, key):
    return f"{100 * row[key]:.1f}" if key in row else "—"


def unseen(row):
    if "unseen_roc_auc" not in row:
        return "—"
    return f"{row['unseen_roc_auc']:.3f} / {row['unseen_recall@1']:.3f}"


def write_table(path):
    """Rewrites `<path without .jsonl>.md`: one table per method, a row per run."""
    import recipe_parts as parts

    with open(path) as file:
        rows = [json.loads(line) for line in file if line.strip()]
    pixels = None
    if os.path.exists(baseline_path(path)):
        with open(baseline_path(path)) as file:
            pixels = json.load(file).get(f"probe_epochs={FLAGS.probe_epochs}")
    lines = [
        "# Recipe sweep on Fashion-MNIST (2 CPU cores)",
        "",
        "Produced by `python benchmarks/recipe.py`; one row per run, in the order they ran. "
        "Accuracies on the test split in %. ms/step: steady training step (after the first 3, "
        "which trace), on a machine shared with other jobs: compare it only with the load "
        "average beside it. The first row of each table is the raw pixels (scaled to [0, 1], "
        "flattened; cosine for the unseen pairs) on the same protocols.",
    ]
    for method, base in (("ssl", None), ("siamese", parts.RECIPES["siamese"])):
        selected = [r for r in rows if (r["config"]["method"] == "siamese") == (method != "ssl")]
        if not selected:
            continue
        if method == "ssl":
            lines += [
                "",
                "## SimCLR and SimSiam",
                "",
                f"SimCLR base: `{json.dumps(parts.RECIPES['simclr'])}`",
                "",
                f"SimSiam base: `{json.dumps(parts.RECIPES['simsiam'])}`",
                "",
                "| Method | Differences from the base | Seed | Epochs | Steps | ms/step | Train s "
                "| kNN | Linear | Linear 1% | Features | Unseen 7-9 AUC / R@1 | Note | Load |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            if pixels:
                lines.append(
                    f"| raw pixels | — | — | — | — | — | — | {percent(pixels, 'knn_top1')} "
                    f"| {percent(pixels, 'linear_top1')} | {percent(pixels, 'linear_1%_top1')} "
                    f"| {pixels['feature_dims']} | {unseen(pixels)} | baseline | — |"
                )
        else:
            lines += [
                "",
                "## Siamese network (classes 0-6, evaluated on unseen 7-9)",
                "",
                f"Base: `{json.dumps(base)}`",
                "",
                "| Loss | Differences from the base | Seed | Epochs | Steps | ms/step | Train s "
                "| ROC AUC | EER | Recall@1 | mAP@R | Setup (s) | Note | Load |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            if pixels:
                lines.append(
                    f"| raw pixels (cosine) | — | — | — | — | — | — "
                    f"| {pixels['unseen_roc_auc']:.4f} | {pixels['unseen_equal_error_rate']:.4f} "
                    f"| {pixels['unseen_recall@1']:.4f} | {pixels['unseen_map@r']:.4f} "
                    f"| — | baseline | — |"
                )
        for row in selected:
            config = row["config"]
            base_of_row = parts.RECIPES["siamese" if method != "ssl" else config["method"]]
            changes = {
                key: value
                for key, value in config.items()
                if key in base_of_row and key != "method" and base_of_row[key] != value
            }
            head = (
                f"| {config['loss'] if method != 'ssl' else config['method']} "
                f"| {json.dumps(changes) if changes else 'base'} | {row['seed']} "
                f"| {row['epochs']} | {row['steps']} | {row['ms_per_step']} "
                f"| {row['pretrain_seconds']} "
            )
            if method == "ssl":
                cells = (
                    f"| {percent(row, 'knn_top1')} | {percent(row, 'linear_top1')} "
                    f"| {percent(row, 'linear_1%_top1')} | {row.get('feature_dims', '')} "
                    f"| {unseen(row)} "
                )
            else:
                cells = (
                    f"| {row['roc_auc']:.4f} | {row['equal_error_rate']:.4f} "
                    f"| {row['recall@1']:.4f} | {row['map@r']:.4f} "
                    f"| {row.get('build_seconds', '—')} "
                )
            lines.append(
                head + cells + f"| {row.get('note', '')} "
                f"| {row['load_before']:.1f}/{row['load_after']:.1f} |"
            )
    with open(path.rsplit(".", 1)[0] + ".md", "w") as file:
        file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    app.run(main)
