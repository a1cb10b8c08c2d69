"""DINO's recipe (Caron et al. 2021): self-distillation from a momentum teacher."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras_siamese as ks
from keras_siamese.recipes.multi_crop import multi_crop_views
from keras_siamese.recipes.recipe import Recipe, check_integer, check_number

# What DINO's ViT recipe changes over the base ViT changes (`Recipe.vit_changes`: Adam at
# 2e-3, decay 0.05): DINO's own decay and multi-crop's local views; the head, momentum and
# temperature stay this recipe's (the paper's ViT setting collapsed here: see `DINORecipe`).
VIT_CHANGES: dict[str, Any] = {
    "local_views": 4,
    "weight_decay": 0.04,
}


@dataclasses.dataclass(frozen=True)
class DINORecipe(Recipe):
    """DINO as measured on Fashion-MNIST (benchmarks/results/quality-quick-methods.md).

    The paper (ViT-S/16, AdamW 5e-4 x B / 256, weight decay 0.04 -> 0.4, head 2048 -> 256 ->
    65536, teacher temperature 0.04 -> 0.07, momentum 0.996 -> 1, multi-crop) scaled to the
    base recipe's ResNet: Adam with decoupled decay 0.04 at 2e-3, head 512 -> 128 -> 1024
    with BatchNorm in its hidden layers (without it a small encoder's outputs collapsed to
    uniform, tests/test_dino.py), teacher temperature 0.07, base momentum 0.99, the two
    global views only (`local_views` adds multi-crop's local ones).

    The ViT recipe (`ks.recipes.get("dino", encoder_type="vit")`, `VIT_CHANGES`) is this
    recipe on the base recipe's small ViT (patches of 4, 64 features, 4 blocks of 4 heads on
    16x16 crops: a 4x4 grid), with multi-crop's local views ("several local views ... covering
    only small areas" with "a bicubic interpolation to adapt the position embeddings to the
    scales": 4 local views of 96/224 of the 16-pixel crops rounded to whole patches, 8x8,
    through the ViT at their own size), a learned position embedding and the package's grid
    pooling. The paper's ViT setting was measured first and collapsed at this budget
    (benchmarks/results/vit_sweep.jsonl, 4 epochs of Fashion-MNIST, raw pixels kNN 78.9):

    - BN-free head ("when applying DINO to ViT we do not use any BN also in the projection
      heads", section 3.1), teacher temperature warmed up 0.04 -> 0.07 over 30% of the
      steps, Adam 5e-4, momentum 0.996: the loss stayed at ln(1024) (uniform outputs), kNN
      75.9 / linear 84.0 (quality.py's log);
    - the same with the ResNet recipe's BatchNorm in the head: kNN 78.8 / linear 84.7;
    - and at 2e-3: kNN 79.7 / linear 86.2;
    - and with momentum 0.99 and no temperature warm-up (this recipe): kNN 79.7 / linear
      86.6 / 1% 77.5: still below raw pixels + 5 on kNN and below raw pixels on 1% linear.

    Args:
        output_dim: outputs (prototypes) of the head.
        hidden_dim: hidden width of the head.
        bottleneck_dim: the head's bottleneck.
        head_batch_norm: BatchNorm in the head's hidden layers.
        teacher_temperature: the teacher's softmax temperature (after its warm-up).
        warmup_teacher_temperature: the teacher's temperature at the first step, raised
            linearly to `teacher_temperature` (unused without a warm-up).
        teacher_temperature_warmup_fraction: fraction of the steps of that warm-up (0: none).
        target_momentum: the teacher's base momentum.
        local_views: multi-crop's local views (0: the two global views).
        **fields: the `Recipe` fields.

    Example:
        >>> ks.recipes.get("dino").output_dim
        1024
        >>> ks.recipes.get("dino", encoder_type="vit").teacher_temperature_warmup_fraction
        0.3
    """

    name: ClassVar[str] = "dino"
    vit_changes: ClassVar[dict[str, Any]] = {**Recipe.vit_changes, **VIT_CHANGES}
    optimizer: str = "adam"
    learning_rate: float = 2e-3
    weight_decay: float = 0.04
    output_dim: int = 1024
    hidden_dim: int = 512
    bottleneck_dim: int = 128
    head_batch_norm: bool = True
    teacher_temperature: float = 0.07
    warmup_teacher_temperature: float = 0.04
    teacher_temperature_warmup_fraction: float = 0.0
    target_momentum: float = 0.99
    local_views: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("output_dim", "hidden_dim", "bottleneck_dim"):
            check_integer(name, getattr(self, name))
        check_integer("local_views", self.local_views, minimum=0)
        check_number("teacher_temperature", self.teacher_temperature, strict=True)
        check_number("warmup_teacher_temperature", self.warmup_teacher_temperature, strict=True)
        fraction = self.teacher_temperature_warmup_fraction
        check_number("teacher_temperature_warmup_fraction", fraction, 0.0, 1.0)
        check_number("target_momentum", self.target_momentum, 0.0, 1.0)
        if not isinstance(self.head_batch_norm, bool):
            raise TypeError(
                "Recipe field `head_batch_norm` must be a bool. "
                f"Received: head_batch_norm={self.head_batch_norm!r}"
            )

    def teacher_temperature_warmup_steps(self, total_steps: int) -> int:
        """Steps of the teacher temperature's warm-up: the fraction of `total_steps`.

        Example:
            >>> ks.recipes.get("dino", encoder_type="vit").teacher_temperature_warmup_steps(100)
            30
        """
        return round(self.teacher_temperature_warmup_fraction * total_steps)

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
            warmup_teacher_temperature=self.warmup_teacher_temperature,
            teacher_temperature_warmup_steps=self.teacher_temperature_warmup_steps(total_steps),
            momentum=self.target_momentum,
            momentum_steps=total_steps,
            **self.model_options(image_shape),
        )
