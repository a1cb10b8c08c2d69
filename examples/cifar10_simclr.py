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

from absl import app, flags

flags.DEFINE_integer("epochs", 1000, "Pretraining epochs.")
flags.DEFINE_integer("batch_size", 512, "Global batch size (images; each gives two views).")
flags.DEFINE_float("learning_rate", 1.0, "Base learning rate, scaled by batch_size / 256.")
flags.DEFINE_integer("warmup_epochs", 10, "Linear warmup epochs before the cosine decay.")
flags.DEFINE_float("weight_decay", 1e-4, "LARS weight decay.")
flags.DEFINE_float("temperature", 0.5, "NT-Xent temperature.")
flags.DEFINE_integer("encoder_depth", 18, "ResNet depth: 10, 18, 34 or 50.")
flags.DEFINE_integer("encoder_width", 64, "Filters of the ResNet's first stage.")
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


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    import keras_siamese as ks

    strategy = ks.distribute.get_strategy(FLAGS.strategy)
    keras.utils.set_random_seed(FLAGS.seed)
    if FLAGS.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    with open(os.path.join(FLAGS.model_dir, "flags.json"), "w") as file:
        json.dump(FLAGS.flag_values_dict(), file, indent=2, default=str)

    # ---- data: uint8 32x32x3 images from TFDS; labels only for the evaluations.
    try:
        train_images = ks.datasets.load("cifar10", "train", as_supervised=False)
        train = ks.datasets.load("cifar10", "train")
        test = ks.datasets.load("cifar10", "test")
    except FileNotFoundError as error:
        sys.exit(f"error: CIFAR-10 is not available offline. {error}")
    if FLAGS.train_examples:
        train_images = train_images.take(FLAGS.train_examples)
    num_train = int(train_images.cardinality())
    steps_per_epoch = num_train // FLAGS.batch_size
    if steps_per_epoch < 1:
        sys.exit(f"error: --batch_size={FLAGS.batch_size} exceeds the {num_train} training images.")
    pretrain = (
        train_images.shuffle(num_train, seed=FLAGS.seed, reshuffle_each_iteration=True)
        .batch(FLAGS.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )

    # ---- model: ResNet-18 with the CIFAR stem, SimCLR head and loss, LARS.
    total_steps = FLAGS.epochs * steps_per_epoch
    with strategy.scope():
        encoder = ks.encoders.resnet(
            depth=FLAGS.encoder_depth,
            input_shape=(32, 32, 3),
            small_images=True,
            width=FLAGS.encoder_width,
        )
        augmenter = ks.augment.simclr_augmenter(
            32, channels=3, strength=0.5, blur=False, crop_area=(0.08, 1.0), seed=FLAGS.seed
        )
        model = ks.SimCLR(
            encoder,
            augmenter=augmenter,
            projection_dims=(encoder.output_shape[-1], 128),
            temperature=FLAGS.temperature,
        )
        schedule = ks.optimizers.simclr_learning_rate(
            FLAGS.batch_size,
            steps=total_steps,
            warmup_steps=min(FLAGS.warmup_epochs * steps_per_epoch, total_steps - 1),
            scaling="linear",
            base_learning_rate=FLAGS.learning_rate,
        )
        optimizer = ks.optimizers.LARS(schedule, momentum=0.9, weight_decay=FLAGS.weight_decay)
        model.compile(optimizer=optimizer)
    print(
        f"Encoder resnet{FLAGS.encoder_depth} width {FLAGS.encoder_width}: "
        f"{encoder.count_params():,} parameters; {steps_per_epoch} steps per epoch, "
        f"{strategy.num_replicas_in_sync} replica(s)."
    )

    # ---- pretraining: re-running the script resumes from model_dir/backup.
    callbacks = [
        ks.callbacks.KNNMonitor(
            train.take(FLAGS.knn_examples),
            test.take(FLAGS.knn_examples),
            every=FLAGS.knn_every,
        ),
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
    results = {
        "linear_probe_top1": probe["top1"],
        "linear_probe_top5": probe["top5"],
        "train_seconds": seconds,
    }
    print(f"Linear probe on CIFAR-10 test: {json.dumps(results)}")
    with open(os.path.join(FLAGS.model_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=2)
    version_dir = ks.export.export_for_serving(model, FLAGS.export_dir, warmup=False)
    print(f"SavedModel for TF Serving: {version_dir}")


if __name__ == "__main__":
    app.run(main)
