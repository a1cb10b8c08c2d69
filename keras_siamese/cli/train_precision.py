"""`train --precision=auto` and `--time_budget`: the dtype policy and the steps, timed or recorded.

Which precision is faster depends on the machine, not on the model: bfloat16 ran a SimCLR
step 1.6x slower than float32 on a 2-core Intel Xeon and ~2x faster on an AMD EPYC. So
`auto` times it (`keras_siamese.distribute.fastest_precision`: the run's own model, optimizer
and one batch, built outside the strategy scope, on one device) before the real model is
built, and config.json records the answer under `resolved.precision`. A resumed run keeps
the recorded precision (its checkpoints were trained in it) and never probes again.

`--time_budget` divides the budget by the step time of the run's model in its precision
(`budget`): the probe's when `auto` probes, else `keras_siamese.distribute.time_train_step` on
a model built in the chosen precision. The steps are chosen before the real model is built
(its schedules are built for them); config.json records them under `resolved.time_budget`
and a resumed run keeps them, never timing again.

No TensorFlow at import time (the module is imported to answer `--help`).
"""

from __future__ import annotations

from collections.abc import Callable

from keras_siamese import recipes
from keras_siamese.cli import run_config

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
    first_seconds: dict[str, float] | None = None,
) -> tuple[str, dict[str, float] | None, str]:
    """The policy to train in: the flag's, the recorded one on resume, or the faster here.

    Args:
        flag: the `--precision` value.
        previous: the run directory's config.json, or None for a new run.
        build_model: `() -> compiled keras.Model`, the run's model (for the probe).
        batch: `() -> one training batch` (for the probe; called only when probing).
        first_seconds: a dict that receives `{policy: seconds of its first step}` when the
            probe runs (what a time budget counts once), or None.

    Returns:
        `(policy, {policy: median seconds per step} or None, how it was chosen)`.
    """
    if flag != AUTO:
        return flag, None, "--precision"
    policy = recorded(previous)
    if policy is not None:
        return policy, None, "recorded in config.json (a resumed run keeps it)"
    import keras_siamese as ks

    if first_seconds is None:
        name, seconds = ks.distribute.fastest_precision(build_model, batch())
    else:
        name, seconds, firsts = ks.distribute.fastest_precision(
            build_model, batch(), return_first_seconds=True
        )
        first_seconds.update({POLICIES[key]: value for key, value in firsts.items()})
    return POLICIES[name], {POLICIES[key]: value for key, value in seconds.items()}, "timed"


def describe(policy: str, seconds: dict[str, float] | None, how: str) -> str:
    """One line for the console, e.g. `Precision: float32 (timed: float32 95 ms/step, ...)`."""
    if seconds is None:
        return f"Precision: {policy} ({how})."
    timings = ", ".join(f"{name} {1000 * value:.0f} ms" for name, value in seconds.items())
    return f"Precision: {policy} (median train step on one batch: {timings})."


def step_time(policy: str, build_model: Callable, batch: Callable) -> tuple[float, float]:
    """`(median seconds per step, seconds of the first step)` of the run's model built in
    `policy` (`keras_siamese.distribute.time_train_step`); the global policy is restored."""
    import keras

    import keras_siamese as ks

    before = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    try:
        return ks.distribute.time_train_step(build_model(), batch())
    finally:
        keras.mixed_precision.set_global_policy(before)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'s' * (number != 1)}"


def _layout(config: run_config.RunConfig) -> str:
    """E.g. `1,404 steps (6 epochs of 234 steps)`."""
    epochs = _count(config.recipe.epochs, "epoch")
    per_epoch = _count(config.steps_per_epoch, "step")
    return f"{_count(config.total_steps, 'step')} ({epochs} of {per_epoch})"


def _about(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def budget(
    config: run_config.RunConfig,
    previous: dict | None,
    policy: str,
    timed: tuple[float, float] | None,
    build_model: Callable,
    batch: Callable,
) -> tuple[run_config.RunConfig, dict | None, str | None]:
    """The run's steps under `--time_budget`: recorded on resume, else chosen from a step time.

    Args:
        config: the resolved run (its steps from the epochs).
        previous: the run directory's config.json, or None for a new run.
        policy: the dtype policy the run trains in (`resolve`'s).
        timed: `(median seconds per step, seconds of the first step)` of the probe of
            `--precision=auto` in `policy`, or None: timed here (`step_time`).
        build_model: `() -> compiled keras.Model`, the run's model (when timed here).
        batch: `() -> one training batch` (when timed here).

    Returns:
        `(config with the budget's steps, what config.json records under
        resolved.time_budget, the console line)`; without a budget `(config, None, None)`.
    """
    flag = config.flags.get("time_budget", run_config.NO_BUDGET)
    seconds = run_config.budget_seconds(flag)
    if seconds is None:
        return config, None, None
    recorded_budget = ((previous or {}).get("resolved") or {}).get("time_budget")
    if recorded_budget:
        config = run_config.with_steps(config, recorded_budget["steps"])
        line = f"{_layout(config)}, recorded in config.json"
        return config, recorded_budget, f"Time budget {flag}: {line} (a resumed run keeps them)."
    how = "timed by --precision=auto"
    if timed is None:
        timed, how = step_time(policy, build_model, batch), "timed"
    step, first = timed
    fitting = recipes.steps_in_budget(seconds, step, overhead_seconds=first)
    cap = config.total_steps if run_config.epochs_given(config) else fitting
    given_epochs, config = config.recipe.epochs, run_config.with_steps(config, min(fitting, cap))
    estimate = first + config.total_steps * step
    record = {
        "budget_seconds": seconds,
        "seconds_per_step": round(step, 5),
        "first_step_seconds": round(first, 3),
        "steps_in_budget": fitting,
        "steps": config.total_steps,
        "capped_by_epochs": fitting > cap,
        "estimated_seconds": round(estimate, 1),
    }
    notes = ["whole epochs"] if config.total_steps < min(fitting, cap) else []
    if estimate > seconds:
        notes.append("over the budget: a run trains at least one step")
    if record["capped_by_epochs"]:
        notes.append(f"--epochs={given_epochs} caps it")
    notes.append("the kNN monitor, saves and checkpoints not counted")
    line = (
        f"Time budget {flag}: {1000 * step:.0f} ms/step ({how}; first step {first:.1f} s) -> "
        f"{_layout(config)}, about {_about(estimate)} "
        f"({'; '.join(notes)})."
    )
    return config, record, line
