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
from keras_siamese.loss_names import LOSS_NAMES

FASHION_MNIST = data.DatasetInfo("fashion_mnist", (28, 28, 1), 10, None, 60000)
METRIC = ks.recipes.get("siamese-metric")


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
    resolved = run_config.resolve(values, FASHION_MNIST).recipe
    if getattr(resolved, "loss", None) in ks.loss_names.PROXY_LOSS_NAMES:  # from the data
        resolved = resolved.replace(num_classes=0)
    assert resolved == ks.recipes.get(name)


@pytest.mark.parametrize("name", list(methods.METHODS))
def test_the_default_model_and_optimizer_are_the_recipe_ones(name):
    # A tiny encoder keeps it cheap: the flag and the recipe field agree on it.
    values = train_flags.flag_values(f"--method={name}", "--encoder_width=2")
    config = run_config.resolve(values, FASHION_MNIST)
    recipe = ks.recipes.get(name, encoder_width=2)
    if getattr(recipe, "loss", None) in ks.loss_names.PROXY_LOSS_NAMES:
        recipe = recipe.replace(num_classes=FASHION_MNIST.num_classes)  # from the data
    assert config.recipe == recipe
    model, optimizer = train_command.build_model_and_optimizer(config)
    expected_model = recipe.build_model((28, 28, 1), config.total_steps, seed=0)
    # The peak rate follows the real global batch: the recipe's, or P x K = 10 x 11 = 110 of
    # the triplet and metric recipes' 112 on Fashion-MNIST's 10 classes.
    p_by_k = name in ("siamese-triplet", "siamese-metric")
    assert config.batch_size == (110 if p_by_k else recipe.batch_size)
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
        "--mask_ratio=1",
        "--decoder_heads=3",
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


# ----------------------------------------------------------------- --method=siamese-metric

METRIC_FIELDS = {"metric_loss": "loss", "memory_size": "memory_size", "views_per_image": None}
TINY_METRIC = [
    "train",
    "--method=siamese-metric",
    "--train_examples=64",
    "--batch_size=20",  # P x K = 10 x 2: 3 steps
    "--epochs=1",
    "--encoder_width=2",
    "--image_size=16",
    "--pretrain_epochs=0",  # pretraining: test_a_siamese_run_pretrains_once_...
    "--precision=float32",
    "--knn_monitor=false",
    "--strategy=default",
    "--verbose=0",
    "--plots=false",
]


def test_help_lists_the_metric_flags_with_the_recipe_defaults(capsys):
    assert cli.main(["keras-siamese", "train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # absl wraps the help at 80 columns
    for name, field in METRIC_FIELDS.items():
        found = re.search(rf"--{name}: (.*?)\(default: '([^']*)'\)", text)
        assert found and "(siamese-metric) " in found.group(1), name
        assert found.group(2) == str(getattr(METRIC, field or name)), name
    losses = "".join(text.split("--metric_loss: <")[1].split(">")[0].split())
    assert losses.split("|") == [name for name in LOSS_NAMES if name != "contrastive"]


def test_a_proxy_loss_takes_its_classes_from_the_data():
    values = train_flags.flag_values("--method=siamese-metric", "--metric_loss=arcface")
    assert run_config.resolve(values, FASHION_MNIST).recipe.num_classes == 10
    # a pair loss has no classes to learn: its recipe is the default one
    values = train_flags.flag_values("--method=siamese-metric", "--metric_loss=circle")
    assert run_config.resolve(values, FASHION_MNIST).recipe == METRIC.replace(loss="circle")


@pytest.mark.parametrize(
    "arguments, match",
    [
        (["--views_per_image=2"], r"--views_per_image=2 needs --siamese_augment"),
        (
            ["--views_per_image=2", "--siamese_augment", "--metric_loss=triplet"],
            r"not the triplet loss.*Received: --views_per_image=2, --metric_loss=triplet",
        ),
        (
            ["--memory_size=256", "--metric_loss=arcface"],
            r"--memory_size needs a pair loss.*class proxies.*--metric_loss=arcface",
        ),
        (["--memory_size=256", "--metric_loss=triplet"], r"--memory_size needs a pair loss"),
        (  # P x K = 10 x 2 images
            ["--memory_size=19", "--metric_loss=multi_similarity"],
            r"--memory_size \(19\) must hold at least one global batch of embeddings: 20\. ",
        ),
        (
            [
                "--memory_size=39",
                "--views_per_image=2",
                "--siamese_augment",
                "--metric_loss=circle",
            ],
            r"--memory_size \(39\) must hold .* embeddings: 40 \(2 views of 20 images\)",
        ),
    ],
)
def test_a_bad_metric_combination_is_one_error_line(capsys, tmp_path, arguments, match):
    model_dir = tmp_path / "run"
    code = cli.main(["keras-siamese", *TINY_METRIC, *arguments, f"--model_dir={model_dir}"])
    errors = capsys.readouterr().err
    lines = [line for line in errors.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in errors, errors[-2000:]
    assert re.search(match, lines[0]), lines[0]
    assert not os.path.exists(model_dir)


def metric_run(tmp_path, *arguments):
    """A tiny `train --method=siamese-metric` run: its resolved config and reloaded model."""
    model_dir = tmp_path / "run"
    assert cli.main(["keras-siamese", *TINY_METRIC, *arguments, f"--model_dir={model_dir}"]) == 0
    resolved = json.loads((model_dir / run_dir.CONFIG).read_text())["resolved"]
    return resolved, keras.saving.load_model(model_dir / run_dir.MODEL)


def test_a_proxy_loss_run_saves_one_proxy_per_class_of_the_data(tmp_path):
    resolved, model = metric_run(tmp_path, "--metric_loss=arcface")
    assert resolved["recipe"]["loss"] == "arcface" and resolved["recipe"]["num_classes"] == 10
    assert resolved["triplet_batch"] == [10, 2] and resolved["steps_per_epoch"] == 3
    assert isinstance(model.loss_fn, ks.losses.ArcFaceLoss) and model.memory is None
    assert tuple(model.proxies.proxies.shape) == (10, METRIC.embedding_dim)


def test_a_supcon_run_on_two_views_keeps_a_cross_batch_memory(tmp_path):
    resolved, model = metric_run(
        tmp_path,
        "--metric_loss=supervised_contrastive",
        "--views_per_image=2",
        "--siamese_augment",
        "--memory_size=64",
    )
    recipe = resolved["recipe"]
    assert (recipe["views_per_image"], recipe["augment"], recipe["memory_size"]) == (2, True, 64)
    assert recipe["num_classes"] == 0  # a pair loss learns no class weights
    assert model.views_per_image == 2 and model.augmenter is not None and model.proxies is None
    assert isinstance(model.loss_fn, ks.losses.CrossBatchMemory)
    assert isinstance(model.loss_fn.loss, ks.losses.SupervisedContrastiveLoss)
    assert tuple(model.memory.embeddings.shape) == (64, METRIC.embedding_dim)
    # 3 steps of 2 views of 20 images went through the 64 slots, saved with the model
    assert int(keras.ops.convert_to_numpy(model.memory.pointer)) == 3 * 2 * 20 % 64
