"""The models of the `train` methods, built from the resolved configuration, and their monitors.

Each function is the `build_model` or `build_monitors` of a `Method` row
(`keras_siamese.cli.methods`). The rows are read to answer `--help`, so this module must not
import TensorFlow: `keras_siamese` loads lazily, and only the function bodies touch it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras_siamese as ks
from keras_siamese.cli import encoder_flag

if TYPE_CHECKING:
    import keras


def encoder(config: dict) -> keras.Model:
    """The backbone of `--encoder` at the view shape (see `keras_siamese.cli.encoder_flag`)."""
    return encoder_flag.build(config)


def model_options(config: dict) -> dict:
    """`image_size=` for an encoder of any input size (views smaller than the images): the
    model then takes and serves the images at their size. Empty for a fixed-size encoder."""
    resolved = config["resolved"]
    if not resolved.get("any_size_encoder", False):
        return {}
    return {"image_size": tuple(resolved["image_shape"][:2])}


def augmenter(config: dict) -> keras.layers.Layer:
    """SimCLR's augmentation at the view size, from `--color_strength`, `--blur`, ..."""
    height, width, channels = config["resolved"]["view_shape"]
    return ks.augment.simclr_augmenter(
        (height, width),
        channels=channels,
        strength=config["color_strength"],
        blur=config["blur"],
        crop_area=(config["min_crop_area"], 1.0),
        seed=config["seed"],
    )


def simclr(config: dict) -> keras.Model:
    return ks.SimCLR(
        encoder(config),
        augmenter=augmenter(config),
        projection_dims=tuple(int(dims) for dims in config["projection_dims"]),
        temperature=config["temperature"],
        **model_options(config),
    )


def simsiam(config: dict) -> keras.Model:
    return ks.SimSiam(
        encoder(config),
        augmenter=augmenter(config),
        projection_dim=config["simsiam_projection_dim"],
        projection_layers=config["simsiam_projection_layers"],
        predictor_hidden_dim=config["simsiam_predictor_hidden_dim"],
        **model_options(config),
    )


def _siamese(config: dict, loss: keras.losses.Loss) -> keras.Model:
    return ks.SiameseNetwork(
        encoder(config),
        loss=loss,
        distance=config["siamese_distance"],
        embedding_dim=config["siamese_embedding_dim"] or None,
        augmenter=augmenter(config) if config["siamese_augment"] else None,
        **model_options(config),
    )


def siamese_contrastive(config: dict) -> keras.Model:
    """Pairs under the contrastive margin loss (`--siamese_margin` 0: the loss's default)."""
    margin = config["siamese_margin"]
    loss = ks.losses.ContrastiveMargin(margin) if margin else ks.losses.ContrastiveMargin()
    return _siamese(config, loss)


def siamese_triplet(config: dict) -> keras.Model:
    """P x K batches under the triplet loss with `--triplet_mining`."""
    margin = config["siamese_margin"]
    mining = config["triplet_mining"]
    loss = ks.losses.TripletLoss(margin, mining) if margin else ks.losses.TripletLoss(mining=mining)
    return _siamese(config, loss)


def collapse_monitor(config: dict) -> list[keras.callbacks.Callback]:
    """`CollapseMonitor`: warns when the two-view methods' representations collapse."""
    return [ks.callbacks.CollapseMonitor()]


def no_monitors(config: dict) -> list[keras.callbacks.Callback]:
    return []
