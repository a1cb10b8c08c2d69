"""Augmentation speed: our SimCLR recipe against a pure keras-cv and a Keras core pipeline.

Each pipeline is one `tf.function` over a fixed uint8 batch: 256x32x32x3 (CIFAR; SimCLR's
CIFAR-10 setup: strength 0.5, no blur) and 64x224x224x3 (ImageNet; strength 1.0, blur p=0.5).
The same operations everywhere (random resized crop 0.08-1.0, flip, colour jitter p=0.8,
grayscale p=0.2, blur p=0.5 at 224, rescale to [0, 1]):
- ours: `keras_siamese.augment.simclr_augmenter` (per image, per replica, XLA-ready);
- keras-cv: `RandomCropAndResize`, `RandomFlip`, `RandomApply(RandomColorJitter, 0.8)`,
  `RandomApply(Grayscale, 0.2)`, `RandomApply(RandomGaussianBlur, 0.5)`, `Rescaling`;
- Keras core: `RandomZoom` (its nearest thing to a resized crop), `RandomFlip`,
  `RandomColorJitter`, `RandomGrayscale(0.2)`, `RandomGaussianBlur` (no per-image gates).
Timing is interleaved: each round calls every pipeline once, in turn, so a change of load on
the shared machine hits all alike; the table gives the median over `--rounds` rounds (after two
untimed warm-up calls). `ours (XLA)` is the recipe under `jit_compile=True`.

A second table times each operation alone against its keras-cv counterpart (the evidence for
the choices in `keras_siamese/augment/__init__.py`).

The share of a training step: a ResNet-18 (small-image stem) forward and backward pass on the
512 views of a SimCLR batch of 256 32x32 images, timed in the same rounds as our recipe making
those 512 views.

Writes `benchmarks/results/augment.md`. Run: `python benchmarks/augment.py` (~6 min on 2 shared CPU
cores); `--rounds=11 --resnet_rounds=3` for a short run.
"""

import os
import platform
import statistics
import sys
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import keras_cv  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_siamese as ks  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("rounds", 11, "Timed rounds (the median is reported; at least 11).")
flags.DEFINE_integer("resnet_rounds", 5, "Timed rounds of the ResNet-18 step comparison.")
flags.DEFINE_string("output", "benchmarks/results/augment.md", "Where to write the table.")

CONFIGS = {"32x32": dict(batch=256, side=32, strength=0.5), "224x224": dict(batch=64, side=224)}


def keras_cv_pipeline(side, strength, blur):
    layers = keras_cv.layers
    stages = [
        layers.RandomCropAndResize(
            (side, side), crop_area_factor=(0.08, 1.0), aspect_ratio_factor=(3 / 4, 4 / 3)
        ),
        layers.RandomFlip("horizontal"),
        layers.RandomApply(
            layers.RandomColorJitter(
                value_range=(0, 255),
                brightness_factor=0.8 * strength,
                contrast_factor=0.8 * strength,
                saturation_factor=(0.5 - 0.4 * strength, 0.5 + 0.4 * strength),
                hue_factor=0.2 * strength,
            ),
            rate=0.8,
        ),
        layers.RandomApply(layers.Grayscale(output_channels=3), rate=0.2),
    ]
    if blur:
        kernel = ks.augment.blur_kernel_size((side, side))
        stages.append(layers.RandomApply(layers.RandomGaussianBlur(kernel, (0.1, 2.0)), rate=0.5))
    return keras.layers.Pipeline([*stages, keras.layers.Rescaling(1 / 255)])


def keras_core_pipeline(side, strength, blur):
    stages = [
        keras.layers.RandomZoom((-0.7, 0.0)),
        keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomColorJitter(
            value_range=(0, 255),
            brightness_factor=0.8 * strength,
            contrast_factor=0.8 * strength,
            saturation_factor=(0.5 - 0.4 * strength, 0.5 + 0.4 * strength),
            hue_factor=0.2 * strength,
        ),
        keras.layers.RandomGrayscale(0.2),
    ]
    if blur:
        kernel = ks.augment.blur_kernel_size((side, side))
        stages.append(keras.layers.RandomGaussianBlur(0.5, kernel, sigma=(0.1, 2.0)))
    return keras.layers.Pipeline([*stages, keras.layers.Rescaling(1 / 255)])


