"""A time budget: durations, steps in a budget by hand, the timed step, `train --time_budget`
refused before TensorFlow, and one tiny budgeted run that records its steps, trains exactly
them and resumes without timing again."""

import json

import keras
import numpy as np
import pytest
from absl import app
from test_cli_startup import heavy_imports, run_python

import keras_siamese as ks
from keras_siamese import cli
from keras_siamese.cli import data, run_config, run_dir, train_flags, train_precision, train_run
from keras_siamese.recipes import parse_duration, steps_in_budget

# ----------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("600", 600.0),
        ("90s", 90.0),
        ("10m", 600.0),
        ("1.5h", 5400.0),
        (" 2 M ", 120.0),
        ("0.5", 0.5),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["abc", "", "0", "0m", "-5", "10x", "10 min", "1e3", "inf", "h"])
def test_parse_duration_refuses_what_is_not_a_positive_duration(text):
    with pytest.raises(
        ValueError, match=rf"`text` must be a positive duration.*Received: text={text!r}"
    ):
        parse_duration(text)


def test_parse_duration_refuses_a_number():
    with pytest.raises(TypeError, match=r"`text` must be a string. Received: text=600"):
        parse_duration(600)


def test_the_flag_takes_none_or_a_duration():
    assert run_config.budget_seconds("none") is None
    assert run_config.budget_seconds("10m") == 600.0
    with pytest.raises(app.UsageError, match=r"--time_budget takes none or .*--time_budget=abc$"):
        run_config.budget_seconds("abc")


# ----------------------------------------------------------------------------- steps in a budget


@pytest.mark.parametrize(
    "arguments, steps",
    [
        ((600, 0.4), 1500),  # 600 / 0.4
        ((600, 0.4, 20), 1450),  # (600 - 20) / 0.4
        ((600, 0.4, 20, 1000), 1000),  # capped
        ((600, 0.4, 20, 2000), 1450),  # the cap is not reached
        ((10, 3), 3),  # 3.33 steps: whole steps only, rounded down
        ((0.3, 0.1), 3),  # 2.9999999999999996 in floats: still 3
        ((5, 1, 10), 1),  # the overhead alone exceeds the budget: one step
        ((0.01, 1), 1),  # less than a step: one step
    ],
)
def test_steps_in_budget(arguments, steps):
    assert steps_in_budget(*arguments) == steps


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (
            (0, 1),
            ValueError,
            r"`budget_seconds` must be finite and > 0. Received: budget_seconds=0",
        ),
        ((60, 0), ValueError, r"`step_seconds` must be finite and > 0. Received: step_seconds=0"),
        ((60, float("inf")), ValueError, r"Received: step_seconds=inf"),
        ((60, 1, -1), ValueError, r"`overhead_seconds` must be finite and >= 0"),
        ((60, 1, 0, 0), ValueError, r"`max_steps` must be >= 1. Received: max_steps=0"),
        ((60, 1, 0, 2.5), TypeError, r"`max_steps` must be an int or None"),
        (("60", 1), TypeError, r"`budget_seconds` must be a number of seconds"),
    ],
)
def test_steps_in_budget_refuses_bad_arguments(arguments, error, match):
    with pytest.raises(error, match=match):
        steps_in_budget(*arguments)


# ----------------------------------------------------------------------------- the run's steps


def budget_config(*arguments, examples=1024):
    """A resolved run of 16 steps per epoch (1024 examples, batches of 64), no data read."""
    values = train_flags.flag_values(
        "--model_dir=unused", "--batch_size=64", f"--train_examples={examples}", *arguments
    )
    return run_config.resolve(
        values, data.DatasetInfo("fashion_mnist", (28, 28, 1), 10, None, 60000)
    )


def never():
    raise AssertionError("not timed")


