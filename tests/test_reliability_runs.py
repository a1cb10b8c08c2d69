"""Issue 22, items 1-4: a `train` run directory survives kills and damaged files.

1. A finished run whose model.keras is truncated: `evaluate`/`export` print one `error:` line
   naming the file; re-running `train` rewrites it from the final checkpoint (never deletes
   the only good copy); train_result.json holds the last epoch's metrics.
2. A damaged newest checkpoint falls back to the previous one; none usable: one error line.
3. SIGTERM mid-epoch: exit 75 after a checkpoint at the next step; the resumed run ends with
   the weights of an uninterrupted run (bitwise on CPU; asserted within 1e-6).
4. --model_dir spelled otherwise, or the run directory moved, resumes; --data_dir relative or
   absolute is the same folder.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_siamese import cli
from keras_siamese.cli import run_dir

TINY = [
    "--method=simclr",
    "--train_examples=128",
    "--batch_size=32",
    "--encoder_width=4",
    "--image_size=16",
    "--projection_dims=32,16",
    "--noknn_monitor",
    "--strategy=default",
    "--precision=float32",
    "--verbose=0",
    "--noplots",
]


def run_cli(*arguments):
    return cli.main(["keras-siamese", *arguments])


def error_line(capsys):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err[-3000:]
    return lines[0]


def truncate(path, keep=504):
    with open(path, "r+b") as file:
        file.truncate(keep)


def weights(model_dir):
    return keras.saving.load_model(os.path.join(model_dir, run_dir.MODEL)).get_weights()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("finished") / "run"
    assert run_cli("train", f"--model_dir={model_dir}", "--epochs=2", *TINY) == 0
    return model_dir


def test_a_truncated_model_is_named_and_rewritten_from_the_final_checkpoint(
    finished_run, tmp_path, capsys
):
    model_dir = tmp_path / "run"
    shutil.copytree(finished_run, model_dir)
    expected = weights(model_dir)
    truncate(model_dir / run_dir.MODEL)
    capsys.readouterr()
    assert run_cli("evaluate", f"--model_dir={model_dir}") == 2
    line = error_line(capsys)
    assert "model.keras is damaged" in line and "Re-run the same `train" in line
    export = ["export", f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'export'}"]
    assert run_cli(*export) == 2
    assert "model.keras is damaged" in error_line(capsys)
    assert run_cli("train", f"--model_dir={model_dir}", "--epochs=2", *TINY) == 0
    assert "rewriting it from" in capsys.readouterr().out
    assert os.listdir(model_dir / run_dir.CHECKPOINTS)  # the good copy is still there
    for got, want in zip(weights(model_dir), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_train_result_reports_the_last_epoch(finished_run):
    result = json.loads((finished_run / run_dir.TRAIN_RESULT).read_text())
    with open(finished_run / run_dir.HISTORY, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert result["final"]["loss"] == pytest.approx(float(rows[-1]["loss"]))
    assert result["steps"] == 8


def test_a_damaged_newest_checkpoint_falls_back_and_none_usable_is_one_line(
    finished_run, tmp_path, capsys
):
    model_dir = tmp_path / "run"
    shutil.copytree(finished_run, model_dir)
    checkpoints = model_dir / run_dir.CHECKPOINTS
    (model_dir / run_dir.TRAIN_RESULT).unlink()
    truncate(checkpoints / "ckpt-000000008.weights.h5", 1000)
    capsys.readouterr()
    assert run_cli("train", f"--model_dir={model_dir}", "--epochs=2", *TINY) == 2
    line = error_line(capsys)
    assert "ckpt-000000008.weights.h5 is damaged" in line and "Delete" in line


def test_spelling_and_moving_the_run_directory_resume(finished_run, tmp_path, capsys, monkeypatch):
    moved = tmp_path / "elsewhere" / "run0"
    moved.parent.mkdir()
    shutil.copytree(finished_run, moved)
    monkeypatch.chdir(tmp_path / "elsewhere")
    (moved / run_dir.TRAIN_RESULT).unlink()  # as if killed after the last checkpoint
    capsys.readouterr()
    assert run_cli("train", "--model_dir=run0/", "--epochs=2", *TINY) == 0
    result = json.loads((moved / run_dir.TRAIN_RESULT).read_text())
    assert result["steps"] == 8 and "loss" in result["final"]  # nothing trained again
    assert run_cli("train", f"--model_dir={moved}", "--epochs=2", *TINY) == 0
    assert "has finished; nothing to do" in capsys.readouterr().out


def test_data_dir_relative_and_absolute_are_the_same_folder(tmp_path, monkeypatch):
    from keras_siamese.cli import train_command

    folder = tmp_path / "images"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    given = train_command._same_paths({"data_dir": "images/", "eval_data_dir": ""})
    assert given["data_dir"] == os.path.realpath(folder)
    previous = {"data_dir": str(folder), "method": "simclr"}
    values = {"data_dir": given["data_dir"], "method": "simclr"}
    assert train_command._changed_flags(values, previous) == []
    moved = {"data_dir": str(tmp_path / "gone"), "method": "simclr"}
    with pytest.raises(Exception, match="no longer exists"):
        train_command._check_resumable("run", values, moved)


def _train_process(model_dir, *extra):
    command = [sys.executable, "-m", "keras_siamese", "train", f"--model_dir={model_dir}"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(
        [*command, "--epochs=3", *TINY, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_sigterm_checkpoints_at_the_next_step_and_resumes_to_the_same_weights(tmp_path):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    every_step = "--checkpoint_every_steps=1"
    first = _train_process(reference)
    second = _train_process(interrupted, every_step)
    marker = interrupted / run_dir.CHECKPOINTS / "ckpt-000000005.json"  # epoch 1, step 1 of 4
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert second.poll() is None, second.stdout.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second.send_signal(signal.SIGTERM)
    output = second.communicate(timeout=300)[0]
    assert second.returncode == 75, output[-3000:]
    assert "Stopped by SIGTERM" in output and "to resume at step" in output
    assert not (interrupted / run_dir.TRAIN_RESULT).exists()
    resumed = _train_process(interrupted, every_step)
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output[-3000:]
    assert first.wait(timeout=300) == 0
    # Exact: same permutation per (seed, epoch), same augmenter seeds, same optimizer state.
    for got, want in zip(weights(interrupted), weights(reference), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    with open(interrupted / run_dir.HISTORY, newline="") as file:
        assert [row["epoch"] for row in csv.DictReader(file)] == ["0", "1", "2"]
