"""A metric loss in plain Keras `compile`/`fit` trains on 2 replicas as on one device.

Keras divides a loss by the number of replicas only when it reduces per-example values
itself; the metric losses return this replica's share of the global mean as a scalar, so
`MetricLoss.__call__` divides. Without that, 2 replicas would take a step twice as large.
"""

import keras
import numpy as np
import tensorflow as tf
from conftest import in_replica_process

import keras_siamese as ks


def build(with_proxies):
    layers = [keras.Input((6,)), keras.layers.Dense(8)]
    return keras.Sequential(layers + ([ks.proxies.ClassProxies(4)] if with_proxies else []))


def one_step(strategy, loss, weights, images, labels, with_proxies):
    """One SGD step of Dense(8) [+ ClassProxies(4)] under `strategy`; returns the weights."""
    with strategy.scope():
        model = build(with_proxies)
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    model.fit(data, epochs=1, verbose=0)
    return model.get_weights()


@in_replica_process
def test_plain_keras_fit_on_2_replicas_equals_one_device():  # a few seconds
    from scripts.logical_cpus import use_logical_cpus

    rng = np.random.default_rng(0)
    images = rng.normal(size=(16, 6)).astype("float32")
    labels = np.arange(16) % 4
    mirrored = tf.distribute.MirroredStrategy(use_logical_cpus(2))
    for loss_class, with_proxies in ((ks.losses.ArcFaceLoss, True), (ks.losses.CircleLoss, False)):
        loss = loss_class(4) if with_proxies else loss_class()
        keras.utils.set_random_seed(0)
        initial = build(with_proxies).get_weights()
        single = one_step(tf.distribute.get_strategy(), loss, initial, images, labels, with_proxies)
        double = one_step(mirrored, loss, initial, images, labels, with_proxies)
        moved = max(np.abs(a - b).max() for a, b in zip(single, initial, strict=True))
        assert moved > 1e-3, loss_class.__name__  # the step really moves the weights
        for after_two, after_one in zip(double, single, strict=True):
            np.testing.assert_allclose(after_two, after_one, rtol=1e-4, atol=1e-5)
