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
    - Metric learning on labelled batches (`MetricLoss`; pytorch-metric-learning's defaults):
      pair losses `multi_similarity`, `circle`, `supervised_contrastive`,
      `batch_contrastive` (their classes share the base `pair_loss.PairLoss`; with
      `pair_batch`, their global pairs, and the `MultiSimilarityMiner`), proxy losses
      `arcface`, `sub_center_arcface`, `cosface`, `proxy_anchor`, `proxy_nca` (their classes
      share the base `proxy_loss.ProxyLoss`; class weights in
      `keras_siamese.proxies.ClassProxies`), and `CrossBatchMemory` (XBM) for any pair loss.
    - `_checks`: the shape checks they share (argument values: `keras_siamese.validation`).
"""

from keras_siamese.losses.arcface import ArcFaceLoss, arcface
from keras_siamese.losses.barlow_twins import BarlowTwinsLoss, barlow_twins
from keras_siamese.losses.batch_contrastive import BatchContrastiveLoss, batch_contrastive
from keras_siamese.losses.circle import CircleLoss, circle
from keras_siamese.losses.contrastive import ContrastiveMargin, contrastive_margin
from keras_siamese.losses.cosface import CosFaceLoss, cosface
from keras_siamese.losses.cross_batch_memory import CrossBatchMemory
from keras_siamese.losses.dino import DINOLoss, dino
from keras_siamese.losses.info_nce import InfoNCE, info_nce
from keras_siamese.losses.metric_loss import MetricLoss
from keras_siamese.losses.multi_similarity import MultiSimilarityLoss, multi_similarity
from keras_siamese.losses.negative_cosine import NegativeCosine, negative_cosine
from keras_siamese.losses.nt_xent import LARGE_NEGATIVE, NTXent, nt_xent
from keras_siamese.losses.pair_loss import PairLoss
from keras_siamese.losses.pair_miner import MultiSimilarityMiner, multi_similarity_miner
from keras_siamese.losses.proxy_anchor import ProxyAnchorLoss, proxy_anchor
from keras_siamese.losses.proxy_loss import ProxyLoss
from keras_siamese.losses.proxy_nca import ProxyNCALoss, proxy_nca
from keras_siamese.losses.sinkhorn import sinkhorn
from keras_siamese.losses.sub_center_arcface import SubCenterArcFaceLoss, sub_center_arcface
from keras_siamese.losses.supervised_contrastive import (
    SupervisedContrastiveLoss,
    supervised_contrastive,
)
from keras_siamese.losses.swav import SwAVLoss, swav
from keras_siamese.losses.triplet import MINING_MODES, TripletLoss, triplet_loss
from keras_siamese.losses.vicreg import VICRegLoss, vicreg

__all__ = [
    "LARGE_NEGATIVE",
    "MINING_MODES",
    "ArcFaceLoss",
    "BarlowTwinsLoss",
    "BatchContrastiveLoss",
    "CircleLoss",
    "ContrastiveMargin",
    "CosFaceLoss",
    "CrossBatchMemory",
    "DINOLoss",
    "InfoNCE",
    "MetricLoss",
    "MultiSimilarityLoss",
    "MultiSimilarityMiner",
    "NTXent",
    "NegativeCosine",
    "PairLoss",
    "ProxyAnchorLoss",
    "ProxyLoss",
    "ProxyNCALoss",
    "SubCenterArcFaceLoss",
    "SupervisedContrastiveLoss",
    "SwAVLoss",
    "TripletLoss",
    "VICRegLoss",
    "arcface",
    "barlow_twins",
    "batch_contrastive",
    "circle",
    "contrastive_margin",
    "cosface",
    "dino",
    "info_nce",
    "multi_similarity",
    "multi_similarity_miner",
    "negative_cosine",
    "nt_xent",
    "proxy_anchor",
    "proxy_nca",
    "sinkhorn",
    "sub_center_arcface",
    "supervised_contrastive",
    "swav",
    "triplet_loss",
    "vicreg",
]
