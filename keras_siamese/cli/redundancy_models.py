"""The models of the redundancy-reduction and clustering `train` methods, from the configuration.

Barlow Twins, VICReg and SwAV. Each function is the `build_model` of a `Method` row
(`keras_siamese.cli.methods`), like those of `method_models`, whose encoder and augmenter
they share. No TensorFlow at import time (the rows answer `--help`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras_siamese as ks
from keras_siamese.cli import method_models

if TYPE_CHECKING:
    import keras


def _dims(values) -> tuple[int, ...]:
    return tuple(int(value) for value in values)


def barlow_twins(config: dict) -> keras.Model:
    return ks.BarlowTwins(
        method_models.encoder(config),
        augmenter=method_models.augmenter(config),
        projection_dims=_dims(config["expander_dims"]),
        lambda_=config["barlow_twins_lambda"],
    )


def vicreg(config: dict) -> keras.Model:
    return ks.VICReg(
        method_models.encoder(config),
        augmenter=method_models.augmenter(config),
        projection_dims=_dims(config["expander_dims"]),
        invariance_weight=config["vicreg_invariance_weight"],
        variance_weight=config["vicreg_variance_weight"],
        covariance_weight=config["vicreg_covariance_weight"],
    )


def swav_augmenter(config: dict) -> keras.layers.Layer:
    """Two views as the other methods, or with `--swav_local_views` SwAV's multi-crop.

    The local crops are 96/224 of the view size; the encoder, built for the view size,
    sees them resized to it.
    """
    local_views = config["swav_local_views"]
    if not local_views:
        return method_models.augmenter(config)
    height, width, channels = config["resolved"]["view_shape"]
    return ks.augment.multi_crop_augmenter(
        (height, width),
        local_views=local_views,
        channels=channels,
        global_crop_area=(config["min_crop_area"], 1.0),
        strength=config["color_strength"],
        blur=config["blur"],
        seed=config["seed"],
    )


def swav(config: dict) -> keras.Model:
    return ks.SwAV(
        method_models.encoder(config),
        augmenter=swav_augmenter(config),
        num_prototypes=config["swav_prototypes"],
        projection_dims=_dims(config["projection_dims"]),
        temperature=config["swav_temperature"],
        sinkhorn_iterations=config["swav_sinkhorn_iterations"],
        epsilon=config["swav_epsilon"],
        queue_size=config["swav_queue_size"],
        freeze_prototypes_steps=config["swav_freeze_prototypes_steps"],
    )
