"""Representation quality of every method on Fashion-MNIST, beside baselines, in one command.

Pretrains each method of `--methods` (default SimCLR, SimSiam, the triplet Siamese network;
also BYOL, MoCo v2, DINO, Barlow Twins, VICReg, SwAV on SimCLR's encoder and views; the
recipes of `recipe_parts.RECIPES`) on the train split and evaluates it on the test
split with `keras_siamese.evaluation`'s protocols: weighted kNN (k=200, T=0.1), the linear
probe (top-1/top-5), the linear probe on 1% and 10% of the labels (frozen features) and
fine-tuning on 1% and 10% of the labels (SimCLR's semi-supervised protocol). A scikit-learn
`LogisticRegression` (L-BFGS) on the same standardised features cross-checks the linear
probe. Baselines measured in the same run: raw pixels (every protocol; "fine-tuning" the
pixels is a linear classifier on cropped and flipped pixels), the SimCLR encoder at random
initialisation (its fine-tuning is supervised training from scratch on the label subset) and
that encoder trained with cross-entropy on all labels. Every method starts from seeded
weights.

Writes `benchmarks/results/quality-<budget>.md` and `.json` (versions, hardware, load,
wall times, each method's training images/s over SimCLR's) and `quality-<budget>-knn.png`
(kNN accuracy on a subset vs pretraining epoch); with other than the default `--methods`,
`quality-<budget>-<tag>.*` (`--tag`, default the methods joined by '-').

Budgets: `smoke` (~3 min, checks the script), `quick` (<= 15 min on 2 quiet CPU cores),
`full` (a GPU: a ResNet-18 of width 64 and the paper-length runs).

Run: `python benchmarks/quality.py --budget=quick`, then the other methods beside SimCLR:
`python benchmarks/quality.py --budget=quick --methods=simclr,byol,moco,dino --fine_tune=false`
"""

import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import app, flags  # noqa: E402

flags.DEFINE_enum("budget", "quick", ["smoke", "quick", "full"], "Size of the run.")
flags.DEFINE_string("output_dir", "benchmarks/results", "Where the results are written.")
DEFAULT_METHODS = ["simclr", "simsiam", "siamese"]  # the quick budget's <= 15 minutes
OTHER_METHODS = ["byol", "moco", "dino", "barlow_twins", "vicreg", "swav"]
flags.DEFINE_list(
    "methods",
    DEFAULT_METHODS,
    f"Methods to pretrain, of {DEFAULT_METHODS + OTHER_METHODS} (raw pixels, random init and "
    "the supervised baseline always run).",
)
flags.register_validator(
    "methods",
    lambda names: (
        set(names) <= set(DEFAULT_METHODS + OTHER_METHODS) and len(set(names)) == len(names)
    ),
    f"--methods must name distinct methods of {DEFAULT_METHODS + OTHER_METHODS}.",
)
flags.DEFINE_string(
    "tag",
    None,
    "Suffix of the output files (quality-<budget>-<tag>.*). Default: none for the default "
    "--methods, else the methods joined by '-', so such runs never overwrite the main result.",
)
flags.DEFINE_bool("fine_tune", True, "Run the fine-tuning protocol (false: save its time).")
flags.DEFINE_enum(
    "precision", "auto", ["auto", "float32", "bfloat16"], "auto: the faster here (probed)."
)
flags.DEFINE_integer("seed", 0, "Seed of every initialisation, shuffle and subset.")
FLAGS = flags.FLAGS

