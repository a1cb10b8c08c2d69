"""Representation quality of every method on Fashion-MNIST, beside baselines, in one command.

Pretrains each method (SimCLR, SimSiam, the triplet Siamese network) on the train split
and evaluates its encoder on the test split with `keras_siamese.evaluation`'s protocols:
weighted kNN (k=200, T=0.1), linear probe (top-1/top-5) and fine-tuning on 1% and 10% of
the labels (SimCLR's semi-supervised protocol). Three baselines are measured in the same
run: raw pixels (kNN and linear probe), the same encoder at random initialisation (its
fine-tuning is supervised training from scratch on the label subset), and the same encoder
trained supervised with cross-entropy on all labels. Every method starts from the same
initial weights (seeded).

Writes `benchmarks/results/quality-<budget>.md` and `.json` (versions, hardware, wall
times) and `quality-<budget>-knn.png` (kNN accuracy on a subset vs pretraining epoch).

Budgets: `smoke` (~2 min, checks the script), `quick` (~15 min on 2 CPU cores: a few
minutes of pretraining per method, so far from converged), `full` (a GPU: ResNet-18 of
width 64, the paper-sized runs scaled to Fashion-MNIST).

Run: `python benchmarks/quality.py --budget=quick`
"""

import json
import os
import platform
import time

from absl import app, flags

flags.DEFINE_enum("budget", "quick", ["smoke", "quick", "full"], "Size of the run.")
flags.DEFINE_string("output_dir", "benchmarks/results", "Where the results are written.")
flags.DEFINE_list("methods", ["simclr", "simsiam", "siamese"], "Methods to pretrain.")
flags.DEFINE_integer("seed", 0, "Seed of every initialisation, shuffle and subset.")
FLAGS = flags.FLAGS

BATCH_SIZE = 256
# Budgets: pretraining steps per method (batch 256; the supervised baseline sees one view,
# the self-supervised methods two), evaluation sizes and protocol epochs.
BUDGETS = {
    "smoke": {
        "train_examples": 3000, "test_examples": 1000, "depth": 10, "width": 8,
        "steps": {"simclr": 12, "simsiam": 12, "siamese": 12, "supervised": 12},
        "curve_points": 2, "curve_memory": 1000, "curve_queries": 500,
        "probe_epochs": 5, "fine_tune_epochs": {0.01: 3, 0.1: 1},
    },
    "quick": {
        "train_examples": 60000, "test_examples": 10000, "depth": 10, "width": 16,
        "steps": {"simclr": 280, "simsiam": 280, "siamese": 240, "supervised": 200},
        "curve_points": 3, "curve_memory": 2000, "curve_queries": 1000,
        "probe_epochs": 20, "fine_tune_epochs": {0.01: 30, 0.1: 5},
    },
    "full": {
        "train_examples": 60000, "test_examples": 10000, "depth": 18, "width": 64,
        "steps": {"simclr": 234 * 200, "simsiam": 234 * 200, "siamese": 234 * 50,
                  "supervised": 234 * 30},
        "curve_points": 20, "curve_memory": 10000, "curve_queries": 2000,
        "probe_epochs": 100, "fine_tune_epochs": {0.01: 60, 0.1: 30},
    },
}  # fmt: skip
NAMES = {
    "simclr": "SimCLR",
    "simsiam": "SimSiam",
    "siamese": "Siamese (triplet)",
    "supervised": "Supervised (cross-entropy)",
    "random": "Random init",
    "pixels": "Raw pixels",
}


