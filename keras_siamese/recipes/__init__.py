"""Each method's recipe, defined once: what the CLI, the examples and the benchmarks build from.

A recipe (`Recipe` and one subclass per method, a frozen dataclass in `recipes/<method>.py`)
holds the encoder, the views, the heads and loss values, the batch, the optimizer and its
schedule, and the epochs that were measured on Fashion-MNIST, and builds them::

    import keras_siamese as ks

    recipe = ks.recipes.get("simclr")                 # SimCLRRecipe(...), the demo's values
    recipe = recipe.replace(epochs=2)                 # changed values are checked
    model = recipe.build((28, 28, 1), total_steps=468)  # compiled: encoder, views, optimizer

`train --method=NAME` takes its defaults from `get(NAME)`; `NAMES` lists the methods.
Recipes are plain dataclasses, not Keras objects: `get_config()` / `from_config()` round-trip
them (the CLI records them in config.json). No TensorFlow at import time.
"""

from __future__ import annotations

from keras_siamese.recipes import image_rules
from keras_siamese.recipes.barlow_twins import BarlowTwinsRecipe
from keras_siamese.recipes.byol import BYOLRecipe
from keras_siamese.recipes.dino import DINORecipe
from keras_siamese.recipes.mae import MAERecipe
from keras_siamese.recipes.moco import MoCoRecipe
from keras_siamese.recipes.multi_crop import multi_crop_views
from keras_siamese.recipes.nnclr import NNCLRRecipe
from keras_siamese.recipes.recipe import Recipe
from keras_siamese.recipes.siamese import (
    SiameseContrastiveRecipe,
    SiameseMetricRecipe,
    SiameseRecipe,
    for_loss,
)
from keras_siamese.recipes.simclr import SimCLRRecipe
from keras_siamese.recipes.simsiam import SimSiamRecipe
from keras_siamese.recipes.swav import SwAVRecipe
from keras_siamese.recipes.time_budget import parse_duration, steps_in_budget
from keras_siamese.recipes.vicreg import VICRegRecipe

RECIPE_CLASSES: dict[str, type[Recipe]] = {
    cls.name: cls
    for cls in (
        SimCLRRecipe,
        SimSiamRecipe,
        BYOLRecipe,
        MoCoRecipe,
        NNCLRRecipe,
        DINORecipe,
        BarlowTwinsRecipe,
        VICRegRecipe,
        SwAVRecipe,
        MAERecipe,
        SiameseRecipe,
        SiameseContrastiveRecipe,
        SiameseMetricRecipe,
    )
}
NAMES: tuple[str, ...] = tuple(RECIPE_CLASSES)


def get(name: str, image_shape: tuple[int, int, int] | None = None, **changes) -> Recipe:
    """The measured recipe of method `name` (for images of `image_shape`), with `changes`.

    Args:
        name: a method of `NAMES` ("simclr", "simsiam", "byol", "moco", "nnclr", "dino",
            "barlow-twins", "vicreg", "swav", "mae", "siamese-triplet",
            "siamese-contrastive", "siamese-metric").
        image_shape: `(height, width, channels)` of the images to train on: the values the
            image rules derive from them (`image_rules.for_images`: views, a ViT's patch,
            colour, epochs) replace the recipe's, except the fields in `changes`. None: the
            recipe as measured on 28x28 grey images.
        **changes: fields to change (checked). With `encoder_type="vit"` the method's
            ViT recipe (its class's `vit_changes`) applies first, then `changes`.

    Returns:
        The method's `Recipe` subclass instance.

    Raises:
        ValueError: for an unknown name, listing the known ones.

    Example:
        >>> get("simclr", epochs=2).epochs
        2
        >>> get("simclr", image_shape=(64, 64, 3)).crop_size
        32
    """
    if name not in RECIPE_CLASSES:
        raise ValueError(f"Unknown recipe {name!r}. Known: {', '.join(NAMES)}. Received: {name!r}")
    recipe_class = RECIPE_CLASSES[name]
    given = tuple(changes)
    if changes.get("encoder_type") == "vit":
        changes = {**recipe_class.vit_changes, **changes}
    recipe = recipe_class(**changes)
    if image_shape is None:
        return recipe
    return image_rules.for_images(recipe, image_shape, keep=given)


__all__ = [
    "NAMES",
    "RECIPE_CLASSES",
    "BYOLRecipe",
    "BarlowTwinsRecipe",
    "DINORecipe",
    "MAERecipe",
    "MoCoRecipe",
    "NNCLRRecipe",
    "Recipe",
    "SiameseMetricRecipe",
    "for_loss",
    "SiameseContrastiveRecipe",
    "SiameseRecipe",
    "SimCLRRecipe",
    "SimSiamRecipe",
    "SwAVRecipe",
    "VICRegRecipe",
    "get",
    "image_rules",
    "multi_crop_views",
    "parse_duration",
    "steps_in_budget",
]