# Per budget: data sizes, pretraining epochs per method (the recipes' own in `quick`),
# protocol sizes. `recipe` overrides apply to every method (the `full` encoder).
BUDGETS = {
    "smoke": {
        "train_examples": 3000, "test_examples": 1000,
        "epochs": {name: 0.5 for name in [*DEFAULT_METHODS, *OTHER_METHODS, "supervised"]},
        "recipe": {"widths": [8, 16, 32, 64]},
        "curve_points": 2, "curve_memory": 1000, "curve_queries": 500,
        "probe_epochs": 5, "fine_tune_epochs": {0.01: 3, 0.1: 1}, "sklearn_iterations": 50,
    },
    "quick": {
        "train_examples": 60000, "test_examples": 10000,
        "epochs": {"siamese": 1.0, "supervised": 0.85},  # the others: their recipes' 4
        "recipe": {},
        "curve_points": 3, "curve_memory": 2000, "curve_queries": 1000,
        "probe_epochs": 20, "fine_tune_epochs": {0.01: 30, 0.1: 5}, "sklearn_iterations": 200,
    },
    "full": {
        "train_examples": 60000, "test_examples": 10000,
        "epochs": {
            **{name: 200 for name in ["simclr", "simsiam", *OTHER_METHODS]},
            "siamese": 50, "supervised": 30,
        },
        "recipe": {"widths": [64, 128, 256, 512], "blocks": [2, 2, 2, 2]},
        "curve_points": 20, "curve_memory": 10000, "curve_queries": 2000,
        "probe_epochs": 100, "fine_tune_epochs": {0.01: 60, 0.1: 30}, "sklearn_iterations": 1000,
    },
}  # fmt: skip
LABEL_FRACTIONS = (0.01, 0.1)
NAMES = {
    "simclr": "SimCLR",
    "simsiam": "SimSiam",
    "byol": "BYOL",
    "moco": "MoCo v2",
    "dino": "DINO",
    "barlow_twins": "Barlow Twins",
    "vicreg": "VICReg",
    "swav": "SwAV",
    "siamese": "Siamese (triplet)",
    "supervised": "Supervised (cross-entropy)",
    "random": "Random init",
    "pixels": "Raw pixels",
}
TARGETS = {"simclr": {"linear": 0.88, "knn": 0.85}, "simsiam": {"linear": 0.87}}
SELF_SUPERVISED = ("simclr", "simsiam", *OTHER_METHODS)


