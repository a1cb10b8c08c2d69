"""`train`'s defaults are the recipe measured best on Fashion-MNIST (benchmarks/results/sweep.md):
16x16 crops of the 28x28 images, a ResNet-10's 4x4 grid of averages (2048 features at width
16), an encoder of any size behind a model that takes 28x28 images, colour strength 1.0; the
precision is timed (`auto`) or recorded; and run directories written with the old defaults
resume only with their own flags."""

import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import keras_siamese as ks
from keras_siamese import cli
from keras_siamese.cli import (
    data,
    methods,
    run_config,
    run_dir,
    sources,
    train_command,
    train_flags,
    train_precision,
)

FASHION_MNIST = data.DatasetInfo("fashion_mnist", (28, 28, 1), 10, None, 60000)


def run_cli(*arguments):
    return cli.main(["keras-siamese", *arguments])


def only_error_line(capsys):
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


def flag_config(*arguments):
    return train_flags.flag_values("--model_dir=unused", *arguments)


def resolved_config(*arguments, info=FASHION_MNIST):
    """The configuration `train` would run, on a dataset described by `info`."""
    return run_config.resolve(flag_config(*arguments), info)


# ----------------------------------------------------------------------------- the recipe


def test_the_defaults_are_the_measured_fashion_mnist_recipe():
    config = resolved_config()
    recipe = config.recipe
    assert recipe == ks.recipes.get("simclr")
    assert config.flags["method"] == "simclr" and config.flags["encoder"] == "auto"
    assert recipe.encoder_depth == 10 and recipe.encoder_width == 16 and config.batch_size == 256
    assert recipe.color_strength == 1.0 and not recipe.blur
    assert recipe.temperature == 0.2 and recipe.min_crop_area == 0.25
    assert recipe.epochs == 10  # ~5 minutes on 2 CPU cores (~115 ms x 2,340 steps)
    assert config.flags["precision"] == "auto"
    resolved = config.record()["resolved"]
    assert recipe.optimizer == "sgd" and resolved["peak_learning_rate"] == 0.6
    assert recipe.weight_decay == 5e-4 and recipe.warmup_fraction == 0.1
    # 16x16 crops of the 28x28 images; the small stem; a 4x4 grid of averages.
    assert resolved["image_shape"] == [28, 28, 1] and resolved["view_shape"] == [16, 16, 1]
    assert resolved["stem"] == "small" and resolved["encoder_grid"] == 4

    model, _ = train_command.build_model_and_optimizer(config)
    assert model.encoder.input_shape == (None, None, None, 1)
    assert model.encoder.output_shape == (None, 2048)  # 4 x 4 cells x 128 channels (16 x 8)
    assert model.image_size == (28, 28) and model.image_shape == (28, 28, 1)
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype("uint8")
    view_a, view_b = model.two_views(tf.constant(images))
    assert view_a.shape == view_b.shape == (4, 16, 16, 1)
    assert model(images).shape == (4, 2048)  # serves whole 28x28 images


def test_simsiam_takes_the_same_views_and_representation():
    config = resolved_config("--method=simsiam")
    assert config.view_shape == (16, 16, 1) and config.recipe.encoder_grid == 4
    assert config.recipe.optimizer == "sgd" and config.recipe.learning_rate == 0.5


@pytest.mark.parametrize("method", ["siamese-contrastive", "siamese-triplet"])
def test_the_siamese_rows_take_whole_images_and_their_recipe(method):
    # Their own measured recipe: whole images, no augmentation, the SimCLR recipe's encoder
    # (its 4x4 grid), the grid features (triplet) or a 128-d embedding (contrastive), SimCLR
    # pretraining first.
    config = resolved_config(f"--method={method}")
    assert config.view_shape == (28, 28, 1) and config.recipe.encoder_grid == 4
    assert config.recipe == ks.recipes.get(method)
    assert config.pretrain_steps == round(3 * 60000 / 256)
    model, _ = train_command.build_model_and_optimizer(config)
    expected = {"siamese-contrastive": 128, "siamese-triplet": None}[method]
    assert model.embedding_dim == expected and model.augmenter is None


