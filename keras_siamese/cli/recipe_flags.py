"""The flags of `train` that set the fields every recipe has, and flags -> the run's recipe.

`--batch_size`, `--epochs`, `--optimizer`, `--learning_rate`, ... default to `auto`: the
method's recipe value (`keras_siamese.recipes`), which the help lists per method where the
recipes differ. `recipe_from_flags` applies every flag that is not `auto` to the method's
recipe, one field at a time, so the recipe's own checks (`Recipe.__post_init__`) answer for
the flag: its ValueError or TypeError becomes one `absl.app.UsageError` naming `--flag`.
`--crop_size`, `--stem` and `--encoder_grid` are `auto` until the images are known
(`keras_siamese.cli.view_recipe`).

`--encoder=vit` starts from the method's ViT recipe (`ks.recipes.get(method,
encoder_type="vit")`: the recipe class's `vit_changes`, e.g. DINO's) instead of its recipe;
a method flag left at its default keeps the ViT recipe's value of a field that recipe
changes. `--patch_size` and the `--vit_*` flags set the ViT's fields together (the recipe
checks them together: `vit_dim` a multiple of `vit_heads`). No TensorFlow at import time.
"""

from __future__ import annotations

from typing import Any

from absl import app, flags

from keras_siamese import recipes
from keras_siamese.cli import encoder_flag, methods, view_recipe
from keras_siamese.cli.methods.method import AUTO, Method, MethodFlag, parse_float
from keras_siamese.recipes.recipe import (
    OPTIMIZERS,
    SCALINGS,
    STEMS,
    VIEWS,
    VIT_POOLINGS,
    VIT_POSITION_EMBEDDINGS,
)

EXPECTED = {parse_float: "a number", int: "an integer"}
RESNET_FIELDS = ("encoder_width", "stem", "encoder_grid")
VIT_FIELDS = (
    "patch_size", "vit_dim", "vit_depth", "vit_heads", "vit_position_embedding", "vit_pooling",
)  # fmt: skip


def _defaults(field: str) -> str:
    """`auto`'s meaning in the help: one value, or each method's where the recipes differ
    (for the ViT's fields, the methods' ViT recipes)."""
    vit = {"encoder_type": "vit"} if field in VIT_FIELDS else {}
    values = {name: getattr(recipes.get(name, **vit), field) for name in recipes.NAMES}
    whose = "ViT recipes" if vit else "recipes"
    if len(set(values.values())) == 1:
        value = next(iter(values.values()))
        value = str(value).lower() if isinstance(value, bool) else value
        return f"auto: the {whose}' {value}."
    listed = ", ".join(f"{k} {v}" for k, v in values.items())
    return f"auto: the method's {whose[:-1]}: {listed}."


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


