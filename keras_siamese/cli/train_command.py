"""`train`: pretrain a model from its method's recipe; re-running the same command resumes it.

The model and the optimizer are the recipe's (`keras_siamese.recipes`), with the flags
applied: `build_model_and_optimizer(resolve(flag_values, info))`. Writes into --model_dir:
config.json (the resolved configuration, also printed), model.keras (after every epoch),
checkpoints/ (every --checkpoint_every_steps / --checkpoint_every_minutes and on SIGTERM or
SIGINT: an interrupted run resumes at its exact step, see `train_run`),
pretrained_encoder.weights.h5 (the Siamese methods' SimCLR pretraining), history.csv, logs/
(TensorBoard), plots/training_curves.png and, at the end, train_result.json; each file whole
or absent (`run_dir`). A directory whose training has finished is left as it is (a damaged
model.keras is rewritten from the final checkpoint). A run stopped by a signal exits with
status 75 after its checkpoint; re-running the command resumes it. --model_dir may be spelled
otherwise or moved; --data_dir and --eval_data_dir are compared resolved.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from keras_siamese import atomic_files
from keras_siamese.cli import (
    encoder_flag,
    flag_checks,
    methods,
    pretraining,
    recipe_flags,
    run_dir,
    sources,
    train_precision,
    train_run,
    view_recipe,
)
from keras_siamese.cli.run_config import NO_BUDGET, RunConfig, budget_seconds, resolve
from keras_siamese.cli.train_flags import define_flags  # noqa: F401  (the command's flags)

USAGE = "train --method=METHOD (--dataset=NAME | --data_dir=DIR) --model_dir=DIR [flags]"
SUMMARY = "Pretrain a model (resumes when re-run with the same --model_dir)."
# Flags that may change between a run and its resumption: they do not change the result.
# --model_dir is where the run is: the directory may be moved or spelled otherwise.
RESUMABLE_FLAGS = frozenset(
    {
        "strategy",
        "jit_compile",
        "verbose",
        "plots",
        "log_every_steps",
        "knn_every",
        "model_dir",
        "checkpoint_every_steps",
        "checkpoint_every_minutes",
        "max_pixels",  # refuses oversized files; the images within it train the same
    }
)
# Flags added after runs were written, with the value that reproduces those runs: a
# config.json without the flag resumes only with that value (it trained that way).
ADDED_FLAGS = {
    "encoder_grid": view_recipe.GLOBAL_POOLING,
    "views": "simclr",
    "pretrain_epochs": "0",
    "dino_hidden_dim": 2048,
    "dino_bottleneck_dim": 256,
    "dino_local_views": 0,
    "simsiam_fixed_predictor_learning_rate": True,
    "dino_warmup_teacher_temperature": 0.04,
    "dino_teacher_temperature_warmup_fraction": 0.0,
    "time_budget": NO_BUDGET,
    **{name: "auto" for name in recipe_flags.VIT_FIELDS},
}


def format_config(config: dict, indent: str = "  ") -> str:
    """One `name: value` line per entry (JSON values), nested dicts indented."""
    lines = []
    for name, value in config.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{name}:")
            lines.append(format_config(value, indent + "  "))
        else:
            lines.append(f"{indent}{name}: {json.dumps(value, default=str)}")
    return "\n".join(lines)


def build_model_and_optimizer(config: RunConfig, encoder=None):
    """The run's model (not compiled) and its optimizer, from the resolved recipe.

    `recipe.build_model(image_shape, total_steps, encoder=..., seed=--seed)` and
    `recipe.build_optimizer(total_steps, batch_size)`, where `batch_size` is the real global
    batch (P x K for triplets): the peak rate follows it from the recipe's batch by the
    recipe's scaling rule. With the default flags this is exactly what
    `ks.recipes.get(method)` builds (tests/test_recipe_drift.py).

    Args:
        config: the resolved run (`run_config.resolve`).
        encoder: the backbone (e.g. pretrained); None: the recipe's ResNet, or `--encoder`'s
            keras.applications or KerasHub backbone at the view shape.

    Returns:
        `(model, optimizer)`.

    Raises:
        absl.app.UsageError: when the encoder or the model refuses the configuration.
    """
    recipe = config.recipe
    try:
        if encoder is None and config.encoder.family != encoder_flag.RESNET:
            encoder = pretraining.build_encoder(config)
        model = recipe.build_model(
            config.image_shape, config.total_steps, encoder=encoder, seed=config.seed
        )
    except (ValueError, TypeError) as error:  # e.g. an encoder refusing the views.
        raise app.UsageError(
            f"--method={config.method.name} with --encoder={config.flags['encoder']} cannot be "
            f"built for views of shape {config.view_shape}: {error}"
        ) from error
    return model, recipe.build_optimizer(config.total_steps, config.batch_size)


def _compiled(config: RunConfig, encoder=None):
    model, optimizer = build_model_and_optimizer(config, encoder)
    model.compile(optimizer=optimizer, jit_compile=config.flags["jit_compile"])
    return model


def _check_values(values: dict, method: methods.Method) -> None:
    """Checks the flag values that need no data (before TensorFlow is imported): the
    encoder's files, and every recipe field through the method's recipe."""
    encoder_flag.check_files(encoder_flag.parse(values["encoder"]), values["encoder_weights"])
    budget_seconds(values["time_budget"])
    flag_checks.metric_flags(values)  # combinations, in flag terms before the recipe's
    for reader in methods.METHODS.values():  # every method's flags, together in its recipe
        recipe = reader.recipe
        for flag in reader.flags:
            recipe = recipe_flags.apply(recipe, flag, values[flag.name])
    recipe_flags.recipe_from_flags(method, values)
    crop = values["crop_size"]
    if crop != "auto" and crop and values["image_size"] and crop > values["image_size"]:
        raise app.UsageError(
            f"--image_size ({values['image_size']}) is smaller than --crop_size "
            f"({crop}): views are cropped from the images, so the crop must fit. "
            f"Received: --image_size={values['image_size']}, --crop_size={crop}"
        )


def _warn_unused(values: dict, given: flags.FlagValues, source: sources.Source) -> None:
    used = {flag.name for flag in methods.METHODS[values["method"]].flags}
    for name in sorted(set(methods.method_flags()) - used):
        if given[name].present:
            print(f"warning: --{name} is not used by --method={values['method']}", file=sys.stderr)
    unused = recipe_flags.unused_encoder_flags(values)
    if source.kind != sources.NAMED:
        unused += [(name, source.describe()) for name in ("train_split", "test_split")]
    if source.kind != sources.TFRECORD:
        unused += [("tfrecord_image_key", source.describe())]
    for name, reader in unused:
        if given[name].present:
            print(f"warning: --{name} is not used with {reader}", file=sys.stderr)


def _previous_config(model_dir: str) -> dict | None:
    """The config.json of the run in `model_dir`, or None for a new run."""
    config_path = run_dir.path(model_dir, run_dir.CONFIG)
    return run_dir.read_json(config_path) if os.path.isfile(config_path) else None


def _as_flag(name: str, value) -> str:
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no{name}"
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    return f"--{name}={value}"


def _changed_flags(values: dict, previous: dict) -> list[tuple[str, object, object]]:
    """`(name, recorded, given)` of the flags that differ from a run's config.json; the
    flags of other methods and `RESUMABLE_FLAGS` do not count."""
    others = set(methods.method_flags()) - {f.name for f in methods.METHODS[values["method"]].flags}
    changed = []
    for name, value in values.items():
        if name in RESUMABLE_FLAGS or name in others:
            continue
        if name == "precision":
            if value == train_precision.AUTO:
                continue  # the recorded precision is used
            before = train_precision.recorded(previous) or previous.get(name)
        else:
            before = previous.get(name, ADDED_FLAGS.get(name))
        if name in ("data_dir", "eval_data_dir") and before:
            before = _same_paths({name: before})[name]  # older runs recorded the spelling
        if before != value:
            changed.append((name, before, value))
    return changed


def _check_resumable(model_dir: str, values: dict, previous: dict | None) -> None:
    """Refuses to resume a run with other flags than it was written with.

    A flag missing from an older config.json counts as its `ADDED_FLAGS` value. `--precision
    auto` resumes a run in whichever precision it recorded.

    Raises:
        absl.app.UsageError: listing the changed flags and the flags that resume the run.
    """
    changed = _changed_flags(values, previous) if previous is not None else []
    gone = [
        (name, before)
        for name, before, _ in changed
        if name in ("data_dir", "eval_data_dir") and before and not os.path.isdir(before)
    ]
    if gone:
        name, before = gone[0]
        raise app.UsageError(
            f"--model_dir={model_dir} holds a run on --{name}={before}, which no longer "
            f"exists: it resumes only on the same images. Move them back there, or use a new "
            f"--model_dir. Received: --{name}={values[name]}"
        )
    if changed:
        listed = "; ".join(f"--{name}: {before!r} -> {value!r}" for name, before, value in changed)
        recorded_flags = " ".join(_as_flag(name, before) for name, before, _ in changed)
        raise app.UsageError(
            f"--model_dir={model_dir} holds a run with other flags ({listed}); runs written "
            "before a default changed keep their own. Re-run with the same flags to resume it "
            f"({recorded_flags}), or use a new --model_dir."
        )


def _training_images(config: RunConfig, data_module, supervised: bool):
    """The unbatched training split (`(image, label)` when `supervised`)."""
    shape = list(config.image_shape)
    return data_module.training_data(config.source, config.record(), shape, supervised)


def _training_batches(config: RunConfig, data_module):
    """The method's training batches, from a pipeline of their own."""
    images = _training_images(config, data_module, config.method.needs_labels)
    return config.method.build_batches(config, images)


