"""What a checkpoint holds beside `model.save_weights`: hashes, seed and metric states."""

from __future__ import annotations

import hashlib
import warnings


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_chief(model) -> bool:
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None:
        return True
    return bool(strategy.extended.should_checkpoint)


def global_seed_generator():
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # pragma: no cover - a Keras without it keeps no global generator
        return None
    return global_state.get_global_attribute("global_seed_generator")


def seed_states(model) -> list:
    """The states of the model's `SeedGenerator`s (Keras draws from them while `fit` sets up,
    before any step: `fit` puts them back, so every run draws the same stream)."""
    return [
        (variable, variable.numpy())
        for variable in model.variables
        if variable.name == "seed_generator_state"
    ]


def metric_values(model) -> list[list]:
    values = []
    for metric in model.metrics:
        values.append([variable.numpy().tolist() for variable in metric.variables])
    return values


def assign_metrics(model, values: list[list]) -> None:
    metrics = model.metrics
    if len(metrics) != len(values):
        return
    try:
        for metric, saved in zip(metrics, values, strict=True):
            for variable, value in zip(metric.variables, saved, strict=False):
                variable.assign(value)
    except (ValueError, NotImplementedError, RuntimeError) as error:  # e.g. sync-on-read sums
        warnings.warn(f"The metrics' running state was not restored ({error}).", stacklevel=2)


def check_arguments(every_steps, every_minutes, keep) -> None:
    if isinstance(every_steps, bool) or not isinstance(every_steps, int) or every_steps < 0:
        raise ValueError(
            f"`every_steps` must be an integer >= 0 (0: not by steps). "
            f"Received: every_steps={every_steps!r}"
        )
    if every_minutes is not None and (
        isinstance(every_minutes, bool)
        or not isinstance(every_minutes, (int, float))
        or every_minutes < 0
    ):
        raise ValueError(
            f"`every_minutes` must be a number >= 0 or None (0 or None: not by time). "
            f"Received: every_minutes={every_minutes!r}"
        )
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"`keep` must be an integer >= 1. Received: keep={keep!r}")
