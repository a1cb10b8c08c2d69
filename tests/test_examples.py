"""The examples, each run end to end in a subprocess as a user runs it (they define absl flags on
the global `FLAGS`, which would clash in one process): cifar10_simclr.py on TFDS' mock data,
query_saved_model.py, and the Fashion-MNIST examples (SimCLR, SimSiam, BYOL, Barlow Twins,
Siamese) with tiny flags on a small synthetic Fashion-MNIST written as IDX files, so that the
tests need no download and take seconds of training.
"""

import gzip
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


TABLE_HEADER = "| Encoder | kNN | linear probe | linear probe, 1% of labels |"
TINY_SSL_FLAGS = [
    "--train_examples=256",
    "--test_examples=200",
    "--batch_size=64",
    "--epochs=1",
    "--encoder_width=4",
    "--probe_epochs=1",
    "--precision=float32",
    "--strategy=default",
]


def write_idx(path, array):
    """Writes a uint8 array as a gzipped IDX file, the format of the Fashion-MNIST files."""
    array = np.asarray(array, np.uint8)
    header = (0x0800 | array.ndim).to_bytes(4, "big")
    header += b"".join(int(side).to_bytes(4, "big") for side in array.shape)
    with gzip.open(path, "wb") as file:
        file.write(header + array.tobytes())


@pytest.fixture(scope="module")
def fashion_mnist_dir(tmp_path_factory):
    """A synthetic Fashion-MNIST (1,000 train, 300 test 28x28 images): one bright block per class
    at its own place, plus noise, so that every encoder can tell the classes apart."""
    directory = tmp_path_factory.mktemp("fashion_mnist")
    for prefix, count, seed in (("train", 1000, 0), ("t10k", 300, 1)):
        rng = np.random.default_rng(seed)
        labels = np.arange(count) % 10
        images = rng.integers(0, 60, (count, 28, 28))
        for label in range(10):
            row, column = divmod(label, 4)
            images[
                labels == label, 2 + 8 * row : 10 + 8 * row, 2 + 6 * column : 8 + 6 * column
            ] += 190
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return directory


def run_python(arguments, tmp_path, timeout=600, data_dir=None):
    environment = dict(
        os.environ,
        TFDS_DATA_DIR=str(tmp_path / "empty_tfds"),  # Nothing prepared: only mocks can load.
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
    )
    if data_dir is not None:
        environment["KERAS_SIAMESE_DATA_DIR"] = str(data_dir)
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


def test_query_saved_model_finds_the_query_itself_first(tmp_path, fashion_mnist_dir, monkeypatch):
    monkeypatch.setenv("KERAS_SIAMESE_DATA_DIR", str(fashion_mnist_dir))
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
    process = run_python(
        [*arguments, "--gallery_split=train[:50]"], tmp_path, data_dir=fashion_mnist_dir
    )
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


def table_rows(lines, header):
    """`{row name: [numbers]}` of the Markdown table under `header` on the console."""
    start = lines.index(header)
    assert set(lines[start + 1]) <= {"|", "-"}
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        name, *cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[name] = [float(cell) if cell != "—" else None for cell in cells]
    return rows


@pytest.mark.parametrize(
    "script, method, extra_line",
    [
        ("simclr_fashion_mnist.py", "SimCLR", "val_knn_accuracy"),
        ("simsiam_fashion_mnist.py", "SimSiam", "output_std per epoch: ["),
        ("byol_fashion_mnist.py", "BYOL", "Target momentum after 4 steps: 1.0000"),
        ("barlow_twins_fashion_mnist.py", "Barlow Twins", "redundancy per epoch: ["),
    ],
)
@pytest.mark.slow
def test_self_supervised_examples_print_the_table_and_export(
    tmp_path, fashion_mnist_dir, script, method, extra_line
):
    model_dir, export_dir = tmp_path / "run", tmp_path / "export"
    flags = [*TINY_SSL_FLAGS, f"--model_dir={model_dir}", f"--export_dir={export_dir}"]
    script = os.path.join(EXAMPLES, script)
    process = run_python([script, *flags], tmp_path, data_dir=fashion_mnist_dir)
    assert process.returncode == 0, process.stderr[-3000:]
    lines = console_lines(process)
    assert "4 steps, float32" in process.stdout  # 256 images in batches of 64
    assert any(extra_line in line for line in lines), process.stdout[-3000:]
    rows = table_rows(lines, TABLE_HEADER)
    assert list(rows) == ["raw pixels", "random init", method]
    assert all(len(row) == 3 and all(0 <= value <= 100 for value in row) for row in rows.values())
    assert not any("oneDNN" in line or len(line) > 300 for line in lines)
    results = json.loads((model_dir / "results.json").read_text())
    assert list(results["results"]) == ["raw pixels", "random init", method]
    assert results["results"]["raw pixels"]["kNN"] == pytest.approx(
        rows["raw pixels"][0] / 100, abs=5e-4
    )
    assert json.loads((model_dir / "flags.json").read_text())["encoder_width"] == 4
    served = ks.export.load_for_inference(str(export_dir / "1"))
    assert served.image_shape == (28, 28, 1)
    # Crash-safe run files: a step checkpoint (weights, then its JSON) and a whole model.keras.
    saved = os.listdir(model_dir / "checkpoints")
    assert any(name.endswith(".weights.h5") for name in saved), saved
    assert any(name.endswith(".json") for name in saved), saved
    assert keras.models.load_model(model_dir / "model.keras").count_params() > 0


