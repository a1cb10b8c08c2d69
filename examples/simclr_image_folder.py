"""SimCLR on your own folder of images: pretrain, measure with kNN, export for TF Serving.

Streams the images of `--data_dir` (any layout: `photos/*.jpg`, or one sub-folder per class,
`photos/cats/*.jpg`) with `keras_siamese.datasets.from_directory`, which checks every file
before the first step (a corrupt file or a text file named `.png` is named, or skipped with
`--on_error=skip`) and decodes and resizes in `tf.data`, never holding the folder in memory.
Pretrains SimCLR, prints the weighted-kNN top-1 accuracy on `--test_dir` (a labelled folder
with the same class sub-folders as `--data_dir`) before and after, and exports a SavedModel
that takes uint8 images.

The values are SimCLR's recipe, `ks.recipes.get("simclr")`, on whole images, a ResNet-18 of
width 32 with global average pooling, colour strength 0.5 and crops of 20-100% (`CHANGES`).
Scaled down from the paper (Chen et al. 2020: ResNet-50, batch 4096, 100-800 epochs, LARS):
32x32 images, batch 128 (the recipe's rate scaled to it), SGD with momentum, 10 epochs, so a
folder of ~10,000 images trains in about 15 minutes on 2 CPU cores. Pass
`--encoder=keras.applications:EfficientNetV2B0` (or any keras.applications name) for a
pretrained family; its preprocessing is built into the encoder.

Run: `python examples/simclr_image_folder.py --data_dir=photos/train --test_dir=photos/test`
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow: no C++ INFO lines

import keras
import tensorflow as tf
from absl import app, flags

import keras_siamese as ks

CHANGES = dict(encoder_depth=18, encoder_width=32, encoder_grid=1, crop_size=None)
RECIPE = ks.recipes.get("simclr", min_crop_area=0.2, color_strength=0.5, **CHANGES)

flags.DEFINE_string("data_dir", None, "Folder of training images (sub-folders optional).")
flags.DEFINE_string("test_dir", None, "Labelled folder for the kNN evaluation (optional).")
flags.DEFINE_integer("image_size", 32, "Images are resized to image_size x image_size.")
flags.DEFINE_integer("channels", 3, "1 (grayscale), 3 (RGB) or 4 (RGBA).")
flags.DEFINE_string("encoder", "resnet18", "resnet10/18/34/50 or keras.applications:NAME.")
flags.DEFINE_integer("encoder_width", RECIPE.encoder_width, "Filters of the ResNet's stage 1.")
flags.DEFINE_integer("epochs", RECIPE.epochs, "Pretraining epochs.")
flags.DEFINE_integer("batch_size", 128, "Batch size (images; each gives two views).")
flags.DEFINE_float("temperature", RECIPE.temperature, "NT-Xent temperature.")
flags.DEFINE_float("learning_rate", RECIPE.learning_rate, "Peak rate at a batch of 256 (linear).")
flags.DEFINE_float("color_strength", RECIPE.color_strength, "Colour-jitter strength.")
flags.DEFINE_float("min_crop_area", RECIPE.min_crop_area, "Smallest random-crop area fraction.")
RECIPE_FLAGS = ("encoder_width", "epochs", "temperature", "learning_rate", "color_strength")
RECIPE_FLAGS += ("min_crop_area",)
flags.DEFINE_enum("on_error", "raise", ["raise", "skip"], "What to do with unreadable files.")
flags.DEFINE_integer("knn_k", 20, "Neighbours of the kNN evaluation.")
flags.DEFINE_string("model_dir", "runs/simclr_image_folder", "Checkpoints, logs and flags.")
flags.DEFINE_string("export_dir", "saved_models/simclr_image_folder", "SavedModel base dir.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.mark_flag_as_required("data_dir")
FLAGS = flags.FLAGS


def make_model(total_steps: int) -> keras.Model:
    """SimCLR of the flags' recipe on --encoder (rate scaled to --batch_size), compiled."""
    size, channels = FLAGS.image_size, FLAGS.channels
    recipe = RECIPE.replace(**{name: FLAGS[name].value for name in RECIPE_FLAGS})
    # The papers blur and use the ImageNet stem on large images only.
    recipe = recipe.replace(blur=size > 64, stem="small" if size <= 64 else "imagenet")
    keras.utils.set_random_seed(FLAGS.seed)
    encoder = None  # the recipe's ResNet
    if FLAGS.encoder.startswith("keras.applications:"):
        name = FLAGS.encoder.split(":", 1)[1]
        encoder = ks.encoders.from_keras_applications(name, (size, size, channels))
    elif FLAGS.encoder in ("resnet10", "resnet18", "resnet34", "resnet50"):
        recipe = recipe.replace(encoder_depth=int(FLAGS.encoder[6:]))
    else:
        raise app.UsageError(f"Unknown --encoder. Received: {FLAGS.encoder!r}")
    options = dict(encoder=encoder, batch_size=FLAGS.batch_size, seed=FLAGS.seed)
    return recipe.build((size, size, channels), total_steps, **options)


def load_folders():
    """Training images (checked file by file) and, with --test_dir, labelled kNN data."""
    size, channels = FLAGS.image_size, FLAGS.channels
    images = ks.datasets.from_directory(
        FLAGS.data_dir, size, channels, labels=None, seed=FLAGS.seed, on_error=FLAGS.on_error
    )
    memory = queries = None
    if FLAGS.test_dir:  # labelled: the class sub-folders of data_dir and test_dir agree
        memory = ks.datasets.from_directory(FLAGS.data_dir, size, channels, shuffle=False)
        queries = ks.datasets.from_directory(
            FLAGS.test_dir, size, channels, shuffle=False, class_names=memory.class_names
        )
        print(f"Classes: {', '.join(memory.class_names)}")
    return images, memory, queries


def main(argv):
    del argv
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    with open(os.path.join(FLAGS.model_dir, "flags.json"), "w") as file:
        json.dump(FLAGS.flag_values_dict(), file, indent=2, default=str)

    # ---- data: uint8 images in [0, 255], checked file by file before anything is yielded.
    images, memory, queries = load_folders()
    num_images = len(images.file_paths)
    steps_per_epoch = num_images // FLAGS.batch_size
    if steps_per_epoch == 0:
        raise app.UsageError(
            f"--data_dir holds {num_images} images, fewer than --batch_size={FLAGS.batch_size}."
        )
    pretrain = images.batch(FLAGS.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    # ---- model: the recipe's views, encoder, projection head and optimizer.
    total_steps = FLAGS.epochs * steps_per_epoch
    model = make_model(total_steps)
    print(
        f"{num_images} images, {steps_per_epoch} steps per epoch, {model.encoder.name}: "
        f"{model.encoder.count_params():,} parameters."
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
