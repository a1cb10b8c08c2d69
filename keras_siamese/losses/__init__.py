"""Losses of the two-view methods: one module per loss, each a pure function plus a Loss class.

Every function takes the two projections (or predictions) of a batch, computes in float32
whatever the compute dtype of the model (mixed precision), and returns the mean over the
batch. Under `tf.distribute` a training step divides each replica's loss by the number of
replicas with `distribute.scale_for_replicas`, exactly as for any per-replica loss. The
losses that gather across replicas (`nt_xent`, `triplet_loss`) normalise by the global
count (anchors, pairs or triplets), so the sum over replicas equals the one-device loss
also when replicas hold different batch sizes.

Modules, re-exported here:
    - `nt_xent` (SimCLR): `nt_xent`, `NTXent`.
    - `negative_cosine` (SimSiam): `negative_cosine`, `NegativeCosine`.
    - `contrastive` (Siamese pairs): `contrastive_margin`, `ContrastiveMargin`.
    - `triplet` (Siamese triplets, online mining): `triplet_loss`, `TripletLoss`.
    - `info_nce` (MoCo v2 with a queue, v3 in-batch): `info_nce`, `InfoNCE`.
    - `dino` (DINO's self-distillation): `dino`, `DINOLoss`.
    - `_checks`: the shape checks they share (argument values: `keras_siamese.validation`).
"""

from keras_siamese.losses.contrastive import ContrastiveMargin, contrastive_margin
from keras_siamese.losses.dino import DINOLoss, dino
from keras_siamese.losses.info_nce import InfoNCE, info_nce
from keras_siamese.losses.negative_cosine import NegativeCosine, negative_cosine
from keras_siamese.losses.nt_xent import LARGE_NEGATIVE, NTXent, nt_xent
from keras_siamese.losses.triplet import MINING_MODES, TripletLoss, triplet_loss

__all__ = [
    "LARGE_NEGATIVE",
    "MINING_MODES",
    "ContrastiveMargin",
    "DINOLoss",
    "InfoNCE",
    "NTXent",
    "NegativeCosine",
    "TripletLoss",
    "contrastive_margin",
    "dino",
    "info_nce",
    "negative_cosine",
    "nt_xent",
    "triplet_loss",
]
