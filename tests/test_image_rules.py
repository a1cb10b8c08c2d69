"""The image rules (`ks.recipes.image_rules`): each recipe's values for other image sizes and
colour, against the rules written out by hand, and through `recipes.get` and the CLI."""

import math

import pytest

import keras_siamese as ks
from keras_siamese.cli import data, run_config, train_flags, view_recipe
from keras_siamese.recipes import image_rules

SIZES = (16, 32, 64, 96)


def recipes_under_test():
    """Every method's recipe and every ViT recipe (MAE has only the ViT)."""
    for name in ks.recipes.NAMES:
        if name != "mae":
            yield name, ks.recipes.get(name)
        yield f"{name} vit", ks.recipes.get(name, encoder_type="vit")


RECIPES = dict(recipes_under_test())


@pytest.mark.parametrize("name", list(RECIPES))
def test_28x28_grey_images_keep_every_measured_recipe(name):
    recipe = RECIPES[name]
    assert image_rules.for_images(recipe, (28, 28, 1)) == recipe
    assert image_rules.rule_values(recipe, (28, 28, 1)) == {}


@pytest.mark.parametrize(
    "side, view", [(16, 16), (20, 16), (32, 16), (40, 20), (64, 32), (96, 48), (100, 48)]
)
def test_simclr_views_are_half_the_side_at_least_16_and_multiples_of_4(side, view):
    # Written out: max(16, side / 2), rounded to a multiple of 4, at most the side.
    expected = min(side // 4, round(max(16, side / 2) / 4)) * 4
    assert expected == view
    assert image_rules.view_side(ks.recipes.get("simclr"), side) == view


@pytest.mark.parametrize("name", list(RECIPES))
@pytest.mark.parametrize("side", SIZES)
def test_a_vit_keeps_its_grid_of_patches_and_whole_patches(name, side):
    recipe = RECIPES[name]
    ruled = image_rules.for_images(recipe, (side, side, 3))
    view = ruled.crop_size or side
    assert view <= side
    if recipe.encoder_type != "vit":
        assert ruled.patch_size == recipe.patch_size
        return
    assert view % ruled.patch_size == 0
    reference = (recipe.crop_size or 28) // recipe.patch_size
    if side >= 28:  # the views' patches per side stay the recipe's (up to rounding)
        assert abs(view // ruled.patch_size - reference) <= 1, (view, ruled.patch_size)


@pytest.mark.parametrize("name", list(RECIPES))
def test_whole_image_recipes_keep_whole_images(name):
    recipe = RECIPES[name]
    if recipe.crop_size is None:
        assert image_rules.for_images(recipe, (64, 64, 3)).crop_size is None


def test_epochs_follow_the_pixels_per_view():
    recipe = ks.recipes.get("simclr")  # 10 epochs of 16x16 views
    for side, epochs in ((32, 10), (64, 3), (96, 1)):
        view = image_rules.view_side(recipe, side)
        assert epochs == max(1, math.floor(10 * 16**2 / view**2 + 0.5))
        assert image_rules.for_images(recipe, (side, side, 1)).epochs == epochs


def test_a_kept_view_sets_the_epochs():
    recipe = ks.recipes.get("simclr")
    ruled = image_rules.for_images(recipe.replace(crop_size=16), (64, 64, 3), keep=("crop_size",))
    assert ruled.crop_size == 16 and ruled.epochs == 10
    kept = image_rules.for_images(recipe.replace(epochs=2), (64, 64, 3), keep=("epochs",))
    assert kept.crop_size == 32 and kept.epochs == 2
    # A ViT's patch follows a kept view: the largest scaled patch (4 or 8) it holds whole.
    vit = ks.recipes.get("simclr", encoder_type="vit")
    for crop, patch in ((20, 4), (24, 8), (28, 4), (32, 8)):
        ruled = image_rules.for_images(vit.replace(crop_size=crop), (64, 64, 3), ("crop_size",))
        assert ruled.patch_size == patch and crop % patch == 0


def test_smaller_images_keep_the_recipes_epochs():
    mae = ks.recipes.get("mae", encoder_type="vit")  # whole 16x16 images: 16 patches, not 49
    assert image_rules.for_images(mae, (16, 16, 1)).epochs == mae.epochs
    assert image_rules.for_images(mae, (64, 64, 3)).epochs == round(10 * 49 / 64)


def test_siamese_pretraining_epochs_follow_simclrs_views():
    recipe = ks.recipes.get("siamese-triplet")  # 3 epochs of SimCLR pretraining on 16x16
    assert image_rules.for_images(recipe, (32, 32, 3)).pretrain_epochs == 3.0
    assert image_rules.for_images(recipe, (64, 64, 3)).pretrain_epochs == 1.0  # 0.75, at least 1


def test_colour_images_get_the_colour_rule_and_grey_images_do_not():
    recipe = ks.recipes.get("simclr")
    colour = image_rules.for_images(recipe, (32, 32, 3))
    for field, value in image_rules.COLOUR_RULE.items():
        assert getattr(colour, field) == value
    grey = image_rules.for_images(recipe, (32, 32, 1))
    assert grey.hue == recipe.hue and grey.grayscale_probability == recipe.grayscale_probability
    # MAE has no colour jitter (strength 0): it stays without.
    mae = ks.recipes.get("mae", encoder_type="vit")
    assert image_rules.for_images(mae, (32, 32, 3)).color_strength == 0.0


def test_the_colour_rule_reaches_the_augmenter():
    recipe = ks.recipes.get("simclr", image_shape=(32, 32, 3))
    config = recipe.build_augmenter((32, 32, 3), seed=0).get_config()
    assert config["image_size"] == (16, 16)
    assert config["grayscale_probability"] == recipe.grayscale_probability
    assert config["color_jitter"] == (0.8, 0.8, 0.8, recipe.hue)
    byol = ks.recipes.get("byol", image_shape=(32, 32, 3)).build_augmenter((32, 32, 3), seed=0)
    assert byol[0].get_config()["color_jitter"] == (0.4, 0.4, 0.2, recipe.hue)
    # Without a hue the views keep their own (SimCLR's 0.2, BYOL's 0.1).
    plain = ks.recipes.get("byol").build_augmenter((28, 28, 3), seed=0)
    assert plain[1].get_config()["color_jitter"] == (0.4, 0.4, 0.2, 0.1)


def test_recipes_get_applies_the_rules_but_keeps_the_changes():
    ruled = ks.recipes.get("simclr", image_shape=(64, 64, 3))
    assert ruled == image_rules.for_images(ks.recipes.get("simclr"), (64, 64, 3))
    kept = ks.recipes.get("simclr", image_shape=(64, 64, 3), crop_size=24, hue=0.1)
    assert kept.crop_size == 24 and kept.hue == 0.1
    assert kept.grayscale_probability == image_rules.COLOUR_RULE["grayscale_probability"]


@pytest.mark.parametrize(
    "shape, match",
    [((32, 32), "image_shape"), ((32, 32, 0), "image_shape"), ((32.0, 32, 3), "image_shape")],
)
def test_a_bad_image_shape_is_named(shape, match):
    with pytest.raises(ValueError, match=match):
        image_rules.for_images(ks.recipes.get("simclr"), shape)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"hue": 0.6}, "hue"),
        ({"hue": -0.1}, "hue"),
        ({"hue": 0.5, "color_strength": 1.2}, "at most 0.5"),
        ({"grayscale_probability": 1.5}, "grayscale_probability"),
    ],
)
def test_bad_colour_fields_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        ks.recipes.get("simclr", **changes)


