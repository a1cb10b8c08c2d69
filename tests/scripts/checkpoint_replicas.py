"""StepCheckpoint under a MirroredStrategy over 2 logical CPUs (run by tests/test_checkpointing.py).

Trains a tiny SimCLR uninterrupted, then the same run stopped by SIGTERM mid-epoch and resumed
in a fresh model under the strategy; prints the max weight difference as JSON.

Usage: python checkpoint_replicas.py DIRECTORY
"""

import json
import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from logical_cpus import use_logical_cpus  # noqa: E402

DEVICES = use_logical_cpus(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import test_checkpointing as cases  # noqa: E402

from keras_siamese import checkpointing  # noqa: E402


def train(directory, callbacks=()):
    strategy = tf.distribute.MirroredStrategy(DEVICES)
    with strategy.scope():
        model = cases.build_model()
    checkpoint = checkpointing.StepCheckpoint(directory, verbose=0)
    checkpointing.fit(
        model,
        cases.batches,
        epochs=cases.EPOCHS,
        steps_per_epoch=cases.STEPS_PER_EPOCH,
        checkpoint=checkpoint,
        callbacks=list(callbacks),
        verbose=0,
    )
    return model, checkpoint


def main(directory):
    reference, _ = train(os.path.join(directory, "reference"))
    stopped, checkpoint = train(os.path.join(directory, "run"), [cases.SignalAt(6)])
    assert checkpoint.stopped_by == "SIGTERM" and checkpoint.steps_on_disk()[0] == 6
    resumed, checkpoint = train(os.path.join(directory, "run"))
    difference = max(
        float(np.abs(a - b).max())
        for a, b in zip(resumed.get_weights(), reference.get_weights(), strict=True)
    )
    print(
        json.dumps(
            {
                "difference": difference,
                "restored": checkpoint.restored["step"],
                "replicas": 2,
                "iterations": int(resumed.optimizer.iterations.numpy()),
            }
        )
    )


if __name__ == "__main__":
    keras.config.disable_interactive_logging()
    main(sys.argv[1])
