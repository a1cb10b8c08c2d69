"""Files written whole or not at all: a failure or a kill mid-write leaves the old file."""

import os
import subprocess
import sys
import textwrap

import pytest

from keras_siamese import atomic_files


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with atomic_files.atomic_write(target) as file:
        file.write("new")
        assert target.read_text() == "old"  # readers see the old file until the rename
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["result.json"]


def test_an_error_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_files.atomic_write(target) as file:
            file.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["result.json"]


def test_a_kill_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.keras"
    target.write_bytes(b"complete")
    code = textwrap.dedent(
        f"""
        import os
        from keras_siamese import atomic_files
        with atomic_files.atomic_path({str(target)!r}) as path:
            with open(path, "wb") as file:
                file.write(b"half")
                file.flush()
            os._exit(9)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=False, timeout=120)
    assert target.read_bytes() == b"complete"
    leftovers = [name for name in os.listdir(tmp_path) if name != "model.keras"]
    assert len(leftovers) == 1 and atomic_files.is_temporary(leftovers[0])
    assert leftovers[0].endswith(".keras")  # the extension Keras' writers require
    assert atomic_files.remove_stale(str(tmp_path)) == [str(tmp_path / leftovers[0])]
    assert os.listdir(tmp_path) == ["model.keras"]


def test_remove_stale_keeps_a_running_writers_file(tmp_path):
    with atomic_files.atomic_path(tmp_path / "a.json") as temporary:
        with open(temporary, "w") as file:
            file.write("{}")
        assert atomic_files.remove_stale(str(tmp_path)) == []
        assert os.path.exists(temporary)
    assert (tmp_path / "a.json").read_text() == "{}"


def test_a_writer_that_writes_nothing_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Nothing was written.*a\.keras"):
        with atomic_files.atomic_path(tmp_path / "a.keras"):
            pass
    assert os.listdir(tmp_path) == []


def test_bad_mode():
    with pytest.raises(ValueError, match=r"`mode` must be 'w' or 'wb'. Received: mode='a'"):
        with atomic_files.atomic_write("x", mode="a"):
            pass


def test_temporary_names():
    assert atomic_files.is_temporary(".model.tmp-12-abc.keras")
    assert not atomic_files.is_temporary("model.keras")
    assert not atomic_files.is_temporary(".hidden")
