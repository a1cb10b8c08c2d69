"""A training process killed with SIGKILL mid-run resumes from its backup when restarted.

tests/scripts/preemption.py trains 4 epochs of 3 steps with Keras' BackupAndRestore (a
backup at every epoch end). The first run is killed at step 5 (mid-epoch 2, after the
backup of epoch 1); the restarted run must restore that backup (optimizer iteration 3,
momentum included), train epochs 2-4 only, export exactly once, and end with the weights
of an uninterrupted run: every step of the schedule is applied once to the final model.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import in_replica_process

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "preemption.py")
STEPS_PER_EPOCH = 3
EPOCHS = 4
PAUSE_AT_STEP = 5  # mid-epoch: epoch index 1, batch index 1
TIMEOUT_SECONDS = 300


def command(model_dir, export_dir, *extra):
    return [sys.executable, SCRIPT, str(model_dir), str(export_dir), *map(str, extra)]


def environment() -> dict:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", KERAS_BACKEND="tensorflow")
    env.pop("TF_CONFIG", None)
    return env


def events(model_dir) -> list[dict]:
    with open(os.path.join(model_dir, "steps.jsonl")) as file:
        return [json.loads(line) for line in file]


def final_weights(model_dir) -> list[np.ndarray]:
    with np.load(os.path.join(model_dir, "final.npz")) as arrays:
        return [arrays[f"arr_{index}"] for index in range(len(arrays.files))]


def wait_for(path, process, timeout):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if process.poll() is not None:
            raise AssertionError(f"the run ended before pausing:\n{process.stdout.read()[-5000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {path} after {timeout} s")
        time.sleep(0.2)


@pytest.mark.slow
@in_replica_process
def test_killed_run_resumes_from_its_backup_and_exports_once(tmp_path):
    model_dir, export_dir = tmp_path / "run", tmp_path / "export"
    reference_dir, reference_export = tmp_path / "uninterrupted", tmp_path / "reference_export"
    processes = []
    try:
        # The uninterrupted reference runs alongside the run that will be killed.
        reference = subprocess.Popen(
            command(reference_dir, reference_export),
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(reference)
        first = subprocess.Popen(
            command(model_dir, export_dir, PAUSE_AT_STEP),
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(first)
        wait_for(model_dir / "paused", first, TIMEOUT_SECONDS)
        first.kill()  # SIGKILL: no callback, no cleanup, no export
        first.wait(timeout=60)
        assert first.returncode == -9
        assert not export_dir.exists() or not os.listdir(export_dir)
        assert os.path.exists(model_dir / "backup" / "training_metadata.json")

        second = subprocess.run(
            command(model_dir, export_dir),
            env=environment(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
        )
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-5000:]
        log, _ = reference.communicate(timeout=TIMEOUT_SECONDS)
        assert reference.returncode == 0, log[-5000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()

    log = events(model_dir)
    starts = [index for index, event in enumerate(log) if event["event"] == "start"]
    assert len(starts) == 2
    killed, resumed = log[starts[0] : starts[1]], log[starts[1] :]
    killed_steps = [event["iterations"] for event in killed if event["event"] == "step"]
    resumed_steps = [event for event in resumed if event["event"] == "step"]
    assert killed[0]["iterations"] == 0
    assert killed_steps == list(range(1, PAUSE_AT_STEP + 1))
    # The restart restores the backup of the last finished epoch (iteration 3) and goes on
    # from there: the epoch counter continues, and the unsaved steps 4-5 of the killed run
    # are redone from the backup, not added on top of it.
    backed_up = (PAUSE_AT_STEP // STEPS_PER_EPOCH) * STEPS_PER_EPOCH
    assert resumed[0]["iterations"] == backed_up
    total = EPOCHS * STEPS_PER_EPOCH
    assert [event["iterations"] for event in resumed_steps] == list(range(backed_up + 1, total + 1))
    assert resumed_steps[0]["epoch"] == PAUSE_AT_STEP // STEPS_PER_EPOCH
    assert resumed[-1] == {"event": "end", "iterations": total}
    assert not (model_dir / "backup").exists()  # deleted once training completed

    weights, expected = final_weights(model_dir), final_weights(reference_dir)
    for value, reference_value in zip(weights, expected, strict=True):
        assert np.all(np.isfinite(value))
        np.testing.assert_allclose(value, reference_value, rtol=1e-5, atol=1e-6)
    assert sorted(os.listdir(export_dir)) == ["1"]  # one version, no temporary leftovers
    assert os.path.exists(export_dir / "1" / "saved_model.pb")