def test_with_steps_trains_whole_epochs_or_one_short_epoch():
    config = budget_config("--epochs=100")
    assert config.steps_per_epoch == 16 and config.total_steps == 1600
    six = run_config.with_steps(config, 100)  # 6.25 epochs: 6 whole ones
    assert (six.recipe.epochs, six.steps_per_epoch, six.total_steps) == (6, 16, 96)
    assert six.knn_every == 1  # 6 // 4, as the epochs decide it
    short = run_config.with_steps(config, 10)  # less than an epoch: one epoch of 10 steps
    assert (short.recipe.epochs, short.steps_per_epoch, short.total_steps) == (1, 10, 10)
    assert config.record()["resolved"]["total_steps"] == 1600  # the config itself is unchanged


def test_budget_divides_by_the_step_time_and_records_it():
    config = budget_config("--time_budget=10s")  # --epochs=auto: the budget alone decides
    budgeted, record, line = train_precision.budget(
        config, None, "float32", (0.1, 2.0), never, never
    )
    # (10 - 2) / 0.1 = 80 steps = 5 epochs of 16.
    assert (budgeted.recipe.epochs, budgeted.total_steps) == (5, 80)
    assert record == {
        "budget_seconds": 10.0,
        "seconds_per_step": 0.1,
        "first_step_seconds": 2.0,
        "steps_in_budget": 80,
        "steps": 80,
        "capped_by_epochs": False,
        "estimated_seconds": 10.0,
    }
    assert line.startswith(
        "Time budget 10s: 100 ms/step (timed by --precision=auto; first step 2.0 s) -> 80 steps "
        "(5 epochs of 16 steps), about 10 s ("
    )
    assert "kNN monitor" in line and "whole epochs" not in line


def test_budget_rounds_to_whole_epochs_and_is_capped_by_given_epochs():
    config = budget_config("--time_budget=1m", "--epochs=3")  # 48 steps at most
    budgeted, record, line = train_precision.budget(
        config, None, "float32", (0.1, 0.0), never, never
    )
    assert budgeted.total_steps == 48 and record["steps_in_budget"] == 600
    assert record["capped_by_epochs"] and "--epochs=3 caps it" in line
    config = budget_config("--time_budget=9s", "--epochs=300")
    budgeted, record, line = train_precision.budget(
        config, None, "float32", (0.1, 0.0), never, never
    )
    assert (record["steps_in_budget"], budgeted.total_steps) == (90, 80)  # 5 whole epochs
    assert "whole epochs" in line and not record["capped_by_epochs"]


def test_a_budget_shorter_than_the_first_step_trains_one_step():
    config = budget_config("--time_budget=1s")
    budgeted, record, line = train_precision.budget(
        config, None, "float32", (0.1, 2.0), never, never
    )
    assert (budgeted.recipe.epochs, budgeted.steps_per_epoch, budgeted.total_steps) == (1, 1, 1)
    assert "-> 1 step (1 epoch of 1 step), about 2 s (over the budget" in line


def test_budget_times_the_step_in_the_given_precision(monkeypatch):
    timed = []

    def step_time(policy, build_model, batch):
        timed.append(policy)
        return 0.5, 1.0

    monkeypatch.setattr(train_precision, "step_time", step_time)
    config = budget_config("--time_budget=9s", "--precision=mixed_bfloat16")
    budgeted, record, line = train_precision.budget(
        config, None, "mixed_bfloat16", None, never, never
    )
    assert timed == ["mixed_bfloat16"] and budgeted.total_steps == 16  # (9 - 1) / 0.5
    assert "500 ms/step (timed; first step 1.0 s)" in line


def test_a_resumed_run_keeps_its_recorded_steps():
    config = budget_config("--time_budget=10s")
    _, record, _ = train_precision.budget(config, None, "float32", (0.1, 2.0), never, never)
    previous = {"time_budget": "10s", "resolved": {"time_budget": record}}
    budgeted, again, line = train_precision.budget(config, previous, "float32", None, never, never)
    assert budgeted.total_steps == 80 and again == record
    assert line == (
        "Time budget 10s: 80 steps (5 epochs of 16 steps), recorded in config.json "
        "(a resumed run keeps them)."
    )


def test_no_budget_leaves_the_epochs():
    config = budget_config("--epochs=2")
    assert train_precision.budget(config, None, "float32", None, never, never) == (
        config,
        None,
        None,
    )