def _batch(config: RunConfig, data_module):
    """One training batch, from a pipeline of its own (for timing a step)."""
    return next(iter(_training_batches(config, data_module)))


def _precision(config: RunConfig, previous: dict | None, data_module) -> tuple[dict, tuple | None]:
    """Resolves `--precision` (timed before the real model and the seed: a probe leaves both
    as they would be); returns what config.json records about it and, with a time budget,
    the probe's `(seconds per step, seconds of the first step)` in that precision (or None)."""
    first_seconds = None if budget_seconds(config.flags["time_budget"]) is None else {}
    precision, seconds, how = train_precision.resolve(
        config.flags["precision"],
        previous,
        lambda: _compiled(config),
        lambda: _batch(config, data_module),
        first_seconds,
    )
    print(train_precision.describe(precision, seconds, how))
    facts = {"precision": precision}
    if seconds is not None:
        facts["precision_seconds_per_step"] = {k: round(v, 4) for k, v in seconds.items()}
    timed = (seconds[precision], first_seconds[precision]) if seconds and first_seconds else None
    return facts, timed


def _time_budget(config: RunConfig, previous, facts: dict, timed, data_module, listed):
    """`config` with the steps of `--time_budget` (`train_precision.budget`: recorded on
    resume, else from the step time), recorded in `facts`; the kNN monitor's default period
    follows the epochs. Without a budget, `config` as it is."""
    import keras_siamese as ks

    budgeted, record, line = train_precision.budget(
        config,
        previous,
        facts["precision"],
        timed,
        lambda: _compiled(config),
        lambda: _batch(config, data_module),
    )
    if record is None:
        return config
    print(line)
    facts["time_budget"] = record
    for callback in listed:
        if isinstance(callback, ks.callbacks.KNNMonitor):
            callback.every = budgeted.knn_every
    return budgeted


