"""The command line on your own data and backbones: --data_dir, --dataset=tfrecord:, --encoder.

Flag errors answer without TensorFlow (one fresh interpreter runs them all); bad folders fail
with one error line before anything is written; folders and TFRecords are probed, resolved and
batched; keras.applications and KerasHub encoders build at the view shape; and a folder of
PNG files written here is trained on, evaluated and exported end to end (slow).
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_siamese as ks
from keras_siamese import cli
from keras_siamese.cli import (
    data,
    encoder_flag,
    methods,
    run_config,
    run_dir,
    source_data,
    sources,
    train_command,
    train_flags,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLASSES = ("cat", "dog", "owl")
TINY = [
    "--image_size=16",
    "--batch_size=8",
    "--epochs=1",
    "--encoder_width=4",
    "--projection_dims=16,8",
    "--knn_k=3",
    "--strategy=default",
    "--precision=float32",  # no --precision=auto probe (tests/test_cli.py times it)
    "--verbose=0",
    "--plots=false",
]


def class_images(count, seed=0, size=16):
    """`count` grayscale uint8 images; image i is of class i % 3, in that class's brightness."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(CLASSES)
    images = rng.integers(0, 60, (count, size, size)) + 90 * labels[:, None, None]
    return images.astype("uint8"), labels


def write_pngs(root, images, labels=None):
    """Writes image i to root/<class>/<i>.png (root/<i>.png without labels); returns paths."""
    paths = []
    for index, image in enumerate(images):
        folder = root if labels is None else root / CLASSES[labels[index]]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{index:03d}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def labelled_folders(root, train=24, test=12):
    """root/train and root/test with the three class sub-folders; returns both paths."""
    write_pngs(root / "train", *class_images(train, seed=0))
    write_pngs(root / "test", *class_images(test, seed=1))
    return root / "train", root / "test"


def run_cli(*arguments):
    return cli.main(["keras-siamese", *arguments])


def error_message(capsys):
    """The one `error:` message (with the lines of a listing that follow it)."""
    text = capsys.readouterr().err
    assert len([line for line in text.splitlines() if line.startswith("error:")]) == 1, text
    return text[text.index("error:") :]


def resolved(source, info, *arguments):
    """The resolved configuration of `train` flags for a probed source."""
    values = train_flags.flag_values("--model_dir=unused", *TINY, *arguments)
    return run_config.resolve(values, info, source)


def folder_source(path, labels="auto", eval_dir=""):
    return sources.from_config(
        {"data_dir": str(path), "eval_data_dir": str(eval_dir), "labels": labels}
    )


# ----------------------------------------------------------------------------- no TensorFlow


