"""Losses of the nine methods: one module per loss, each a pure function plus a Loss class.

Every function takes the outputs of a batch (the two projections or predictions of the
two-view methods, the multi-crop views of DINO and SwAV, the embeddings of Siamese pairs or
triplets), computes in float32 whatever the compute dtype of the model (mixed precision), and
returns the mean over the batch. Under `tf.distribute` a training step divides each replica's
loss by the number of replicas with `distribute.scale_for_replicas`, exactly as for any
per-replica loss. The losses that gather across replicas (`nt_xent`, `triplet_loss`)
normalise by the global count (anchors, pairs or triplets), so the sum over replicas equals
the one-device loss also when replicas hold different batch sizes.

Modules, re-exported here:
    - `nt_xent` (SimCLR): `nt_xent`, `NTXent`.
    - `negative_cosine` (SimSiam): `negative_cosine`, `NegativeCosine`.
    - `contrastive` (Siamese pairs): `contrastive_margin`, `ContrastiveMargin`.
    - `triplet` (Siamese triplets, online mining): `triplet_loss`, `TripletLoss`.
    - `info_nce` (MoCo v2 with a queue, v3 in-batch): `info_nce`, `InfoNCE`.
    - `dino` (DINO's self-distillation): `dino`, `DINOLoss`.
    - `barlow_twins`, `vicreg` (redundancy reduction): `barlow_twins`, `BarlowTwinsLoss`,
      `vicreg`, `VICRegLoss`; `swav` (swapped prediction): `swav`, `SwAVLoss`, and
      `sinkhorn` (its codes). Under `tf.distribute` these gather the global batch and return
      its loss on every replica (`scale_for_replicas` then sums to one device's gradients).
    - `_checks`: the shape checks they share (argument values: `keras_siamese.validation`).
"""

from keras_siamese.losses.barlow_twins import BarlowTwinsLoss, barlow_twins
from keras_siamese.losses.contrastive import ContrastiveMargin, contrastive_margin
from keras_siamese.losses.cross_batch_memory import CrossBatchMemory
from keras_siamese.losses.dino import DINOLoss, dino
from keras_siamese.losses.info_nce import InfoNCE, info_nce
from keras_siamese.losses.metric_loss import MetricLoss
from keras_siamese.losses.negative_cosine import NegativeCosine, negative_cosine
from keras_siamese.losses.nt_xent import LARGE_NEGATIVE, NTXent, nt_xent
from keras_siamese.losses.sinkhorn import sinkhorn
from keras_siamese.losses.swav import SwAVLoss, swav
from keras_siamese.losses.triplet import MINING_MODES, TripletLoss, triplet_loss
from keras_siamese.losses.vicreg import VICRegLoss, vicreg

__all__ = [
    "LARGE_NEGATIVE",
    "MINING_MODES",
    "BarlowTwinsLoss",
    "ContrastiveMargin",
    "CrossBatchMemory",
    "DINOLoss",
    "InfoNCE",
    "MetricLoss",
    "NTXent",
    "NegativeCosine",
    "SwAVLoss",
    "TripletLoss",
    "VICRegLoss",
    "barlow_twins",
    "contrastive_margin",
    "dino",
    "info_nce",
    "negative_cosine",
    "nt_xent",
    "sinkhorn",
    "swav",
    "triplet_loss",
    "vicreg",
]
