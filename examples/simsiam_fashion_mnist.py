"""SimSiam on Fashion-MNIST, with the SimCLR demo's encoder, views and budget: pretrain, compare.

Pretrains the demo's encoder with SimSiam on the 60,000 training images (labels unused), prints
`output_std` per epoch (about 1 is healthy, near 0 is collapse) and the demo's table (raw pixels,
random initialisation, SimSiam x weighted kNN, linear probe, linear probe on 1% of the labels, on
the 10,000 test images), and exports the encoder to `saved_models/simsiam_fashion_mnist/`.

Every hyperparameter defaults to SimSiam's recipe, `ks.recipes.get("simsiam")`, on the demo's
ResNet-10 of width 16 with 16x16 views. Scaled down from the paper (Chen & He 2021, CIFAR:
ResNet-18, 800 epochs, batch 512, projector 2x2048, predictor 512, SGD 0.03*B/256, cosine decay,
weight decay 5e-4, fixed predictor rate): 10 epochs, projector 2x512, predictor 128, a rate of
0.5*B/256 with a 10% warmup (the cosine loss' gradients are ~5x smaller than NT-Xent's at
temperature 0.2: the paper's rate learns little in a short run), the paper's coupled weight decay
5e-4 given decoupled (5e-3). Measured numbers: benchmarks/results/ (sweep.md, quality-quick.md).

Run: `python examples/simsiam_fashion_mnist.py` (about as long as the SimCLR demo).
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow: no C++ INFO lines

import keras
import tensorflow as tf
from absl import app, flags, logging

import keras_siamese as ks
from keras_siamese import atomic_files

IMAGE_SHAPE = (28, 28, 1)
RECIPE = ks.recipes.get("simsiam")

# ---- hyperparameters: each default is the recipe's; RECIPE_FLAGS change its fields.
flags.DEFINE_integer("epochs", RECIPE.epochs, "Pretraining epochs over the train split.")
flags.DEFINE_integer("batch_size", RECIPE.batch_size, "Global batch (images; 2 views each).")
flags.DEFINE_integer("encoder_width", RECIPE.encoder_width, "Filters of the ResNet's stage 1.")
flags.DEFINE_integer("encoder_grid", RECIPE.encoder_grid, "Last map averaged over N x N cells.")
flags.DEFINE_integer("crop_size", RECIPE.crop_size, "Side of the training views (crops).")
flags.DEFINE_float("min_crop_area", RECIPE.min_crop_area, "Smallest crop, a fraction of 1.")
flags.DEFINE_float("color_strength", RECIPE.color_strength, "Colour-jitter strength.")
flags.DEFINE_integer("projection_dim", RECIPE.projection_dim, "Projector and prediction width.")
flags.DEFINE_integer("projection_layers", RECIPE.projection_layers, "Projector layers.")
flags.DEFINE_integer("predictor_hidden_dim", RECIPE.predictor_hidden_dim, "Predictor bottleneck.")
flags.DEFINE_bool("fixed_predictor_learning_rate", True, "The predictor keeps the peak rate.")
flags.DEFINE_float("learning_rate", RECIPE.learning_rate, "Peak rate at a batch of 256.")
flags.DEFINE_float("weight_decay", RECIPE.weight_decay, "Decoupled weight decay.")
RECIPE_FLAGS = ("epochs", "encoder_width", "encoder_grid", "crop_size", "min_crop_area")
RECIPE_FLAGS += ("color_strength", "learning_rate", "weight_decay", "projection_dim")
RECIPE_FLAGS += ("projection_layers", "predictor_hidden_dim", "fixed_predictor_learning_rate")
# ---- the run: data, evaluation, precision, where the results go.
flags.DEFINE_integer("train_examples", 0, "Use only the first N training images (0: all).")
flags.DEFINE_integer("test_examples", 0, "Use only the first N test images (0: all).")
flags.DEFINE_integer("probe_epochs", 20, "Epochs of the linear probe.")
flags.DEFINE_enum("precision", "auto", ["auto", "float32", "bfloat16"], "auto: the faster.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the step (slower on CPU, faster on GPU).")
flags.DEFINE_string("strategy", "auto", "auto, default, mirrored, multi_worker, tpu or cpu:N.")
flags.DEFINE_string("model_dir", "runs/simsiam_fashion_mnist", "Backups, logs, flags, results.")
flags.DEFINE_string("export_dir", "saved_models/simsiam_fashion_mnist", "SavedModel base dir.")
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS


def make_model(total_steps: int) -> keras.Model:
    """SimSiam of the flags' recipe (its peak rate scaled to --batch_size), compiled, untrained."""
    recipe = RECIPE.replace(**{name: FLAGS[name].value for name in RECIPE_FLAGS})
    keras.utils.set_random_seed(FLAGS.seed)  # the same initial weights at every build
    options = dict(batch_size=FLAGS.batch_size, seed=FLAGS.seed, jit_compile=FLAGS.jit_compile)
    return recipe.build(IMAGE_SHAPE, total_steps, **options)


