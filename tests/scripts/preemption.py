"""A small SimCLR run with BackupAndRestore that can be killed and restarted.

Run by tests/test_preemption.py. Every training step appends a JSON line to
MODEL_DIR/steps.jsonl (after the backup callback has run for that step); with
PAUSE_AT_STEP the run stops after that step, writes MODEL_DIR/paused and sleeps, so the
test kills it with SIGKILL at a known point mid-epoch. At the end the run exports once
and writes its final weights to MODEL_DIR/final.npz.

Usage: python preemption.py MODEL_DIR EXPORT_DIR [PAUSE_AT_STEP]
"""

import json
import os
import sys
import time

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from conftest import random_images, tiny_encoder  # noqa: E402

import keras_siamese as ks  # noqa: E402
from keras_siamese import distribute  # noqa: E402

BATCH = 8
STEPS_PER_EPOCH = 3
EPOCHS = 4


class FlipSecondHalf(keras.layers.Layer):
    """Deterministic views, so a resumed run can be compared with an uninterrupted one."""

    def call(self, images, training=None):
        images = tf.cast(images, tf.float32) / 255.0
        first, second = tf.split(images, 2, axis=0)
        return tf.concat([first, tf.reverse(second, axis=[2])], axis=0)


class StepLog(keras.callbacks.Callback):
    """Appends one JSON line per event to `path`, flushed to disk before training goes on."""

    def __init__(self, path, pause_at_step=None):
        super().__init__()
        self.path = path
        self.pause_at_step = pause_at_step
        self.epoch = None

    def write(self, **event):
        with open(self.path, "a") as file:
            file.write(json.dumps(event) + "\n")
            file.flush()
            os.fsync(file.fileno())

    def on_train_begin(self, logs=None):
        self.write(event="start", iterations=int(self.model.optimizer.iterations))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations)
        self.write(event="step", iterations=step, epoch=self.epoch, batch=batch)
        if step == self.pause_at_step:
            with open(os.path.join(os.path.dirname(self.path), "paused"), "w") as file:
                file.write(str(step))
            time.sleep(600)  # the test kills the process here


def main(model_dir, export_dir, pause_at_step=None):
    os.makedirs(model_dir, exist_ok=True)
    keras.utils.set_random_seed(0)
    model = ks.SimCLR(
        tiny_encoder(), augmenter=FlipSecondHalf(), projection_dims=(16, 8), temperature=0.5
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    images = random_images(BATCH * STEPS_PER_EPOCH, (16, 16, 1), seed=3)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(BATCH, drop_remainder=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(
            distribute.worker_directory(os.path.join(model_dir, "backup")), save_freq="epoch"
        ),
        StepLog(os.path.join(model_dir, "steps.jsonl"), pause_at_step),
    ]
    model.fit(dataset, epochs=EPOCHS, callbacks=callbacks, verbose=0)
    if distribute.is_chief():
        ks.export.export_for_serving(model, export_dir)
    np.savez(os.path.join(model_dir, "final.npz"), *model.get_weights())
    StepLog(os.path.join(model_dir, "steps.jsonl")).write(
        event="end", iterations=int(model.optimizer.iterations)
    )


if __name__ == "__main__":
    pause = int(sys.argv[3]) if len(sys.argv) > 3 else None
    main(sys.argv[1], sys.argv[2], pause)
