"""One `fit` step of a momentum model on 2 logical-CPU replicas versus one device.

Run by tests/test_byol.py, tests/test_moco.py and tests/test_dino.py in their own process
(logical devices must be configured before TensorFlow initialises). Every variable is
compared after the step: the online weights, the target (the moving average runs on
every replica), BatchNorm statistics (synchronised), MoCo v2's queue (enqueued from the
global batch), DINO's center (the global mean) and the step counters. The step's loss
already uses MoCo v2's (random) queue and DINO's center. Controls show the comparison can
fail: per-replica BatchNorm, and no cross-replica gather.

One step, not more: BYOL's one-device dynamics amplify float32 noise. From weights that
differ by ~1e-6 (synchronised BatchNorm sums in another order), a second one-device step
differs by 4e-3 of its update, while the 2-replica step from the same weights equals the
one-device step to 4e-6.

Usage: python momentum_replicas.py MODEL  (byol, moco_v2, moco_v3 or dino)
Prints one JSON line `MOMENTUM_REPLICAS {...}`.
"""

import json
import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from scripts.logical_cpus import use_logical_cpus  # noqa: E402

use_logical_cpus(2)

import keras  # noqa: E402
from conftest import random_images, tiny_encoder  # noqa: E402

from keras_siamese import distribute  # noqa: E402
from keras_siamese.models.byol import BYOL  # noqa: E402
from keras_siamese.models.dino import DINO  # noqa: E402
from keras_siamese.models.moco import MoCo  # noqa: E402

GLOBAL_BATCH = 16
STEPS = 1
# DINO's head normalises a bottleneck of tiny initial norm (truncated normal, std 0.02):
# its gradients are large, and SGD at 0.1 would move its weights by their own norm.
LEARNING_RATES = {"byol": 0.1, "moco_v2": 0.1, "moco_v3": 0.1, "dino": 0.002}


class FlipSecondHalf(keras.layers.Layer):
    """Deterministic views: the images and their mirror images (the base calls the augmenter
    on `concat([images, images])`), identical on every replica and on one device."""

    def call(self, images, training=None):
        images = tf.cast(images, tf.float32) / 255.0
        first, second = tf.split(images, 2, axis=0)
        return tf.concat([first, tf.reverse(second, axis=[2])], axis=0)


def build(kind, sync_batch_norm):
    common = dict(augmenter=FlipSecondHalf(), momentum=0.9, sync_batch_norm=sync_batch_norm)
    if kind == "byol":
        return BYOL(tiny_encoder(), projection_dim=8, hidden_dim=16, **common)
    if kind.startswith("moco"):
        return MoCo(
            tiny_encoder(),
            version=kind[-2:],
            queue_size=24,
            projection_dim=8,
            hidden_dim=16,
            temperature=0.5,
            **common,
        )
    return DINO(
        tiny_encoder(),
        output_dim=32,
        hidden_dim=16,
        bottleneck_dim=8,
        head_batch_norm=True,
        teacher_temperature=0.1,
        **common,
    )


def train(kind, strategy, initial, sync_batch_norm=True):
    """Builds under `strategy`, loads `initial`, fits one step; returns loss and weights."""
    with strategy.scope():
        model = build(kind, sync_batch_norm)
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATES[kind]))
    images = random_images(GLOBAL_BATCH * STEPS, (16, 16, 1), seed=1)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(GLOBAL_BATCH, drop_remainder=True)
    history = model.fit(dataset, epochs=1, verbose=0)
    report = distribute.distribution_report(model, GLOBAL_BATCH)
    names = [f"{index}:{w.path}" for index, w in enumerate(model.weights)]
    return history.history["loss"][0], [np.asarray(w) for w in model.get_weights()], names, report


def flat(weights):
    return np.concatenate([np.ravel(w).astype("float64") for w in weights])


def relative_difference(value, expected):
    scale = float(np.linalg.norm(expected))
    difference = float(np.linalg.norm(value - expected))
    return difference / scale if scale > 0 else difference


def compare(weights, reference, initial, names):
    # atol 1e-5: synchronised BatchNorm sums in another order than one device, which moves
    # weights of size ~0.2 by up to ~3e-6 (BYOL's first convolution bias).
    not_close = [
        names[index]
        for index, (value, expected) in enumerate(zip(weights, reference, strict=True))
        if not np.allclose(value, expected, rtol=1e-4, atol=1e-5)
    ]
    return {
        "weights_relative_difference": relative_difference(flat(weights), flat(reference)),
        "updates_relative_difference": relative_difference(
            flat(weights) - flat(initial), flat(reference) - flat(initial)
        ),
        "variables_not_close": not_close,
    }


def new_mirrored_strategy(devices):
    """A MirroredStrategy with its own collective keys (see tests/scripts/equivalence.py)."""
    tf.distribute.MirroredStrategy._collective_key_base += 1000
    return tf.distribute.MirroredStrategy(devices)


def main(kind):
    keras.utils.set_random_seed(0)
    initial = [np.asarray(w) for w in build(kind, True).get_weights()]
    devices = use_logical_cpus(2)
    loss, reference, names, _ = train(kind, tf.distribute.get_strategy(), initial)
    results = {
        "model": kind,
        "reference_loss": loss,
        "relative_update": relative_difference(flat(reference), flat(initial)),
    }
    replica_loss, weights, _, report = train(kind, new_mirrored_strategy(devices), initial)
    results["replicas_2"] = {
        "loss": replica_loss,
        "loss_difference": abs(replica_loss - loss),
        **compare(weights, reference, initial, names),
        "report": {
            "replicas": report.replicas,
            "per_replica_batch_size": report.per_replica_batch_size,
            "negatives_per_anchor": report.negatives_per_anchor,
            "local_batch_norm": list(report.local_batch_norm),
            "warnings": list(report.warnings),
        },
    }
    # Controls: per-replica BatchNorm, and each replica alone (no all_gather).
    local_loss, weights, _, _ = train(kind, new_mirrored_strategy(devices), initial, False)
    results["without_sync_batch_norm"] = {
        "loss_difference": abs(local_loss - loss),
        **compare(weights, reference, initial, names),
    }
    gather, inside = distribute.all_gather, distribute.in_replica_context
    distribute.all_gather, distribute.in_replica_context = (lambda value: value), (lambda: False)
    try:
        alone_loss, weights, _, _ = train(kind, new_mirrored_strategy(devices), initial)
    finally:
        distribute.all_gather, distribute.in_replica_context = gather, inside
    results["without_all_gather"] = {
        "loss_difference": abs(alone_loss - loss),
        **compare(weights, reference, initial, names),
    }
    print("MOMENTUM_REPLICAS " + json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
