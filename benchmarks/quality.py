"""Representation quality of every method on Fashion-MNIST, beside baselines, in one command.

Pretrains each method of `--methods` (default SimCLR, SimSiam, the triplet Siamese network;
also BYOL, MoCo v2, DINO, Barlow Twins, VICReg, SwAV) on the train split, each built from its
recipe, `ks.recipes.get(name).replace(epochs=<the budget's>)` (`build_method`: nothing else
of the recipe changes, except the `full` budget's ResNet-18 of width 64), and evaluates it
(`quality_eval.py`) on the test split with `keras_siamese.evaluation`'s protocols: weighted
kNN (k=200, T=0.1), the linear probe (top-1/top-5), the linear probe on 1% and 10% of the
labels (frozen features) and fine-tuning on 1% and 10% of the labels (SimCLR's
semi-supervised protocol). A scikit-learn
`LogisticRegression` (L-BFGS) on the same standardised features cross-checks the linear
probe. Baselines measured in the same run: raw pixels (every protocol; "fine-tuning" the
pixels is a linear classifier on cropped and flipped pixels), the SimCLR encoder at random
initialisation (its fine-tuning is supervised training from scratch on the label subset) and
that encoder trained with cross-entropy on all labels. Every method starts from seeded
weights.

The Siamese row trains its recipe whole: SimCLR (`pretraining_recipe()`) for its
`pretrain_epochs` on the train images, then the triplet loss on class-balanced batches of
all 10 classes; its pretraining time counts both.

Writes (`quality_report.py`) `benchmarks/results/quality-<budget>.md` and `.json`
(versions, hardware, load, wall times, each method's training images/s over SimCLR's) and
`quality-<budget>-knn.png` (kNN accuracy on a subset vs pretraining epoch); with other than
the default `--methods`,
`quality-<budget>-<tag>.*` (`--tag`, default the methods joined by '-').

Budgets: `smoke` (~3 min, checks the script), `quick` (<= 15 min on 2 quiet CPU cores),
`full` (a GPU: a ResNet-18 of width 64 and the paper-length runs).

Run: `python benchmarks/quality.py --budget=quick`, then the other methods beside SimCLR:
`python benchmarks/quality.py --budget=quick --methods=simclr,byol,moco,dino --fine_tune=false`
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import app, flags  # noqa: E402
from quality_budgets import BUDGETS, DEFAULT_METHODS, OTHER_METHODS, RECIPE_NAMES  # noqa: E402
from quality_report import NAMES  # noqa: E402

flags.DEFINE_enum("budget", "quick", ["smoke", "quick", "full"], "Size of the run.")
flags.DEFINE_string("output_dir", "benchmarks/results", "Where the results are written.")
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
flags.DEFINE_enum(
    "encoder",
    "recipe",
    ["recipe", "vit"],
    "recipe: each method's recipe encoder (the ResNet; MAE's ViT). vit: every row, the "
    "baselines included, from the method's ViT recipe (`ks.recipes.get(name, "
    "encoder_type='vit')`).",
)
flags.DEFINE_enum(
    "baseline_recipe",
    "simclr",
    [*DEFAULT_METHODS, *OTHER_METHODS],
    "Whose recipe encoder the random-init and supervised rows use (mae: MAE's ViT, the "
    "fair 'same ViT from random init' for MAE's fine-tuning).",
)
flags.DEFINE_bool("fine_tune", True, "Run the fine-tuning protocol (false: save its time).")
flags.DEFINE_enum(
    "precision", "auto", ["auto", "float32", "bfloat16"], "auto: the faster here (probed)."
)
flags.DEFINE_integer("seed", 0, "Seed of every initialisation, shuffle and subset.")
FLAGS = flags.FLAGS

IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
# The supervised baseline: SimCLR's recipe trained with cross-entropy by Adam at 2e-3.
SUPERVISED = {"optimizer": "adam", "learning_rate": 2e-3, "weight_decay": 0.0}


# --------------------------------------------------------------------------- building


def method_recipe(name: str, budget: str, encoder: str = "recipe", baseline: str = "simclr"):
    """The recipe `name` of `--methods` trains in `budget`: its `ks.recipes` recipe (its ViT
    recipe with `encoder="vit"`) with the budget's epochs (and the budget's encoder);
    "random" and "supervised": `baseline`'s (`--baseline_recipe`)."""
    import keras_siamese as ks

    values = BUDGETS[budget]
    vit = {"encoder_type": "vit"} if encoder == "vit" else {}
    if name in ("random", "supervised"):
        return ks.recipes.get(RECIPE_NAMES[baseline], **vit).replace(**values["recipe"])
    changes = {"epochs": values["epochs"][name], **values["recipe"]}
    if name == "siamese" and values["pretrain_epochs"] is not None:
        changes["pretrain_epochs"] = values["pretrain_epochs"]
    return ks.recipes.get(RECIPE_NAMES[name], **vit).replace(**changes)


