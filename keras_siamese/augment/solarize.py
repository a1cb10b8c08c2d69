"""`Solarize`: inverts the values above a threshold (gate it with `RandomApply`).

keras-cv's `Solarization` draws its threshold (and an addition) per image from its
`tf.random.Generator`; BYOL's solarization is deterministic once applied, and the gate belongs
to `RandomApply`, so this is one `where` with a fixed threshold.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.augment.base import AugmentationLayer, check_value_range


@keras.saving.register_keras_serializable(package="keras_siamese")
class Solarize(AugmentationLayer):
    """Maps each value `x >= threshold` to `high + low - x` (on [0, 1]: `1 - x`).

    BYOL's solarization (Grill et al. 2020, appendix B: "x -> x 1{x<0.5} + (1 - x) 1{x>=0.5}",
    applied with p=0 to the first view and p=0.2 to the second; DINO the same on its second
    global crop). Works for any channel count. With `training=False`, identity.

    Args:
        threshold: the threshold as a fraction of `value_range` (BYOL: 0.5).
        value_range: `(low, high)` of the images.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
        >>> Solarize()(np.array([[[[0.0], [255.0]]]])).numpy().ravel()
        array([0., 0.], dtype=float32)
    """

    def __init__(self, threshold: float = 0.5, value_range=(0, 255), **kwargs):
        threshold = validation.check_number("threshold", threshold, 0.0, 1.0)
        value_range = check_value_range(value_range)
        super().__init__(**kwargs)
        self.threshold = threshold
        self.value_range = value_range

    def augment_images(self, images, transformations=None, **kwargs):
        low, high = self.value_range
        cut = low + self.threshold * (high - low)
        return tf.where(images >= cut, high + low - images, images)

    def get_config(self):
        config = super().get_config()
        config.update({"threshold": self.threshold, "value_range": self.value_range})
        return config
