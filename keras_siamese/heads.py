"""MLP heads placed on top of the encoder: projection (SimCLR, SimSiam) and prediction (SimSiam)."""

from __future__ import annotations

import keras


def _check_dims(name: str, dims) -> tuple[int, ...]:
    if isinstance(dims, int) and not isinstance(dims, bool):
        dims = (dims,)
    try:
        dims = tuple(dims)
    except TypeError:
        raise ValueError(
            f"Argument `{name}` must be a non-empty sequence of positive integers. "
            f"Received: {name}={dims!r}"
        ) from None
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        raise ValueError(
            f"Argument `{name}` must be a non-empty sequence of positive integers. "
            f"Received: {name}={dims!r}"
        )
    return dims


@keras.saving.register_keras_serializable(package="keras_siamese")
class ProjectionHead(keras.layers.Layer):
    """An MLP: hidden layers of Dense + BatchNorm + ReLU, then a linear output layer.

    SimCLR (Chen et al. 2020, section 2.1): "we use a MLP with one hidden layer to
    obtain z = g(h) = W(2)σ(W(1)h)"; with BatchNorm after the hidden layer as in their
    code, `dims=(2048, 128)`. SimSiam (Chen & He 2021, section 4) "has BN applied to
    each fully-connected layer, including its output fc. Its output fc has no ReLU",
    with 3 layers of 2048: `dims=(2048, 2048, 2048), output_batch_norm=True`.

    Args:
        dims: sizes of the layers; the last one is the output size.
        output_batch_norm: BatchNorm on the output (with its learned scale and offset,
            as in the papers' code); the output Dense then has no bias.
        sync_batch_norm: synchronise BatchNorm statistics across replicas ("global BN").

    Example:
        >>> head = ProjectionHead((64, 16))
        >>> head(np.zeros((4, 32), "float32")).shape
        TensorShape([4, 16])
    """

    def __init__(
        self,
        dims: tuple[int, ...] = (2048, 128),
        output_batch_norm: bool = False,
        sync_batch_norm: bool = False,
        **kwargs,
    ):
        dims = _check_dims("dims", dims)
        super().__init__(**kwargs)
        self.dims = dims
        self.output_batch_norm = bool(output_batch_norm)
        self.sync_batch_norm = bool(sync_batch_norm)
        self.hidden = []
        for index, size in enumerate(dims[:-1]):
            self.hidden.append(
                (
                    keras.layers.Dense(size, use_bias=False, name=f"hidden{index}"),
                    keras.layers.BatchNormalization(
                        synchronized=self.sync_batch_norm, name=f"hidden{index}_batch_norm"
                    ),
                )
            )
        self.output_dense = keras.layers.Dense(
            dims[-1], use_bias=not self.output_batch_norm, name="output"
        )
        self.output_norm = (
            keras.layers.BatchNormalization(
                synchronized=self.sync_batch_norm, name="output_batch_norm"
            )
            if self.output_batch_norm
            else None
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for dense, norm in self.hidden:
            dense.build(shape)
            shape = dense.compute_output_shape(shape)
            norm.build(shape)
        self.output_dense.build(shape)
        if self.output_norm is not None:
            self.output_norm.build(self.output_dense.compute_output_shape(shape))

    def call(self, features, training=None):
        x = features
        for dense, norm in self.hidden:
            x = keras.ops.relu(norm(dense(x), training=training))
        x = self.output_dense(x)
        if self.output_norm is not None:
            x = self.output_norm(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dims[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "dims": self.dims,
                "output_batch_norm": self.output_batch_norm,
                "sync_batch_norm": self.sync_batch_norm,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_siamese")
class PredictionHead(ProjectionHead):
    """SimSiam's predictor: a bottleneck MLP, Dense + BatchNorm + ReLU, then a linear output.

    Chen & He 2021, section 4: "The prediction MLP (h) has BN applied to its hidden fc
    layers. Its output fc does not have BN or ReLU. This MLP has 2 layers. The dimension
    of h's input and output (z and p) is d = 2048, and h's hidden layer's dimension is
    512, making h a bottleneck structure." The output size must equal the projector's,
    as the loss compares the prediction of one view with the projection of the other.

    Args:
        output_dim: size of the prediction (the projector's output size).
        hidden_dim: size of the hidden layer (the bottleneck).
        sync_batch_norm: synchronise BatchNorm statistics across replicas.

    Example:
        >>> head = PredictionHead(output_dim=32, hidden_dim=8)
        >>> head(np.zeros((4, 32), "float32")).shape
        TensorShape([4, 32])
    """

    def __init__(
        self,
        output_dim: int = 2048,
        hidden_dim: int = 512,
        sync_batch_norm: bool = False,
        **kwargs,
    ):
        for name, value in (("output_dim", output_dim), ("hidden_dim", hidden_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"Argument `{name}` must be a positive integer. Received: {name}={value!r}"
                )
        super().__init__(
            dims=(hidden_dim, output_dim),
            output_batch_norm=False,
            sync_batch_norm=sync_batch_norm,
            **kwargs,
        )
        self.output_dim = output_dim
        self.hidden_dim = hidden_dim

    def get_config(self):
        config = super().get_config()
        del config["dims"], config["output_batch_norm"]
        config.update({"output_dim": self.output_dim, "hidden_dim": self.hidden_dim})
        return config
