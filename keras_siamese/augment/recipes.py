"""The augmentation recipes of the methods, as functions returning saveable layers.

Defaults are each paper's ImageNet recipe. Adaptations for small images are arguments the
caller sets (the models do, from the encoder's input size): `strength=0.5` and `blur=False` are
SimCLR's CIFAR-10 setup (Chen et al. 2020, appendix B.9). The one size-dependent default is
`blur=None`: blur when the smaller side of the view is over 64 pixels (ImageNet-sized), not for
32x32 or 28x28 images, where a 3-pixel kernel of sigma up to 2 wipes out the content.
"""

from __future__ import annotations

from keras_siamese import validation
from keras_siamese.augment.base import check_image_size, derive_seed
from keras_siamese.augment.multi_crop import MultiCrop
from keras_siamese.augment.simclr_augmenter import SimCLRAugmenter

# Above this smaller side (pixels) `blur=None` blurs, as the ImageNet recipes do.
BLUR_MIN_SIDE = 64
# SwAV's local crops: 96 pixels for 224-pixel global crops.
LOCAL_SIZE_RATIO = 96 / 224
# BYOL's and DINO's colour jitter amounts (brightness, contrast, saturation, hue).
BYOL_COLOR_JITTER = (0.4, 0.4, 0.2, 0.1)


def default_blur(image_size) -> bool:
    """`blur=None` resolved: True when the smaller side exceeds 64 pixels.

    Example:
        >>> default_blur(224), default_blur((32, 32))
        (True, False)
    """
    return min(check_image_size(image_size)) > BLUR_MIN_SIDE


def _blur(blur, image_size) -> bool:
    return default_blur(image_size) if blur is None else blur


def simclr_augmenter(
    image_size: int | tuple[int, int],
    channels: int = 3,
    strength: float = 1.0,
    blur: bool | None = None,
    crop_area: tuple[float, float] = (0.08, 1.0),
    seed: int | None = None,
    **kwargs,
) -> SimCLRAugmenter:
    """SimCLR's augmentation (Chen et al. 2020, appendix A).

    Crop of area 0.08-1.0 (aspect 3/4-4/3), flip, colour jitter of strength `s` (0.8 s, 0.8 s,
    0.8 s, 0.2 s) with p=0.8 in a random order, grayscale p=0.2, Gaussian blur p=0.5.

    Args:
        image_size: output `(height, width)` or an int.
        channels: channel count of the images (any; see `SimCLRAugmenter`).
        strength: colour strength `s` (paper: 1.0 on ImageNet, 0.5 on CIFAR-10).
        blur: include the blur; None: when the smaller side is over 64 pixels (paper: ImageNet
            yes, CIFAR-10 no).
        crop_area: `(min, max)` crop area fraction (paper: (0.08, 1.0)).
        seed: integer seed.
        **kwargs: further `SimCLRAugmenter` arguments (`flip`, `jitter_probability`,
            `grayscale_probability`, `blur_probability`, `solarize_probability`,
            `color_jitter`, `name`).

    Returns:
        A `SimCLRAugmenter`: uint8/float [0, 255] in, float32 [0, 1] out.

    Example:
        >>> augmenter = simclr_augmenter(32, strength=0.5)  # CIFAR-10: no blur
    """
    return SimCLRAugmenter(
        image_size,
        channels=channels,
        strength=strength,
        blur=_blur(blur, image_size),
        crop_area=crop_area,
        seed=seed,
        **kwargs,
    )


def simsiam_augmenter(
    image_size: int | tuple[int, int],
    channels: int = 3,
    strength: float = 0.5,
    blur: bool | None = None,
    crop_area: tuple[float, float] = (0.2, 1.0),
    seed: int | None = None,
    **kwargs,
) -> SimCLRAugmenter:
    """SimSiam's augmentation (Chen & He 2021, appendix A).

    "RandomResizedCrop(scale=(0.2, 1.0)), ColorJitter(0.4, 0.4, 0.4, 0.1) with p=0.8 (strength
    0.5 of SimCLR's), RandomGrayscale(p=0.2), GaussianBlur(sigma 0.1-2.0) with p=0.5,
    RandomHorizontalFlip".

    Args:
        image_size: output `(height, width)` or an int.
        channels: channel count of the images.
        strength: colour strength (paper: 0.5, i.e. jitter (0.4, 0.4, 0.4, 0.1)).
        blur: include the blur with p=0.5; None: when the smaller side is over 64 pixels (the
            ImageNet recipe blurs; pass False for small images explicitly if you prefer).
        crop_area: `(min, max)` crop area fraction (paper: (0.2, 1.0)).
        seed: integer seed.
        **kwargs: further `SimCLRAugmenter` arguments.

    Returns:
        A `SimCLRAugmenter`.

    Example:
        >>> simsiam_augmenter(224).blur, simsiam_augmenter(28, channels=1).blur
        (True, False)
    """
    return SimCLRAugmenter(
        image_size,
        channels=channels,
        strength=strength,
        blur=_blur(blur, image_size),
        crop_area=crop_area,
        seed=seed,
        **kwargs,
    )


