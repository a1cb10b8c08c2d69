"""keras_siamese: SimCLR, SimSiam and Siamese networks for Keras 3 on TensorFlow.

The public names are the three trainers and the submodules::

    import keras_siamese as ks
    encoder = ks.encoders.resnet(depth=18, input_shape=(32, 32, 3))
    model = ks.SimCLR(encoder)
"""

import importlib.util
import os

if importlib.util.find_spec("tensorflow") is None:
    raise ImportError(
        "keras_siamese needs TensorFlow, which is not installed. Install it with "
        "`pip install keras_siamese[cpu]` (tensorflow-cpu) or "
        "`pip install keras_siamese[gpu]` (tensorflow[and-cuda]), or install your own "
        "TensorFlow build (>=2.16) first."
    )

_requested_backend = os.environ.get("KERAS_BACKEND")
if _requested_backend not in (None, "", "tensorflow"):
    raise ImportError(
        "keras_siamese runs on the TensorFlow backend of Keras 3 (its training steps use "
        "tf.distribute and its exports are TensorFlow SavedModels). Set "
        "`KERAS_BACKEND=tensorflow` (or unset it). "
        f"Received: KERAS_BACKEND={_requested_backend!r}"
    )

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "keras_siamese runs on the TensorFlow backend of Keras 3, but Keras is configured "
        f"for {keras.backend.backend()!r} (see ~/.keras/keras.json). Set "
        "`KERAS_BACKEND=tensorflow` in the environment or change \"backend\" in keras.json."
    )

from keras_siamese import distribute  # noqa: E402,F401

__version__ = "0.1.0"
from keras_siamese import (  # noqa: E402,F401
    augment,
    callbacks,
    datasets,
    encoders,
    evaluation,
    export,
    heads,
    losses,
    models,
    optimizers,
    sampling,
)
from keras_siamese.models import SiameseNetwork, SimCLR, SimSiam  # noqa: E402,F401
