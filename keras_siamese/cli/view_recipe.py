"""`train --crop_size`, `--stem`, `--encoder_grid` and the other image rules once the images
are known.

`auto` is the method's recipe (`keras_siamese.recipes`), measured on 28x28 Fashion-MNIST (a
ResNet with the small-image stem trained on 16x16 crops of 25-100% of the area, its last
feature map averaged over a 4x4 grid), with the values that depend on the images derived from
their side and channels by `keras_siamese.recipes.image_rules` (README "Recipes for other
images"): the views' side, a ViT's patch, the colour jitter and grayscale of colour images, the
epochs. A flag the user sets keeps its value. Views over 64 pixels take the imagenet stem; the
grid is at most the side of the last feature map on the images (image side / 8: 2 on 16x16
images, where 4 cells would repeat each value), and 1 (global average pooling) with the
imagenet stem. A crop smaller than the images needs an encoder of any input size (the
recipe's: auto, resnetN, vit); an encoder built at one size (keras.applications, KerasHub)
trains on whole images. The model, given `image_size=`, still takes and serves whole images.
A ViT's views are whole patches: multiples of `--patch_size` (`check_patches`, from the
flags before TensorFlow where they tell the views, else once the images are known); it has
no stem, and its grid (`--vit_pooling=grid`) is at most the views' patches per side.

No TensorFlow here: the flags are checked before it is imported.
"""

from __future__ import annotations

import os

from absl import app

from keras_siamese.cli import flag_checks
from keras_siamese.recipes import Recipe, image_rules

RECIPE_IMAGE_SIZE = (28, 28)  # the image size the recipes were first measured on
# The flags whose `auto` is a rule of the images (`image_rules`); set, they are kept.
RULE_FLAGS = ("crop_size", "patch_size", "epochs", "pretrain_epochs", "color_strength", "hue",
              "grayscale_probability", "stem", "encoder_grid")  # fmt: skip
GLOBAL_POOLING = 1
CROP_MEANING = "0: the image size"
GRID_MEANING = "1: global average pooling; N: the last feature map averaged over N x N cells"


def parse_crop_size(value) -> str | int:
    """`--crop_size`: `"auto"` or an integer >= 0 (0: the image size)."""
    return flag_checks.auto_integer("crop_size", value, 0, CROP_MEANING)


def parse_encoder_grid(value) -> str | int:
    """`--encoder_grid`: `"auto"` or an integer >= 1 (1: global average pooling)."""
    return flag_checks.auto_integer("encoder_grid", value, 1, GRID_MEANING)


def parse_flags(values: dict) -> dict:
    """`values` with `crop_size` and `encoder_grid` parsed (`"auto"` or an int), as recorded.

    Raises:
        absl.app.UsageError: naming the flag, the value and what it takes.
    """
    return dict(
        values,
        crop_size=parse_crop_size(values["crop_size"]),
        encoder_grid=parse_encoder_grid(values["encoder_grid"]),
    )


def _is_auto(value) -> bool:
    return isinstance(value, str) and value.strip().lower() == "auto"


def kept_fields(values: dict) -> tuple[str, ...]:
    """The rule fields whose flags the user set (not `auto`): the rules leave them."""
    return tuple(name for name in RULE_FLAGS if not _is_auto(values.get(name, "auto")))


def for_images(recipe: Recipe, image_shape, from_recipe: bool, values: dict | None = None):
    """`recipe` with the image rules' values for these images (`image_rules.for_images`),
    except the fields whose flags are set; an encoder built at one size (not `from_recipe`)
    trains on whole images.

    Args:
        recipe: the run's recipe with the flags applied.
        image_shape: the images' `(height, width, channels)`.
        from_recipe: whether the recipe builds the encoder (auto, resnetN, vit).
        values: the flag values (None: every rule applies).

    Returns:
        The recipe for these images.
    """
    keep = kept_fields(values or {})
    if not from_recipe and "crop_size" not in keep:
        recipe, keep = recipe.replace(crop_size=None), (*keep, "crop_size")
    return image_rules.for_images(recipe, tuple(int(v) for v in image_shape), keep=keep)


def describe_rules(recipe: Recipe, values: dict, image_shape) -> str | None:
    """One line naming what the image rules chose for the `auto` flags (None on 28x28 grey
    images, where the recipe is the measured one).

    Example:
        >>> line = describe_rules(Recipe(crop_size=16), {}, (32, 32, 3))
        >>> line.startswith("Image rules for 32x32x3 images")
        True
    """
    if tuple(image_shape) == (*RECIPE_IMAGE_SIZE, 1):
        return None
    kept = kept_fields(values)
    names = [n for n in RULE_FLAGS if n not in kept and hasattr(recipe, n)]
    unused = "patch_size" if recipe.encoder_type != "vit" else "stem"
    names = [n for n in names if n != unused]
    chosen = " ".join(f"--{n}={_shown(getattr(recipe, n))}" for n in names)
    shape = "x".join(str(side) for side in image_shape)
    return f'Image rules for {shape} images (README "Recipes for other images"): {chosen}'


def _shown(value) -> str:
    return "0" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _flag_views(recipe: Recipe, values: dict) -> tuple[int, str, Recipe] | None:
    """The views' side, where it comes from and the recipe whose patches they must be
    whole numbers of, when the flags tell the views (else None)."""
    crop, image = parse_crop_size(values["crop_size"]), values.get("image_size") or 0
    if crop not in ("auto", 0):
        return crop, "--crop_size", recipe
    if not image:
        return None
    if crop == 0:
        return image, "the whole images", recipe
    ruled = for_images(recipe, (image, image, 1), True, values)
    return ruled.crop_size or image, f"the views of {image}x{image} images", ruled


