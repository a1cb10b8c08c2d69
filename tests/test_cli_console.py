"""The command line's console: TensorFlow's C++ lines and absl's INFO lines (the export's run to
thousands of characters) stay off unless asked for with `--verbosity`, and the logging
levels of the calling process are restored when `main` returns."""

import json
import logging
import pathlib

import pytest
import tensorflow as tf
from absl import logging as absl_logging
from conftest import run_module

from keras_siamese import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIGNATURE_INFO = "contains input name(s)"  # absl INFO from tf.saved_model, one per signature


@pytest.fixture
def absl_at_info():
    """absl at INFO, as a program that asked for it: the export's INFO lines would show."""
    before = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    yield
    absl_logging.set_verbosity(before)


def levels():
    return (
        absl_logging.get_verbosity(),
        logging.getLogger("absl").level,
        logging.getLogger("tensorflow").level,
        logging.root.level,
    )


@pytest.mark.parametrize(
    "arguments, rest, verbosity",
    [
        (["train", "--epochs=1"], ["train", "--epochs=1"], None),
        (["train", "--verbosity=1", "--epochs=1"], ["train", "--epochs=1"], "1"),
        (["-v", "0", "export"], ["export"], "0"),
        (["export", "-v=info", "--v=-2"], ["export"], "-2"),  # the last one wins
        (["train", "--verbosity"], ["train"], ""),
    ],
)
def test_verbosity_is_taken_out_of_the_command_line(arguments, rest, verbosity):
    assert cli.split_verbosity(arguments) == (rest, verbosity)


def test_the_console_is_quiet_while_a_command_runs_and_restored_after(absl_at_info):
    before = levels()
    with cli.console_logging(None):
        assert absl_logging.get_verbosity() == absl_logging.WARNING
        assert logging.getLogger("absl").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("tensorflow").getEffectiveLevel() == logging.ERROR
        assert tf.get_logger().getEffectiveLevel() == logging.ERROR
    assert levels() == before


def test_an_explicit_verbosity_is_respected(absl_at_info):
    before = levels()
    with cli.console_logging(cli.parse_verbosity("debug")):
        assert absl_logging.get_verbosity() == absl_logging.DEBUG
        assert logging.getLogger("tensorflow").level == before[2]  # left alone
    assert levels() == before


def test_a_bad_verbosity_fails_with_one_line(capsys):
    assert cli.main(["keras-siamese", "train", "--verbosity=loud"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --verbosity must be an integer (1 debug, 0 info, -1 warning")
    assert "Received: --verbosity=loud" in line


def test_help_names_the_verbosity_flag(capsys):
    assert cli.main(["keras-siamese", "export", "--help"]) == 0
    assert "-v,--verbosity: absl log verbosity" in capsys.readouterr().out


def assert_readable(text):
    long = [line[:120] for line in text.splitlines() if len(line) > 300]
    assert not long, long
    assert SIGNATURE_INFO not in text
    assert "cpu_feature_guard" not in text  # a C++ INFO line: TF_CPP_MIN_LOG_LEVEL=2
    # TensorFlow 2.21's start-up lines, printed whatever the level: filtered by `cli.run`.
    assert "oneDNN custom operations are on" not in text
    assert "All log messages before absl::InitializeLog()" not in text


@pytest.mark.slow
def test_train_and_export_print_short_lines_only(tmp_path):
    model_dir = tmp_path / "run"
    stdout, stderr = run_module(
        "train",
        f"--model_dir={model_dir}",
        "--train_examples=256",
        "--batch_size=32",
        "--epochs=1",
        "--encoder_width=4",
        "--projection_dims=32,16",
        "--knn_memory_examples=128",
        "--knn_query_examples=64",
        "--knn_k=10",
        "--strategy=default",
        "--plots=false",
        "--precision=float32",  # the --precision=auto probe and its line: tests/test_cli.py
    )
    assert_readable(stdout + stderr)
    (line,) = [line for line in stdout.splitlines() if line.startswith("Precision: ")]
    assert line.startswith("Precision: float32")
    assert json.loads((model_dir / "config.json").read_text())["precision"] == "float32"

    export = ["export", f"--model_dir={model_dir}", "--warmup=false", "--calibration_pairs=20"]
    stdout, stderr = run_module(*export, f"--export_dir={tmp_path / 'quiet'}")
    assert_readable(stdout + stderr)
    # Asked for, absl's INFO lines are there (the export writes one per signature).
    _, stderr = run_module(*export, f"--export_dir={tmp_path / 'verbose'}", "-v", "0")
    assert SIGNATURE_INFO in stderr
