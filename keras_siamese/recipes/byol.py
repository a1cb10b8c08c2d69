"""BYOL's recipe (Grill et al. 2020): an online network predicts a moving-average target."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras_siamese as ks
from keras_siamese.recipes.recipe import Recipe, check_integer, check_number


@dataclasses.dataclass(frozen=True)
class BYOLRecipe(Recipe):
    """BYOL as measured on Fashion-MNIST (benchmarks/results/quality-quick-methods.md).

    The paper (ImageNet: ResNet-50, batch 4096, LARS 0.2 x B / 256 with decay 1.5e-6,
    projector and predictor 4096 -> 256, "the exponential moving average parameter tau starts
    from 0.996 and is increased to one") scaled to the base recipe's encoder: BYOL's
    asymmetric views, SGD at 0.8 for a batch of 256 without weight decay, projector and
    predictor 512 -> 128, a base momentum of 0.99 raised to 1 by a cosine over the run (in a
    run of a few thousand steps a target at 0.996 barely leaves its random start).

    Args:
        projection_dim: output of the projector and the predictor.
        hidden_dim: their hidden width.
        target_momentum: the target's base momentum.
        **fields: the `Recipe` fields.

    Example:
        >>> ks.recipes.get("byol").views
        'byol'
    """

    name: ClassVar[str] = "byol"
    views: str = "byol"
    learning_rate: float = 0.8
    weight_decay: float = 0.0
    projection_dim: int = 128
    hidden_dim: int = 512
    target_momentum: float = 0.99

    def __post_init__(self) -> None:
        super().__post_init__()
        check_integer("projection_dim", self.projection_dim)
        check_integer("hidden_dim", self.hidden_dim)
        check_number("target_momentum", self.target_momentum, 0.0, 1.0)

    def model_on(self, encoder, augmenter, image_shape, total_steps):
        return ks.BYOL(
            encoder,
            augmenter,
            projection_dim=self.projection_dim,
            hidden_dim=self.hidden_dim,
            momentum=self.target_momentum,
            momentum_steps=total_steps,
            **self.model_options(image_shape),
        )
