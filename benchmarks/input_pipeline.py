"""Input pipeline against training step: does SimCLR ever wait for `from_directory`?

Writes the 60,000 Fashion-MNIST training images as PNG files (one folder per class) into a
temporary directory, then, each in a fresh process so that peak memory is its own:

1. pipeline: `keras_siamese.datasets.from_directory` alone: the up-front check of every
   file (listing and header reads), then one epoch of decode + batch (28x28x1, batch 256)
   and one of decode + resize to 32x32 + grayscale-to-RGB (what a ResNet-18 at 32x32x3
   reads), in images/s; peak RSS (`resource.getrusage`) of the process.
2. training: the SimCLR step of the demo encoder (`encoders.resnet(depth=10, width=16)` at
   28x28x1, batch 256, the demo's head and temperature) on one batch held in memory (the
   step alone), then the same model fed by the folder dataset (the step plus its input),
   and the ResNet-18 (width 64, small-image stem) SimCLR step at 32x32x3 in memory; peak RSS
   of training from the folder. Steps run through Keras' own `train_function`, as `fit`.

The pipeline must deliver images at least 3x faster than the step consumes them, so the step
never waits (issue 17). Both run on the same 2 cores, so a real run shares them: the
"fed by the folder" row is the honest end-to-end number.

Writes `benchmarks/results/input_pipeline.md`. Run: `python benchmarks/input_pipeline.py`
(~4 minutes on 2 CPU cores).
"""

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_enum("stage", "all", ["all", "pipeline", "training"], "What this process runs.")
flags.DEFINE_string("data_dir", None, "The PNG folder (stages pipeline and training).")
flags.DEFINE_integer("batch_size", 256, "Images per batch.")
flags.DEFINE_integer("demo_steps", 20, "Timed demo steps, in memory and from the folder.")
flags.DEFINE_integer("resnet18_steps", 2, "Timed ResNet-18 steps.")
flags.DEFINE_string("output", "benchmarks/results/input_pipeline.md", "The results file.")
FLAGS = flags.FLAGS


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_pngs(directory):
    import tensorflow as tf

    import keras_siamese as ks

    images, labels = ks.datasets.load_arrays("fashion_mnist", "train")
    for label in range(10):
        os.makedirs(os.path.join(directory, f"class_{label}"), exist_ok=True)
    encoded = tf.data.Dataset.from_tensor_slices(images).map(
        tf.io.encode_png, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    for index, (data, label) in enumerate(zip(encoded.as_numpy_iterator(), labels, strict=True)):
        with open(os.path.join(directory, f"class_{label}", f"{index:05d}.png"), "wb") as file:
            file.write(data)
    return len(images)


def pipeline_stage():
    import tensorflow as tf

    import keras_siamese as ks

    del tf  # imported (with the package's modules) so the baseline below includes them
    ks.datasets.from_directory  # noqa: B018 - loads the package
    results = {"rss_after_import_mib": peak_rss_mib()}
    for key, size, channels in (("28x28x1", 28, 1), ("32x32x3", 32, 3)):
        started = time.perf_counter()
        dataset = ks.datasets.from_directory(
            FLAGS.data_dir, size, channels, batch_size=FLAGS.batch_size, seed=0
        )
        checked = time.perf_counter() - started
        count, started = 0, time.perf_counter()
        for images, _ in dataset:
            count += int(images.shape[0])
        seconds = time.perf_counter() - started
        results[key] = {
            "check_seconds": checked,
            "images": count,
            "images_per_second": count / seconds,
        }
    results["peak_rss_mib"] = peak_rss_mib()
    return results


def training_stage():
    import keras
    import tensorflow as tf

    import keras_siamese as ks

    batch = FLAGS.batch_size

    def simclr(depth, width, shape, **kwargs):
        keras.utils.set_random_seed(0)
        encoder = ks.encoders.resnet(depth, shape, small_images=True, width=width)
        augmenter = ks.augment.simclr_augmenter(shape[:2], channels=shape[-1], strength=0.5)
        model = ks.SimCLR(encoder, augmenter, **kwargs)
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9))
        model.make_train_function()
        return model

    def time_rounds(model, datasets, steps):
        """Median images/s per dataset, one step of each in turn (load hits all alike)."""
        iterators = {name: iter(dataset) for name, dataset in datasets.items()}
        for iterator in iterators.values():
            model.train_function(iterator)  # traces
            model.train_function(iterator)  # warm-up
        times = {name: [] for name in iterators}
        for _ in range(steps):
            for name, iterator in iterators.items():
                started = time.perf_counter()
                model.train_function(iterator)["loss"].numpy()
                times[name].append(time.perf_counter() - started)
        return {name: batch / statistics.median(values) for name, values in times.items()}

    def first_batch_in_memory(size, channels):
        # Real images: the step is faster on Fashion-MNIST than on uniform noise (~20% here).
        folder = ks.datasets.from_directory(FLAGS.data_dir, size, channels, batch_size=batch)
        images = next(iter(folder))[0].numpy()
        return tf.data.Dataset.from_tensors(images).repeat()

    demo = simclr(10, 16, (28, 28, 1), projection_dims=(512, 128), temperature=0.2)
    folder = ks.datasets.from_directory(FLAGS.data_dir, 28, 1, labels=None, seed=0)
    folder = folder.repeat().batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    rates = time_rounds(
        demo, {"in_memory": first_batch_in_memory(28, 1), "from_folder": folder}, FLAGS.demo_steps
    )
    results = {
        "demo_in_memory": rates["in_memory"],
        "demo_from_folder": rates["from_folder"],
        "demo_peak_rss_mib": peak_rss_mib(),
    }
    del demo, folder
    resnet18 = simclr(18, 64, (32, 32, 3))
    rates = time_rounds(resnet18, {"in_memory": first_batch_in_memory(32, 3)}, FLAGS.resnet18_steps)
    results["resnet18_in_memory"] = rates["in_memory"]
    return results


