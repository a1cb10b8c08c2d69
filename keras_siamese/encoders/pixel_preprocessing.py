"""`PixelPreprocessing`: the package's [0, 1] images to a backbone's own input range."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import keras
from keras import ops

from keras_siamese import validation


def _check_values(name: str, value) -> float | tuple[float, ...]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return validation.check_number(name, value)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0:
        return tuple(validation.check_number(f"{name}[{i}]", v) for i, v in enumerate(value))
    raise TypeError(
        f"Argument `{name}` must be a number or a non-empty sequence of numbers (one per "
        f"channel). Received: {name}={value!r}"
    )


@keras.saving.register_keras_serializable(package="keras_siamese")
class PixelPreprocessing(keras.layers.Layer):
    """Maps images per channel: `outputs = channels(inputs) * scale + offset`.

    keras_siamese's encoders receive float images in [0, 1] (the models divide the uint8
    pixels by 255), while pretrained backbones expect their family's own range: [-1, 1]
    (`"tf"` mode), ImageNet mean and std normalisation (`"torch"`), BGR minus the ImageNet
    mean in [0, 255] (`"caffe"`), or raw [0, 255] pixels for models that normalise inside.
    Each of these is a per-channel affine map of the [0, 1] image, after an optional
    channel reversal (RGB -> BGR), which this layer applies; `encoders.from_keras_applications`
    and `encoders.from_keras_hub` fill in the values, so the backbone sees exactly the input
    its `preprocess_input` or `ImageConverter` would give it, in training and in the export.

    Args:
        scale: a number, or one number per channel, multiplying the [0, 1] pixels.
        offset: a number, or one number per channel, added after scaling.
        reverse_channels: reverse the channel order first (RGB -> BGR).
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        TypeError: for a non-number scale or offset.
        ValueError: for non-finite values, or per-channel values that do not match the
            images' channels (when built).

    Example:
        >>> to_tf_mode = PixelPreprocessing(scale=2.0, offset=-1.0)  # [0, 1] -> [-1, 1]
        >>> to_tf_mode(np.array([[[[0.0, 0.5, 1.0]]]])).numpy()
        array([[[[-1.,  0.,  1.]]]], dtype=float32)
    """

    def __init__(self, scale=1.0, offset=0.0, reverse_channels: bool = False, **kwargs):
        scale = _check_values("scale", scale)
        offset = _check_values("offset", offset)
        if not isinstance(reverse_channels, bool):
            raise TypeError(
                "Argument `reverse_channels` must be a bool. "
                f"Received: reverse_channels={reverse_channels!r}"
            )
        super().__init__(**kwargs)
        self.scale = scale
        self.offset = offset
        self.reverse_channels = reverse_channels

    def build(self, input_shape):
        channels = input_shape[-1]
        for name, value in (("scale", self.scale), ("offset", self.offset)):
            if isinstance(value, tuple) and channels is not None and len(value) != channels:
                raise ValueError(
                    f"Argument `{name}` has {len(value)} per-channel values but the images "
                    f"have {channels} channels. Received: {name}={value!r}"
                )
        super().build(input_shape)

    def call(self, inputs):
        images = ops.cast(inputs, self.compute_dtype)
        if self.reverse_channels:
            images = ops.flip(images, axis=-1)
        scale = ops.convert_to_tensor(self.scale, dtype=self.compute_dtype)
        offset = ops.convert_to_tensor(self.offset, dtype=self.compute_dtype)
        return images * scale + offset

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "scale": list(self.scale) if isinstance(self.scale, tuple) else self.scale,
                "offset": list(self.offset) if isinstance(self.offset, tuple) else self.offset,
                "reverse_channels": self.reverse_channels,
            }
        )
        return config