def run_recipe(name: str):
    """`method_recipe` of this run's flags."""
    return method_recipe(name, FLAGS.budget, FLAGS.encoder, FLAGS.baseline_recipe)


def images_per_step(recipe) -> int:
    """Source images of a training step: the batch, or P x K of a triplet recipe here."""
    if getattr(recipe, "loss", None) == "triplet":
        classes, per_class = recipe.triplet_layout(NUM_CLASSES)
        return classes * per_class
    return recipe.batch_size


def build_method(name: str, budget: str, total_steps: int, seed: int = 0, recipe=None):
    """`(model, optimizer)` of method `name` for `budget`, without data or training.

    The model is `method_recipe(name, budget).build_model` on 28x28x1 images with its
    augmenter seeded by `seed`, from weights seeded by `seed`; the optimizer is its
    `build_optimizer(total_steps, batch_size=images_per_step(recipe))` (the recipe's batch,
    or the P x K a triplet batch holds on 10 classes). Built under the current dtype policy.

    Args:
        name: a method of `--methods` ("simclr", ..., "barlow_twins", "siamese").
        budget: "smoke", "quick" or "full".
        total_steps: the run's optimizer steps (schedules and momentum ramps span them).
        seed: seed of the weights and the augmenter.
        recipe: the recipe to build (default `method_recipe(name, budget)`).

    Returns:
        `(model, optimizer)`: the uncompiled model and its optimizer.
    """
    import keras

    recipe = recipe or method_recipe(name, budget)
    keras.utils.set_random_seed(seed)  # every method starts from seeded weights
    model = recipe.build_model(IMAGE_SHAPE, total_steps, seed=seed)
    return model, recipe.build_optimizer(total_steps, images_per_step(recipe))


