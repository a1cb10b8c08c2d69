"""`RandomApply`: applies a layer to each image with a probability, decided per image.

Not keras-cv's `RandomApply`: with `batchwise=False` it decides per image inside a `map_fn`
with a Python `if` on a tensor, which fails in a Keras 3 `train_step`
(`OperatorNotAllowedInGraphError: Using a symbolic tf.Tensor as a Python bool`), and its
`batchwise=True` applies the layer to all images or none. Here one Bernoulli draw per image
makes a mask; the layer runs on the drawn images only (gathered, then scattered back), so its
cost scales with the probability, except under XLA (`jit_compile=True`, TPU), where shapes must
be static: there it runs on the whole batch and the mask selects its output or the input. It
works in `fit`, in `tf.data`, under `tf.distribute` and under XLA, for any image layer (ours,
keras-cv's, Keras core's) that keeps the image shape.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.augment.base import (
    RandomAugmentationLayer,
    in_xla_context,
    select_images,
    uniform,
)


@keras.saving.register_keras_serializable(package="keras_siamese")
class RandomApply(RandomAugmentationLayer):
    """Applies `layer` to each image independently with probability `probability`.

    The gate of every optional operation of the SimCLR family (Chen et al. 2020, appendix A:
    colour jitter with p=0.8, grayscale p=0.2, blur p=0.5; BYOL's solarization p=0.2). The
    layer sees only the drawn images (plus one padding image, so never an empty batch), or the
    whole batch under XLA; probabilities 0 and 1 skip the draw (0 never calls the layer). With
    `training=False`, identity.

    Args:
        layer: a `keras.layers.Layer` mapping a batch of images to images of the same shape
            (called with `training=True`).
        probability: probability that an image is transformed.
        seed: integer seed of the gate's random stream.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        TypeError: if `layer` is not a `keras.layers.Layer`.
        ValueError: if `probability` is outside [0, 1], or (at the first call) if the layer
            changes the image shape.

    Example:
        >>> gray = RandomApply(Grayscale(), probability=0.2, seed=0)
        >>> gray(np.zeros((4, 8, 8, 3))).shape
        TensorShape([4, 8, 8, 3])
    """

    def __init__(self, layer: keras.layers.Layer, probability: float = 0.5, seed=None, **kwargs):
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                "Argument `layer` must be a keras.layers.Layer (e.g. `Grayscale()` or a keras-cv "
                f"layer). Received: layer={layer!r} of type {type(layer).__name__}"
            )
        probability = validation.check_probability("probability", probability)
        super().__init__(seed=seed, **kwargs)
        self.layer = layer
        self.probability = probability

    def build(self, input_shape=None):
        if input_shape is not None and not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def get_random_transformation_batch(self, batch_size, **kwargs):
        if self.probability in (0.0, 1.0):
            return tf.zeros([batch_size])  # unused: the gate is constant
        return uniform([batch_size], self.next_seed()) < self.probability

    def _apply(self, images):
        outputs = self.layer(images, training=True)
        if outputs.shape[1:] != images.shape[1:]:
            raise ValueError(
                "Argument `layer` of `RandomApply` must keep the image shape; "
                f"{self.layer.name} maps {tuple(images.shape)} to {tuple(outputs.shape)}. "
                "Apply resizing layers outside `RandomApply`."
            )
        return tf.cast(outputs, images.dtype)

    def augment_images(self, images, transformations, **kwargs):
        if self.probability == 0.0:
            return images
        if self.probability == 1.0:
            return self._apply(images)
        if in_xla_context():
            return select_images(transformations, self._apply(images), images)
        drawn = tf.where(transformations)[:, 0]
        # One padding image (the first) so that the layer never sees an empty batch.
        outputs = self._apply(tf.gather(images, tf.concat([drawn, [0]], axis=0)))
        return tf.tensor_scatter_nd_update(images, drawn[:, None], outputs[:-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "layer": keras.saving.serialize_keras_object(self.layer),
                "probability": self.probability,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)
