"""`vit`: a Vision Transformer encoder of images in [0, 1], from 28x28 on a CPU to ViT-S/16."""

from __future__ import annotations

import keras

from keras_siamese import validation
from keras_siamese.encoders.vision_transformer import VisionTransformer, check_pair


def vit(
    image_size: int | tuple[int, int] = 28,
    patch_size: int = 4,
    dim: int = 64,
    depth: int = 4,
    heads: int = 4,
    channels: int = 1,
    mlp_ratio: float = 4.0,
    position_embedding: str = "learned",
    pooling: str = "cls",
    pool_grid: int = 4,
    dropout: float = 0.0,
    any_size: bool = False,
    name: str = "vit",
) -> keras.Model:
    """Builds a Vision Transformer encoder (Dosovitskiy et al. 2021) returning `(batch, dim)`.

    A functional model around one `VisionTransformer` layer, taking float images in [0, 1]
    (the package's contract; the models divide by 255). Sizes of the literature:
    ViT-S/16 is `vit(224, 16, dim=384, depth=12, heads=6, channels=3)` (21.7 M weights),
    ViT-B/16 `dim=768, depth=12, heads=12`. The defaults are a ViT for 28x28 images on a CPU:
    patches of 4 (a 7x7 grid), 64 features, 4 blocks of 4 heads (0.2 M weights).

    Args:
        image_size: side or `(height, width)` of the images, multiples of `patch_size`; the
            grid the position embedding is defined on.
        patch_size: side of the square patches.
        dim: token features.
        depth: Transformer blocks.
        heads: attention heads (`dim` a multiple of it).
        channels: image channels (any count).
        mlp_ratio: the MLP's hidden width over `dim`.
        position_embedding: `"learned"` or `"sincos"` (fixed, as MAE).
        pooling: `"cls"` (class token), `"mean"` (mean of the patch tokens) or `"grid"`
            (the patch tokens averaged over `pool_grid` x `pool_grid` cells, flattened).
        pool_grid: cells per side of the `"grid"` pooling.
        dropout: dropout in the blocks.
        any_size: accept images of any size (`input_shape=(None, None, channels)`): train
            on smaller crops or multi-crop's local views and serve whole images; the
            position embedding is resized to each grid. Models then need `image_size=`.
        name: the model's name.

    Returns:
        A functional `keras.Model` from images to `(batch, dim)` (`"grid"`:
        `(batch, pool_grid**2 * dim)`); its
        `VisionTransformer` layer is `vision_transformer_of(model)`.

    Raises:
        ValueError: for sizes that are not positive integers, an image side that is not a
            multiple of `patch_size`, `dim` not a multiple of `heads`, or an unknown
            position embedding or pooling.

    Example:
        >>> encoder = vit(image_size=28, patch_size=4, dim=64, depth=4, heads=4)
        >>> encoder.output_shape
        (None, 64)
    """
    height, width = check_pair("image_size", image_size, "(height, width)", single=True)
    patch_size = validation.check_integer("patch_size", patch_size)
    channels = validation.check_integer("channels", channels)
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"Argument `image_size` must be a multiple of patch_size={patch_size} on both "
            f"sides. Received: image_size={(height, width)}"
        )
    transformer = VisionTransformer(
        patch_size,
        dim,
        depth,
        heads,
        grid_size=(height // patch_size, width // patch_size),
        mlp_ratio=mlp_ratio,
        position_embedding=position_embedding,
        pooling=pooling,
        pool_grid=pool_grid,
        dropout=dropout,
        name="vision_transformer",
    )
    shape = (None, None, channels) if any_size else (height, width, channels)
    inputs = keras.Input(shape, name="images")
    return keras.Model(inputs, transformer(inputs), name=name)


def vision_transformer_of(encoder) -> VisionTransformer:
    """The `VisionTransformer` layer of an encoder built by `vit`.

    Masked-image methods run its steps apart (`patch_tokens`, `encode_tokens`, `pool`), so
    they need the encoder to be exactly images -> `VisionTransformer`.

    Args:
        encoder: a model built by `vit` (or reloaded from one).

    Returns:
        Its `VisionTransformer` layer.

    Raises:
        TypeError: for any other encoder, naming what it is.

    Example:
        >>> vision_transformer_of(vit()).patch_size
        4
    """
    layers = [
        layer
        for layer in getattr(encoder, "layers", [])
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    if (
        isinstance(encoder, keras.Model)
        and len(layers) == 1
        and isinstance(layers[0], VisionTransformer)
        and encoder.outputs is not None
        and len(encoder.inputs) == 1
    ):
        return layers[0]
    described = [type(layer).__name__ for layer in layers] or type(encoder).__name__
    raise TypeError(
        "Argument `encoder` must be a Vision Transformer built by "
        "keras_siamese.encoders.vit (images -> VisionTransformer): masked-image modelling "
        f"drops patch tokens inside it. Received: encoder with layers {described}"
    )
