"""`forward_flops`: the FLOPs of one example's forward pass, for the throughput benchmarks."""

import keras
import numpy as np


def forward_flops(model):
    """2 x the multiply-adds of `model`'s Conv2D and Dense layers for one example.

    Other layers (BatchNorm, activations, pooling) are left out: they are a few percent of a
    ResNet's FLOPs. A training step costs about 3x the forward pass (forward, and backward
    for activations and weights).
    """
    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, _ = layer.output.shape
            total += 2 * height * width * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * int(np.prod(layer.kernel.shape))
    return total
