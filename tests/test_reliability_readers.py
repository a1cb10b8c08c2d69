"""Issue 22, the readers: pixel limit before decoding (5), symlink loops (6), decode errors
that name the file, shard and record (9)."""

import os
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import datasets


def huge_png(height=20000, width=20000):
    """A valid, fully decodable black RGB PNG of `height` x `width` (~1.2 MB for 20000^2).

    Each row (filter byte + zeros) is compressed once after a full flush, so every row's
    deflate bytes are equal and the stream is that unit repeated; the Adler-32 of n zero
    bytes is `(n % 65521) << 16 | 1`.
    """
    row = bytes(1 + 3 * width)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressor.compress(row)
    compressor.flush(zlib.Z_FULL_FLUSH)
    unit = compressor.compress(row) + compressor.flush(zlib.Z_FULL_FLUSH)
    final = compressor.flush(zlib.Z_FINISH)
    adler = ((len(row) * height) % 65521) << 16 | 1
    data = b"\x78\xda" + unit * height + final + struct.pack(">I", adler)

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def small_png(seed=0, size=8):
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return tf.io.encode_png(pixels).numpy()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(data)


# ---------------------------------------------------------------- 5: pixel limit


def test_huge_png_is_a_valid_png():
    data = huge_png(300, 200)  # the same construction, small enough to decode here
    assert tf.io.decode_png(data).shape == (300, 200, 3)
    assert datasets.pixel_limit.encoded_size(tf.constant(data)).numpy().tolist() == [300, 200]


def test_folder_reader_refuses_20000_squared_png_from_its_header(tmp_path):
    write(str(tmp_path / "a" / "huge.png"), huge_png())
    write(str(tmp_path / "a" / "ok.png"), small_png(1))
    write(str(tmp_path / "b" / "ok.png"), small_png(2))
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(
        ValueError, match=r"huge\.png is 20000x20000 = 400000000 pixels.*max_pixels"
    ):
        datasets.from_directory(tmp_path, 8)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"folder reader refused 20000x20000 PNG in {seconds * 1000:.1f} ms, peak {peak} B")
    assert seconds < 0.1 and peak < 50 * 2**20
    with pytest.warns(UserWarning, match="huge.png"):
        skipped = datasets.from_directory(tmp_path, 8, on_error="skip", shuffle=False)
    assert len(skipped.file_paths) == 2
    assert len(datasets.list_image_files(tmp_path, max_pixels=None).file_paths) == 3
    with pytest.raises(ValueError, match=r"max_pixels.*Received: max_pixels=0"):
        datasets.from_directory(tmp_path, 8, max_pixels=0)


def test_tfrecord_reader_refuses_a_large_record_in_the_graph(tmp_path):
    path = str(tmp_path / "shard.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for data in (small_png(1), huge_png(300, 200)):
            feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))}
            writer.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )
    dataset = datasets.from_tfrecords(path, 8, shuffle=False, max_pixels=100 * 100)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"shard .*shard\.tfrecord record 1"):
        list(dataset)


# ---------------------------------------------------------------- 6: symbolic links


def _classes(tmp_path, per_class=3):
    for name in ("a", "b"):
        for index in range(per_class):
            write(str(tmp_path / name / f"{index}.png"), small_png(index))


def _labels_by_name(files):
    return sorted(
        (os.path.relpath(path, files.file_paths[0].rsplit(os.sep, 2)[0]), int(label))
        for path, label in zip(files.file_paths, files.labels, strict=True)
    )


def test_a_loop_to_its_own_folder_adds_no_images(tmp_path):
    _classes(tmp_path)
    os.symlink(".", tmp_path / "a" / "loop")
    with pytest.warns(UserWarning, match="loop"):
        files = datasets.list_image_files(tmp_path)
    assert len(files.file_paths) == 6
    assert np.bincount(files.labels).tolist() == [3, 3]


def test_a_link_to_the_parent_never_relabels(tmp_path):
    _classes(tmp_path)
    os.symlink("..", tmp_path / "a" / "up")
    os.symlink("../b", tmp_path / "a" / "other_class")
    with pytest.warns(UserWarning, match="not followed"):
        files = datasets.list_image_files(tmp_path)
    assert [
        label
        for path, label in zip(files.file_paths, files.labels, strict=True)
        if os.path.basename(os.path.dirname(path)) == "b"
    ] == [1, 1, 1]
    assert len(files.file_paths) == 6


def test_two_loops_finish_and_list_each_file_once(tmp_path):
    _classes(tmp_path)
    os.makedirs(tmp_path / "a" / "x")
    os.symlink("..", tmp_path / "a" / "x" / "back")
    os.symlink("x", tmp_path / "a" / "into")
    os.symlink(".", tmp_path / "b" / "self")
    with pytest.warns(UserWarning):
        unlabelled = datasets.list_image_files(tmp_path, labels=None)  # as --gallery_dir
    assert len(unlabelled.file_paths) == 6
    with pytest.warns(UserWarning):
        assert len(datasets.list_image_files(tmp_path).file_paths) == 6


def test_a_link_to_a_folder_outside_is_still_followed(tmp_path):
    _classes(tmp_path / "data")
    write(str(tmp_path / "extra" / "e.png"), small_png(9))
    os.symlink(tmp_path / "extra", tmp_path / "data" / "a" / "extra")
    files = datasets.list_image_files(tmp_path / "data")
    assert len(files.file_paths) == 7
    assert files.file_paths[0].endswith(os.path.join("a", "0.png"))


# ---------------------------------------------------------------- 9: named decode errors


def _damaged_png():
    data = bytearray(small_png(3, size=32))
    start = data.index(b"IDAT") + 8
    data[start : start + 40] = bytes(40)  # inside the compressed pixels: headers still pass
    return bytes(data)


def test_a_png_damaged_inside_its_data_names_the_file(tmp_path):
    _classes(tmp_path)
    write(str(tmp_path / "b" / "damaged.png"), _damaged_png())
    dataset = datasets.from_directory(tmp_path, 8, shuffle=False)  # passes the header check
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"b/damaged\.png\W{0,3} could not be"):
        list(dataset)
    skipped = datasets.from_directory(tmp_path, 8, shuffle=False, on_error="skip")
    assert len(list(skipped)) == 6


def test_a_bad_tfrecord_record_names_the_shard_and_record(tmp_path):
    paths = [str(tmp_path / f"train-{index}.tfrecord") for index in range(2)]
    for path in paths:
        with tf.io.TFRecordWriter(path) as writer:
            for index in range(4):
                data = _damaged_png() if (path == paths[1] and index == 2) else small_png(index)
                feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))}
                example = tf.train.Example(features=tf.train.Features(feature=feature))
                writer.write(example.SerializeToString())
    dataset = datasets.from_tfrecords(str(tmp_path / "train-*"), 8, shuffle=False)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"shard .*train-1\.tfrecord record 2\W{0,3} could not be",
    ):
        list(dataset)
