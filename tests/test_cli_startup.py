"""The command line answers `--help` and argument errors without importing TensorFlow.

`import keras_siamese` loads its submodules at the first public name (PEP 562), and the
command line imports TensorFlow only once a command runs. Each case runs a fresh interpreter
with `-X importtime`, which lists every module the process imported.
"""

import math
import os
import pathlib
import subprocess
import sys

import pytest
from absl import app

from keras_siamese import validation
from keras_siamese.cli import flag_checks, methods, recipe_flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "tf_keras", "jax", "torch")


def run_python(*arguments, **environment):
    """Runs `python -X importtime ARGUMENTS`; returns (exit code, stdout, stderr, modules)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **environment}
    env = {key: value for key, value in env.items() if value is not None}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *arguments],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=str(ROOT),
    )
    modules = set()
    messages = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:"):
            modules.add(line.rsplit("|", 1)[-1].strip())
        else:
            messages.append(line)
    return result.returncode, result.stdout, "\n".join(messages), modules


def heavy_imports(modules):
    return sorted(name for name in modules if name.split(".")[0] in HEAVY)


@pytest.mark.parametrize(
    "arguments, status, expected",
    [
        (["--help"], 0, "methods (train --method=...)"),
        (["train", "--help"], 0, "--temperature: (simclr) NT-Xent temperature."),
        (["evaluate", "--help"], 0, "--knn_temperature"),
        (["export", "--help"], 0, "--export_dir"),
        (["train", "--method=bogus", "--model_dir=unused"], 2, "--method=bogus: value should"),
        (["train", "--epochs=0", "--model_dir=unused"], 2, "--epochs=0"),
        (["train", "--temperature=0", "--model_dir=unused"], 2, "--temperature must be"),
        (["train", "--learning_rate=fast", "--model_dir=unused"], 2, "--learning_rate must"),
        (["train", "--projection_dims=0", "--model_dir=unused"], 2, "--projection_dims must"),
        (["train"], 2, "--model_dir is required"),
        (["trian"], 2, "unknown command 'trian'"),
    ],
)
def test_module_answers_without_tensorflow(arguments, status, expected):
    code, stdout, stderr, modules = run_python("-m", "keras_siamese", *arguments)
    assert code == status, stderr[-2000:]
    assert expected in stdout + stderr
    assert "keras_siamese.cli" in modules
    assert heavy_imports(modules) == []


def test_console_script_answers_without_tensorflow():
    script = (  # the console script's argv[0] is its own path, ending in keras-siamese
        "import sys\n"
        "sys.argv = ['/usr/local/bin/keras-siamese', 'train', '--help']\n"
        "from keras_siamese.cli import run\n"
        "run()\n"
    )
    code, stdout, stderr, modules = run_python("-c", script)
    assert code == 0, stderr[-2000:]
    assert stdout.startswith("usage: keras-siamese train ")
    assert heavy_imports(modules) == []


def test_a_plain_import_loads_and_registers_everything():
    # Library users reload .keras files after a plain `import keras_siamese`.
    script = (
        "import sys\n"
        "import keras_siamese as ks\n"
        "assert 'tensorflow' in sys.modules\n"
        "import keras\n"
        "assert ks.SimCLR is ks.models.SimCLR\n"
        "assert keras.saving.get_registered_object('keras_siamese>SimCLR') is ks.SimCLR\n"
        "assert ks.losses.__name__ == 'keras_siamese.losses'\n"
        "print('loaded')\n"
    )
    code, stdout, stderr, modules = run_python("-c", script)
    assert code == 0, stderr[-2000:]
    assert stdout.strip() == "loaded"
    assert "tensorflow" in modules


def test_keras_configured_for_another_backend_is_refused_at_import():
    # Another backend in keras.json needs its own package (jax, torch) to import Keras at all;
    # stand in for it by making Keras report another backend.
    script = (
        "import keras\n"
        "keras.backend.backend = lambda: 'jax'\n"
        "try:\n"
        "    import keras_siamese\n"
        "except ImportError as error:\n"
        "    print('ImportError:', error)\n"
    )
    code, stdout, stderr, _ = run_python("-c", script)
    assert code == 0, stderr[-2000:]
    assert stdout.startswith("ImportError: keras_siamese runs on the TensorFlow backend"), stdout
    assert "configured for 'jax'" in stdout


# ----------------------------------------------------------------------------- same rules


def accepts(check, *arguments, **options):
    try:
        check(*arguments, **options)
    except (app.UsageError, ValueError, TypeError):
        return False
    return True


NUMBERS = [0.2, 1.0, 1e-9, 0.0, -1.0, 1.5, math.inf, -math.inf, math.nan]


def recipe_flag_accepts(method, name, value):
    """Whether `train --method=METHOD --NAME=VALUE` passes the recipe's check of the field."""
    row = methods.METHODS[method]
    flag = {flag.name: flag for flag in (*recipe_flags.RECIPE_FLAGS, *row.flags)}[name]
    return accepts(recipe_flags.apply, row.recipe, flag, value)


@pytest.mark.parametrize("value", NUMBERS)
def test_flag_checks_give_the_answers_of_validation(value):
    assert accepts(flag_checks.positive, "knn_temperature", value) == accepts(
        validation.check_temperature, value
    )
    assert recipe_flag_accepts("simclr", "temperature", value) == accepts(
        validation.check_temperature, value
    )
    assert recipe_flag_accepts("simclr", "min_crop_area", str(value)) == accepts(
        validation.check_number, "min_crop_area", value, 0.0, 1.0, include_minimum=False
    )


@pytest.mark.parametrize("dims", [["512", "128"], ["16"], ["0"], ["8", "0"], []])
def test_dims_flags_give_the_answers_of_validation(dims):
    cli_answer = recipe_flag_accepts("simclr", "projection_dims", dims)
    assert cli_answer == accepts(validation.check_dims, "projection_dims", [int(d) for d in dims])
    if cli_answer:
        recipe = recipe_flags.apply(
            methods.METHODS["simclr"].recipe, methods.METHODS["simclr"].flags[1], dims
        )
        assert recipe.projection_dims == validation.check_dims(
            "projection_dims", recipe.projection_dims
        )
