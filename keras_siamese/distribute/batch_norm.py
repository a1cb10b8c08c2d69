"""Global BatchNorm: finding BatchNormalization layers and synchronising them across replicas."""

from __future__ import annotations

import keras
import tensorflow as tf


def _named_layers(layer: keras.layers.Layer, prefix: str = ""):
    """Yields `(path, layer)` for every layer nested in `layer`, depth first."""
    for child in layer._flatten_layers(include_self=False, recursive=False):
        path = f"{prefix}{child.name}"
        yield path, child
        yield from _named_layers(child, f"{path}/")


def batch_norm_layers(model: keras.layers.Layer) -> dict[str, keras.layers.BatchNormalization]:
    """Returns the BatchNormalization layers nested in `model`, keyed by their path.

    Example:
        >>> sorted(batch_norm_layers(model))
        ['encoder/stem_bn', 'projector/hidden0_batch_norm']
    """
    return {
        path: layer
        for path, layer in _named_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    }


def convert_to_sync_batch_norm(model: keras.layers.Layer) -> keras.layers.Layer:
    """Makes every BatchNormalization layer of `model` synchronise its statistics across replicas.

    SimCLR (Chen et al. 2020, section 2.2): "In distributed training with data parallelism,
    the BN mean and variance are typically aggregated locally per device. In our contrastive
    learning, as positive pairs are computed in the same device, the model can exploit the
    local information leakage to improve prediction accuracy without improving
    representations. We address this issue by aggregating BN mean and variance over all
    devices during the training." With `synchronized=True` the batch statistics are
    all-reduced over the replicas, so a step normalises exactly as one device would on the
    global batch.

    The layers are changed in place (the flag is read at call time and saved in their
    config, so a `.keras` file keeps it); convert before the first `fit`, whose traced step
    would otherwise keep the old behaviour. Outside a strategy the layers behave as before.

    Args:
        model: a Keras layer or model (nested models and layers are searched).

    Returns:
        `model` itself.

    Raises:
        TypeError: if `model` is not a Keras layer.

    Example:
        >>> encoder = convert_to_sync_batch_norm(keras_siamese.encoders.resnet(10, width=8))
        >>> all(layer.synchronized for layer in batch_norm_layers(encoder).values())
        True
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            "Argument `model` must be a Keras layer or model. "
            f"Received: model={model!r} of type {type(model).__name__}"
        )
    for layer in batch_norm_layers(model).values():
        layer.synchronized = True
    return model


def resolve_sync_batch_norm(sync_batch_norm) -> bool:
    """Whether BatchNorm is synchronised: `"auto"` means "when more than one replica is in sync".

    Args:
        sync_batch_norm: `"auto"`, True or False.

    Returns:
        True for global ("synchronised") BatchNorm.

    Raises:
        ValueError: for any other value.

    Example:
        >>> with keras_siamese.distribute.get_strategy("cpu:2").scope():
        ...     resolve_sync_batch_norm("auto")
        True
    """
    if sync_batch_norm == "auto":
        return tf.distribute.get_strategy().num_replicas_in_sync > 1
    if isinstance(sync_batch_norm, bool):
        return sync_batch_norm
    raise ValueError(
        'Argument `sync_batch_norm` must be "auto" (synchronised when more than one replica '
        "is in sync), True or False. "
        f"Received: sync_batch_norm={sync_batch_norm!r}"
    )
