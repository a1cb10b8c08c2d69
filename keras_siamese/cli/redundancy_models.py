"""The models of the redundancy-reduction and clustering `train` methods, from the configuration.

Barlow Twins, VICReg and SwAV. Each function is the `build_model` of a `Method` row
(`keras_siamese.cli.methods`), like those of `method_models`, whose encoder and augmenter
they share. No TensorFlow at import time (the rows answer `--help`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras_siamese as ks
from keras_siamese.cli import method_models, view_recipe

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
        **method_models.model_options(config),
    )


def vicreg(config: dict) -> keras.Model:
    return ks.VICReg(
        method_models.encoder(config),
        augmenter=method_models.augmenter(config),
        projection_dims=_dims(config["expander_dims"]),
        invariance_weight=config["vicreg_invariance_weight"],
        variance_weight=config["vicreg_variance_weight"],
        covariance_weight=config["vicreg_covariance_weight"],
        **method_models.model_options(config),
    )


def swav_augmenter(config: dict) -> keras.layers.Layer:
    """Two views as the other methods, or with `--swav_local_views` SwAV's multi-crop.

    The local crops are 96/224 of the view size. A fixed-size encoder sees them resized to
    the view size; an encoder of any size (views smaller than the images) at their own, at
    least the smallest its stem and grid take (`view_recipe.smallest_view`).
    """
    local_views = config["swav_local_views"]
    if not local_views:
        return method_models.augmenter(config)
    resolved = config["resolved"]
    height, width, channels = resolved["view_shape"]
    local_size = None  # the augmenter's 96/224
    if resolved.get("any_size_encoder") and resolved.get("stem"):
        smallest = view_recipe.smallest_view(resolved["stem"], resolved.get("encoder_grid"))
        local_size = max(round(min(height, width) * 96 / 224), smallest)
    return ks.augment.multi_crop_augmenter(
        (height, width),
        local_size=local_size,
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
        **method_models.model_options(config),
    )
