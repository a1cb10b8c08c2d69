"""DINO's recipe (Caron et al. 2021): self-distillation from a momentum teacher."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras_siamese as ks
from keras_siamese.recipes.multi_crop import multi_crop_views
from keras_siamese.recipes.recipe import Recipe, check_integer, check_number


@dataclasses.dataclass(frozen=True)
class DINORecipe(Recipe):
    """DINO as measured on Fashion-MNIST (benchmarks/results/quality-quick-methods.md).

    The paper (ViT-S/16, AdamW 5e-4 x B / 256, weight decay 0.04 -> 0.4, head 2048 -> 256 ->
    65536, teacher temperature 0.04 -> 0.07, momentum 0.996 -> 1, multi-crop) scaled to the
    base recipe's ResNet: Adam with decoupled decay 0.04 at 2e-3, head 512 -> 128 -> 1024
    with BatchNorm in its hidden layers (without it a small encoder's outputs collapsed to
    uniform, tests/test_dino.py), teacher temperature 0.07, base momentum 0.99, the two
    global views only (`local_views` adds multi-crop's local ones).

    Args:
        output_dim: outputs (prototypes) of the head.
        hidden_dim: hidden width of the head.
        bottleneck_dim: the head's bottleneck.
        head_batch_norm: BatchNorm in the head's hidden layers.
        teacher_temperature: the teacher's softmax temperature.
        target_momentum: the teacher's base momentum.
        local_views: multi-crop's local views (0: the two global views).
        **fields: the `Recipe` fields.

    Example:
        >>> ks.recipes.get("dino").output_dim
        1024
    """

    name: ClassVar[str] = "dino"
    optimizer: str = "adam"
    learning_rate: float = 2e-3
    weight_decay: float = 0.04
    output_dim: int = 1024
    hidden_dim: int = 512
    bottleneck_dim: int = 128
    head_batch_norm: bool = True
    teacher_temperature: float = 0.07
    target_momentum: float = 0.99
    local_views: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("output_dim", "hidden_dim", "bottleneck_dim"):
            check_integer(name, getattr(self, name))
        check_integer("local_views", self.local_views, minimum=0)
        check_number("teacher_temperature", self.teacher_temperature, strict=True)
        check_number("target_momentum", self.target_momentum, 0.0, 1.0)

    def build_augmenter(self, image_shape, seed=None):
        if self.local_views:
            return multi_crop_views(self, self.local_views, image_shape, seed)
        return super().build_augmenter(image_shape, seed)

    def model_on(self, encoder, augmenter, image_shape, total_steps):
        return ks.DINO(
            encoder,
            augmenter,
            output_dim=self.output_dim,
            hidden_dim=self.hidden_dim,
            bottleneck_dim=self.bottleneck_dim,
            head_batch_norm=self.head_batch_norm,
            teacher_temperature=self.teacher_temperature,
            momentum=self.target_momentum,
            momentum_steps=total_steps,
            **self.model_options(image_shape),
        )
