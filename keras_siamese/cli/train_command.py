"""`train`: pretrain a model; re-running the same command resumes it.

Writes into --model_dir: config.json (the resolved configuration, also printed), model.keras
(after every epoch), backup/ (BackupAndRestore, so an interrupted run resumes at its last
finished epoch), history.csv, logs/ (TensorBoard), plots/training_curves.png and, at the end,
train_result.json. A directory whose training has finished is left as it is.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

from absl import app, flags

from keras_siamese.cli import (
    encoder_flag,
    flag_checks,
    method_optimizers,
    methods,
    run_dir,
    sources,
    train_precision,
    view_recipe,
)
from keras_siamese.cli.train_flags import define_flags  # noqa: F401  (the command's flags)

USAGE = "train --method=METHOD (--dataset=NAME | --data_dir=DIR) --model_dir=DIR [flags]"
SUMMARY = "Pretrain a model (resumes when re-run with the same --model_dir)."
# Flags that may change between a run and its resumption: they do not change the result.
RESUMABLE_FLAGS = frozenset(
    {"strategy", "jit_compile", "verbose", "plots", "log_every_steps", "knn_every"}
)
# Flags added after runs were written, with the value that reproduces those runs: a
# config.json without the flag resumes only with that value (it trained that way).
ADDED_FLAGS = {"encoder_grid": view_recipe.GLOBAL_POOLING}


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


def _check_values(config: dict, method: methods.Method) -> None:
    """Checks the flag values that need no data (before TensorFlow is imported).

    Every method-specific flag is checked, whichever method reads it.
    """
    encoder_flag.check_files(encoder_flag.parse(config["encoder"]), config["encoder_weights"])
    view_recipe.parse_flags(config)
    flag_checks.number("min_crop_area", config["min_crop_area"], 0.0, 1.0, open_minimum=True)
    flag_checks.number("color_strength", config["color_strength"], 0.0, 1.25)
    for flag, _ in methods.method_flags().values():
        if flag.check is not None:
            flag.check(flag.name, config[flag.name])
    for name, default, strict in (
        ("learning_rate", method.learning_rate, True),
        ("weight_decay", method.weight_decay, False),
    ):
        flag_checks.auto_number(name, config[name], default, 0.0, strict=strict)
    crop = view_recipe.parse_crop_size(config["crop_size"])
    if crop != "auto" and crop and config["image_size"] and crop > config["image_size"]:
        raise app.UsageError(
            f"--image_size ({config['image_size']}) is smaller than --crop_size "
            f"({crop}): views are cropped from the images, so the crop must fit. "
            f"Received: --image_size={config['image_size']}, --crop_size={crop}"
        )


def _warn_unused(config: dict, values: flags.FlagValues, source: sources.Source) -> None:
    used = {flag.name for flag in methods.METHODS[config["method"]].flags}
    for name in sorted(set(methods.method_flags()) - used):
        if values[name].present:
            print(f"warning: --{name} is not used by --method={config['method']}", file=sys.stderr)
    unused = []
    if encoder_flag.parse(config["encoder"]).family != encoder_flag.RESNET:
        unused += [
            (name, f"--encoder={config['encoder']}")
            for name in ("encoder_width", "stem", "encoder_grid")
        ]
    if source.kind != sources.NAMED:
        unused += [(name, source.describe()) for name in ("train_split", "test_split")]
    if source.kind != sources.TFRECORD:
        unused += [("tfrecord_image_key", source.describe())]
    for name, reader in unused:
        if values[name].present:
            print(f"warning: --{name} is not used with {reader}", file=sys.stderr)


def _resolve(config: dict, info, source: sources.Source | None = None) -> dict:
    """Derives image shapes, steps and rates from the flags and the dataset.

    `source` is where `info` was read (default: the named `--dataset`).
    """
    method = methods.METHODS[config["method"]]
    source = source or sources.Source(sources.NAMED, config["dataset"])
    height, width, channels = info.image_shape
    if config["image_size"]:
        height = width = config["image_size"]
    if height is None or width is None:
        raise app.UsageError(
            f"The images of {source.describe()} are of different sizes: pass --image_size. "
            "Received: --image_size=0"
        )
    if config["channels"] != "auto":
        channels = int(config["channels"])
    crop = view_recipe.crop_size(config, method.view_recipe, height, width)
    stem = None  # keras.applications and KerasHub backbones bring their own stem.
    if encoder_flag.parse(config["encoder"]).family == encoder_flag.RESNET:
        stem = config["stem"]
        if stem == "auto":
            stem = "small" if crop <= 64 else "imagenet"
    grid = view_recipe.grid_size(config, method.view_recipe, stem, min(height, width))
    if stem is not None and crop < view_recipe.smallest_view(stem, grid):
        smallest = view_recipe.smallest_view(stem, grid)
        pooling = "" if grid is None else f" with --encoder_grid={grid}"
        raise app.UsageError(
            f"The {stem} ResNet stem needs views of at least {smallest} pixels{pooling}. "
            f"Received: --crop_size={crop} (--image_size={height})"
        )
    if method.needs_labels and info.num_classes is None:
        hint = ""
        if source.kind == sources.FOLDER:
            hint = " (one sub-folder per class, --labels=inferred)"
        raise app.UsageError(
            f"--method={method.name} trains on labelled pairs or triplets, but "
            f"{source.describe()} has no class label{hint}. Use simclr or simsiam. "
            f"Received: --method={method.name}, {source.describe()}"
        )
    examples = info.num_examples
    if config["train_examples"]:
        examples = min(examples, config["train_examples"])
    layout = method.batch_layout(config, info.num_classes)
    batch_size = layout["batch_size"]
    steps_per_epoch = examples // batch_size
    if steps_per_epoch < 1:
        raise app.UsageError(
            f"--batch_size ({config['batch_size']}) is larger than the {examples} training "
            f"examples. Received: --batch_size={config['batch_size']}"
        )
    total_steps = steps_per_epoch * config["epochs"]
    has_queries = source.kind == sources.NAMED or source.eval_dir is not None
    knn = config["knn_monitor"] and info.num_classes is not None and has_queries
    resolved = {
        "source": dataclasses.asdict(source),
        # Folders and TFRecords shuffle as they read (all files; shards and records).
        "files_shuffled": source.kind != sources.NAMED,
        "image_shape": [height, width, channels],
        "view_shape": [crop, crop, channels],
        # Views smaller than the images: the encoder takes any size, the model the images'.
        "any_size_encoder": [crop, crop] != [height, width],
        "stem": stem,
        "encoder_grid": grid,  # None: global average pooling
        "num_classes": info.num_classes,
        "class_names": info.class_names,
        "train_examples": examples,
        **layout,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "warmup_steps": min(round(config["warmup_fraction"] * total_steps), total_steps - 1),
        "learning_rate": flag_checks.auto_number(
            "learning_rate", config["learning_rate"], method.learning_rate, 0.0, strict=True
        ),
        "optimizer": method.optimizer if config["optimizer"] == "auto" else config["optimizer"],
        "weight_decay": flag_checks.auto_number(
            "weight_decay", config["weight_decay"], method.weight_decay, 0.0, strict=False
        ),
        "knn_monitor": knn,
        "knn_every": config["knn_every"] or max(1, config["epochs"] // 4),
    }
    config = dict(config, resolved=resolved)
    resolved["peak_learning_rate"] = method_optimizers.peak_learning_rate(config)
    return config


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


def _check_resumable(model_dir: str, config: dict, previous: dict | None) -> None:
    """Refuses to resume a run with other flags than it was written with.

    A flag missing from an older config.json counts as its `ADDED_FLAGS` value. `--precision
    auto` resumes a run in whichever precision it recorded.

    Raises:
        absl.app.UsageError: listing the changed flags and the flags that resume the run.
    """
    if previous is None:
        return
    changed = []
    for name, value in config.items():
        if name in RESUMABLE_FLAGS or name == "resolved":
            continue
        if name == "precision":
            if value == train_precision.AUTO:
                continue  # the recorded precision is used
            before = train_precision.recorded(previous) or previous.get(name)
        else:
            before = previous.get(name, ADDED_FLAGS.get(name))
        if before != value:
            changed.append((name, before, value))
    if changed:
        listed = "; ".join(f"--{name}: {before!r} -> {value!r}" for name, before, value in changed)
        recorded_flags = " ".join(_as_flag(name, before) for name, before, _ in changed)
        raise app.UsageError(
            f"--model_dir={model_dir} holds a run with other flags ({listed}); runs written "
            "before a default changed keep their own. Re-run with the same flags to resume it "
            f"({recorded_flags}), or use a new --model_dir."
        )


def _build_model(method: methods.Method, config: dict):
    """The method's model, compiled with its optimizer, under the current dtype policy."""
    try:
        model = method.build_model(config)
    except (ValueError, TypeError) as error:  # e.g. an encoder refusing the views.
        raise app.UsageError(
            f"--method={method.name} with --encoder={config['encoder']} cannot be built "
            f"for views of shape {tuple(config['resolved']['view_shape'])}: {error}"
        ) from error
    model.compile(optimizer=method.build_optimizer(config), jit_compile=config["jit_compile"])
    return model