@pytest.mark.parametrize(
    "arguments, info_shape, crop, grid, cropped",
    [
        ([], (28, 28, 1), 16, 4, True),
        (["--crop_size=0"], (28, 28, 1), 28, 4, False),  # 0: the image size, as before
        (["--crop_size=20", "--encoder_grid=1"], (28, 28, 1), 20, 1, True),
        (["--encoder_grid=2"], (28, 28, 1), 16, 2, True),
        ([], (32, 32, 3), 16, 4, True),  # the image rules: half the side, at least 16
        ([], (16, 16, 1), 16, 2, True),  # the grid is at most the 2x2 map of a 16x16 image
        (["--image_size=28"], (64, 48, 3), 16, 4, True),
        (["--stem=imagenet", "--image_size=96"], (28, 28, 1), 48, 1, True),
        (["--crop_size=0", "--image_size=96"], (28, 28, 1), 96, 1, False),  # 96 > 64: imagenet
        (["--image_size=96"], (28, 28, 1), 48, 4, True),  # 48-pixel views: the small stem
    ],
)
def test_crop_and_grid_resolve(arguments, info_shape, crop, grid, cropped):
    info = data.DatasetInfo("any", info_shape, 10, None, 1000)
    config = resolved_config("--batch_size=8", *arguments, info=info)
    assert config.view_shape[:2] == (crop, crop)
    assert config.recipe.encoder_grid == grid
    assert (config.recipe.crop_size is not None) == cropped


@pytest.mark.parametrize(
    "arguments, match",
    [
        (
            ["--encoder_grid=0"],
            r"--encoder_grid must be 'auto' or an integer >= 1 \(1: global average pooling; N: "
            r"the last feature map averaged over N x N cells\)\. Received: --encoder_grid=0 ",
        ),
        (["--encoder_grid=two"], r"--encoder_grid must be .*Received: --encoder_grid=two "),
        (["--encoder_grid=-2"], r"--encoder_grid must be .*Received: --encoder_grid=-2 "),
        (["--encoder_grid=2.5"], r"--encoder_grid must be .*Received: --encoder_grid=2\.5 "),
        (
            ["--crop_size=big"],
            r"--crop_size must be 'auto' or an integer >= 0 \(0: the image size\). "
            r"Received: --crop_size=big",
        ),
        (["--crop_size=-1"], r"--crop_size must be 'auto' or an integer >= 0"),
        (["--precision=float8"], r"--precision=float8: value should be one of <auto\|float32"),
        (["--image_size=8", "--encoder_grid=2"], r"at least 9 pixels with --encoder_grid=2"),
        (
            ["--encoder=keras.applications:MobileNetV3Small", "--crop_size=16"],
            r"need an encoder of any input size \(auto, resnetN, vit\)",
        ),
    ],
)
def test_bad_view_flags_fail_with_one_line_naming_the_flag(capsys, tmp_path, arguments, match):
    model_dir = tmp_path / "run"
    assert run_cli("train", *arguments, f"--model_dir={model_dir}") == 2
    assert re.search(match, only_error_line(capsys))
    assert not os.path.exists(model_dir)


def test_the_grid_flag_warns_with_an_encoder_that_pools_its_own_way(capsys):
    # keras.applications encoders are built at one size and pool as Keras built them.
    given = flags.FlagValues()
    train_flags.define_flags(given)
    given(["train", "--encoder=keras.applications:MobileNetV3Small", "--encoder_grid=2"])
    values = train_flags.flag_values("--encoder=keras.applications:MobileNetV3Small")
    source = sources.Source(sources.NAMED, "fashion_mnist")
    train_command._warn_unused(values, given, source)
    assert "--encoder_grid is not used with --encoder=keras.applications" in (
        capsys.readouterr().err
    )


