"""Serving benchmark: SavedModel sizes and signature latencies, measured as a server sees them.

Exports the demo encoder (ResNet-10 of width 16 on 28x28x1 Fashion-MNIST-sized images,
128-d embedding; random weights — latency does not depend on training) twice with
`keras_siamese.export.export_for_serving`: once plain (serving_default, embed_bytes,
similarity, verify with a given threshold, metadata), once with a 100k x 128 gallery
(adds search). Then a child process that imports only TensorFlow and NumPy (it checks that
keras_siamese is not loaded) loads each SavedModel and times every signature for batches of
1 and 64: the median of `--runs` calls after two warm-up calls, outputs copied to NumPy.

Prints a table and writes it to benchmarks/results/serving.md. Timings on a shared
2-core machine are noisy: the 1-minute load average is printed with them.

Run: `python benchmarks/serving.py` (about 2 minutes on 2 idle cores).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_integer("runs", 7, "Timed calls per signature and batch size (median reported).")
flags.DEFINE_integer("gallery_size", 100_000, "Items in the search gallery.")
flags.DEFINE_string("output", "benchmarks/results/serving.md", "Markdown report.")
flags.DEFINE_string("measure", "", "Internal: measure the exports in this directory and exit.")
FLAGS = flags.FLAGS

BATCH_SIZES = (1, 64)
IMAGE_SHAPE = (28, 28, 1)


def directory_size(path):
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def export_models(directory):
    """Exports the plain and the gallery model; returns their version directories."""
    import keras
    import numpy as np

    import keras_siamese as ks

    keras.utils.set_random_seed(0)
    encoder = ks.encoders.resnet(depth=10, input_shape=IMAGE_SHAPE, small_images=True, width=16)
    model = ks.SimCLR(encoder, projection_dims=(128, 64))
    gallery = np.random.default_rng(0).standard_normal((FLAGS.gallery_size, 128), "float32")
    exports = {}
    start = time.perf_counter()
    exports["plain"] = ks.export.export_for_serving(
        model, os.path.join(directory, "plain"), threshold=0.5
    )
    exports["plain_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    exports["gallery"] = ks.export.export_for_serving(
        model, os.path.join(directory, "gallery"), threshold=0.5, gallery=gallery, top_k=10
    )
    exports["gallery_seconds"] = time.perf_counter() - start
    return exports


def measure(directory, runs):
    """In a TensorFlow-only process: time every signature of both exports."""
    import numpy as np
    import tensorflow as tf

    assert "keras_siamese" not in sys.modules
    rng = np.random.default_rng(1)
    results = []
    for name in ("plain", "gallery"):
        version_dir = os.path.join(directory, name, "1")
        loaded = tf.saved_model.load(version_dir)
        wanted = ["serving_default", "embed_bytes", "similarity", "verify"]
        if name == "gallery":
            wanted = ["serving_default", "search"]
        for signature_name in wanted:
            signature = loaded.signatures[signature_name]
            for batch in BATCH_SIZES:
                images = rng.integers(0, 256, (batch, *IMAGE_SHAPE), dtype=np.uint8)
                if signature_name == "embed_bytes":
                    inputs = {
                        "image_bytes": tf.constant(
                            [tf.io.encode_png(image).numpy() for image in images]
                        )
                    }
                elif signature_name in ("similarity", "verify"):
                    other = rng.integers(0, 256, images.shape, dtype=np.uint8)
                    inputs = {"images_a": tf.constant(images), "images_b": tf.constant(other)}
                else:
                    inputs = {"images": tf.constant(images)}
                for _ in range(2):
                    signature(**inputs)
                times = []
                for _ in range(runs):
                    start = time.perf_counter()
                    outputs = signature(**inputs)
                    _ = {key: value.numpy() for key, value in outputs.items()}
                    times.append(time.perf_counter() - start)
                results.append(
                    {
                        "export": name,
                        "signature": signature_name,
                        "batch": batch,
                        "median_ms": 1000 * float(np.median(times)),
                        "min_ms": 1000 * float(np.min(times)),
                    }
                )
    print(json.dumps({"results": results, "tensorflow": tf.__version__}))


def main(argv):
    del argv
    if FLAGS.measure:
        measure(FLAGS.measure, FLAGS.runs)
        return
    with tempfile.TemporaryDirectory() as directory:
        exports = export_models(directory)
        sizes = {}
        for name in ("plain", "gallery"):
            version_dir = exports[name]
            sizes[name] = {
                "total": directory_size(version_dir),
                "saved_model.pb": os.path.getsize(os.path.join(version_dir, "saved_model.pb")),
                "variables": directory_size(os.path.join(version_dir, "variables")),
                "assets.extra": directory_size(os.path.join(version_dir, "assets.extra")),
            }
        load_before = os.getloadavg()[0]
        child = subprocess.run(
            [
                sys.executable,
                os.path.abspath(__file__),
                f"--measure={directory}",
                f"--runs={FLAGS.runs}",
            ],
            check=True,
            capture_output=True,
            text=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        )
        load_after = os.getloadavg()[0]
    measured = json.loads(child.stdout.strip().splitlines()[-1])

    lines = [
        "# Serving benchmark",
        "",
        f"`python benchmarks/serving.py --runs={FLAGS.runs}`; TensorFlow "
        f"{measured['tensorflow']}, {os.cpu_count()} CPU cores (shared; 1-minute load average "
        f"{load_before:.1f} before and {load_after:.1f} after timing). Model: ResNet-10 width 16 "
        "on 28x28x1 images, 128-d embedding (random weights). Latency through the loaded "
        "SavedModel in a process that imports only TensorFlow: median (min) of "
        f"{FLAGS.runs} calls after 2 warm-up calls.",
        "",
        "## SavedModel sizes",
        "",
        "| export | total | saved_model.pb | variables | assets.extra | export time |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, label in (
        ("plain", "no gallery"),
        ("gallery", f"{FLAGS.gallery_size:,}-item gallery"),
    ):
        size = sizes[name]
        lines.append(
            f"| {label} | {size['total'] / 1e6:.2f} MB | {size['saved_model.pb'] / 1e6:.2f} MB | "
            f"{size['variables'] / 1e6:.2f} MB | {size['assets.extra'] / 1e3:.1f} kB | "
            f"{exports[name + '_seconds']:.1f} s |"
        )
    lines += [
        "",
        "## Latency (ms)",
        "",
        "| export | signature | batch 1 | batch 64 |",
        "| --- | --- | ---: | ---: |",
    ]
    rows = {}
    for result in measured["results"]:
        key = (result["export"], result["signature"])
        rows.setdefault(key, {})[result["batch"]] = (
            f"{result['median_ms']:.1f} ({result['min_ms']:.1f})"
        )
    for (export, signature), cells in rows.items():
        label = "no gallery" if export == "plain" else f"{FLAGS.gallery_size // 1000}k gallery"
        lines.append(f"| {label} | {signature} | {cells[1]} | {cells[64]} |")
    lines += [
        "",
        "`similarity` and `verify` embed 2 x batch images. `search` includes embedding the "
        "queries: compare with `serving_default` of the same export.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
    with open(FLAGS.output, "w", encoding="utf-8") as file:
        file.write(report)


if __name__ == "__main__":
    app.run(main)
