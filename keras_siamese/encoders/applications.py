"""`from_keras_applications`: a `keras.applications` backbone behind the [0, 1] contract."""

from __future__ import annotations

import difflib
import importlib
import os

import keras
import numpy as np

from keras_siamese.encoders.arguments import check_input_shape, check_pooling
from keras_siamese.encoders.pixel_preprocessing import PixelPreprocessing


def application_names() -> list[str]:
    """The model constructors of `keras.applications` (`"ResNet50V2"`, `"EfficientNetB0"`, ...)."""
    return sorted(
        name
        for name in dir(keras.applications)
        if name[:1].isupper() and callable(getattr(keras.applications, name))
    )


def from_keras_applications(
    name: str,
    input_shape: tuple[int, int, int],
    weights: str | os.PathLike | None = None,
    pooling: str = "avg",
) -> keras.Model:
    """Wraps a `keras.applications` model as an encoder of [0, 1] images, with its preprocessing.

    keras_siamese's encoders receive float images in [0, 1]; each `keras.applications`
    family expects its own input, produced by its `preprocess_input` from [0, 255] pixels
    (ResNet: BGR minus the ImageNet mean; ResNetV2, MobileNet(V2), Inception, Xception:
    [-1, 1]; DenseNet: ImageNet mean/std; EfficientNet(V2), ConvNeXt, MobileNetV3: raw
    [0, 255], normalised inside the model). The returned encoder multiplies by 255 and applies
    exactly that map, as a `PixelPreprocessing` layer in front of the backbone: the map is
    read off the family's own `preprocess_input` (a per-channel affine map, possibly with
    RGB -> BGR, checked on random pixels), so pretrained weights see the range they were
    trained on, in training, evaluation and export alike.

    Nothing is downloaded: `weights` is None (random initialisation) or the path of a weights
    file for the model without its top, fetched beforehand (e.g.
    `resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5`).

    Args:
        name: a constructor of `keras.applications`, e.g. `"ResNet50V2"`, `"EfficientNetV2B0"`,
            `"ConvNeXtTiny"`, `"MobileNetV3Small"`, `"DenseNet121"`.
        input_shape: `(height, width, channels)`; families whose preprocessing normalises
            RGB channels (ResNet, DenseNet, ConvNeXt, ...) need 3 channels.
        weights: None, or the path of a local weights file (no top).
        pooling: `"avg"` or `"max"` global pooling of the last feature maps.

    Returns:
        A functional `keras.Model` named `<name>_encoder` from `[batch, *input_shape]` images in
        [0, 1] to `(batch, features)`, saving and reloading through `.keras`.

    Raises:
        ValueError: for an unknown name, `weights="imagenet"` (a download), a bad input shape
            or pooling, or a family whose preprocessing does not take the channel count.
        FileNotFoundError: for a weights path that does not exist.

    Example:
        >>> encoder = from_keras_applications("ResNet50V2", input_shape=(32, 32, 3))
        >>> encoder.output_shape
        (None, 2048)
    """
    constructor = _constructor(name)
    input_shape = check_input_shape(input_shape)
    pooling = check_pooling(pooling)
    weights = _check_weights(weights)
    preprocess = importlib.import_module(constructor.__module__).preprocess_input
    scale, offset, reverse = preprocessing_of(preprocess, input_shape[-1], name)

    inputs = keras.Input(input_shape, name="images")
    pixels = PixelPreprocessing(
        scale=_compact(255.0 * scale),
        offset=_compact(offset),
        reverse_channels=reverse,
        name="preprocessing",
    )(inputs)
    try:
        backbone = constructor(
            include_top=False, weights=weights, input_shape=input_shape, pooling=pooling
        )
    except ValueError as error:
        raise ValueError(f"keras.applications.{name} cannot be built: {error}") from error
    features = backbone(pixels)
    return keras.Model(inputs, features, name=f"{name.lower()}_encoder")


