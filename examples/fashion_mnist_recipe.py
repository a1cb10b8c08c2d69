"""The run every self-supervised Fashion-MNIST example shares; each example brings its model.

`define_flags(name)` defines the flags of the demo's recipe (a ResNet-10 of width 16 whose
whole 4x4 last feature map is the representation, 16x16 training views, colour strength 1.0,
10 epochs of batch 256), `main(...)` returns the `absl.app.run` entry point that:

1. sends TensorFlow's own messages to `<model_dir>/stderr.log` (`console.py`);
2. loads Fashion-MNIST (uint8, labels only for the evaluation) and batches it with
   `ks.datasets.shuffled_batches`, so the step never waits for its input;
3. picks the precision (`--precision=auto` times one training step in float32 and bfloat16);
4. builds the example's model on `recipe_encoder()` under the strategy;
5. measures the raw pixels and the encoder at random initialisation, pretrains (kNN monitor,
   backups for a restarted job, checkpoint, TensorBoard), measures the trained encoder, and
   prints one table (`representation_table.py`);
6. writes `results.json` and exports the encoder for TF Serving.

The examples import it as `fashion_mnist_recipe` (a script's own directory comes first on
`sys.path`), after setting `TF_CPP_MIN_LOG_LEVEL` and before importing TensorFlow.
"""

import json
import os
import time

import console
import representation_table as table
from absl import flags

FLAGS = flags.FLAGS


def define_flags(name):
    """The flags every example shares; `name` names its run and export directories."""
    flags.DEFINE_integer("epochs", 10, "Pretraining epochs over the train split.")
    flags.DEFINE_integer("batch_size", 256, "Global batch size (images; each gives two views).")
    flags.DEFINE_integer("encoder_width", 16, "Filters of the ResNet-10's first stage.")
    flags.DEFINE_integer("view_size", 16, "Side of the augmented training views.")
    flags.DEFINE_integer(
        "grid", 4, "Features: the last map averaged over N x N cells (4: all of it; 1: global)."
    )
    flags.DEFINE_float("min_crop_area", 0.25, "Smallest random-crop area fraction.")
    flags.DEFINE_float("color_strength", 1.0, "Colour-jitter strength (brightness/contrast here).")
    flags.DEFINE_integer("train_examples", 0, "Use only the first N training images (0: all).")
    flags.DEFINE_integer("probe_epochs", 20, "Epochs of the linear probe.")
    flags.DEFINE_string("model_dir", f"runs/{name}", "Backups, checkpoints, logs, flags, results.")
    flags.DEFINE_string("export_dir", f"saved_models/{name}", "SavedModel base directory.")
    flags.DEFINE_string("strategy", "auto", "auto, default, mirrored, multi_worker, tpu or cpu:N.")
    flags.DEFINE_bool("jit_compile", False, "XLA-compile the step (slower on CPU, faster on GPU).")
    flags.DEFINE_enum(
        "precision",
        "auto",
        ["auto", "float32", "bfloat16"],
        "Compute dtype; auto: bfloat16 if a timed probe finds it at least 5% faster here.",
    )
    flags.DEFINE_integer("seed", 0, "Random seed.")


def recipe_encoder():
    """The seeded ResNet-10 of any input size with the grid-pooled representation."""
    import keras

    import keras_siamese as ks

    keras.utils.set_random_seed(FLAGS.seed)
    return ks.encoders.resnet(
        10, (None, None, 1), width=FLAGS.encoder_width, grid_size=FLAGS.grid or None
    )


def training_precision(flag, build_model, batch):
    """`flag` ("float32", "bfloat16") as given, or for "auto" the faster here, timed; it is
    set as the global policy before returning, so build the real model afterwards."""
    import keras_siamese as ks

    precision = flag
    if flag == "auto":
        precision, seconds = ks.distribute.fastest_precision(build_model, batch)
        milliseconds = ", ".join(f"{name} {1000 * value:.0f}" for name, value in seconds.items())
        print(f"Precision probe, ms per step: {milliseconds} -> {precision}")
    ks.distribute.set_mixed_precision(precision)
    return precision


