"""The names `SiameseNetwork(loss=...)` and the Siamese recipes accept (no TensorFlow at import).

Each name maps to its class in `keras_siamese.losses`; the recipes and the CLI validate a name
here without importing TensorFlow, `keras_siamese.models.siamese_losses` builds the object.
"""

from __future__ import annotations

MARGIN_LOSS_NAMES = {"contrastive": "ContrastiveMargin", "triplet": "TripletLoss"}
PAIR_LOSS_NAMES = {
    "batch_contrastive": "BatchContrastiveLoss",
    "multi_similarity": "MultiSimilarityLoss",
    "circle": "CircleLoss",
    "supervised_contrastive": "SupervisedContrastiveLoss",
}
PROXY_LOSS_NAMES = {
    "arcface": "ArcFaceLoss",
    "sub_center_arcface": "SubCenterArcFaceLoss",
    "cosface": "CosFaceLoss",
    "proxy_anchor": "ProxyAnchorLoss",
    "proxy_nca": "ProxyNCALoss",
}
LOSS_NAMES = (*MARGIN_LOSS_NAMES, *PAIR_LOSS_NAMES, *PROXY_LOSS_NAMES)