@pytest.mark.slow
@pytest.mark.parametrize("method", list(methods.METHODS))
def test_every_method_trains_a_step_with_the_default_views(method):
    row = methods.METHODS[method]
    # MAE's recipe is a ViT: a one-block 16-d one (its default ViT trains in 29 s here).
    tiny_vit = ["--vit_dim=16", "--vit_depth=1", "--vit_heads=2"] if row.vit_only else []
    config = resolved_config(
        f"--method={method}",
        "--batch_size=16",
        "--train_examples=32",
        "--projection_dims=32,16",
        *(tiny_vit or ["--encoder_width=4"]),
        info=data.DatasetInfo("fashion_mnist", (28, 28, 1), 4, None, 32),
    )
    images = np.random.default_rng(0).integers(0, 256, (32, 28, 28, 1)).astype("uint8")
    labels = np.arange(32) % 4
    dataset = tf.data.Dataset.from_tensor_slices((images, labels) if row.needs_labels else images)
    model, optimizer = train_command.build_model_and_optimizer(config)
    model.compile(optimizer=optimizer)
    before = [weight.numpy().copy() for weight in model.encoder.trainable_weights]
    history = model.fit(row.build_batches(config, dataset), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    after = model.encoder.trainable_weights
    assert any(not np.allclose(b, a.numpy()) for b, a in zip(before, after, strict=True))
    assert model(images[:2]).shape[0] == 2  # the model serves 28x28 images


# ----------------------------------------------------------------------------- precision


def test_an_explicit_precision_is_used_as_given():
    def never():
        raise AssertionError("no probe for an explicit --precision")

    assert train_precision.resolve("mixed_bfloat16", None, never, never)[:2] == (
        "mixed_bfloat16",
        None,
    )


@pytest.mark.parametrize(
    "previous, expected",
    [
        ({"precision": "auto", "resolved": {"precision": "mixed_bfloat16"}}, "mixed_bfloat16"),
        ({"precision": "float32", "resolved": {}}, "float32"),  # written before `auto`
    ],
)
def test_auto_resumes_in_the_recorded_precision(previous, expected):
    def never():
        raise AssertionError("a resumed run keeps its precision: no probe")

    policy, seconds, how = train_precision.resolve("auto", previous, never, never)
    assert (policy, seconds) == (expected, None) and "recorded" in how
    assert train_precision.describe(policy, seconds, how) == f"Precision: {expected} ({how})."


def test_auto_times_the_candidates_and_names_a_keras_policy(monkeypatch):
    calls = []

    def fastest(build_model, batch, candidates=None, rounds=5):
        calls.append(batch)
        return "bfloat16", {"float32": 0.120, "bfloat16": 0.080}

    monkeypatch.setattr(ks.distribute, "fastest_precision", fastest)
    policy, seconds, how = train_precision.resolve("auto", None, lambda: None, lambda: "batch")
    assert policy == "mixed_bfloat16" and calls == ["batch"]
    assert seconds == {"float32": 0.120, "mixed_bfloat16": 0.080}
    assert train_precision.describe(policy, seconds, how) == (
        "Precision: mixed_bfloat16 (median train step on one batch: float32 120 ms, "
        "mixed_bfloat16 80 ms)."
    )


# The probe itself on a run's own model (the timed candidates, the recorded seconds, the global
# dtype policy left as it was): tests/test_cli.py::test_train_resume_evaluate_export, whose
# first run times it; one probe in the suite instead of two (~25 s of CPU each).


# ----------------------------------------------------------------------------- old run dirs


def old_run_config(model_dir):
    """A config.json as `train` wrote it before the recipe defaults (and before --encoder_grid)."""
    config = flag_config(f"--model_dir={model_dir}")
    config.update(crop_size=0, color_strength=0.5, epochs=3, precision="float32")
    config.update(encoder="resnet10", batch_size=256, learning_rate_scaling="linear")
    config.update(min_crop_area=0.25, warmup_fraction=0.1, encoder_width=16)
    for name in ("encoder_grid", "views"):
        del config[name]
    return config


def test_an_old_run_directory_resumes_only_with_its_own_flags(capsys, tmp_path):
    model_dir = tmp_path / "run"
    os.makedirs(model_dir)
    old = old_run_config(model_dir)
    run_dir.write_json(str(model_dir / run_dir.CONFIG), old)
    run_dir.write_json(str(model_dir / run_dir.TRAIN_RESULT), {"epochs": 3})
    # A finished run holds a whole model.keras (train checks it before doing nothing).
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(model_dir / run_dir.MODEL)
    # The new defaults would train another model: refused, naming the flags that resume it.
    assert run_cli("train", f"--model_dir={model_dir}") == 2
    error = only_error_line(capsys)
    assert "--crop_size: 0 -> 'auto'" in error and "--encoder_grid: 1 -> 'auto'" in error
    assert "--epochs: 3 -> 'auto'" in error and "--color_strength: 0.5 -> 'auto'" in error
    assert "--encoder: 'resnet10' -> 'auto'" in error and "--views: 'simclr' -> 'auto'" in error
    assert "precision" not in error  # `auto` resumes in the recorded float32
    resume = ["--crop_size=0", "--encoder_grid=1", "--epochs=3", "--color_strength=0.5"]
    assert all(flag in error for flag in resume)
    resume = error[error.rindex("(--") + 1 : error.index("), or use")].split()
    assert run_cli("train", f"--model_dir={model_dir}", *resume) == 0
    assert "has finished; nothing to do" in capsys.readouterr().out
    # With those flags the run resolves as it was written: whole images, global pooling.
    config = resolved_config(*resume)
    assert config.view_shape == (28, 28, 1) and config.recipe.encoder_grid == 1
    # An explicit precision must match the recorded one.
    assert run_cli("train", f"--model_dir={model_dir}", *resume, "--precision=mixed_bfloat16") == 2
    assert "--precision: 'float32' -> 'mixed_bfloat16'" in only_error_line(capsys)
