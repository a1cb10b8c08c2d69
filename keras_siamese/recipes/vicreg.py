"""VICReg's recipe (Bardes et al. 2022): invariance, variance and covariance terms."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras_siamese as ks
from keras_siamese.recipes.recipe import Recipe, check_dims, check_number


@dataclasses.dataclass(frozen=True)
class VICRegRecipe(Recipe):
    """VICReg as measured on Fashion-MNIST (benchmarks/results/quality-quick-methods.md).

    The paper (LARS, batch 2048, expander 8192 x 3, weights 25 / 25 / 1, BYOL's
    augmentations) on the base recipe's encoder: BYOL's asymmetric views, an expander
    512 x 3, SGD at a peak of 0.1 for a batch of 256 (the better of 0.02 and 0.1 in 2
    epochs), weight decay 1e-6.

    Args:
        projection_dims: the expander's layer sizes.
        invariance_weight: weight of the mean-squared distance of the views.
        variance_weight: weight of the hinge on each dimension's standard deviation.
        covariance_weight: weight of the off-diagonal covariance.
        **fields: the `Recipe` fields.

    Example:
        >>> ks.recipes.get("vicreg").variance_weight
        25.0
    """

    name: ClassVar[str] = "vicreg"
    views: str = "byol"
    learning_rate: float = 0.1
    weight_decay: float = 1e-6
    projection_dims: tuple[int, ...] = (512, 512, 512)
    invariance_weight: float = 25.0
    variance_weight: float = 25.0
    covariance_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_dims("projection_dims", self.projection_dims)
        for name in ("invariance_weight", "variance_weight", "covariance_weight"):
            check_number(name, getattr(self, name))

    def model_on(self, encoder, augmenter, image_shape, total_steps):
        return ks.VICReg(
            encoder,
            augmenter,
            projection_dims=self.projection_dims,
            invariance_weight=self.invariance_weight,
            variance_weight=self.variance_weight,
            covariance_weight=self.covariance_weight,
            **self.model_options(image_shape),
        )