SIAMESE_HEADER = "| Embedding | ROC AUC | EER | recall@1 | mAP@R | R-precision | NMI | train (s) |"
SIAMESE_LOSSES = ("contrastive", "triplet", "arcface")  # pairs, P x K, and a proxy loss


def run_siamese_example(tmp_path, data_dir, *arguments):
    """The Siamese example with tiny flags (batches of 28: pairs, or P x K = 7 x 4); its
    process and table rows."""
    flags = ["--train_examples=300", "--pretrain_epochs=1", "--encoder_width=4"]
    flags += ["--batch_size=28", f"--model_dir={tmp_path / 'run'}"]
    flags += [f"--export_dir={tmp_path / 'export'}", *arguments]
    script = os.path.join(EXAMPLES, "siamese_fashion_mnist.py")
    process = run_python([script, *flags], tmp_path, data_dir=data_dir)
    assert process.returncode == 0, process.stderr[-3000:]
    return process, table_rows(console_lines(process), SIAMESE_HEADER)


@pytest.mark.slow
def test_siamese_example_prints_raw_pixels_beside_each_loss(tmp_path, fashion_mnist_dir):
    model_dir, export_dir = tmp_path / "run", tmp_path / "export"
    losses = [f"--losses={loss}" for loss in SIAMESE_LOSSES]
    # Not the default 7,8,9: the seen classes 1,2,3,5,6,7,8 are relabelled 0..6 for the proxies.
    process, rows = run_siamese_example(
        tmp_path, fashion_mnist_dir, *losses, "--unseen_classes=0,4,9"
    )
    assert "of classes [1, 2, 3, 5, 6, 7, 8], testing on the unseen" in process.stdout
    assert "Unseen classes [0, 4, 9], test split:" in process.stdout
    assert "Distribution report for SimCLR" in process.stdout  # pretrained once, here
    assert list(rows) == [
        "raw pixels (cosine)",
        "SimCLR features (cosine)",  # the pretrained encoder every loss starts from
        *(f"{loss} loss" for loss in SIAMESE_LOSSES),
    ]
    assert rows["raw pixels (cosine)"][-1] is None  # nothing trained
    for row in rows.values():  # ROC AUC, EER, recall@1, mAP@R, R-precision, NMI; seconds
        assert all(0 <= value <= 1 for value in row[:6]) and (row[6] is None or row[6] >= 0)
    for loss in SIAMESE_LOSSES:
        assert os.path.isfile(model_dir / loss / "roc_curve.png")
        assert os.path.getsize(model_dir / loss / "retrieval_grid.png") > 1000  # a drawn grid
        results = json.loads((model_dir / loss / "results.json").read_text())["results"]
        assert results["roc_auc"] == pytest.approx(rows[f"{loss} loss"][0], abs=5e-5)
        assert results["r_precision"] == pytest.approx(rows[f"{loss} loss"][4], abs=5e-5)
        assert results["nmi"] == pytest.approx(rows[f"{loss} loss"][5], abs=5e-5)
        served = ks.export.load_for_inference(str(export_dir / loss / "1"))
        # The triplet recipe embeds with the encoder's 4x4 grid (32 channels at width 4).
        dims = 4 * 4 * 32 if loss == "triplet" else 128
        assert served.image_shape == (28, 28, 1) and served.embedding_dims == dims
    arcface = keras.models.load_model(model_dir / "arcface" / "model.keras")
    assert tuple(arcface.proxies.proxies.shape) == (7, 128)  # one per seen class

    # A rerun with the same flags reuses the pretrained encoder (and its recorded time); the
    # key holds the split, so other unseen classes (other seen images) pretrain again.
    key = model_dir / "pretrained" / "encoder.keras.json"
    assert json.loads(key.read_text())["key"][2] == ["0", "4", "9"]
    recorded, encoder_written = key.read_bytes(), os.stat(key.with_suffix("")).st_mtime_ns
    process, again = run_siamese_example(
        tmp_path, fashion_mnist_dir, "--losses=contrastive", "--unseen_classes=0,4,9"
    )
    assert "Distribution report for SimCLR" not in process.stdout  # no SimCLR fit
    assert again["SimCLR features (cosine)"] == rows["SimCLR features (cosine)"]
    assert list(again) == ["raw pixels (cosine)", "SimCLR features (cosine)", "contrastive loss"]
    assert key.read_bytes() == recorded
    assert os.stat(key.with_suffix("")).st_mtime_ns == encoder_written
    flags = json.loads((model_dir / "contrastive" / "results.json").read_text())["flags"]
    assert flags["unseen_classes"] == ["0", "4", "9"]
