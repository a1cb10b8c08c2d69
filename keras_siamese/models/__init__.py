"""The trainers: SimCLR, SimSiam and Siamese networks over one two-view base."""

from keras_siamese.models.base import TwoViewModel
from keras_siamese.models.siamese import SiameseNetwork
from keras_siamese.models.simclr import SimCLR
from keras_siamese.models.simsiam import SimSiam

__all__ = ["SiameseNetwork", "SimCLR", "SimSiam", "TwoViewModel"]