COMMON_FLAGS = (
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
        "at most the map's side (image side / 8); with the imagenet stem 1. A ViT's with "
        "--vit_pooling=grid (auto: at most the views' patches per side).",
        view_recipe.parse_encoder_grid,
    ),
    _flag(
        "crop_size",
        "Side of the augmented training views (0: the whole images). The model still takes "
        "and serves whole images. auto is the recipe's on 28x28 images, else the image rules' "
        "(README 'Recipes for other images': half the side, at least 16, a multiple of 4) with "
        "the recipe's encoder (auto, resnetN, vit); whole images with an encoder of one size.",
        _crop_size,
    ),
    _flag("min_crop_area", "Smallest random-crop area fraction (paper: 0.08).", parse_float),
    _flag("color_strength", "Colour-jitter strength s (paper: 0.5 on CIFAR).", parse_float),
    _flag(
        "hue",
        "Hue jitter amount at strength 1 (hue x strength <= 0.5, half the colour wheel; SimCLR's "
        "0.2, BYOL's 0.1; 3-channel images). auto: the rule for the images (README), else the "
        "views' own.",
        parse_float,
    ),
    _flag(
        "grayscale_probability",
        "Probability of a grey view (3-channel images; the papers' 0.2). auto: the rule for "
        "the images (README), else the recipe's.",
        parse_float,
    ),
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
VIT_FLAGS = (
    _flag(
        "patch_size",
        "ViT (--encoder=vit): side of its square patches; the views (--crop_size, or the "
        "images) must be multiples of it, multi-crop's local views are rounded to whole "
        "patches (ViT-S/16: 16).",
        int,
    ),
    _flag("vit_dim", "ViT: token features (ViT-S: 384).", int),
    _flag("vit_depth", "ViT: Transformer blocks (ViT-S: 12).", int),
    _flag("vit_heads", "ViT: attention heads, dividing --vit_dim (ViT-S: 6).", int),
    _flag(
        "vit_position_embedding",
        "ViT: learned (ViT, DINO) or sincos (fixed 2-D sine-cosine: MAE, MoCo v3) position "
        "embedding, resized bicubically to other grids of patches.",
        choices=VIT_POSITION_EMBEDDINGS,
    ),
    _flag(
        "vit_pooling",
        "ViT representation: the class token's output (cls), the mean of the patch tokens' "
        "(mean), or the patch tokens averaged over --encoder_grid x --encoder_grid cells and "
        "flattened (grid).",
        choices=VIT_POOLINGS,
    ),
)
RECIPE_FLAGS = (*COMMON_FLAGS, *VIT_FLAGS)


def _usage_error(flag: MethodFlag, value: Any, error: Exception) -> app.UsageError:
    """The recipe's message about `flag.field` in terms of `--flag.name`."""
    text = ",".join(str(item) for item in value) if isinstance(value, list) else value
    message = str(error).split(" Received: ")[0]
    message = message.replace(f"Recipe field `{flag.field}` ", "")
    return app.UsageError(f"--{flag.name} {message} Received: --{flag.name}={text}")


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == AUTO


def _parsed(flag: MethodFlag, value: Any) -> Any:
    """`flag`'s field value of the flag's `value`; UsageError for text it cannot parse."""
    try:
        return flag.parse(value) if flag.parse is not None else value
    except ValueError:
        expected = EXPECTED.get(flag.parse, "positive integers separated by commas")
        if flag.default == AUTO:
            expected = f"'auto' or {expected}"
        text = ",".join(value) if isinstance(value, list) else value
        raise app.UsageError(
            f"--{flag.name} must be {expected}. Received: --{flag.name}={text}"
        ) from None


def apply(recipe: recipes.Recipe, flag: MethodFlag, value: Any) -> recipes.Recipe:
    """`recipe` with `flag`'s field set from `value` (unchanged for `auto`).

    Raises:
        absl.app.UsageError: for a value the flag cannot parse or the recipe refuses.
    """
    if _is_auto(value):
        return recipe
    field_value = _parsed(flag, value)
    try:
        return recipe.replace(**{flag.field: field_value})
    except (ValueError, TypeError) as error:
        raise _usage_error(flag, value, error) from None


def apply_together(recipe: recipes.Recipe, group: tuple, values: dict) -> recipes.Recipe:
    """`recipe` with the fields of every flag of `group` that is not `auto`, set at once.

    The recipe checks them together (`vit_dim` a multiple of `vit_heads`), so the order of
    the flags does not matter; its message names the flags.

    Raises:
        absl.app.UsageError: for a value a flag cannot parse or the recipe refuses.
    """
    changes = {
        flag.field: _parsed(flag, values[flag.name])
        for flag in group
        if not _is_auto(values[flag.name])
    }
    try:
        return recipe.replace(**changes)
    except (ValueError, TypeError) as error:
        message = str(error).replace("Recipe field `", "`")
        for flag in group:
            message = message.replace(f"`{flag.field}`", f"--{flag.name}")
            message = message.replace(f" {flag.field}=", f" --{flag.name}=")
        raise app.UsageError(message) from None


