"""Issue 25: a person sees progress, and no framework chatter, on the console.

`train --verbose=auto` (the default) is Keras' progress bar within each epoch on a terminal
and one line per epoch in a log file or a pipe; 0, 1 and 2 keep their meaning. Every command
(`train`, `evaluate`, `export`, `embed`) keeps TensorFlow's C++ start-up lines off the console:
TensorFlow 2.21 prints them through absl before `absl::InitializeLog()`, whatever
`TF_CPP_MIN_LOG_LEVEL` says, so the entry point filters them while TensorFlow is imported.
The commands run here as a user runs them: `python -m keras_siamese` in a subprocess, its
output in a pipe, `TF_CPP_MIN_LOG_LEVEL` unset.
"""

import io
import os
import pathlib
import sys

import conftest
import numpy as np
import pytest
from PIL import Image

from keras_siamese import cli
from keras_siamese.cli import progress_lines, train_command, train_flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The start-up lines of TensorFlow 2.21 on a CPU (the issue's), exactly as they begin.
CHATTER = (
    "oneDNN custom operations are on",
    "cpu_feature_guard",
    "All log messages before absl::InitializeLog()",
)
TINY_RUN = [
    "--method=simclr",
    "--train_examples=128",
    "--batch_size=32",
    "--epochs=2",
    "--encoder_width=4",
    "--image_size=16",
    "--projection_dims=32,16",
    "--noknn_monitor",
    "--strategy=default",
    "--precision=float32",
    "--noplots",
]


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Closed(io.StringIO):
    def isatty(self):
        raise ValueError("I/O operation on closed file.")


# ------------------------------------------------------------------------- train --verbose


@pytest.mark.parametrize(
    "stream, verbose",
    [(Terminal(), 1), (io.StringIO(), 2), (Closed(), 2), (object(), 2)],
    ids=["terminal", "pipe", "closed", "no-isatty"],
)
def test_auto_is_the_progress_bar_on_a_terminal_and_a_line_per_epoch_elsewhere(stream, verbose):
    assert progress_lines.fit_verbose("auto", stream) == verbose


@pytest.mark.parametrize("flag, verbose", [("0", 0), ("1", 1), ("2", 2), (0, 0), (2, 2)])
@pytest.mark.parametrize("stream", [Terminal(), io.StringIO()], ids=["terminal", "pipe"])
def test_explicit_verbose_values_keep_their_meaning(flag, verbose, stream):
    assert progress_lines.fit_verbose(flag, stream) == verbose


def test_auto_looks_at_standard_output(monkeypatch):
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert progress_lines.fit_verbose("auto") == 1
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert progress_lines.fit_verbose("auto") == 2


def test_verbose_defaults_to_auto_and_any_value_resumes_a_run(capsys):
    values = train_flags.flag_values("--method=simclr", "--model_dir=runs/x")
    assert values["verbose"] == "auto"
    for recorded in ("auto", "0", "1", "2"):  # config.json records the flag as given
        assert train_command._changed_flags(values, {**values, "verbose": recorded}) == []
    assert cli.main(["keras-siamese", "train", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--verbose: <auto|0|1|2>: Keras fit's console output: auto (1 when" in help_text
    assert "(default: 'auto')" in help_text.split("--verbose:")[1]


# ------------------------------------------------------------------- the start-up filter

START_UP = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796606115.644010   19852 port.cc:153] oneDNN custom operations are on.\n"
    "2024-01-31 12:00:00.000000: I tensorflow/core/platform/cpu_feature_guard.cc:182] "
    "This TensorFlow binary is optimized.\n"
    "W0000 00:00:1796606115.700000   19852 a.cc:1] a warning\n"
    "E0000 00:00:1796606119.518006   19852 util.cc:131] an error\n"
    "a line of the program\n"
)


@pytest.mark.parametrize(
    "level, kept",
    [
        (0, [0, 1, 2, 3, 4, 5]),
        (1, [0, 3, 4, 5]),
        (2, [4, 5]),  # TF_CPP_MIN_LOG_LEVEL=2, the entry point's default
        (3, [5]),
    ],
)
def test_start_up_lines_are_kept_by_severity_as_tf_cpp_min_log_level_says(level, kept):
    lines = START_UP.splitlines(keepends=True)
    assert cli.start_up_lines_kept(START_UP, level) == "".join(lines[i] for i in kept)


# ------------------------------------------------------------------ commands, end to end


def run_module(*arguments):
    """`conftest.run_module`'s output, standard output and error together."""
    return "".join(conftest.run_module(*arguments, timeout=300))


def assert_no_chatter(output):
    assert [text for text in CHATTER if text in output] == [], output[-3000:]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The directory of a tiny SimCLR run, trained in this process (TensorFlow is loaded)."""
    model_dir = tmp_path_factory.mktemp("progress") / "run"
    arguments = ["keras-siamese", "train", f"--model_dir={model_dir}", *TINY_RUN, "--verbose=0"]
    assert cli.main(arguments) == 0
    return model_dir


@pytest.mark.slow  # a whole training in a fresh process (about 11 s on 2 idle cores)
def test_train_in_a_pipe_prints_one_line_per_epoch_and_no_chatter(tmp_path):
    output = run_module("train", f"--model_dir={tmp_path / 'run'}", *TINY_RUN)
    assert_no_chatter(output)
    epochs = [line for line in output.splitlines() if line.startswith("4/4 - ")]
    assert len(epochs) == 2, output[-3000:]  # 128 images / 32: 4 steps, one line per epoch
    assert "\r" not in output and "\b" not in output  # no redrawn progress bar


def test_evaluate_prints_no_chatter(tiny_run):
    model_dir = tiny_run
    evaluate = ["--memory_examples=128", "--test_examples=64", "--nolinear_probe"]
    evaluate += ["--noretrieval", "--noplots", "--noprogress"]
    output = run_module("evaluate", f"--model_dir={model_dir}", *evaluate)
    assert_no_chatter(output)
    assert "kNN top-1" in output


def test_export_prints_no_chatter(tiny_run, tmp_path):
    model_dir = tiny_run
    export_dir = tmp_path / "export"
    output = run_module(
        "export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--warmup=false"
    )
    assert_no_chatter(output)
    assert os.listdir(export_dir)


@pytest.mark.slow  # the same entry point as evaluate's and export's
def test_embed_prints_no_chatter(tiny_run, tmp_path):
    model_dir = tiny_run
    for index in range(3):
        pixels = np.random.default_rng(index).integers(0, 256, (16, 16), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{index}.png")
    output_dir = tmp_path / "vectors"
    output = run_module(
        "embed", f"--model_dir={model_dir}", f"--data_dir={tmp_path}", f"--output={output_dir}"
    )
    assert_no_chatter(output)
    assert np.load(output_dir / "embeddings.npy").shape[0] == 3


# ------------------------------------------------------- evaluate's progress (features, probe)


class Counter:
    """A progress object as `Progress` is one: counts the updates and the items reported."""

    def __init__(self):
        self.updates = []

    def update(self, count):
        self.updates.append(count)


def test_features_and_probe_report_to_a_given_progress_object_or_callable(capsys):
    import keras

    from keras_siamese import evaluation

    encoder = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten()])
    images = np.arange(5 * 4, dtype="float32").reshape(5, 2, 2, 1)
    data = (images, np.array([0, 1, 0, 1, 0]))
    counter = Counter()
    features, _ = evaluation.extract_features(
        encoder, data, batch_size=2, progress=counter, input_scale=1.0
    )
    assert counter.updates == [2, 2, 1] and features.shape == (5, 4)  # examples per batch
    reported = []
    extractor = evaluation.FeatureExtractor(encoder, input_scale=1.0)
    extractor(data, batch_size=4, progress=reported.append)  # a callable works too
    assert reported == [4, 1]
    epochs = Counter()
    evaluation.linear_probe_on_features(
        features, data[1], features, data[1], epochs=3, progress=epochs
    )
    assert epochs.updates == [1, 1, 1]
    assert "\r" not in "".join(capsys.readouterr())  # no tqdm bar beside the given object
    with pytest.raises(TypeError, match="Argument `progress` must be True or False"):
        evaluation.extract_features(encoder, data, progress="yes", input_scale=1.0)
    with pytest.raises(TypeError, match="Received: progress='yes'"):
        evaluation.linear_probe_on_features(features, data[1], features, data[1], progress="yes")


def test_progress_with_an_unknown_total_writes_its_count_when_closed():
    stream = io.StringIO()
    progress = progress_lines.Progress(None, "test features", stream=stream)
    progress.update(64)
    assert stream.getvalue() == ""
    progress.close()
    assert stream.getvalue().startswith("test features: 64 images (")
    stopped = io.StringIO()  # a known total stopped short: its last count still shows
    progress = progress_lines.Progress(100, "linear probe", stream=stopped, unit="epoch")
    progress.update(15)
    progress.close()
    assert stopped.getvalue().splitlines()[-1].startswith("linear probe:  15% (15/100 epochs, ")


def test_evaluate_in_a_pipe_prints_plain_progress_lines(tiny_run):
    evaluate = ["--memory_examples=64", "--test_examples=32", "--linear_probe_epochs=20"]
    evaluate += ["--batch_size=16", "--noretrieval", "--noplots"]
    output = run_module("evaluate", f"--model_dir={tiny_run}", *evaluate)
    assert "\r" not in output and "\b" not in output, output[-3000:]  # no redrawn tqdm bar
    lines = output.splitlines()
    for name, last in [
        ("memory features", "100% (64/64 images, "),
        ("test features", "100% (32/32 images, "),
        ("linear probe", "100% (20/20 epochs, "),
    ]:
        mine = [line for line in lines if line.startswith(f"{name}: ")]
        assert 1 <= len(mine) <= progress_lines.LINES, output[-3000:]
        assert mine[-1] == f"{name}: {last}" + mine[-1].split(", ")[-1], output[-3000:]
    assert "Linear probe: {" in output
