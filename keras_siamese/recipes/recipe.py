"""`Recipe`: the values every method's recipe holds, and how they become a model.

A recipe is a frozen dataclass: the encoder, the views, the batch, the optimizer and its
schedule, the epochs, and (in each method's subclass, `recipes/<method>.py`) the method's own
heads and loss values. It is the one place those values live: the command line's defaults,
the examples and the benchmarks all build from it, so a measured number describes what a user
runs. `dataclasses.replace(recipe, ...)` (or `recipe.replace(...)`) changes values; every
value is checked when the recipe is made.

The defaults are what `benchmarks/recipe.py` measured best per CPU-minute on 28x28 grayscale
Fashion-MNIST (README "The demo recipe"): a ResNet-10 of width 16 with the small-image stem
whose whole last feature map, averaged over a 4x4 grid, is the representation, trained on
16x16 crops (25-100% of the area) at colour strength 1.0 without blur, batches of 256, a 10%
linear warmup then cosine decay.

No TensorFlow at import time: the command line reads the defaults to answer `--help`.
`build_*` import it (through `keras_siamese`) when called.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, ClassVar

import keras_siamese as ks
from keras_siamese.recipes.checks import (  # noqa: F401 (check_dims: the recipes import it here)
    check_choice,
    check_colour,
    check_dims,
    check_integer,
    check_number,
)

if TYPE_CHECKING:
    import keras

ENCODER_TYPES = ("resnet", "vit")
STEMS = ("small", "imagenet")
VIT_POSITION_EMBEDDINGS = ("learned", "sincos")
VIT_POOLINGS = ("cls", "mean", "grid")
VIEWS = ("simclr", "byol")
OPTIMIZERS = ("sgd", "lars", "adam")
SCALINGS = ("linear", "sqrt", "none")
# The fields that make the encoder (a recipe built on another's encoder copies them).
ENCODER_FIELDS = (
    "encoder_type", "encoder_depth", "encoder_width", "encoder_grid", "stem", "patch_size",
    "vit_dim", "vit_depth", "vit_heads", "vit_position_embedding", "vit_pooling",
)  # fmt: skip
MOMENTUM = 0.9  # SGD's and LARS' momentum in every recipe (the papers')


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The values every method's recipe holds; a method's subclass adds its own.

    Args:
        encoder_type: "resnet" (the fields `encoder_*` and `stem`) or "vit" (a Vision
            Transformer, `keras_siamese.encoders.vit`, of the fields `patch_size` and
            `vit_*`, its position embedding defined on the views' grid of patches).
        encoder_depth: ResNet depth (10, 18, 34 or 50).
        encoder_width: filters of the ResNet's first stage (the papers: 64).
        encoder_grid: the representation is the last feature map averaged over an N x N grid
            and flattened; 1 is global average pooling (the papers).
        stem: "small" (3x3, stride 1, no pooling: CIFAR) or "imagenet" (7x7/2 + max-pool).
        patch_size: the ViT's patch side (views and images: multiples of it).
        vit_dim: the ViT's token features.
        vit_depth: the ViT's Transformer blocks.
        vit_heads: the ViT's attention heads.
        vit_position_embedding: "learned" or "sincos".
        vit_pooling: the ViT's representation, "cls", "mean" or "grid" (its patch tokens
            averaged over an `encoder_grid` x `encoder_grid` grid, as the ResNet's map:
            SimCLR-ViT after one epoch measured kNN 79.4 / linear 85.2 with it, 75.4 / 75.4
            with the class token, 76.0 / 74.5 with the mean).
        crop_size: side of the training views; None trains on whole images.
        min_crop_area: smallest random-crop area fraction (the largest is 1).
        color_strength: colour-jitter strength s (SimCLR's).
        hue: the hue jitter's amount at strength 1 (`strength * hue` <= 0.5, a half turn of
            the colour wheel); None: the views' own (SimCLR's 0.2, BYOL's 0.1).
        grayscale_probability: probability of a grey view (3-channel images only; the
            papers' 0.2).
        blur: Gaussian blur on the views (the papers: ImageNet only).
        views: "simclr" (one pipeline for both views) or "byol" (BYOL's asymmetric pair).
        batch_size: global batch size the learning rate is given for.
        epochs: training epochs.
        optimizer: "sgd" (momentum 0.9), "lars" (momentum 0.9) or "adam".
        learning_rate: peak learning rate at `batch_size`.
        learning_rate_scaling: how the peak follows another batch size B: "linear"
            (`learning_rate * B / batch_size`, Goyal et al. 2017), "sqrt" or "none".
        weight_decay: decoupled weight decay (as Keras applies it).
        warmup_fraction: fraction of the steps in linear warmup, then cosine decay to 0.

    Example:
        >>> recipe = ks.recipes.get("simclr").replace(epochs=2, batch_size=64)
        >>> model = recipe.build_model(image_shape=(28, 28, 1), total_steps=100)
    """

    name: ClassVar[str] = ""
    # Changes `ks.recipes.get(name, encoder_type="vit")` applies (a method's ViT recipe):
    # AdamW, as ViTs are trained (SimCLR-ViT after one epoch: SGD at 0.6 measured kNN 74.4
    # and Adam at 1e-3 75.4 with the class token; with the grid Adam at 1e-3 79.4 / linear
    # 85.2 and at 2e-3 79.6 / 85.9; benchmarks/results/vit_sweep.jsonl).
    vit_changes: ClassVar[dict[str, Any]] = {
        "optimizer": "adam",
        "learning_rate": 2e-3,
        "weight_decay": 0.05,
    }
    encoder_type: str = "resnet"
    encoder_depth: int = 10
    encoder_width: int = 16
    encoder_grid: int = 4
    stem: str = "small"
    patch_size: int = 4
    vit_dim: int = 64
    vit_depth: int = 4
    vit_heads: int = 4
    vit_position_embedding: str = "learned"
    vit_pooling: str = "grid"
    crop_size: int | None = 16
    min_crop_area: float = 0.25
    color_strength: float = 1.0
    hue: float | None = None
    grayscale_probability: float = 0.2
    blur: bool = False
    views: str = "simclr"
    batch_size: int = 256
    epochs: int = 10
    optimizer: str = "sgd"
    learning_rate: float = 0.6
    learning_rate_scaling: str = "linear"
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.1

    def __post_init__(self) -> None:
        check_choice("encoder_type", self.encoder_type, ENCODER_TYPES)
        check_choice("encoder_depth", self.encoder_depth, (10, 18, 34, 50))
        for name in ("encoder_width", "encoder_grid", "batch_size", "epochs"):
            check_integer(name, getattr(self, name))
        check_choice("stem", self.stem, STEMS)
        self._check_vit()
        if self.crop_size is not None:
            check_integer("crop_size", self.crop_size)
        check_number("min_crop_area", self.min_crop_area, 0.0, 1.0, strict=True)
        check_number("color_strength", self.color_strength, 0.0, 1.25)
        check_colour(self.hue, self.grayscale_probability, self.color_strength)
        if not isinstance(self.blur, bool):
            raise TypeError(f"Recipe field `blur` must be a bool. Received: blur={self.blur!r}")
        check_choice("views", self.views, VIEWS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_number("learning_rate", self.learning_rate, strict=True)
        check_choice("learning_rate_scaling", self.learning_rate_scaling, SCALINGS)
        check_number("weight_decay", self.weight_decay)
        check_number("warmup_fraction", self.warmup_fraction, 0.0, 0.9)

    def colour_options(self, jitter: tuple[float, float, float, float]) -> dict:
        """The augmenter's colour arguments: `jitter` (the views' amounts at strength 1)
        with the recipe's `hue` when set, and `grayscale_probability`."""
        hue = jitter[3] if self.hue is None else self.hue
        return {
            "color_jitter": (*jitter[:3], hue),
            "grayscale_probability": self.grayscale_probability,
        }

    def _check_vit(self) -> None:
        for name in ("patch_size", "vit_dim", "vit_depth", "vit_heads"):
            check_integer(name, getattr(self, name))
        if self.vit_dim % self.vit_heads:
            raise ValueError(
                "Recipe field `vit_dim` must be a multiple of `vit_heads`. "
                f"Received: vit_dim={self.vit_dim}, vit_heads={self.vit_heads}"
            )
        positions = self.vit_position_embedding
        check_choice("vit_position_embedding", positions, VIT_POSITION_EMBEDDINGS)
        check_choice("vit_pooling", self.vit_pooling, VIT_POOLINGS)
        if self.vit_position_embedding == "sincos" and self.vit_dim % 4:
            raise ValueError(
                "Recipe field `vit_dim` must be a multiple of 4 for the sine-cosine position "
                f"embedding. Received: vit_dim={self.vit_dim}"
            )

    # ------------------------------------------------------------------ values

    def replace(self, **changes: Any) -> Recipe:
        """A copy with `changes` applied (and checked), like `dataclasses.replace`."""
        return dataclasses.replace(self, **changes)

    def get_config(self) -> dict:
        """Every field by name (tuples as lists are accepted back by `from_config`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> Recipe:
        """The recipe of `get_config()`'s dictionary (lists become tuples)."""
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ValueError(
                f"Unknown fields {unknown} for {cls.__name__}; it has {sorted(fields)}. "
                f"Received: {config}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})

    def view_size(self, image_shape: tuple[int, ...]) -> tuple[int, int]:
        """`(height, width)` of the training views for images of `image_shape`."""
        if self.crop_size is None:
            return int(image_shape[0]), int(image_shape[1])
        if self.crop_size > min(image_shape[:2]):
            raise ValueError(
                f"Recipe field `crop_size` ({self.crop_size}) is larger than the images "
                f"{tuple(image_shape[:2])}: views are crops of the images. "
                f"Received: crop_size={self.crop_size}, image_shape={tuple(image_shape)}"
            )
        return self.crop_size, self.crop_size

    def peak_learning_rate(self, batch_size: int | None = None) -> float:
        """`learning_rate` scaled from the recipe's batch size to `batch_size`."""
        ratio = (batch_size or self.batch_size) / self.batch_size
        if self.learning_rate_scaling == "linear":
            return self.learning_rate * ratio
        if self.learning_rate_scaling == "sqrt":
            return self.learning_rate * math.sqrt(ratio)
        return self.learning_rate

    def warmup_steps(self, total_steps: int) -> int:
        """Steps of linear warmup: `warmup_fraction` of `total_steps`, below `total_steps`."""
        return max(0, min(round(self.warmup_fraction * total_steps), total_steps - 1))

    def smallest_view(self) -> int:
        """The smallest view side the recipe's encoder takes (a ViT: one patch).

        The small stem keeps the resolution and the three strided stages divide it by 8 (the
        imagenet stem by 32), so 8 (32) pixels end on a 1x1 map; a grid of averages needs at
        least 2x2 (Keras' `AdaptiveAveragePooling2D` fails in a traced step on a 1x1 map).
        """
        if self.encoder_type == "vit":
            return self.patch_size
        stride = 8 if self.stem == "small" else 32
        return stride if self.encoder_grid == 1 else stride + 1

    def steps_per_epoch(self, num_examples: int, batch_size: int | None = None) -> int:
        """Whole batches in `num_examples` (at least 1)."""
        return max(1, num_examples // (batch_size or self.batch_size))

    # ------------------------------------------------------------------ builders

    def build_encoder(
        self, channels: int = 1, image_shape: tuple[int, ...] | None = None
    ) -> keras.Model:
        """The recipe's encoder (ResNet or ViT), of any input size.

        Args:
            channels: image channels.
            image_shape: the images' `(height, width, channels)`; a ViT defines its
                position embedding on the grid of the recipe's views of them (required
                for "vit", unused by the ResNet).

        Returns:
            A `keras.Model` from images in [0, 1] to features.

        Raises:
            ValueError: for a ViT without `image_shape`, or views that are not multiples
                of `patch_size`.
        """
        if self.encoder_type == "vit":
            return self._build_vit(channels, image_shape)
        return ks.encoders.resnet(
            self.encoder_depth,
            input_shape=(None, None, channels),
            small_images=self.stem == "small",
            width=self.encoder_width,
            grid_size=self.encoder_grid if self.encoder_grid > 1 else None,
        )

    def _build_vit(self, channels: int, image_shape) -> keras.Model:
        if image_shape is None:
            raise ValueError(
                "A ViT recipe needs the images' shape to lay out its position embedding: "
                "call build_encoder(channels, image_shape=(height, width, channels)). "
                "Received: image_shape=None"
            )
        return ks.encoders.vit(
            self.view_size(image_shape),
            self.patch_size,
            dim=self.vit_dim,
            depth=self.vit_depth,
            heads=self.vit_heads,
            channels=channels,
            position_embedding=self.vit_position_embedding,
            pooling=self.vit_pooling,
            pool_grid=self.encoder_grid,
            any_size=True,
        )

    def build_augmenter(self, image_shape: tuple[int, int, int], seed: int | None = None):
        """The views of `views` at the recipe's view size: a layer, or a pair for "byol"."""
        options = dict(
            channels=int(image_shape[-1]),
            strength=self.color_strength,
            blur=self.blur,
            crop_area=(self.min_crop_area, 1.0),
            seed=seed,
        )
        from keras_siamese.augment.recipes import BYOL_COLOR_JITTER
        from keras_siamese.augment.simclr_augmenter import SIMCLR_COLOR_JITTER

        size = self.view_size(image_shape)
        if self.views == "byol":
            jitter = self.colour_options(BYOL_COLOR_JITTER)
            return ks.augment.byol_augmenters(size, **options, **jitter)
        jitter = self.colour_options(SIMCLR_COLOR_JITTER)
        return ks.augment.simclr_augmenter(size, **options, **jitter)

    def model_options(self, image_shape: tuple[int, int, int]) -> dict:
        """`image_size=`: the model takes and serves whole images of `image_shape`, whatever
        the views' size (an encoder of any input size needs it; a fixed one accepts it)."""
        self.view_size(image_shape)  # checks that the views fit
        return {"image_size": tuple(int(side) for side in image_shape[:2])}

    def build_model(
        self,
        image_shape: tuple[int, int, int] = (28, 28, 1),
        total_steps: int = 1,
        encoder: keras.Model | None = None,
        augmenter: Any = None,
        seed: int | None = None,
    ) -> keras.Model:
        """The method's model (not compiled).

        Args:
            image_shape: `(height, width, channels)` of the images the model takes.
            total_steps: the run's optimizer steps (momentum schedules span them).
            encoder: the backbone; None builds `build_encoder`.
            augmenter: the views; None builds `build_augmenter`.
            seed: seed of the augmenter built here.

        Returns:
            An uncompiled `keras_siamese` model.
        """
        if encoder is None:
            encoder = self.build_encoder(int(image_shape[-1]), image_shape)
        if augmenter is None:
            augmenter = self.build_augmenter(image_shape, seed)
        return self.model_on(encoder, augmenter, image_shape, total_steps)

    def model_on(self, encoder, augmenter, image_shape, total_steps: int) -> keras.Model:
        """The method's model on `encoder` and `augmenter`: each method implements it."""
        raise NotImplementedError(f"{type(self).__name__} must implement `model_on`.")

    def build_optimizer(
        self, total_steps: int, batch_size: int | None = None
    ) -> keras.optimizers.Optimizer:
        """`optimizer` on warmup + cosine decay to 0 over `total_steps`.

        Args:
            total_steps: optimizer steps of the run.
            batch_size: the global batch trained with (default the recipe's): the peak rate
                follows it by `learning_rate_scaling`.

        Returns:
            A `keras.optimizers.Optimizer`.
        """
        import keras

        check_integer("total_steps", total_steps)
        schedule = ks.optimizers.WarmupCosine(
            peak_learning_rate=self.peak_learning_rate(batch_size),
            total_steps=total_steps,
            warmup_steps=self.warmup_steps(total_steps),
        )
        decay = self.weight_decay or None
        if self.optimizer == "lars":
            return ks.optimizers.LARS(schedule, momentum=MOMENTUM, weight_decay=decay or 0.0)
        if self.optimizer == "adam":
            return keras.optimizers.Adam(schedule, weight_decay=decay)
        return keras.optimizers.SGD(schedule, momentum=MOMENTUM, weight_decay=decay)

    def build(
        self,
        image_shape: tuple[int, int, int] = (28, 28, 1),
        total_steps: int = 1,
        encoder: keras.Model | None = None,
        batch_size: int | None = None,
        seed: int | None = None,
        jit_compile: bool | str = False,
    ) -> keras.Model:
        """`build_model`, compiled with `build_optimizer`: ready to `fit`.

        Example:
            >>> model = ks.recipes.get("simclr").build((28, 28, 1), total_steps=2340)
        """
        model = self.build_model(image_shape, total_steps, encoder=encoder, seed=seed)
        optimizer = self.build_optimizer(total_steps, batch_size)
        model.compile(optimizer=optimizer, jit_compile=jit_compile)
        return model
