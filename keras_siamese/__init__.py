"""keras_siamese: SimCLR, SimSiam and Siamese networks for Keras 3 on TensorFlow.

The public names are the three trainers and the submodules::

    import keras_siamese as ks
    encoder = ks.encoders.resnet(depth=18, input_shape=(32, 32, 3))
    model = ks.SimCLR(encoder)

`import keras_siamese` itself is cheap: it checks that TensorFlow is installed and that
`KERAS_BACKEND` allows it, and loads the package (Keras, TensorFlow and every submodule) at the
first use of a public name (PEP 562), so `python -m keras_siamese --help` answers without
importing TensorFlow. Loading registers every serializable class, so a script that only reloads
a `.keras` file touches a public name first, e.g. `from keras_siamese import models`.
"""

import importlib
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

__version__ = "0.1.0"

# In load order: `distribute` first, as before the package loaded lazily.
_SUBMODULES = (
    "distribute",
    "augment",
    "callbacks",
    "datasets",
    "encoders",
    "evaluation",
    "export",
    "heads",
    "losses",
    "models",
    "optimizers",
    "sampling",
)
_MODELS = ("SiameseNetwork", "SimCLR", "SimSiam")
__all__ = [*_MODELS, *_SUBMODULES]
_loaded = False


def _load() -> None:
    """Imports Keras (checking its backend) and every submodule, once."""
    global _loaded
    if _loaded:
        return
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ImportError(
            "keras_siamese runs on the TensorFlow backend of Keras 3, but Keras is configured "
            f"for {keras.backend.backend()!r} (see ~/.keras/keras.json). Set "
            '`KERAS_BACKEND=tensorflow` in the environment or change "backend" in keras.json.'
        )
    _loaded = True  # Set before importing: the submodules import each other through here.
    for name in _SUBMODULES:
        importlib.import_module(f"{__name__}.{name}")
    models = importlib.import_module(f"{__name__}.models")
    globals().update({name: getattr(models, name) for name in _MODELS})


def __getattr__(name: str):
    if name in _SUBMODULES:
        _load()
        return importlib.import_module(f"{__name__}.{name}")
    if name in _MODELS:
        _load()
        return getattr(importlib.import_module(f"{__name__}.models"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