def run_stage(stage, data_dir):
    command = [
        sys.executable,
        os.path.abspath(__file__),
        f"--stage={stage}",
        f"--data_dir={data_dir}",
        f"--batch_size={FLAGS.batch_size}",
        f"--demo_steps={FLAGS.demo_steps}",
        f"--resnet18_steps={FLAGS.resnet18_steps}",
    ]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    output = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if output.returncode != 0:
        raise RuntimeError(f"stage {stage} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def report(write_seconds, count, pipeline, training, wall):
    import tensorflow as tf

    load = os.getloadavg()[0]
    demo_step = training["demo_in_memory"]
    resnet_step = training["resnet18_in_memory"]
    rows = [
        (
            "`from_directory` 28x28x1: decode + batch",
            pipeline["28x28x1"]["images_per_second"],
            pipeline["28x28x1"]["images_per_second"] / demo_step,
        ),
        (
            "`from_directory` 32x32x3: decode + resize + RGB + batch",
            pipeline["32x32x3"]["images_per_second"],
            pipeline["32x32x3"]["images_per_second"] / resnet_step,
        ),
        ("SimCLR step, demo ResNet-10/16 28x28x1, batch in memory", demo_step, None),
        (
            "SimCLR step, demo ResNet-10/16, fed by `from_directory`",
            training["demo_from_folder"],
            None,
        ),
        ("SimCLR step, ResNet-18 32x32x3, batch in memory", resnet_step, None),
    ]
    lines = [
        "# Input pipeline against the training step",
        "",
        f"Produced by `python benchmarks/input_pipeline.py` in {wall / 60:.1f} minutes on "
        f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores, shared: load "
        f"average {load:.1f} at the end). TensorFlow {tf.__version__}. {count:,} PNG files "
        f"(Fashion-MNIST train, 10 class folders) written in {write_seconds:.0f} s.",
        "",
        "| What | Images/s | Pipeline / step |",
        "|---|---|---|",
    ]
    for name, rate, ratio in rows:
        lines.append(f"| {name} | {rate:,.0f} | {'' if ratio is None else f'{ratio:.1f}x'} |")
    lines += [
        "",
        "Pipeline rows: one full epoch of the folder (60,000 images, batch 256, shuffled file "
        "order); the ratio is against the step of the encoder that reads that shape (demo for "
        "28x28x1, ResNet-18 for 32x32x3). Step rows: median of "
        f"{FLAGS.demo_steps} (demo) and {FLAGS.resnet18_steps} (ResNet-18) steps through "
        "Keras' `train_function` after one tracing and one warm-up step, on a batch of the "
        "folder's own images held in memory (the step is ~20% faster on Fashion-MNIST than on "
        "uniform noise here) or fed by the folder dataset, the two in alternating rounds so a "
        "change of load hits both; images counted once (each gives two views).",
        "",
        "Up-front check of every file (listing + header and ending of each PNG) before the "
        f"first image: {pipeline['28x28x1']['check_seconds']:.1f} s for 60,000 files.",
        "",
        "| Peak RSS (`resource.getrusage`) | MiB |",
        "|---|---|",
        f"| pipeline process after imports | {pipeline['rss_after_import_mib']:,.0f} |",
        f"| pipeline process after two epochs of the folder | {pipeline['peak_rss_mib']:,.0f} |",
        f"| training process after {FLAGS.demo_steps} demo steps from the folder | "
        f"{training['demo_peak_rss_mib']:,.0f} |",
        "",
    ]
    os.makedirs(os.path.dirname(FLAGS.output), exist_ok=True)
    with open(FLAGS.output, "w") as file:
        file.write("\n".join(lines))
    print("\n".join(lines))


def main(argv):
    del argv
    if FLAGS.stage == "pipeline":
        print(json.dumps(pipeline_stage()))
        return
    if FLAGS.stage == "training":
        print(json.dumps(training_stage()))
        return
    started = time.perf_counter()
    directory = tempfile.mkdtemp(prefix="fashion_mnist_png_")
    try:
        write_started = time.perf_counter()
        count = write_pngs(directory)
        write_seconds = time.perf_counter() - write_started
        print(f"wrote {count} PNG files in {write_seconds:.0f} s", flush=True)
        pipeline = run_stage("pipeline", directory)
        print(json.dumps(pipeline), flush=True)
        training = run_stage("training", directory)
        print(json.dumps(training), flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    report(write_seconds, count, pipeline, training, time.perf_counter() - started)


if __name__ == "__main__":
    app.run(main)
