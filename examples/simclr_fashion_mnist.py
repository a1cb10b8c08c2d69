"""SimCLR on Fashion-MNIST in 10 minutes on 2 CPU cores: pretrain, compare, export.

Pretrains a small ResNet with SimCLR on the 60,000 Fashion-MNIST training images (labels
unused), then prints one table: the raw pixels, the encoder at random initialisation and the
SimCLR encoder, each measured on the 10,000 test images with the weighted kNN (k=200,
T=0.1), the linear probe (all labels) and the linear probe on 1% of the labels (600). The
encoder is exported to `saved_models/simclr_fashion_mnist/<version>/` for TF Serving.

The recipe is what `benchmarks/recipe.py` measured to learn most per CPU-minute (README "The
demo recipe"). Scaled down from the paper (ResNet-50 on 224-pixel views, batch 4096, LARS,
100-800 epochs): a ResNet-10 of width 16 trained on 16x16 views (crops of 25-100% of the image,
resized: a quarter of the 28x28 cost), whose representation is its whole last feature map
(4x4x128 on a 28x28 image, not globally averaged: the garment's layout survives), colour
strength 1.0 (brightness and contrast), no blur, batch 256, temperature 0.2, SGD with momentum,
warmup and cosine decay. bfloat16 only where a timed probe finds it faster than float32.

Run: `python examples/simclr_fashion_mnist.py` (or `make demo`).
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines

import console  # examples/console.py
import representation_table as table  # examples/representation_table.py
from absl import app, flags
from precision_choice import training_precision  # examples/precision_choice.py

flags.DEFINE_integer("epochs", 10, "Pretraining epochs over the train split.")
flags.DEFINE_integer("batch_size", 256, "Global batch size (images; each gives two views).")
flags.DEFINE_float("temperature", 0.2, "NT-Xent temperature.")
flags.DEFINE_integer("encoder_width", 16, "Filters of the ResNet-10's first stage.")
flags.DEFINE_integer("view_size", 16, "Side of the augmented training views.")
flags.DEFINE_integer(
    "grid",
    4,
    "The representation: the last feature map averaged over an N x N grid "
    "(4: the whole 4x4 map; 1: global average pooling).",
)
flags.DEFINE_enum("optimizer", "sgd", ["sgd", "lars", "adam"], "SGD/LARS: momentum 0.9.")
flags.DEFINE_float("learning_rate", 0.6, "Peak learning rate (after a 10% warmup).")
flags.DEFINE_float("weight_decay", 5e-4, "Decoupled weight decay.")
flags.DEFINE_float("min_crop_area", 0.25, "Smallest random-crop area fraction.")
flags.DEFINE_float("color_strength", 1.0, "Colour-jitter strength (brightness/contrast here).")
flags.DEFINE_integer("train_examples", 0, "Use only the first N training images (0: all).")
flags.DEFINE_integer("probe_epochs", 20, "Epochs of the linear probe.")
flags.DEFINE_string("model_dir", "runs/simclr_fashion_mnist", "Backups, checkpoints, logs, flags.")
flags.DEFINE_string("export_dir", "saved_models/simclr_fashion_mnist", "SavedModel base directory.")
flags.DEFINE_string("strategy", "auto", "auto, default, mirrored, multi_worker, tpu or cpu:N.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the step (slower on CPU, faster on GPU/TPU).")
flags.DEFINE_enum(
    "precision",
    "auto",
    ["auto", "float32", "bfloat16", "float16"],
    "Compute dtype; auto: bfloat16 if a timed probe finds it faster here.",
)
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    with console.framework_messages_to(os.path.join(FLAGS.model_dir, "stderr.log")):
        run()


def run():
    import keras
    import tensorflow as tf

    import keras_siamese as ks

    strategy = ks.distribute.get_strategy(FLAGS.strategy)
    with open(os.path.join(FLAGS.model_dir, "flags.json"), "w") as file:
        json.dump(FLAGS.flag_values_dict(), file, indent=2, default=str)

    # ---- data: uint8 images in [0, 255]; labels only for the evaluation. Batches are gathers
    # of shuffled indices from one in-memory tensor, prefetched: the step never waits.
    train = ks.datasets.load_arrays("fashion_mnist", "train")
    test = ks.datasets.load_arrays("fashion_mnist", "test")
    if FLAGS.train_examples:
        train = (train[0][: FLAGS.train_examples], train[1][: FLAGS.train_examples])
    steps_per_epoch = len(train[0]) // FLAGS.batch_size
    pretrain = ks.datasets.shuffled_batches(train[0], FLAGS.batch_size, seed=FLAGS.seed)

    # ---- encoder: a ResNet-10 of any input size whose last feature map is averaged over a
    # grid (4x4 on a 28x28 image: all of it) and flattened. The model takes and serves 28x28.
    def build_encoder():
        keras.utils.set_random_seed(FLAGS.seed)
        return ks.encoders.resnet(
            10, (None, None, 1), width=FLAGS.encoder_width, grid_size=FLAGS.grid or None
        )

    def build_model():
        augmenter = ks.augment.simclr_augmenter(
            FLAGS.view_size,
            channels=1,
            strength=FLAGS.color_strength,
            blur=False,
            crop_area=(FLAGS.min_crop_area, 1.0),
            seed=FLAGS.seed,
        )
        return ks.SimCLR(
            build_encoder(), augmenter, (512, 128), FLAGS.temperature, image_size=(28, 28)
        )

    def build_probe():
        model = build_model()
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
        return model

    batch = tf.constant(train[0][: FLAGS.batch_size])
    precision = training_precision(FLAGS.precision, build_probe, batch)

    # ---- model
    with strategy.scope():
        model = build_model()
        steps = FLAGS.epochs * steps_per_epoch
        schedule = ks.optimizers.WarmupCosine(FLAGS.learning_rate, steps, steps // 10)
        optimizer = {
            "sgd": lambda: keras.optimizers.SGD(schedule, 0.9, weight_decay=FLAGS.weight_decay),
            "lars": lambda: ks.optimizers.LARS(schedule, 0.9, weight_decay=FLAGS.weight_decay),
            "adam": lambda: keras.optimizers.Adam(schedule, weight_decay=FLAGS.weight_decay),
        }[FLAGS.optimizer]()
        model.compile(optimizer=optimizer, jit_compile=FLAGS.jit_compile)
    print(
        f"Encoder: {model.encoder.count_params():,} parameters, {model.feature_dim} features; "
        f"{steps} steps of {FLAGS.batch_size} images in {precision}."
    )

    def evaluate(network):
        return table.evaluate(network, train, test, FLAGS.probe_epochs, FLAGS.seed)

    rows = {"raw pixels": evaluate(table.raw_pixels(train[0].shape[1:]))}
    rows["random init"] = evaluate(model)

    # ---- pretraining
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
    started = time.perf_counter()
    model.fit(
        pretrain,
        epochs=FLAGS.epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=2,
    )
    seconds = time.perf_counter() - started
    rows["SimCLR"] = evaluate(model)

    # ---- the table, results and export
    table.print_table(rows, seconds)
    with open(os.path.join(FLAGS.model_dir, "results.json"), "w") as file:
        json.dump({"results": rows, "train_seconds": seconds, "precision": precision}, file)
    if ks.distribute.is_chief(strategy):  # one export per job, written atomically
        print(f"SavedModel for TF Serving: {ks.export.export_for_serving(model, FLAGS.export_dir)}")


if __name__ == "__main__":
    app.run(main)
