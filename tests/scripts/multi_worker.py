"""A few SimCLR training steps on one worker of a MultiWorkerMirroredStrategy cluster.

Run by tests/test_multi_worker.py: twice with `TF_CONFIG` naming a two-worker cluster on
127.0.0.1 (strategy `multi_worker`), and once alone (strategy `default`) as the reference
on the same global batches. Each run writes its final weights to OUTPUT (.npz) and its
losses and distribution report to OUTPUT.json.

Usage: python multi_worker.py STRATEGY OUTPUT
"""

import json
import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from conftest import random_images, tiny_encoder  # noqa: E402

import keras_siamese as ks  # noqa: E402
from keras_siamese import distribute  # noqa: E402

GLOBAL_BATCH = 8
STEPS = 3


class FlipSecondHalf(keras.layers.Layer):
    """Deterministic views: the images and their mirror images (see scripts/equivalence.py)."""

    def call(self, images, training=None):
        images = tf.cast(images, tf.float32) / 255.0
        first, second = tf.split(images, 2, axis=0)
        return tf.concat([first, tf.reverse(second, axis=[2])], axis=0)


def main(strategy_name, output):
    strategy = distribute.get_strategy(strategy_name)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = ks.SimCLR(
            tiny_encoder(),
            augmenter=FlipSecondHalf(),
            projection_dims=(16, 8),
            temperature=0.5,
            sync_batch_norm=True,
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    # uint8 images, as users feed them: Keras' first-batch reduce across workers refuses uint8
    # unless fit casts them (distribute.collective_safe).
    images = random_images(GLOBAL_BATCH * STEPS, (16, 16, 1), seed=2)
    options = tf.data.Options()
    # Each worker takes its slice of every global batch, in order (worker 0 first).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = (
        tf.data.Dataset.from_tensor_slices(images)
        .batch(GLOBAL_BATCH, drop_remainder=True)
        .with_options(options)
    )
    history = model.fit(dataset, epochs=1, steps_per_epoch=STEPS, verbose=0)
    report = model.distribution_report()
    np.savez(output, *model.get_weights())
    with open(output + ".json", "w") as file:
        json.dump(
            {
                "loss": history.history["loss"],
                "replicas": report.replicas,
                "workers": report.workers,
                "strategy": report.strategy,
                "per_replica_batch_size": report.per_replica_batch_size,
                "chief": distribute.is_chief(strategy),
                "worker_directory": distribute.worker_directory("backup", strategy),
            },
            file,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