def main(method, build_model, collapse_monitor=False, after_fit=None):
    """The `absl.app.run` entry point of an example.

    Args:
        method: the trained encoder's row name in the table (e.g. "SimCLR").
        build_model: `(encoder, steps, steps_per_epoch) -> compiled model` on `encoder`
            (built once to time the precision, once for real under the strategy).
        collapse_monitor: stop training if the model's declared collapse metric falls.
        after_fit: `(model, history, steps) -> dict` printed by the example and added to
            results.json, or None.
    """

    def entry(argv):
        del argv
        os.makedirs(FLAGS.model_dir, exist_ok=True)
        with console.framework_messages_to(os.path.join(FLAGS.model_dir, "stderr.log")):
            _run(method, build_model, collapse_monitor, after_fit)

    return entry


def _run(method, build_model, collapse_monitor, after_fit):
    import keras
    import tensorflow as tf

    import keras_siamese as ks

    strategy = ks.distribute.get_strategy(FLAGS.strategy)
    with open(os.path.join(FLAGS.model_dir, "flags.json"), "w") as file:
        json.dump(FLAGS.flag_values_dict(), file, indent=2, default=str)

    train = ks.datasets.load_arrays("fashion_mnist", "train")
    test = ks.datasets.load_arrays("fashion_mnist", "test")
    if FLAGS.train_examples:
        train = (train[0][: FLAGS.train_examples], train[1][: FLAGS.train_examples])
    steps_per_epoch = len(train[0]) // FLAGS.batch_size
    steps = FLAGS.epochs * steps_per_epoch
    pretrain = ks.datasets.shuffled_batches(train[0], FLAGS.batch_size, seed=FLAGS.seed)

    def build():
        return build_model(recipe_encoder(), steps, steps_per_epoch)

    batch = tf.constant(train[0][: FLAGS.batch_size])
    precision = training_precision(FLAGS.precision, build, batch)
    with strategy.scope():
        model = build()
    print(
        f"Encoder: {model.encoder.count_params():,} parameters, {model.feature_dim} features; "
        f"{steps} steps of {FLAGS.batch_size} images in {precision}."
    )

    def evaluate(network):
        return table.evaluate(network, train, test, FLAGS.probe_epochs, FLAGS.seed)

    rows = {"raw pixels": evaluate(table.raw_pixels(train[0].shape[1:]))}
    rows["random init"] = evaluate(model)

    callbacks = [
        ks.callbacks.KNNMonitor(
            (train[0][:10000], train[1][:10000]), (test[0][:2000], test[1][:2000]), verbose=0
        ),
        # A backup at every epoch end: a restarted job resumes from the last one.
        keras.callbacks.BackupAndRestore(
            ks.distribute.worker_directory(os.path.join(FLAGS.model_dir, "backup"), strategy)
        ),
        keras.callbacks.ModelCheckpoint(os.path.join(FLAGS.model_dir, "model.keras")),
        keras.callbacks.TensorBoard(os.path.join(FLAGS.model_dir, "logs"), update_freq=50),
    ]
    if collapse_monitor:  # watches the metric the model declares (output_std, ...)
        callbacks.append(ks.callbacks.CollapseMonitor(threshold=0.1, patience=2))
    started = time.perf_counter()
    history = model.fit(
        pretrain,
        epochs=FLAGS.epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=2,
    )
    seconds = time.perf_counter() - started
    extra = after_fit(model, history, steps) if after_fit else {}
    rows[method] = evaluate(model)  # the encoder; heads and target networks are dropped

    table.print_table(rows, seconds)
    results = {"results": rows, "train_seconds": seconds, "precision": precision, **extra}
    results.update(images_per_second=steps * FLAGS.batch_size / seconds, history=history.history)
    with open(os.path.join(FLAGS.model_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=2, default=float)
    if ks.distribute.is_chief(strategy):  # one export per job, written atomically
        print(f"SavedModel for TF Serving: {ks.export.export_for_serving(model, FLAGS.export_dir)}")
