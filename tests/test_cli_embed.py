"""`embed`: every image of a folder to OUTPUT/embeddings.npy and OUTPUT/index.csv.

The rows equal the run's model applied directly (`embedding_model()`, L2-normalised as the
export serves it, or `extract_features` with `--nonormalize`), in the order and with the
labels of index.csv, one batch at a time; bad input is one `error:` line and status 2, and no
half or temporary file is ever left. A run directory is made by hand (a tiny SimCLR saved as
model.keras beside a config.json), in seconds; one slow test trains, embeds and exports.
"""

import csv
import io
import json
import os
import re
import runpy
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from conftest import tiny_encoder
from PIL import Image

import keras_siamese as ks
from keras_siamese import atomic_files, cli
from keras_siamese.cli import embed_command, progress_lines, run_dir
from keras_siamese.export import module as export_module
from keras_siamese.export import preprocess

SIZE = 16


def run_cli(*arguments):
    return cli.main(["keras-siamese", *arguments])


def error_message(capsys):
    """The one `error:` message (with the lines of a listing that follow it)."""
    text = capsys.readouterr().err
    assert len([line for line in text.splitlines() if line.startswith("error:")]) == 1, text
    return text[text.index("error:") :]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A run directory: a tiny SimCLR on 16x16 grayscale images, saved as `train` saves it."""
    keras.utils.set_random_seed(0)
    directory = tmp_path_factory.mktemp("run")
    model = ks.SimCLR(tiny_encoder((SIZE, SIZE, 1), width=4), projection_dims=(16, 8))
    model.save(directory / run_dir.MODEL)
    config = {"method": "simclr", "resolved": {"image_shape": [SIZE, SIZE, 1]}}
    (directory / run_dir.CONFIG).write_text(json.dumps(config))
    return directory


@pytest.fixture(scope="module")
def model(model_dir):
    return keras.saving.load_model(model_dir / run_dir.MODEL)


def write_image(path, seed, size=(SIZE, SIZE)):
    """A random grayscale PNG at `path`; returns its pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


@pytest.fixture
def folder(tmp_path):
    """11 images: one at the top, cat/ (one nested deeper) and dog/; listed in this order."""
    root = tmp_path / "photos"
    names = ["top.png", *(f"cat/{i}.png" for i in range(4)), "cat/deep/x.png"]
    names += [f"dog/{i}.png" for i in range(5)]
    for seed, name in enumerate(names):
        write_image(root / name, seed)
    return root, names


def expected_embeddings(model, root, names, normalize=True):
    images = np.stack([np.asarray(Image.open(root / name)) for name in names])[..., None]
    if not normalize:  # evaluate's features, through the public API
        features, _ = ks.evaluation.extract_features(
            model, (images, np.zeros(len(images), "int64")), progress=False
        )
        return features
    representation = model.embedding_model()(images.astype("float32"), training=False)
    return tf.math.l2_normalize(representation, axis=-1, epsilon=ks.export.L2_EPSILON).numpy()


def read_index(output):
    with open(output / embed_command.INDEX, encoding="utf-8", newline="") as file:
        return list(csv.reader(file))


def leftovers(directory):
    return [name for name in os.listdir(directory) if atomic_files.is_temporary(name)]


def embed(model_dir, root, output, *arguments):
    return run_cli(
        "embed", f"--model_dir={model_dir}", f"--data_dir={root}", f"--output={output}", *arguments
    )


# ----------------------------------------------------------------------------- help