def check_patches(recipe: Recipe, values: dict, image_shape=None) -> None:
    """Checks that a ViT's views are whole patches (multiples of `--patch_size`).

    Args:
        recipe: the run's recipe (nothing is checked unless its `encoder_type` is "vit").
        values: the flag values (`crop_size`, `image_size`, `patch_size`).
        image_shape: the images' `(height, width, channels)` once known; None checks the
            views the flags tell (`--crop_size`, or `--image_size` with whole images).

    Raises:
        absl.app.UsageError: naming the flags and their values.

    Example:
        >>> check_patches(Recipe(encoder_type="vit", patch_size=4), {"crop_size": 16})
    """
    if recipe.encoder_type != "vit":
        return
    if image_shape is None:
        known = _flag_views(recipe, values)
        if known is None:
            return
        side, how, recipe = known
        sides = (side, side)
    else:
        sides, how = recipe.view_size(image_shape), "the views"
        side = "x".join(str(size) for size in sides)
    patch = recipe.patch_size
    if all(size % patch == 0 for size in sides):
        return
    raise app.UsageError(
        f"A ViT's views must be whole patches: {side} ({how}) is not a multiple of "
        f"--patch_size ({patch}). Pass --crop_size (or --image_size with --crop_size=0) a "
        f"multiple of {patch}, or another --patch_size. Received: "
        f"--crop_size={values['crop_size']}, --image_size={values.get('image_size', 0)}, "
        f"--patch_size={values.get('patch_size', 'auto')}"
    )


def _check_crop(recipe: Recipe, values: dict, image_shape, from_recipe: bool) -> None:
    height, width = image_shape[:2]
    crop = recipe.crop_size
    if crop is not None and crop > min(height, width):
        raise app.UsageError(
            f"--image_size ({height}x{width}) is smaller than --crop_size ({crop}): views are "
            f"cropped from the images. Received: --crop_size={crop}"
        )
    if crop is not None and (crop, crop) != (height, width) and not from_recipe:
        raise app.UsageError(
            f"Views of {crop}x{crop} from {height}x{width} images need an encoder of any input "
            f"size (auto, resnetN, vit); --encoder={values['encoder']} is built at one size. "
            f"Pass --crop_size=0 with square images (e.g. --image_size={min(height, width)}). "
            f"Received: --crop_size={values['crop_size']}, --encoder={values['encoder']}"
        )


# TensorFlow 2.21's oneDNN gradient of a 1x1 stride-2 convolution corrupts memory (a segfault
# or "double free") with fewer than 16 input channels on maps of 64 pixels or more: the ResNet's
# first shortcut sees `encoder_width` channels at the views' side (the small stem keeps it).
ONEDNN_SAFE_WIDTH = 16
ONEDNN_LARGEST_NARROW_MAP = 63


def _check_narrow_resnet(recipe: Recipe, view: int) -> None:
    """Refuses a ResNet narrower than 16 on maps of 64+ pixels while oneDNN is on."""
    feature_map = view if recipe.stem == "small" else view // 4
    narrow = recipe.encoder_width < ONEDNN_SAFE_WIDTH
    if not narrow or feature_map <= ONEDNN_LARGEST_NARROW_MAP:
        return
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip() == "0":
        return
    raise app.UsageError(
        f"--encoder_width={recipe.encoder_width} on {view}x{view} views: TensorFlow's oneDNN "
        "kernels crash the process (memory corruption) in the gradient of the ResNet's first "
        f"shortcut with fewer than {ONEDNN_SAFE_WIDTH} channels on maps of 64 pixels or more. "
        f"Use --encoder_width >= {ONEDNN_SAFE_WIDTH}, smaller views (--crop_size), or set "
        f"TF_ENABLE_ONEDNN_OPTS=0. Received: --encoder_width={recipe.encoder_width}, "
        f"views {view}x{view}, --stem={recipe.stem}"
    )


def resolve(recipe: Recipe, values: dict, image_shape, from_recipe: bool) -> Recipe:
    """`recipe` with the views and the ResNet of `--crop_size`, `--stem`, `--encoder_grid`.

    Args:
        recipe: the recipe with the flags applied (`auto` ones still the recipe's values).
        values: the flag values (`crop_size`, `stem`, `encoder_grid`, `encoder`).
        image_shape: `(height, width, channels)` of the images the model serves.
        from_recipe: whether the recipe builds the encoder (auto, resnetN, vit: any input
            size), else it is built at one size.

    Raises:
        absl.app.UsageError: for views larger than the images, smaller than them with an
            encoder built at one size, too small for the ResNet, or not whole patches of
            the ViT.
    """
    recipe = for_images(recipe, image_shape, from_recipe, values)
    _check_crop(recipe, values, image_shape, from_recipe)
    if not from_recipe:
        return recipe
    if recipe.encoder_type == "vit":
        check_patches(recipe, values, image_shape)
        return recipe
    view = min(recipe.view_size(image_shape))
    _check_narrow_resnet(recipe, view)
    if view < recipe.smallest_view():
        pooling = "" if recipe.encoder_grid == 1 else f" with --encoder_grid={recipe.encoder_grid}"
        raise app.UsageError(
            f"The {recipe.stem} ResNet stem needs views of at least {recipe.smallest_view()} "
            f"pixels{pooling}. Received: --crop_size={view} (--image_size={image_shape[0]})"
        )
    return recipe
