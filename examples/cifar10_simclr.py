"""SimCLR on CIFAR-10 with the paper's recipe, for a GPU: pretrain, evaluate, export.

Pretrains a ResNet-18 (CIFAR stem: 3x3 convolution, no max-pool) with SimCLR on the 50,000
CIFAR-10 training images, watches the kNN accuracy of the test split during training,
then trains a linear probe on the frozen representation and exports a SavedModel for
TensorFlow Serving.

The recipe is SimCLR's for CIFAR-10 (Chen et al. 2020, https://arxiv.org/abs/2002.05709,
appendix B.9, and the CIFAR-10 command of github.com/google-research/simclr): batch 512,
LARS with momentum 0.9 and weight decay 1e-4, learning rate 1.0 x batch / 256 after 10
warmup epochs then cosine decay, temperature 0.5, 1000 epochs, crops of 8-100% of the
image, colour strength 0.5 and no blur. The projection head is the paper's 2-layer MLP with
a hidden layer as wide as the representation (512) and 128 outputs. Expect hours of GPU
time for 1000 epochs (97 steps each); `--epochs=100` takes a tenth of that and is already
far above the random-initialisation kNN accuracy.

The values are SimCLR's recipe, `ks.recipes.get("simclr")`, changed to the paper's CIFAR-10
ones below (`CIFAR10_CHANGES`); every flag defaults to them.

Data: CIFAR-10 comes from TensorFlow Datasets and is never downloaded here. Prepare it once
on a machine with internet access (`tfds build cifar10`) and copy it to your TFDS data
directory (or point `TFDS_DATA_DIR` at it); without it this script stops with a message
saying so.

Run: `python examples/cifar10_simclr.py --mixed_precision` (add `--strategy=mirrored` for
several GPUs; the batch is global).
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow: no C++ INFO lines

import keras
import tensorflow as tf
from absl import app, flags

import keras_siamese as ks

IMAGE_SHAPE = (32, 32, 3)
# SimCLR's recipe with the paper's CIFAR-10 values: whole 32x32 images, global average pooling,
# LARS at 1.0 x batch / 256 (the recipe's rate is for its batch of 256), 10 warmup epochs of 1000.
CIFAR10_CHANGES = dict(encoder_depth=18, encoder_width=64, encoder_grid=1, crop_size=None)
CIFAR10_CHANGES.update(min_crop_area=0.08, color_strength=0.5, temperature=0.5, epochs=1000)
CIFAR10_CHANGES.update(optimizer="lars", learning_rate=1.0, weight_decay=1e-4, warmup_fraction=0.01)
RECIPE = ks.recipes.get("simclr", **CIFAR10_CHANGES)

flags.DEFINE_integer("epochs", RECIPE.epochs, "Pretraining epochs.")
flags.DEFINE_integer("batch_size", 512, "Global batch size (images; each gives two views).")
flags.DEFINE_float("learning_rate", RECIPE.learning_rate, "Peak rate at a batch of 256 (linear).")
flags.DEFINE_float("warmup_fraction", RECIPE.warmup_fraction, "Steps of linear warmup.")
flags.DEFINE_float("weight_decay", RECIPE.weight_decay, "LARS weight decay.")
flags.DEFINE_float("temperature", RECIPE.temperature, "NT-Xent temperature.")
flags.DEFINE_integer("encoder_depth", RECIPE.encoder_depth, "ResNet depth: 10, 18, 34 or 50.")
flags.DEFINE_integer("encoder_width", RECIPE.encoder_width, "Filters of the ResNet's stage 1.")
RECIPE_FLAGS = ("epochs", "learning_rate", "warmup_fraction", "weight_decay", "temperature")
RECIPE_FLAGS += ("encoder_depth", "encoder_width")
flags.DEFINE_integer("train_examples", 0, "Use only the first N training images (0: all).")
flags.DEFINE_integer("knn_every", 50, "Epochs between kNN evaluations during training.")
flags.DEFINE_integer("knn_examples", 10000, "Train and test images of the kNN monitor.")
flags.DEFINE_integer("linear_probe_epochs", 100, "Epochs of the final linear probe.")
flags.DEFINE_bool("mixed_precision", False, "Train in mixed_float16 (faster on recent GPUs).")
flags.DEFINE_string("strategy", "auto", "auto, default, mirrored, multi_worker, tpu or cpu:N.")
flags.DEFINE_string("model_dir", "runs/cifar10_simclr", "Checkpoints, TensorBoard logs, flags.")
flags.DEFINE_string("export_dir", "saved_models/cifar10_simclr", "SavedModel base directory.")
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS


def make_model(total_steps: int):
    """SimCLR of the flags' recipe (peak rate scaled to --batch_size), compiled, untrained."""
    recipe = RECIPE.replace(**{name: FLAGS[name].value for name in RECIPE_FLAGS})
    keras.utils.set_random_seed(FLAGS.seed)
    return recipe.build(IMAGE_SHAPE, total_steps, batch_size=FLAGS.batch_size, seed=FLAGS.seed)