def _callbacks(config: dict, model_dir: str, data_module, source: sources.Source) -> list:
    """KNNMonitor first (so later callbacks see `val_knn_accuracy`), then checkpoints and logs."""
    import keras

    import keras_siamese as ks

    resolved = config["resolved"]
    callbacks = []
    if resolved["knn_monitor"]:
        memory, queries, _ = data_module.labelled_sets(
            source,
            config,
            resolved["image_shape"],
            config["knn_memory_examples"],
            config["knn_query_examples"],
            ordered=False,
        )
        callbacks.append(
            ks.callbacks.KNNMonitor(
                memory, queries, k=config["knn_k"], every=resolved["knn_every"], verbose=1
            )
        )
    callbacks += methods.METHODS[config["method"]].build_monitors(config)
    callbacks += [
        keras.callbacks.BackupAndRestore(run_dir.path(model_dir, run_dir.BACKUP)),
        keras.callbacks.ModelCheckpoint(run_dir.path(model_dir, run_dir.MODEL)),
        keras.callbacks.CSVLogger(run_dir.path(model_dir, run_dir.HISTORY), append=True),
        keras.callbacks.TensorBoard(
            run_dir.path(model_dir, run_dir.LOGS), update_freq=config["log_every_steps"]
        ),
    ]
    return callbacks


