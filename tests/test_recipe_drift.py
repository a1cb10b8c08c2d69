"""One recipe per method: the CLI, the quality benchmark and the examples build the same thing.

For every method, the model and the optimizer that `train --method=NAME` builds with its
default flags, that `benchmarks/quality.py` trains at the quick budget and that the method's
example trains with its default flags have equal configs (auto-numbered names aside, floats
to 12 digits), and equal the recipe's own `build_model` / `build_optimizer` at the same steps
and batch. A value changed in one place and not the others fails here. The image-folder
example, on folders of other images (16x16 grey, 32x32, 64x64 and 160x160 colour), builds the
recipe, model and optimizer of `train --data_dir=... --image_size=S`: the image rules and
train's `auto` encoder (README "Recipes for other images").
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "scripts", "recipe_builds.py")
METHODS = (
    "simclr", "simsiam", "byol", "moco", "dino", "barlow-twins", "vicreg", "swav",
    "siamese-triplet", "siamese-contrastive", "siamese-metric", "nnclr",
)  # fmt: skip
METHODS += ("mae",)  # a ViT method, in neither benchmarks/quality.py nor an example yet
WITH_EXAMPLE = ("simclr", "simsiam", "byol", "barlow-twins", "siamese-triplet")
WITH_EXAMPLE += ("siamese-contrastive", "siamese-metric")
# benchmarks/quality.py trains one Siamese row, the triplet recipe's (and not NNCLR yet)
NOT_IN_QUALITY = ("siamese-contrastive", "siamese-metric", "nnclr")
NOT_IN_QUALITY += ("mae",)
IN_QUALITY = tuple(m for m in METHODS if m not in NOT_IN_QUALITY)


def comparable(value):
    """`value` without auto-numbered `name`s and compile configs (the optimizer is compared on
    its own), floats rounded to 12 significant digits."""
    if isinstance(value, dict):
        ignored = ("name", "compile_config")
        return {key: comparable(item) for key, item in value.items() if key not in ignored}
    if isinstance(value, list | tuple):
        return [comparable(item) for item in value]
    return float(f"{value:.12g}") if isinstance(value, float) else value


@pytest.fixture(scope="module")
def builds():
    result = subprocess.run(
        [sys.executable, SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_comparable_ignores_names_and_float_noise_only():
    a = {"name": "sgd_2", "lr": 0.005, "layers": [{"name": "x", "units": 4}]}
    b = {"name": "sgd_3", "lr": 0.005000000000000001, "layers": [{"name": "y", "units": 4}]}
    assert comparable(a) == comparable(b)
    assert comparable(a) != comparable({**b, "lr": 0.0051})
    assert comparable(a) != comparable({**b, "layers": [{"units": 5}]})


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_cli_builds_the_recipe(builds, method):
    recipe, cli = builds["recipes"][method], builds["cli"][method]
    assert comparable(cli["model"]) == comparable(recipe["model"])
    assert comparable(cli["optimizer"]) == comparable(recipe["optimizer"])


@pytest.mark.slow
@pytest.mark.parametrize("method", IN_QUALITY)
def test_quality_benchmark_builds_what_the_cli_builds(builds, method):
    quality, cli = builds["quality"][method], builds["cli"][method]
    assert comparable(quality["model"]) == comparable(cli["model"])
    assert comparable(quality["optimizer"]) == comparable(cli["optimizer"])


@pytest.mark.slow
@pytest.mark.parametrize("method", WITH_EXAMPLE)
def test_example_builds_what_the_cli_builds(builds, method):
    example, cli = builds["examples"][method], builds["cli"][method]
    assert comparable(example["model"]) == comparable(cli["model"])
    optimizer = cli["optimizer"]
    if method.startswith("siamese"):  # the example trains on 7 seen classes: P x K = 7 x 16
        # (siamese-metric: the example's make_model of ks.recipes.get("siamese-metric").loss)
        optimizer = builds["recipes"][method]["optimizer_at_example_batch"]
    assert comparable(example["optimizer"]) == comparable(optimizer)


# The image-folder example against `train --data_dir=... --image_size=S`: the image rules'
# views and colour (32x32 and 64x64 colour folders), their epochs (64: 3), train's auto encoder:
# the grid at most the last map's side (16x16 grey: 2), the ImageNet stem and global pooling
# for views over 64 pixels (160: views of 80). The stem and grid each case must reach:
FOLDER_ENCODERS = {(16, 16, 1): ("small", 2), (32, 32, 3): ("small", 4)}
FOLDER_ENCODERS.update({(64, 64, 3): ("small", 4), (160, 160, 3): ("imagenet", 1)})
FOLDER_SHAPES = tuple(FOLDER_ENCODERS)
FOLDER_IMAGES = 10000
FOLDER_BUILDS = """
import importlib.util, json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "scripts"))
import keras, recipe_builds
from absl import flags
from keras_siamese.cli import data, run_config, sources, train_command, train_flags

shapes, examples, folder = json.loads(sys.argv[1]), int(sys.argv[2]), os.path.abspath("photos")
path = os.path.join("examples", "simclr_image_folder.py")
spec = importlib.util.spec_from_file_location("simclr_image_folder", path)
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)
flags.FLAGS(["simclr_image_folder", f"--data_dir={folder}"])
builds = {}
for shape in shapes:
    info = data.DatasetInfo(folder, tuple(shape), None, None, examples)
    values = train_flags.flag_values(f"--data_dir={folder}", f"--image_size={shape[0]}")
    config = run_config.resolve(values, info, sources.Source(sources.FOLDER, folder))
    keras.utils.set_random_seed(0)
    cli = recipe_builds.configs(*train_command.build_model_and_optimizer(config))
    cli.update(recipe=config.recipe.get_config(), batch_size=config.batch_size)
    recipe = example.recipe_for(tuple(shape))
    model = example.make_model(tuple(shape), config.total_steps)
    built = recipe_builds.configs(model, model.optimizer)
    built.update(recipe=recipe.get_config(), batch_size=example.batch_size(recipe))
    builds["x".join(map(str, shape))] = {"cli": cli, "example": built}
print("RESULT " + json.dumps(builds, default=str))
"""


@pytest.fixture(scope="module")
def folder_builds():
    arguments = [json.dumps(FOLDER_SHAPES), str(FOLDER_IMAGES)]
    result = subprocess.run(
        [sys.executable, "-c", FOLDER_BUILDS, *arguments],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.slow
@pytest.mark.parametrize("shape", FOLDER_SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_image_folder_example_builds_what_the_cli_builds(folder_builds, shape):
    build = folder_builds["x".join(map(str, shape))]
    example, cli = build["example"], build["cli"]
    assert (cli["recipe"]["stem"], cli["recipe"]["encoder_grid"]) == FOLDER_ENCODERS[shape]
    assert example["recipe"] == cli["recipe"]  # views, colour, encoder, stem, grid, epochs
    assert example["batch_size"] == cli["batch_size"]
    assert comparable(example["model"]) == comparable(cli["model"])
    assert comparable(example["optimizer"]) == comparable(cli["optimizer"])
