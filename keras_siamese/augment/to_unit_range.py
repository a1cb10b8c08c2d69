"""`ToUnitRange`: the last step of every recipe, from the images' range to float32 [0, 1].

A `keras.layers.Rescaling(1 / 255)` would do the same without the final clip; the clip makes
the recipes' promise exact (resampling may leave values a rounding error outside the range).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese.augment.base import AugmentationLayer, check_value_range


@keras.saving.register_keras_serializable(package="keras_siamese")
class ToUnitRange(AugmentationLayer):
    """Maps `value_range` linearly to [0, 1], as float32, clipped; the same in training or not.

    Every model of the package feeds its encoder float32 in [0, 1] (`README`, "Value range"),
    so every recipe ends with this layer.

    Args:
        value_range: `(low, high)` of the input images (uint8 or float: (0, 255)).
        **kwargs: `keras.layers.Layer` arguments.

    Example:
        >>> ToUnitRange()(np.full((1, 2, 2, 1), 51, "uint8")).numpy().max()
        0.2
    """

    def __init__(self, value_range=(0, 255), **kwargs):
        value_range = check_value_range(value_range)
        super().__init__(**kwargs)
        self.value_range = value_range

    def augment_images(self, images, transformations=None, **kwargs):
        low, high = self.value_range
        images = images - low if low else images
        return tf.clip_by_value(images * (1.0 / (high - low)), 0.0, 1.0)

    def inference(self, inputs):
        return super().call(inputs)

    def get_config(self):
        config = super().get_config()
        config["value_range"] = self.value_range
        return config
