"""`from_keras_hub`: a KerasHub image backbone behind the [0, 1] contract, with its converter."""

from __future__ import annotations

import os

import keras

from keras_siamese.encoders.arguments import TOKEN_POOLING, check_pooling
from keras_siamese.encoders.pixel_preprocessing import PixelPreprocessing

_POOLING = {
    ("avg", 3): keras.layers.GlobalAveragePooling1D,
    ("avg", 4): keras.layers.GlobalAveragePooling2D,
    ("max", 3): keras.layers.GlobalMaxPooling1D,
    ("max", 4): keras.layers.GlobalMaxPooling2D,
}


def _keras_hub():
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(
            "from_keras_hub needs KerasHub. Install it with `pip install keras_siamese[hub]`, "
            "or, next to tensorflow-cpu, `pip install --no-deps keras-hub tokenizers "
            "sentencepiece` (its image backbones do not need tensorflow-text, which would "
            "install a second TensorFlow)."
        ) from error
    return keras_hub


def from_keras_hub(backbone, image_converter=None, pooling: str = "avg") -> keras.Model:
    """Wraps a KerasHub image backbone as an encoder of [0, 1] images, with its preprocessing.

    A KerasHub backbone takes the output of its `ImageConverter` (the raw [0, 255] image
    times `scale` plus `offset`, per channel), and the converter is saved in the preset next
    to the backbone. The returned encoder multiplies by 255 and applies that scale and offset
    in a `PixelPreprocessing` layer in front of the backbone, then pools its output (feature
    maps or token sequences) to `(batch, features)`, so the package's [0, 255] -> [0, 1]
    contract holds in training and export. The converter's resizing is not applied: the
    datasets resize to the encoder's input size.

    Vision Transformers (`ViTBackbone`, `DINOV2Backbone`, ...) return tokens
    `(batch, tokens, features)`: `pooling="cls"` keeps the class token (token 0, the
    representation ViT and DINOv2 were trained to give), `"avg"` averages every token (the
    class and DINOv2's register tokens included). `"avg"` stays the default because it pools
    feature maps and tokens alike. DINOv2's resized position embeddings are frozen: KerasHub
    (0.32) rebuilds them on load from the original ones, which it updates on save only when
    the trained values fell in sum (and by resampling when the sizes differ), so trained ones
    would not reload; frozen, a `.keras` or `.weights.h5` reload gives the same features. (A
    model reloaded from `.keras` has them trainable again and Keras drops its saved optimizer
    state with a warning: rebuild the encoder with `from_keras_hub` to keep training.)

    Nothing is downloaded: pass a local preset directory (written by `save_to_preset` or
    fetched beforehand) or objects built from it or from a config.

    Args:
        backbone: a `keras_hub.models.Backbone` with one image input of fixed size (built with
            `image_shape=(height, width, channels)`), or the path of a local preset directory
            (its backbone and, unless `image_converter` is given, its image converter are
            loaded).
        image_converter: the backbone's `keras_hub.layers.ImageConverter` (e.g.
            `ImageConverter.from_preset(preset_dir)`, or `ImageConverter(scale=1/255)` for a
            backbone trained on [0, 1] images). Required with a backbone object, which does
            not carry its preprocessing: guessing it trains silently on the wrong range.
        pooling: `"avg"` or `"max"` over the spatial positions or tokens, or `"cls"`: the
            class token (token 0) of a token sequence.

    Returns:
        A functional `keras.Model` named `<backbone name>_encoder`, saving and reloading
        through `.keras`.

    Raises:
        ImportError: if keras-hub is not installed.
        TypeError: for a backbone or converter of the wrong type.
        ValueError: for a missing converter, a preset path that is not a local directory,
            a backbone without one fixed-size image input, or `"cls"` pooling of feature maps
            or of a ViT built without a class token.

    Example:
        >>> encoder = from_keras_hub("presets/vit_tiny", pooling="cls")  # a local preset
        >>> encoder.output_shape
        (None, 192)
    """
    keras_hub = _keras_hub()
    pooling = check_pooling(pooling, TOKEN_POOLING)
    if isinstance(backbone, (str, os.PathLike)):
        backbone, image_converter = _from_preset(keras_hub, backbone, image_converter)
    _check_types(keras_hub, backbone, image_converter)
    input_shape = _image_input_shape(backbone)
    scale = 1.0 if image_converter.scale is None else image_converter.scale
    offset = 0.0 if image_converter.offset is None else image_converter.offset

    inputs = keras.Input(input_shape, name="images")
    pixels = PixelPreprocessing(
        scale=_times_255(scale), offset=_as_floats(offset), name="preprocessing"
    )(inputs)
    # DINOv2 takes a dict {"images": ...}: pass it so, not as a bare tensor Keras warns about.
    structure = backbone.input
    if isinstance(structure, dict):
        pixels = {key: pixels for key in structure}
    outputs = _pool(backbone(pixels), pooling, backbone)
    _freeze_resized_position_embeddings(backbone)
    return keras.Model(inputs, outputs, name=f"{backbone.name}_encoder")


