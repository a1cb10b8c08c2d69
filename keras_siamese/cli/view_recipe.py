"""`train --crop_size` and `--encoder_grid`: the views and the representation, `auto` or given.

`auto` is the recipe our sweep measured best on Fashion-MNIST (SimCLR and SimSiam, 2 CPU
cores; benchmarks/results/sweep.md, benchmarks/recipe_parts.py): a ResNet-10 with the
small-image stem trained on 16x16 crops (25-100% of the area) of the 28x28 images, its last
feature map (4x4x128 on a 28x28 image at width 16) averaged over a 4x4 grid and flattened
(2,048 features) instead of globally averaged. SimCLR, 3 epochs: kNN 86.1, linear probe 92.2,
linear probe on 1% of the labels 84.4. Only 28x28 images were measured: other sizes train on
whole images (`--crop_size` auto is the image size), and the grid follows the stem.

A crop smaller than the images needs an encoder of any input size (`input_shape=(None, None,
C)`; the resnetN encoders): it trains on the crops, and the model, given `image_size=`, takes
and serves whole images. The siamese rows (`Method.view_recipe=False`) train on whole labelled
images with global pooling, their own measured recipe.

No TensorFlow here: the flags are checked before it is imported.
"""

from __future__ import annotations

from absl import app

from keras_siamese.cli import encoder_flag, flag_checks

RECIPE_IMAGE_SIZE = (28, 28)  # the only image size the recipe was measured on
RECIPE_CROP_SIZE = 16
RECIPE_GRID = 4
GLOBAL_POOLING = 1
CROP_MEANING = "0: the image size"
GRID_MEANING = "1: global average pooling; N: the last feature map averaged over N x N cells"


def parse_crop_size(value) -> str | int:
    """`--crop_size`: `"auto"` or an integer >= 0 (0: the image size)."""
    return flag_checks.auto_integer("crop_size", value, 0, CROP_MEANING)


def parse_encoder_grid(value) -> str | int:
    """`--encoder_grid`: `"auto"` or an integer >= 1 (1: global average pooling)."""
    return flag_checks.auto_integer("encoder_grid", value, 1, GRID_MEANING)


def parse_flags(config: dict) -> dict:
    """`config` with `crop_size` and `encoder_grid` parsed (`"auto"` or an int), as recorded.

    Raises:
        absl.app.UsageError: naming the flag, the value and what it takes.
    """
    return dict(
        config,
        crop_size=parse_crop_size(config["crop_size"]),
        encoder_grid=parse_encoder_grid(config["encoder_grid"]),
    )


def crop_size(config: dict, view_recipe: bool, height: int, width: int) -> int:
    """The side of the training views for images of `height` x `width`.

    Raises:
        absl.app.UsageError: for a crop larger than the images, or smaller than them with an
            encoder built at one size (keras.applications, KerasHub).
    """
    value = parse_crop_size(config["crop_size"])
    resnet = encoder_flag.parse(config["encoder"]).family == encoder_flag.RESNET
    if value == "auto":
        recipe = view_recipe and resnet and (height, width) == RECIPE_IMAGE_SIZE
        crop = RECIPE_CROP_SIZE if recipe else min(height, width)
    else:
        crop = value or min(height, width)
    if crop > min(height, width):
        raise app.UsageError(
            f"--image_size ({height}x{width}) is smaller than --crop_size ({crop}): views are "
            f"cropped from the images. Received: --crop_size={crop}"
        )
    if (crop, crop) != (height, width) and not resnet:
        raise app.UsageError(
            f"Views of {crop}x{crop} from {height}x{width} images need an encoder of any input "
            f"size (the resnetN encoders); --encoder={config['encoder']} is built at one size. "
            f"Pass --crop_size=0 with square images (e.g. --image_size={min(height, width)}). "
            f"Received: --crop_size={config['crop_size']}, --encoder={config['encoder']}"
        )
    return crop


def smallest_view(stem: str, grid: int | None) -> int:
    """The smallest view side a ResNet with `stem` and `grid` takes.

    The small stem keeps the resolution and the three strided stages divide it by 8 (the
    imagenet stem by 32), so 8 (32) pixels end on a 1x1 map. A grid of averages needs at
    least 2x2: Keras' `AdaptiveAveragePooling2D` fails in a traced step on a 1x1 map.
    """
    stride = 8 if stem == "small" else 32
    return stride if grid is None else stride + 1


def grid_size(config: dict, view_recipe: bool, stem: str | None, image_side: int) -> int | None:
    """The ResNet's `grid_size`: None for global average pooling, else N (an N x N grid).

    `auto` with the small stem is 4, but at most the side of the last feature map on the
    images (`image_side / 8`, rounded up: 4 on 28x28 or 32x32 images, where the grid is the
    whole map; 2 on 16x16, where 4 cells would repeat each value); 1 (global average pooling)
    with the imagenet stem and for the methods without the views recipe.

    Args:
        config: the flags (`encoder_grid`).
        view_recipe: the method's `Method.view_recipe`.
        stem: the resolved ResNet stem; None for other encoders (which pool their own way:
            the grid is then None whatever the flag says).
        image_side: the shorter side of the images the model serves.
    """
    value = parse_encoder_grid(config["encoder_grid"])
    if stem is None:
        return None
    if value == "auto":
        value = GLOBAL_POOLING
        if view_recipe and stem == "small":
            value = min(RECIPE_GRID, -(-image_side // 8))
    return None if value == GLOBAL_POOLING else value