def load_cifar10():
    """(training images, labelled train, labelled test) from TFDS; exits if not prepared."""
    try:
        train_images = ks.datasets.load("cifar10", "train", as_supervised=False)
        train = ks.datasets.load("cifar10", "train")
        test = ks.datasets.load("cifar10", "test")
    except FileNotFoundError as error:
        sys.exit(f"error: CIFAR-10 is not available offline. {error}")
    if FLAGS.train_examples:
        train_images = train_images.take(FLAGS.train_examples)
    return train_images, train, test


def main(argv):
    del argv
    strategy = ks.distribute.get_strategy(FLAGS.strategy)
    ks.distribute.set_mixed_precision("float16" if FLAGS.mixed_precision else "none")
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    with open(os.path.join(FLAGS.model_dir, "flags.json"), "w") as file:
        json.dump(FLAGS.flag_values_dict(), file, indent=2, default=str)

    # ---- data: uint8 32x32x3 images from TFDS; labels only for the evaluations.
    train_images, train, test = load_cifar10()
    num_train = int(train_images.cardinality())
    steps_per_epoch = num_train // FLAGS.batch_size
    if steps_per_epoch < 1:
        sys.exit(f"error: --batch_size={FLAGS.batch_size} exceeds the {num_train} training images.")
    pretrain = (
        train_images.shuffle(num_train, seed=FLAGS.seed, reshuffle_each_iteration=True)
        .batch(FLAGS.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )

    # ---- model: the recipe's ResNet (CIFAR stem), views, head and LARS.
    with strategy.scope():
        model = make_model(FLAGS.epochs * steps_per_epoch)
    print(
        f"Encoder resnet{FLAGS.encoder_depth} width {FLAGS.encoder_width}: "
        f"{model.encoder.count_params():,} parameters; {steps_per_epoch} steps per epoch, "
        f"{strategy.num_replicas_in_sync} replica(s)."
    )

    # ---- pretraining: re-running the script resumes from model_dir/backup.
    knn = (train.take(FLAGS.knn_examples), test.take(FLAGS.knn_examples))
    callbacks = [
        ks.callbacks.KNNMonitor(*knn, every=FLAGS.knn_every),
        ks.callbacks.CollapseMonitor(),
        keras.callbacks.BackupAndRestore(os.path.join(FLAGS.model_dir, "backup")),
        keras.callbacks.ModelCheckpoint(os.path.join(FLAGS.model_dir, "model.keras")),
        keras.callbacks.TensorBoard(os.path.join(FLAGS.model_dir, "logs"), update_freq=100),
    ]
    started = time.perf_counter()
    model.fit(pretrain, epochs=FLAGS.epochs, callbacks=callbacks, verbose=2)
    seconds = time.perf_counter() - started

    # ---- evaluation: linear probe on the frozen representation, then export.
    probe = ks.evaluation.linear_probe(
        model, train, test, epochs=FLAGS.linear_probe_epochs, num_classes=10, seed=FLAGS.seed
    )
    results = {"linear_probe_top1": probe["top1"], "linear_probe_top5": probe["top5"]}
    results["train_seconds"] = seconds
    print(f"Linear probe on CIFAR-10 test: {json.dumps(results)}")
    with open(os.path.join(FLAGS.model_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=2)
    version_dir = ks.export.export_for_serving(model, FLAGS.export_dir, warmup=False)
    print(f"SavedModel for TF Serving: {version_dir}")


if __name__ == "__main__":
    app.run(main)