def supervised_baseline(recipe, total_steps: int, seed: int = 0):
    """`(model, encoder)`: SimCLR's encoder under a 10-way linear head on crops (25-100%) and
    flips of the whole image, compiled with `SUPERVISED`'s optimizer and cross-entropy."""
    import keras

    keras.utils.set_random_seed(seed)
    encoder = recipe.build_encoder(IMAGE_SHAPE[-1], IMAGE_SHAPE)
    crops = recipe.replace(crop_size=None, color_strength=0.0, blur=False, views="simclr")
    if getattr(crops, "local_views", 0):  # DINO's ViT recipe: one view, not multi-crop's
        crops = crops.replace(local_views=0)
    inputs = keras.Input(IMAGE_SHAPE, name="images")
    views = crops.build_augmenter(IMAGE_SHAPE, seed)(inputs)
    logits = keras.layers.Dense(NUM_CLASSES, name="logits")(encoder(views))
    model = keras.Model(inputs, logits, name="supervised")
    model.compile(
        optimizer=recipe.replace(**SUPERVISED).build_optimizer(total_steps),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model, encoder


def random_encoder(recipe, seed: int = 0):
    """The baseline recipe's encoder at its seeded initial weights."""
    import keras

    keras.utils.set_random_seed(seed)
    return recipe.build_encoder(IMAGE_SHAPE[-1], IMAGE_SHAPE)


# --------------------------------------------------------------------------- data


def load_data(budget: str):
    """The budget's train and test splits and the kNN curve's subsets, `(images, labels)`."""
    import keras_siamese as ks

    values = BUDGETS[budget]
    train_images, train_labels = ks.datasets.load_arrays("fashion_mnist", "train")
    test_images, test_labels = ks.datasets.load_arrays("fashion_mnist", "test")
    train = (train_images[: values["train_examples"]], train_labels[: values["train_examples"]])
    test = (test_images[: values["test_examples"]], test_labels[: values["test_examples"]])
    memory, queries = values["curve_memory"], values["curve_queries"]
    return {
        "train": train,
        "test": test,
        "curve_memory": (train[0][:memory], train[1][:memory]),
        "curve_queries": (test[0][:queries], test[1][:queries]),
    }


def labelled_batches(train, batch_size, seed):
    """Shuffled `(images, labels)` batches of `train`, endlessly."""
    import tensorflow as tf

    table_images, table_labels = tf.constant(train[0]), tf.constant(train[1])
    return (
        tf.data.Dataset.range(len(train[0]))
        .shuffle(len(train[0]), seed=seed)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .map(
            lambda i: (tf.gather(table_images, i), tf.gather(table_labels, i)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )


def triplet_batches(train, recipe, seed):
    """The triplet recipe's class-balanced P x K batches of `train`, endlessly."""
    import tensorflow as tf

    import keras_siamese as ks

    classes, per_class = recipe.triplet_layout(NUM_CLASSES)
    batches = ks.sampling.class_balanced_batches(train, classes, per_class, seed=seed)
    return batches.repeat().prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- training


def chunked_steps(epochs, examples, per_step, chunks):
    """Steps of `epochs` passes over `examples`, a multiple of `chunks` (at least one each)."""
    steps = max(chunks, round(epochs * examples / per_step))
    return steps // chunks * chunks


def trainable(name, data, steps, seed):
    """`(model to fit, its dataset, the network evaluated, extra results)` of a method."""
    import quality_eval
    import recipe_parts as parts

    if name == "supervised":
        recipe = run_recipe(name)
        model, encoder = supervised_baseline(recipe, steps, seed)
        batch_size = recipe.batch_size
        batches = labelled_batches(data["train"], batch_size, seed)
        return model, batches, quality_eval.embedding(encoder), {}
    recipe = run_recipe(name)
    model, optimizer = build_method(name, FLAGS.budget, steps, seed, recipe)
    model.compile(optimizer=optimizer)
    if name != "siamese":
        return model, parts.images_dataset(data["train"][0], recipe.batch_size, seed), model, {}
    extra = {}
    if recipe.pretrain_epochs:
        print(f"\n== {NAMES[name]}: its recipe's SimCLR pretraining first", flush=True)
        started = time.perf_counter()
        extra["simclr_pretrain_steps"] = parts.simclr_pretraining(
            recipe, model.encoder, data["train"][0], seed
        )
        extra["simclr_pretrain_seconds"] = time.perf_counter() - started
    batches = triplet_batches(data["train"], recipe, seed)
    return model, batches, quality_eval.embedding(model.encoder), extra


def pretrain(name, data, precision, seed):
    """Trains method `name` with the kNN curve; returns its evaluated row and curve."""
    import quality_eval
    import recipe_parts as parts

    budget = BUDGETS[FLAGS.budget]
    recipe = run_recipe(name)
    per_step = images_per_step(recipe)
    chunks = budget["curve_points"]
    steps = chunked_steps(budget["epochs"][name], len(data["train"][0]), per_step, chunks)
    parts.set_precision(precision)
    model, dataset, network, extra = trainable(name, data, steps, seed)
    curve = quality_eval.KnnCurve(network, data, steps // chunks, per_step)
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
    fine_tune = name != "supervised" and FLAGS.fine_tune
    row = quality_eval.report(network, NAMES[name], data, budget, seed, fine_tune=fine_tune)
    steady = curve.chunk_seconds[1:] or curve.chunk_seconds  # the first chunk traces
    row.update(
        {
            "config": {"recipe": RECIPE_NAMES.get(name, "simclr"), **recipe.get_config()},
            "pretrain_seconds": train_seconds + extra.get("simclr_pretrain_seconds", 0.0),
            "pretrain_steps": steps,
            "pretrain_epochs": steps * per_step / len(data["train"][0]),
            "images_per_second": steps // chunks * per_step * len(steady) / sum(steady),
            **extra,
        }
    )
    if name == "supervised":
        row["config"].update({**SUPERVISED, "epochs": budget["epochs"][name]})
    return row, curve.points


def choose_precision(seed):
    """`--precision`, or with "auto" the faster here for SimCLR's step (and the timings)."""
    import recipe_parts as parts

    if FLAGS.precision != "auto":
        return FLAGS.precision, None
    precision, probe = parts.precision_probe(run_recipe("random"), seed)
    print(f"precision probe (s/step): {probe} -> {precision}", flush=True)
    return precision, probe


def main(argv):
    del argv
    import quality_eval
    import quality_report
    import recipe_parts as parts

    run_started = time.perf_counter()
    load_before = os.getloadavg()
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    data = load_data(FLAGS.budget)
    precision, probe = choose_precision(FLAGS.seed)
    budget, seed, results, curves = BUDGETS[FLAGS.budget], FLAGS.seed, {}, {}
    results["pixels"] = quality_eval.report(
        quality_eval.pixels(), NAMES["pixels"], data, budget, seed, fine_tune=FLAGS.fine_tune
    )
    parts.set_precision(precision)
    random = quality_eval.embedding(random_encoder(run_recipe("random"), seed))
    results["random"] = quality_eval.report(
        random, NAMES["random"], data, budget, seed, fine_tune=FLAGS.fine_tune
    )
    for name in [*FLAGS.methods, "supervised"]:
        results[name], curves[name] = pretrain(name, data, precision, seed)
    run = {
        "budget": FLAGS.budget,
        "budget_values": budget,
        "methods": FLAGS.methods,
        "default_methods": DEFAULT_METHODS,
        "tag": FLAGS.tag,
        "fine_tune": FLAGS.fine_tune,
        "encoder": FLAGS.encoder,
        "baseline_recipe": FLAGS.baseline_recipe,
        "precision_flag": FLAGS.precision,
        "precision": precision,
        "precision_probe": probe,
        "seed": seed,
        "output_dir": FLAGS.output_dir,
        "wall_seconds": time.perf_counter() - run_started,
        "load_average": (load_before, os.getloadavg()),
    }
    quality_report.write_outputs(results, curves, run)


if __name__ == "__main__":
    app.run(main)
