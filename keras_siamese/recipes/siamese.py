"""The Siamese networks' recipes: a shared encoder under a contrastive or triplet loss."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras_siamese as ks
from keras_siamese.loss_names import (
    LOSS_NAMES,
    MARGIN_LOSS_NAMES,
    PAIR_LOSS_NAMES,
    PROXY_LOSS_NAMES,
)
from keras_siamese.recipes.recipe import (
    ENCODER_FIELDS,
    Recipe,
    check_choice,
    check_integer,
    check_number,
)
from keras_siamese.recipes.simclr import SimCLRRecipe

LOSSES = LOSS_NAMES
MININGS = ("semi-hard", "hard", "all")
DISTANCES = ("euclidean", "cosine")


@dataclasses.dataclass(frozen=True)
class SiameseRecipe(Recipe):
    """A Siamese network as `examples/siamese_fashion_mnist.py` measured it best.

    The recipe `benchmarks/recipe.py` found best within 5 minutes on 2 CPU cores
    (benchmarks/results/sweep.md), refined by `benchmarks/metric_learning_sweep.py` on the
    unseen classes 7-9 (benchmarks/results/metric_learning_sweep.jsonl): the SimCLR recipe's
    encoder, pretrained with SimCLR for `pretrain_epochs` on the training images (labels
    unused), then `epochs` of the loss on whole images, Adam on a cosine decay without
    warmup. Triplet (Schroff et al. 2015; Hermans et al. 2017): hard mining in P x K batches
    ("the batch hard triplet loss ... performs best"), margin 0.2, the encoder's 4 x 4 grid
    features L2-normalised as the embedding (no linear layer: over 3 seeds mAP@R 0.76 and
    recall@1 0.967 against 0.70 and 0.959 with a 128-d layer, ROC AUC 0.88 for both), 1e-3
    at a batch of 112 (the example's 7 seen classes x 16; on 10 classes P x K is 10 x 11 =
    110, and the peak rate follows the real batch linearly). Contrastive (Hadsell et al.
    2006): pairs, half positive, margin 1.0, a 128-d embedding, 5e-4 at a batch of 64.
    Against raw pixels the pretraining lifts retrieval, hard mining verification (semi-hard
    from scratch: ROC AUC 0.70-0.71); a second epoch on the seen classes lowers both.

    Args:
        loss: "contrastive" (labelled pairs) or a loss on P x K batches of labelled images:
            "triplet" or a name of `keras_siamese.loss_names.LOSS_NAMES`
            ("multi_similarity", "arcface", ...; pytorch-metric-learning's defaults).
        mining: the triplet loss' online mining: "semi-hard", "hard" or "all".
        margin: the loss' margin.
        embedding_dim: size of the L2-normalised embedding (0: the encoder's features).
        distance: "euclidean" or "cosine".
        classes_per_batch: P of the triplet batches (0: as many as the data has, at most
            half the batch); K = batch_size // P.
        pretrain_epochs: epochs of SimCLR (its recipe, this encoder) first; 0: none.
        augment: train on SimCLR views of the images instead of the images.
        num_classes: classes of the training labels, for a proxy loss (0: set from the data
            by whoever builds the model, e.g. `recipe.replace(num_classes=7)`).
        memory_size: a cross-batch memory of this many embeddings for a pair loss of
            `PAIR_LOSS_NAMES` (0: none).
        views_per_image: 2 trains on two augmented views of each image (needs `augment` and
            a loss other than "contrastive" and "triplet").
        **fields: the `Recipe` fields (`crop_size` None: whole images).

    Raises:
        ValueError: for a value out of its field's range, `memory_size` with a loss that is
            not a pair loss (a proxy loss has its class proxies instead), or
            `views_per_image=2` without `augment` or with the contrastive or triplet loss.

    Example:
        >>> recipe = ks.recipes.get("siamese-triplet")
        >>> recipe.mining, recipe.batch_size
        ('hard', 112)
    """

    name: ClassVar[str] = "siamese-triplet"
    crop_size: int | None = None
    batch_size: int = 112
    epochs: int = 1
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    warmup_fraction: float = 0.0
    loss: str = "triplet"
    mining: str = "hard"
    margin: float = 0.2
    embedding_dim: int = 0
    distance: str = "euclidean"
    classes_per_batch: int = 0
    pretrain_epochs: float = 3.0
    augment: bool = False
    num_classes: int = 0
    memory_size: int = 0
    views_per_image: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("loss", self.loss, LOSSES)
        check_choice("mining", self.mining, MININGS)
        check_choice("distance", self.distance, DISTANCES)
        check_number("margin", self.margin, strict=True)
        check_number("pretrain_epochs", self.pretrain_epochs)
        check_integer("embedding_dim", self.embedding_dim, minimum=0)
        check_integer("classes_per_batch", self.classes_per_batch, minimum=0)
        check_integer("num_classes", self.num_classes, minimum=0)
        check_integer("memory_size", self.memory_size, minimum=0)
        check_choice("views_per_image", self.views_per_image, (1, 2))
        self._check_memory_and_views()

    def _check_memory_and_views(self) -> None:
        """`memory_size` needs a pair loss; two views need augmentation and a metric loss."""
        if self.memory_size and self.loss not in PAIR_LOSS_NAMES:
            instead = (
                "; a proxy loss has its class proxies" if self.loss in PROXY_LOSS_NAMES else ""
            )
            raise ValueError(
                f"Recipe field `memory_size` must be 0 for the loss {self.loss!r}: a cross-batch "
                f"memory serves a pair loss ({', '.join(PAIR_LOSS_NAMES)}){instead}. "
                f"Received: memory_size={self.memory_size}, loss={self.loss!r}"
            )
        if self.views_per_image == 2 and (not self.augment or self.loss in MARGIN_LOSS_NAMES):
            raise ValueError(
                "Recipe field `views_per_image` must be 1 unless `augment` is True and the "
                "loss is neither 'contrastive' nor 'triplet' (two views of one image differ "
                "only by augmentation, e.g. loss='supervised_contrastive', augment=True). "
                f"Received: views_per_image=2, augment={self.augment}, loss={self.loss!r}"
            )

    @property
    def pairs(self) -> bool:
        """True when the loss trains on labelled pairs, False for P x K batches."""
        return self.loss == "contrastive"

    def build_loss(self):
        """The recipe's loss object (a proxy loss needs `num_classes`).

        Raises:
            ValueError: for a proxy loss without `num_classes`.
        """
        from keras_siamese.models.siamese_losses import resolve_loss

        if self.loss == "contrastive":
            return ks.losses.ContrastiveMargin(margin=self.margin)
        if self.loss == "triplet":
            return ks.losses.TripletLoss(margin=self.margin, mining=self.mining)
        if self.loss in PROXY_LOSS_NAMES:
            if not self.num_classes:
                raise ValueError(
                    f"The proxy loss {self.loss!r} needs num_classes (the classes of the "
                    "training labels, e.g. `recipe.replace(num_classes=7)`). Received: "
                    f"num_classes={self.num_classes}"
                )
            return resolve_loss(self.loss, self.num_classes)
        loss = resolve_loss(self.loss)
        return ks.losses.CrossBatchMemory(loss, self.memory_size) if self.memory_size else loss

    def build_augmenter(self, image_shape, seed=None):
        """SimCLR's views when `augment`, else None (the images as they are)."""
        return super().build_augmenter(image_shape, seed) if self.augment else None

    def model_on(self, encoder, augmenter, image_shape, total_steps):
        return ks.SiameseNetwork(
            encoder,
            loss=self.build_loss(),
            distance=self.distance,
            embedding_dim=self.embedding_dim or None,
            augmenter=augmenter,
            views_per_image=self.views_per_image,
            **self.model_options(image_shape),
        )

    def pretraining_recipe(self) -> SimCLRRecipe:
        """SimCLR's recipe on this recipe's encoder: what `pretrain_epochs` trains first."""
        return SimCLRRecipe(**{name: getattr(self, name) for name in ENCODER_FIELDS})

    def triplet_layout(self, num_classes: int, batch_size: int | None = None):
        """`(P, K)` of the triplet batches for data of `num_classes` classes.

        Raises:
            ValueError: if P exceeds the classes or K would be below 2.
        """
        batch_size = batch_size or self.batch_size
        classes = self.classes_per_batch or min(num_classes, batch_size // 2)
        if classes > num_classes:
            raise ValueError(
                f"classes_per_batch ({classes}) exceeds the {num_classes} classes of the data. "
                f"Received: classes_per_batch={classes}"
            )
        if batch_size // classes < 2:
            raise ValueError(
                f"batch_size ({batch_size}) must hold at least 2 examples of each of the "
                f"{classes} classes per batch, or no triplet has a positive. "
                f"Received: batch_size={batch_size}, classes_per_batch={classes}"
            )
        return classes, batch_size // classes


@dataclasses.dataclass(frozen=True)
class SiameseContrastiveRecipe(SiameseRecipe):
    """`SiameseRecipe` with the contrastive loss on pairs (its measured values).

    Example:
        >>> ks.recipes.get("siamese-contrastive").margin
        1.0
    """

    name: ClassVar[str] = "siamese-contrastive"
    loss: str = "contrastive"
    margin: float = 1.0
    batch_size: int = 64
    learning_rate: float = 5e-4
    embedding_dim: int = 128


@dataclasses.dataclass(frozen=True)
class SiameseMetricRecipe(SiameseRecipe):
    """`SiameseRecipe` with a metric-learning loss on P x K batches (its measured values).

    The loss is any of `keras_siamese.loss_names.LOSS_NAMES` with pytorch-metric-learning's
    default hyperparameters. The default is ProxyAnchor (Kim et al. 2020), the loss of
    `PAIR_LOSS_NAMES` and `PROXY_LOSS_NAMES` that `benchmarks/metric_learning_sweep.py`
    measured best on the unseen classes 7-9 (mAP@R 0.769-0.770 over 2 seeds, ROC AUC 0.86),
    at 1e-3 into a 128-d embedding; the triplet recipe remains the best overall there.

    Example:
        >>> ks.recipes.get("siamese-metric").loss
        'proxy_anchor'
    """

    name: ClassVar[str] = "siamese-metric"
    loss: str = "proxy_anchor"
    learning_rate: float = 1e-3
    embedding_dim: int = 128


def for_loss(loss: str) -> SiameseRecipe:
    """The recipe of a Siamese network trained with `loss` (any name of `LOSS_NAMES`).

    "contrastive" and "triplet" have their own recipes; every other loss starts from
    "siamese-metric" with its loss replaced.

    Raises:
        ValueError: for an unknown loss name.

    Example:
        >>> for_loss("arcface").loss
        'arcface'
    """
    check_choice("loss", loss, LOSSES)
    if loss == "contrastive":
        return SiameseContrastiveRecipe()
    if loss == "triplet":
        return SiameseRecipe()
    return SiameseMetricRecipe(loss=loss)