def set_precision(total_steps: int, batch) -> str:
    """Sets --precision, or for "auto" the faster here of float32 and bfloat16 (timed)."""
    precision = FLAGS.precision
    if precision == "auto":
        precision, seconds = ks.distribute.fastest_precision(lambda: make_model(total_steps), batch)
        timings = ", ".join(f"{name} {1000 * value:.0f}" for name, value in seconds.items())
        print(f"Precision probe, ms per step: {timings} -> {precision}")
    ks.distribute.set_mixed_precision(precision)
    return precision


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # absl's INFO lines (the export's, ...); then
    tf.get_logger().setLevel("ERROR")  # TensorFlow's Python warnings (retracing, ...)
    strategy = ks.distribute.get_strategy(FLAGS.strategy)
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    with atomic_files.atomic_write(os.path.join(FLAGS.model_dir, "flags.json")) as file:
        json.dump(FLAGS.flag_values_dict(), file, indent=2, default=str)

    # ---- data: uint8 images in [0, 255]; the labels only evaluate.
    train = ks.datasets.load_arrays("fashion_mnist", "train")
    test = ks.datasets.load_arrays("fashion_mnist", "test")
    train = tuple(array[: FLAGS.train_examples or None] for array in train)
    test = tuple(array[: FLAGS.test_examples or None] for array in test)
    steps_per_epoch = RECIPE.steps_per_epoch(len(train[0]), FLAGS.batch_size)
    total_steps = FLAGS.epochs * steps_per_epoch
    images = ks.datasets.shuffled_batches(train[0], FLAGS.batch_size, seed=FLAGS.seed)
    validation = tf.data.Dataset.from_tensor_slices(test[0][:2000]).batch(FLAGS.batch_size)

    # ---- model: the recipe's views, encoder, head and optimizer, in the faster precision.
    precision = set_precision(total_steps, train[0][: FLAGS.batch_size])
    with strategy.scope():
        model = make_model(total_steps)
    print(f"{model.encoder.count_params():,} encoder parameters, {total_steps} steps, {precision}")

    # ---- pretraining: a kNN monitor on test images; a restarted job resumes at the exact step.
    callbacks = [
        ks.callbacks.KNNMonitor(
            (train[0][:10000], train[1][:10000]), (test[0][:2000], test[1][:2000]), verbose=0
        ),
        ks.callbacks.CollapseMonitor(threshold=0.1, patience=2),  # watches output_std
        ks.callbacks.AtomicModelCheckpoint(os.path.join(FLAGS.model_dir, "model.keras")),
        keras.callbacks.TensorBoard(os.path.join(FLAGS.model_dir, "logs"), update_freq=50),
    ]
    checkpoint = ks.checkpointing.StepCheckpoint(os.path.join(FLAGS.model_dir, "checkpoints"))
    fit_args = dict(epochs=FLAGS.epochs, steps_per_epoch=steps_per_epoch, verbose=2)
    fit_args.update(checkpoint=checkpoint, callbacks=callbacks, validation_data=validation)
    started = time.perf_counter()  # the chief alone writes checkpoints; every worker restores
    history = ks.checkpointing.fit(model, lambda step: images.skip(step), **fit_args)
    seconds = time.perf_counter() - started
    if checkpoint.stopped_by:  # SIGTERM/SIGINT: it saved the step; the same command resumes
        return
    if history is None:
        print(f"The run in {FLAGS.model_dir} had finished: evaluating its restored model.")
    logs = history.history if history else {}
    print(f"output_std per epoch: {[round(v, 4) for v in logs.get('output_std', [])]}")

    # ---- evaluation beside the raw pixels and the same encoder untrained; then export.
    encoders = {
        "raw pixels": ks.evaluation.raw_pixels(IMAGE_SHAPE),
        "random init": make_model(total_steps),
        "SimSiam": model,  # its encoder: the heads are dropped
    }
    rows = ks.evaluation.compare_encoders(
        encoders, train, test, FLAGS.probe_epochs, seed=FLAGS.seed
    )
    print(f"\nFashion-MNIST test split, top-1 %, after {seconds / 60:.1f} min of pretraining:")
    print(ks.evaluation.format_table(rows))
    results = {"results": rows, "train_seconds": seconds, "history": logs}
    with atomic_files.atomic_write(os.path.join(FLAGS.model_dir, "results.json")) as file:
        json.dump({**results, "precision": precision}, file, indent=2, default=float)
    if ks.distribute.is_chief(strategy):  # one export per job, written atomically
        print(f"SavedModel for TF Serving: {ks.export.export_for_serving(model, FLAGS.export_dir)}")


if __name__ == "__main__":
    app.run(main)