def test_flag_errors_answer_without_tensorflow(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    stored = {"kind": "folder", "location": str(folder), "eval_dir": None}
    (run / run_dir.CONFIG).write_text(json.dumps({"resolved": {"source": stored}}))
    cases = [
        (["train", f"--data_dir={tmp_path / 'missing'}"], "--data_dir must be an existing folder"),
        (
            ["train", "--encoder=vgg16"],
            "--encoder must be one of resnet10, resnet18, resnet34, resnet50, "
            "keras.applications:NAME, keras_hub:PRESET_DIR",
        ),
        (["train", "--encoder=resnet19"], "Did you mean 'resnet18'"),
        (["train", f"--dataset=tfrecord:{tmp_path}/none-*.tfrecord"], "matches no file"),
        (["train", "--dataset=tfrecord:"], "needs a file pattern after 'tfrecord:'"),
        (["train", f"--data_dir={folder}", "--dataset=mnist"], "both name the training images"),
        (["train", f"--eval_data_dir={folder}"], "holds the queries of a --data_dir run"),
        (["train", "--labels=inferred"], "--labels says how to read the folder"),
        (["train", f"--encoder=keras_hub:{folder}"], "local KerasHub preset directory"),
        (
            ["train", "--encoder=keras.applications:ResNet50V2", "--encoder_weights=none.h5"],
            "--encoder_weights must be a local weights file",
        ),
        (["train", "--encoder_weights=none.h5"], "a ResNet starts from random weights"),
        (
            ["evaluate", f"--model_dir={run}", f"--eval_data_dir={tmp_path / 'missing'}"],
            "--eval_data_dir must be an existing folder",
        ),
        (
            ["export", f"--model_dir={run}", f"--gallery_dir={tmp_path / 'missing'}"],
            "--gallery_dir must be an existing folder",
        ),
    ]
    script = (
        "import json, sys\n"
        "sys.argv = ['/usr/local/bin/keras-siamese']\n"  # the console script: lazy package
        "from keras_siamese import cli\n"
        f"for arguments in json.loads({json.dumps(json.dumps([c for c, _ in cases]))}):\n"
        f"    train = ['--model_dir={tmp_path / 'new_run'}'] if arguments[0] == 'train' else []\n"
        "    print(cli.main(['keras-siamese', *arguments, *train]))\n"
        "    print('---', file=sys.stderr)\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & {'tensorflow', 'keras'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    *statuses, heavy = result.stdout.split()
    assert heavy == "[]"
    assert statuses == ["2"] * len(cases)
    errors = result.stderr.split("---\n")
    assert len(errors) == len(cases) + 1, result.stderr
    for (arguments, expected), error in zip(cases, errors, strict=False):
        assert error.startswith("error: ") and expected in error, (arguments, error)
    assert not os.path.exists(tmp_path / "new_run")


# ----------------------------------------------------------------------------- bad data


def test_bad_folders_fail_with_one_line_before_anything_is_written(capsys, tmp_path):
    train, test = labelled_folders(tmp_path)
    other = tmp_path / "other"
    write_pngs(other, *class_images(6))
    os.rename(other / "owl", other / "bat")
    (tmp_path / "empty").mkdir()
    flat = tmp_path / "flat"
    write_pngs(flat, class_images(12)[0])
    mixed = tmp_path / "mixed"
    write_pngs(mixed, class_images(4)[0])
    Image.fromarray(class_images(1, size=20)[0][0]).save(mixed / "big.png")
    broken = tmp_path / "broken"
    write_pngs(broken, class_images(4)[0])
    (broken / "notes.png").write_text("not an image")
    model_dir = tmp_path / "run"
    cases = [
        (
            [f"--data_dir={train}", f"--eval_data_dir={other}"],
            r"--eval_data_dir=.*other: `class_names` must name each sub-folder",
        ),
        ([f"--data_dir={tmp_path / 'empty'}"], r"--data_dir=.*empty: `path` holds no files"),
        (
            [f"--data_dir={flat}", "--method=siamese-triplet"],
            r"--data_dir=.*flat has no class label \(one sub-folder per class",
        ),
        (
            [f"--data_dir={train}", "--labels=none", "--method=siamese-contrastive"],
            "has no class label",
        ),
        ([f"--data_dir={mixed}", "--image_size=0"], "are of different sizes: pass --image_size"),
        ([f"--data_dir={broken}"], r"notes\.png"),
        # 16 x 16 = 256 pixels, read from the PNG headers, over the limit: named, not decoded.
        ([f"--data_dir={train}", "--max_pixels=100"], r"\d{3}\.png.*max_pixels=100"),
        (
            [f"--data_dir={train}", "--channels=3", "--encoder=keras.applications:MobileNetV3Smal"],
            "Close matches: MobileNetV3Small",
        ),
    ]
    for arguments, match in cases:
        assert run_cli("train", *TINY, *arguments, f"--model_dir={model_dir}") == 2, arguments
        assert re.search(match, error_message(capsys)), arguments
        assert not os.path.exists(model_dir)


def test_skipped_files_are_counted_and_left_out(tmp_path):
    write_pngs(tmp_path, class_images(6)[0])
    (tmp_path / "notes.png").write_text("not an image")
    config = {"labels": "auto", "on_error": "skip", "seed": 0}
    with pytest.warns(UserWarning, match="Skipped 1 of 7 files"):
        info = source_data.probe_source(folder_source(tmp_path), config)
    assert info.num_examples == 6 and info.num_classes is None


# ----------------------------------------------------------------------------- folders


def test_a_labelled_folder_is_probed_resolved_and_batched(tmp_path):
    train, test = labelled_folders(tmp_path)
    source = folder_source(train, eval_dir=test)
    config = {"labels": "auto", "on_error": "raise", "seed": 0}
    info = source_data.probe_source(source, config)
    assert info.image_shape == (16, 16, 1) and info.num_examples == 24
    assert info.num_classes == 3 and info.class_names == list(CLASSES)
    run = resolved(source, info)
    config = run.record()
    assert config["resolved"]["knn_monitor"] and config["resolved"]["files_shuffled"]
    assert config["resolved"]["source"] == {
        "kind": "folder",
        "location": str(train),
        "eval_dir": str(test),
    }
    batches = methods.METHODS["simclr"].build_batches(
        run, source_data.training_data(source, config, [16, 16, 1], supervised=False)
    )
    assert int(batches.cardinality()) == config["resolved"]["steps_per_epoch"] == 3
    images = np.concatenate(list(batches.as_numpy_iterator()))
    expected, _ = class_images(24)
    # Every image exactly once per epoch, reshuffled: a permutation of the files' pixels.
    assert sorted(map(bytes, images)) == sorted(map(bytes, expected[..., None]))
    memory, queries, names = source_data.labelled_sets(source, config, [16, 16, 1], 6, 4)
    memory_labels = [int(label) for _, label in memory.as_numpy_iterator()]
    assert names == list(CLASSES) and sorted(set(memory_labels)) == [0, 1, 2]
    assert len(memory_labels) == 6 and len(list(queries)) == 4


def test_an_unlabelled_folder_trains_without_the_monitor(tmp_path):
    write_pngs(tmp_path / "photos" / "2021", class_images(6)[0])
    write_pngs(tmp_path / "photos", class_images(10, seed=2)[0])  # images at the top: no classes
    source = folder_source(tmp_path / "photos")
    config = {"labels": "auto", "on_error": "raise", "seed": 0}
    info = source_data.probe_source(source, config)
    assert info.num_classes is None and info.num_examples == 16
    config = resolved(source, info).record()
    assert not config["resolved"]["knn_monitor"]
    with pytest.raises(Exception, match="Evaluation needs labelled queries.*--eval_data_dir"):
        source_data.labelled_sets(source, config, [16, 16, 1])


def test_folder_channels_follow_the_files(tmp_path):
    write_pngs(tmp_path / "gray", class_images(2)[0])
    rgba = np.zeros((16, 16, 4), "uint8")
    write_pngs(tmp_path / "alpha", [rgba, rgba])
    write_pngs(tmp_path / "rgb", [rgba[..., :3]])
    config = {"labels": "none", "on_error": "raise", "seed": 0}
    for name, channels in (("gray", 1), ("alpha", 4), ("rgb", 3)):
        info = source_data.probe_source(folder_source(tmp_path / name, "none"), config)
        assert info.image_shape == (16, 16, channels), name


# ----------------------------------------------------------------------------- TFRecords


def write_tfrecords(root, shards=2, per_shard=5):
    images, labels = class_images(shards * per_shard)
    for shard in range(shards):
        with tf.io.TFRecordWriter(str(root / f"train-{shard}.tfrecord")) as writer:
            for index in range(shard * per_shard, (shard + 1) * per_shard):
                png = tf.io.encode_png(images[index][..., None]).numpy()
                feature = {
                    "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[labels[index]])),
                }
                example = tf.train.Example(features=tf.train.Features(feature=feature))
                writer.write(example.SerializeToString())
    return f"{root}/train-*.tfrecord"


def test_tfrecords_are_counted_and_batched(tmp_path):
    pattern = write_tfrecords(tmp_path)
    config = {
        "dataset": f"tfrecord:{pattern}",
        "tfrecord_label_key": "label",
        "tfrecord_image_key": "image",
        "on_error": "raise",
        "seed": 0,
        "shuffle_buffer": 16,
    }
    source = sources.from_config(config)
    assert source.kind == sources.TFRECORD
    info = source_data.probe_source(source, config)
    assert info.num_examples == 10 and info.num_classes == 3 and info.image_shape == (16, 16, 1)
    run = resolved(
        source,
        info,
        f"--dataset=tfrecord:{pattern}",
        "--tfrecord_label_key=label",
        "--batch_size=4",
        "--method=siamese-contrastive",
    )
    config = run.record()
    assert config["resolved"]["steps_per_epoch"] == 2 and not config["resolved"]["knn_monitor"]
    (pairs_a, _), same = next(
        iter(
            methods.METHODS["siamese-contrastive"].build_batches(
                run, source_data.training_data(source, config, [16, 16, 1], supervised=True)
            )
        )
    )
    assert pairs_a.shape == (4, 16, 16, 1) and same.shape == (4,)
    # Keras knows the epoch's length, which TensorFlow cannot tell for TFRecords.
    epoch = source_data.training_data(source, config, [16, 16, 1], supervised=False)
    assert int(epoch.cardinality()) == 10 == data.count(epoch)


# ----------------------------------------------------------------------------- encoders


def test_a_keras_applications_encoder_builds_at_the_view_shape():
    source = sources.Source(sources.NAMED, "fashion_mnist")
    info = data.DatasetInfo("fashion_mnist", (28, 28, 1), 10, None, 64)
    config = resolved(
        source,
        info,
        "--encoder=keras.applications:MobileNetV3Small",
        "--image_size=32",
        "--channels=3",
    )
    assert config.record()["resolved"]["stem"] is None
    model, _ = train_command.build_model_and_optimizer(config)
    assert model.encoder.name == "mobilenetv3small_encoder"
    assert model.encoder.input_shape == (None, 32, 32, 3)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    assert model(images).shape == (2, model.encoder.output_shape[-1])


def test_a_keras_hub_preset_is_rebuilt_at_the_view_shape(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 8],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),  # a preset for any size
    )
    backbone.save_to_preset(str(tmp_path))
    keras_hub.layers.ResNetImageConverter(scale=1 / 127.5, offset=-1.0).save_to_preset(
        str(tmp_path)
    )
    choice = encoder_flag.parse(f"keras_hub:{tmp_path}")
    encoder_flag.check_files(choice, "")
    source = sources.Source(sources.NAMED, "fashion_mnist")
    info = data.DatasetInfo("fashion_mnist", (28, 28, 1), 10, None, 64)
    config = resolved(source, info, f"--encoder=keras_hub:{tmp_path}", "--channels=3")
    encoder = encoder_flag.build(config.encoder, config.view_shape)
    assert encoder.input_shape == (None, 16, 16, 3) and encoder.output_shape == (None, 8)
    preprocessing = encoder.get_layer("preprocessing")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(preprocessing(np.ones((1, 1, 1, 3), "float32"))),
        1.0,
        atol=1e-6,  # [0, 1] -> [0, 255] -> / 127.5 - 1
    )


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_train_evaluate_export_on_a_folder(capsys, tmp_path):
    train, test = labelled_folders(tmp_path)
    model_dir = tmp_path / "run"
    arguments = [f"--data_dir={train}", f"--eval_data_dir={test}", f"--model_dir={model_dir}"]
    assert run_cli("train", *TINY, *arguments) == 0
    config = json.loads((model_dir / run_dir.CONFIG).read_text())
    assert config["resolved"]["class_names"] == list(CLASSES)
    result = json.loads((model_dir / run_dir.TRAIN_RESULT).read_text())
    assert 0.0 <= result["final"]["val_knn_accuracy"] <= 1.0

    evaluate = [
        f"--model_dir={model_dir}",
        "--knn_k=3",
        "--linear_probe_epochs=2",
        "--noprogress",
        "--plots=false",
    ]
    assert run_cli("evaluate", *evaluate) == 0
    results = json.loads((model_dir / run_dir.EVAL).read_text())
    assert results["data"] == f"--data_dir={train}" and results["queries"] == str(test)
    assert results["memory_examples"] == 24 and results["test_examples"] == 12
    assert 0.0 <= results["knn"]["top1"] <= 1.0
    # Queries from another folder of the same classes, with fewer memory examples.
    again = tmp_path / "again"
    write_pngs(again, *class_images(6, seed=3))
    assert run_cli("evaluate", *evaluate, f"--eval_data_dir={again}", "--memory_examples=9") == 0
    results = json.loads((model_dir / run_dir.EVAL).read_text())
    assert results["memory_examples"] == 9 and results["test_examples"] == 6

    export_dir = tmp_path / "export"
    export = ["export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--warmup=false"]
    gallery = [f"--gallery_dir={test}", "--top_k=12", "--calibration_pairs=12"]
    assert run_cli(*export, *gallery, "--max_pixels=1000") == 0
    served = ks.export.load_for_inference(str(export_dir))
    assert served.metadata["preprocessing"]["max_pixels"] == 1000  # embed_bytes' limit
    assert {"search", "verify"} <= set(served.signatures)
    query = np.asarray(Image.open(test / "dog" / "004.png"))[None, ..., None]
    ids, scores = served.search(query)
    paths = sorted(os.path.relpath(path, test).encode() for path in test.glob("*/*.png"))
    assert sorted(ids[0].tolist()) == paths  # ids: paths relative to --gallery_dir
    # The query's own file scores 1 (a barely trained encoder may tie it with others).
    np.testing.assert_allclose(scores[0][ids[0] == b"dog/004.png"], 1.0, atol=1e-5)
    capsys.readouterr()


