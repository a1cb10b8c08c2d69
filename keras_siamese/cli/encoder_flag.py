"""`train --encoder`: which backbone, parsed and checked before TensorFlow, built after it.

- `auto` (the recipe's encoder: its ResNet, or its ViT for a recipe whose `encoder_type` is
  "vit", e.g. MAE's), `resnet10`, `resnet18`, `resnet34`, `resnet50`: the recipe's
  `build_encoder` (`keras_siamese.encoders.resnet` of any input size), with `--encoder_width`,
  `--stem` and `--encoder_grid` (see `keras_siamese.cli.view_recipe`).
- `vit`: the package's Vision Transformer (`keras_siamese.encoders.vit` of any input size,
  its position embedding on the views' grid of patches), the method's ViT recipe
  (`keras_siamese.recipes.get(method, encoder_type="vit")`), with `--patch_size` and the
  `--vit_*` flags.
- `keras.applications:NAME` (e.g. `keras.applications:EfficientNetV2B0`):
  `encoders.from_keras_applications`, with the family's preprocessing inside the encoder;
  random initialisation, or `--encoder_weights`, a local `*_notop` weights file.
- `keras_hub:PRESET_DIR`: a local KerasHub preset directory (`encoders.from_keras_hub`),
  rebuilt at the view size when its config has an `image_shape`.

`parse` and `check_files` need no TensorFlow; `check_application_name` imports Keras (the
names are `keras.applications`' own); `build` (the encoders that are not the recipe's
ResNet) runs inside the strategy scope.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import os
from typing import TYPE_CHECKING

from absl import app

if TYPE_CHECKING:
    import keras

RESNET_DEPTHS = (10, 18, 34, 50)
RESNETS = tuple(f"resnet{depth}" for depth in RESNET_DEPTHS)
RESNET = "resnet"
VIT = "vit"
AUTO = "auto"
APPLICATIONS = "keras.applications"
KERAS_HUB = "keras_hub"
CHOICES = (*RESNETS, f"{APPLICATIONS}:NAME", f"{KERAS_HUB}:PRESET_DIR", VIT, AUTO)
# The families the recipe builds (`Recipe.build_encoder`, any input size).
RECIPE_FAMILIES = (RESNET, VIT)


@dataclasses.dataclass(frozen=True)
class EncoderChoice:
    """A parsed `--encoder`.

    Attributes:
        family: `RESNET` (also `auto`: the recipe's encoder, a ViT for a ViT recipe), `VIT`,
            `APPLICATIONS` or `KERAS_HUB`.
        name: `auto`, the ResNet (`resnet18`), `vit`, the `keras.applications` constructor
            or the preset directory.
        depth: the ResNet's depth, else None.
    """

    family: str
    name: str
    depth: int | None = None


def parse(text: str) -> EncoderChoice:
    """Parses `--encoder`; raises UsageError naming the valid forms.

    Example:
        >>> parse("vit")
        EncoderChoice(family='vit', name='vit', depth=None)
        >>> parse("keras.applications:MobileNetV3Small")
        EncoderChoice(family='keras.applications', name='MobileNetV3Small', depth=None)
    """
    value = text.strip()
    if value.lower() == AUTO:
        return EncoderChoice(RESNET, AUTO)
    if value.lower() in RESNETS:
        return EncoderChoice(RESNET, value.lower(), int(value[len(RESNET) :]))
    if value.lower() == VIT:
        return EncoderChoice(VIT, VIT)
    family, separator, name = value.partition(":")
    if separator and family in (APPLICATIONS, KERAS_HUB) and name.strip():
        return EncoderChoice(family, name.strip())
    known = [*RESNETS, VIT, f"{APPLICATIONS}:", f"{KERAS_HUB}:"]
    close = difflib.get_close_matches(value, known, 1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise app.UsageError(
        f"--encoder must be one of {', '.join(CHOICES)} (e.g. "
        f"{APPLICATIONS}:EfficientNetV2B0).{hint} Received: --encoder={text}"
    )


def from_recipe(choice: EncoderChoice) -> bool:
    """Whether the recipe builds the encoder (`auto`, resnetN, `vit`: any input size).

    Example:
        >>> from_recipe(parse("vit")), from_recipe(parse("keras.applications:VGG16"))
        (True, False)
    """
    return choice.family in RECIPE_FAMILIES


def check_files(choice: EncoderChoice, weights: str) -> None:
    """Checks `--encoder_weights` and a KerasHub preset directory, without TensorFlow.

    Raises:
        absl.app.UsageError: for weights with a family that does not take them, a weights
            file or preset directory that does not exist, or KerasHub not installed.
    """
    if weights:
        if choice.family != APPLICATIONS:
            raise app.UsageError(
                "--encoder_weights loads a keras.applications weights file; a ResNet starts "
                "from random weights (so does a ViT) and a KerasHub preset carries its own. "
                f"Received: --encoder_weights={weights} with --encoder={choice.name}"
            )
        if not os.path.isfile(os.path.expanduser(weights)):
            raise app.UsageError(
                "--encoder_weights must be a local weights file without the top (e.g. "
                "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5); nothing is "
                f"downloaded. Received: --encoder_weights={weights}"
            )
    if choice.family == KERAS_HUB:
        if not os.path.isfile(os.path.join(os.path.expanduser(choice.name), "config.json")):
            raise app.UsageError(
                "--encoder=keras_hub:PRESET_DIR needs a local KerasHub preset directory (with "
                "config.json, written by save_to_preset or fetched beforehand); preset names "
                f"would be downloaded, which keras_siamese never does. "
                f"Received: --encoder={KERAS_HUB}:{choice.name}"
            )
        if not os.path.isfile(
            os.path.join(os.path.expanduser(choice.name), "image_converter.json")
        ):
            raise app.UsageError(
                f"The KerasHub preset {choice.name} has no image_converter.json, so the range "
                "its backbone expects is unknown: save its ImageConverter into the preset "
                f"(converter.save_to_preset). Received: --encoder={KERAS_HUB}:{choice.name}"
            )
        if importlib.util.find_spec("keras_hub") is None:
            raise app.UsageError(
                "--encoder=keras_hub:... needs KerasHub: `pip install keras_siamese[hub]`, or "
                "next to tensorflow-cpu `pip install --no-deps keras-hub tokenizers "
                f"sentencepiece`. Received: --encoder={KERAS_HUB}:{choice.name}"
            )


def check_application_name(choice: EncoderChoice) -> None:
    """Checks a `keras.applications` name against Keras' own list (imports Keras).

    Raises:
        absl.app.UsageError: naming the close matches, or every model when none is close.
    """
    if choice.family != APPLICATIONS:
        return
    import keras_siamese as ks

    names = ks.encoders.application_names()
    if choice.name in names:
        return
    close = difflib.get_close_matches(choice.name, names, n=5)
    listed = f"Close matches: {', '.join(close)}" if close else f"Models: {', '.join(names)}"
    raise app.UsageError(
        f"--encoder={APPLICATIONS}:NAME must name a model of keras.applications. {listed}. "
        f"Received: --encoder={APPLICATIONS}:{choice.name}"
    )


def build(choice: EncoderChoice, view_shape, weights: str = "") -> keras.Model:
    """The `keras.applications` or KerasHub encoder of `choice` at `view_shape`.

    The resnetN and vit encoders are the recipe's (`Recipe.build_encoder`), not built here.
    """
    import keras_siamese as ks

    view_shape = tuple(int(side) for side in view_shape)
    if choice.family == APPLICATIONS:
        weights = weights and os.path.expanduser(weights)
        return ks.encoders.from_keras_applications(choice.name, view_shape, weights=weights or None)
    if choice.family == KERAS_HUB:
        return _keras_hub_encoder(os.path.expanduser(choice.name), view_shape)
    raise ValueError(
        f"`build` makes keras.applications and KerasHub encoders; a ResNet or a ViT is the "
        f"recipe's `build_encoder`. Received: choice={choice}"
    )


def _keras_hub_encoder(preset: str, view_shape: tuple[int, int, int]) -> keras.Model:
    import keras_hub

    import keras_siamese as ks

    with open(os.path.join(preset, "config.json"), encoding="utf-8") as file:
        backbone_config = json.load(file).get("config", {})
    # Backbones built for any size carry image_shape=(None, None, C): fix it to the views.
    saved = backbone_config.get("image_shape")
    overrides = {"image_shape": view_shape} if saved is not None else {}
    try:
        backbone = keras_hub.models.Backbone.from_preset(preset, **overrides)
    except ValueError as error:
        if saved is None or tuple(saved) == view_shape:
            raise
        raise ValueError(_rebuild_message(preset, saved, view_shape, error)) from error
    converter = keras_hub.layers.ImageConverter.from_preset(preset)
    return ks.encoders.from_keras_hub(backbone, converter)


def _rebuild_message(preset: str, saved, view_shape: tuple[int, int, int], error) -> str:
    """Why a preset saved at `saved` does not rebuild at `view_shape`, and what to do."""
    saved = tuple(saved)
    # Keras' load error ends with the variable's values: keep the shapes, not the dump.
    reason = " ".join(str(error).split()).split(" Target variable:")[0][:400]
    if None not in saved[:2]:
        size = f"--image_size={saved[0]}" if saved[0] == saved[1] else "images of its size"
        fix = f"train on views of the preset's size ({size}, --channels={saved[2]})"
    else:
        fix = f"train on views with --channels={saved[2]}"
    return (
        f"The KerasHub preset {preset} (saved with image_shape={saved}) cannot be rebuilt at "
        f"the view shape {view_shape}: {reason.rstrip('.')}. Position embeddings of a fixed size "
        "(ViTBackbone), patches that do not divide the views, or another channel count do "
        f"not fit; {fix}, or save the preset at the view shape (DINOV2Backbone resizes its "
        f"position embeddings to any square view). Received: view_shape={view_shape}"
    )
