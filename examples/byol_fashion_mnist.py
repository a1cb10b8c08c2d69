"""BYOL on Fashion-MNIST, on the SimCLR demo's CPU budget: pretrain, kNN, collapse watch, export.

Pretrains the SimCLR demo's encoder (ResNet-10 of width 16 on 28x28x1) with BYOL on the
60,000 Fashion-MNIST training images (labels unused), prints the weighted-kNN top-1
accuracy of the encoder on the test split before and after training, `output_std` per
epoch (about 1 is healthy, near 0 is collapse), the target's momentum at the end, images/s,
and exports the online encoder as a SavedModel to `saved_models/byol_fashion_mnist/<n>/`.

Scaled down from the paper (Grill et al. 2020, ImageNet: ResNet-50, 1000 epochs, batch
4096, projector and predictor 4096 -> 256, LARS 0.2*B/256 with weight decay 1.5e-6, target
momentum 0.996 -> 1): 4 epochs, projector and predictor 512 -> 128, SGD with momentum and
a rate of 0.8*B/256 with a 1-epoch warmup and cosine decay, and a base momentum of 0.99
(over ~900 steps a target at 0.996 barely leaves its random start), the SimCLR demo's
25-100% crops and colour strength 0.5. At 28 px there is no blur or solarisation, so the
two views differ only by their random draws. In the tests' 512-step run of a two-layer
encoder on 2,048 images, the base momentum 0.96 beat 0.99 (kNN 0.628 against 0.566).
Measured: `--epochs=2 --train_examples=16384` (128 steps) took 159 s at 206 images/s on
2 busy cores and moved the kNN accuracy from 0.707 (random init) to 0.719, loss 1.70 ->
1.09, output_std 0.85 -> 0.82; SimSiam's example reports 0.724 for that budget. The full
run was not measured; at that rate its 4 epochs take about 20 minutes.

Run: `python examples/byol_fashion_mnist.py --epochs=4`.
"""

import json
import os
import time

from absl import app, flags

flags.DEFINE_integer("epochs", 4, "Pretraining epochs over the train split.")
flags.DEFINE_integer("batch_size", 256, "Global batch size (images; each gives two views).")
flags.DEFINE_integer("encoder_depth", 10, "ResNet depth: 10, 18, 34 or 50.")
flags.DEFINE_integer("encoder_width", 16, "Filters of the ResNet's first stage.")
flags.DEFINE_integer("projection_dim", 128, "Output size of the projector and predictor.")
flags.DEFINE_integer("hidden_dim", 512, "Hidden width of the projector and predictor.")
flags.DEFINE_float("momentum", 0.99, "Base momentum of the target, raised to 1 (paper: 0.996).")
flags.DEFINE_float("base_learning_rate", 0.8, "Peak rate for a batch of 256 (SGD, momentum 0.9).")
flags.DEFINE_float("warmup_epochs", 1.0, "Linear warmup of the rate, in epochs.")
flags.DEFINE_float("weight_decay", 1e-4, "Decoupled weight decay of SGD.")
flags.DEFINE_float("min_crop_area", 0.25, "Smallest random-crop area fraction (paper: 0.08).")
flags.DEFINE_float("color_strength", 0.5, "Colour-jitter strength (brightness/contrast here).")
flags.DEFINE_integer("train_examples", 0, "Use only the first N training images (0: all).")
flags.DEFINE_integer("knn_k", 200, "Neighbours of the kNN evaluation.")
flags.DEFINE_string("model_dir", "runs/byol_fashion_mnist", "Checkpoints, logs, flags.")
flags.DEFINE_string("export_dir", "saved_models/byol_fashion_mnist", "SavedModel base dir.")
flags.DEFINE_string("strategy", "auto", "auto, default, mirrored, multi_worker, tpu or cpu:N.")
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    import keras_siamese as ks
    from keras_siamese.models.byol import BYOL

    strategy = ks.distribute.get_strategy(FLAGS.strategy)
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

    # ---- model: the two views come from two augmenters with their own random streams.
    total_steps = FLAGS.epochs * steps_per_epoch
    with strategy.scope():
        encoder = ks.encoders.resnet(
            depth=FLAGS.encoder_depth,
            input_shape=train_images.shape[1:],
            small_images=True,
            width=FLAGS.encoder_width,
        )
        augmenters = tuple(
            ks.augment.simclr_augmenter(
                train_images.shape[1:3],
                channels=train_images.shape[-1],
                strength=FLAGS.color_strength,
                crop_area=(FLAGS.min_crop_area, 1.0),
                seed=FLAGS.seed + view,
            )
            for view in range(2)
        )
        model = BYOL(
            encoder,
            augmenter=augmenters,
            projection_dim=FLAGS.projection_dim,
            hidden_dim=FLAGS.hidden_dim,
            momentum=FLAGS.momentum,
        )
        schedule = ks.optimizers.WarmupCosine(
            FLAGS.base_learning_rate * FLAGS.batch_size / 256,
            total_steps=total_steps,
            warmup_steps=min(int(FLAGS.warmup_epochs * steps_per_epoch), total_steps - 1),
        )
        model.compile(
            optimizer=keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=FLAGS.weight_decay)
        )
    print(
        f"Encoder resnet{FLAGS.encoder_depth} width {FLAGS.encoder_width}: "
        f"{encoder.count_params():,} parameters; {steps_per_epoch} steps per epoch, "
        f"{strategy.num_replicas_in_sync} replica(s)."
    )

    memory, queries = (train_images, train_labels), (test_images, test_labels)
    random_knn = ks.evaluation.knn_accuracy(model, memory, queries, k=FLAGS.knn_k)
    print(f"kNN top-1 of the encoder at random initialisation: {random_knn:.4f}")

    # ---- pretraining
    callbacks = [
        ks.callbacks.CollapseMonitor(threshold=0.1, patience=2),
        keras.callbacks.BackupAndRestore(os.path.join(FLAGS.model_dir, "backup")),
        keras.callbacks.ModelCheckpoint(os.path.join(FLAGS.model_dir, "model.keras")),
        keras.callbacks.TensorBoard(os.path.join(FLAGS.model_dir, "logs"), update_freq=50),
    ]
    started = time.perf_counter()
    history = model.fit(pretrain, epochs=FLAGS.epochs, callbacks=callbacks, verbose=2)
    seconds = time.perf_counter() - started
    images_per_second = FLAGS.epochs * steps_per_epoch * FLAGS.batch_size / seconds
    momentum = float(model.momentum_update.current_momentum())
    print(f"Pretraining: {seconds:.0f} s, {images_per_second:.0f} images/s.")
    print(f"output_std per epoch: {[round(value, 4) for value in history.history['output_std']]}")
    print(f"Target momentum after {total_steps} steps: {momentum:.4f}")

    # ---- evaluation and export (the online encoder; the target and heads are dropped)
    trained_knn = ks.evaluation.knn_accuracy(model, memory, queries, k=FLAGS.knn_k)
    print(f"kNN top-1 on the test split: random init {random_knn:.4f} -> BYOL {trained_knn:.4f}")
    results = {"knn_random_init": random_knn, "knn_byol": trained_knn, "train_seconds": seconds}
    results.update(images_per_second=images_per_second, final_momentum=momentum)
    results["history"] = history.history
    with open(os.path.join(FLAGS.model_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=2, default=float)
    version_dir = ks.export.export_for_serving(model, FLAGS.export_dir)
    print(f"SavedModel for TF Serving: {version_dir}")


if __name__ == "__main__":
    app.run(main)