@pytest.mark.slow
def test_train_and_export_on_tfrecords(capsys, tmp_path):
    pattern = write_tfrecords(tmp_path, shards=2, per_shard=8)
    model_dir = tmp_path / "run"
    train = ["train", *TINY, f"--dataset=tfrecord:{pattern}", f"--model_dir={model_dir}"]
    assert run_cli(*train, "--tfrecord_label_key=label", "--shuffle_buffer=4") == 0
    config = json.loads((model_dir / run_dir.CONFIG).read_text())
    assert config["resolved"]["train_examples"] == 16 and config["resolved"]["num_classes"] == 3
    assert not config["resolved"]["knn_monitor"]  # no labelled queries
    assert run_cli("evaluate", f"--model_dir={model_dir}") == 2
    assert "has neither" in error_message(capsys)
    export_dir = tmp_path / "export"
    export = ["export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--warmup=false"]
    assert run_cli(*export, "--gallery_examples=10", "--top_k=10") == 0
    images, _ = class_images(16)
    served = ks.export.load_for_inference(str(export_dir))
    # Ids count the records shard after shard: 3 in the first shard, 9 in the second.
    for position in (3, 9):
        ids, scores = served.search(images[position : position + 1, ..., None])
        assert sorted(ids[0].tolist()) == list(range(10))
        np.testing.assert_allclose(scores[0][ids[0] == position], 1.0, atol=1e-5)
