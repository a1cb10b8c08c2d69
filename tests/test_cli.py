"""The command line: help, flag validation before training, and train -> resume -> evaluate
-> export end to end on a tiny budget."""

import csv
import dataclasses
import json
import os
import re
import runpy

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

import keras_siamese as ks
from keras_siamese import cli, plots
from keras_siamese.cli import (
    data,
    methods,
    run_config,
    run_dir,
    train_command,
    train_flags,
    train_run,
)

TINY = [
    "--train_examples=128",
    "--batch_size=32",
    "--epochs=2",
    "--encoder_width=4",
    "--image_size=16",
    "--projection_dims=32,16",
    "--knn_memory_examples=128",
    "--knn_query_examples=64",
    "--knn_k=20",
    "--strategy=default",
    "--verbose=0",
]


def run_cli(*arguments):
    return cli.main(["keras-siamese", *arguments])


def only_error_line(capsys):
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


def train_flag_values(*arguments):
    values = flags.FlagValues()
    train_flags.define_flags(values)
    values(["train", *arguments])
    return values


# ----------------------------------------------------------------------------- help


def test_main_help_names_every_command_and_method(capsys):
    assert run_cli("--help") == 0
    text = capsys.readouterr().out
    for name in [*cli.COMMANDS, *methods.METHODS]:
        assert name in text


def test_no_command_prints_help_and_fails(capsys):
    assert run_cli() == 2
    assert "commands:" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "evaluate", "export"])
def test_command_help_lists_every_flag_with_its_default(capsys, command):
    assert run_cli(command, "--help") == 0
    text = capsys.readouterr().out
    values = flags.FlagValues()
    cli.COMMANDS[command].define_flags(values)
    assert text.startswith(f"usage: keras-siamese {command} ")
    for name in values:
        flag = values[name]
        assert f"--{name}:" in text or f"--[no]{name}:" in text
        assert f"(default: '{flag.default_as_str.strip(chr(39))}')" in text
    defaults = [line for line in text.splitlines() if line.strip().startswith("(default: ")]
    assert len(defaults) == len(list(values))
    if command == "train":
        for method in methods.METHODS:
            assert method in text


