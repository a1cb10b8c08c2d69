"""`train --method=siamese-contrastive`, `siamese-triplet`, `siamese-metric`: Siamese networks.

A shared encoder, first pretrained with SimCLR for `--pretrain_epochs` (the recipe's
`pretraining_recipe()`), then trained on labelled pairs under the contrastive margin loss
(Hadsell et al. 2006), on P x K batches under the triplet loss (Schroff et al. 2015), or on
P x K batches under any metric-learning loss of `keras_siamese.losses` (`--metric_loss`:
multi-similarity, circle, SupCon, ArcFace, ProxyAnchor, ...; `--memory_size` adds a
cross-batch memory to a pair loss; a proxy loss learns one proxy per class of the data).
Defaults: `keras_siamese.recipes.get("siamese-contrastive")`, `get("siamese-triplet")` and
`get("siamese-metric")`; where the recipes differ (the margin) the flag is `auto`. The
combinations the model cannot train are refused before training (`flag_checks.metric_flags`,
the memory against the global batch in `run_config.resolve`).
"""

from __future__ import annotations

import keras_siamese as ks
from keras_siamese.cli import method_batches
from keras_siamese.cli.methods.method import (
    Method,
    auto_float_flag,
    auto_integer_flag,
    bool_flag,
    enum_flag,
    integer_flag,
    no_monitors,
)
from keras_siamese.loss_names import LOSS_NAMES
from keras_siamese.recipes.siamese import DISTANCES, MININGS

TRIPLET = ks.recipes.get("siamese-triplet")
CONTRASTIVE = ks.recipes.get("siamese-contrastive")
METRIC = ks.recipes.get("siamese-metric")

SIAMESE_FLAGS = (
    auto_integer_flag(
        "siamese_embedding_dim",
        "embedding_dim",
        f"Size of the L2-normalised embedding (0: the encoder's features); auto: the recipe's "
        f"(contrastive {CONTRASTIVE.embedding_dim}, triplet {TRIPLET.embedding_dim}, metric "
        f"{METRIC.embedding_dim}).",
    ),
    auto_float_flag(
        "siamese_margin",
        "margin",
        f"Loss margin; auto: the recipe's (contrastive {CONTRASTIVE.margin:g}, triplet "
        f"{TRIPLET.margin:g}).",
    ),
    enum_flag("siamese_distance", "distance", TRIPLET.distance, DISTANCES, "Distance."),
    bool_flag(
        "siamese_augment", "augment", TRIPLET.augment, "Augment the images (SimCLR's views)."
    ),
    auto_float_flag(
        "pretrain_epochs",
        "pretrain_epochs",
        f"Epochs of SimCLR pretraining of the encoder first (batches of 256; 0: none); auto: "
        f"the recipe's ({TRIPLET.pretrain_epochs:g}).",
    ),
)
CLASSES_PER_BATCH = integer_flag(
    "classes_per_batch",
    "classes_per_batch",
    TRIPLET.classes_per_batch,
    "Classes P of the P x K batches (0: as many as the dataset has, at most "
    "batch_size / 2); K = batch_size // P.",
)
TRIPLET_FLAGS = (
    enum_flag("triplet_mining", "mining", TRIPLET.mining, MININGS, "Online triplet mining."),
    CLASSES_PER_BATCH,
)
METRIC_FLAGS = (
    enum_flag(
        "metric_loss",
        "loss",
        METRIC.loss,
        [name for name in LOSS_NAMES if name != "contrastive"],
        "The loss on P x K batches (pytorch-metric-learning's defaults; proxy losses learn "
        "one weight per class of the training labels).",
    ),
    integer_flag(
        "memory_size",
        "memory_size",
        METRIC.memory_size,
        "Cross-batch memory (XBM) of this many embeddings, at least one global batch, for a "
        "pair loss (multi_similarity, circle, supervised_contrastive, batch_contrastive; 0: "
        "none).",
    ),
    integer_flag(
        "views_per_image",
        "views_per_image",
        METRIC.views_per_image,
        "2: two augmented views of each image (needs --siamese_augment), as SupCon trains.",
    ),
    CLASSES_PER_BATCH,
)

CONTRASTIVE_METHOD = Method(
    "siamese-contrastive",
    "Siamese network on labelled pairs, contrastive margin loss (Hadsell et al. 2006)",
    model_class="SiameseNetwork",
    recipe=CONTRASTIVE,
    flags=SIAMESE_FLAGS,
    needs_labels=True,
    build_batches=method_batches.pairs,
    build_monitors=no_monitors,
    pretrains=True,
)


def _labelled_method(name: str, summary: str, recipe, flags) -> Method:
    """A Siamese row on P x K batches of labelled images, SimCLR pretraining first."""
    return Method(
        name,
        summary,
        model_class="SiameseNetwork",
        recipe=recipe,
        flags=flags,
        needs_labels=True,
        batch_layout=method_batches.class_balanced,
        build_batches=method_batches.class_balanced_batches,
        build_monitors=no_monitors,
        pretrains=True,
    )


TRIPLET_METHOD = _labelled_method(
    "siamese-triplet",
    "Siamese network on labelled triplets, triplet margin loss (Schroff et al. 2015)",
    TRIPLET,
    (*SIAMESE_FLAGS, *TRIPLET_FLAGS),
)
METRIC_METHOD = _labelled_method(
    "siamese-metric",
    "Siamese network on P x K batches, any metric loss (multi-similarity, ArcFace, ...)",
    METRIC,
    (*SIAMESE_FLAGS, *METRIC_FLAGS),
)