def timed(functions, argument, rounds):
    """ms per call of each function in each round (interleaved), after two warm-up calls each."""
    for function in functions.values():
        for _ in range(2):
            np.asarray(function(argument))
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            np.asarray(function(argument))
            times[name].append(1e3 * (time.perf_counter() - start))
    return times


def medians(times):
    return {name: statistics.median(values) for name, values in times.items()}


def paired_ratio(times, numerator, denominator):
    """Median over rounds of the ratio of two functions' times in the same round."""
    pairs = zip(times[numerator], times[denominator], strict=True)
    return statistics.median(top / bottom for top, bottom in pairs)


def pipeline_rows(rounds):
    rows = {}
    for label, config in CONFIGS.items():
        side, strength = config["side"], config.get("strength", 1.0)
        blur = ks.augment.default_blur(side)
        images = tf.constant(
            np.random.default_rng(0).integers(0, 256, (config["batch"], side, side, 3), "uint8")
        )
        ours = ks.augment.simclr_augmenter(side, strength=strength, blur=blur, seed=0)
        pipelines = {
            "ours": ours,
            "keras-cv": keras_cv_pipeline(side, strength, blur),
            "Keras core": keras_core_pipeline(side, strength, blur),
        }
        functions = {
            name: tf.function(lambda x, layer=layer: layer(x, training=True))
            for name, layer in pipelines.items()
        }
        functions["ours (XLA)"] = tf.function(
            lambda x, layer=ours: layer(x, training=True), jit_compile=True
        )
        times = timed(functions, images, rounds)
        rows[label] = medians(times)
        rows[label]["ratio"] = paired_ratio(times, "keras-cv", "ours")
        print(label, {name: round(value, 2) for name, value in rows[label].items()}, flush=True)
    return rows


def operation_rows(rounds):
    """ms of each of our operations and of its keras-cv counterpart, gated as in SimCLR."""
    rows = {}
    for label, config in CONFIGS.items():
        side = config["side"]
        kernel = ks.augment.blur_kernel_size((side, side))
        images = tf.random.stateless_uniform((config["batch"], side, side, 3), [0, 1]) * 255
        pairs = {
            "resized crop": (
                ks.augment.RandomResizedCrop(side, seed=0),
                keras_cv.layers.RandomCropAndResize((side, side), (0.08, 1.0), (3 / 4, 4 / 3)),
            ),
            "flip": (ks.augment.RandomFlip(seed=0), keras_cv.layers.RandomFlip("horizontal")),
            "colour jitter, p=0.8": (
                ks.augment.RandomApply(
                    ks.augment.RandomColorJitter(0.8, 0.8, 0.8, 0.2, seed=0), 0.8, seed=1
                ),
                keras_cv.layers.RandomApply(
                    keras_cv.layers.RandomColorJitter((0, 255), 0.8, 0.8, (0.1, 0.9), 0.2),
                    rate=0.8,
                ),
            ),
            "grayscale, p=0.2": (
                ks.augment.RandomApply(ks.augment.Grayscale(), 0.2, seed=0),
                keras_cv.layers.RandomApply(keras_cv.layers.Grayscale(output_channels=3), rate=0.2),
            ),
            "blur, p=0.5": (
                ks.augment.RandomApply(ks.augment.RandomGaussianBlur(kernel, seed=0), 0.5, seed=1),
                keras_cv.layers.RandomApply(
                    keras_cv.layers.RandomGaussianBlur(kernel, (0.1, 2.0)), rate=0.5
                ),
            ),
        }
        functions = {}
        for name, (ours, theirs) in pairs.items():
            functions[(name, "ours")] = tf.function(lambda x, layer=ours: layer(x, training=True))
            functions[(name, "keras-cv")] = tf.function(lambda x, layer=theirs: layer(x))
        rows[label] = medians(timed(functions, images, rounds))
        print(label, {" ".join(k): round(v, 1) for k, v in rows[label].items()}, flush=True)
    return rows


