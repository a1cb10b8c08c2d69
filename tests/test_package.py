"""Tests of the package itself: backend and TensorFlow checks at import, the public names."""

import configparser
import inspect
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import pytest

import keras_siamese as ks

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_python(code, **environment):
    """Runs `code` in a fresh interpreter; returns (exit code, stdout, stderr)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **environment}
    env = {key: value for key, value in env.items() if value is not None}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=str(ROOT),
    )
    return result.returncode, result.stdout, result.stderr


IMPORT_AND_REPORT = textwrap.dedent(
    """
    try:
        import keras_siamese
    except ImportError as error:
        print("ImportError:", error)
    else:
        print("imported")
    """
)


def test_import_with_another_keras_backend_says_to_set_tensorflow():
    code, stdout, stderr = run_python(IMPORT_AND_REPORT, KERAS_BACKEND="jax")
    assert code == 0, stderr[-2000:]
    assert stdout.startswith("ImportError:"), stdout
    assert "KERAS_BACKEND=tensorflow" in stdout
    assert "Received: KERAS_BACKEND='jax'" in stdout


def test_import_without_tensorflow_says_how_to_install_it():
    # `sys.modules[name] = None` makes importlib report the module as missing.
    code, stdout, stderr = run_python(
        "import sys\nsys.modules['tensorflow'] = None\n" + IMPORT_AND_REPORT
    )
    assert code == 0, stderr[-2000:]
    assert stdout.startswith("ImportError:"), stdout
    assert "needs TensorFlow" in stdout
    assert "pip install keras_siamese[cpu]" in stdout


SUBMODULES = (
    "augment",
    "callbacks",
    "datasets",
    "distribute",
    "encoders",
    "evaluation",
    "export",
    "heads",
    "losses",
    "models",
    "optimizers",
)


@pytest.mark.parametrize("name", SUBMODULES)
def test_submodules_are_public(name):
    module = getattr(ks, name)
    assert inspect.ismodule(module)
    assert module.__name__ == f"keras_siamese.{name}"


def test_public_names():
    assert keras.backend.backend() == "tensorflow"
    assert ks.SimCLR is ks.models.SimCLR
    assert issubclass(ks.SimCLR, keras.Model)
    assert callable(ks.encoders.resnet) and callable(ks.encoders.adapt_encoder)
    assert callable(ks.augment.simclr_augmenter) and callable(ks.augment.simsiam_augmenter)
    assert callable(ks.evaluation.knn_accuracy) and callable(ks.evaluation.extract_features)
    assert callable(ks.datasets.load_arrays)
    assert issubclass(ks.heads.ProjectionHead, keras.layers.Layer)


def test_version_matches_setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert ks.__version__ == config["metadata"]["version"]


@pytest.mark.parametrize(
    "cls",
    [ks.SimCLR, ks.augment.SimCLRAugmenter, ks.heads.ProjectionHead, ks.MAE, ks.models.MAEDecoder],
    ids=lambda cls: cls.__name__,
)
def test_public_classes_are_registered_for_saving(cls):
    name = f"keras_siamese>{cls.__name__}"
    assert keras.saving.get_registered_name(cls) == name
    assert keras.saving.get_registered_object(name) is cls
