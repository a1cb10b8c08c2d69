"""The recipes' data-dependent values as functions of the images: `for_images`.

Every recipe was first measured on 28x28 grey Fashion-MNIST. `for_images(recipe, image_shape)`
derives the values that depend on the images from their side and channel count, by rules that
`benchmarks/any_images.py` measured on colour and larger images (README "Recipes for other
images"); on 28x28 grey images it returns the recipe unchanged:

- **views**: half the images' smaller side, at least the recipe's 16 pixels and never more than
  the images, a multiple of 4 (of the ViT's patch); a recipe trained on whole images (MAE, the
  Siamese recipes) keeps whole images.
- **ViT patches**: scaled with the views, so a view keeps the recipe's grid of patches.
- **colour** (3-channel images): `COLOUR_RULE`'s jitter strength, hue and grayscale
  probability (the recipes' values were measured on grey images, where they do nothing).
- **epochs**: scaled down by the growth of the pixels (a ViT: the patches) per view over the
  recipe's, so a run costs about the recipe's time on Fashion-MNIST; at least 1, never more
  than the recipe's.
- **stem and grid** (a ResNet): views over 64 pixels take the imagenet stem and global
  average pooling (grid 1); with the small stem the grid is at most the side of the last
  feature map on the images (side / 8: 2 on 16x16 images, where 4 cells would repeat each
  value). A ViT's grid (`vit_pooling="grid"`) is at most the views' patches per side.

No TensorFlow.
"""

from __future__ import annotations

import math

from keras_siamese.recipes.recipe import Recipe

RECIPE_SIDE = 28  # the images every recipe was measured on (28x28, one channel)
LARGEST_SMALL_STEM_VIEW = 64  # larger views take the imagenet stem (7x7/2 + max-pool)
FEATURE_STRIDE = 8  # the small stem's last feature map: the side / 8
VIEW_MULTIPLE = 4
# Measured on colour32 (colour a nuisance; benchmarks/results/any_images.jsonl).
COLOUR_RULE = {"color_strength": 1.0, "hue": 0.5, "grayscale_probability": 0.5}


def _check_shape(image_shape) -> tuple[int, int]:
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise ValueError(
            "Argument `image_shape` must be (height, width, channels) of positive integers. "
            f"Received: image_shape={image_shape!r}"
        )
    return min(shape[:2]), shape[2]


def _reference_view(recipe: Recipe) -> int:
    """The view side the recipe's class was measured with on 28x28 images (its default)."""
    return type(recipe).__dataclass_fields__["crop_size"].default or RECIPE_SIDE


def _wanted_view(recipe: Recipe, side: int) -> float:
    """Half the side, at least the recipe's view, at most the side (whole-image recipes: the
    side)."""
    if recipe.crop_size is None:
        return float(side)
    return min(float(side), max(float(recipe.crop_size), side / 2))


def _patch_scale(recipe: Recipe, side: int) -> int:
    """A ViT's patches for these images, in multiples of the recipe's patch side."""
    return max(1, round(_wanted_view(recipe, side) / _reference_view(recipe)))


