"""SimCLR training throughput: `cpu:2` (two logical CPU replicas) against the default strategy.

Setup: ResNet-10 of width 16 on 28x28x1 images, the SimCLR augmenter, global batch 256
(128 per replica on `cpu:2`, with global BatchNorm and NT-Xent negatives gathered across the
replicas), SGD. The step time is the median over the timed steps after warmup steps (the
first ones trace the graph); images/s is the global batch over that median. Each strategy
runs in its own process, since logical devices are fixed when TensorFlow initialises.

Logical CPU devices share the machine's cores: on a CPU box, `cpu:N` is for testing the
distributed code path, not for speed. Timings on a shared machine are noisy.

Run: `python benchmarks/distributed.py` (both strategies), or `--strategy=cpu:2` for one.
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

flags.DEFINE_string("strategy", "", "One strategy to measure (default, cpu:2, ...); both if empty.")
flags.DEFINE_integer("batch_size", 256, "Global batch size.")
flags.DEFINE_integer("warmup_steps", 2, "Untimed steps (graph tracing).")
flags.DEFINE_integer("timed_steps", 6, "Timed steps (at least 5).")
FLAGS = flags.FLAGS
STRATEGIES = ("default", "cpu:2")


def measure(strategy_name: str) -> dict:
    """Trains warmup + timed steps under one strategy and returns the step times."""
    import keras_siamese as ks

    strategy = ks.distribute.get_strategy(strategy_name)
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    steps = FLAGS.warmup_steps + FLAGS.timed_steps
    with strategy.scope():
        encoder = ks.encoders.resnet(depth=10, input_shape=(28, 28, 1), width=16)
        model = ks.SimCLR(
            encoder,
            augmenter=ks.augment.simclr_augmenter(28, channels=1, strength=0.5),
            projection_dims=(512, 128),
            temperature=0.2,
            sync_batch_norm=strategy.num_replicas_in_sync > 1,
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    images = np.random.default_rng(0).integers(0, 256, (FLAGS.batch_size, 28, 28, 1), "uint8")
    dataset = tf.data.Dataset.from_tensors(images).repeat(steps)

    class StepTimes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    timer = StepTimes()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, callbacks=[timer], verbose=0)
    durations = [end - start for start, end in zip(timer.ends, timer.ends[1:], strict=False)]
    timed = durations[FLAGS.warmup_steps :]
    median = statistics.median(timed)
    return {
        "strategy": strategy_name,
        "replicas": strategy.num_replicas_in_sync,
        "median_step_seconds": median,
        "images_per_second": FLAGS.batch_size / median,
        "timed_step_seconds": [round(value, 3) for value in timed],
    }


def main(argv):
    del argv
    if FLAGS.timed_steps < 5:
        raise app.UsageError(f"--timed_steps must be >= 5. Received: {FLAGS.timed_steps}")
    if FLAGS.strategy:
        print("RESULT " + json.dumps(measure(FLAGS.strategy)), flush=True)
        return
    results = []
    for name in STRATEGIES:
        output = subprocess.run(
            [sys.executable, __file__, f"--strategy={name}", *sys.argv[1:]],
            capture_output=True,
            text=True,
            timeout=1800,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""),
        )
        lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
        if output.returncode != 0 or not lines:
            raise RuntimeError(f"{name} failed:\n{output.stdout[-2000:]}{output.stderr[-4000:]}")
        results.append(json.loads(lines[0].removeprefix("RESULT ")))
    print(f"SimCLR ResNet-10 w16, 28x28x1, global batch {FLAGS.batch_size}, {os.cpu_count()} cores")
    for result in results:
        print(
            f"  {result['strategy']:8s} {result['replicas']} replica(s): median step "
            f"{result['median_step_seconds']:.3f} s -> {result['images_per_second']:.0f} images/s "
            f"(timed steps: {result['timed_step_seconds']})"
        )
    ratio = results[1]["images_per_second"] / results[0]["images_per_second"]
    print(f"  cpu:2 / default throughput: {ratio:.2f}x")


if __name__ == "__main__":
    app.run(main)
