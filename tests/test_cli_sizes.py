"""Every `train --method=X` row works at every benchmarked size: 32x32x3 and 64x64x3.

The views, a ViT's patch, the colour jitter and the epochs come from the images through
`keras_siamese.recipes.image_rules` (`view_recipe.resolve`): at 32x32 SimCLR's views are
16x16, at 64x64 32x32; MAE and the Siamese rows train on whole images; a ViT's patch grows
with the views. For each row and size (and SimCLR's row on a ViT), with a tiny encoder (a
ResNet of width 2, 16 on whole 64x64 images; a one-block 8-d ViT): the run's config resolved
from the real flags is `ks.recipes.get(X, image_shape=...)` with the tiny encoder, its views
fit the images; the model and optimizer `train` builds (`build_model_and_optimizer`) train on
batches laid out by the row (`row.build_batches`: image batches, labelled pairs, P x K
batches), with a finite loss and changed weights, crop the resolved views, and serve whole
images. Then one real `train` run of the default SimCLR row on a folder of 64x64 RGB PNGs,
in process.

The steps run eagerly (tracing costs several times a tiny model's step on two cores); the
real run traces its step. The 64x64 cases are marked slow.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

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
)
from keras_siamese.encoders import vision_transformer_of
from keras_siamese.loss_names import PROXY_LOSS_NAMES
from keras_siamese.recipes import image_rules

SIZES = (32, 64)
CLASSES, EXAMPLES, BATCH = 4, 16, 8  # P x K = 4 x 2 for the Siamese rows
# TensorFlow 2.21's oneDNN filter gradient of a 1x1 stride-2 convolution (the ResNet's
# projection shortcuts) with under 16 input channels corrupts the heap on maps of 64x64 and
# more (an AVX-512 CPU; seen as oneDNN issue #6035): the process dies. Views of 64 pixels take
# the recipe's width 16, smaller ones width 2.
NARROW_WIDTH, SAFE_WIDTH, SAFE_FROM_VIEW = 2, 16, 64
TINY_VIT = {"vit_dim": 8, "vit_depth": 1, "vit_heads": 1}
# The rows with another encoder beside their default one: a ViT's patch on cropped views.
CASES = [(name, "auto") for name in methods.METHODS] + [("simclr", "vit")]


def tiny_changes(name: str, encoder: str, side: int) -> dict:
    """The recipe fields of the tiny encoder (what the flags below set)."""
    if encoder == "vit" or methods.METHODS[name].recipe.encoder_type == "vit":
        return dict(TINY_VIT)
    views = ks.recipes.get(name, image_shape=(side, side, 3)).view_size((side, side))
    return {"encoder_width": SAFE_WIDTH if min(views) >= SAFE_FROM_VIEW else NARROW_WIDTH}


def tiny_flags(name: str, encoder: str, side: int) -> list[str]:
    changes = tiny_changes(name, encoder, side)
    return [f"--method={name}", f"--encoder={encoder}", f"--batch_size={BATCH}"] + [
        f"--{field}={value}" for field, value in changes.items()
    ]


def expected_recipe(name: str, encoder: str, side: int, image_shape=True):
    """The rules' recipe for these images (`image_shape=False`: the recipe measured on 28x28
    grey images), with the tiny encoder."""
    changes = tiny_changes(name, encoder, side)
    if encoder == "vit":
        changes["encoder_type"] = "vit"
    return ks.recipes.get(name, (side, side, 3) if image_shape else None, **changes)


def resolved(name: str, encoder: str, side: int) -> run_config.RunConfig:
    info = data.DatasetInfo("folder", (side, side, 3), CLASSES, None, EXAMPLES)
    source = sources.Source(sources.FOLDER, "/unused")
    values = train_flags.flag_values(*tiny_flags(name, encoder, side))
    return run_config.resolve(values, info, source)


def images_and_labels(side: int):
    rng = np.random.default_rng(side)
    images = rng.integers(0, 256, (EXAMPLES, side, side, 3)).astype("uint8")
    return images, np.arange(EXAMPLES) % CLASSES


def weights_of(model):
    return [weight.numpy().copy() for weight in model.trainable_weights]


def size_params():
    return [
        pytest.param(name, encoder, side, marks=[pytest.mark.slow] if side == 64 else [])
        for side in SIZES
        for name, encoder in CASES
    ]


def assert_the_rules(config: run_config.RunConfig, name: str, encoder: str, side: int):
    """The resolved run has the image rules' recipe and views that fit the images."""
    row = methods.METHODS[name]
    recipe, expected = config.recipe, expected_recipe(name, encoder, side)
    if getattr(expected, "loss", None) in PROXY_LOSS_NAMES:
        expected = expected.replace(num_classes=CLASSES)  # one proxy per class of the data
    # The rules' views, patch, colour and epochs (image_rules), and nothing else changed.
    for field in ("crop_size", "patch_size", "color_strength", "hue", "grayscale_probability"):
        assert getattr(recipe, field) == getattr(expected, field), field
    assert recipe == expected
    assert (recipe.hue, recipe.grayscale_probability) == (
        (image_rules.COLOUR_RULE["hue"], image_rules.COLOUR_RULE["grayscale_probability"])
        if expected.color_strength
        else (row.recipe.hue, row.recipe.grayscale_probability)  # MAE: no colour jitter
    )
    # Half the side (SimCLR: 16 at 32, 32 at 64), or whole images (MAE, the Siamese rows);
    # a ViT's patch grows with the views.
    view = side if row.recipe.crop_size is None else side // 2
    assert config.view_shape == (view, view, 3)
    if recipe.encoder_type == "vit":
        base_patch = expected_recipe(name, encoder, side, image_shape=False).patch_size
        assert recipe.patch_size == base_patch * side // 32 and view % recipe.patch_size == 0
    if row.pretrains:  # SimCLR's views of the same images first
        pretraining = config.pretraining_recipe()
        assert pretraining.view_size(config.image_shape) == (side // 2, side // 2)


@pytest.mark.parametrize("name, encoder, side", size_params())
def test_every_row_resolves_the_rules_and_trains_a_step(name, encoder, side):
    row = methods.METHODS[name]
    config = resolved(name, encoder, side)
    assert_the_rules(config, name, encoder, side)
    images, labels = images_and_labels(side)
    examples = (images, labels) if row.needs_labels else images
    batches = row.build_batches(config, tf.data.Dataset.from_tensor_slices(examples))
    model, optimizer = train_command.build_model_and_optimizer(config)
    model.compile(optimizer=optimizer, run_eagerly=True)
    before = weights_of(model)
    # Two steps: the warmup's rate is 0 at the first.
    history = model.fit(batches.take(2), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1]), history.history
    after = weights_of(model)
    assert any(not np.allclose(b, a) for b, a in zip(before, after, strict=True))
    if hasattr(model, "make_views"):  # the model crops the resolved views
        views = model.make_views(tf.constant(images[:BATCH]))
        first = views[0] if isinstance(views, list | tuple) else views
        assert tuple(first.shape[1:]) == config.view_shape
    if config.recipe.encoder_type == "vit":  # the views' grid of patches
        grid = vision_transformer_of(model.encoder).grid_size
        assert grid == tuple(size // config.recipe.patch_size for size in config.view_shape[:2])
    served = model(images[:3])
    assert keras.ops.shape(served)[0] == 3  # whole side x side x 3 images


# ----------------------------------------------------------------- one real run at 64x64x3


@pytest.fixture
def colour_folder(tmp_path):
    """3 class sub-folders of 4 random 64x64 RGB PNGs each."""
    rng = np.random.default_rng(0)
    for name in ("red", "green", "blue"):
        os.makedirs(tmp_path / "images" / name)
        for index in range(4):
            pixels = rng.integers(0, 256, (64, 64, 3)).astype("uint8")
            png = tf.io.encode_png(pixels).numpy()
            (tmp_path / "images" / name / f"{index}.png").write_bytes(png)
    return tmp_path / "images"


def test_the_default_simclr_run_on_64x64_colour_images(colour_folder, tmp_path):
    model_dir = tmp_path / "run"
    arguments = [
        "train",
        f"--data_dir={colour_folder}",
        f"--model_dir={model_dir}",
        "--train_examples=8",
        "--batch_size=4",
        "--epochs=1",
        "--knn_monitor=false",
        "--precision=float32",
        "--strategy=default",
        "--verbose=0",
        "--plots=false",
    ]
    assert cli.main(["keras-siamese", *arguments]) == 0
    resolved = json.loads((model_dir / run_dir.CONFIG).read_text())["resolved"]
    assert resolved["image_shape"] == [64, 64, 3] and resolved["view_shape"] == [32, 32, 3]
    for field in ("grayscale_probability", "hue", "color_strength"):
        assert resolved["recipe"][field] == image_rules.COLOUR_RULE[field], field
    assert resolved["recipe"]["crop_size"] == ks.recipes.get("simclr", (64, 64, 3)).crop_size
    model = keras.saving.load_model(model_dir / run_dir.MODEL)
    images = tf.constant(images_and_labels(64)[0][:2])
    assert keras.ops.shape(model(images))[0] == 2  # serves whole 64x64 images
