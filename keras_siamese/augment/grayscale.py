"""`Grayscale`: RGB to luma, kept as 3 equal channels (gate it with `RandomApply`).

keras-cv's `Grayscale(output_channels=3)` computes the same values for RGB images (tested) at
about the same speed (benchmarks/results/augment.md), but raises on any other channel count;
this one follows the package's channel rule, so a recipe works for 1-channel and multispectral
images.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese.augment.base import AugmentationLayer

# ITU-R BT.601 luma weights, as `tf.image.rgb_to_grayscale`.
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


@keras.saving.register_keras_serializable(package="keras_siamese")
class Grayscale(AugmentationLayer):
    """Replaces each RGB image by its luma, repeated on the 3 channels.

    SimCLR's "colour drop" (Chen et al. 2020, appendix A: random grayscale with p=0.2), the same
    in SimSiam, BYOL, SwAV and DINO; wrap it in `RandomApply(Grayscale(), 0.2)`. The weights
    are `tf.image.rgb_to_grayscale`'s. Channels: 3-channel images become gray; images of any
    other channel count (1, 2, 4, 13, ...) pass unchanged, since "gray" is only defined for RGB
    (1-channel images already are). Works for any value range.

    Args:
        **kwargs: `keras.layers.Layer` arguments.

    Example:
        >>> Grayscale()(np.zeros((2, 8, 8, 3))).shape
        TensorShape([2, 8, 8, 3])
    """

    def augment_images(self, images, transformations=None, **kwargs):
        if images.shape[-1] != 3:
            return images
        red, green, blue = GRAY_WEIGHTS
        gray = red * images[..., 0:1] + green * images[..., 1:2] + blue * images[..., 2:3]
        return tf.concat([gray, gray, gray], axis=-1)
