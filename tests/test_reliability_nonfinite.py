"""NaN or Inf in a batch stops training, naming the step, before any weight changes.

Issue 22, item 8: one NaN pixel in a `tf.data` dataset made every weight of a triplet
`SiameseNetwork` NaN while the logged loss stayed finite (the NaN check covered numpy inputs
only; triplet mining's `tf.where` hides the NaN from the loss, not from the gradients), and
SimCLR passed NaN through its augmenter unflagged. `RepresentationModel.train_step` now
checks the batch, the prepared views, the loss and the gradients (models/nonfinite.py).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, tiny_encoder

import keras_siamese as ks
from keras_siamese.models import RepresentationModel, nonfinite

STOPPED = tf.errors.InvalidArgumentError


def images_with_nan(count=16, channels=1, nan_at=3):
    images = random_images(count, (16, 16, channels), seed=1).astype("float32")
    images[nan_at, 2, 2, 0] = np.nan
    return images


def weights_of(model):
    return [np.array(weight) for weight in model.get_weights()]


def assert_unchanged(model, before):
    for old, new in zip(before, weights_of(model), strict=True):
        np.testing.assert_array_equal(old, new)


def triplet_network():
    model = ks.SiameseNetwork(tiny_encoder(), loss="triplet", distance="euclidean")
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    return model


def test_nan_pixel_from_tf_data_stops_a_triplet_network_before_any_update():
    labels = np.repeat(np.arange(4), 4)
    dataset = tf.data.Dataset.from_tensor_slices((images_with_nan(), labels)).batch(16)
    model = triplet_network()
    before = weights_of(model)
    with pytest.raises(STOPPED, match=r"the input batch of step\] \[0\]"):
        model.fit(dataset, epochs=1, verbose=0)
    assert_unchanged(model, before)


def test_nan_through_simclr_augmenter_stops_at_its_step():
    images = images_with_nan(count=24, channels=3, nan_at=20)  # in the third batch of 8
    model = ks.SimCLR(tiny_encoder((16, 16, 3)), augmenter=ks.augment.simclr_augmenter((16, 16)))
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    with pytest.raises(STOPPED, match=r"the input batch of step\] \[2\]"):
        model.fit(tf.data.Dataset.from_tensor_slices(images).batch(8), epochs=1, verbose=0)
    assert all(np.isfinite(weight).all() for weight in model.get_weights())


class HiddenNaN(RepresentationModel):
    """Finite inputs; a NaN that `tf.where` masks out of the loss but not out of the gradient."""

    def __init__(self, loss_is_nan=False, **kwargs):
        super().__init__(tiny_encoder(), **kwargs)
        self.loss_is_nan = loss_is_nan

    def prepare_batch(self, data, training):
        return self.preprocess(data)

    def loss_on_batch(self, images, training):
        features = self.embed(images, training=training)
        hidden = tf.where(features < -1.0, 1.0 / (features * 0.0), features)  # 1 / 0: Inf
        loss = tf.reduce_mean(hidden)
        return (loss * np.nan if self.loss_is_nan else loss), {}

    def _check_inputs(self, x, y, batch_size, validation_data=None):
        pass


@pytest.mark.parametrize("loss_is_nan, what", [(False, "gradients"), (True, "loss")])
def test_nan_loss_or_gradient_from_finite_inputs_stops_before_the_update(loss_is_nan, what):
    model = HiddenNaN(loss_is_nan=loss_is_nan)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = [np.array(v) for v in model.trainable_variables]
    with pytest.raises(STOPPED, match=rf"the {what}.* of step\] \[0\]"):
        model.fit(random_images(8).astype("float32"), batch_size=8, epochs=1, verbose=0)
    for old, new in zip(before, model.trainable_variables, strict=True):
        np.testing.assert_array_equal(old, np.array(new))


def test_nan_in_numpy_input_also_stops_in_the_step():
    model = triplet_network()
    labels = np.repeat(np.arange(4), 4)
    model._check_inputs = lambda *args, **kwargs: None  # skip the numpy check before fit
    with pytest.raises(STOPPED, match="input batch of step"):
        model.fit(images_with_nan(), labels, batch_size=16, epochs=1, verbose=0)


def test_a_finite_run_trains_exactly_as_without_the_checks(monkeypatch):
    labels = np.repeat(np.arange(4), 4)
    images = random_images(16, seed=2).astype("float32")

    def trained():
        keras.utils.set_random_seed(3)
        model = triplet_network()
        history = model.fit(images, labels, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return weights_of(model), history.history["loss"]

    checked_weights, checked_loss = trained()
    monkeypatch.setattr(nonfinite, "checked", lambda structure, step, what: structure)
    monkeypatch.setattr(
        nonfinite, "checked_update", lambda loss, grads, step, scaled=False: (loss, grads)
    )
    plain_weights, plain_loss = trained()
    assert checked_loss == plain_loss
    for a, b in zip(checked_weights, plain_weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_under_xla_a_nan_step_logs_nan_and_leaves_the_weights_finite():
    model = HiddenNaN()
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
    history = model.fit(random_images(8).astype("float32"), batch_size=8, epochs=1, verbose=0)
    assert np.isnan(history.history["loss"][0])
    assert all(np.isfinite(np.array(v)).all() for v in model.trainable_variables)
