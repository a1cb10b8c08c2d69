"""What the train step's NaN/Inf checks cost (issue 22, item 8: target < 2% of a step).

The demo's SimCLR step (`ks.recipes.get("simclr").build(...)`: ResNet-10 of width 16, the
recipe's augmenter, batch 256 of 28x28x1 images) is traced twice: once as shipped, with
`keras_siamese.models.nonfinite`'s checks of the batch, the views, the loss and the gradients,
and once with those checks replaced by identities. Repetitions alternate between the two
models so that drifts of a shared machine hit both alike; the report is the median ms per
step of each and the relative overhead. Images are float32, the case where the input check
runs (uint8 images skip it).

Run: python benchmarks/nonfinite_overhead.py [--steps 10] [--repetitions 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

import keras_siamese as ks
from keras_siamese.models import nonfinite

IMAGE_SHAPE = (28, 28, 1)


def _images(batch_size: int) -> tf.data.Dataset:
    images = np.random.default_rng(0).uniform(0, 255, (batch_size, *IMAGE_SHAPE))
    return tf.data.Dataset.from_tensors(images.astype("float32")).repeat().prefetch(2)


def _traced_model(batch_size: int, checks: bool):
    """A compiled SimCLR model whose train function is traced with or without the checks."""
    model = ks.recipes.get("simclr").build(IMAGE_SHAPE, total_steps=10_000, seed=0)
    saved = nonfinite.checked, nonfinite.checked_update
    if not checks:
        nonfinite.checked = lambda structure, step, what: structure
        nonfinite.checked_update = lambda loss, gradients, step: (loss, gradients)
    try:
        model.make_train_function()
        iterator = iter(_images(batch_size))
        _run(model, iterator, steps=3)  # traces and warms up
    finally:
        nonfinite.checked, nonfinite.checked_update = saved
    return model, iterator


def _run(model, iterator, steps: int) -> float:
    """Milliseconds per step over `steps` steps (the last one's logs read to sync)."""
    start = time.perf_counter()
    for _ in range(steps):
        logs = model.train_function(iterator)
    float(logs["loss"])
    return (time.perf_counter() - start) * 1000.0 / steps


def _checks_alone(model, batch_size: int, calls: int = 50) -> float:
    """Milliseconds per call of the checks alone, on tensors shaped like one step's.

    On a shared, noisy machine the two models' step times differ by more than the checks
    cost; this times exactly what the checks add (the batch, two views, the loss and one
    tensor per gradient), so the overhead can be read without that noise.
    """
    images = tf.zeros((batch_size, *IMAGE_SHAPE))
    views = [tf.zeros((batch_size, *model.image_shape)) for _ in range(2)]
    gradients = [tf.zeros(variable.shape) for variable in model.trainable_variables]
    step = tf.constant(0, tf.int64)

    @tf.function
    def checks(images, views, gradients):
        images = nonfinite.checked(images, step, "input batch")
        views = nonfinite.checked(views, step, "prepared batch")
        loss, gradients = nonfinite.checked_update(tf.reduce_sum(images), gradients, step)
        return loss + tf.add_n([tf.reduce_sum(v) for v in views + gradients])

    checks(images, views, gradients)
    start = time.perf_counter()
    for _ in range(calls):
        result = checks(images, views, gradients)
    float(result)
    return (time.perf_counter() - start) * 1000.0 / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="steps per repetition")
    parser.add_argument("--repetitions", type=int, default=7)
    args = parser.parse_args()
    models = {
        "with checks": _traced_model(args.batch_size, checks=True),
        "without checks": _traced_model(args.batch_size, checks=False),
    }
    times = {name: [] for name in models}
    for _ in range(args.repetitions):
        for name, (model, iterator) in models.items():
            times[name].append(_run(model, iterator, args.steps))
    medians = {name: statistics.median(values) for name, values in times.items()}
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(
        f"SimCLR demo step, ResNet-10 width 16, batch {args.batch_size}, float32 "
        f"{IMAGE_SHAPE}, {device}, {args.repetitions} x {args.steps} steps (alternating):"
    )
    for name, values in times.items():
        spread = ", ".join(f"{value:.1f}" for value in values)
        print(f"  {name:15s} median {medians[name]:8.1f} ms/step  ({spread})")
    overhead = medians["with checks"] / medians["without checks"] - 1.0
    print(f"  overhead: {100.0 * overhead:+.2f}% of a step (target < 2%)")
    alone = _checks_alone(models["with checks"][0], args.batch_size)
    share = 100.0 * alone / medians["without checks"]
    print(f"  the checks alone: {alone:.2f} ms per step = {share:.2f}% of the step without them")


if __name__ == "__main__":
    main()
