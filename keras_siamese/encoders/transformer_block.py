"""`TransformerBlock`: the pre-norm encoder block of a Vision Transformer."""

from __future__ import annotations

import keras

from keras_siamese import validation


@keras.saving.register_keras_serializable(package="keras_siamese")
class TransformerBlock(keras.layers.Layer):
    """Pre-norm Transformer block: `x + MSA(LN(x))`, then `x + MLP(LN(x))`.

    Dosovitskiy et al. 2021 (ViT, equations 2-3): "Layernorm (LN) is applied before every
    block, and residual connections after every block. The MLP contains two layers with a
    GELU non-linearity."

    Args:
        dim: token features.
        heads: attention heads; `dim` must be a multiple of it.
        mlp_ratio: hidden width of the MLP over `dim` (ViT: 4).
        dropout: dropout after the attention and in the MLP (0: none, as MAE and DINO).
        layer_norm_epsilon: epsilon of the two LayerNorms (1e-6, as ViT's reference code).
        **kwargs: `keras.layers.Layer` arguments.

    Example:
        >>> block = TransformerBlock(dim=32, heads=4)
        >>> block(np.zeros((2, 5, 32), "float32")).shape
        TensorShape([2, 5, 32])
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        layer_norm_epsilon: float = 1e-6,
        **kwargs,
    ):
        dim = validation.check_integer("dim", dim)
        heads = validation.check_integer("heads", heads)
        if dim % heads:
            raise ValueError(
                "Argument `dim` must be a multiple of `heads` (each head sees dim / heads "
                f"features). Received: dim={dim}, heads={heads}"
            )
        mlp_ratio = validation.check_number("mlp_ratio", mlp_ratio, 0.0, include_minimum=False)
        dropout = validation.check_number("dropout", dropout, 0.0, 1.0, include_maximum=False)
        epsilon = validation.check_number(
            "layer_norm_epsilon", layer_norm_epsilon, 0.0, include_minimum=False
        )
        super().__init__(**kwargs)
        self.dim, self.heads, self.mlp_ratio = dim, heads, mlp_ratio
        self.dropout, self.layer_norm_epsilon = dropout, epsilon
        self.hidden_dim = max(1, round(dim * mlp_ratio))
        self.attention_norm = keras.layers.LayerNormalization(epsilon=epsilon, name="norm1")
        self.attention = keras.layers.MultiHeadAttention(
            heads, dim // heads, dropout=0.0, name="attention"
        )
        self.mlp_norm = keras.layers.LayerNormalization(epsilon=epsilon, name="norm2")
        self.mlp_hidden = keras.layers.Dense(self.hidden_dim, activation="gelu", name="mlp1")
        self.mlp_output = keras.layers.Dense(dim, name="mlp2")
        self.attention_dropout = keras.layers.Dropout(dropout)
        self.mlp_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.attention_norm.build(shape)
        self.attention.build(shape, shape)
        self.mlp_norm.build(shape)
        self.mlp_hidden.build(shape)
        self.mlp_output.build((*shape[:-1], self.hidden_dim))
        self.built = True

    def call(self, tokens, training=None):
        normed = self.attention_norm(tokens)
        attended = self.attention(normed, normed, training=training)
        tokens = tokens + self.attention_dropout(attended, training=training)
        hidden = self.mlp_hidden(self.mlp_norm(tokens))
        hidden = self.mlp_dropout(hidden, training=training)
        return tokens + self.mlp_dropout(self.mlp_output(hidden), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "dim": self.dim,
                "heads": self.heads,
                "mlp_ratio": self.mlp_ratio,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
