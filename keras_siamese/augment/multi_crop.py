"""`MultiCrop`: several views per image from two augmenters, possibly of different sizes.

SwAV's multi-crop (Caron et al. 2020, section 3.2: "two standard resolution crops and ... V
additional low resolution crops that cover only small parts of the image"), also DINO's. Each
augmenter runs once on the images repeated for its views (one vectorised call), so every view
of every image draws its own randomness.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.augment.pipeline import output_shape


def _check_augmenter(name, augmenter):
    if not isinstance(augmenter, keras.layers.Layer):
        raise TypeError(
            f"Argument `{name}` must be a keras.layers.Layer (e.g. `SimCLRAugmenter`). "
            f"Received: {name}={augmenter!r} of type {type(augmenter).__name__}"
        )


@keras.saving.register_keras_serializable(package="keras_siamese")
class MultiCrop(keras.layers.Layer):
    """Makes `global_views` views with `global_augmenter` and `local_views` with `local_augmenter`.

    `call(images, training=True)` returns a list of `global_views + local_views` tensors, global
    views first; each view is its augmenter's output (for the recipes: float32 in [0, 1] at the
    augmenter's `image_size`). With `training=False` every view of a kind is the augmenter's
    deterministic output (resize and rescale for the recipes).

    Args:
        global_augmenter: layer making the global (large) views.
        local_augmenter: layer making the local (small) views; may be None when
            `local_views=0`.
        global_views: number of global views (SwAV and DINO: 2).
        local_views: number of local views (SwAV: 6 of 96 pixels, DINO: 8 of 96 pixels).
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        TypeError: for an augmenter that is not a layer.
        ValueError: for `global_views < 1`, `local_views < 0`, or local views without a local
            augmenter.

    Example:
        >>> crops = MultiCrop(SimCLRAugmenter(32, seed=0), SimCLRAugmenter(16, seed=1), 2, 4)
        >>> [view.shape[1] for view in crops(np.zeros((2, 32, 32, 3), "uint8"))]
        [32, 32, 16, 16, 16, 16]
    """

    def __init__(
        self,
        global_augmenter: keras.layers.Layer,
        local_augmenter: keras.layers.Layer | None = None,
        global_views: int = 2,
        local_views: int = 0,
        **kwargs,
    ):
        _check_augmenter("global_augmenter", global_augmenter)
        global_views = validation.check_integer("global_views", global_views, minimum=1)
        local_views = validation.check_integer("local_views", local_views, minimum=0)
        if local_augmenter is not None:
            _check_augmenter("local_augmenter", local_augmenter)
        elif local_views:
            raise ValueError(
                "Argument `local_augmenter` is required for local views. "
                f"Received: local_augmenter=None, local_views={local_views}"
            )
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.global_augmenter = global_augmenter
        self.local_augmenter = local_augmenter
        self.global_views = global_views
        self.local_views = local_views

    @property
    def num_views(self) -> int:
        """`global_views + local_views`."""
        return self.global_views + self.local_views

    def _views(self, augmenter, images, count, training):
        if not count:
            return []
        if not training:
            return [augmenter(images, training=False)] * count
        repeated = tf.concat([images] * count, axis=0) if count > 1 else images
        return tf.split(augmenter(repeated, training=True), count, axis=0)

    def call(self, images, training=True):
        images = tf.convert_to_tensor(images)
        views = self._views(self.global_augmenter, images, self.global_views, training)
        return views + self._views(self.local_augmenter, images, self.local_views, training)

    def build(self, input_shape=None):
        for augmenter in (self.global_augmenter, self.local_augmenter):
            if augmenter is not None and input_shape is not None and not augmenter.built:
                augmenter.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        shapes = [output_shape(self.global_augmenter, input_shape)] * self.global_views
        if self.local_views:
            shapes += [output_shape(self.local_augmenter, input_shape)] * self.local_views
        return shapes

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "global_augmenter": keras.saving.serialize_keras_object(self.global_augmenter),
                "local_augmenter": (
                    None
                    if self.local_augmenter is None
                    else keras.saving.serialize_keras_object(self.local_augmenter)
                ),
                "global_views": self.global_views,
                "local_views": self.local_views,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("global_augmenter", "local_augmenter"):
            if config[key] is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
