"""SimCLR on Fashion-MNIST, on a CPU budget: pretrain, measure with kNN, export for TF Serving.

Pretrains a small ResNet with SimCLR on the 60,000 Fashion-MNIST training images
(labels unused), prints the weighted-kNN top-1 accuracy of the encoder on the test
split before and after training, and exports a SavedModel to
`saved_models/simclr_fashion_mnist/<version>/`.

Why this recipe (measured on 2 CPU cores, see README "The demo recipe"): the
budget is ~10 minutes in all, so the encoder is a ResNet-10 of width 16 (0.3M
parameters, ~2 ms per training view here) rather than ResNet-18, the batch is 256
(NT-Xent with 510 negatives per anchor), the temperature 0.2 (small batches want a
low temperature), the crops keep 25-100% of the image (8% crops of a 28x28
image destroy the garment), and SGD+momentum with warmup and cosine decay is
used: LARS' layer-wise trust ratio mainly helps batch sizes in the thousands.

Run: `python examples/simclr_fashion_mnist.py` (or `make demo`).
"""

import json
import os
import time

from absl import app, flags

flags.DEFINE_integer("epochs", 3, "Pretraining epochs over the train split.")
flags.DEFINE_integer("batch_size", 256, "Global batch size (images; each gives two views).")
flags.DEFINE_float("temperature", 0.2, "NT-Xent temperature.")
flags.DEFINE_integer("encoder_depth", 10, "ResNet depth: 10, 18, 34 or 50.")
flags.DEFINE_integer("encoder_width", 16, "Filters of the ResNet's first stage.")
flags.DEFINE_float("learning_rate", 0.6, "Peak learning rate (after warmup).")
flags.DEFINE_string("optimizer", "sgd", "sgd (momentum 0.9) or lars.")
flags.DEFINE_float("min_crop_area", 0.25, "Smallest random-crop area fraction.")
flags.DEFINE_float("color_strength", 0.5, "Colour-jitter strength (brightness/contrast here).")
flags.DEFINE_integer("train_examples", 0, "Use only the first N training images (0: all).")
flags.DEFINE_integer("knn_k", 200, "Neighbours of the kNN evaluation.")
flags.DEFINE_string(
    "model_dir", "runs/simclr_fashion_mnist", "Backups, checkpoints, TensorBoard logs, flags."
)
flags.DEFINE_string("export_dir", "saved_models/simclr_fashion_mnist", "SavedModel base directory.")
flags.DEFINE_string("strategy", "auto", "auto, default, mirrored, multi_worker, tpu or cpu:N.")
flags.DEFINE_bool(
    "jit_compile", False, "XLA-compile the train step (slower on CPU, faster on TPU/GPU)."
)
flags.DEFINE_enum(
    "mixed_precision", "none", ["none", "bfloat16", "float16"],
    "Compute dtype of the layers (losses stay float32): bfloat16 for TPUs, float16 for GPUs.",
)
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    import keras_siamese as ks

    strategy = ks.distribute.get_strategy(FLAGS.strategy)
    ks.distribute.set_mixed_precision(FLAGS.mixed_precision)
    keras.utils.set_random_seed(FLAGS.seed)
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    with open(os.path.join(FLAGS.model_dir, "flags.json"), "w") as file:
        json.dump(FLAGS.flag_values_dict(), file, indent=2, default=str)

    # ---- data: uint8 images in [0, 255]; labels are used only for the kNN evaluation.
    train_images, train_labels = ks.datasets.load_arrays("fashion_mnist", "train")
    test_images, test_labels = ks.datasets.load_arrays("fashion_mnist", "test")
    if FLAGS.train_examples:
        train_images = train_images[: FLAGS.train_examples]
        train_labels = train_labels[: FLAGS.train_examples]
    steps_per_epoch = len(train_images) // FLAGS.batch_size
    pretrain = (
        tf.data.Dataset.from_tensor_slices(train_images)
        .shuffle(len(train_images), seed=FLAGS.seed, reshuffle_each_iteration=True)
        .batch(FLAGS.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )

    # ---- model
    total_steps = FLAGS.epochs * steps_per_epoch
    with strategy.scope():
        encoder = ks.encoders.resnet(
            depth=FLAGS.encoder_depth,
            input_shape=train_images.shape[1:],
            small_images=True,
            width=FLAGS.encoder_width,
        )
        augmenter = ks.augment.simclr_augmenter(
            train_images.shape[1:3],
            channels=train_images.shape[-1],
            strength=FLAGS.color_strength,
            crop_area=(FLAGS.min_crop_area, 1.0),
            seed=FLAGS.seed,
        )
        model = ks.SimCLR(
            encoder,
            augmenter=augmenter,
            projection_dims=(512, 128),
            temperature=FLAGS.temperature,
            sync_batch_norm=strategy.num_replicas_in_sync > 1,  # the paper's global BN
        )
        schedule = ks.optimizers.WarmupCosine(
            peak_learning_rate=FLAGS.learning_rate,
            total_steps=total_steps,
            warmup_steps=max(1, total_steps // 10),
        )
        if FLAGS.optimizer == "lars":
            optimizer = ks.optimizers.LARS(schedule, momentum=0.9, weight_decay=1e-6)
        elif FLAGS.optimizer == "sgd":
            optimizer = keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=5e-4)
        else:
            raise app.UsageError(f"--optimizer must be sgd or lars. Received: {FLAGS.optimizer!r}")
        model.compile(optimizer=optimizer, jit_compile=FLAGS.jit_compile)
    print(
        f"Encoder resnet{FLAGS.encoder_depth} width {FLAGS.encoder_width}: "
        f"{encoder.count_params():,} parameters; {steps_per_epoch} steps per epoch, "
        f"{strategy.num_replicas_in_sync} replica(s)."
    )

    memory = (train_images, train_labels)
    queries = (test_images, test_labels)
    random_knn = ks.evaluation.knn_accuracy(model, memory, queries, k=FLAGS.knn_k)
    print(f"kNN top-1 of the encoder at random initialisation: {random_knn:.4f}")

    # ---- pretraining
    callbacks = [
        ks.callbacks.KNNMonitor(
            (train_images[:10000], train_labels[:10000]),
            (test_images[:2000], test_labels[:2000]),
            k=FLAGS.knn_k,
            every=max(1, FLAGS.epochs // 4),
            verbose=0,
        ),
        # A backup at every epoch end, one directory per worker: a restarted job resumes
        # from the last one. (Keras 3.15's `save_freq=<batches>` restores mid-epoch weights
        # but reruns the epoch from its first batch: steps would be trained twice.)
        keras.callbacks.BackupAndRestore(
            ks.distribute.worker_directory(os.path.join(FLAGS.model_dir, "backup"), strategy)
        ),
        keras.callbacks.ModelCheckpoint(os.path.join(FLAGS.model_dir, "model.keras")),
        keras.callbacks.TensorBoard(os.path.join(FLAGS.model_dir, "logs"), update_freq=50),
    ]
    started = time.perf_counter()
    model.fit(pretrain, epochs=FLAGS.epochs, callbacks=callbacks, verbose=2)
    seconds = time.perf_counter() - started
    print(
        f"Pretraining: {seconds:.0f} s, "
        f"{FLAGS.epochs * steps_per_epoch * FLAGS.batch_size / seconds:.0f} images/s "
        "(each image gives two views)."
    )

    # ---- evaluation and export
    trained_knn = ks.evaluation.knn_accuracy(model, memory, queries, k=FLAGS.knn_k)
    print(f"kNN top-1 on the test split: random init {random_knn:.4f} -> SimCLR {trained_knn:.4f}")
    with open(os.path.join(FLAGS.model_dir, "results.json"), "w") as file:
        json.dump(
            {"knn_random_init": random_knn, "knn_simclr": trained_knn, "train_seconds": seconds},
            file,
            indent=2,
        )
    if ks.distribute.is_chief(strategy):  # one export per job, written atomically
        version_dir = ks.export.export_for_serving(model, FLAGS.export_dir)
        print(f"SavedModel for TF Serving: {version_dir}")


if __name__ == "__main__":
    app.run(main)
