"""MLP heads placed on top of the encoder: projection and prediction.

`ProjectionHead` is the projector of SimCLR, SimSiam, BYOL, MoCo, Barlow Twins, VICReg and SwAV;
`PredictionHead` the predictor of SimSiam, BYOL and MoCo v3. DINO's head is `DINOHead` and
SwAV's prototypes `SwAVPrototypes`, beside their models.
"""

from __future__ import annotations

import keras

from keras_siamese import validation


@keras.saving.register_keras_serializable(package="keras_siamese")
class ProjectionHead(keras.layers.Layer):
    """An MLP: hidden layers of Dense + BatchNorm + ReLU, then a linear output layer.

    SimCLR (Chen et al. 2020, section 2.1): "we use a MLP with one hidden layer to
    obtain z = g(h) = W(2)σ(W(1)h)"; with BatchNorm after the hidden layer as in their
    code, `dims=(2048, 128)`. SimSiam (Chen & He 2021, section 4) "has BN applied to
    each fully-connected layer, including its output fc. Its output fc has no ReLU",
    with 3 layers of 2048: `dims=(2048, 2048, 2048), output_batch_norm=True,
    output_affine=False`.

    Args:
        dims: sizes of the layers; the last one is the output size.
        output_batch_norm: BatchNorm on the output; the output Dense then has no bias.
        output_affine: whether the output BatchNorm learns a scale and an offset. SimSiam's
            code uses `BatchNorm1d(affine=False)` on the projector output: a learned offset
            would let every output share a constant component.
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
        output_affine: bool = True,
        sync_batch_norm: bool = False,
        **kwargs,
    ):
        dims = validation.check_dims("dims", dims)
        super().__init__(**kwargs)
        self.dims = dims
        self.output_batch_norm = bool(output_batch_norm)
        self.output_affine = bool(output_affine)
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
                center=self.output_affine,
                scale=self.output_affine,
                synchronized=self.sync_batch_norm,
                name="output_batch_norm",
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
                "output_affine": self.output_affine,
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
        validation.check_integer("output_dim", output_dim)
        validation.check_integer("hidden_dim", hidden_dim)
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
        del config["dims"], config["output_batch_norm"], config["output_affine"]
        config.update({"output_dim": self.output_dim, "hidden_dim": self.hidden_dim})
        return config
