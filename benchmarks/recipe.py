"""SimCLR / SimSiam recipe sweep on Fashion-MNIST at a fixed CPU budget.

Learning quality per CPU-minute decides what the `quick` budget of `quality.py` and the
demo can reach, so this script answers "which recipe learns most in N minutes?". Each
configuration (a set of overrides of `BASE`) is first timed for a few steps, given as many
steps as fit in `--minutes`, pretrained on the 60,000 train images and measured with the
linear probe (and kNN) on the 10,000 test images. One JSON line per configuration is
appended to `--output` as soon as it finishes, so a long sweep can be read while it runs,
and the Markdown table of every line in that file is rewritten beside it (`.md`).

Run, e.g.:
    python benchmarks/recipe.py --minutes=3 \
        --configs='[{}, {"temperature": 0.5}, {"width": 32}]'
"""

import json
import os
import time

from absl import app, flags

flags.DEFINE_float("minutes", 3.0, "Pretraining budget of each configuration.")
flags.DEFINE_string("configs", "[{}]", "JSON list of overrides of BASE, one per run.")
flags.DEFINE_string("output", "benchmarks/results/recipe.jsonl", "JSON-lines results file.")
flags.DEFINE_integer("probe_epochs", 20, "Linear-probe epochs.")
flags.DEFINE_integer("seed", 0, "Seed of initialisation, shuffling and augmentation.")
FLAGS = flags.FLAGS

BASE = {
    "method": "simclr",  # or "simsiam"
    "depth": 10,
    "width": 16,
    "batch": 256,
    "learning_rate": 0.6,  # SimCLR: SGD peak; SimSiam: base rate x batch / 256
    "temperature": 0.2,
    "min_crop": 0.25,
    "strength": 0.5,
    "projection": [512, 128],
    "weight_decay": 5e-4,
    "warmup": 0.1,  # fraction of the steps
    "optimizer": "sgd",  # sgd (momentum 0.9) or lars
}


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    import keras_siamese as ks
    from keras_siamese import evaluation

    train = ks.datasets.load_arrays("fashion_mnist", "train")
    test = ks.datasets.load_arrays("fashion_mnist", "test")
    shape = train[0].shape[1:]

    def build(config, steps):
        keras.utils.set_random_seed(FLAGS.seed)
        encoder = ks.encoders.resnet(config["depth"], shape, width=config["width"])
        area = (config["min_crop"], 1.0)
        warmup = int(steps * config["warmup"])
        if config["method"] == "simclr":
            augmenter = ks.augment.simclr_augmenter(
                shape[:2], channels=1, strength=config["strength"], crop_area=area, seed=FLAGS.seed
            )
            model = ks.SimCLR(
                encoder, augmenter, tuple(config["projection"]), config["temperature"]
            )
            schedule = ks.optimizers.WarmupCosine(
                config["learning_rate"], total_steps=steps, warmup_steps=warmup
            )
            if config["optimizer"] == "lars":
                optimizer = ks.optimizers.LARS(schedule, weight_decay=config["weight_decay"])
            else:
                optimizer = keras.optimizers.SGD(
                    schedule, momentum=0.9, weight_decay=config["weight_decay"]
                )
        else:
            augmenter = ks.augment.simsiam_augmenter(
                shape[:2], channels=1, strength=config["strength"], crop_area=area, seed=FLAGS.seed
            )
            model = ks.SimSiam(
                encoder,
                augmenter,
                projection_dim=config["projection"][0],
                projection_layers=len(config["projection"]),
                predictor_hidden_dim=config["projection"][-1],
            )
            optimizer = ks.optimizers.simsiam_optimizer(
                config["batch"],
                steps,
                base_learning_rate=config["learning_rate"],
                weight_decay=config["weight_decay"],
                warmup_steps=warmup,
            )
        model.compile(optimizer=optimizer)
        return model, encoder

    def dataset(batch):
        return (
            tf.data.Dataset.from_tensor_slices(train[0])
            .shuffle(len(train[0]), seed=FLAGS.seed)
            .repeat()
            .batch(batch, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )

    def seconds_per_step(config):
        model, _ = build(config, 1000)
        data = dataset(config["batch"])
        model.fit(data, epochs=1, steps_per_epoch=3, verbose=0)  # traces the step
        started = time.perf_counter()
        model.fit(data, epochs=1, steps_per_epoch=8, verbose=0)
        return (time.perf_counter() - started) / 8

    for overrides in json.loads(FLAGS.configs):
        config = {**BASE, **overrides}
        step_seconds = seconds_per_step(config)
        steps = max(10, int(FLAGS.minutes * 60 / step_seconds))
        model, encoder = build(config, steps)
        print(f"\n== {overrides}: {steps} steps ({step_seconds * 1000:.0f} ms each)", flush=True)
        started = time.perf_counter()
        model.fit(dataset(config["batch"]), epochs=1, steps_per_epoch=steps, verbose=2)
        seconds = time.perf_counter() - started
        inputs = keras.Input(shape)
        network = keras.Model(inputs, encoder(keras.layers.Rescaling(1 / 255)(inputs)))
        report = evaluation.representation_report(
            network,
            train,
            test,
            label_fractions=(),
            linear_probe_options={"epochs": FLAGS.probe_epochs},
            seed=FLAGS.seed,
            progress=False,
        )
        row = {
            "overrides": overrides,
            "config": config,
            "seed": FLAGS.seed,
            "minutes": FLAGS.minutes,
            "steps": steps,
            "epochs": round(steps * config["batch"] / len(train[0]), 2),
            "pretrain_seconds": round(seconds, 1),
            "images_per_second": round(steps * config["batch"] / seconds, 1),
            "knn_top1": report["knn"]["top1"],
            "linear_top1": report["linear_probe"]["top1"],
            "load": os.getloadavg()[0],
        }
        print(json.dumps(row), flush=True)
        with open(FLAGS.output, "a") as file:
            file.write(json.dumps(row) + "\n")
        write_table(FLAGS.output)


def write_table(path):
    """Rewrites `<path without .jsonl>.md`: one row per line of the JSON-lines file."""
    with open(path) as file:
        rows = [json.loads(line) for line in file if line.strip()]
    lines = [
        "# Recipe sweep: linear probe after a fixed pretraining budget",
        "",
        f"Produced by `python benchmarks/recipe.py`; base recipe: `{json.dumps(BASE)}`.",
        "Accuracies on the Fashion-MNIST test split, in %.",
        "",
        "| Method | Changes from the base | Seed | Budget (min) | Steps | Epochs | Pretrain (s) "
        "| Images/s | kNN top-1 | Linear top-1 | Load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        changes = {k: v for k, v in row["overrides"].items() if k != "method"}
        lines.append(
            f"| {row['config']['method']} | {json.dumps(changes) if changes else 'base'} "
            f"| {row.get('seed', 0)} | {row['minutes']} | {row['steps']} | {row['epochs']} "
            f"| {row['pretrain_seconds']} | {row['images_per_second']} "
            f"| {100 * row['knn_top1']:.1f} | {100 * row['linear_top1']:.1f} "
            f"| {row['load']:.1f} |"
        )
    with open(path.rsplit(".", 1)[0] + ".md", "w") as file:
        file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    app.run(main)