def byol_augmenters(
    image_size: int | tuple[int, int],
    channels: int = 3,
    strength: float = 1.0,
    blur: bool | None = None,
    crop_area: tuple[float, float] = (0.08, 1.0),
    blur_probabilities: tuple[float, float] = (1.0, 0.1),
    solarize_probabilities: tuple[float, float] = (0.0, 0.2),
    seed: int | None = None,
    **kwargs,
) -> tuple[SimCLRAugmenter, SimCLRAugmenter]:
    """BYOL's asymmetric pair of augmentations (Grill et al. 2020, appendix B, table 6).

    Both views: crop 0.08-1.0, flip, colour jitter (0.4, 0.4, 0.2, 0.1) with p=0.8, grayscale
    p=0.2. Blur p=1.0 on the first view and 0.1 on the second; solarization p=0 and 0.2.

    Args:
        image_size: output `(height, width)` or an int.
        channels: channel count of the images.
        strength: scales BYOL's jitter amounts (1.0 in the paper).
        blur: include the blur; None: when the smaller side is over 64 pixels.
        crop_area: `(min, max)` crop area fraction.
        blur_probabilities: blur probability of view a and view b (paper: 1.0, 0.1).
        solarize_probabilities: solarization probability of view a and b (paper: 0.0, 0.2).
        seed: integer seed (the two views get different derived seeds).
        **kwargs: further `SimCLRAugmenter` arguments, applied to both.

    Returns:
        `(view_a_augmenter, view_b_augmenter)`, two `SimCLRAugmenter`s.

    Example:
        >>> view_a, view_b = byol_augmenters(224)
        >>> view_a.blur_probability, view_b.solarize_probability
        (1.0, 0.2)
    """
    pairs = {"blur_probabilities": blur_probabilities}
    pairs["solarize_probabilities"] = solarize_probabilities
    for name, pair in pairs.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(
                f"Argument `{name}` must be a pair (view a, view b) of probabilities. "
                f"Received: {name}={pair!r}"
            )
        for value in pair:
            validation.check_probability(name, value)
    kwargs.setdefault("color_jitter", BYOL_COLOR_JITTER)
    return tuple(
        SimCLRAugmenter(
            image_size,
            channels=channels,
            strength=strength,
            blur=_blur(blur, image_size),
            crop_area=crop_area,
            blur_probability=blur_probabilities[view],
            solarize_probability=solarize_probabilities[view],
            seed=derive_seed(seed, view),
            **kwargs,
        )
        for view in (0, 1)
    )


def multi_crop_augmenter(
    global_size: int | tuple[int, int],
    local_size: int | tuple[int, int] | None = None,
    global_views: int = 2,
    local_views: int = 6,
    channels: int = 3,
    global_crop_area: tuple[float, float] = (0.14, 1.0),
    local_crop_area: tuple[float, float] = (0.05, 0.14),
    strength: float = 1.0,
    blur: bool | None = None,
    seed: int | None = None,
    **kwargs,
) -> MultiCrop:
    """SwAV's multi-crop (Caron et al. 2020, section 3.2 and appendix A).

    "Two standard resolution crops" (224, area 0.14-1.0) and `local_views` "low resolution
    crops" (96, area 0.05-0.14), each with SimCLR's colour distortion (strength 1.0) and blur.
    DINO (Caron et al. 2021): `global_crop_area=(0.4, 1.0)`, `local_crop_area=(0.05, 0.4)`,
    `local_views=8`, `color_jitter=(0.4, 0.4, 0.2, 0.1)`.

    Args:
        global_size: size of the global views, e.g. 224 (or the encoder's input size).
        local_size: size of the local views; None: SwAV's 96/224 of `global_size` (96 for
            224, 14 for 32, 12 for 28).
        global_views: number of global views (SwAV, DINO: 2).
        local_views: number of local views (SwAV: 6; DINO: 8).
        channels: channel count of the images.
        global_crop_area: `(min, max)` area fraction of the global crops.
        local_crop_area: `(min, max)` area fraction of the local crops.
        strength: colour strength.
        blur: include the blur (p=0.5); None: for each kind of view whose smaller side is
            over 64 pixels.
        seed: integer seed (global and local augmenters get different derived seeds).
        **kwargs: further `SimCLRAugmenter` arguments, applied to both kinds of view.

    Returns:
        A `MultiCrop` whose call returns `global_views + local_views` views, global first.

    Example:
        >>> crops = multi_crop_augmenter(32, 16, local_views=4)
        >>> crops.global_views, crops.local_views, crops.local_augmenter.image_size
        (2, 4, (16, 16))
    """
    global_size = check_image_size(global_size, "global_size")
    if local_size is None:
        local_size = tuple(max(1, round(side * LOCAL_SIZE_RATIO)) for side in global_size)
    local_size = check_image_size(local_size, "local_size")
    augmenters = [
        SimCLRAugmenter(
            size,
            channels=channels,
            strength=strength,
            blur=_blur(blur, size),
            crop_area=area,
            seed=derive_seed(seed, index),
            **kwargs,
        )
        for index, (size, area) in enumerate(
            ((global_size, global_crop_area), (local_size, local_crop_area))
        )
    ]
    return MultiCrop(*augmenters, global_views=global_views, local_views=local_views)
