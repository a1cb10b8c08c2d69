"""`SimCLRAugmenter`: the SimCLR family's view pipeline as one layer with named arguments.

SimCLR's operations (Chen et al. 2020, appendix A) are the base of SimSiam, BYOL, SwAV and DINO,
which change their parameters (crop area, jitter amounts, blur and solarization probabilities);
the recipe functions of `keras_siamese.augment.recipes` set them per method. The layer is a
`Pipeline` of the package's operations whose config holds the arguments (not the layers), so
`get_config()["strength"]` reads as the recipe.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.augment.base import check_image_size, check_range, derive_seed
from keras_siamese.augment.grayscale import Grayscale
from keras_siamese.augment.pipeline import Pipeline
from keras_siamese.augment.random_apply import RandomApply
from keras_siamese.augment.random_color_jitter import RandomColorJitter
from keras_siamese.augment.random_flip import RandomFlip
from keras_siamese.augment.random_gaussian_blur import RandomGaussianBlur, blur_kernel_size
from keras_siamese.augment.random_resized_crop import RandomResizedCrop
from keras_siamese.augment.solarize import Solarize
from keras_siamese.augment.to_unit_range import ToUnitRange

# SimCLR's jitter amounts at strength 1: brightness, contrast, saturation 0.8 s, hue 0.2 s.
SIMCLR_COLOR_JITTER = (0.8, 0.8, 0.8, 0.2)
# The strongest colour strength: 0.8 s <= 1 keeps the factors' lower bound >= 0.
MAX_STRENGTH = 1.25


def _check_color_jitter(color_jitter) -> tuple[float, float, float, float]:
    amounts = tuple(color_jitter) if isinstance(color_jitter, (tuple, list)) else ()
    if len(amounts) != 4:
        raise ValueError(
            "Argument `color_jitter` must be 4 amounts (brightness, contrast, saturation, hue), "
            f"e.g. (0.8, 0.8, 0.8, 0.2). Received: color_jitter={color_jitter!r}"
        )
    for amount in amounts:
        validation.check_number("color_jitter", amount, 0.0)
    return tuple(float(amount) for amount in amounts)


def _check_jitter_amounts(strength: float, color_jitter) -> tuple[tuple, tuple]:
    """Checks `color_jitter`; returns it and the amounts at `strength` (hue at most 0.5)."""
    color_jitter = _check_color_jitter(color_jitter)
    amounts = tuple(strength * amount for amount in color_jitter)
    if amounts[3] > 0.5:
        raise ValueError(
            "Arguments `strength` and `color_jitter` must give a hue amount "
            f"strength * color_jitter[3] <= 0.5. Received: strength={strength}, "
            f"color_jitter={color_jitter}"
        )
    return color_jitter, amounts


def _check_switches(**switches) -> None:
    """Checks that each on/off argument (`blur`, `flip`) is a bool."""
    for name, value in switches.items():
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"Argument `{name}` must be a bool. Received: {name}={value!r}")


def _operations(
    image_size, channels, crop_area, flip, amounts, blur, probabilities, seed
) -> list[keras.layers.Layer]:
    """The pipeline's layers in SimCLR's order, each with its own seed derived from `seed`.

    An operation whose probability is 0 (or that is switched off) is left out; the seed
    indices stay fixed, so an operation's draws do not depend on which others are present.
    """

    def seeded(index):
        return derive_seed(seed, index)

    layers = [RandomResizedCrop(image_size, crop_area, seed=seeded(0))]
    if flip:
        layers.append(RandomFlip(seed=seeded(1)))
    jitter_probability = probabilities["jitter_probability"]
    if jitter_probability > 0 and any(amounts):
        jitter = RandomColorJitter(*amounts, seed=seeded(2))
        layers.append(RandomApply(jitter, jitter_probability, seed=seeded(3)))
    grayscale_probability = probabilities["grayscale_probability"]
    if channels == 3 and grayscale_probability > 0:
        layers.append(RandomApply(Grayscale(), grayscale_probability, seed=seeded(4)))
    blur_probability = probabilities["blur_probability"]
    if blur and blur_probability > 0:
        gaussian = RandomGaussianBlur(blur_kernel_size(image_size), seed=seeded(5))
        layers.append(RandomApply(gaussian, blur_probability, seed=seeded(6)))
    solarize_probability = probabilities["solarize_probability"]
    if solarize_probability > 0:
        layers.append(RandomApply(Solarize(), solarize_probability, seed=seeded(7)))
    layers.append(ToUnitRange())
    return layers


@keras.saving.register_keras_serializable(package="keras_siamese")
class SimCLRAugmenter(Pipeline):
    """SimCLR's random augmentation (and its variants), per image, per replica, XLA-ready.

    In order, each drawn per image (Chen et al. 2020, appendix A): `RandomResizedCrop` (area
    `crop_area`, aspect 3/4-4/3, resized to `image_size`); `RandomFlip` (p=0.5);
    `RandomColorJitter` with p=`jitter_probability` (amounts `strength * color_jitter`, in a
    random order); `Grayscale` with p=`grayscale_probability`; `RandomGaussianBlur` with
    p=`blur_probability` when `blur` (sigma 0.1-2.0 pixels, kernel 10% of the side);
    `Solarize` with p=`solarize_probability` (BYOL); `ToUnitRange`.

    Channels (any count): 3-channel images get every operation; for 1 channel and any other
    count the colour jitter is brightness and contrast only and grayscale is left out (see
    `RandomColorJitter` and `Grayscale`). No channel is ever dropped or added.

    Input: uint8 or float in [0, 255], `(batch, height, width, channels)` of any size.
    Output: float32 in [0, 1], `(batch, *image_size, channels)`. With `training=False` the
    images are only resized (antialiased) and rescaled.

    Args:
        image_size: output `(height, width)` or an int.
        channels: channel count of the images (checked at call time).
        strength: colour-jitter strength `s` in [0, 1.25] (1.0 on ImageNet, 0.5 on CIFAR-10).
        blur: include the Gaussian blur (SimCLR: ImageNet yes, CIFAR-10 no).
        crop_area: `(min, max)` area fraction of the crop (SimCLR 0.08-1.0, SimSiam 0.2-1.0).
        flip: include the horizontal flip.
        jitter_probability: probability of the colour jitter (0.8 in every paper above).
        grayscale_probability: probability of grayscale (0.2), 3-channel images only.
        blur_probability: probability of the blur when `blur` (SimCLR 0.5; BYOL 1.0 / 0.1).
        solarize_probability: probability of solarization (BYOL 0 / 0.2; SimCLR none).
        color_jitter: jitter amounts at strength 1, (brightness, contrast, saturation, hue):
            SimCLR's (0.8, 0.8, 0.8, 0.2) by default; BYOL and DINO (0.4, 0.4, 0.2, 0.1).
        seed: integer seed; each random operation gets its own seed derived from it.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ValueError: for a bad size, range, probability or strength, and (when called) for
            images of another channel count or rank.
        TypeError: for a non-number, or (when called) images that are not integer or float.

    Example:
        >>> augmenter = SimCLRAugmenter(image_size=28, channels=1, strength=0.5, seed=0)
        >>> augmenter(np.zeros((4, 28, 28, 1), "uint8")).shape
        TensorShape([4, 28, 28, 1])
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
        channels: int = 3,
        strength: float = 1.0,
        blur: bool = False,
        crop_area: tuple[float, float] = (0.08, 1.0),
        flip: bool = True,
        jitter_probability: float = 0.8,
        grayscale_probability: float = 0.2,
        blur_probability: float = 0.5,
        solarize_probability: float = 0.0,
        color_jitter: tuple[float, float, float, float] = SIMCLR_COLOR_JITTER,
        seed: int | None = None,
        **kwargs,
    ):
        image_size = check_image_size(image_size)
        channels = validation.check_integer("channels", channels, minimum=1)
        strength = validation.check_number("strength", strength, 0.0, MAX_STRENGTH)
        crop_area = check_range("crop_area", crop_area, 1e-3, 1.0)
        probabilities = {
            name: validation.check_probability(name, value)
            for name, value in (
                ("jitter_probability", jitter_probability),
                ("grayscale_probability", grayscale_probability),
                ("blur_probability", blur_probability),
                ("solarize_probability", solarize_probability),
            )
        }
        color_jitter, amounts = _check_jitter_amounts(strength, color_jitter)
        _check_switches(blur=blur, flip=flip)
        if seed is not None:
            seed = validation.check_integer("seed", seed, minimum=0)
        kwargs.setdefault("dtype", "float32")
        layers = _operations(
            image_size, channels, crop_area, flip, amounts, blur, probabilities, seed
        )
        super().__init__(layers, **kwargs)
        self.image_size = image_size
        self.channels = channels
        self.strength = strength
        self.blur = bool(blur)
        self.crop_area = crop_area
        self.flip = bool(flip)
        self.jitter_probability = probabilities["jitter_probability"]
        self.grayscale_probability = probabilities["grayscale_probability"]
        self.blur_probability = probabilities["blur_probability"]
        self.solarize_probability = probabilities["solarize_probability"]
        self.color_jitter = color_jitter
        self.seed = seed

    def call(self, images, training=True):
        if not hasattr(images, "shape") or not hasattr(images, "dtype"):
            images = np.asarray(images)
        validation.check_image_batch(images, None)
        if images.shape[-1] != self.channels:
            raise ValueError(
                f"Argument `images` must have {self.channels} channels (the augmenter's "
                f"`channels`). Received: images.shape={tuple(images.shape)}"
            )
        return super().call(tf.convert_to_tensor(images), training=training)

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        config.update(
            {
                "image_size": self.image_size,
                "channels": self.channels,
                "strength": self.strength,
                "blur": self.blur,
                "crop_area": self.crop_area,
                "flip": self.flip,
                "jitter_probability": self.jitter_probability,
                "grayscale_probability": self.grayscale_probability,
                "blur_probability": self.blur_probability,
                "solarize_probability": self.solarize_probability,
                "color_jitter": self.color_jitter,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