def _fit(config: RunConfig, model_dir: str, strategy, facts: dict, data_module, listed) -> int:
    """Builds the model in `facts["precision"]` (after any pretraining), writes config.json,
    trains from the newest checkpoint, finishes; returns the exit code."""
    import keras
    import tensorflow as tf

    import keras_siamese as ks

    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(facts["precision"])
    try:
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            images = _training_images(config, data_module, supervised=False)
            encoder = pretraining.pretrained_encoder(config, model_dir, images)
            model = _compiled(config, encoder)
        facts["encoder_parameters"] = int(model.encoder.count_params())
        facts["encoder_features"] = int(model.feature_dim)
        facts["replicas"] = int(strategy.num_replicas_in_sync)
        facts["versions"] = {
            "keras_siamese": ks.__version__,
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
        }
        os.makedirs(model_dir, exist_ok=True)
        config_path = run_dir.path(model_dir, run_dir.CONFIG)
        record = config.record(**facts)
        print(f"Resolved configuration (saved to {config_path}):\n{format_config(record)}")
        run_dir.write_json(config_path, record)
        checkpoint = train_run.step_checkpoint(config, model_dir)
        seconds = train_run.fit(config, model, strategy, data_module, images, listed, checkpoint)
        if checkpoint.stopped_by:
            print(train_run.stopped_message(checkpoint, config, model_dir))
            return train_run.EXIT_CHECKPOINTED
        result = train_run.finish(config, model, model_dir, seconds, checkpoint)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)
    print(f"Training finished in {seconds:.0f} s: {json.dumps(result['final'])}")
    return 0


