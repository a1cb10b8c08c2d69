"""SimCLR on your own folder of images: pretrain, measure with kNN, export for TF Serving.

Streams the images of `--data_dir` (any layout: `photos/*.jpg`, or one sub-folder per class,
`photos/cats/*.jpg`) with `keras_siamese.datasets.from_directory`, which checks every file
before the first step (a corrupt file or a text file named `.png` is named, or skipped with
`--on_error=skip`) and decodes and resizes in `tf.data`, never holding the folder in memory.
Pretrains SimCLR, prints the weighted-kNN top-1 accuracy on `--test_dir` (a labelled folder
with the same class sub-folders as `--data_dir`) before and after, and exports a SavedModel
that takes uint8 images.

Scaled down from the paper (Chen et al. 2020: ResNet-50, batch 4096, 100-800 epochs, LARS):
a ResNet-18 of width 32 on 32x32 images, batch 128, SGD with momentum, 10 epochs, so a
folder of ~10,000 images trains in about 15 minutes on 2 CPU cores. Pass
`--encoder=keras.applications:EfficientNetV2B0` (or any keras.applications name) for a
pretrained family; its preprocessing is built into the encoder.

Run: `python examples/simclr_image_folder.py --data_dir=photos/train --test_dir=photos/test`
"""

import json
import os
import time

from absl import app, flags

flags.DEFINE_string("data_dir", None, "Folder of training images (sub-folders optional).")
flags.DEFINE_string("test_dir", None, "Labelled folder for the kNN evaluation (optional).")
flags.DEFINE_integer("image_size", 32, "Images are resized to image_size x image_size.")
flags.DEFINE_integer("channels", 3, "1 (grayscale), 3 (RGB) or 4 (RGBA).")
flags.DEFINE_string("encoder", "resnet18", "resnet10/18/34/50 or keras.applications:NAME.")
flags.DEFINE_integer("encoder_width", 32, "Filters of the ResNet's first stage.")
flags.DEFINE_integer("epochs", 10, "Pretraining epochs.")
flags.DEFINE_integer("batch_size", 128, "Batch size (images; each gives two views).")
flags.DEFINE_float("temperature", 0.2, "NT-Xent temperature.")
flags.DEFINE_float("learning_rate", 0.3, "Peak learning rate (after a 10% warmup).")
flags.DEFINE_float("color_strength", 0.5, "Colour-jitter strength.")
flags.DEFINE_float("min_crop_area", 0.2, "Smallest random-crop area fraction.")
flags.DEFINE_enum("on_error", "raise", ["raise", "skip"], "What to do with unreadable files.")
flags.DEFINE_integer("knn_k", 20, "Neighbours of the kNN evaluation.")
flags.DEFINE_string("model_dir", "runs/simclr_image_folder", "Checkpoints, logs and flags.")
flags.DEFINE_string("export_dir", "saved_models/simclr_image_folder", "SavedModel base dir.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.mark_flag_as_required("data_dir")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    import keras_siamese as ks

    keras.utils.set_random_seed(FLAGS.seed)
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    with open(os.path.join(FLAGS.model_dir, "flags.json"), "w") as file:
        json.dump(FLAGS.flag_values_dict(), file, indent=2, default=str)

    # ---- data: uint8 images in [0, 255], checked file by file before anything is yielded.
    size, channels = FLAGS.image_size, FLAGS.channels
    images = ks.datasets.from_directory(
        FLAGS.data_dir, size, channels, labels=None, seed=FLAGS.seed, on_error=FLAGS.on_error
    )
    num_images = len(images.file_paths)
    steps_per_epoch = num_images // FLAGS.batch_size
    if steps_per_epoch == 0:
        raise app.UsageError(
            f"--data_dir holds {num_images} images, fewer than --batch_size={FLAGS.batch_size}."
        )
    pretrain = images.batch(FLAGS.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    memory = queries = None
    if FLAGS.test_dir:  # labelled: the class sub-folders of data_dir and test_dir agree
        memory = ks.datasets.from_directory(FLAGS.data_dir, size, channels, shuffle=False)
        queries = ks.datasets.from_directory(
            FLAGS.test_dir, size, channels, shuffle=False, class_names=memory.class_names
        )
        print(f"Classes: {', '.join(memory.class_names)}")

    # ---- augmentation, encoder, model
    input_shape = (size, size, channels)
    augmenter = ks.augment.simclr_augmenter(
        size,
        channels=channels,
        strength=FLAGS.color_strength,
        blur=size > 64,  # the paper blurs ImageNet-sized images only
        crop_area=(FLAGS.min_crop_area, 1.0),
        seed=FLAGS.seed,
    )
    if FLAGS.encoder.startswith("keras.applications:"):
        name = FLAGS.encoder.split(":", 1)[1]
        encoder = ks.encoders.from_keras_applications(name, input_shape)
    elif FLAGS.encoder in ("resnet10", "resnet18", "resnet34", "resnet50"):
        encoder = ks.encoders.resnet(
            depth=int(FLAGS.encoder[6:]),
            input_shape=input_shape,
            small_images=size <= 64,
            width=FLAGS.encoder_width,
        )
    else:
        raise app.UsageError(f"Unknown --encoder. Received: {FLAGS.encoder!r}")
    model = ks.SimCLR(
        encoder, augmenter=augmenter, projection_dims=(512, 128), temperature=FLAGS.temperature
    )
    total_steps = FLAGS.epochs * steps_per_epoch
    warmup_steps = max(1, total_steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(1, total_steps - warmup_steps),
        warmup_target=FLAGS.learning_rate,
        warmup_steps=warmup_steps,
    )
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=5e-4))
    print(
        f"{num_images} images, {steps_per_epoch} steps per epoch, {encoder.name}: "
        f"{encoder.count_params():,} parameters."
    )

    if memory is not None:
        before = ks.evaluation.knn_accuracy(model, memory, queries, k=FLAGS.knn_k)
        print(f"kNN top-1 at random initialisation: {before:.4f}")

    # ---- pretraining
    callbacks = [
        keras.callbacks.ModelCheckpoint(os.path.join(FLAGS.model_dir, "model.keras")),
        keras.callbacks.TensorBoard(os.path.join(FLAGS.model_dir, "logs")),
    ]
    started = time.perf_counter()
    model.fit(pretrain, epochs=FLAGS.epochs, callbacks=callbacks, verbose=2)
    seconds = time.perf_counter() - started
    print(f"Pretraining: {seconds:.0f} s, {total_steps * FLAGS.batch_size / seconds:.0f} images/s.")

    # ---- evaluation and export
    results = {"train_seconds": seconds, "num_images": num_images}
    if memory is not None:
        after = ks.evaluation.knn_accuracy(model, memory, queries, k=FLAGS.knn_k)
        print(f"kNN top-1 on --test_dir: random init {before:.4f} -> SimCLR {after:.4f}")
        results.update(knn_random_init=before, knn_simclr=after)
    with open(os.path.join(FLAGS.model_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=2)
    version_dir = ks.export.export_for_serving(model, FLAGS.export_dir)
    print(f"SavedModel for TF Serving: {version_dir}")


if __name__ == "__main__":
    app.run(main)
