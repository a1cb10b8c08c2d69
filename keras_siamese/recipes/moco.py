"""MoCo's recipe (He et al. 2020; Chen et al. 2020, 2021): InfoNCE against momentum keys."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras_siamese as ks
from keras_siamese.recipes.recipe import Recipe, check_choice, check_integer, check_number


@dataclasses.dataclass(frozen=True)
class MoCoRecipe(Recipe):
    """MoCo v2 as measured on Fashion-MNIST (benchmarks/results/quality-quick-methods.md).

    MoCo v2 (a queue of 65536 keys, momentum 0.999, T=0.2, heads 2048 -> 128, SimCLR's
    augmentation) scaled to the base recipe: a queue of 4096 keys (16 batches of 256), a
    constant momentum of 0.99, heads 512 -> 128, SGD at 0.8 for a batch of 256 without weight
    decay. `moco_version="v3"` uses the batch's keys, a predictor and a cosine momentum.

    Args:
        moco_version: "v2" (a queue of keys) or "v3" (the batch's keys).
        queue_size: v2's queue of negative keys (at least the batch size).
        temperature: InfoNCE temperature.
        projection_dim: output of the heads.
        hidden_dim: hidden width of the heads.
        target_momentum: the key encoder's momentum (v3: its base, raised to 1).
        **fields: the `Recipe` fields.

    Example:
        >>> ks.recipes.get("moco").queue_size
        4096
    """

    name: ClassVar[str] = "moco"
    learning_rate: float = 0.8
    weight_decay: float = 0.0
    moco_version: str = "v2"
    queue_size: int = 4096
    temperature: float = 0.2
    projection_dim: int = 128
    hidden_dim: int = 512
    target_momentum: float = 0.99

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("moco_version", self.moco_version, ("v2", "v3"))
        for name in ("queue_size", "projection_dim", "hidden_dim"):
            check_integer(name, getattr(self, name))
        check_number("temperature", self.temperature, strict=True)
        check_number("target_momentum", self.target_momentum, 0.0, 1.0)

    def model_on(self, encoder, augmenter, image_shape, total_steps):
        return ks.MoCo(
            encoder,
            augmenter,
            version=self.moco_version,
            queue_size=self.queue_size,
            momentum=self.target_momentum,
            temperature=self.temperature,
            projection_dim=self.projection_dim,
            hidden_dim=self.hidden_dim,
            momentum_steps=total_steps,
            **self.model_options(image_shape),
        )