def test_embed_is_a_command_with_help(capsys, monkeypatch):
    assert cli.COMMANDS["embed"] is embed_command
    assert run_cli("--help") == 0
    assert re.search(r"^  embed +Embed every image", capsys.readouterr().out, re.MULTILINE)
    monkeypatch.setattr("sys.argv", ["keras-siamese", "embed", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("keras_siamese", run_name="__main__")
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: keras-siamese embed --model_dir=RUN --data_dir=FOLDER")
    values = flags.FlagValues()
    embed_command.define_flags(values)
    for name in values:
        assert f"--{name}:" in text or f"--[no]{name}:" in text
        assert f"(default: '{values[name].default_as_str.strip(chr(39))}')" in text


def test_help_and_flag_errors_answer_without_tensorflow(tmp_path):
    missing = ["--model_dir=nope", f"--data_dir={tmp_path}", f"--output={tmp_path}/out"]
    for arguments, status, expected in [
        (["--help"], 0, "usage: python -m keras_siamese embed"),
        (missing, 2, "nope/config.json does not exist"),
    ]:
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "keras_siamese", "embed", *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert result.returncode == status and expected in result.stdout + result.stderr
        modules = {
            line.rsplit("|", 1)[-1].strip().split(".")[0]
            for line in result.stderr.splitlines()
            if line.startswith("import time:")
        }
        assert "keras_siamese" in modules and not modules & {"tensorflow", "keras"}


# ----------------------------------------------------------------------------- results


@pytest.mark.parametrize("batch_size", [4, 256])  # 11 images: 4 does not divide them
def test_rows_are_the_models_embeddings_in_index_order(
    capsys, model_dir, model, folder, tmp_path, batch_size
):
    root, names = folder
    output = tmp_path / "vectors"
    assert embed(model_dir, root, output, f"--batch_size={batch_size}") == 0
    assert f"Wrote {len(names)} embeddings of 8 dimensions" in capsys.readouterr().out
    embeddings = np.load(output / embed_command.EMBEDDINGS)
    assert embeddings.dtype == np.float32 and embeddings.shape == (len(names), 8)
    np.testing.assert_allclose(embeddings, expected_embeddings(model, root, names), atol=1e-5)
    labels = ["", "cat", "cat", "cat", "cat", "cat", "dog", "dog", "dog", "dog", "dog"]
    pairs = enumerate(zip(names, labels, strict=True))
    rows = [[str(row), name, label] for row, (name, label) in pairs]
    assert read_index(output) == [["row", "path", "label"], *rows]
    assert sorted(os.listdir(output)) == ["embeddings.npy", "index.csv"]


def test_nonormalize_gives_evaluates_features(model_dir, model, folder, tmp_path):
    root, names = folder
    assert embed(model_dir, root, tmp_path / "raw", "--nonormalize", "--batch_size=3") == 0
    embeddings = np.load(tmp_path / "raw" / embed_command.EMBEDDINGS)
    expected = expected_embeddings(model, root, names, normalize=False)
    np.testing.assert_allclose(embeddings, expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(np.linalg.norm(embeddings, axis=1), 1.0)


def test_images_are_embedded_one_batch_at_a_time(model_dir, folder, tmp_path, monkeypatch):
    root, names = folder
    batches = []
    build = embed_command.embedding_function

    def recording(model, normalize):
        function, image_shape, dims = build(model, normalize)

        def embed_batch(images):
            batches.append(int(images.shape[0]))
            return function(images)

        return embed_batch, image_shape, dims

    monkeypatch.setattr(embed_command, "embedding_function", recording)
    assert embed(model_dir, root, tmp_path / "small", "--batch_size=3") == 0
    assert batches == [3, 3, 3, 2]
    batches.clear()
    assert embed(model_dir, root, tmp_path / "whole", f"--batch_size={len(names)}") == 0
    assert batches == [len(names)]
    small, whole = (
        np.load(tmp_path / name / embed_command.EMBEDDINGS) for name in ("small", "whole")
    )
    np.testing.assert_allclose(small, whole, atol=1e-6)


def test_a_larger_image_is_resized_as_the_export_decodes_it(model_dir, model, tmp_path):
    root = tmp_path / "photos"
    write_image(root / "a.png", 0)
    write_image(root / "b.png", 1, size=(20, 24))
    output = tmp_path / "vectors"
    assert embed(model_dir, root, output) == 0
    embeddings = np.load(output / embed_command.EMBEDDINGS)
    files = [(root / name).read_bytes() for name in ("a.png", "b.png")]
    images = np.stack([preprocess.decode_image(data, (SIZE, SIZE, 1)) for data in files])
    served = export_module.ExportModule(model.embedding_model(), (SIZE, SIZE, 1), 8, "cosine")
    served = served.embed(images)
    np.testing.assert_allclose(embeddings, served.numpy(), atol=1e-5)
    assert read_index(output)[1:] == [["0", "a.png", ""], ["1", "b.png", ""]]


# ----------------------------------------------------------------------------- output


def test_an_existing_output_is_refused_without_overwrite(capsys, model_dir, folder, tmp_path):
    root, names = folder
    output = tmp_path / "vectors"
    assert embed(model_dir, root, output) == 0
    before = {name: (output / name).read_bytes() for name in os.listdir(output)}
    (root / "dog" / "0.png").unlink()
    assert embed(model_dir, root, output) == 2
    message = error_message(capsys)
    assert "--output already holds embeddings.npy; pass --overwrite" in message
    assert f"Received: --output={output}" in message
    assert {name: (output / name).read_bytes() for name in os.listdir(output)} == before
    assert embed(model_dir, root, output, "--overwrite") == 0
    assert np.load(output / embed_command.EMBEDDINGS).shape == (len(names) - 1, 8)
    assert len(read_index(output)) == len(names)  # header + one row less
    assert not leftovers(output)


def test_a_failure_mid_way_leaves_the_previous_files_and_no_temporary_one(
    capsys, model_dir, folder, tmp_path, monkeypatch
):
    root, _ = folder
    output = tmp_path / "vectors"
    assert embed(model_dir, root, output) == 0
    before = {name: (output / name).read_bytes() for name in os.listdir(output)}
    build = embed_command.embedding_function

    def failing(model, normalize):
        function, image_shape, dims = build(model, normalize)
        calls = []

        def embed_batch(images):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt  # as a kill between two batches
            return function(images)

        return embed_batch, image_shape, dims

    monkeypatch.setattr(embed_command, "embedding_function", failing)
    with pytest.raises(KeyboardInterrupt):
        embed(model_dir, root, output, "--overwrite", "--batch_size=2")
    assert {name: (output / name).read_bytes() for name in os.listdir(output)} == before
    with pytest.raises(KeyboardInterrupt):
        embed(model_dir, root, tmp_path / "new", "--batch_size=2")
    assert not os.path.exists(tmp_path / "new")


def test_a_killed_writers_temporary_files_are_cleared(model_dir, folder, tmp_path):
    root, _ = folder
    output = tmp_path / "vectors"
    output.mkdir()
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(finished.stdout)
    stale = output / f".embeddings{atomic_files.TEMPORARY_MARK}{dead}-abcdefgh.npy"
    stale.write_bytes(b"half")
    assert embed(model_dir, root, output) == 0
    assert sorted(os.listdir(output)) == ["embeddings.npy", "index.csv"]


# ----------------------------------------------------------------------------- bad input


def test_bad_flags_fail_with_one_line_and_write_nothing(capsys, model_dir, folder, tmp_path):
    root, _ = folder
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here")
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    output = tmp_path / "vectors"
    cases = [
        ([f"--data_dir={root}", f"--output={output}"], "--model_dir is required"),
        (
            [f"--model_dir={tmp_path / 'nope'}", f"--data_dir={root}", f"--output={output}"],
            r"nope/config\.json does not exist",
        ),
        ([f"--model_dir={tmp_path}", f"--data_dir={root}", f"--output={output}"], "config.json"),
        ([f"--model_dir={model_dir}", f"--output={output}"], "--data_dir is required"),
        ([f"--model_dir={model_dir}", f"--data_dir={root}"], "--output is required"),
        (
            [f"--model_dir={model_dir}", f"--data_dir={tmp_path / 'nope'}", f"--output={output}"],
            "--data_dir must be an existing folder of images",
        ),
        (
            [f"--model_dir={model_dir}", f"--data_dir={tmp_path / 'empty'}", f"--output={output}"],
            r"--data_dir=.*empty: `path` holds no files ending in \.png",
        ),
        (
            [f"--model_dir={model_dir}", f"--data_dir={tmp_path / 'notes'}", f"--output={output}"],
            r"holds no files .*readme\.txt",
        ),
        (
            [f"--model_dir={model_dir}", f"--data_dir={root}", f"--output={a_file}"],
            "--output must be a directory, but it is a file",
        ),
        (
            [
                f"--model_dir={model_dir}",
                f"--data_dir={root}",
                f"--output={output}",
                "--batch_size=0",
            ],
            "--batch_size=0",
        ),
    ]
    for arguments, match in cases:
        assert run_cli("embed", *arguments) == 2, arguments
        assert re.search(match, error_message(capsys)), arguments
        assert not os.path.exists(output), arguments


def test_a_run_without_its_model_is_refused(capsys, model_dir, folder, tmp_path):
    root, _ = folder
    run = tmp_path / "run"
    run.mkdir()
    (run / run_dir.CONFIG).write_text((model_dir / run_dir.CONFIG).read_text())
    assert embed(run, root, tmp_path / "vectors") == 2
    assert "model.keras does not exist" in error_message(capsys)
    (run / run_dir.MODEL).write_bytes(b"half a zip")
    assert embed(run, root, tmp_path / "vectors") == 2
    assert "model.keras is damaged" in error_message(capsys)
    assert not os.path.exists(tmp_path / "vectors")


def damaged_png(path, seed):
    """A PNG whose header and end are whole and whose compressed pixels are not."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE), np.uint8)).save(
        buffer, format="PNG"
    )
    data = bytearray(buffer.getvalue())
    start = data.index(b"IDAT") + 8
    data[start : start + 20] = bytes(value ^ 0xFF for value in data[start : start + 20])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["text", "cut", "inside", "too_large"])
def test_a_bad_image_is_named_and_stops_or_is_skipped(
    capsys, model_dir, model, folder, tmp_path, damage
):
    root, names = folder
    bad = root / "cat" / "2.png"
    if damage == "text":
        bad.write_text("not an image")
    elif damage == "cut":
        bad.write_bytes(bad.read_bytes()[:40])
    elif damage == "inside":
        damaged_png(bad, 2)
    else:
        write_image(bad, 2, size=(20, 20))  # 400 pixels, over --max_pixels=300
    limit = ["--max_pixels=300"] if damage == "too_large" else []
    output = tmp_path / "vectors"
    assert embed(model_dir, root, output, "--batch_size=2", *limit) == 2
    assert str(bad) in error_message(capsys)
    assert not os.path.exists(output)

    with pytest.warns(UserWarning, match=re.escape(str(bad))):
        assert embed(model_dir, root, output, "--batch_size=2", "--on_error=skip", *limit) == 0
    kept = [name for name in names if name != "cat/2.png"]
    assert [row[1] for row in read_index(output)[1:]] == kept
    assert [row[0] for row in read_index(output)[1:]] == [str(row) for row in range(len(kept))]
    embeddings = np.load(output / embed_command.EMBEDDINGS)
    np.testing.assert_allclose(embeddings, expected_embeddings(model, root, kept), atol=1e-5)
    assert sorted(os.listdir(output)) == ["embeddings.npy", "index.csv"]


def test_a_folder_of_only_damaged_images_writes_nothing(capsys, model_dir, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    damaged_png(root / "a.png", 0)
    output = tmp_path / "vectors"
    assert embed(model_dir, root, output, "--on_error=skip") == 2
    message = error_message(capsys)
    assert (
        "No image under --data_dir could be decoded" in message and str(root / "a.png") in message
    )
    assert not os.path.exists(output)


# ----------------------------------------------------------------------------- progress


def test_progress_is_a_line_per_tenth_off_a_terminal(capsys, model_dir, folder, tmp_path):
    root, _ = folder
    assert embed(model_dir, root, tmp_path / "vectors", "--batch_size=1") == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("embed:")]
    percents = [int(re.match(r"embed: +(\d+)%", line).group(1)) for line in lines]
    assert percents == sorted(set(percents)) and percents[-1] == 100 and len(lines) <= 10
    assert embed(model_dir, root, tmp_path / "quiet", "--noprogress") == 0
    assert "embed:" not in capsys.readouterr().err


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_lines_and_bar():
    stream = io.StringIO()
    progress = progress_lines.Progress(1000, "embed", stream=stream)
    for _ in range(40):
        progress.update(25)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert [line.split("(")[0].strip() for line in lines] == [
        f"embed: {percent:3d}%" for percent in range(10, 101, 10)
    ]
    assert lines[-1].startswith("embed: 100% (1000/1000 images, ")
    terminal = Terminal()
    progress = progress_lines.Progress(1000, "embed", stream=terminal)
    progress.update(1000)
    progress.close()
    assert "embed: 100%|" in terminal.getvalue() and "images," not in terminal.getvalue()
    silent = io.StringIO()
    progress = progress_lines.Progress(3, "embed", enabled=False, stream=silent)
    progress.update(3)
    assert silent.getvalue() == "" and progress.done == 3


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_a_trained_run_embeds_as_its_export_serves(capsys, tmp_path):
    """train on a folder -> embed -> export: each row is the served embedding of its file."""
    root = tmp_path / "photos"
    names = [f"{label}/{i}.png" for label in ("cat", "dog", "owl") for i in range(4)]
    for seed, name in enumerate(names):
        write_image(root / name, seed)
    model_dir = tmp_path / "run"
    train = [
        f"--data_dir={root}",
        f"--model_dir={model_dir}",
        "--image_size=16",
        "--batch_size=8",
        "--epochs=1",
        "--encoder_width=4",
        "--projection_dims=16,8",
        "--strategy=default",
        "--verbose=0",
        "--plots=false",
        "--knn_monitor=false",
        "--precision=float32",  # the export computes in the model's precision too; exact
    ]
    assert run_cli("train", *train) == 0, capsys.readouterr().err
    output = tmp_path / "vectors"
    assert embed(model_dir, root, output, "--batch_size=5") == 0
    export_dir = tmp_path / "export"
    export = [f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--warmup=false"]
    assert run_cli("export", *export) == 0
    served = ks.export.load_for_inference(str(export_dir))
    index = read_index(output)[1:]
    assert [row[1] for row in index] == names and [row[2] for row in index] == [
        name.split("/")[0] for name in names
    ]
    embeddings = np.load(output / embed_command.EMBEDDINGS)
    from_bytes = served.embed_bytes([(root / name).read_bytes() for name in names])
    np.testing.assert_allclose(embeddings, from_bytes, atol=1e-5)
    pixels = np.stack([np.asarray(Image.open(root / name)) for name in names])[..., None]
    np.testing.assert_allclose(embeddings, served.embed(pixels), atol=1e-5)
    capsys.readouterr()
