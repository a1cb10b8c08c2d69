"""The models: eleven methods over one shared base, one file per method.

The self-supervised methods SimCLR, SimSiam, BYOL, MoCo, NNCLR, DINO, Barlow Twins, VICReg and
SwAV (`simclr.py`, `simsiam.py`, ...), and `SiameseNetwork` (siamese.py, its batch formats in
siamese_inputs.py), trained on pairs or triplets.

- `RepresentationModel` (representation_model.py): what every model shares.
- `TwoViewModel` (two_view_model.py, its input checks in two_view_inputs.py): the multi-view
  base of the self-supervised methods.
- `MomentumModel` (momentum.py): the base of BYOL, MoCo and DINO (a moving-average target).
- `SupportSet` (support_set.py): NNCLR's queue of projections and its nearest neighbours.
- `MAE` (mae.py): masked autoencoders, a direct subclass of `RepresentationModel` on the
  package's ViT; `MAEDecoder` (mae_decoder.py) and the masking (patch_masking.py) beside it.
"""

from keras_siamese.models.barlow_twins import BarlowTwins
from keras_siamese.models.byol import BYOL
from keras_siamese.models.dino import DINO, DINOHead
from keras_siamese.models.mae import MAE
from keras_siamese.models.mae_decoder import MAEDecoder
from keras_siamese.models.moco import MoCo, MoCoProjectionHead
from keras_siamese.models.momentum import MomentumModel, MomentumUpdate
from keras_siamese.models.nnclr import NNCLR
from keras_siamese.models.representation_model import RepresentationModel
from keras_siamese.models.siamese import SiameseNetwork
from keras_siamese.models.simclr import SimCLR
from keras_siamese.models.simsiam import SimSiam
from keras_siamese.models.support_set import SupportSet
from keras_siamese.models.swav import SwAV, SwAVPrototypes
from keras_siamese.models.two_view_model import TwoViewModel
from keras_siamese.models.vicreg import VICReg

__all__ = [
    "BYOL",
    "BarlowTwins",
    "DINO",
    "DINOHead",
    "MAE",
    "MAEDecoder",
    "MoCo",
    "MoCoProjectionHead",
    "MomentumModel",
    "MomentumUpdate",
    "NNCLR",
    "RepresentationModel",
    "SiameseNetwork",
    "SimCLR",
    "SimSiam",
    "SupportSet",
    "SwAV",
    "SwAVPrototypes",
    "TwoViewModel",
    "VICReg",
]