def step_share(rounds):
    """ms of our recipe on 512 32x32 views and of a ResNet-18 forward+backward on them."""
    encoder = ks.encoders.resnet(depth=18, input_shape=(32, 32, 3))
    augmenter = ks.augment.simclr_augmenter(32, strength=0.5, blur=False, seed=0)
    images = tf.constant(np.random.default_rng(1).integers(0, 256, (512, 32, 32, 3), "uint8"))
    views = augmenter(images)

    @tf.function
    def encoder_step(views):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(encoder(views, training=True)))
        return tape.gradient(loss, encoder.trainable_variables)[0]

    functions = {
        "augmentation": tf.function(lambda x: augmenter(x, training=True)),
        "encoder": lambda x: encoder_step(views),
    }
    result = medians(timed(functions, images, rounds))
    print("step", {name: round(value, 1) for name, value in result.items()}, flush=True)
    return result


def write(rows, operations, step, rounds, resnet_rounds):
    lines = [
        "# Augmentation speed",
        "",
        f"`python benchmarks/augment.py --rounds={rounds} --resnet_rounds={resnet_rounds}`; "
        f"TF {tf.__version__}, Keras {keras.__version__}, keras-cv {keras_cv.__version__}, "
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), shared "
        "with other jobs. Median ms per batch over interleaved rounds; the speed-up is the median "
        "over rounds of keras-cv's time over ours in the same round (robust to load drift).",
        "",
        "| batch | ours | ours (XLA) | keras-cv | Keras core | keras-cv / ours |",
        "|---|---|---|---|---|---|",
    ]
    for label, config in CONFIGS.items():
        row = rows[label]
        lines.append(
            f"| {config['batch']}x{label}x3 | {row['ours']:.1f} | {row['ours (XLA)']:.1f} | "
            f"{row['keras-cv']:.1f} | {row['Keras core']:.1f} | "
            f"{row['ratio']:.2f}x |"
        )
    lines += [
        "",
        "Each operation alone (float input in [0, 255], gated as in SimCLR), ours / keras-cv:",
        "",
        "| operation | "
        + " | ".join(f"{c['batch']}x{label}x3" for label, c in CONFIGS.items())
        + " |",
        "|---|---|---|",
    ]
    for name in dict.fromkeys(name for name, _ in operations["32x32"]):
        cells = [
            f"{operations[label][(name, 'ours')]:.1f} / {operations[label][(name, 'keras-cv')]:.1f}"
            for label in CONFIGS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    share = step["augmentation"] / (step["augmentation"] + step["encoder"])
    lines += [
        "",
        "Share of a ResNet-18 SimCLR step (batch 256, 512 views of 32x32x3): augmentation "
        f"{step['augmentation']:.1f} ms, encoder forward+backward {step['encoder']:.1f} ms, "
        f"augmentation = {100 * share:.1f}% of the step.",
        "",
    ]
    os.makedirs(os.path.dirname(FLAGS.output), exist_ok=True)
    with open(FLAGS.output, "w") as file:
        file.write("\n".join(lines))
    print("\n".join(lines))


def main(argv):
    del argv
    if FLAGS.rounds < 11:
        raise app.UsageError(f"--rounds must be at least 11. Received: --rounds={FLAGS.rounds}")
    keras.utils.set_random_seed(0)
    rows = pipeline_rows(FLAGS.rounds)
    operations = operation_rows(FLAGS.rounds)
    step = step_share(FLAGS.resnet_rounds)
    write(rows, operations, step, FLAGS.rounds, FLAGS.resnet_rounds)


if __name__ == "__main__":
    app.run(main)
