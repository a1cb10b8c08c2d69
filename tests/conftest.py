"""Shared test helpers: seeding, tiny encoders and tiny data."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random state."""
    keras.utils.set_random_seed(0)
    yield


def tiny_encoder(input_shape=(16, 16, 1), width=8, name="tiny_encoder"):
    """A two-conv encoder returning pooled features of size `2 * width`."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name=name)


def random_images(count=8, shape=(16, 16, 1), seed=0):
    """uint8 images in [0, 255]."""
    return np.random.default_rng(seed).integers(0, 256, (count,) + shape).astype("uint8")
