"""The examples that have no test of their own: cifar10_simclr.py, query_saved_model.py and
the Fashion-MNIST demos (SimCLR, Siamese, and SimSiam, BYOL and Barlow Twins on SimCLR's recipe).

Each runs in a subprocess, as a user runs it: the examples define absl flags on the global
`FLAGS`, which would clash between examples loaded into one pytest process.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_siamese as ks

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
# Runs an example as `__main__` under TFDS' mock data (random examples shaped like the
# real dataset's, generated from its features: no files, no download).
MOCK_RUNNER = """
import runpy, sys
import tensorflow_datasets as tfds
path, count = sys.argv[1], int(sys.argv[2])
sys.argv = [path, *sys.argv[3:]]
with tfds.testing.mock_data(num_examples=count):
    runpy.run_path(path, run_name="__main__")
"""


def run_python(arguments, tmp_path, timeout=600):
    environment = dict(
        os.environ,
        TFDS_DATA_DIR=str(tmp_path / "empty_tfds"),  # Nothing prepared: only mocks can load.
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
    )
    os.makedirs(environment["TFDS_DATA_DIR"], exist_ok=True)
    return subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=timeout,
    )


@pytest.mark.slow
def test_cifar10_simclr_runs_end_to_end_on_mock_data(tmp_path):
    model_dir, export_dir = tmp_path / "run", tmp_path / "export"
    flags = [
        "--epochs=2",
        "--batch_size=16",
        "--encoder_depth=10",
        "--encoder_width=4",
        "--knn_every=1",
        "--knn_examples=32",
        "--linear_probe_epochs=2",
        "--strategy=default",
        f"--model_dir={model_dir}",
        f"--export_dir={export_dir}",
    ]
    script = os.path.join(EXAMPLES, "cifar10_simclr.py")
    process = run_python(["-c", MOCK_RUNNER, script, "48", *flags], tmp_path)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "3 steps per epoch" in process.stdout  # 48 mock images in batches of 16.
    assert "val_knn_accuracy" in process.stdout
    results = json.loads((model_dir / "results.json").read_text())
    assert 0.0 <= results["linear_probe_top1"] <= 1.0
    assert json.loads((model_dir / "flags.json").read_text())["epochs"] == 2
    assert os.path.isfile(model_dir / "model.keras")
    served = ks.export.load_for_inference(str(export_dir / "1"))
    assert served.image_shape == (32, 32, 3) and served.embedding_dims == 32


def test_cifar10_simclr_without_data_fails_with_a_clear_message(tmp_path):
    script = os.path.join(EXAMPLES, "cifar10_simclr.py")
    process = run_python([script, f"--model_dir={tmp_path / 'run'}"], tmp_path)
    assert process.returncode == 1
    assert "Traceback" not in process.stderr
    (line,) = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    assert "CIFAR-10 is not available offline" in line
    assert "tfds build cifar10" in line and str(tmp_path / "empty_tfds") in line


def test_query_saved_model_finds_the_query_itself_first(tmp_path):
    inputs = keras.Input((16, 16, 1))
    features = keras.layers.Conv2D(8, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(features))
    ks.export.export_for_serving(model, tmp_path / "export", warmup=False)
    # The query file is gallery image 7 at its original 28x28: the export decodes and resizes it
    # in the graph exactly as the gallery was resized, so image 7 must come first at cosine 1.
    images, labels = ks.datasets.load_arrays("fashion_mnist", "train[:50]")
    query = tmp_path / "query.png"
    tf.io.write_file(str(query), tf.io.encode_png(images[7]))
    script = os.path.join(EXAMPLES, "query_saved_model.py")
    arguments = [script, f"--export_dir={tmp_path / 'export'}", f"--image={query}", "--k=5"]
    process = run_python([*arguments, "--gallery_split=train[:50]"], tmp_path)
    assert process.returncode == 0, process.stderr[-3000:]
    ranked = [
        line.split() for line in process.stdout.splitlines() if line[:4].strip().endswith(".")
    ]
    assert len(ranked) == 5
    assert ranked[0][2] == "7"
    assert ranked[0][3] == ks.datasets.FASHION_MNIST_CLASSES[labels[7]].split()[0]
    scores = np.array([float(row[-1]) for row in ranked])
    assert scores[0] == pytest.approx(1.0, abs=1e-3) and np.all(np.diff(scores) <= 0)


def test_query_saved_model_without_an_export_fails_clearly(tmp_path):
    script = os.path.join(EXAMPLES, "query_saved_model.py")
    process = run_python([script, f"--export_dir={tmp_path / 'missing'}"], tmp_path)
    assert process.returncode == 1 and "Traceback" not in process.stderr
    assert "error: no export to load" in process.stderr


def console_lines(process):
    return [line for line in process.stdout.splitlines() if line.strip()]


@pytest.mark.slow
def test_simclr_demo_prints_one_table_and_keeps_framework_messages_off_the_console(tmp_path):
    model_dir, export_dir = tmp_path / "run", tmp_path / "export"
    script = os.path.join(EXAMPLES, "simclr_fashion_mnist.py")
    flags = ["--train_examples=512", "--epochs=1", "--probe_epochs=1", "--precision=float32"]
    flags += [f"--model_dir={model_dir}", f"--export_dir={export_dir}"]
    process = run_python([script, *flags], tmp_path)
    assert process.returncode == 0, (model_dir / "stderr.log").read_text()[-3000:]
    assert process.stderr == ""  # TensorFlow's C++ and absl lines go to stderr.log
    lines = console_lines(process)
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| Encoder | kNN | linear probe | linear probe, 1% of labels |"
    assert [row.split("|")[1].strip() for row in table[2:]] == [
        "raw pixels",
        "random init",
        "SimCLR",
    ]
    assert not any("oneDNN" in line or len(line) > 300 for line in lines)
    results = json.loads((model_dir / "results.json").read_text())
    assert set(results["results"]) == {"raw pixels", "random init", "SimCLR"}
    served = ks.export.load_for_inference(str(export_dir / "1"))
    assert served.image_shape == (28, 28, 1)


@pytest.mark.slow
def test_siamese_example_prints_raw_pixels_beside_both_losses(tmp_path):
    model_dir, export_dir = tmp_path / "run", tmp_path / "export"
    script = os.path.join(EXAMPLES, "siamese_fashion_mnist.py")
    flags = ["--train_examples=700", "--epochs=0.5", "--samples_per_class=4", "--batch_size=16"]
    flags += [f"--model_dir={model_dir}", f"--export_dir={export_dir}"]
    process = run_python([script, *flags], tmp_path)
    assert process.returncode == 0, (model_dir / "stderr.log").read_text()[-3000:]
    assert process.stderr == ""
    table = [line for line in console_lines(process) if line.startswith("|")]
    assert [row.split("|")[1].strip() for row in table[2:]] == [
        "raw pixels (cosine)",
        "SimCLR features (cosine)",  # the pretrained encoder both losses start from
        "contrastive loss",
        "triplet loss",
    ]
    for loss in ("contrastive", "triplet"):
        assert os.path.isfile(model_dir / loss / "roc_curve.png")
        assert os.path.isdir(export_dir / loss / "1")


@pytest.mark.parametrize(
    "script, method",
    [
        ("simsiam_fashion_mnist.py", "SimSiam"),
        ("byol_fashion_mnist.py", "BYOL"),
        ("barlow_twins_fashion_mnist.py", "Barlow Twins"),
    ],
)
@pytest.mark.slow
def test_method_demos_print_the_simclr_demos_table(tmp_path, script, method):
    model_dir, export_dir = tmp_path / "run", tmp_path / "export"
    flags = ["--train_examples=512", "--epochs=1", "--probe_epochs=1", "--precision=float32"]
    flags += [f"--model_dir={model_dir}", f"--export_dir={export_dir}"]
    process = run_python([os.path.join(EXAMPLES, script), *flags], tmp_path)
    assert process.returncode == 0, (model_dir / "stderr.log").read_text()[-3000:]
    assert process.stderr == ""
    lines = console_lines(process)
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| Encoder | kNN | linear probe | linear probe, 1% of labels |"
    assert [row.split("|")[1].strip() for row in table[2:]] == [
        "raw pixels",
        "random init",
        method,
    ]
    assert not any("oneDNN" in line or len(line) > 300 for line in lines)
    assert lines[-1] == f"TensorFlow's own messages: {model_dir / 'stderr.log'}"
    results = json.loads((model_dir / "results.json").read_text())
    assert set(results["results"]) == {"raw pixels", "random init", method}
    assert os.path.isdir(export_dir / "1")