def test_console_script_and_module_entry_points(capsys, monkeypatch):
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "keras-siamese"]
    assert script.load() is cli.run
    monkeypatch.setattr("sys.argv", ["keras-siamese", "evaluate", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("keras_siamese", run_name="__main__")
    assert exit_info.value.code == 0
    assert "usage: keras-siamese evaluate --model_dir=DIR" in capsys.readouterr().out


def test_help_command_form(capsys):
    assert run_cli("help", "export") == 0
    assert "--export_dir" in capsys.readouterr().out


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "arguments, match",
    [
        (["trian"], "unknown command 'trian'.*Did you mean 'train'"),
        (["train", "--method=bogus"], "--method=bogus: value should be one of"),
        (["train", "--bogus=1"], "Unknown command line flag 'bogus'"),
        (["train", "--epochs=0"], "--epochs=0"),
        (["train", "extra"], "unexpected arguments"),
        (["train", "--learning_rate=fast"], "--learning_rate must be 'auto' or a number"),
        (["train", "--weight_decay=-1"], r"--weight_decay must be in \[0.0, inf\]. Received: "),
        (["train", "--min_crop_area=0"], r"--min_crop_area must be in \(0.0, 1.0\]"),
        (
            ["train", "--color_strength=nan"],
            r"--color_strength must be in \[0.0, 1.25\]. Received: --color_strength=nan",
        ),
        (["train", "--temperature=inf"], r"--temperature must be in \(0.0, inf\]"),
        (["train", "--siamese_margin=inf"], r"--siamese_margin must be in \(0.0, inf\]"),
        (["train", "--batch_size=two"], "--batch_size must be 'auto' or an integer"),
        (["train", "--dino_output_dim=0"], "--dino_output_dim must be at least 1"),
        (["train", "--optimizer=rmsprop"], "--optimizer=rmsprop: value should be one of"),
        (["train", "--projection_dims=512,x"], "--projection_dims must be positive integers"),
        (["train", "--image_size=16", "--crop_size=24"], r"--image_size \(16\) is smaller"),
        (["train", "--crop_size=32"], r"--image_size \(28x28\) is smaller than --crop_size"),
        (["train", "--image_size=6"], "stem needs views of at least 8 pixels"),
        (["train", "--dataset=fashion_mnits"], "Unknown dataset.*Received: name='fashion_mnits'"),
        (["train", "--train_split=validation"], "`split` for 'fashion_mnist' must be"),
        (["train", "--train_examples=100"], r"--batch_size \(256\) is larger than the 100"),
        (["train", "--strategy=gpu:2"], "must be one of auto, default"),
        (["train", "--method=siamese-triplet", "--classes_per_batch=11"], "exceeds the 10"),
        (
            ["train", "--method=siamese-triplet", "--batch_size=16", "--classes_per_batch=10"],
            "at least 2 examples of each of the 10 classes",
        ),
    ],
)
def test_bad_train_flags_fail_with_one_line_before_training(capsys, tmp_path, arguments, match):
    model_dir = tmp_path / "run"
    if arguments[0] == "train":
        arguments = [*arguments, f"--model_dir={model_dir}"]
    assert run_cli(*arguments) == 2
    assert re.search(match, only_error_line(capsys))
    assert not os.path.exists(model_dir)


@pytest.mark.parametrize(
    "arguments, match",
    [
        (["train"], "--model_dir is required"),
        (["evaluate"], "--model_dir is required"),
        (["export", "--model_dir=/nonexistent/run"], "config.json does not exist"),
        (["evaluate", "--knn_k=0"], "--knn_k=0"),
        (
            ["evaluate", "--knn_temperature=inf", "--model_dir=/nonexistent/run"],
            "--knn_temperature must be finite and > 0",
        ),
    ],
)
def test_missing_run_directory_fails(capsys, arguments, match):
    assert run_cli(*arguments) == 2
    assert re.search(match, only_error_line(capsys))


def test_triplets_need_a_labelled_dataset(capsys, tmp_path, monkeypatch):
    def unlabelled(name):
        raise ValueError(f"Dataset {name!r} has no class label feature 'label'.")

    monkeypatch.setattr(ks.datasets, "num_classes", unlabelled)
    model_dir = tmp_path / "run"
    assert run_cli("train", "--method=siamese-triplet", f"--model_dir={model_dir}") == 2
    assert "trains on labelled pairs or triplets" in only_error_line(capsys)
    assert not os.path.exists(model_dir)


def test_a_run_resumes_only_with_the_same_flags(capsys, tmp_path):
    model_dir = tmp_path / "run"
    os.makedirs(model_dir)
    config = train_flags.flag_values(f"--model_dir={model_dir}", "--epochs=3", "--strategy=default")
    run_dir.write_json(str(model_dir / run_dir.CONFIG), config)
    run_dir.write_json(str(model_dir / run_dir.TRAIN_RESULT), {"epochs": 3})
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(model_dir / run_dir.MODEL)
    # Changing the schedule is refused; changing only the strategy is a resumption.
    assert run_cli("train", f"--model_dir={model_dir}", "--epochs=2") == 2
    assert "--epochs: 3 -> 2" in only_error_line(capsys)
    assert run_cli("train", f"--model_dir={model_dir}", "--epochs=3", "--strategy=auto") == 0
    assert "has finished; nothing to do" in capsys.readouterr().out


# ----------------------------------------------------------------------------- methods


def resolved_config(method, *arguments, examples=128):
    values = train_flags.flag_values(f"--method={method}", "--model_dir=unused", *TINY, *arguments)
    info = data.DatasetInfo("fashion_mnist", (28, 28, 1), 10, None, examples)
    return run_config.resolve(values, info)


@pytest.mark.parametrize(
    "scaling, batch_size, expected", [("linear", 512, 1.2), ("sqrt", 1024, 1.2), ("none", 64, 0.6)]
)
def test_learning_rate_scaling(scaling, batch_size, expected):
    config = resolved_config(
        "simclr",
        f"--learning_rate_scaling={scaling}",
        f"--batch_size={batch_size}",
        "--train_examples=0",
        examples=10000,
    )
    assert config.record()["resolved"]["peak_learning_rate"] == pytest.approx(expected)
    _, optimizer = train_command.build_model_and_optimizer(config)
    assert optimizer.get_config()["learning_rate"]["config"]["peak_learning_rate"] == (
        pytest.approx(expected)
    )


def test_resolve_derives_steps_warmup_and_recipes():
    config = resolved_config("simsiam", "--warmup_fraction=0.25")
    resolved = config.record()["resolved"]
    assert resolved["image_shape"] == [16, 16, 1] and resolved["stem"] == "small"
    assert resolved["steps_per_epoch"] == 4 and resolved["total_steps"] == 8
    assert resolved["warmup_steps"] == 2
    assert config.recipe.learning_rate == ks.recipes.get("simsiam").learning_rate
    assert config.recipe.optimizer == "sgd"
    triplet = resolved_config("siamese-triplet")
    assert triplet.triplet_batch == (10, 3) and triplet.batch_size == 30
    assert triplet.recipe.optimizer == "adam" and triplet.recipe.weight_decay == 0.0
    assert resolved_config("siamese-triplet", "--optimizer=lars").recipe.optimizer == "lars"


@pytest.mark.parametrize("method", list(methods.METHODS))
def test_every_method_builds_its_model_and_batches(method):
    config = resolved_config(method)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (128, 16, 16, 1)).astype("uint8")
    labels = np.arange(128) % 10
    row = methods.METHODS[method]
    if row.needs_labels:
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    else:
        dataset = tf.data.Dataset.from_tensor_slices(images)
    batches = row.build_batches(config, dataset)
    model, optimizer = train_command.build_model_and_optimizer(config)
    model.compile(optimizer=optimizer)
    monitors = row.build_monitors()
    assert all(isinstance(monitor, keras.callbacks.Callback) for monitor in monitors)
    batch = next(iter(batches))
    if method == "siamese-contrastive":
        (images_a, _), pair_labels = batch
        assert images_a.shape == (32, 16, 16, 1) and pair_labels.shape == (32,)
    elif method in ("siamese-triplet", "siamese-metric"):  # P x K = 10 x 3
        assert batch[0].shape == (30, 16, 16, 1)
    else:
        assert batch.shape == (32, 16, 16, 1)
    assert int(batches.cardinality()) == config.steps_per_epoch
    assert model(images[:2]).shape[0] == 2
    if method == "simsiam":
        assert isinstance(model.optimizer, ks.optimizers.SplitOptimizer)


