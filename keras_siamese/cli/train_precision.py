"""`train --precision=auto`: the Keras dtype policy a run trains in, timed or recorded.

Which precision is faster depends on the machine, not on the model: bfloat16 ran a SimCLR
step 1.6x slower than float32 on a 2-core Intel Xeon and ~2x faster on an AMD EPYC. So
`auto` times it (`keras_siamese.distribute.fastest_precision`: the run's own model, optimizer
and one batch, built outside the strategy scope, on one device) before the real model is
built, and config.json records the answer under `resolved.precision`. A resumed run keeps
the recorded precision (its checkpoints were trained in it) and never probes again.

No TensorFlow at import time (the module is imported to answer `--help`).
"""

from __future__ import annotations

from collections.abc import Callable

# `fastest_precision` names -> Keras dtype policies (the values of `--precision`).
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
AUTO = "auto"


def recorded(previous: dict | None) -> str | None:
    """The policy a run directory's config.json trained in, or None (no config, or `auto`
    recorded without its resolution).

    Runs written before `--precision=auto` recorded only the flag, which was the policy.
    """
    if not previous:
        return None
    policy = (previous.get("resolved") or {}).get("precision") or previous.get("precision")
    return None if policy in (None, AUTO) else policy


def resolve(
    flag: str,
    previous: dict | None,
    build_model: Callable,
    batch: Callable,
) -> tuple[str, dict[str, float] | None, str]:
    """The policy to train in: the flag's, the recorded one on resume, or the faster here.

    Args:
        flag: the `--precision` value.
        previous: the run directory's config.json, or None for a new run.
        build_model: `() -> compiled keras.Model`, the run's model (for the probe).
        batch: `() -> one training batch` (for the probe; called only when probing).

    Returns:
        `(policy, {policy: median seconds per step} or None, how it was chosen)`.
    """
    if flag != AUTO:
        return flag, None, "--precision"
    policy = recorded(previous)
    if policy is not None:
        return policy, None, "recorded in config.json (a resumed run keeps it)"
    import keras_siamese as ks

    name, seconds = ks.distribute.fastest_precision(build_model, batch())
    return POLICIES[name], {POLICIES[key]: value for key, value in seconds.items()}, "timed"


def describe(policy: str, seconds: dict[str, float] | None, how: str) -> str:
    """One line for the console, e.g. `Precision: float32 (timed: float32 95 ms/step, ...)`."""
    if seconds is None:
        return f"Precision: {policy} ({how})."
    timings = ", ".join(f"{name} {1000 * value:.0f} ms" for name, value in seconds.items())
    return f"Precision: {policy} (median train step on one batch: {timings})."
