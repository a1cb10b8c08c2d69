"""`Pipeline`: image layers applied in order, as one saveable layer.

Like `keras.layers.Pipeline` (a plain layer, not a `Model`, usable in `tf.data`), plus what an
augmenter needs: `training` reaches every layer that takes it, the output shape is inferred
layer by layer (so a symbolic `keras.Input` works without tracing), and the argument is
checked. Our layers, keras-cv's and Keras core's mix freely.
"""

from __future__ import annotations

import keras


def output_shape(layer: keras.layers.Layer, input_shape) -> tuple:
    """`layer`'s output shape for `input_shape`, traced if the layer does not declare it."""
    spec = layer.compute_output_spec(keras.KerasTensor(tuple(input_shape), dtype="float32"))
    return tuple(spec.shape)


def _check_layers(layers) -> list:
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(
            "Argument `layers` must be a non-empty list of keras.layers.Layer. "
            f"Received: layers={layers!r}"
        )
    for index, layer in enumerate(layers):
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                "Argument `layers` must hold keras.layers.Layer instances. "
                f"Received: layers[{index}]={layer!r} of type {type(layer).__name__}"
            )
    return list(layers)


@keras.saving.register_keras_serializable(package="keras_siamese")
class Pipeline(keras.layers.Layer):
    """Applies `layers` in order; `training` is passed to each layer whose `call` takes it.

    Args:
        layers: non-empty list of `keras.layers.Layer`.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ValueError: for an empty or non-list `layers`.
        TypeError: for an element that is not a layer.

    Example:
        >>> pipeline = Pipeline([RandomFlip(seed=0), ToUnitRange()])
        >>> pipeline(np.zeros((2, 8, 8, 3), "uint8")).shape
        TensorShape([2, 8, 8, 3])
    """

    def __init__(self, layers, **kwargs):
        layers = _check_layers(layers)
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self._pipeline_layers = layers

    @property
    def layers(self) -> list:
        """The layers, in order."""
        return self._pipeline_layers

    def call(self, inputs, training=True):
        for layer in self.layers:  # Keras drops `training` for layers whose call lacks it
            inputs = layer(inputs, training=training)
        return inputs

    def build(self, input_shape=None):
        for layer in self.layers if input_shape is not None else ():
            if not layer.built:
                layer.build(input_shape)
            input_shape = output_shape(layer, input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = output_shape(layer, input_shape)
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["layers"] = [keras.saving.serialize_keras_object(layer) for layer in self.layers]
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layers"] = [keras.saving.deserialize_keras_object(c) for c in config["layers"]]
        return cls(**config)