def main(argv):
    del argv
    import keras
    import numpy as np
    import recipe_parts as parts
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
    curve_memory = (train[0][: budget["curve_memory"]], train[1][: budget["curve_memory"]])
    curve_queries = (test[0][: budget["curve_queries"]], test[1][: budget["curve_queries"]])

    def config_of(name):
        method = "simclr" if name in ("random", "supervised") else name
        config = parts.recipe({"method": method, **budget["recipe"]})
        epochs = budget["epochs"].get(name)
        return {**config, "epochs": epochs if epochs is not None else config["epochs"]}

    precision, probe = FLAGS.precision, None
    if precision == "auto":
        precision, probe = parts.precision_probe(config_of("simclr"), FLAGS.seed)
        print(f"precision probe (s/step): {probe} -> {precision}", flush=True)

    def new_encoder(config):
        keras.utils.set_random_seed(FLAGS.seed)  # every method starts from seeded weights
        parts.set_precision(precision)
        return parts.encoder(config)

    def embedding(encoder):
        """[0, 255] images -> the encoder's representation (what the export serves)."""
        inputs = keras.Input(parts.IMAGE_SHAPE, name="images")
        return keras.Model(inputs, encoder(keras.layers.Rescaling(1 / 255)(inputs)))

    # ---- the methods: (model to fit, its dataset, the network evaluated, images per step)
    def build_simclr(config, steps):
        encoder = new_encoder(config)
        model = ks.SimCLR(
            encoder,
            parts.augmenter(config, FLAGS.seed),
            tuple(config["projection"]),
            config["temperature"],
            **parts.model_size_arguments(config),
        )
        model.compile(optimizer=parts.optimizer(config, steps))
        return model, parts.images_dataset(train[0], config["batch"], FLAGS.seed), model

    def build_simsiam(config, steps):
        encoder = new_encoder(config)
        model = ks.SimSiam(
            encoder,
            parts.augmenter(config, FLAGS.seed, kind="simsiam"),
            projection_dim=config["projection"][0],
            projection_layers=len(config["projection"]),
            predictor_hidden_dim=config["predictor"],
            **parts.model_size_arguments(config),
        )
        model.compile(optimizer=parts.optimizer(config, steps))
        return model, parts.images_dataset(train[0], config["batch"], FLAGS.seed), model

    def compiled(model, config, steps):
        """`model` compiled with the recipe's optimizer, its images, itself as the network."""
        model.compile(optimizer=parts.optimizer(config, steps))
        return model, parts.images_dataset(train[0], config["batch"], FLAGS.seed), model

    def build_byol(config, steps):
        hidden, output = config["projection"]
        model = ks.BYOL(
            new_encoder(config),
            parts.views(config, FLAGS.seed),
            projection_dim=output,
            hidden_dim=hidden,
            momentum=config["momentum"],
            momentum_steps=steps,
            **parts.model_size_arguments(config),
        )
        return compiled(model, config, steps)

    def build_moco(config, steps):
        hidden, output = config["projection"]
        model = ks.MoCo(
            new_encoder(config),
            parts.views(config, FLAGS.seed),
            version="v2",
            queue_size=config["queue"],
            momentum=config["momentum"],
            temperature=config["temperature"],
            projection_dim=output,
            hidden_dim=hidden,
            momentum_steps=steps,
            **parts.model_size_arguments(config),
        )
        return compiled(model, config, steps)

    def build_dino(config, steps):
        hidden, bottleneck = config["projection"]
        encoder = new_encoder(config)
        # Under mixed_bfloat16 the DINO loss subtracts its float32 center from bfloat16 head
        # outputs (a TypeError in keras_siamese.losses.dino): the heads stay in float32.
        parts.set_precision("float32")
        model = ks.DINO(
            encoder,
            parts.views(config, FLAGS.seed),
            output_dim=config["output_dim"],
            hidden_dim=hidden,
            bottleneck_dim=bottleneck,
            head_batch_norm=config["head_batch_norm"],
            teacher_temperature=config["teacher_temperature"],
            momentum=config["momentum"],
            momentum_steps=steps,
            **parts.model_size_arguments(config),
        )
        parts.set_precision(precision)
        return compiled(model, config, steps)

    def build_barlow_twins(config, steps):
        model = ks.BarlowTwins(
            new_encoder(config),
            parts.views(config, FLAGS.seed),
            projection_dims=tuple(config["projection"]),
            lambda_=config["lambda_"],
            **parts.model_size_arguments(config),
        )
        return compiled(model, config, steps)

    def build_vicreg(config, steps):
        invariance, variance, covariance = config["weights"]
        model = ks.VICReg(
            new_encoder(config),
            parts.views(config, FLAGS.seed),
            projection_dims=tuple(config["projection"]),
            invariance_weight=invariance,
            variance_weight=variance,
            covariance_weight=covariance,
            **parts.model_size_arguments(config),
        )
        return compiled(model, config, steps)

    def build_swav(config, steps):
        model = ks.SwAV(
            new_encoder(config),
            parts.views(config, FLAGS.seed),
            num_prototypes=config["prototypes"],
            projection_dims=tuple(config["projection"]),
            temperature=config["temperature"],
            sinkhorn_iterations=config["sinkhorn_iterations"],
            epsilon=config["epsilon"],
            queue_size=config["queue"],
            freeze_prototypes_steps=config["freeze_prototypes_steps"],
            **parts.model_size_arguments(config),
        )
        return compiled(model, config, steps)

    def build_siamese(config, steps):
        # The Siamese recipe on all 10 classes: a triplet loss on P x K batches.
        encoder = new_encoder(config)
        model = ks.SiameseNetwork(
            encoder,
            loss=ks.losses.TripletLoss(mining=config["mining"]),
            distance=config["distance"],
            embedding_dim=config["embedding"] or None,
        )
        model.compile(optimizer=parts.optimizer(config, steps))
        batches = ks.sampling.class_balanced_batches(
            train,
            10,
            config["classes_per_batch"] * config["samples_per_class"] // 10,
            seed=FLAGS.seed,
        )
        return model, batches.repeat().prefetch(tf.data.AUTOTUNE), embedding(encoder)

    def build_supervised(config, steps):
        encoder = new_encoder(config)
        inputs = keras.Input(parts.IMAGE_SHAPE, name="images")
        # Crops (25-100%) and flips of the whole 28x28 image, whatever SimCLR's view size.
        crops = {**config, "strength": 0.0, "blur": False, "min_crop": 0.25, "view_size": 28}
        views = parts.augmenter(crops, FLAGS.seed)(inputs)
        logits = keras.layers.Dense(10, name="logits")(encoder(views))
        model = keras.Model(inputs, logits, name="supervised")
        model.compile(
            optimizer=parts.optimizer(
                {**config, "optimizer": "adam", "learning_rate": 2e-3, "weight_decay": 0.0}, steps
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        table_images, table_labels = tf.constant(train[0]), tf.constant(train[1])
        batches = (
            tf.data.Dataset.range(len(train[0]))
            .shuffle(len(train[0]), seed=FLAGS.seed)
            .repeat()
            .batch(config["batch"], drop_remainder=True)
            .map(
                lambda i: (tf.gather(table_images, i), tf.gather(table_labels, i)),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
            .prefetch(tf.data.AUTOTUNE)
        )
        return model, batches, embedding(encoder)

    builders = {
        "simclr": build_simclr,
        "simsiam": build_simsiam,
        "byol": build_byol,
        "moco": build_moco,
        "dino": build_dino,
        "barlow_twins": build_barlow_twins,
        "vicreg": build_vicreg,
        "swav": build_swav,
        "siamese": build_siamese,
        "supervised": build_supervised,
    }

    class KnnCurve(keras.callbacks.Callback):
        """kNN accuracy of the representation on a subset after each chunk of steps."""

        def __init__(self, network, steps_per_chunk, images_per_step):
            super().__init__()
            self.network, self.points, self.eval_seconds = network, [], 0.0
            self.chunk_seconds = []  # training time of each chunk (the first one traces)
            self.epochs_per_chunk = steps_per_chunk * images_per_step / len(train[0])
            self.extractor = evaluation.FeatureExtractor(network)

        def measure(self, epoch):
            started = time.perf_counter()
            memory = self.extractor(curve_memory, progress=False)
            queries = self.extractor(curve_queries, progress=False)
            predictions = evaluation.knn_predict(*memory, queries[0])
            self.eval_seconds += time.perf_counter() - started
            self.points.append((round(epoch, 3), float(np.mean(predictions == queries[1]))))

        def on_epoch_begin(self, epoch, logs=None):
            self.chunk_started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.chunk_seconds.append(time.perf_counter() - self.chunk_started)
            self.measure((epoch + 1) * self.epochs_per_chunk)

    results, curves = {}, {}

    def report(network, name, fine_tune=True):
        """Every protocol on one network; the frozen-feature ones share one feature pass."""
        print(f"\n== evaluating {NAMES[name]}", flush=True)
        parts.set_precision("float32")
        started = time.perf_counter()
        extractor = evaluation.FeatureExtractor(network)
        (train_x, train_y), (test_x, test_y) = (
            extractor(train, progress=False),
            extractor(test, progress=False),
        )
        seconds = {"features": time.perf_counter() - started}
        predictions = evaluation.knn_predict(train_x, train_y, test_x, k=200, temperature=0.1)
        probe = evaluation.linear_probe_on_features(
            train_x, train_y, test_x, test_y, epochs=budget["probe_epochs"], seed=FLAGS.seed
        )
        result = {
            "knn": {"top1": float(np.mean(predictions == test_y)), "k": 200, "temperature": 0.1},
            "linear_probe": {"top1": probe["top1"], "top5": probe["top5"]},
            "few_label_linear": {},
            "fine_tune": {},
            "feature_dims": int(train_x.shape[1]),
        }
        for fraction in LABEL_FRACTIONS:
            few = evaluation.few_label_linear_probe_on_features(
                train_x, train_y, test_x, test_y, label_fraction=fraction, seed=FLAGS.seed
            )
            key = evaluation.report.fraction_name(fraction)
            result["few_label_linear"][key] = {
                k: few[k] for k in ("top1", "top5", "labelled_examples", "epochs")
            }
        seconds["frozen_protocols"] = time.perf_counter() - started - seconds["features"]
        result["sklearn"] = sklearn_probe(
            (train_x, train_y), (test_x, test_y), budget["sklearn_iterations"]
        )
        for fraction in LABEL_FRACTIONS if fine_tune and FLAGS.fine_tune else ():
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
            seconds[f"fine_tune_{key}"] = time.perf_counter() - tuning_started
        result["seconds"] = seconds
        result["eval_seconds"] = time.perf_counter() - started
        print(json.dumps(result), flush=True)
        return result

    # ---- baselines without training
    pixels = keras.Sequential(
        [keras.Input(parts.IMAGE_SHAPE), keras.layers.Rescaling(1 / 255), keras.layers.Flatten()],
        name="pixels",
    )
    results["pixels"] = report(pixels, "pixels")
    results["random"] = report(embedding(new_encoder(config_of("random"))), "random")

    # ---- pretraining
    for name in [*FLAGS.methods, "supervised"]:
        config = config_of(name)
        if name == "siamese":
            images_per_step = config["classes_per_batch"] * config["samples_per_class"] // 10 * 10
        else:
            images_per_step = config["batch"]
        chunks = budget["curve_points"]
        steps = max(chunks, round(config["epochs"] * len(train[0]) / images_per_step))
        steps = steps // chunks * chunks
        model, dataset, network = builders[name](config, steps)
        curve = KnnCurve(network, steps // chunks, images_per_step)
        curve.measure(0.0)
        print(f"\n== pretraining {NAMES[name]}: {steps} steps ({precision})", flush=True)
        started = time.perf_counter()
        model.fit(
            dataset,
            epochs=chunks,
            steps_per_epoch=steps // chunks,
            callbacks=[curve],
            shuffle=False,
            verbose=2,
        )
        train_seconds = time.perf_counter() - started - curve.eval_seconds
        curves[name] = curve.points
        results[name] = report(network, name, fine_tune=name != "supervised")
        steady = curve.chunk_seconds[1:] or curve.chunk_seconds  # the first chunk traces
        results[name].update(
            {
                "config": config,
                "pretrain_seconds": train_seconds,
                "pretrain_steps": steps,
                "pretrain_epochs": steps * images_per_step / len(train[0]),
                "images_per_second": steps // chunks * images_per_step * len(steady) / sum(steady),
            }
        )

    wall = time.perf_counter() - run_started
    write_outputs(results, curves, budget, wall, load_before, precision, probe, np, tf, keras, ks)


def sklearn_probe(train, test, iterations):
    """Cross-check: scikit-learn's L-BFGS logistic regression on the standardised features.

    C=0.1 (as the issue's pixel baseline), at most `iterations` L-BFGS iterations.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    (train_x, train_y), (test_x, test_y) = train, test
    started = time.perf_counter()
    scaler = StandardScaler().fit(train_x)
    classifier = LogisticRegression(C=0.1, max_iter=iterations)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(scaler.transform(train_x), train_y)
    return {
        "top1": float(classifier.score(scaler.transform(test_x), test_y)),
        "iterations": int(classifier.n_iter_.max()),
        "seconds": time.perf_counter() - started,
    }


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


def top1(row, protocol, fraction=None):
    """A row's top-1 for `protocol` (knn, linear, sklearn, linear_few, fine_tune) or None."""
    if not row or "knn" not in row:
        return None
    if protocol == "knn":
        return row["knn"]["top1"]
    if protocol == "linear":
        return row["linear_probe"]["top1"]
    if protocol == "sklearn":
        return row["sklearn"]["top1"]
    if protocol == "linear_few":
        return row.get("few_label_linear", {}).get(fraction, {}).get("top1")
    return row.get("fine_tune", {}).get(fraction, {}).get("top1")


PROTOCOLS = [
    ("knn", None, "kNN"),
    ("linear", None, "Linear"),
    ("sklearn", None, "Linear (sklearn)"),
    ("linear_few", "1%", "Linear 1%"),
    ("linear_few", "10%", "Linear 10%"),
    ("fine_tune", "1%", "Fine-tune 1%"),
    ("fine_tune", "10%", "Fine-tune 10%"),
]


def checks(results):
    """The issue's targets, each with its number."""
    lines, pixels = [], results.get("pixels")
    for name in FLAGS.methods:
        row = results.get(name)
        if not row:
            continue
        verdicts = []
        for protocol, threshold in TARGETS.get(name, {}).items():
            value = top1(row, protocol)
            verdicts.append(
                f"{protocol} {percent(value)}% {'meets' if value >= threshold else 'MISSES'} "
                f"the {100 * threshold:.0f}% target ({100 * (value - threshold):+.1f})"
            )
        if name in SELF_SUPERVISED:
            below = [
                f"{label} ({percent(top1(row, p, f))} vs {percent(top1(pixels, p, f))})"
                for p, f, label in PROTOCOLS
                if None not in (top1(row, p, f), top1(pixels, p, f))
                and top1(row, p, f) <= top1(pixels, p, f)
            ]
            verdicts.append(
                "above raw pixels on every protocol"
                if not below
                else "NOT above raw pixels on: " + ", ".join(below)
            )
            for protocol in ("linear_few", "fine_tune"):
                value, base = top1(row, protocol, "1%"), top1(pixels, protocol, "1%")
                label = "1% linear" if protocol == "linear_few" else "1% fine-tune"
                if value is None or base is None:
                    verdicts.append(f"{label} not run")
                    continue
                verdicts.append(
                    f"{label} {percent(value)}% {'meets' if value >= base + 0.05 else 'MISSES'} "
                    f"raw pixels + 5 ({percent(base + 0.05)}%)"
                )
        if verdicts:
            lines.append(f"- {NAMES[name]}: " + "; ".join(verdicts) + ".")
    return lines


def output_suffix():
    """`-<tag>`: `--tag`, or for other than the default methods the methods joined by '-'."""
    tag = FLAGS.tag
    if tag is None:
        tag = "" if FLAGS.methods == DEFAULT_METHODS else "-".join(FLAGS.methods)
    return f"-{tag}" if tag else ""


def speed_ratios(results):
    """Each pretrained method's train images/s over SimCLR's in the same run (None: no SimCLR)."""
    simclr = results.get("simclr", {}).get("images_per_second")
    return {
        name: row["images_per_second"] / simclr if simclr else None
        for name, row in results.items()
        if row.get("images_per_second")
    }


def write_outputs(results, curves, budget, wall, load_before, precision, probe, np, tf, keras, ks):
    import recipe_parts as parts

    base = os.path.join(FLAGS.output_dir, f"quality-{FLAGS.budget}{output_suffix()}")
    env = environment(np, tf, keras, ks)
    ratios = speed_ratios(results)
    payload = {
        "budget": FLAGS.budget,
        "config": {k: str(v) for k, v in budget.items()},
        "seed": FLAGS.seed,
        "precision": precision,
        "precision_probe_seconds": probe,
        "wall_seconds": wall,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "environment": env,
        "results": results,
        "images_per_second_vs_simclr": ratios,
        "knn_curves": curves,
    }
    with open(base + ".json", "w") as file:
        json.dump(payload, file, indent=2, default=float)

    header = ["Encoder", *[label for _, _, label in PROTOCOLS], "Linear top-5"]
    header += ["Pretrain (s)", "Epochs", "Train images/s", "Images/s vs SimCLR"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in ["pixels", "random", *FLAGS.methods, "supervised"]:
        row = results.get(name, {})
        if not row.get("knn"):
            lines.append(f"| {NAMES[name]} | not run |" + " |" * (len(header) - 2))
            continue
        cells = [NAMES[name], *[percent(top1(row, p, f)) for p, f, _ in PROTOCOLS]]
        cells.append(percent(row["linear_probe"]["top5"]))
        pretrain = row.get("pretrain_seconds")
        ratio = ratios.get(name)
        cells += (
            ["—", "—", "—", "—"]
            if pretrain is None
            else [
                f"{pretrain:.0f}",
                f"{row['pretrain_epochs']:.2f}",
                f"{row['images_per_second']:.0f}",
                "—" if ratio is None else f"{ratio:.2f}",
            ]
        )
        lines.append("| " + " | ".join(cells) + " |")
    recipes = [
        f"- {NAMES[name]}: `{json.dumps(results[name]['config'])}`"
        for name in [*FLAGS.methods, "supervised"]
        if results.get(name, {}).get("config")
    ]
    command = f"python benchmarks/quality.py --budget={FLAGS.budget}"
    if FLAGS.methods != DEFAULT_METHODS:
        command += f" --methods={','.join(FLAGS.methods)}"
    if FLAGS.tag is not None:
        command += f" --tag={FLAGS.tag}"
    if not FLAGS.fine_tune:
        command += " --fine_tune=false"
    if FLAGS.precision != "auto":
        command += f" --precision={FLAGS.precision}"
    text = [
        f"# Representation quality on Fashion-MNIST (budget `{FLAGS.budget}`)",
        "",
        f"Produced by `{command}` in {wall / 60:.1f} "
        f"minutes on {env['cpu']} ({env['cpu_cores_usable']} usable cores, accelerators: "
        f"{env['accelerators'] or 'none'}; load average {load_before[0]:.1f} before, "
        f"{payload['load_average_after'][0]:.1f} after). TensorFlow {env['tensorflow']}, "
        f"Keras {env['keras']}, keras_siamese {env['keras_siamese']}. Training precision: "
        f"{precision}" + (f" (probe, s/step: {json.dumps(probe)})" if probe else "") + ".",
        "",
        f"Pretraining on {budget['train_examples']} train images, evaluation on "
        f"{budget['test_examples']} test images. kNN: k=200, T=0.1, train features as "
        f"memory. Linear: {budget['probe_epochs']} epochs of Adam on standardised frozen "
        "features; Linear (sklearn): L-BFGS logistic regression, C=0.1, at most "
        f"{budget['sklearn_iterations']} iterations, same features. Linear 1%/10%: the same "
        "classifier on a class-balanced 1%/10% of the labels (100/50 epochs). Fine-tune "
        f"1%/10%: SimCLR's protocol on the same subsets, epochs {budget['fine_tune_epochs']}. "
        "Raw pixels' fine-tuning trains a linear classifier on cropped and flipped pixels. "
        "Accuracies in %. Train images/s: source images per second after the first chunk "
        "(which traces the step); the self-supervised methods make two views of each. "
        "Images/s vs SimCLR: that over SimCLR's in this run (same encoder and batch).",
        "",
        *lines,
        "",
        "The self-supervised methods never see a label while pretraining; the triplet Siamese "
        "network (class-balanced P x K batches) and the supervised baseline train on the labels. "
        f"Random init and supervised use SimCLR's encoder. Recipes (`{parts.__name__}.py`):",
        *recipes,
        "",
        "Targets:",
        *checks(results),
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
