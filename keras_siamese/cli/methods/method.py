"""`Method` and `MethodFlag`: what one `train --method=...` row holds, and its flags' parsing.

A method is its recipe (`keras_siamese.recipes`, which builds the model and the optimizer),
its own flags (each sets one recipe field, its default read from the recipe), how its batches
are laid out and read, and whether it first pretrains its encoder. The `*_flag` helpers make
the flag tables of `methods/<method>.py` one line per flag. No TensorFlow at import time:
`--help` and flag errors answer without it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from absl import flags

import keras_siamese as ks
from keras_siamese.cli import method_batches

if TYPE_CHECKING:
    import keras

    from keras_siamese.recipes import Recipe

AUTO = "auto"


@dataclasses.dataclass(frozen=True)
class MethodFlag:
    """A flag that sets one recipe field; `train` defines it once, whichever rows list it.

    Attributes:
        define: the absl function that defines it, e.g. `flags.DEFINE_float`.
        name: the flag's name.
        default: its default: the recipe's value, or `auto` (the method's recipe value).
        help: its help; `train --help` prefixes the methods that read it.
        field: the recipe field it sets.
        options: more keyword arguments of `define` (`enum_values`, ...).
        parse: `parse(value)` turns the flag's value into the field's (raises ValueError
            for text it cannot read); None: the value as absl parsed it.
    """

    define: Callable[..., Any]
    name: str
    default: Any
    help: str
    field: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    parse: Callable[[Any], Any] | None = None


def collapse_monitor() -> list[keras.callbacks.Callback]:
    """`CollapseMonitor`: warns when the two-view methods' representations collapse."""
    return [ks.callbacks.CollapseMonitor()]


def no_monitors() -> list[keras.callbacks.Callback]:
    return []


@dataclasses.dataclass(frozen=True)
class Method:
    """One training method of the command line.

    Attributes:
        name: the `--method` value (the recipe's name).
        summary: one line for the help, naming the paper.
        model_class: the public `keras_siamese` class the recipe builds; `train` refuses the
            method (before importing TensorFlow) when this installation lacks it.
        recipe: the method's measured recipe, the defaults of its flags.
        flags: the method's own flags; `train` warns when a flag of another method is given.
        needs_labels: whether the method trains on `(image, label)` examples.
        batch_layout: `(recipe, num_classes, --batch_size) -> (global batch, (P, K) or
            None)`.
        build_batches: `(config, dataset) -> tf.data.Dataset` of training batches.
        build_monitors: `() -> callbacks` particular to the method.
        pretrains: whether `recipe.pretrain_epochs` of SimCLR train the encoder first.
        vit_only: whether the method trains only the package's Vision Transformer
            (masked-image modelling drops patch tokens inside it): `--encoder` must be
            `auto` (the recipe's ViT) or `vit`.
    """

    name: str
    summary: str
    model_class: str
    recipe: Recipe
    flags: tuple[MethodFlag, ...]
    needs_labels: bool = False
    batch_layout: Callable = method_batches.whole_batch
    build_batches: Callable = method_batches.images
    build_monitors: Callable[[], list] = collapse_monitor
    pretrains: bool = False
    vit_only: bool = False


def parse_dims(values) -> tuple[int, ...]:
    """A list flag of layer sizes (`512,128`) as integers."""
    return tuple(int(str(value).strip()) for value in values)


def parse_float(value) -> float:
    return float(value)


def float_flag(name: str, field: str, default: float, help: str) -> MethodFlag:
    return MethodFlag(flags.DEFINE_float, name, default, help, field)


def auto_float_flag(name: str, field: str, help: str) -> MethodFlag:
    """A number whose default differs between the methods that read it: `auto`."""
    return MethodFlag(flags.DEFINE_string, name, AUTO, help, field, parse=parse_float)


def auto_integer_flag(name: str, field: str, help: str) -> MethodFlag:
    """An integer whose default differs between the methods that read it: `auto`."""
    return MethodFlag(flags.DEFINE_string, name, AUTO, help, field, parse=int)


def integer_flag(name: str, field: str, default: int, help: str) -> MethodFlag:
    return MethodFlag(flags.DEFINE_integer, name, default, help, field)


def bool_flag(name: str, field: str, default: bool, help: str) -> MethodFlag:
    return MethodFlag(flags.DEFINE_bool, name, default, help, field)


def enum_flag(name: str, field: str, default: str, choices, help: str) -> MethodFlag:
    options = {"enum_values": list(choices)}
    return MethodFlag(flags.DEFINE_enum, name, default, help, field, options)


def dims_flag(name: str, field: str, default: tuple[int, ...], help: str) -> MethodFlag:
    defaults = [str(size) for size in default]
    return MethodFlag(flags.DEFINE_list, name, defaults, help, field, parse=parse_dims)
