"""`MAEDecoder`: the lightweight decoder of a masked autoencoder, from visible tokens to pixels.

He et al. 2022 (MAE, https://arxiv.org/abs/2111.06377), section 3: "The input to the MAE
decoder is the full set of tokens consisting of (i) encoded visible patches, and (ii) mask
tokens ... We add positional embeddings to all tokens in this full set ... The last layer of
the decoder is a linear projection whose number of output channels equals the number of
pixel values in a patch." `keras_siamese.MAE` runs it after the encoder's blocks.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.encoders.patches import sincos_position_embedding
from keras_siamese.encoders.transformer_block import TransformerBlock


def _check_grid(grid_size) -> tuple[int, int]:
    pair = tuple(grid_size) if isinstance(grid_size, (tuple, list)) else ()
    if len(pair) != 2:
        raise ValueError(
            "Argument `grid_size` must be (rows, columns) of patches. "
            f"Received: grid_size={grid_size!r}"
        )
    return (
        validation.check_integer("grid_size", pair[0]),
        validation.check_integer("grid_size", pair[1]),
    )


@keras.saving.register_keras_serializable(package="keras_siamese")
class MAEDecoder(keras.layers.Layer):
    """MAE's decoder: encoded visible tokens + mask tokens -> the pixels of every patch.

    In order (MAE's reference `forward_decoder`): a linear embedding of the encoder's
    tokens (class token first, then the visible patches in their shuffled order) to
    `decoder_dim`; one learned mask token repeated for every masked patch; the patch tokens
    put back in the grid's row-major order (`tf.gather(..., batch_dims=1)` with the restore
    ids of the masking); the fixed 2-D sine-cosine position embedding of the grid (zero on
    the class token); `depth` pre-norm `TransformerBlock`s; a LayerNorm; a linear
    prediction of the `patch_size**2 * channels` pixels of each patch. The class token's
    output is dropped. The paper's decoder is "8 blocks and a width of 512-d" with 16 heads
    ("lightweight ... <10% computation per token vs. the encoder").

    Args:
        patch_size: side of the square patches.
        channels: image channels (the prediction has `patch_size**2 * channels` values).
        grid_size: `(rows, columns)` of patches of the images it reconstructs.
        decoder_dim: token features of the decoder (paper: 512).
        depth: Transformer blocks (paper: 8).
        heads: attention heads per block (paper: 16); `decoder_dim` a multiple of it.
        mlp_ratio: the blocks' MLP width over `decoder_dim` (paper: 4).
        layer_norm_epsilon: epsilon of every LayerNorm.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ValueError: for sizes that are not positive integers, `decoder_dim` not a multiple
            of `heads` or of 4 (the sine-cosine embedding).

    Example:
        >>> decoder = MAEDecoder(4, channels=1, grid_size=(7, 7), decoder_dim=32, depth=1,
        ...                      heads=4)
        >>> encoded = tf.zeros((2, 1 + 12, 64))
        >>> restore = tf.tile(tf.range(49)[None], (2, 1))
        >>> decoder(encoded, restore).shape
        TensorShape([2, 49, 16])
    """

    def __init__(
        self,
        patch_size: int,
        channels: int,
        grid_size: tuple[int, int],
        decoder_dim: int = 512,
        depth: int = 8,
        heads: int = 16,
        mlp_ratio: float = 4.0,
        layer_norm_epsilon: float = 1e-6,
        **kwargs,
    ):
        patch_size = validation.check_integer("patch_size", patch_size)
        channels = validation.check_integer("channels", channels)
        grid_size = _check_grid(grid_size)
        decoder_dim = validation.check_integer("decoder_dim", decoder_dim)
        depth = validation.check_integer("depth", depth)
        if decoder_dim % 4:
            raise ValueError(
                "Argument `decoder_dim` must be a multiple of 4 (the sine-cosine position "
                f"embedding of rows and columns). Received: decoder_dim={decoder_dim}"
            )
        blocks = [
            TransformerBlock(
                decoder_dim, heads, mlp_ratio, 0.0, layer_norm_epsilon, name=f"block{i}"
            )
            for i in range(depth)
        ]
        super().__init__(**kwargs)
        self.patch_size, self.channels, self.grid_size = patch_size, channels, grid_size
        self.decoder_dim, self.depth, self.heads = decoder_dim, depth, blocks[0].heads
        self.mlp_ratio, self.layer_norm_epsilon = blocks[0].mlp_ratio, blocks[0].layer_norm_epsilon
        self.num_patches = grid_size[0] * grid_size[1]
        self.patch_values = patch_size * patch_size * channels
        self.blocks = blocks
        self.embedding = keras.layers.Dense(decoder_dim, name="embedding")
        self.norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="norm")
        self.prediction = keras.layers.Dense(self.patch_values, name="prediction")

    def build(self, input_shape, restore_shape=None):
        self.embedding.build(tuple(input_shape))
        self.mask_token = self.add_weight(
            shape=(1, 1, self.decoder_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="mask_token",
        )
        table = sincos_position_embedding(*self.grid_size, self.decoder_dim)
        self.positions = self.add_weight(
            shape=table.shape,
            initializer=keras.initializers.Constant(table),
            trainable=False,
            name="positions",
        )
        for block in self.blocks:
            block.build((None, None, self.decoder_dim))
        self.norm.build((None, None, self.decoder_dim))
        self.prediction.build((None, None, self.decoder_dim))
        self.built = True

    def full_tokens(self, encoded, restore_ids) -> tf.Tensor:
        """`(batch, 1 + patches, decoder_dim)`: class token, then every patch in grid order.

        Args:
            encoded: `(batch, 1 + visible, encoder_dim)` encoder output, class token first.
            restore_ids: int `(batch, patches)`: where each patch of the grid sits in the
                order "visible patches, then masked ones".

        Returns:
            The embedded tokens with mask tokens in the masked places, positions added.
        """
        tokens = self.embedding(encoded)
        batch = tf.shape(tokens)[0]
        masked = self.num_patches - (tf.shape(tokens)[1] - 1)
        mask_tokens = tf.tile(tf.cast(self.mask_token, tokens.dtype), (batch, masked, 1))
        shuffled = tf.concat([tokens[:, 1:], mask_tokens], axis=1)
        patches = tf.gather(shuffled, restore_ids, batch_dims=1)
        patches = patches + tf.cast(self.positions, patches.dtype)[None]
        return tf.concat([tokens[:, :1], patches], axis=1)

    def call(self, encoded, restore_ids, training=None):
        """The predicted pixels `(batch, patches, patch_size**2 * channels)`, grid order."""
        tokens = self.full_tokens(encoded, restore_ids)
        for block in self.blocks:
            tokens = block(tokens, training=training)
        return self.prediction(self.norm(tokens))[:, 1:]

    def compute_output_shape(self, input_shape, restore_shape=None):
        return (input_shape[0], self.num_patches, self.patch_values)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "patch_size": self.patch_size,
                "channels": self.channels,
                "grid_size": self.grid_size,
                "decoder_dim": self.decoder_dim,
                "depth": self.depth,
                "heads": self.heads,
                "mlp_ratio": self.mlp_ratio,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