def test_method_flags_are_defined_once_and_name_their_methods():
    values = train_flag_values()
    for name, (flag, readers) in methods.method_flags().items():
        assert values[name].default == flag.default
        assert f"({', '.join(readers)}) {flag.help}" in values[name].help
    _, readers = methods.method_flags()["siamese_margin"]
    assert readers == ("siamese-contrastive", "siamese-triplet", "siamese-metric")


def toy_row(**changes):
    """A new method made of the SimCLR parts and one flag of its own."""
    toy_flag = methods.MethodFlag(
        flags.DEFINE_float, "toy_weight", 1.5, "Weight of the toy term.", "temperature"
    )
    fields = dict(
        name="toy",
        summary="Toy: SimCLR under another name",
        flags=(*methods.METHODS["simclr"].flags, toy_flag),
        recipe=ks.recipes.get("simclr", learning_rate=0.1),
    )
    return dataclasses.replace(methods.METHODS["simclr"], **{**fields, **changes})


def test_adding_a_method_is_adding_one_row(capsys, monkeypatch):
    monkeypatch.setitem(methods.METHODS, "toy", toy_row())
    assert run_cli("train", "--help") == 0
    text = " ".join(capsys.readouterr().out.split())  # absl wraps the help at 80 columns.
    assert "toy (Toy: SimCLR under another name)" in text
    assert "--toy_weight: (toy) Weight of the toy term." in text
    assert "--temperature: (simclr, toy) NT-Xent temperature." in text
    config = resolved_config("toy", "--toy_weight=2")
    assert config.flags["toy_weight"] == 2.0 and config.recipe.temperature == 2.0
    assert config.recipe.learning_rate == 0.1
    assert isinstance(train_command.build_model_and_optimizer(config)[0], ks.SimCLR)


