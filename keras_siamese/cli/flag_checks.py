"""Checks of flag values that run before TensorFlow is imported.

`number` and `positive` apply the rules of `keras_siamese.validation` (numbers are finite; a
temperature is > 0) to the flags of `evaluate`; `auto_integer` parses `train --crop_size` and
`--encoder_grid`; `metric_flags` the combinations of `--method=siamese-metric`'s flags. The
recipe fields of `train` are checked by the recipes themselves
(`keras_siamese.cli.recipe_flags`). Each answers in flag terms (`--name ... Received:
--name=value`) as one `absl.app.UsageError`, without TensorFlow.
"""

from __future__ import annotations

from absl import app

from keras_siamese import validation
from keras_siamese.loss_names import MARGIN_LOSS_NAMES, PAIR_LOSS_NAMES, PROXY_LOSS_NAMES


def _flag_error(name: str, error: Exception) -> app.UsageError:
    """The library's message in flag terms: `--name` for `name`."""
    message = str(error).replace(f"Argument `{name}`", f"--{name}")
    return app.UsageError(message.replace(f"Received: {name}=", f"Received: --{name}="))


def number(
    name: str,
    value: float,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_minimum: bool = False,
    open_maximum: bool = False,
) -> float:
    """Checks that `--name` is a finite number within the bounds; returns it.

    The rule is `keras_siamese.validation.check_number`'s (which imports no TensorFlow).

    Args:
        name: the flag's name, without dashes.
        value: its parsed value.
        minimum: the lower bound, or None.
        maximum: the upper bound, or None.
        open_minimum: refuse `value == minimum`.
        open_maximum: refuse `value == maximum`.

    Raises:
        absl.app.UsageError: for NaN, an infinity or a value outside the bounds.

    Example:
        >>> number("min_crop_area", 0.25, 0.0, 1.0, open_minimum=True)
        0.25
    """
    try:
        validation.check_number(
            name,
            value,
            minimum,
            maximum,
            include_minimum=not open_minimum,
            include_maximum=not open_maximum,
        )
    except (TypeError, ValueError) as error:
        raise _flag_error(name, error) from None
    return value


def positive(name: str, value: float) -> float:
    """A finite number > 0: the rule of `keras_siamese.validation.check_temperature`."""
    return number(name, value, 0.0, open_minimum=True)


def auto_integer(name: str, value, minimum: int, expected: str) -> str | int:
    """Parses a flag that is `auto` or an integer >= `minimum`; returns `"auto"` or the int.

    Idempotent: an int (a value already parsed, or read back from config.json) is checked
    and returned.

    Args:
        name: the flag's name, without dashes.
        value: its text (or an int).
        minimum: the smallest integer accepted.
        expected: what the values mean, for the error (e.g. "1: global average pooling").

    Raises:
        absl.app.UsageError: for anything else, naming the flag, the value and `expected`.

    Example:
        >>> auto_integer("encoder_grid", "4", 1, "1: global average pooling")
        4
    """
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    text = str(value).strip()
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif text.isdigit():
        number = int(text)
    if number is None or number < minimum:
        raise app.UsageError(
            f"--{name} must be 'auto' or an integer >= {minimum} ({expected}). "
            f"Received: --{name}={value}"
        )
    return number


def metric_flags(values: dict) -> None:
    """Checks the combinations of `train --method=siamese-metric`'s flags, in flag terms.

    The rules are `SiameseRecipe`'s (`memory_size` needs a pair loss; two views need
    `--siamese_augment` and a loss other than the triplet loss), answered before the recipe
    answers in its field names. The memory's size against the global batch is checked once
    the batch is known (`run_config.resolve`).

    Args:
        values: the `train` flag values (`metric_loss`, `memory_size`, `views_per_image`,
            `siamese_augment`).

    Raises:
        absl.app.UsageError: for a combination the model cannot train.

    Example:
        >>> metric_flags({"metric_loss": "arcface", "memory_size": 0, "views_per_image": 1,
        ...               "siamese_augment": False})
    """
    loss, memory, views = values["metric_loss"], values["memory_size"], values["views_per_image"]
    if memory and loss not in PAIR_LOSS_NAMES:
        proxy = loss in PROXY_LOSS_NAMES
        instead = "; a proxy loss has its class proxies instead" if proxy else ""
        raise app.UsageError(
            f"--memory_size needs a pair loss for --metric_loss ({', '.join(PAIR_LOSS_NAMES)})"
            f"{instead}: use --memory_size=0 or such a loss. "
            f"Received: --memory_size={memory}, --metric_loss={loss}"
        )
    if views == 2 and not values["siamese_augment"]:
        raise app.UsageError(
            "--views_per_image=2 needs --siamese_augment: two views of one image differ only "
            "by augmentation. Received: --views_per_image=2, --nosiamese_augment"
        )
    if views == 2 and loss in MARGIN_LOSS_NAMES:
        raise app.UsageError(
            f"--views_per_image=2 trains a metric-learning loss on two views, not the {loss} "
            "loss: use e.g. --metric_loss=supervised_contrastive. "
            f"Received: --views_per_image=2, --metric_loss={loss}"
        )
