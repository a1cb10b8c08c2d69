"""The models of the momentum-target `train` methods (BYOL, MoCo, DINO), from the configuration.

Each function is the `build_model` of a `Method` row (`keras_siamese.cli.methods`), like those
of `method_models`, whose encoder and augmenter they share. The target's momentum schedule
spans the run's resolved `total_steps`. No TensorFlow at import time (the rows answer `--help`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras_siamese as ks
from keras_siamese.cli import method_models

if TYPE_CHECKING:
    import keras


def byol(config: dict) -> keras.Model:
    return ks.BYOL(
        method_models.encoder(config),
        augmenter=method_models.augmenter(config),
        projection_dim=config["byol_projection_dim"],
        hidden_dim=config["byol_hidden_dim"],
        momentum=config["target_momentum"],
        momentum_steps=config["resolved"]["total_steps"],
        **method_models.model_options(config),
    )


def moco(config: dict) -> keras.Model:
    """MoCo `--moco_version` (v2: a queue and a constant momentum; v3: the batch's keys)."""
    return ks.MoCo(
        method_models.encoder(config),
        augmenter=method_models.augmenter(config),
        version=config["moco_version"],
        queue_size=config["moco_queue_size"],
        momentum=config["target_momentum"],
        temperature=config["moco_temperature"],
        projection_dim=config["moco_projection_dim"],
        hidden_dim=config["moco_hidden_dim"],
        momentum_steps=config["resolved"]["total_steps"],
        **method_models.model_options(config),
    )


def dino(config: dict) -> keras.Model:
    """DINO on two global views (the augmenter of the other methods)."""
    return ks.DINO(
        method_models.encoder(config),
        augmenter=method_models.augmenter(config),
        output_dim=config["dino_output_dim"],
        head_batch_norm=config["dino_head_batch_norm"],
        teacher_temperature=config["dino_teacher_temperature"],
        momentum=config["target_momentum"],
        momentum_steps=config["resolved"]["total_steps"],
        **method_models.model_options(config),
    )