def resolve(*arguments, shape=(32, 32, 3)):
    values = train_flags.flag_values("--model_dir=unused", "--batch_size=8", *arguments)
    return run_config.resolve(values, data.DatasetInfo("any", shape, 10, None, 1000)).recipe


def test_the_cli_defaults_are_the_rules_and_set_flags_are_kept():
    assert resolve() == ks.recipes.get("simclr", image_shape=(32, 32, 3))
    assert resolve(shape=(64, 64, 3)) == ks.recipes.get("simclr", image_shape=(64, 64, 3))
    kept = resolve("--crop_size=24", "--hue=0.1", "--epochs=2", shape=(64, 64, 3))
    assert (kept.crop_size, kept.hue, kept.epochs) == (24, 0.1, 2)
    assert kept.grayscale_probability == image_rules.COLOUR_RULE["grayscale_probability"]
    vit = resolve("--encoder=vit", shape=(64, 64, 3))
    assert (vit.crop_size, vit.patch_size) == (32, 8)


def test_train_names_what_the_rules_chose_and_not_what_the_user_set():
    values = train_flags.flag_values("--model_dir=unused", "--crop_size=20", "--encoder=vit")
    config = run_config.resolve(values, data.DatasetInfo("any", (64, 64, 3), 10, None, 1000))
    line = view_recipe.describe_rules(config.recipe, values, config.image_shape)
    assert line.startswith("Image rules for 64x64x3 images")
    assert "--crop_size" not in line and "--patch_size=8" not in line  # 20: patch 4 kept
    assert f"--epochs={config.recipe.epochs} " in line and "--grayscale_probability=0.5" in line
    grey = train_flags.flag_values("--model_dir=unused")
    assert view_recipe.describe_rules(ks.recipes.get("simclr"), grey, (28, 28, 1)) is None


@pytest.mark.parametrize(
    "shape, stem, grid",
    [((16, 16, 1), "small", 2), ((32, 32, 3), "small", 4), ((64, 64, 3), "small", 4),
     ((160, 160, 3), "imagenet", 1), ((12, 12, 1), "small", 2)],
)  # fmt: skip
def test_the_stem_and_grid_follow_the_views(shape, stem, grid):
    # Views over 64 pixels: the imagenet stem and global pooling; else at most side / 8 cells.
    ruled = ks.recipes.get("simclr", image_shape=shape)
    assert (ruled.stem, ruled.encoder_grid) == (stem, grid)
    assert grid == (1 if stem == "imagenet" else min(4, math.ceil(shape[0] / 8)))


def test_kept_stem_and_vit_grid():
    kept = ks.recipes.get("simclr", image_shape=(160, 160, 3), stem="small")
    assert kept.stem == "small" and kept.encoder_grid == 4
    vit = ks.recipes.get("simclr", image_shape=(8, 8, 3), encoder_type="vit", crop_size=8)
    assert vit.encoder_grid == 2  # 8 / 4 = 2 patches per side


def test_a_narrow_resnet_on_large_maps_is_refused_before_it_crashes(monkeypatch):
    from absl import app

    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    with pytest.raises(app.UsageError, match=r"--encoder_width=8 on 64x64 views.*oneDNN"):
        resolve("--encoder_width=8", "--crop_size=64", shape=(64, 64, 3))
    assert resolve("--encoder_width=8", shape=(64, 64, 3)).crop_size == 32  # 32-pixel maps
    assert resolve("--encoder_width=16", "--crop_size=64", shape=(64, 64, 3)).crop_size == 64
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert resolve("--encoder_width=8", "--crop_size=64", shape=(64, 64, 3)).crop_size == 64
