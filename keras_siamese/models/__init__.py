"""The models: SimCLR, SimSiam and Siamese networks over one shared base.

- `RepresentationModel` (representation_model.py): what every model shares.
- `TwoViewModel` (base.py): the multi-view base of the self-supervised methods.
"""

from keras_siamese.models.base import TwoViewModel
from keras_siamese.models.representation_model import RepresentationModel
from keras_siamese.models.siamese import SiameseNetwork
from keras_siamese.models.simclr import SimCLR
from keras_siamese.models.simsiam import SimSiam

__all__ = ["RepresentationModel", "SiameseNetwork", "SimCLR", "SimSiam", "TwoViewModel"]