def _from_preset(keras_hub, preset: str | os.PathLike, image_converter) -> tuple:
    """The backbone and (unless given) the image converter of a local preset directory."""
    preset = os.fspath(preset)
    if not os.path.isfile(os.path.join(preset, "config.json")):
        raise ValueError(
            "Argument `backbone` as a string must be a local KerasHub preset directory "
            "(with config.json); preset names would be downloaded, which keras_siamese "
            f"never does at run time. Received: backbone={preset!r}"
        )
    backbone = keras_hub.models.Backbone.from_preset(preset)
    if image_converter is None:
        if not os.path.isfile(os.path.join(preset, "image_converter.json")):
            raise ValueError(
                f"The preset {preset!r} has no image_converter.json; pass "
                "`image_converter` explicitly. Received: image_converter=None"
            )
        image_converter = keras_hub.layers.ImageConverter.from_preset(preset)
    return backbone, image_converter


def _check_types(keras_hub, backbone, image_converter) -> None:
    if not isinstance(backbone, keras_hub.models.Backbone):
        raise TypeError(
            "Argument `backbone` must be a keras_hub.models.Backbone or a local preset "
            f"directory. Received: backbone of type {type(backbone).__name__}"
        )
    if image_converter is None:
        raise ValueError(
            "A KerasHub backbone does not carry its preprocessing: pass its `image_converter` "
            "(`keras_hub.layers.ImageConverter.from_preset(preset_dir)`, or "
            "`keras_hub.layers.ImageConverter(scale=..., offset=...)` with the values it was "
            "trained with). Received: image_converter=None"
        )
    if not isinstance(image_converter, keras_hub.layers.ImageConverter):
        raise TypeError(
            "Argument `image_converter` must be a keras_hub.layers.ImageConverter. "
            f"Received: image_converter of type {type(image_converter).__name__}"
        )


def _pool(outputs: keras.KerasTensor, pooling: str, backbone) -> keras.KerasTensor:
    """`(batch, features)` from the backbone's features, tokens or feature maps."""
    rank = len(outputs.shape)
    if rank == 2:
        return outputs
    if pooling == "cls":
        return _class_token(outputs, backbone)
    if (pooling, rank) not in _POOLING:
        raise ValueError(
            f"Backbone {backbone.name!r} returns outputs of shape {tuple(outputs.shape)}; "
            "expected (batch, features), tokens (batch, tokens, features) or feature maps. "
            f"Received: backbone={backbone.name!r}"
        )
    return _POOLING[(pooling, rank)](name="pool")(outputs)


def _class_token(tokens: keras.KerasTensor, backbone) -> keras.KerasTensor:
    """Token 0 of `(batch, tokens, features)`, with built-in layers (no Lambda)."""
    shape = tuple(tokens.shape)
    if len(shape) != 3 or shape[1] is None:
        raise ValueError(
            "pooling='cls' takes the class token (token 0) of a token sequence (batch, "
            f"tokens, features); backbone {backbone.name!r} returns outputs of shape {shape}. "
            "Use pooling='avg' or 'max' for feature maps. Received: pooling='cls'"
        )
    if getattr(backbone, "use_class_token", True) is False:
        raise ValueError(
            f"Backbone {backbone.name!r} was built with use_class_token=False: its token 0 "
            "is a patch. Use pooling='avg' or 'max'. Received: pooling='cls'"
        )
    first = keras.layers.Cropping1D((0, shape[1] - 1), name="cls_token")(tokens)
    return keras.layers.Reshape((shape[2],), name="pool")(first)


def _freeze_resized_position_embeddings(backbone) -> None:
    """Freezes DINOv2's `interpolated_position_embeddings` (see `from_keras_hub`)."""
    for layer in backbone.layers:
        resized = getattr(layer, "interpolated_position_embeddings", None)
        if resized is not None and hasattr(layer, "position_embeddings"):
            resized.trainable = False


def _image_input_shape(backbone) -> tuple[int, int, int]:
    inputs = backbone.inputs
    shape = tuple(inputs[0].shape[1:]) if len(inputs) == 1 else ()
    if len(shape) != 3 or any(side is None for side in shape):
        found = [tuple(tensor.shape) for tensor in inputs]
        raise ValueError(
            "Argument `backbone` must take one image input of fixed size (build it with "
            f"image_shape=(height, width, channels)). Received: backbone inputs {found}"
        )
    return tuple(int(side) for side in shape)


def _as_floats(value):
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value]
    return float(value)


def _times_255(value):
    value = _as_floats(value)
    if isinstance(value, list):
        return [255.0 * v for v in value]
    return 255.0 * value
