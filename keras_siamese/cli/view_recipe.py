"""`train --crop_size`, `--stem` and `--encoder_grid` once the images are known.

`auto` is the method's recipe (`keras_siamese.recipes`), measured on 28x28 Fashion-MNIST: a
ResNet with the small-image stem trained on 16x16 crops (25-100% of the area), its last
feature map averaged over a 4x4 grid. Only 28x28 images were measured, so on other images
`auto` trains on whole images; views over 64 pixels take the imagenet stem; the grid is at
most the side of the last feature map on the images (image side / 8: 2 on 16x16 images,
where 4 cells would repeat each value), and 1 (global average pooling) with the imagenet
stem. A crop smaller than the images needs an encoder of any input size (the resnetN
encoders); the model, given `image_size=`, still takes and serves whole images.

No TensorFlow here: the flags are checked before it is imported.
"""

from __future__ import annotations

from absl import app

from keras_siamese.cli import flag_checks
from keras_siamese.recipes import Recipe

RECIPE_IMAGE_SIZE = (28, 28)  # the only image size the recipes were measured on
LARGEST_SMALL_STEM_VIEW = 64
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


def auto_crop(recipe: Recipe, image_shape, resnet: bool) -> Recipe:
    """`recipe` with `crop_size` as `--crop_size=auto` reads it for these images."""
    measured = resnet and tuple(image_shape[:2]) == RECIPE_IMAGE_SIZE
    return recipe if measured else recipe.replace(crop_size=None)


def _check_crop(recipe: Recipe, values: dict, image_shape, resnet: bool) -> None:
    height, width = image_shape[:2]
    crop = recipe.crop_size
    if crop is not None and crop > min(height, width):
        raise app.UsageError(
            f"--image_size ({height}x{width}) is smaller than --crop_size ({crop}): views are "
            f"cropped from the images. Received: --crop_size={crop}"
        )
    if crop is not None and (crop, crop) != (height, width) and not resnet:
        raise app.UsageError(
            f"Views of {crop}x{crop} from {height}x{width} images need an encoder of any input "
            f"size (the resnetN encoders); --encoder={values['encoder']} is built at one size. "
            f"Pass --crop_size=0 with square images (e.g. --image_size={min(height, width)}). "
            f"Received: --crop_size={values['crop_size']}, --encoder={values['encoder']}"
        )


def _auto_encoder(recipe: Recipe, values: dict, image_side: int) -> Recipe:
    """The stem and the grid of `auto` (see the module docstring)."""
    view_side = recipe.crop_size or image_side
    if values["stem"] == "auto" and view_side > LARGEST_SMALL_STEM_VIEW:
        recipe = recipe.replace(stem="imagenet")
    if values["encoder_grid"] == "auto":
        grid = GLOBAL_POOLING
        if recipe.stem == "small":
            grid = min(recipe.encoder_grid, -(-image_side // 8))
        recipe = recipe.replace(encoder_grid=grid)
    return recipe


def resolve(recipe: Recipe, values: dict, image_shape, resnet: bool) -> Recipe:
    """`recipe` with the views and the ResNet of `--crop_size`, `--stem`, `--encoder_grid`.

    Args:
        recipe: the recipe with the flags applied (`auto` ones still the recipe's values).
        values: the flag values (`crop_size`, `stem`, `encoder_grid`, `encoder`).
        image_shape: `(height, width, channels)` of the images the model serves.
        resnet: whether the encoder is the recipe's ResNet (else one built at one size).

    Raises:
        absl.app.UsageError: for views larger than the images, smaller than them with an
            encoder built at one size, or too small for the ResNet.
    """
    if parse_crop_size(values["crop_size"]) == "auto":
        recipe = auto_crop(recipe, image_shape, resnet)
    _check_crop(recipe, values, image_shape, resnet)
    if not resnet:
        return recipe
    recipe = _auto_encoder(recipe, values, min(image_shape[:2]))
    view = min(recipe.view_size(image_shape))
    if view < recipe.smallest_view():
        pooling = "" if recipe.encoder_grid == 1 else f" with --encoder_grid={recipe.encoder_grid}"
        raise app.UsageError(
            f"The {recipe.stem} ResNet stem needs views of at least {recipe.smallest_view()} "
            f"pixels{pooling}. Received: --crop_size={view} (--image_size={image_shape[0]})"
        )
    return recipe
