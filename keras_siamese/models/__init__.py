"""The models: SimCLR, SimSiam and Siamese networks over one shared base.

- `RepresentationModel` (representation_model.py): what every model shares.
- `TwoViewModel` (base.py): the multi-view base of the self-supervised methods.
- `MomentumModel` (momentum.py): the base of BYOL, MoCo and DINO (a moving-average target).
"""

from keras_siamese.models.barlow_twins import BarlowTwins
from keras_siamese.models.byol import BYOL
from keras_siamese.models.dino import DINO, DINOHead
from keras_siamese.models.moco import MoCo, MoCoProjectionHead
from keras_siamese.models.momentum import MomentumModel, MomentumUpdate
from keras_siamese.models.representation_model import RepresentationModel
from keras_siamese.models.siamese import SiameseNetwork
from keras_siamese.models.simclr import SimCLR
from keras_siamese.models.simsiam import SimSiam
from keras_siamese.models.swav import SwAV, SwAVPrototypes
from keras_siamese.models.two_view_model import TwoViewModel
from keras_siamese.models.vicreg import VICReg

__all__ = [
    "BYOL",
    "BarlowTwins",
    "DINO",
    "DINOHead",
    "MoCo",
    "MoCoProjectionHead",
    "MomentumModel",
    "MomentumUpdate",
    "RepresentationModel",
    "SiameseNetwork",
    "SimCLR",
    "SimSiam",
    "SwAV",
    "SwAVPrototypes",
    "TwoViewModel",
    "VICReg",
]
