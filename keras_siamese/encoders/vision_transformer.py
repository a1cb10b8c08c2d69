"""`VisionTransformer`: the ViT of Dosovitskiy et al. 2021 as one Keras layer, in parts.

The layer's three steps are public because the masked-image methods run them apart:
`patch_tokens` (patch embedding plus position embedding), `encode_tokens` (class token, the
Transformer blocks, the final LayerNorm) and `pool` (class token or mean of the patch
tokens). MAE (`keras_siamese.MAE`) drops 75% of the patch tokens between the first two, so
the blocks see the visible patches only. `keras_siamese.encoders.vit` wraps the layer in the
functional encoder the models take.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.encoders.patches import sincos_position_embedding
from keras_siamese.encoders.transformer_block import TransformerBlock

POSITION_EMBEDDINGS = ("learned", "sincos")
POOLINGS = ("cls", "mean", "grid")


def _check_choice(name: str, value, choices: tuple) -> str:
    if value not in choices:
        raise ValueError(f"Argument `{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


def check_pair(name: str, value, meaning: str, single: bool = False) -> tuple[int, int]:
    """`value` as two positive ints (`meaning` names them); `single`: an int is both."""
    if single and isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        first, second = value
    except (TypeError, ValueError):
        raise ValueError(
            f"Argument `{name}` must be {'an int or ' if single else ''}{meaning}. "
            f"Received: {name}={value!r}"
        ) from None
    return validation.check_integer(name, first), validation.check_integer(name, second)


@keras.saving.register_keras_serializable(package="keras_siamese")
class VisionTransformer(keras.layers.Layer):
    """Vision Transformer (Dosovitskiy et al. 2021): patches -> tokens -> Transformer -> pooled.

    "We reshape the image into a sequence of flattened 2D patches ... map to D dimensions
    with a trainable linear projection ... prepend a learnable embedding to the sequence of
    embedded patches ... Position embeddings are added to the patch embeddings" (section
    3.1). The blocks are pre-norm (`TransformerBlock`), followed by a final LayerNorm.

    The position embedding is defined on a `grid_size` grid of patches. Images whose grid
    differs (smaller training views, multi-crop's local crops, whole images served after
    training on crops) get it resized bicubically, as DINO does for other resolutions, so
    the positions keep their meaning relative to the image. Image sides that are not
    multiples of `patch_size` lose their last partial patch.

    Args:
        patch_size: side of the square patches.
        dim: token features D.
        depth: Transformer blocks.
        heads: attention heads per block (`dim` a multiple of it).
        grid_size: `(rows, columns)` of patches the position embedding is defined on.
        mlp_ratio: the MLP's hidden width over `dim`.
        position_embedding: `"learned"` (ViT, DINO; the class token gets one too) or
            `"sincos"` (fixed 2-D sine-cosine, MAE and MoCo v3; none on the class token).
        pooling: the representation: `"cls"` (the class token's output), `"mean"` (the
            mean of the patch tokens' outputs, MAE's fine-tuning choice) or `"grid"` (the
            patch tokens' outputs as a map, averaged over a `pool_grid` x `pool_grid` grid
            of cells and flattened: `pool_grid**2 * dim` features that keep where each
            pattern is, as `resnet(grid_size=...)` does with its last feature map).
        pool_grid: cells per side of the `"grid"` pooling.
        dropout: dropout in the blocks.
        layer_norm_epsilon: epsilon of every LayerNorm.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
        >>> layer = VisionTransformer(4, dim=32, depth=2, heads=4, grid_size=(7, 7))
        >>> layer(np.zeros((2, 28, 28, 1), "float32")).shape
        TensorShape([2, 32])
    """

    def __init__(
        self,
        patch_size: int,
        dim: int,
        depth: int,
        heads: int,
        grid_size: tuple[int, int],
        mlp_ratio: float = 4.0,
        position_embedding: str = "learned",
        pooling: str = "cls",
        pool_grid: int = 4,
        dropout: float = 0.0,
        layer_norm_epsilon: float = 1e-6,
        **kwargs,
    ):
        patch_size = validation.check_integer("patch_size", patch_size)
        depth = validation.check_integer("depth", depth)
        grid_size = check_pair("grid_size", grid_size, "(rows, columns) of patches")
        _check_choice("position_embedding", position_embedding, POSITION_EMBEDDINGS)
        _check_choice("pooling", pooling, POOLINGS)
        pool_grid = validation.check_integer("pool_grid", pool_grid)
        if position_embedding == "sincos" and dim % 4:
            raise ValueError(
                "Argument `dim` must be a multiple of 4 with position_embedding='sincos'. "
                f"Received: dim={dim!r}"
            )
        blocks = [
            TransformerBlock(dim, heads, mlp_ratio, dropout, layer_norm_epsilon, name=f"block{i}")
            for i in range(depth)
        ]
        super().__init__(**kwargs)
        self.patch_size, self.depth, self.grid_size = patch_size, depth, grid_size
        self.position_embedding, self.pooling = position_embedding, pooling
        self.pool_grid = pool_grid
        self.grid_pooling = keras.layers.AdaptiveAveragePooling2D((pool_grid, pool_grid))
        self.dim, self.heads, self.mlp_ratio = blocks[0].dim, heads, blocks[0].mlp_ratio
        self.dropout, self.layer_norm_epsilon = blocks[0].dropout, blocks[0].layer_norm_epsilon
        self.blocks = blocks
        self.patch_embedding = keras.layers.Conv2D(
            self.dim, self.patch_size, strides=self.patch_size, name="patch_embedding"
        )
        self.norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="norm")

    def build(self, input_shape):
        self.patch_embedding.build(tuple(input_shape))
        initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        self.class_token = self.add_weight(
            shape=(1, 1, self.dim), initializer=initializer, name="class_token"
        )
        rows, columns = self.grid_size
        if self.position_embedding == "learned":
            self.positions = self.add_weight(
                shape=(rows * columns, self.dim), initializer=initializer, name="positions"
            )
            self.class_position = self.add_weight(
                shape=(1, 1, self.dim), initializer=initializer, name="class_position"
            )
        else:
            table = sincos_position_embedding(rows, columns, self.dim)
            self.positions = self.add_weight(
                shape=table.shape,
                initializer=keras.initializers.Constant(table),
                trainable=False,
                name="positions",
            )
            self.class_position = None
        for block in self.blocks:
            block.build((None, None, self.dim))
        self.norm.build((None, None, self.dim))
        self.built = True

    # ----------------------------------------------------------------- the three steps

    def position_table(self, rows, columns) -> tf.Tensor:
        """`(1, rows * columns, dim)` position embeddings, resized when the grid differs."""
        table = tf.reshape(tf.convert_to_tensor(self.positions), (1, *self.grid_size, self.dim))
        known = isinstance(rows, int) and isinstance(columns, int)
        if not known or (rows, columns) != self.grid_size:
            table = tf.image.resize(table, tf.stack([rows, columns]), method="bicubic")
        return tf.reshape(table, (1, -1, self.dim))

    def patch_tokens(self, images) -> tf.Tensor:
        """`(batch, patches, dim)`: the embedded patches plus their position embeddings."""
        maps = self.patch_embedding(images)
        shape = tf.shape(maps)
        rows = maps.shape[1] if maps.shape[1] is not None else shape[1]
        columns = maps.shape[2] if maps.shape[2] is not None else shape[2]
        tokens = tf.reshape(maps, (shape[0], -1, self.dim))
        return tokens + tf.cast(self.position_table(rows, columns), tokens.dtype)

    def encode_tokens(self, tokens, training=None) -> tf.Tensor:
        """`(batch, 1 + n, dim)`: the class token and `tokens` through the blocks and norm."""
        class_token = tf.convert_to_tensor(self.class_token)
        if self.class_position is not None:
            class_token = class_token + tf.convert_to_tensor(self.class_position)
        class_tokens = tf.tile(tf.cast(class_token, tokens.dtype), (tf.shape(tokens)[0], 1, 1))
        tokens = tf.concat([class_tokens, tokens], axis=1)
        for block in self.blocks:
            tokens = block(tokens, training=training)
        return self.norm(tokens)

    def token_grid(self, images) -> tuple:
        """`(rows, columns)` of patches of `images` (Python ints when the shape is known)."""
        shape = tf.shape(images)
        sides = [images.shape[axis] for axis in (1, 2)]
        return tuple(
            side // self.patch_size if side is not None else shape[axis] // self.patch_size
            for axis, side in zip((1, 2), sides, strict=True)
        )

    def pool(self, encoded, grid=None) -> tf.Tensor:
        """The representation of `encode_tokens`' output: class token, patch-token mean, or
        the patch tokens averaged over a grid (`grid`: the `token_grid` they came from)."""
        if self.pooling == "cls":
            return encoded[:, 0]
        if self.pooling == "mean":
            return tf.reduce_mean(encoded[:, 1:], axis=1)
        if grid is None:
            raise ValueError(
                "Argument `grid` must be the (rows, columns) of the patch tokens with "
                f"pooling='grid'. Received: grid={grid!r}"
            )
        batch = tf.shape(encoded)[0]
        maps = tf.reshape(encoded[:, 1:], tf.stack([batch, grid[0], grid[1], self.dim]))
        cells = self.grid_pooling(maps)
        return tf.reshape(cells, (-1, self.pool_grid * self.pool_grid * self.dim))

    def call(self, images, training=None):
        encoded = self.encode_tokens(self.patch_tokens(images), training=training)
        return self.pool(encoded, self.token_grid(images))

    def compute_output_shape(self, input_shape):
        if self.pooling == "grid":
            return (input_shape[0], self.pool_grid * self.pool_grid * self.dim)
        return (input_shape[0], self.dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "patch_size": self.patch_size,
                "dim": self.dim,
                "depth": self.depth,
                "heads": self.heads,
                "grid_size": self.grid_size,
                "mlp_ratio": self.mlp_ratio,
                "position_embedding": self.position_embedding,
                "pooling": self.pooling,
                "pool_grid": self.pool_grid,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
