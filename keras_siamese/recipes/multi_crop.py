"""Multi-crop views (Caron et al. 2020) for the recipes of DINO and SwAV."""

from __future__ import annotations

import keras_siamese as ks
from keras_siamese.recipes.recipe import Recipe

LOCAL_VIEW_RATIO = 96 / 224  # the papers' local crops against their global ones
LOCAL_CROP_AREA = (0.05, None)  # up to the global crops' smallest area


def local_view_side(recipe: Recipe, image_shape) -> int:
    """The side of multi-crop's local views: 96/224 of the global views' smaller side.

    At least the smallest view the recipe's encoder takes; for a ViT, rounded to a whole
    number of patches (a partial patch would be cut off), so every local view is a multiple
    of `patch_size` like the global ones.

    Example:
        >>> local_view_side(ks.recipes.get("dino", encoder_type="vit"), (28, 28, 1))
        8
    """
    side = min(recipe.view_size(image_shape)) * LOCAL_VIEW_RATIO
    if recipe.encoder_type == "vit":
        return recipe.patch_size * max(1, round(side / recipe.patch_size))
    return max(round(side), recipe.smallest_view())


def multi_crop_views(recipe: Recipe, local_views: int, image_shape, seed=None):
    """Two global views as `recipe`'s, plus `local_views` local ones of `local_view_side`
    (96/224 of their side, at least the smallest view the recipe's encoder takes, whole
    patches for a ViT), cropped from 5% of the image area up to `min_crop_area`.

    Args:
        recipe: a recipe with the global views' values.
        local_views: the number of local views (at least 1).
        image_shape: `(height, width, channels)` of the images.
        seed: the augmenter's seed.

    Returns:
        An `augment.MultiCrop`.

    Example:
        >>> views = multi_crop_views(ks.recipes.get("swav"), 6, (28, 28, 1))
    """
    from keras_siamese.augment.simclr_augmenter import SIMCLR_COLOR_JITTER

    height, width = recipe.view_size(image_shape)
    local = local_view_side(recipe, image_shape)
    return ks.augment.multi_crop_augmenter(
        (height, width),
        (local, local),
        local_views=local_views,
        channels=int(image_shape[-1]),
        global_crop_area=(recipe.min_crop_area, 1.0),
        local_crop_area=(LOCAL_CROP_AREA[0], recipe.min_crop_area),
        strength=recipe.color_strength,
        blur=recipe.blur,
        seed=seed,
        **recipe.colour_options(SIMCLR_COLOR_JITTER),
    )
