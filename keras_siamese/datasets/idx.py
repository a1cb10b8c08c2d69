"""The IDX file format of (Fashion-)MNIST: gzipped, big-endian header, unsigned bytes."""

from __future__ import annotations

import functools
import gzip
import os
import zlib

import numpy as np

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions.
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension.


def read_idx(path: str, magic: int) -> np.ndarray:
    """Returns the read-only array of a gzipped IDX file, parsed once per file version.

    Raises:
        ValueError: naming the file, when it is not a complete gzip stream, has another magic
            number, or holds fewer or more bytes than its header announces.
    """
    status = os.stat(path)
    return _read_idx_cached(path, status.st_mtime_ns, status.st_size, magic)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, mtime_ns: int, size: int, magic: int) -> np.ndarray:
    """Parses one gzipped IDX file of unsigned bytes; the key includes mtime and size."""
    del mtime_ns, size  # Only part of the cache key.
    try:
        with gzip.open(path, "rb") as file:
            data = file.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(
            f"{path} could not be decompressed ({error}): expected a complete gzip file. "
            "It is truncated or corrupt: replace it."
        ) from error
    rank = magic & 0xFF
    header_bytes = 4 + 4 * rank
    found_magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found_magic != magic:
        raise ValueError(
            f"{path} has magic number {found_magic}, expected {magic} (an IDX file of "
            f"unsigned bytes with {rank} dimensions). It is corrupt or not the right file."
        )
    if len(data) < header_bytes:
        raise ValueError(
            f"{path} has {len(data)} bytes, expected at least a {header_bytes}-byte header. "
            "It is truncated: replace it."
        )
    shape = tuple(int(side) for side in np.frombuffer(data, ">u4", count=rank, offset=4))
    if rank == 3 and (shape[1] == 0 or shape[2] == 0):
        raise ValueError(f"{path} header gives image size {shape[1:]}, expected positive sides.")
    expected = int(np.prod(shape))
    found = len(data) - header_bytes
    if found != expected:
        raise ValueError(
            f"{path} header gives shape {shape}, so expected {expected} bytes of data, "
            f"but found {found}. The file is truncated or corrupt: replace it."
        )
    array = np.frombuffer(data, np.uint8, offset=header_bytes).reshape(shape)
    array.flags.writeable = False
    return array
