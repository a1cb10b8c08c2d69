"""MAE's recipe (He et al. 2022): reconstruct the masked 75% of a ViT's patches."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

import keras_siamese as ks
from keras_siamese.recipes.recipe import Recipe, check_integer, check_number

if TYPE_CHECKING:
    import keras


@dataclasses.dataclass(frozen=True)
class MAERecipe(Recipe):
    """MAE scaled down to 28x28 images on a CPU; not yet measured on Fashion-MNIST.

    The paper pretrains a ViT-L/16 on 224-pixel ImageNet crops for 800-1600 epochs with
    AdamW (betas 0.9, 0.95, weight decay 0.05), a base learning rate of 1.5e-4 x B / 256
    (batch 4096) after 40 epochs of warmup, then cosine decay; masks 75% of the patches;
    a decoder of 8 blocks, 512-d, 16 heads; normalised-pixel targets; "random resized
    cropping (0.2-1) and horizontal flipping" only (appendix A.1). Here: the base recipe's
    ViT (patches of 4 on whole 28x28 images, a 7x7 grid of which 12 patches stay visible;
    64-d, 4 blocks, 4 heads) with the paper's fixed sine-cosine positions and the patch
    tokens averaged over a 4x4 grid as the representation (the package's ViT pooling, as
    measured for SimCLR-ViT; MAE fine-tunes on the tokens' mean, `vit_pooling="mean"`);
    the decoder
    scaled like the encoder, 64-d, 2 blocks, 4 heads; the same crop 0.2-1 and flip, no
    colour. Adam with decoupled weight decay 0.05 and beta_2 = 0.95 as the paper, at a
    peak of 1.5e-3 for a batch of 256 after a 10% warmup: the paper's 1.5e-4 is tuned for
    hundreds of epochs, and a few epochs of a small ViT on small images learn faster ten
    times higher (the usual range of small-data MAE runs is 1e-3 to 2e-3). Weight decay
    applies to every weight (the paper exempts biases and norms; Keras' exclusion list is
    not part of a saved optimizer's config, so a reloaded model would decay differently).
    `benchmarks/` has not measured these values yet: they may change.

    Args:
        mask_ratio: the fraction of patches masked, in (0, 1).
        decoder_dim: the decoder's token features (a multiple of 4 and of the heads).
        decoder_depth: the decoder's Transformer blocks.
        decoder_heads: the decoder's attention heads.
        normalize_targets: reconstruct each patch's normalised pixels (the paper's).
        adam_beta_2: Adam's second-moment decay with `optimizer="adam"` (paper: 0.95).
        **fields: the `Recipe` fields (`crop_size` must stay None: the views are crops
            resized to the whole image, which the model reconstructs and serves).

    Example:
        >>> recipe = ks.recipes.get("mae")
        >>> recipe.mask_ratio, recipe.decoder_dim, recipe.encoder_type
        (0.75, 64, 'vit')
    """

    name: ClassVar[str] = "mae"
    vit_changes: ClassVar[dict[str, Any]] = {}  # its own values are already the ViT's
    encoder_type: str = "vit"
    vit_position_embedding: str = "sincos"
    vit_pooling: str = "grid"
    crop_size: int | None = None
    min_crop_area: float = 0.2
    color_strength: float = 0.0
    optimizer: str = "adam"
    learning_rate: float = 1.5e-3
    weight_decay: float = 0.05
    mask_ratio: float = 0.75
    decoder_dim: int = 64
    decoder_depth: int = 2
    decoder_heads: int = 4
    normalize_targets: bool = True
    adam_beta_2: float = 0.95

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.encoder_type != "vit":
            raise ValueError(
                "Recipe field `encoder_type` must be 'vit' for MAE: it drops patch tokens "
                f"inside the ViT. Received: encoder_type={self.encoder_type!r}"
            )
        if self.crop_size is not None:
            raise ValueError(
                "Recipe field `crop_size` must be None for MAE (0 on the command line): its "
                "views are random crops resized to the whole image, which it reconstructs. "
                f"Received: crop_size={self.crop_size!r}"
            )
        check_number("mask_ratio", self.mask_ratio, 0.0, 1.0, strict=True)
        if self.mask_ratio == 1.0:
            raise ValueError("Recipe field `mask_ratio` must be below 1. Received: mask_ratio=1.0")
        for name in ("decoder_dim", "decoder_depth", "decoder_heads"):
            check_integer(name, getattr(self, name))
        if self.decoder_dim % 4:
            raise ValueError(
                "Recipe field `decoder_dim` must be a multiple of 4 (the sine-cosine positions "
                f"of rows and columns). Received: decoder_dim={self.decoder_dim}"
            )
        if self.decoder_dim % self.decoder_heads:
            raise ValueError(
                "Recipe field `decoder_heads` must be a divisor of `decoder_dim` (each head sees "
                f"decoder_dim / decoder_heads features). Received: decoder_heads="
                f"{self.decoder_heads}, decoder_dim={self.decoder_dim}"
            )
        if not isinstance(self.normalize_targets, bool):
            raise TypeError(
                "Recipe field `normalize_targets` must be a bool. "
                f"Received: normalize_targets={self.normalize_targets!r}"
            )
        check_number("adam_beta_2", self.adam_beta_2, 0.0, 1.0)

    def build_augmenter(self, image_shape: tuple[int, int, int], seed: int | None = None):
        """MAE's views: a random resized crop of `min_crop_area`-1 and a flip, no colour."""
        return ks.models.mae.mae_augmenter(
            self.view_size(image_shape), crop_area=(self.min_crop_area, 1.0), seed=seed
        )

    def build_model(
        self,
        image_shape: tuple[int, int, int] = (28, 28, 1),
        total_steps: int = 1,
        encoder: keras.Model | None = None,
        augmenter: Any = None,
        seed: int | None = None,
    ) -> keras.Model:
        """`Recipe.build_model`, with `seed` also seeding the masks (None: drawn)."""
        if encoder is None:
            encoder = self.build_encoder(int(image_shape[-1]), image_shape)
        if augmenter is None:
            augmenter = self.build_augmenter(image_shape, seed)
        return self._model(encoder, augmenter, image_shape, seed)

    def model_on(self, encoder, augmenter, image_shape, total_steps):
        return self._model(encoder, augmenter, image_shape, None)

    def _model(self, encoder, augmenter, image_shape, seed):
        return ks.MAE(
            encoder,
            augmenter,
            mask_ratio=self.mask_ratio,
            decoder_dim=self.decoder_dim,
            decoder_depth=self.decoder_depth,
            decoder_heads=self.decoder_heads,
            normalize_targets=self.normalize_targets,
            seed=seed,
            **self.model_options(image_shape),
        )

    def build_optimizer(self, total_steps: int, batch_size: int | None = None):
        """`Recipe.build_optimizer`, Adam with the paper's `beta_2` (0.95)."""
        optimizer = super().build_optimizer(total_steps, batch_size)
        if self.optimizer == "adam":
            optimizer.beta_2 = self.adam_beta_2  # read by its update and its config
        return optimizer
