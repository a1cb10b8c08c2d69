"""SimCLR's recipe (Chen et al. 2020): NT-Xent between two views against the global batch."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras_siamese as ks
from keras_siamese.recipes.recipe import Recipe, check_dims, check_number


@dataclasses.dataclass(frozen=True)
class SimCLRRecipe(Recipe):
    """SimCLR as measured on Fashion-MNIST (`make demo`: kNN 86.6, linear 92.0, 1% 85.3).

    Scaled down from the paper (ResNet-50, 224-pixel views, batch 4096, LARS, T=0.1-0.5,
    projection 2048 -> 128): the base recipe's ResNet-10 on 16x16 views, SGD with momentum at
    a peak of 0.6 for a batch of 256, weight decay 5e-4, T=0.2 ("a suitable temperature can
    help the model learn from hard negatives", section 5.1; 0.2 beat 0.5 in our sweep), a
    two-layer projection 512 -> 128.

    Args:
        temperature: NT-Xent temperature.
        projection_dims: sizes of the projection MLP's layers.
        **fields: the `Recipe` fields.

    Example:
        >>> recipe = ks.recipes.get("simclr")
        >>> recipe.temperature, recipe.projection_dims
        (0.2, (512, 128))
    """

    name: ClassVar[str] = "simclr"
    temperature: float = 0.2
    projection_dims: tuple[int, ...] = (512, 128)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("temperature", self.temperature, strict=True)
        check_dims("projection_dims", self.projection_dims)

    def model_on(self, encoder, augmenter, image_shape, total_steps):
        return ks.SimCLR(
            encoder,
            augmenter,
            projection_dims=self.projection_dims,
            temperature=self.temperature,
            **self.model_options(image_shape),
        )
