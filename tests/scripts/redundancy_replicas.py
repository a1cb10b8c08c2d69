"""Barlow Twins, VICReg and SwAV: `fit` under MirroredStrategy over N logical CPUs vs one device.

Run by tests/test_barlow_twins.py, test_vicreg.py and test_swav.py in the shared replica process
of tests/conftest.py (logical devices must be configured before TensorFlow initialises). From
the same weights and the same global batches, with a deterministic augmenter, the model trains
one step (two for `swav_queue`, whose second step uses the queue; `swav_multi_crop` has two
global and two local views) on one device and on 2 and 4 replicas. Prints one JSON line
`REPLICAS {...}` with the differences in loss, weights (all of them: the SwAV queue and
BatchNorm statistics too) and the step's update; the tests assert on them.

The control computes each replica's loss on its own share (`distribute.all_gather` replaced by
the identity): statistics, codes and loss of a quarter or half batch, which must differ.

Usage: python redundancy_replicas.py MODEL [REPLICAS ...]
    MODEL: barlow_twins, vicreg, swav, swav_queue or swav_multi_crop; REPLICAS: 2 4 by default.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.abspath(__file__)
MODELS = ("barlow_twins", "vicreg", "swav", "swav_queue", "swav_multi_crop")
GLOBAL_BATCH = 16
# SGD rates giving steps that move the weights by a few percent: large enough to show in the
# comparison, small enough that float32 noise (global BatchNorm's statistics are summed in
# another order across replicas) does not grow with the step.
LEARNING_RATES = {
    "barlow_twins": 0.01,
    "vicreg": 0.01,
    "swav": 0.05,
    "swav_queue": 0.05,
    "swav_multi_crop": 0.05,
}


def results_of(result) -> dict:
    """The JSON results of this script's `subprocess.CompletedProcess` (tests/conftest.py's
    `replica_job` runs it in the shared replica process)."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPLICAS ")]
    assert len(lines) == 1, result.stdout[-3000:]
    results = json.loads(lines[0].removeprefix("REPLICAS "))
    print(json.dumps(results, indent=2))  # the measured differences, shown with `pytest -s`
    return results


def main(kind: str, counts: list[int]) -> None:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    sys.path.insert(0, os.path.dirname(HERE))

    import tensorflow as tf
    from scripts.logical_cpus import use_logical_cpus

    use_logical_cpus(max(counts))

    import keras
    import numpy as np
    from conftest import random_images, tiny_encoder

    from keras_siamese import distribute
    from keras_siamese.augment import MultiCrop
    from keras_siamese.models.barlow_twins import BarlowTwins
    from keras_siamese.models.swav import SwAV
    from keras_siamese.models.vicreg import VICReg

    class FlipSecondHalf(keras.layers.Layer):
        """Deterministic views: the images and their mirror images, the same on every replica."""

        def call(self, images, training=None):
            images = tf.cast(images, tf.float32) / 255.0
            first, second = tf.split(images, 2, axis=0)
            return tf.concat([first, tf.reverse(second, axis=[2])], axis=0)

    class SmallFlipSecondHalf(FlipSecondHalf):
        """Deterministic local views: the same at 8x8."""

        def call(self, images, training=None):
            return tf.image.resize(super().call(images), (8, 8), antialias=True)

    def build(sync_batch_norm: bool):
        common = dict(augmenter=FlipSecondHalf(), sync_batch_norm=sync_batch_norm)
        if kind == "barlow_twins":
            return BarlowTwins(tiny_encoder(), projection_dims=(16, 8), **common)
        if kind == "vicreg":
            return VICReg(tiny_encoder(), projection_dims=(16, 8), **common)
        if kind == "swav_multi_crop":  # 2 global views of 16x16, 2 local ones of 8x8
            common["augmenter"] = MultiCrop(FlipSecondHalf(), SmallFlipSecondHalf(), 2, 2)
            encoder, common["image_size"] = tiny_encoder((None, None, 1)), (16, 16)
        else:
            encoder = tiny_encoder()
        queue = dict(queue_size=24, freeze_prototypes_steps=1) if kind == "swav_queue" else {}
        return SwAV(encoder, num_prototypes=10, projection_dims=(16, 8), **queue, **common)

    steps = 2 if kind == "swav_queue" else 1
    images = random_images(GLOBAL_BATCH * steps, (16, 16, 1), seed=1)

    def train(strategy, initial, sync_batch_norm=True):
        with strategy.scope():
            model = build(sync_batch_norm)
            model.set_weights(initial)
            model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATES[kind]))
        dataset = tf.data.Dataset.from_tensor_slices(images).batch(GLOBAL_BATCH)
        history = model.fit(dataset, epochs=1, verbose=0)
        return history.history["loss"][0], model.get_weights()

    def flat(weights):
        return np.concatenate([np.ravel(weight).astype("float64") for weight in weights])

    def relative(value, expected):
        scale = float(np.linalg.norm(expected))
        difference = float(np.linalg.norm(value - expected))
        return difference / scale if scale > 0 else difference

    def compare(loss, weights):
        return {
            "loss_relative_difference": abs(loss - reference_loss) / abs(reference_loss),
            "weights_relative_difference": relative(flat(weights), flat(reference)),
            "updates_relative_difference": relative(
                flat(weights) - flat(initial), flat(reference) - flat(initial)
            ),
            # Each variable's own update right to 1% (+ 1e-6 for float32 noise around 0): the
            # global norms above must not hide one wrong variable.
            "variables_not_close": [
                index
                for index, (value, expected, start) in enumerate(
                    zip(weights, reference, initial, strict=True)
                )
                if np.max(np.abs(value - expected), initial=0.0)
                > 1e-2 * np.max(np.abs(expected - start), initial=0.0) + 1e-6
            ],
        }

    def new_mirrored_strategy(devices):
        # Each MirroredStrategy numbers its collective groups from 1: offset the keys so a
        # second strategy in this process does not join the first one's groups.
        tf.distribute.MirroredStrategy._collective_key_base += 1000
        return tf.distribute.MirroredStrategy(devices)

    keras.utils.set_random_seed(0)
    initial = build(True).get_weights()
    devices = use_logical_cpus(max(counts))
    reference_loss, reference = train(tf.distribute.get_strategy(), initial)
    results = {
        "model": kind,
        "steps": steps,
        "reference_loss": reference_loss,
        "relative_update": relative(flat(reference), flat(initial)),
    }
    for count in counts:
        strategy = new_mirrored_strategy(devices[:count])
        results[f"replicas_{count}"] = compare(*train(strategy, initial))

    gather = distribute.all_gather
    distribute.all_gather = lambda value: value
    try:
        local = train(new_mirrored_strategy(devices[:2]), initial)
    finally:
        distribute.all_gather = gather
    results["without_all_gather"] = compare(*local)
    print("REPLICAS " + json.dumps(results))


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in MODELS:
        raise SystemExit(f"usage: {sys.argv[0]} {{{','.join(MODELS)}}} [REPLICAS ...]")
    main(sys.argv[1], [int(count) for count in sys.argv[2:]] or [2, 4])