def main(argv):
    del argv
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_siamese as ks
    from keras_siamese import evaluation

    budget = BUDGETS[FLAGS.budget]
    run_started = time.perf_counter()
    load_before = os.getloadavg()
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    train_images, train_labels = ks.datasets.load_arrays("fashion_mnist", "train")
    test_images, test_labels = ks.datasets.load_arrays("fashion_mnist", "test")
    train = (train_images[: budget["train_examples"]], train_labels[: budget["train_examples"]])
    test = (test_images[: budget["test_examples"]], test_labels[: budget["test_examples"]])
    image_shape = train[0].shape[1:]
    curve_memory = (train[0][: budget["curve_memory"]], train[1][: budget["curve_memory"]])
    curve_queries = (test[0][: budget["curve_queries"]], test[1][: budget["curve_queries"]])

    def new_encoder():
        keras.utils.set_random_seed(FLAGS.seed)  # every method starts from the same weights
        return ks.encoders.resnet(
            budget["depth"], image_shape, small_images=True, width=budget["width"]
        )

    def embedding(encoder):
        """[0, 255] images -> the encoder's representation (what every protocol measures)."""
        inputs = keras.Input(image_shape, name="images")
        return keras.Model(inputs, encoder(keras.layers.Rescaling(1 / 255)(inputs)))

    def augmenter(strength):
        return ks.augment.simclr_augmenter(
            image_shape[:2], channels=1, strength=strength, crop_area=(0.25, 1.0), seed=FLAGS.seed
        )

    def images_only():
        return (
            tf.data.Dataset.from_tensor_slices(train[0])
            .shuffle(len(train[0]), seed=FLAGS.seed)
            .repeat()
            .batch(BATCH_SIZE, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )

    def schedule(peak, steps):
        return ks.optimizers.WarmupCosine(peak, total_steps=steps, warmup_steps=steps // 10)

    # ---- the methods: (model to fit, its dataset, the encoder it trains, images per step)
    def build_simclr(steps):
        # The demo's recipe (examples/simclr_fashion_mnist.py).
        encoder = new_encoder()
        model = ks.SimCLR(encoder, augmenter(0.5), projection_dims=(512, 128), temperature=0.2)
        optimizer = keras.optimizers.SGD(schedule(0.6, steps), momentum=0.9, weight_decay=5e-4)
        model.compile(optimizer=optimizer)
        return model, images_only(), encoder

    def build_simsiam(steps):
        # The SimSiam demo's recipe (examples/simsiam_fashion_mnist.py), warmup 10% of steps.
        encoder = new_encoder()
        model = ks.SimSiam(
            encoder,
            ks.augment.simsiam_augmenter(
                image_shape[:2], channels=1, strength=0.5, crop_area=(0.25, 1.0), seed=FLAGS.seed
            ),
            projection_dim=512,
            projection_layers=2,
            predictor_hidden_dim=128,
        )
        optimizer = ks.optimizers.simsiam_optimizer(
            BATCH_SIZE, steps, base_learning_rate=0.5, weight_decay=5e-4, warmup_steps=steps // 10
        )
        model.compile(optimizer=optimizer)
        return model, images_only(), encoder

    def build_siamese(steps):
        # The Siamese demo's recipe (examples/siamese_fashion_mnist.py) on all 10 classes:
        # semi-hard triplets in P x K = 10 x 25 batches, 64-d embedding, Adam 2e-3.
        encoder = new_encoder()
        model = ks.SiameseNetwork(encoder, loss="triplet", embedding_dim=64)
        model.compile(optimizer=keras.optimizers.Adam(schedule(2e-3, steps)))
        batches = ks.sampling.class_balanced_batches(train, 10, 25, seed=FLAGS.seed).repeat()
        return model, batches.prefetch(tf.data.AUTOTUNE), encoder

    def build_supervised(steps):
        encoder = new_encoder()
        inputs = keras.Input(image_shape, name="images")
        views = augmenter(0.0)(inputs)  # crops and flips in training, /255 otherwise
        logits = keras.layers.Dense(10, name="logits")(encoder(views))
        model = keras.Model(inputs, logits, name="supervised")
        model.compile(
            optimizer=keras.optimizers.Adam(schedule(2e-3, steps)),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        batches = (
            tf.data.Dataset.from_tensor_slices(train)
            .shuffle(len(train[0]), seed=FLAGS.seed)
            .repeat()
            .batch(BATCH_SIZE, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )
        return model, batches, encoder

    builders = {
        "simclr": (build_simclr, "SimCLR"),
        "simsiam": (build_simsiam, "SimSiam"),
        "siamese": (build_siamese, "SiameseNetwork"),
        "supervised": (build_supervised, None),
    }

    class KnnCurve(keras.callbacks.Callback):
        """kNN accuracy of the representation on a subset after each chunk of steps."""

        def __init__(self, network, steps_per_chunk, images_per_step):
            super().__init__()
            self.network, self.points, self.eval_seconds = network, [], 0.0
            self.chunk_seconds = []  # training time of each chunk (the first one traces)
            self.epochs_per_chunk = steps_per_chunk * images_per_step / len(train[0])

        def measure(self, epoch):
            started = time.perf_counter()
            accuracy = evaluation.knn_accuracy(
                self.network, curve_memory, curve_queries, progress=False
            )
            self.eval_seconds += time.perf_counter() - started
            self.points.append((round(epoch, 3), accuracy))

        def on_epoch_begin(self, epoch, logs=None):
            self.chunk_started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.chunk_seconds.append(time.perf_counter() - self.chunk_started)
            self.measure((epoch + 1) * self.epochs_per_chunk)

    results, curves = {}, {}
    fractions = tuple(budget["fine_tune_epochs"])

    def report(network, name, label_fractions=fractions):
        """kNN and linear probe (one feature pass), then fine-tuning at each label fraction."""
        print(f"\n== evaluating {NAMES[name]}", flush=True)
        started = time.perf_counter()
        result = evaluation.representation_report(
            network,
            train,
            test,
            label_fractions=(),
            linear_probe_options={"epochs": budget["probe_epochs"]},
            seed=FLAGS.seed,
            progress=False,
        )
        for fraction in label_fractions:
            tuning_started = time.perf_counter()
            tuned = evaluation.fine_tune(
                network,
                train,
                test,
                label_fraction=fraction,
                epochs=budget["fine_tune_epochs"][fraction],
                seed=FLAGS.seed,
                progress=False,
            )
            key = evaluation.report.fraction_name(fraction)
            result["fine_tune"][key] = {k: v for k, v in tuned.items() if k != "model"}
            result["seconds"][f"fine_tune_{key}"] = time.perf_counter() - tuning_started
        result["eval_seconds"] = time.perf_counter() - started
        print(json.dumps(result), flush=True)
        return result

    # ---- baselines without training
    pixels = keras.Sequential([keras.Input(image_shape), keras.layers.Flatten()], name="pixels")
    results["pixels"] = report(pixels, "pixels", label_fractions=())
    results["random"] = report(embedding(new_encoder()), "random")

    # ---- pretraining
    for name in [*FLAGS.methods, "supervised"]:
        build, class_name = builders[name]
        if class_name is not None and not hasattr(ks, class_name):
            print(f"\n== {NAMES[name]}: not available (keras_siamese.{class_name} missing)")
            results[name] = {"available": False}
            continue
        steps = budget["steps"][name]
        chunks = budget["curve_points"]
        model, dataset, encoder = build(steps)
        network = embedding(encoder)
        images_per_step = BATCH_SIZE if name != "siamese" else 250
        curve = KnnCurve(network, steps // chunks, images_per_step)
        curve.measure(0.0)
        print(f"\n== pretraining {NAMES[name]}: {steps} steps", flush=True)
        started = time.perf_counter()
        model.fit(
            dataset,
            epochs=chunks,
            steps_per_epoch=steps // chunks,
            callbacks=[curve],
            shuffle=False,  # the datasets shuffle themselves
            verbose=2,
        )
        train_seconds = time.perf_counter() - started - curve.eval_seconds
        curves[name] = curve.points
        label_fractions = () if name == "supervised" else fractions
        results[name] = report(network, name, label_fractions)
        # Images/s after the first chunk, which includes tracing the step.
        steady = curve.chunk_seconds[1:] or curve.chunk_seconds
        results[name].update(
            {
                "pretrain_seconds": train_seconds,
                "pretrain_steps": steps // chunks * chunks,
                "pretrain_epochs": steps // chunks * chunks * images_per_step / len(train[0]),
                "images_per_second": steps // chunks * images_per_step * len(steady) / sum(steady),
            }
        )

    wall = time.perf_counter() - run_started
    write_outputs(results, curves, budget, wall, load_before, np, tf, keras, ks)


def environment(np, tf, keras, ks):
    """Versions and hardware of this run."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            names = [line.split(":", 1)[1].strip() for line in file if "model name" in line]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "keras_siamese": ks.__version__,
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_cores_usable": len(os.sched_getaffinity(0)),
        "accelerators": [
            device.name
            for device in tf.config.list_physical_devices()
            if device.device_type != "CPU"
        ],
    }


def percent(value):
    return "—" if value is None else f"{100 * value:.1f}"


def write_outputs(results, curves, budget, wall, load_before, np, tf, keras, ks):
    base = os.path.join(FLAGS.output_dir, f"quality-{FLAGS.budget}")
    env = environment(np, tf, keras, ks)
    payload = {
        "budget": FLAGS.budget, "config": {k: str(v) for k, v in budget.items()},
        "batch_size": BATCH_SIZE, "seed": FLAGS.seed, "wall_seconds": wall,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "environment": env, "results": results, "knn_curves": curves,
    }  # fmt: skip
    with open(base + ".json", "w") as file:
        json.dump(payload, file, indent=2, default=float)

    fractions = [f"{100 * f:g}%" for f in budget["fine_tune_epochs"]]
    header = ["Encoder", "kNN top-1", "Linear top-1", "Linear top-5"]
    header += [f"Fine-tune {f} top-1" for f in fractions]
    header += ["Pretrain (s)", "Pretrain epochs", "Train images/s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = ["pixels", "random", *FLAGS.methods, "supervised"]
    for name in order:
        row = results.get(name, {})
        if not row.get("knn"):
            lines.append(f"| {NAMES[name]} | not available |" + " |" * (len(header) - 2))
            continue
        cells = [NAMES[name], percent(row["knn"]["top1"]), percent(row["linear_probe"]["top1"])]
        cells.append(percent(row["linear_probe"]["top5"]))
        cells += [percent(row["fine_tune"].get(f, {}).get("top1")) for f in fractions]
        pretrain = row.get("pretrain_seconds")
        cells += ["—", "—", "—"] if pretrain is None else [
            f"{pretrain:.0f}", f"{row['pretrain_epochs']:.2f}", f"{row['images_per_second']:.0f}"
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")

    def linear(name):
        return (results.get(name) or {}).get("linear_probe", {}).get("top1")

    checks = []
    for name in FLAGS.methods:
        value = linear(name)
        if value is None:
            checks.append(f"- {NAMES[name]}: not available in this run.")
            continue
        verdicts = [
            f"linear top-1 {percent(value)}% "
            + ("meets" if value >= 0.90 else "misses")
            + " the 90% target",
            ("above" if value > linear("pixels") else "NOT above")
            + f" raw pixels ({percent(linear('pixels'))}%)",
            ("above" if value > linear("random") else "NOT above")
            + f" random init ({percent(linear('random'))}%)",
        ]
        checks.append(f"- {NAMES[name]}: " + "; ".join(verdicts) + ".")
    text = [
        f"# Representation quality on Fashion-MNIST (budget `{FLAGS.budget}`)",
        "",
        f"Produced by `python benchmarks/quality.py --budget={FLAGS.budget}` in {wall / 60:.1f} "
        f"minutes on {env['cpu']} ({env['cpu_cores_usable']} usable cores, accelerators: "
        f"{env['accelerators'] or 'none'}; load average {load_before[0]:.1f} before, "
        f"{payload['load_average_after'][0]:.1f} after). TensorFlow {env['tensorflow']}, "
        f"Keras {env['keras']}, keras_siamese {env['keras_siamese']}.",
        "",
        f"Encoder: ResNet-{budget['depth']} (small-image stem) of width {budget['width']}; "
        f"pretraining on {budget['train_examples']} train images, batch {BATCH_SIZE}; "
        f"evaluation on {budget['test_examples']} test images. kNN: k=200, T=0.1, train "
        f"features as memory. Linear probe: {budget['probe_epochs']} epochs of Adam on "
        "standardised frozen features. Fine-tune: SimCLR's protocol on a class-balanced "
        f"label subset, epochs {budget['fine_tune_epochs']}. Accuracies in %. Train "
        "images/s: source images per second of pretraining after the first chunk (which "
        "traces the step); SimCLR and SimSiam make two views of each.",
        "",
        *lines,
        "",
        "SimCLR and SimSiam never see a label while pretraining; the triplet Siamese network "
        "(class-balanced P x K batches) and the supervised baseline train on the labels.",
        "",
        "Targets (linear-probe top-1 on the test split):",
        *checks,
        "",
        f"kNN accuracy during pretraining: `{os.path.basename(base)}-knn.png` (memory "
        f"{budget['curve_memory']} train images, {budget['curve_queries']} test queries).",
    ]
    with open(base + ".md", "w") as file:
        file.write("\n".join(text) + "\n")
    plot_curves(curves, base + "-knn.png")
    print("\n".join(text))


def plot_curves(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 4), dpi=100)
    for name, points in curves.items():
        epochs, accuracies = zip(*points, strict=True)
        axes.plot(epochs, [100 * a for a in accuracies], marker="o", label=NAMES[name])
    axes.set_xlabel("pretraining epochs (passes over the train split)")
    axes.set_ylabel("kNN top-1 on a test subset (%)")
    axes.set_title(f"Fashion-MNIST, budget {FLAGS.budget}")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


if __name__ == "__main__":
    app.run(main)
