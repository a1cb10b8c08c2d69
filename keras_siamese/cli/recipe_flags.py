"""The flags of `train` that set the fields every recipe has, and flags -> the run's recipe.

`--batch_size`, `--epochs`, `--optimizer`, `--learning_rate`, ... default to `auto`: the
method's recipe value (`keras_siamese.recipes`), which the help lists per method where the
recipes differ. `recipe_from_flags` applies every flag that is not `auto` to the method's
recipe, one field at a time, so the recipe's own checks (`Recipe.__post_init__`) answer for
the flag: its ValueError or TypeError becomes one `absl.app.UsageError` naming `--flag`.
`--crop_size`, `--stem` and `--encoder_grid` are `auto` until the images are known
(`keras_siamese.cli.view_recipe`). No TensorFlow at import time.
"""

from __future__ import annotations

from typing import Any

from absl import app, flags

from keras_siamese import recipes
from keras_siamese.cli import encoder_flag, methods, view_recipe
from keras_siamese.cli.methods.method import AUTO, Method, MethodFlag, parse_float
from keras_siamese.recipes.recipe import OPTIMIZERS, SCALINGS, STEMS, VIEWS

EXPECTED = {parse_float: "a number", int: "an integer"}


def _defaults(field: str) -> str:
    """`auto`'s meaning in the help: one value, or each method's where the recipes differ."""
    values = {name: getattr(cls(), field) for name, cls in recipes.RECIPE_CLASSES.items()}
    if len(set(values.values())) == 1:
        value = next(iter(values.values()))
        return f"auto: the recipes' {str(value).lower() if isinstance(value, bool) else value}."
    return "auto: the method's recipe: " + ", ".join(f"{k} {v}" for k, v in values.items()) + "."


def _flag(name: str, help: str, parse=None, choices=None, field: str | None = None) -> MethodFlag:
    field = field or name
    text = f"{help} {_defaults(field)}"
    if choices is not None:
        options = {"enum_values": [AUTO, *choices]}
        return MethodFlag(flags.DEFINE_enum, name, AUTO, text, field, options)
    return MethodFlag(flags.DEFINE_string, name, AUTO, text, field, parse=parse)


def _crop_size(value) -> int | None:
    return view_recipe.parse_crop_size(value) or None


def _blur(value: str) -> bool:
    return value == "true"


RECIPE_FLAGS = (
    _flag("encoder_width", "Filters of the ResNet's first stage (64 in the papers).", int),
    _flag(
        "stem",
        "ResNet stem: small (3x3, no pooling, CIFAR) or imagenet (7x7/2 + max-pool); auto is "
        "the recipe's for views up to 64 pixels, else imagenet.",
        choices=STEMS,
    ),
    _flag(
        "encoder_grid",
        "ResNet representation: its last feature map averaged over an N x N grid of cells and "
        "flattened, or 1 for global average pooling (the papers). With the small stem auto is "
        "at most the map's side (image side / 8); with the imagenet stem 1.",
        view_recipe.parse_encoder_grid,
    ),
    _flag(
        "crop_size",
        "Side of the augmented training views (0: the whole images). The model still takes "
        "and serves whole images. auto is the recipe's on 28x28 images with a resnetN encoder "
        "(only 28x28 was measured), else the whole images.",
        _crop_size,
    ),
    _flag("min_crop_area", "Smallest random-crop area fraction (paper: 0.08).", parse_float),
    _flag("color_strength", "Colour-jitter strength s (paper: 0.5 on CIFAR).", parse_float),
    _flag("blur", "Gaussian blur on the views (paper: ImageNet only).", _blur, ("true", "false")),
    _flag("views", "Two views of one pipeline (simclr) or BYOL's asymmetric pair.", None, VIEWS),
    BATCH_SIZE := _flag(
        "batch_size",
        "Global batch size (over all replicas); the peak learning rate follows it from the "
        "recipe's by --learning_rate_scaling.",
        int,
    ),
    _flag("epochs", "Training epochs.", int),
    _flag("optimizer", "SGD (momentum 0.9), LARS or Adam.", None, OPTIMIZERS),
    _flag("learning_rate", "Peak learning rate at the recipe's batch size.", parse_float),
    _flag(
        "learning_rate_scaling",
        "Peak rate at --batch_size B: learning_rate * B / recipe batch (linear), * sqrt(...) "
        "(sqrt) or unchanged (none).",
        None,
        SCALINGS,
    ),
    _flag("weight_decay", "Decoupled weight decay.", parse_float),
    _flag("warmup_fraction", "Fraction of the steps in linear warmup (then cosine).", parse_float),
)


def _usage_error(flag: MethodFlag, value: Any, error: Exception) -> app.UsageError:
    """The recipe's message about `flag.field` in terms of `--flag.name`."""
    text = ",".join(str(item) for item in value) if isinstance(value, list) else value
    message = str(error).split(" Received: ")[0]
    message = message.replace(f"Recipe field `{flag.field}` ", "")
    return app.UsageError(f"--{flag.name} {message} Received: --{flag.name}={text}")


def apply(recipe: recipes.Recipe, flag: MethodFlag, value: Any) -> recipes.Recipe:
    """`recipe` with `flag`'s field set from `value` (unchanged for `auto`).

    Raises:
        absl.app.UsageError: for a value the flag cannot parse or the recipe refuses.
    """
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return recipe
    try:
        field_value = flag.parse(value) if flag.parse is not None else value
    except ValueError:
        expected = EXPECTED.get(flag.parse, "positive integers separated by commas")
        if flag.default == AUTO:
            expected = f"'auto' or {expected}"
        text = ",".join(value) if isinstance(value, list) else value
        raise app.UsageError(
            f"--{flag.name} must be {expected}. Received: --{flag.name}={text}"
        ) from None
    try:
        return recipe.replace(**{flag.field: field_value})
    except (ValueError, TypeError) as error:
        raise _usage_error(flag, value, error) from None


def recipe_from_flags(method: Method, values: dict) -> recipes.Recipe:
    """The method's recipe with every flag that is not `auto` applied (see the docstring).

    `--encoder=resnetN` sets the depth; other encoders leave the ResNet fields unused.
    `--batch_size` is checked but not applied: the recipe's batch is the one its learning
    rate is given for (see `batch_size`).
    """
    recipe = method.recipe
    choice = encoder_flag.parse(values["encoder"])
    if choice.depth is not None:
        recipe = recipe.replace(encoder_depth=choice.depth)
    for flag in (*RECIPE_FLAGS, *method.flags):
        changed = apply(recipe, flag, values[flag.name])
        recipe = recipe if flag is BATCH_SIZE else changed
    return recipe


def batch_size(recipe: recipes.Recipe, values: dict) -> int:
    """The global batch `--batch_size` asks for (`auto`: the recipe's); the peak learning
    rate follows it from the recipe's batch by `learning_rate_scaling`."""
    return apply(recipe, BATCH_SIZE, values["batch_size"]).batch_size


def recorded(values: dict) -> dict:
    """`values` with the numbers of the `auto` flags parsed (as config.json records them:
    `3`, not `"3"`); a value that does not parse is left for `apply` to refuse."""
    values = dict(values)
    for flag in RECIPE_FLAGS + tuple(flag for flag, _ in methods.method_flags().values()):
        value = values.get(flag.name)
        if flag.parse in EXPECTED and isinstance(value, str) and value.strip().lower() != AUTO:
            try:
                values[flag.name] = flag.parse(value)
            except ValueError:
                pass
    return values
