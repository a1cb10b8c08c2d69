"""SwAV's recipe (Caron et al. 2020): swapped prediction of Sinkhorn cluster codes."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras_siamese as ks
from keras_siamese.recipes.multi_crop import multi_crop_views
from keras_siamese.recipes.recipe import Recipe, check_dims, check_integer, check_number


@dataclasses.dataclass(frozen=True)
class SwAVRecipe(Recipe):
    """SwAV as measured on Fashion-MNIST (benchmarks/results/quality-quick-methods.md).

    The paper (3000 prototypes on ImageNet, T=0.1, epsilon 0.05, 3 Sinkhorn iterations, a
    queue of 3840 features, prototypes frozen for the first epoch, multi-crop 2 x 224 + 6 x
    96) on the base recipe's encoder and two views: 100 prototypes for 10 classes, no queue
    (a batch of 256 already spreads over 100 prototypes), no freezing, SGD at 0.3 for a batch
    of 256 (the best of 0.01, 0.05 and 0.3 in 2 epochs), weight decay 1e-6.

    Args:
        projection_dims: the projection MLP's sizes.
        num_prototypes: the prototypes K.
        temperature: softmax temperature of the swapped predictions.
        epsilon: entropy weight of the Sinkhorn codes.
        sinkhorn_iterations: Sinkhorn-Knopp iterations.
        queue_size: earlier projections kept per global view for the codes (0: none).
        freeze_prototypes_steps: steps without prototype updates at the start.
        local_views: multi-crop's local views (0: the two global views).
        **fields: the `Recipe` fields.

    Example:
        >>> ks.recipes.get("swav").num_prototypes
        100
    """

    name: ClassVar[str] = "swav"
    learning_rate: float = 0.3
    weight_decay: float = 1e-6
    projection_dims: tuple[int, ...] = (512, 128)
    num_prototypes: int = 100
    temperature: float = 0.1
    epsilon: float = 0.05
    sinkhorn_iterations: int = 3
    queue_size: int = 0
    freeze_prototypes_steps: int = 0
    local_views: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_dims("projection_dims", self.projection_dims)
        check_integer("num_prototypes", self.num_prototypes)
        check_integer("sinkhorn_iterations", self.sinkhorn_iterations)
        for name in ("queue_size", "freeze_prototypes_steps", "local_views"):
            check_integer(name, getattr(self, name), minimum=0)
        check_number("temperature", self.temperature, strict=True)
        check_number("epsilon", self.epsilon, strict=True)

    def build_augmenter(self, image_shape, seed=None):
        if self.local_views:
            return multi_crop_views(self, self.local_views, image_shape, seed)
        return super().build_augmenter(image_shape, seed)

    def model_on(self, encoder, augmenter, image_shape, total_steps):
        return ks.SwAV(
            encoder,
            augmenter,
            num_prototypes=self.num_prototypes,
            projection_dims=self.projection_dims,
            temperature=self.temperature,
            sinkhorn_iterations=self.sinkhorn_iterations,
            epsilon=self.epsilon,
            queue_size=self.queue_size,
            freeze_prototypes_steps=self.freeze_prototypes_steps,
            **self.model_options(image_shape),
        )
