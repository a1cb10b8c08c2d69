"""NNCLR's recipe (Dwibedi et al. 2021): each view's nearest neighbour in a support set."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras_siamese as ks
from keras_siamese.recipes.recipe import Recipe, check_dims, check_integer, check_number


@dataclasses.dataclass(frozen=True)
class NNCLRRecipe(Recipe):
    """NNCLR scaled to the base recipe; its values are not yet measured on Fashion-MNIST.

    The paper (ImageNet: ResNet-50, batch 4096, LARS, T = 0.1, a support set of 98,304,
    projection 2048 -> 2048 -> 256, prediction 4096 -> 256) scaled down the way the other
    recipes are: the base recipe's ResNet-10 on 16x16 views with SimCLR's augmentation, and
    SimCLR's optimisation (SGD with momentum at a peak of 0.6 for a batch of 256, weight
    decay 5e-4): NNCLR's loss is SimCLR's with other positives, and SimCLR's values are the
    measured ones for that loss here. The heads keep the paper's shapes at the other
    recipes' widths: projection 512 -> 512 -> 128 (BatchNorm on every layer), prediction
    512 -> 128. T = 0.1 is the paper's. The support set holds 8192 projections, 32 batches of
    256 or 14% of Fashion-MNIST's 60,000 images: the paper's 98,304 is 24 batches (7.7% of
    ImageNet); a longer queue of a small dataset holds staler projections of the same
    images, a shorter one fewer candidate neighbours. `benchmarks/` has not measured these
    yet: they may change.

    Args:
        temperature: the softmax temperature.
        projection_dims: sizes of the projection MLP's layers.
        prediction_dims: sizes of the prediction MLP's layers (the last equal to the
            projection's).
        support_set_size: projections kept in the support set (at least the batch size).
        **fields: the `Recipe` fields.

    Example:
        >>> recipe = ks.recipes.get("nnclr")
        >>> recipe.support_set_size, recipe.temperature
        (8192, 0.1)
    """

    name: ClassVar[str] = "nnclr"
    temperature: float = 0.1
    projection_dims: tuple[int, ...] = (512, 512, 128)
    prediction_dims: tuple[int, ...] = (512, 128)
    support_set_size: int = 8192

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("temperature", self.temperature, strict=True)
        check_dims("projection_dims", self.projection_dims)
        check_dims("prediction_dims", self.prediction_dims)
        if self.prediction_dims[-1] != self.projection_dims[-1]:
            raise ValueError(
                "Recipe field `prediction_dims` must end with the last of `projection_dims`. "
                f"Received: prediction_dims={self.prediction_dims}, "
                f"projection_dims={self.projection_dims}"
            )
        check_integer("support_set_size", self.support_set_size)

    def model_on(self, encoder, augmenter, image_shape, total_steps):
        return ks.NNCLR(
            encoder,
            augmenter,
            projection_dims=self.projection_dims,
            prediction_dims=self.prediction_dims,
            temperature=self.temperature,
            support_set_size=self.support_set_size,
            **self.model_options(image_shape),
        )
