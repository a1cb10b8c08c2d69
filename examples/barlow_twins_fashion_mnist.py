"""Barlow Twins on Fashion-MNIST, with the SimCLR demo's encoder, views and budget.

Pretrains the demo's encoder with Barlow Twins (the loss makes the cross-correlation of the two
views' projections the identity) on the 60,000 training images, prints the loss terms and
`output_std` per epoch, the demo's table (raw pixels, random init, Barlow Twins x kNN, linear
probe, linear probe on 1% of labels, on the 10,000 test images) and exports the encoder.

Every hyperparameter defaults to `ks.recipes.get("barlow-twins")`: the demo's ResNet-10 on 16x16
views, BYOL's asymmetric views as in the paper. Scaled down from the paper (Zbontar et al. 2021,
ImageNet: ResNet-50, 1000 epochs, batch 2048, projector 3x8192, LARS 0.2*B/256, lambda 0.0051):
10 epochs, projector 3x512, SGD with momentum, warmup and cosine decay at 0.01 for a batch of
256 (the loss sums d^2 terms: large gradients; the best of 0.01, 0.05 and 0.2).

Run: `python examples/barlow_twins_fashion_mnist.py` (about as long as the SimCLR demo).
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
RECIPE = ks.recipes.get("barlow-twins")

# ---- hyperparameters: each default is the recipe's; RECIPE_FLAGS change its fields.
flags.DEFINE_integer("epochs", RECIPE.epochs, "Pretraining epochs over the train split.")
flags.DEFINE_integer("batch_size", RECIPE.batch_size, "Global batch (images; 2 views each).")
flags.DEFINE_integer("encoder_width", RECIPE.encoder_width, "Filters of the ResNet's stage 1.")
flags.DEFINE_integer("encoder_grid", RECIPE.encoder_grid, "Last map averaged over N x N cells.")
flags.DEFINE_integer("crop_size", RECIPE.crop_size, "Side of the training views (crops).")
flags.DEFINE_float("min_crop_area", RECIPE.min_crop_area, "Smallest crop, a fraction of 1.")
flags.DEFINE_float("color_strength", RECIPE.color_strength, "Colour-jitter strength.")
flags.DEFINE_integer("projection_dim", RECIPE.projection_dims[-1], "Projector layers' width.")
flags.DEFINE_integer("projection_layers", len(RECIPE.projection_dims), "Projector layers.")
flags.DEFINE_float("lambda_", RECIPE.lambda_, "Weight of the redundancy-reduction term.")
flags.DEFINE_float("learning_rate", RECIPE.learning_rate, "Peak rate at a batch of 256.")
flags.DEFINE_float("weight_decay", RECIPE.weight_decay, "Decoupled weight decay.")
RECIPE_FLAGS = ("epochs", "encoder_width", "encoder_grid", "crop_size", "min_crop_area")
RECIPE_FLAGS += ("color_strength", "learning_rate", "weight_decay", "lambda_")
# ---- the run: data, evaluation, precision, where the results go.
flags.DEFINE_integer("train_examples", 0, "Use only the first N training images (0: all).")
flags.DEFINE_integer("test_examples", 0, "Use only the first N test images (0: all).")
flags.DEFINE_integer("probe_epochs", 20, "Epochs of the linear probe.")
flags.DEFINE_enum("precision", "auto", ["auto", "float32", "bfloat16"], "auto: the faster.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the step (slower on CPU, faster on GPU).")
flags.DEFINE_string("strategy", "auto", "auto, default, mirrored, multi_worker, tpu or cpu:N.")
flags.DEFINE_string(
    "model_dir", "runs/barlow_twins_fashion_mnist", "Backups, logs, flags, results."
)
flags.DEFINE_string("export_dir", "saved_models/barlow_twins_fashion_mnist", "SavedModel base dir.")
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS


def make_model(total_steps: int) -> keras.Model:
    """Barlow Twins of the flags' recipe (peak rate scaled to --batch_size), compiled."""
    recipe = RECIPE.replace(**{name: FLAGS[name].value for name in RECIPE_FLAGS})
    recipe = recipe.replace(projection_dims=(FLAGS.projection_dim,) * FLAGS.projection_layers)
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
    for name in ("invariance", "redundancy", "output_std"):
        print(f"{name} per epoch: {[round(v, 4) for v in logs.get(name, [])]}")

    # ---- evaluation beside the raw pixels and the same encoder untrained; then export.
    encoders = {
        "raw pixels": ks.evaluation.raw_pixels(IMAGE_SHAPE),
        "random init": make_model(total_steps),
        "Barlow Twins": model,  # its encoder: the heads are dropped
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
