"""Barlow Twins' recipe (Zbontar et al. 2021): the views' cross-correlation to the identity."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras_siamese as ks
from keras_siamese.recipes.recipe import Recipe, check_dims, check_number


@dataclasses.dataclass(frozen=True)
class BarlowTwinsRecipe(Recipe):
    """Barlow Twins as measured on Fashion-MNIST (benchmarks/results/quality-quick-methods.md).

    The paper (LARS, batch 2048, projector 8192 x 3, lambda 0.0051, weight decay 1.5e-6,
    BYOL's augmentations) on the base recipe's encoder: BYOL's asymmetric views, a projector
    512 x 3, SGD at a peak of 0.01 for a batch of 256 (the loss sums d^2 terms: large
    gradients; the best of 0.01, 0.05 and 0.2 in 2 epochs).

    Args:
        projection_dims: the projector's layer sizes.
        lambda_: weight of the redundancy-reduction term.
        **fields: the `Recipe` fields.

    Example:
        >>> ks.recipes.get("barlow-twins").projection_dims
        (512, 512, 512)
    """

    name: ClassVar[str] = "barlow-twins"
    views: str = "byol"
    learning_rate: float = 0.01
    weight_decay: float = 1.5e-6
    projection_dims: tuple[int, ...] = (512, 512, 512)
    lambda_: float = 0.0051

    def __post_init__(self) -> None:
        super().__post_init__()
        check_dims("projection_dims", self.projection_dims)
        check_number("lambda_", self.lambda_)

    def model_on(self, encoder, augmenter, image_shape, total_steps):
        return ks.BarlowTwins(
            encoder,
            augmenter,
            projection_dims=self.projection_dims,
            lambda_=self.lambda_,
            **self.model_options(image_shape),
        )
