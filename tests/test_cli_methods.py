"""`train --method=X` builds X's recipe: its flags' defaults are the recipe's values, a bad value
is one error line naming the flag, and the default model and optimizer are exactly
`ks.recipes.get(X)`'s (`build_model_and_optimizer` against `recipe.build_model` /
`build_optimizer`, no training)."""

import json
import os
import re

import keras
import pytest

import keras_siamese as ks
from keras_siamese import cli
from keras_siamese.cli import (
    data,
    methods,
    pretraining,
    recipe_flags,
    run_config,
    run_dir,
    train_command,
    train_flags,
)

FASHION_MNIST = data.DatasetInfo("fashion_mnist", (28, 28, 1), 10, None, 60000)


def without_names(config):
    """A Keras config without the auto-numbered names (`sgd_1`, `dense_3`, ...)."""
    if isinstance(config, dict):
        return {key: without_names(value) for key, value in config.items() if key != "name"}
    if isinstance(config, list):
        return [without_names(value) for value in config]
    return config


def test_every_recipe_has_a_method_and_every_method_a_recipe():
    assert set(methods.METHODS) == set(ks.recipes.NAMES)
    for name, method in methods.METHODS.items():
        assert method.recipe == ks.recipes.get(name)


@pytest.mark.parametrize("name", list(methods.METHODS))
def test_the_flags_defaults_are_the_recipe_values(name):
    method = methods.METHODS[name]
    for flag in method.flags:
        if flag.default == methods.AUTO:
            continue
        value = flag.parse(flag.default) if flag.parse else flag.default
        assert value == getattr(method.recipe, flag.field), flag.name
    values = train_flags.flag_values(f"--method={name}")
    assert recipe_flags.recipe_from_flags(method, values) == ks.recipes.get(name)
    assert run_config.resolve(values, FASHION_MNIST).recipe == ks.recipes.get(name)


@pytest.mark.parametrize("name", list(methods.METHODS))
def test_the_default_model_and_optimizer_are_the_recipe_ones(name):
    # A tiny encoder keeps it cheap: the flag and the recipe field agree on it.
    values = train_flags.flag_values(f"--method={name}", "--encoder_width=2")
    config = run_config.resolve(values, FASHION_MNIST)
    recipe = ks.recipes.get(name, encoder_width=2)
    assert config.recipe == recipe
    model, optimizer = train_command.build_model_and_optimizer(config)
    expected_model = recipe.build_model((28, 28, 1), config.total_steps, seed=0)
    # The peak rate follows the real global batch: the recipe's, or P x K = 10 x 11 = 110 of
    # the triplet recipe's 112 on Fashion-MNIST's 10 classes.
    assert config.batch_size == (110 if name == "siamese-triplet" else recipe.batch_size)
    expected_optimizer = recipe.build_optimizer(config.total_steps, config.batch_size)
    assert without_names(keras.saving.serialize_keras_object(model)) == without_names(
        keras.saving.serialize_keras_object(expected_model)
    )
    assert without_names(optimizer.get_config()) == without_names(expected_optimizer.get_config())


@pytest.mark.parametrize(
    "argument",
    [
        "--moco_queue_size=0",
        "--swav_epsilon=0",
        "--byol_hidden_dim=0",
        "--vicreg_variance_weight=-1",
        "--expander_dims=0,8",
        "--target_momentum=2",
        "--pretrain_epochs=-1",
        "--siamese_margin=0",
        "--dino_teacher_temperature=0",
        "--simsiam_projection_layers=0",
        "--epochs=0",
        "--warmup_fraction=0.95",
        "--encoder_width=0",
        "--batch_size=0",
    ],
)
def test_a_bad_value_is_one_error_line_naming_the_flag(capsys, tmp_path, argument):
    name, _, value = argument[2:].partition("=")
    assert cli.main(["keras-siamese", "train", argument, f"--model_dir={tmp_path / 'r'}"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    assert re.match(rf"error: --{name} must be .* Received: --{name}={re.escape(value)}", lines[0])
    assert not os.path.exists(tmp_path / "r")


def test_byol_barlow_twins_and_vicreg_take_byols_views():
    for name in ("byol", "barlow-twins", "vicreg"):
        config = run_config.resolve(train_flags.flag_values(f"--method={name}"), FASHION_MNIST)
        assert config.recipe.views == "byol"
    config = run_config.resolve(
        train_flags.flag_values("--method=byol", "--views=simclr"), FASHION_MNIST
    )
    assert config.recipe.views == "simclr"


def test_the_triplet_layout_and_pretraining_come_from_the_recipe():
    config = run_config.resolve(train_flags.flag_values("--method=siamese-triplet"), FASHION_MNIST)
    assert config.triplet_batch == ks.recipes.get("siamese-triplet").triplet_layout(10)
    assert config.pretrain_steps == round(3 * 60000 / 256)
    off = train_flags.flag_values("--method=siamese-triplet", "--pretrain_epochs=0")
    assert run_config.resolve(off, FASHION_MNIST).pretrain_steps == 0
    assert config.pretraining_recipe().encoder_width == config.recipe.encoder_width


@pytest.mark.slow
def test_a_siamese_run_pretrains_once_and_reuses_the_encoder(capsys, tmp_path):
    model_dir = tmp_path / "run"
    train = [
        "train",
        "--method=siamese-contrastive",
        f"--model_dir={model_dir}",
        "--train_examples=64",
        "--batch_size=16",
        "--epochs=1",
        "--encoder_width=2",
        "--image_size=16",
        "--pretrain_epochs=1",
        "--precision=float32",
        "--knn_monitor=false",
        "--strategy=default",
        "--verbose=0",
        "--plots=false",
    ]
    assert cli.main(["keras-siamese", *train]) == 0
    assert "Pretraining the encoder with SimCLR: 1 steps of 64 images" in capsys.readouterr().out
    assert os.path.isfile(model_dir / pretraining.PRETRAINED_ENCODER)
    config = json.loads((model_dir / run_dir.CONFIG).read_text())
    assert config["resolved"]["pretrain_steps"] == 1
    assert config["resolved"]["recipe"]["mining"] == "hard"
    os.remove(model_dir / run_dir.TRAIN_RESULT)  # as if it had stopped before the end
    assert cli.main(["keras-siamese", *train]) == 0
    assert "(reused)" in capsys.readouterr().out