def preprocessing_of(preprocess, channels: int, name: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Reads a `preprocess_input` function as a per-channel affine map of [0, 255] pixels.

    Returns `(scale, offset, reverse_channels)` such that `preprocess_input(x)` equals
    `reverse(x) * scale + offset` for every `x` in [0, 255] with `channels` channels.

    Raises:
        ValueError: if the function does not take `channels` channels or is not such a map.
    """
    basis = np.concatenate([np.zeros((1, channels)), 255.0 * np.eye(channels)])
    probe = basis.reshape(channels + 1, 1, 1, channels).astype("float32")
    rng = np.random.default_rng(0)
    check = rng.uniform(0.0, 255.0, (2, 3, 4, channels)).astype("float32")
    try:
        response = np.asarray(keras.ops.convert_to_numpy(preprocess(probe.copy())), "float64")
        checked = np.asarray(keras.ops.convert_to_numpy(preprocess(check.copy())), "float64")
    except (ValueError, TypeError, IndexError) as error:
        raise ValueError(
            f"keras.applications.{name}'s preprocess_input does not take {channels}-channel "
            f"images ({str(error).splitlines()[0]}): it normalises RGB. Build it with 3 "
            "channels, or use encoders.resnet for other channel counts. "
            f"Received: input_shape[-1]={channels}"
        ) from error
    offset = response[0, 0, 0]
    matrix = (response[1:, 0, 0] - offset) / 255.0  # [input channel, output channel]
    reverse = not _is_diagonal(matrix) and _is_diagonal(matrix[::-1])
    if reverse:
        matrix = matrix[::-1]
    scale = np.diag(matrix).copy()
    expected = (check[..., ::-1] if reverse else check) * scale + offset
    if not np.allclose(checked, expected, rtol=1e-5, atol=1e-4):
        raise ValueError(
            f"keras.applications.{name}'s preprocess_input is not a per-channel affine map of "
            "the pixels, so keras_siamese cannot fold it into the encoder. "
            f"Received: name={name!r}"
        )
    per_channel = reverse or not (np.allclose(scale, scale[0]) and np.allclose(offset, offset[0]))
    if per_channel and channels != 3:
        raise ValueError(
            f"keras.applications.{name}'s preprocess_input normalises the red, green and blue "
            f"channels each its own way, which means nothing for {channels} channels. Build it "
            "with 3 channels, or use encoders.resnet (or a family with [-1, 1] or [0, 255] "
            f"inputs, e.g. 'ResNet50V2') for other channel counts. Received: "
            f"input_shape[-1]={channels}"
        )
    return scale, offset, bool(reverse)


def _is_diagonal(matrix: np.ndarray) -> bool:
    return np.allclose(matrix - np.diag(np.diag(matrix)), 0.0, atol=1e-6)


def _compact(values: np.ndarray) -> float | list[float]:
    """One float when every channel has the same value, else one per channel."""
    values = [float(value) for value in np.asarray(values, "float64")]
    return values[0] if np.allclose(values, values[0], rtol=0.0, atol=0.0) else values


def _constructor(name):
    names = application_names()
    if not isinstance(name, str) or name not in names:
        close = difflib.get_close_matches(str(name), names, n=5)
        hint = f" Close matches: {close}." if close else ""
        raise ValueError(
            f"Argument `name` must be a model of keras.applications (e.g. 'ResNet50V2', "
            f"'EfficientNetV2B0', 'ConvNeXtTiny').{hint} Received: name={name!r}"
        )
    return getattr(keras.applications, name)


def _check_weights(weights):
    if weights is None:
        return None
    if weights == "imagenet":
        raise ValueError(
            "keras_siamese never downloads at run time: pass the path of the model's weights "
            "file without its top (the `*_notop.h5` or `.weights.h5` file, fetched beforehand), "
            "or None for random initialisation. Received: weights='imagenet'"
        )
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"Argument `weights` must be None or a file path. Received: weights={weights!r}"
        )
    weights = os.fspath(weights)
    if not os.path.isfile(weights):
        raise FileNotFoundError(
            f"Argument `weights` must be an existing weights file. Received: weights={weights!r}"
        )
    return weights
