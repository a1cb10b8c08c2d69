"""SimCLR on your own folder of images: pretrain, measure with kNN, export for TF Serving.

Streams `--data_dir` (`photos/*.jpg`, or one sub-folder per class) with
`ks.datasets.from_directory`, which checks every file first (a bad one is named, or skipped
with `--on_error=skip`); prints the weighted-kNN top-1 on `--test_dir` (labelled, the same
class sub-folders) before and after pretraining; exports a SavedModel taking uint8 images.

It trains what `python -m keras_siamese train --data_dir=photos/train --image_size=32` trains
on the same folder: `ks.recipes.get("simclr", image_shape=(32, 32, 3), **<the flags you set>)`
(`auto`: the recipe's). The recipe was measured on 28x28 grey Fashion-MNIST; its image rules
(README "Recipes for other images", measured by `benchmarks/any_images.py`) derive what depends
on the images: views of half the side, at least 16 and a multiple of 4 (16 on 32x32 images, 32
on 64x64), hue 0.5 and grayscale 0.5 in the colour jitter of RGB images, and epochs scaled down
by the pixels per view (10 at 32x32, 3 at 64x64), so a run costs about the recipe's on
Fashion-MNIST; the encoder is the recipe's ResNet-10 of width 16 with the small-image stem, its
last map averaged over at most 4x4 cells (image side / 8), and views over 64 pixels take the
ImageNet stem and global pooling (the same rules). tests/test_recipe_drift.py checks that this
example and `train` build the same model and optimizer.

Scaled down from the paper (Chen et al. 2020: ResNet-50 on 224-pixel views, batch 4096, LARS,
100-800 epochs): batch 256, SGD with momentum at a peak of 0.6, warmup and cosine decay; 10,000
32x32 images train in a few minutes on 2 CPU cores. `--encoder=keras.applications:NAME` (e.g.
EfficientNetV2B0, its preprocessing built in) trains on whole images, as `train` does.

Run: `python examples/simclr_image_folder.py --data_dir=photos/train --test_dir=photos/test`
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

RECIPE = ks.recipes.get("simclr")  # as measured on 28x28 grey images
APPLICATIONS = "keras.applications:"
RESNETS = ("resnet10", "resnet18", "resnet34", "resnet50")

flags.DEFINE_string("data_dir", None, "Folder of training images (sub-folders optional).")
flags.DEFINE_string("test_dir", None, "Labelled folder for the kNN evaluation (optional).")
flags.DEFINE_integer("image_size", 32, "Images are resized to image_size x image_size.", 1)
flags.DEFINE_enum("channels", "auto", ["auto", "1", "3", "4"], "auto: the folder's, as train.")
flags.DEFINE_string(
    "encoder", "auto", f"auto (the recipe's), {', '.join(RESNETS)}, {APPLICATIONS}NAME."
)
# ---- the recipe's fields: `auto` is the recipe's value for these images; a value is kept.
RECIPE_FLAGS = {
    "encoder_width": "Filters of the ResNet's first stage.",
    "epochs": "Pretraining epochs.",
    "batch_size": "Global batch (images, two views each); the peak rate follows it.",
    "temperature": "NT-Xent temperature.",
    "learning_rate": "Peak learning rate at the recipe's batch.",
    "color_strength": "Colour-jitter strength.",
    "min_crop_area": "Smallest crop, a fraction of the image's area.",
}
for _name, _text in RECIPE_FLAGS.items():
    _value = getattr(RECIPE, _name)
    flags.DEFINE_string(_name, "auto", f"{_text} auto: the recipe's ({_value} on 28x28 images).")
flags.DEFINE_enum("on_error", "raise", ["raise", "skip"], "What to do with unreadable files.")
flags.DEFINE_integer("knn_k", 20, "Neighbours of the kNN evaluation.")
flags.DEFINE_string("model_dir", "runs/simclr_image_folder", "Checkpoints, logs and flags.")
flags.DEFINE_string("export_dir", "saved_models/simclr_image_folder", "SavedModel base dir.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.mark_flag_as_required("data_dir")
FLAGS = flags.FLAGS


def recipe_for(image_shape) -> ks.recipes.Recipe:
    """SimCLR's recipe for these images with the flags you set, on `train`'s auto encoder."""
    given = {name: FLAGS[name].value for name in RECIPE_FLAGS if FLAGS[name].value != "auto"}
    whole = FLAGS.encoder.startswith(APPLICATIONS)  # an encoder built at one size: whole images
    if FLAGS.encoder not in ("auto", *RESNETS) and not whole:
        raise app.UsageError(f"Unknown --encoder. Received: --encoder={FLAGS.encoder}")
    try:
        changes = {name: type(getattr(RECIPE, name))(value) for name, value in given.items()}
        # Checked, not applied: the recipe's batch is the one its learning rate is given for.
        RECIPE.replace(batch_size=changes.pop("batch_size", RECIPE.batch_size))
        if whole:
            changes.update(crop_size=None)
        elif FLAGS.encoder in RESNETS:
            changes.update(encoder_depth=int(FLAGS.encoder[len("resnet") :]))
        recipe = ks.recipes.get("simclr", image_shape=tuple(image_shape), **changes)
    except (ValueError, TypeError) as error:
        flags_given = " ".join(f"--{name}={value}" for name, value in given.items())
        raise app.UsageError(f"A recipe flag was refused: {error} ({flags_given})") from None
    return recipe


def batch_size(recipe: ks.recipes.Recipe) -> int:
    """--batch_size, or the recipe's; the peak rate follows it from the recipe's batch."""
    return recipe.batch_size if FLAGS.batch_size == "auto" else int(FLAGS.batch_size)


def make_model(image_shape, total_steps: int) -> keras.Model:
    """SimCLR of `recipe_for(image_shape)`, compiled, untrained."""
    recipe = recipe_for(image_shape)
    keras.utils.set_random_seed(FLAGS.seed)  # the same initial weights at every build
    encoder = None  # the recipe's ResNet
    if FLAGS.encoder.startswith(APPLICATIONS):
        name = FLAGS.encoder[len(APPLICATIONS) :]
        encoder = ks.encoders.from_keras_applications(name, tuple(image_shape))
    options = dict(encoder=encoder, batch_size=batch_size(recipe), seed=FLAGS.seed)
    return recipe.build(tuple(image_shape), total_steps, **options)


def load_folders():
    """Training images (checked file by file), their shape and, with --test_dir, kNN data."""
    files = ks.datasets.list_image_files(FLAGS.data_dir, labels=None, on_error=FLAGS.on_error)
    stored = {header.channels for header in files.headers}  # as `train --channels=auto`:
    channels = 1 if stored == {1} else 4 if stored & {2, 4} else 3  # alpha kept, grey if all
    channels = channels if FLAGS.channels == "auto" else int(FLAGS.channels)
    size = FLAGS.image_size
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
    return images, (size, size, channels), memory, queries


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # absl's INFO lines (the export's, ...); then
    tf.get_logger().setLevel("ERROR")  # TensorFlow's Python warnings (retracing, ...)
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    with atomic_files.atomic_write(os.path.join(FLAGS.model_dir, "flags.json")) as file:
        json.dump(FLAGS.flag_values_dict(), file, indent=2, default=str)

    # ---- data: uint8 images in [0, 255], checked file by file before anything is yielded.
    images, image_shape, memory, queries = load_folders()
    recipe = recipe_for(image_shape)
    batch, num_images = batch_size(recipe), len(images.file_paths)
    steps_per_epoch = num_images // batch
    if steps_per_epoch == 0:
        raise app.UsageError(f"--data_dir holds {num_images} images, fewer than a batch ({batch}).")
    pretrain = images.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    # ---- model: the recipe's views, encoder, projection head and optimizer.
    total_steps = recipe.epochs * steps_per_epoch
    model = make_model(image_shape, total_steps)
    print(
        f"{num_images} images {image_shape}: views {recipe.view_size(image_shape)}, colour "
        f"{recipe.color_strength} (hue {recipe.hue}, grey {recipe.grayscale_probability}), "
        f"{model.encoder.name} ({recipe.stem} stem, grid {recipe.encoder_grid}), "
        f"{recipe.epochs} epochs, {total_steps} steps of {batch}."
    )
    if memory is not None:
        before = ks.evaluation.knn_accuracy(model, memory, queries, k=FLAGS.knn_k)
        print(f"kNN top-1 at random initialisation: {before:.4f}")

    # ---- pretraining
    callbacks = [
        ks.callbacks.AtomicModelCheckpoint(os.path.join(FLAGS.model_dir, "model.keras")),
        keras.callbacks.TensorBoard(os.path.join(FLAGS.model_dir, "logs")),
    ]
    started = time.perf_counter()
    model.fit(pretrain, epochs=recipe.epochs, callbacks=callbacks, verbose=2)
    seconds = time.perf_counter() - started
    print(f"Pretraining: {seconds:.0f} s, {total_steps * batch / seconds:.0f} images/s.")

    # ---- evaluation and export
    results = {"train_seconds": seconds, "num_images": num_images, "recipe": recipe.get_config()}
    if memory is not None:
        after = ks.evaluation.knn_accuracy(model, memory, queries, k=FLAGS.knn_k)
        print(f"kNN top-1 on --test_dir: random init {before:.4f} -> SimCLR {after:.4f}")
        results.update(knn_random_init=before, knn_simclr=after)
    with atomic_files.atomic_write(os.path.join(FLAGS.model_dir, "results.json")) as file:
        json.dump(results, file, indent=2, default=str)
    version_dir = ks.export.export_for_serving(model, FLAGS.export_dir)
    print(f"SavedModel for TF Serving: {version_dir}")


if __name__ == "__main__":
    app.run(main)