def run(values: flags.FlagValues) -> int:
    """Runs `train` with parsed flags; returns the exit code."""
    config = {name: values[name].value for name in values}
    model_dir = run_dir.require_model_dir(config["model_dir"])
    method = methods.check_available(config["method"])
    _check_values(config, method)
    config = view_recipe.parse_flags(config)  # recorded as "auto" or an int
    source = sources.from_config(config, dataset_given=values["dataset"].present)
    _warn_unused(config, values, source)
    previous = _previous_config(model_dir)
    _check_resumable(model_dir, config, previous)
    # Everything above answers without TensorFlow; `plots` needs only numpy and matplotlib.
    from keras_siamese import plots

    title = f"{config['method']} on {source.title()}"
    history_path = run_dir.path(model_dir, run_dir.HISTORY)
    curves_path = run_dir.path(model_dir, run_dir.CURVES)
    if os.path.isfile(run_dir.path(model_dir, run_dir.TRAIN_RESULT)):
        print(f"Training in {model_dir} has finished; nothing to do (use a new --model_dir).")
        if config["plots"]:
            plots.write_curves(history_path, curves_path, title=title)
        return 0

    import keras
    import tensorflow as tf

    import keras_siamese as ks
    from keras_siamese.cli import source_data

    try:
        strategy = ks.distribute.get_strategy(config["strategy"])
    except ValueError as error:
        raise app.UsageError(f"{error}") from error
    encoder_flag.check_application_name(encoder_flag.parse(config["encoder"]))
    info = source_data.probe_source(source, config)
    config = _resolve(config, info, source)
    resolved = config["resolved"]
    train = source_data.training_data(source, config, resolved["image_shape"], method.needs_labels)
    train = method.build_batches(config, train)
    callbacks = _callbacks(config, model_dir, source_data, source)

    def probe_batch():  # from a pipeline of its own: the training batches keep their order
        images = source_data.training_data(
            source, config, resolved["image_shape"], method.needs_labels
        )
        return next(iter(method.build_batches(config, images)))

    # Before the real model and the seed: a timed probe leaves both as they would be.
    precision, step_seconds, how = train_precision.resolve(
        config["precision"], previous, lambda: _build_model(method, config), probe_batch
    )
    resolved["precision"] = precision
    if step_seconds is not None:
        resolved["precision_seconds_per_step"] = {
            name: round(value, 4) for name, value in step_seconds.items()
        }
    print(train_precision.describe(precision, step_seconds, how))

    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(precision)
    try:
        keras.utils.set_random_seed(config["seed"])
        with strategy.scope():
            model = _build_model(method, config)
        resolved["encoder_parameters"] = int(model.encoder.count_params())
        resolved["encoder_features"] = int(model.feature_dim)
        resolved["replicas"] = int(strategy.num_replicas_in_sync)
        resolved["versions"] = {
            "keras_siamese": ks.__version__,
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
        }
        os.makedirs(model_dir, exist_ok=True)
        config_path = run_dir.path(model_dir, run_dir.CONFIG)
        print(f"Resolved configuration (saved to {config_path}):\n{format_config(config)}")
        run_dir.write_json(run_dir.path(model_dir, run_dir.CONFIG), config)

        started = time.perf_counter()
        model.fit(
            train,
            epochs=config["epochs"],
            callbacks=callbacks,
            verbose=int(config["verbose"]),
            shuffle=False,  # The pipeline shuffles; Keras cannot shuffle a tf.data.Dataset.
        )
        seconds = time.perf_counter() - started
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)

    history = run_dir.read_history(model_dir)
    result = {
        "epochs": config["epochs"],
        "seconds_this_run": round(seconds, 1),
        "final": {name: series[-1] for name, series in history.items() if series},
    }
    run_dir.write_json(run_dir.path(model_dir, run_dir.TRAIN_RESULT), result)
    print(f"Training finished in {seconds:.0f} s: {json.dumps(result['final'])}")
    if config["plots"]:
        curves = plots.write_curves(history_path, curves_path, title=title)
        if curves:
            print(f"Training curves: {curves}")
    print(f"Next: evaluate --model_dir={model_dir}; export --model_dir={model_dir}")
    return 0