def test_a_row_without_its_model_class_is_refused_before_training(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(methods.METHODS, "toy", toy_row(model_class="NoSuchModel"))
    assert run_cli("train", "--method=toy", f"--model_dir={tmp_path / 'run'}") == 2
    assert "--method=toy needs keras_siamese.NoSuchModel" in only_error_line(capsys)


def test_rows_sharing_a_flag_name_share_the_flag(monkeypatch):
    other = methods.MethodFlag(
        flags.DEFINE_float, "temperature", 0.5, "Another temperature.", "temperature"
    )
    monkeypatch.setitem(methods.METHODS, "toy", toy_row(flags=(other,)))
    with pytest.raises(ValueError, match="define different flags named 'temperature'"):
        methods.method_flags()


# ----------------------------------------------------------------------------- curves


def test_write_curves_draws_the_csv_logger_history(tmp_path):
    history_path = tmp_path / run_dir.HISTORY
    # Epoch 1 logged twice (a resumed run): the last row wins; nan becomes None.
    history_path.write_text(
        "epoch,loss,val_knn_accuracy\n0,5.0,\n1,4.5,nan\n1,4.0,0.5\n2,3.5,0.6\n"
    )
    history = plots.read_history(history_path)
    assert history == {"loss": [5.0, 4.0, 3.5], "val_knn_accuracy": [None, 0.5, 0.6]}
    assert run_dir.read_history(str(tmp_path)) == history
    png = tmp_path / run_dir.CURVES
    assert plots.write_curves(history_path, png, title="toy") == str(png)
    assert Image.open(png).size == plots.curve_figure_pixels(2)


def test_write_curves_writes_nothing_before_the_first_epoch(tmp_path):
    assert plots.write_curves(tmp_path / "missing.csv", tmp_path / "curves.png") is None
    (tmp_path / "empty.csv").write_text("epoch,loss\n0,nan\n")
    assert plots.write_curves(tmp_path / "empty.csv", tmp_path / "curves.png") is None
    assert not os.path.exists(tmp_path / "curves.png")


# ----------------------------------------------------------------------------- end to end


class Preempted(Exception):
    pass


class Interrupt(keras.callbacks.Callback):
    """Kills training after the first epoch's checkpoints, as a pre-emption would."""

    def on_epoch_end(self, epoch, logs=None):
        raise Preempted(f"after epoch {epoch}")


def history_epochs(model_dir):
    with open(model_dir / run_dir.HISTORY, newline="") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


@pytest.mark.slow
def test_train_resume_evaluate_export(capsys, tmp_path, monkeypatch):
    model_dir = tmp_path / "run"
    train = ["train", "--method=simclr", f"--model_dir={model_dir}", *TINY]
    make_callbacks = train_run.callbacks
    monkeypatch.setattr(train_run, "callbacks", lambda *args: [*make_callbacks(*args), Interrupt()])
    with pytest.raises(Preempted):
        run_cli(*train)
    assert not os.path.exists(model_dir / run_dir.TRAIN_RESULT)
    assert history_epochs(model_dir) == [0]
    config = json.loads((model_dir / run_dir.CONFIG).read_text())
    assert config["method"] == "simclr" and config["resolved"]["steps_per_epoch"] == 4
    # --precision=auto (the default) timed the step of the run's own model in each candidate
    # precision, recorded the faster one with the median seconds of each, and left the global
    # dtype policy as it found it (the probe's, then the training's).
    precision = config["resolved"]["precision"]
    assert config["precision"] == "auto" and precision in ("float32", "mixed_bfloat16")
    seconds = config["resolved"]["precision_seconds_per_step"]
    assert precision in seconds and all(value > 0 for value in seconds.values())
    assert keras.mixed_precision.dtype_policy().name == "float32"
    output = capsys.readouterr().out
    assert "Resolved configuration" in output and "median train step on one batch" in output

    monkeypatch.undo()
    assert run_cli(*train) == 0  # Resumes at the second epoch, in the recorded precision.
    assert f"Precision: {precision} (recorded in config.json" in capsys.readouterr().out
    assert history_epochs(model_dir) == [0, 1]
    assert sorted(os.listdir(model_dir / run_dir.CHECKPOINTS)) == [  # the final one only
        "ckpt-000000008.json",
        "ckpt-000000008.weights.h5",
    ]
    result = json.loads((model_dir / run_dir.TRAIN_RESULT).read_text())
    assert result["epochs"] == 2 and 0.0 <= result["final"]["val_knn_accuracy"] <= 1.0
    assert os.listdir(model_dir / run_dir.LOGS / "train")
    assert Image.open(model_dir / run_dir.PLOTS / "training_curves.png").size == (
        plots.curve_figure_pixels(4)
    )
    assert run_cli(*train) == 0
    assert "has finished; nothing to do" in capsys.readouterr().out

    evaluate = [f"--model_dir={model_dir}", "--memory_examples=200", "--test_examples=100"]
    evaluate += ["--linear_probe_epochs=3", "--plot_points=40", "--knn_k=20", "--noprogress"]
    assert run_cli("evaluate", *evaluate) == 0
    results = json.loads((model_dir / run_dir.EVAL).read_text())
    assert results["memory_examples"] == 200 and results["test_examples"] == 100
    assert 0.0 <= results["knn"]["top1"] <= 1.0 and 0.0 <= results["linear_probe"]["top1"] <= 1.0
    retrieval = results["retrieval"]
    assert retrieval["distance"] == "cosine" and retrieval["queries"] == 100
    assert 0.0 <= retrieval["map@r"] <= 1.0 and retrieval["precision@1"] == retrieval["recall@1"]
    plots_dir = model_dir / run_dir.PLOTS
    assert Image.open(plots_dir / "retrieval_grid.png").size == plots.grid_figure_pixels(8, 8)
    assert Image.open(plots_dir / "embedding_map.png").size == (700, 600)
    tensors = np.loadtxt(model_dir / run_dir.LOGS / plots.PROJECTOR_TENSORS, delimiter="\t")
    # 40 points of the resnet10 width-4 representation: 32 channels averaged over a 2x2 grid
    # (--encoder_grid auto on 16x16 images: the whole last feature map; before the recipe
    # defaults, global average pooling gave 32 features).
    assert tensors.shape == (40, 128)

    export_dir = tmp_path / "saved_models" / "tiny"
    export = ["export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--warmup=false"]
    assert run_cli(*export, "--gallery_examples=20", "--top_k=3", "--calibration_pairs=40") == 0
    assert os.path.isfile(export_dir / "1" / "saved_model.pb")
    served = ks.export.load_for_inference(str(export_dir))
    assert {"serving_default", "search", "verify"} <= set(served.signatures)
    images, _ = ks.datasets.load_arrays("fashion_mnist", "test[:4]")
    images = tf.image.resize(images, (16, 16), antialias=True).numpy().round().astype("uint8")
    trained = keras.saving.load_model(model_dir / run_dir.MODEL)
    expected = tf.math.l2_normalize(trained(images), axis=1).numpy()
    # The reloaded model computes in the recorded precision, the export in float32: bfloat16
    # keeps 8 bits of mantissa (a relative 2**-8), float32 agrees to 1e-4.
    tolerance = 1e-4 if precision == "float32" else 4e-3
    np.testing.assert_allclose(served.embed(images), expected, atol=tolerance)
    assert run_cli(*export, "--version=1") == 2
    assert "already exists" in only_error_line(capsys)