def view_side(recipe: Recipe, side: int) -> int | None:
    """The views' side for images of smaller side `side` (None: whole images).

    Example:
        >>> import keras_siamese as ks
        >>> [view_side(ks.recipes.get("simclr"), side) for side in (28, 32, 64, 96)]
        [16, 16, 32, 48]
    """
    if recipe.crop_size is None:
        return None
    if side == RECIPE_SIDE:
        return recipe.crop_size
    multiple = VIEW_MULTIPLE
    if recipe.encoder_type == "vit":
        multiple = recipe.patch_size * _patch_scale(recipe, side)
    wanted = round(_wanted_view(recipe, side) / multiple)
    return max(1, min(side // multiple, wanted)) * multiple


def _view_cost(recipe: Recipe, view: int) -> float:
    """Pixels per view (a ViT: patches per view), the unit the epochs are scaled by."""
    if recipe.encoder_type == "vit":
        return (view / recipe.patch_size) ** 2
    return float(view * view)


def _cost_ratio(recipe: Recipe, new: Recipe, side: int) -> float:
    """`recipe`'s view cost on its own images over `new`'s on images of `side`, at most 1:
    cheaper views (images under 28 pixels) keep the recipe's epochs."""
    cost = _view_cost(new, new.crop_size or side)
    return min(1.0, _view_cost(recipe, _reference_view(recipe)) / cost)


def _views(recipe: Recipe, side: int, keep=()) -> dict:
    """The views' side (and a ViT's patch) for images of smaller side `side`; a kept view
    keeps its side, and a ViT's patch is then the largest scaled patch it holds whole."""
    if "crop_size" not in keep:
        changes = {"crop_size": view_side(recipe, side)}
        if recipe.encoder_type == "vit":
            changes["patch_size"] = recipe.patch_size * _patch_scale(recipe, side)
        return changes
    if recipe.encoder_type != "vit":
        return {}
    view = recipe.crop_size or side
    scale = max(1, round(view / _reference_view(recipe)))
    while scale > 1 and view % (recipe.patch_size * scale):
        scale -= 1
    return {"patch_size": recipe.patch_size * scale}


def _epochs(recipe: Recipe, new: Recipe, side: int) -> dict:
    """`epochs` scaled by the cost of one view (at least 1), and Siamese's `pretrain_epochs`
    by the cost of its SimCLR pretraining's view."""
    ratio = _cost_ratio(recipe, new, side)
    changes = {"epochs": max(1, math.floor(recipe.epochs * ratio + 0.5))}
    if getattr(recipe, "pretrain_epochs", 0):
        pretraining = recipe.pretraining_recipe()
        simclr_views = pretraining.replace(**_views(pretraining, side))
        ratio = _cost_ratio(pretraining, simclr_views, side)
        changes["pretrain_epochs"] = max(1.0, round(recipe.pretrain_epochs * ratio, 2))
    return changes


def _encoder(recipe: Recipe, side: int, keep=()) -> dict:
    """The stem and the grid for views of `recipe` on images of smaller side `side`."""
    view = recipe.crop_size or side
    if recipe.encoder_type == "vit":
        if recipe.vit_pooling != "grid":
            return {}
        return {"encoder_grid": min(recipe.encoder_grid, view // recipe.patch_size)}
    stem = recipe.stem
    if "stem" not in keep and view > LARGEST_SMALL_STEM_VIEW:
        stem = "imagenet"
    grid = 1
    if stem == "small":
        grid = min(recipe.encoder_grid, -(-side // FEATURE_STRIDE))
    return {"stem": stem, "encoder_grid": grid}


def rule_values(recipe: Recipe, image_shape, keep=()) -> dict:
    """The fields `for_images` sets for `image_shape`, by name (see the module docstring).

    The epochs follow the views the recipe trains on, `keep`'s own where it keeps them.
    """
    side, channels = _check_shape(image_shape)
    changes = {}
    if side != RECIPE_SIDE:
        views = {k: v for k, v in _views(recipe, side, keep).items() if k not in keep}
        changes.update(views)
        changes.update(_epochs(recipe, recipe.replace(**views), side))
    if channels == 3 and recipe.color_strength > 0:
        changes.update(COLOUR_RULE)
    changes.update(_encoder(recipe.replace(**changes), side, keep))
    return {k: v for k, v in changes.items() if k not in keep and getattr(recipe, k) != v}


def for_images(recipe: Recipe, image_shape, keep=()) -> Recipe:
    """`recipe` with the values of the rules for images of `image_shape`.

    Args:
        recipe: a method's recipe (as measured on 28x28 grey images).
        image_shape: `(height, width, channels)` of the images.
        keep: fields to leave as they are in `recipe` (e.g. the flags a user set).

    Returns:
        The recipe for these images (unchanged for 28x28x1).

    Raises:
        ValueError: for an `image_shape` that is not three positive integers.

    Example:
        >>> import keras_siamese as ks
        >>> recipe = for_images(ks.recipes.get("simclr"), (32, 32, 3))
        >>> recipe.crop_size, recipe.grayscale_probability
        (16, 0.5)
    """
    changes = rule_values(recipe, image_shape, tuple(keep))
    return recipe.replace(**changes) if changes else recipe
