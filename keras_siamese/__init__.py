"""keras_siamese: self-supervised and Siamese representation learning for Keras 3 on TensorFlow.

Eleven methods, one model class each: `SimCLR`, `SimSiam`, `BYOL`, `MoCo`, `NNCLR`,
`DINO`, `BarlowTwins`, `VICReg` and `SwAV` (self-supervised, over the shared base
`models.TwoViewModel` in `models/two_view_model.py`), `MAE` (masked autoencoders on the
package's ViT) and `SiameseNetwork` (pairs and triplets). The public names are these models
and the submodules::

    import keras_siamese as ks
    encoder = ks.encoders.resnet(depth=18, input_shape=(32, 32, 3))
    model = ks.SimCLR(encoder)

`import keras_siamese` loads the package (Keras, TensorFlow and every submodule), which
registers every serializable class, so `keras.saving.load_model` reloads our `.keras` files
after a plain `import keras_siamese`. The command line is the exception: under
`python -m keras_siamese` or the `keras-siamese` script the submodules load at the first use of
a public name (PEP 562), so `--help` and flag errors answer without importing TensorFlow.
"""

import importlib
import importlib.util
import os
import sys

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
    "checkpointing",
    "datasets",
    "encoders",
    "evaluation",
    "export",
    "heads",
    "losses",
    "models",
    "optimizers",
    "proxies",
    "recipes",
    "sampling",
)
# Submodules that never import TensorFlow themselves: the command line reads them (the
# recipes' defaults) to answer `--help`, so asking for them does not load the package.
_LIGHT_SUBMODULES = ("recipes", "loss_names")
_MODELS = (
    "BYOL",
    "BarlowTwins",
    "DINO",
    "MAE",
    "MoCo",
    "NNCLR",
    "SiameseNetwork",
    "SimCLR",
    "SimSiam",
    "SwAV",
    "VICReg",
)
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
    if name in _LIGHT_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _SUBMODULES:
        _load()
        return importlib.import_module(f"{__name__}.{name}")
    if name in _MODELS:
        _load()
        return getattr(importlib.import_module(f"{__name__}.models"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _started_as_command_line() -> bool:
    """True while `python -m keras_siamese` locates the package (argv[0] is then "-m")
    or when the `keras-siamese` console script runs."""
    program = sys.argv[0] if sys.argv else ""
    return program == "-m" or os.path.basename(program) == "keras-siamese"


if not _started_as_command_line():
    _load()
