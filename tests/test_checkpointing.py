"""StepCheckpoint and checkpointing.fit: saves by steps, time and signal; exact resume; a
damaged newest checkpoint falls back to the previous one; a damaged directory says which file.

How exact: a SimCLR run with its random augmenter (SeedGenerator), SGD with momentum and a
seeded shuffled pipeline, stopped by a real SIGTERM in the middle of an epoch and resumed in a
fresh model, ends with weights equal to an uninterrupted run's within 1e-6 (on CPU they are
bitwise equal: the same ops run on the same batches in the same order).
"""

import json
import os
import signal

import keras
import numpy as np
import pytest
from conftest import random_images, tiny_encoder

import keras_siamese as ks
from keras_siamese import checkpointing

BATCH, STEPS_PER_EPOCH, EPOCHS = 8, 4, 3
TOTAL = STEPS_PER_EPOCH * EPOCHS
IMAGES = random_images(BATCH * STEPS_PER_EPOCH, (16, 16, 1), seed=3)


def build_model():
    keras.utils.set_random_seed(0)
    model = ks.SimCLR(tiny_encoder(width=4), projection_dims=(8, 4))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    model.build((None, 16, 16, 1))
    return model


def batches(step):
    return checkpointing.resumable_batches(IMAGES, BATCH, seed=5, step=step)


class SignalAt(keras.callbacks.Callback):
    """Sends this process a signal after global step `step` (counted from the first fit)."""

    def __init__(self, step, signum=signal.SIGTERM):
        super().__init__()
        self.step, self.signum, self.seen = step, signum, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            os.kill(os.getpid(), self.signum)


def train(directory, callbacks=(), **options):
    model = build_model()
    checkpoint = checkpointing.StepCheckpoint(directory, verbose=0, **options)
    checkpointing.fit(
        model,
        batches,
        epochs=EPOCHS,
        steps_per_epoch=STEPS_PER_EPOCH,
        checkpoint=checkpoint,
        callbacks=list(callbacks),
        verbose=0,
    )
    return model, checkpoint


def assert_same_weights(model, reference):
    for got, expected in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    model, _ = train(str(tmp_path_factory.mktemp("reference") / "checkpoints"))
    return model


def test_sigterm_mid_epoch_saves_stops_and_resumes_to_the_same_weights(tmp_path, uninterrupted):
    directory = str(tmp_path / "checkpoints")
    model, checkpoint = train(directory, [SignalAt(6)])  # epoch 1, step 2 of 4
    assert checkpoint.stopped_by == "SIGTERM"
    assert checkpoint.steps_on_disk()[0] == 6  # no step lost
    assert int(model.optimizer.iterations) == 6
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is given back
    resumed, checkpoint = train(directory)
    assert checkpoint.restored["step"] == 6 and checkpoint.stopped_by is None
    assert int(resumed.optimizer.iterations) == TOTAL
    assert_same_weights(resumed, uninterrupted)


def test_checkpoints_every_n_steps_keep_the_two_newest(tmp_path):
    directory = str(tmp_path / "checkpoints")
    _, checkpoint = train(directory, every_steps=5, every_minutes=None, save_at_end=False)
    assert checkpoint.steps_on_disk() == [10, 5]
    assert sorted(os.listdir(directory)) == [
        "ckpt-000000005.json",
        "ckpt-000000005.weights.h5",
        "ckpt-000000010.json",
        "ckpt-000000010.weights.h5",
    ]


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, uninterrupted):
    directory = str(tmp_path / "checkpoints")
    train(directory, [SignalAt(7)], every_steps=3, every_minutes=None)  # saves 3, 6, then 7
    weights = os.path.join(directory, "ckpt-000000007.weights.h5")
    with open(weights, "r+b") as file:  # a kill mid-write of a non-atomic writer
        file.truncate(os.path.getsize(weights) // 2)
    with pytest.warns(UserWarning, match="ckpt-000000007.weights.h5 is damaged"):
        resumed, checkpoint = train(directory, every_steps=3, every_minutes=None)
    assert checkpoint.restored["step"] == 6
    assert_same_weights(resumed, uninterrupted)


def test_no_usable_checkpoint_names_the_files_and_what_to_do(tmp_path):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    (directory / "ckpt-000000004.json").write_text('{"step": 4, "sha256": "00"}')
    (directory / "ckpt-000000004.weights.h5").write_bytes(b"HDF")
    with pytest.raises(checkpointing.CheckpointError, match="ckpt-000000004.weights.h5 is damaged"):
        with pytest.warns(UserWarning):
            train(str(directory))
    with pytest.raises(checkpointing.CheckpointError, match="Delete .* to train again"):
        with pytest.warns(UserWarning):
            train(str(directory))


def test_a_checkpoint_without_its_record_is_not_trusted(tmp_path):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    (directory / "ckpt-000000004.weights.h5").write_bytes(b"partial")  # killed before the JSON
    checkpoint = checkpointing.StepCheckpoint(str(directory))
    assert checkpoint.restore(build_model()) == 0


def test_metadata_records_the_weights_hash(tmp_path):
    directory = str(tmp_path / "checkpoints")
    train(directory, every_steps=TOTAL, every_minutes=None, save_at_end=False)
    record = json.loads(open(os.path.join(directory, f"ckpt-{TOTAL:09d}.json")).read())
    assert record["step"] == TOTAL and len(record["sha256"]) == 64


@pytest.mark.parametrize(
    "arguments, match",
    [
        ({"every_steps": -1}, "every_steps"),
        ({"every_minutes": -2}, "every_minutes"),
        ({"keep": 0}, "keep"),
        ({"signals": ("SIGNOPE",)}, "signals"),
    ],
)
def test_bad_arguments_name_themselves(tmp_path, arguments, match):
    with pytest.raises(ValueError, match=match):
        checkpointing.StepCheckpoint(str(tmp_path), **arguments)


def test_resumable_batches_depend_on_seed_and_step_alone():
    whole = [batch for batch in checkpointing.resumable_batches(IMAGES, BATCH, 5).take(9)]
    resumed = [batch for batch in checkpointing.resumable_batches(IMAGES, BATCH, 5, 6).take(3)]
    for got, expected in zip(resumed, whole[6:], strict=True):
        np.testing.assert_array_equal(got, expected)
    first, second = np.concatenate(whole[:4]), np.concatenate(whole[4:8])
    assert sorted(map(bytes, first)) == sorted(map(bytes, second))  # each epoch: every example
    assert not np.array_equal(first, second)  # in a new order


@pytest.mark.slow
def test_resume_under_a_mirrored_strategy_over_two_replicas(tmp_path):
    """The chief (the one process) writes; the replicas restore the mirrored variables and
    end as an uninterrupted two-replica run (asserted within 1e-6)."""
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "scripts", "checkpoint_replicas.py")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=os.path.dirname(__file__))
    done = subprocess.run(
        [sys.executable, script, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["restored"] == 6 and result["iterations"] == TOTAL
    assert result["difference"] <= 1e-6