def method_recipe(method: Method, values: dict) -> recipes.Recipe:
    """The recipe `--encoder` starts from: the method's, its ViT recipe for `vit`
    (`ks.recipes.get(method, encoder_type="vit")`), a ResNet of the depth of `resnetN`.

    Raises:
        absl.app.UsageError: for a `vit_only` method with an encoder other than auto or vit.
    """
    recipe = method.recipe
    choice = encoder_flag.parse(values["encoder"])
    if method.vit_only and choice.name not in (AUTO, encoder_flag.VIT):
        raise app.UsageError(
            f"--method={method.name} trains only the package's Vision Transformer (it drops "
            "patch tokens inside it): use --encoder=auto or --encoder=vit, with --patch_size "
            f"and the --vit_* flags. Received: --encoder={values['encoder']}"
        )
    if choice.family == encoder_flag.VIT:
        return recipe.replace(**{**type(recipe).vit_changes, "encoder_type": "vit"})
    if choice.depth is not None:
        return recipe.replace(encoder_type="resnet", encoder_depth=choice.depth)
    return recipe


def encoder_type(values: dict) -> str | None:
    """The `encoder_type` ("resnet" or "vit") `--encoder` trains, None for a
    keras.applications or KerasHub encoder (auto: the method's recipe's)."""
    choice = encoder_flag.parse(values["encoder"])
    if choice.name == AUTO:
        return methods.METHODS[values["method"]].recipe.encoder_type
    return choice.family if encoder_flag.from_recipe(choice) else None


def _kept_by_vit(recipe: recipes.Recipe, flag: MethodFlag, values: dict) -> bool:
    """A method flag at its default keeps the value the ViT recipe gives its field."""
    vit = encoder_flag.parse(values["encoder"]).family == encoder_flag.VIT
    changes = type(recipe).vit_changes
    return vit and flag.field in changes and values[flag.name] == flag.default


def recipe_from_flags(method: Method, values: dict) -> recipes.Recipe:
    """The method's recipe with every flag that is not `auto` applied (see the docstring).

    `--encoder=resnetN` sets the depth, `vit` starts from the ViT recipe; other encoders
    leave the ResNet fields unused. `--batch_size` is checked but not applied: the recipe's
    batch is the one its learning rate is given for (see `batch_size`). A ViT's views known
    from the flags are checked against `--patch_size` (`view_recipe.check_patches`).

    Raises:
        absl.app.UsageError: naming the flag whose value the recipe refuses.
    """
    recipe = method_recipe(method, values)
    for flag in (*COMMON_FLAGS, *method.flags):
        if _kept_by_vit(recipe, flag, values):
            continue
        changed = apply(recipe, flag, values[flag.name])
        recipe = recipe if flag is BATCH_SIZE else changed
    recipe = apply_together(recipe, VIT_FLAGS, values)
    view_recipe.check_patches(recipe, values)
    return recipe


def unused_encoder_flags(values: dict) -> list[tuple[str, str]]:
    """`(flag, reader)` of the encoder flags `--encoder` does not read: the ResNet's
    (`--encoder_width`, `--stem`, `--encoder_grid`) without a ResNet (a ViT reads
    `--encoder_grid` with `--vit_pooling=grid`), the ViT's (`--patch_size`, `--vit_*`)
    without a ViT. `train` warns when one is given (the values are checked first)."""
    built = encoder_type(values)
    encoder = f"--encoder={values['encoder']}"
    if values["encoder"] == AUTO:
        encoder += f" (the recipe's {'ViT' if built == 'vit' else 'ResNet'})"
    unused = [] if built == "resnet" else list(RESNET_FIELDS)
    if built == "vit":
        recipe = recipe_from_flags(methods.METHODS[values["method"]], values)
        unused = [name for name in unused if name != "encoder_grid" or recipe.vit_pooling != "grid"]
    unused += [] if built == "vit" else list(VIT_FIELDS)
    return [(name, encoder) for name in unused]


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
