"""SimSiam's recipe (Chen & He 2021): a predictor and a stop-gradient, no negatives."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras_siamese as ks
from keras_siamese.recipes.recipe import MOMENTUM, Recipe, check_integer


@dataclasses.dataclass(frozen=True)
class SimSiamRecipe(Recipe):
    """SimSiam as measured on Fashion-MNIST (benchmarks/results/quality-quick.md).

    The paper's CIFAR recipe (appendix D: SGD, momentum 0.9, weight decay 5e-4 coupled, a
    rate of 0.03 x B / 256 with cosine decay, "the predictor's learning rate is fixed"), with
    the base recipe's encoder and views, a peak of 0.5 for a batch of 256 (our runs are
    hundreds of times shorter) and the projector 512 x 2 layers, predictor bottleneck 128
    (paper: 2048, 512). `weight_decay` is decoupled as in every recipe: 5e-3 is the paper's
    coupled 5e-4 at momentum 0.9.

    Args:
        projection_dim: width of the projector's layers and of the prediction.
        projection_layers: projector layers (paper: 2 on CIFAR).
        predictor_hidden_dim: the predictor's bottleneck.
        fixed_predictor_learning_rate: with SGD, the predictor keeps the peak rate.
        **fields: the `Recipe` fields.

    Example:
        >>> ks.recipes.get("simsiam").predictor_hidden_dim
        128
    """

    name: ClassVar[str] = "simsiam"
    learning_rate: float = 0.5
    weight_decay: float = 5e-3
    projection_dim: int = 512
    projection_layers: int = 2
    predictor_hidden_dim: int = 128
    fixed_predictor_learning_rate: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("projection_dim", "projection_layers", "predictor_hidden_dim"):
            check_integer(name, getattr(self, name))

    def model_on(self, encoder, augmenter, image_shape, total_steps):
        return ks.SimSiam(
            encoder,
            augmenter,
            projection_dim=self.projection_dim,
            projection_layers=self.projection_layers,
            predictor_hidden_dim=self.predictor_hidden_dim,
            **self.model_options(image_shape),
        )

    def build_optimizer(self, total_steps, batch_size=None):
        """With SGD, SimSiam's optimizer (fixed-rate predictor); otherwise the base's."""
        if self.optimizer != "sgd":
            return super().build_optimizer(total_steps, batch_size)
        batch_size = batch_size or self.batch_size
        return ks.optimizers.simsiam_optimizer(
            batch_size=batch_size,
            steps=total_steps,
            # simsiam_optimizer scales its base rate by batch_size / 256 itself.
            base_learning_rate=self.peak_learning_rate(batch_size) * 256 / batch_size,
            momentum=MOMENTUM,
            # It takes the paper's coupled decay and divides it by (1 - momentum).
            weight_decay=self.weight_decay * (1.0 - MOMENTUM),
            fixed_predictor_learning_rate=self.fixed_predictor_learning_rate,
            warmup_steps=self.warmup_steps(total_steps),
        )