# ----------------------------------------------------------------------------- the timed step


def test_time_train_step_times_the_first_step_and_the_median_of_the_next():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    batch = (np.ones((16, 8), "float32"), np.zeros((16, 1), "float32"))
    step, first = ks.distribute.time_train_step(model, batch, steps=3)
    assert 0 < step and 0 < first
    assert int(model.optimizer.iterations.numpy()) == 4  # the first and 3 timed
    with pytest.raises(ValueError, match=r"`steps` must be a positive integer. Received: steps=0"):
        ks.distribute.time_train_step(model, batch, steps=0)


def test_fastest_precision_returns_the_first_steps_when_asked():
    def build_model():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        return model

    batch = (np.ones((16, 8), "float32"), np.zeros((16, 1), "float32"))
    name, seconds, firsts = ks.distribute.fastest_precision(
        build_model, batch, ("float32", "bfloat16"), rounds=1, return_first_seconds=True
    )
    assert name in seconds and set(firsts) == set(seconds) == {"float32", "bfloat16"}
    assert all(value > 0 for value in firsts.values())


# ----------------------------------------------------------------------------- the command


def test_the_flag_is_refused_before_tensorflow(tmp_path):
    code, stdout, stderr, modules = run_python(
        "-m", "keras_siamese", "train", "--time_budget=abc", f"--model_dir={tmp_path / 'x'}"
    )
    assert code == 2, stderr[-2000:]
    lines = [line for line in (stdout + stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "--time_budget=abc" in lines[0], lines
    assert "seconds (600) or a number with s, m or h" in lines[0]
    assert heavy_imports(modules) == []


class Preempted(Exception):
    pass


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise Preempted(f"after epoch {epoch}")


TINY_BUDGET = [
    "--method=simclr",
    "--train_examples=1024",
    "--batch_size=64",
    "--epochs=200",
    "--encoder_width=4",
    "--image_size=16",
    "--projection_dims=32,16",
    "--precision=float32",
    "--time_budget=10s",
    "--knn_monitor=false",
    "--plots=false",
    "--strategy=default",
    "--verbose=0",
]


@pytest.mark.slow
def test_a_budgeted_run_trains_its_recorded_steps_and_resumes_without_timing(
    tmp_path, capsys, monkeypatch
):
    model_dir = tmp_path / "run"
    train = ["keras-siamese", "train", f"--model_dir={model_dir}", *TINY_BUDGET]
    make_callbacks = train_run.callbacks
    monkeypatch.setattr(train_run, "callbacks", lambda *args: [*make_callbacks(*args), Interrupt()])
    with pytest.raises(Preempted):
        cli.main(train)
    output = capsys.readouterr().out
    assert "Time budget 10s: " in output and " ms/step (timed; first step " in output
    config = json.loads((model_dir / run_dir.CONFIG).read_text())
    resolved = config["resolved"]
    budget = resolved["time_budget"]
    assert config["time_budget"] == "10s" and budget["budget_seconds"] == 10.0
    assert budget["seconds_per_step"] > 0 and budget["first_step_seconds"] > 0
    assert budget["steps"] == resolved["total_steps"] < 200 * 16  # below the epochs' count
    epochs = resolved["recipe"]["epochs"]
    assert resolved["steps_per_epoch"] * epochs == budget["steps"]

    monkeypatch.undo()
    monkeypatch.setattr(ks.distribute, "time_train_step", lambda *args, **kwargs: never())
    monkeypatch.setattr(ks.distribute, "fastest_precision", lambda *args, **kwargs: never())
    assert cli.main(train) == 0  # resumes: no timing, the recorded steps
    assert "recorded in config.json (a resumed run keeps them)" in capsys.readouterr().out
    result = json.loads((model_dir / run_dir.TRAIN_RESULT).read_text())
    assert result["steps"] == budget["steps"] and result["epochs"] == epochs
    assert json.loads((model_dir / run_dir.CONFIG).read_text())["resolved"] == resolved
