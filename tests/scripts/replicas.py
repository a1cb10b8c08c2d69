"""Checks that need two logical CPU replicas (run by tests/test_distribute.py in its own process).

- `get_strategy("cpu:2")` gives a MirroredStrategy with two replicas;
- the replica helpers (replica_id, all_gather, scale_for_replicas) inside `strategy.run`;
- each replica augments with its own randomness: both replicas given the same images make
  different views, and replica 0's views differ from replica 1's for every image;
- the distribution report of a model with per-replica BatchNorm warns about it.

Prints `REPLICAS_OK` at the end.
"""

import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_siamese import distribute  # noqa: E402

strategy = distribute.get_strategy("cpu:2")  # before TensorFlow initialises its devices

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from conftest import random_images, tiny_encoder  # noqa: E402

import keras_siamese as ks  # noqa: E402

assert isinstance(strategy, tf.distribute.MirroredStrategy), strategy
assert strategy.num_replicas_in_sync == 2


def per_replica(values):
    return [value.numpy() for value in strategy.experimental_local_results(values)]


@tf.function
def helpers():
    def replica_fn():
        identity = distribute.replica_id()
        gathered = distribute.all_gather(tf.reshape(tf.cast(identity, tf.float32), (1, 1)))
        return (
            identity,
            gathered,
            distribute.scale_for_replicas(tf.constant(4.0)),
            tf.constant(distribute.in_replica_context()),
            tf.constant(distribute.num_replicas()),
        )

    return strategy.run(replica_fn)


identities, gathered, scaled, inside, replicas = (per_replica(value) for value in helpers())
assert [int(value) for value in identities] == [0, 1], identities
for value in gathered:
    np.testing.assert_array_equal(value, [[0.0], [1.0]])
assert [float(value) for value in scaled] == [2.0, 2.0], scaled
assert all(bool(value) for value in inside) and [int(v) for v in replicas] == [2, 2]

# The same images on both replicas: each replica must draw its own crops, flips, colours.
with strategy.scope():
    augmenter = ks.augment.simclr_augmenter(16, channels=1, seed=7)
images = tf.constant(random_images(8, (16, 16, 1), seed=4))


@tf.function
def augment_on_both():
    return strategy.run(lambda: augmenter(images, training=True))


view_0, view_1 = per_replica(augment_on_both())
assert view_0.shape == view_1.shape == (8, 16, 16, 1)
per_image_difference = np.abs(view_0 - view_1).reshape(8, -1).max(axis=1)
assert np.all(per_image_difference > 1e-3), per_image_difference
assert 0.0 <= min(view_0.min(), view_1.min()) and max(view_0.max(), view_1.max()) <= 1.0

# By default ("auto"), a model built under 2 replicas has global BatchNorm everywhere.
with strategy.scope():
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8))
report = model.distribution_report(global_batch_size=16)
assert not report.local_batch_norm and len(report.synchronized_batch_norm) == 2, report
assert model.get_config()["sync_batch_norm"] == "auto", model.get_config()

# A model with per-replica BatchNorm: the report says so and says how to fix it.
with strategy.scope():
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8), sync_batch_norm=False)
report = model.distribution_report(global_batch_size=16)
assert report.replicas == 2 and report.per_replica_batch_size == 8, report
assert report.negatives_per_anchor == 30, report
assert len(report.local_batch_norm) == 2 and not report.synchronized_batch_norm, report
assert any("sync_batch_norm" in warning for warning in report.warnings), report
assert "MirroredStrategy: 2 replica(s)" in str(report), str(report)

# With sync_batch_norm=True every BatchNorm layer, encoder included, is global.
with strategy.scope():
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8), sync_batch_norm=True)
report = model.distribution_report(global_batch_size=16)
assert not report.local_batch_norm and len(report.synchronized_batch_norm) == 2, report
assert report.warnings == (), report
print("REPLICAS_OK")