def _curves(model_dir: str, values: dict, title: str) -> None:
    if not values["plots"]:
        return
    from keras_siamese import plots

    curves = plots.write_curves(
        run_dir.path(model_dir, run_dir.HISTORY), run_dir.path(model_dir, run_dir.CURVES), title
    )
    if curves:
        print(f"Training curves: {curves}")


def _same_paths(values: dict) -> dict:
    """The folder flags as absolute paths (compared and recorded by meaning, not spelling)."""
    resolved = dict(values)
    for name in ("data_dir", "eval_data_dir"):
        if resolved.get(name):
            resolved[name] = os.path.realpath(os.path.expanduser(resolved[name]))
    return resolved


def run(given: flags.FlagValues) -> int:
    """Runs `train` with parsed flags; returns the exit code."""
    values = {name: given[name].value for name in given}
    model_dir = run_dir.require_model_dir(values["model_dir"])
    method = methods.check_available(values["method"])
    values = recipe_flags.recorded(view_recipe.parse_flags(values))  # as config.json has them
    values = _same_paths(values)
    _check_values(values, method)
    source = sources.from_config(values, dataset_given=given["dataset"].present)
    _warn_unused(values, given, source)
    previous = _previous_config(model_dir)
    _check_resumable(model_dir, values, previous)
    # Everything above answers without TensorFlow.
    title = f"{values['method']} on {source.title()}"
    atomic_files.remove_stale(model_dir)
    if train_run.finished(model_dir):
        print(f"Training in {model_dir} has finished; nothing to do (use a new --model_dir).")
        _curves(model_dir, values, title)
        return 0
    import keras_siamese as ks
    from keras_siamese.cli import source_data

    try:
        strategy = ks.distribute.get_strategy(values["strategy"])
    except ValueError as error:
        raise app.UsageError(f"{error}") from error
    encoder_flag.check_application_name(encoder_flag.parse(values["encoder"]))
    config = resolve(values, source_data.probe_source(source, values), source)
    rules = view_recipe.describe_rules(config.recipe, values, config.image_shape)
    if rules:
        print(rules)
    listed = train_run.callbacks(config, model_dir, source_data)  # checks the queries first
    facts, timed = _precision(config, previous, source_data)
    config = _time_budget(config, previous, facts, timed, source_data, listed)
    code = _fit(config, model_dir, strategy, facts, source_data, listed)
    if code == 0:
        _curves(model_dir, values, title)
        print(f"Next: evaluate --model_dir={model_dir}; export --model_dir={model_dir}")
    return code
