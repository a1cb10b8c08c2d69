"""Issue 22, the export: `embed_bytes` refuses a 20000x20000 PNG from its header (5); an
overwrite keeps a servable version at every moment and killed exports' leftovers go (10)."""

import os
import shutil
import subprocess
import sys

import keras
import pytest
from conftest import tiny_encoder
from test_reliability_readers import huge_png, small_png

from keras_siamese.export import export_for_serving, versions

IMAGE_SHAPE = (16, 16, 3)


def plain_model(seed=1):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(IMAGE_SHAPE)
    return keras.Model(inputs, tiny_encoder(IMAGE_SHAPE)(keras.layers.Rescaling(1 / 255)(inputs)))


REFUSE_IN_TENSORFLOW_ONLY = r"""
import resource, sys, time
import tensorflow as tf
version_dir, huge_path, small_path = sys.argv[1:]
embed = tf.saved_model.load(version_dir).signatures["embed_bytes"]
small, huge = open(small_path, "rb").read(), open(huge_path, "rb").read()
assert embed(image_bytes=tf.constant([small]))["embedding"].shape[0] == 1
assert "keras_siamese" not in sys.modules  # (`import tensorflow` itself loads keras.src parts)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    embed(image_bytes=tf.constant([small, huge]))
    raise SystemExit("not refused")
except tf.errors.InvalidArgumentError as error:
    seconds = time.perf_counter() - start
    message = error.message
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
assert "image_bytes[1]" in message, message
assert "is 20000x20000 = 400000000 pixels" in message, message
assert "max_pixels=16777216" in message, message
assert "keras_siamese" not in sys.modules
print(f"refused in {seconds * 1000:.1f} ms, max RSS grew {grown:.1f} MiB")
assert seconds < 0.1 and grown < 50, (seconds, grown)
"""


def test_embed_bytes_refuses_a_20000_squared_png_before_decoding(tmp_path):
    version_dir = export_for_serving(plain_model(), tmp_path / "export", warmup=False)
    (tmp_path / "huge.png").write_bytes(huge_png())
    (tmp_path / "small.png").write_bytes(small_png(size=20))
    result = subprocess.run(
        [sys.executable, "-c", REFUSE_IN_TENSORFLOW_ONLY, version_dir, "huge.png", "small.png"],
        cwd=tmp_path,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def _servable(export_dir):
    return [
        version
        for version in versions.numeric_versions(str(export_dir))
        if os.path.isfile(os.path.join(export_dir, str(version), "saved_model.pb"))
    ]


@pytest.mark.parametrize("exchange", [True, False], ids=["swap", "renames"])
def test_overwrite_keeps_a_servable_version_at_every_moment(tmp_path, monkeypatch, exchange):
    export_dir = tmp_path / "export"
    export_for_serving(plain_model(1), export_dir, version=1, warmup=False)
    if not exchange:
        monkeypatch.setattr(versions, "_exchange", lambda first, second: False)
    states = []
    rename, remove_tree = os.rename, shutil.rmtree

    def watched_rename(source, target):
        states.append(_servable(export_dir))
        rename(source, target)
        states.append(_servable(export_dir))

    monkeypatch.setattr(os, "rename", watched_rename)
    monkeypatch.setattr(
        shutil,
        "rmtree",
        lambda *a, **k: (states.append(_servable(export_dir)), remove_tree(*a, **k)),
    )
    export_for_serving(plain_model(2), export_dir, version=1, overwrite=True, warmup=False)
    assert states and all(states), states
    assert sorted(os.listdir(export_dir)) == ["1"]


def test_a_kill_between_the_renames_leaves_a_servable_version(tmp_path, monkeypatch):
    export_dir = tmp_path / "export"
    export_for_serving(plain_model(1), export_dir, version=1, warmup=False)
    monkeypatch.setattr(versions, "_exchange", lambda first, second: False)
    rename, calls = os.rename, []

    def killed_at_the_second_rename(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        rename(source, target)

    monkeypatch.setattr(os, "rename", killed_at_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        export_for_serving(plain_model(2), export_dir, version=1, overwrite=True, warmup=False)
    monkeypatch.undo()
    assert _servable(export_dir)  # the old model, as spare version 0
    export_for_serving(plain_model(3), export_dir, version=2, warmup=False)
    assert sorted(os.listdir(export_dir)) == ["1", "2"]  # the spare went back to 1


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_next_export_removes_leftovers_of_killed_exports(tmp_path):
    export_dir = tmp_path / "export"
    dead = export_dir / f".version-3.tmp-{_dead_pid()}-abcd1234"
    alive = export_dir / f".version-4.tmp-{os.getpid()}-abcd1234"
    legacy = export_dir / ".tmp-3-0123abcd"
    for directory in (dead, alive, legacy):
        os.makedirs(directory / "variables")
        (directory / "saved_model.pb").write_bytes(b"half written")
    os.utime(legacy, (0, 0))
    export_for_serving(plain_model(), export_dir, warmup=False)
    assert sorted(os.listdir(export_dir)) == [alive.name, "1"]
