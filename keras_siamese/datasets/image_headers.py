"""Reads the header and checks the ending of PNG, JPEG, BMP and GIF files, without decoding.

The file readers call `read_header` on every file before streaming anything, so a file that
is not an image (a text file named `.png`), is empty, is cut short (a truncated download), or
is a variant TensorFlow's decoder would misread is reported by path up front. It costs a few
small reads per file; the pixel data are decoded later, in `tf.data`. Damage inside the
compressed pixel data (a flipped bit mid-file) is only seen by the decoder.

The channel count is the one `tf.io.decode_image(..., channels=0)` returns: 1 (grayscale),
2 (grayscale + alpha), 3 (RGB; also palette PNGs, GIFs and CMYK JPEGs, which TensorFlow
converts) or 4 (RGBA; palette PNGs with transparency and 32-bit BMPs).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import BinaryIO, NamedTuple

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # colour type -> channels (palette: RGB).
# JPEG start-of-frame markers (C0-CF except DHT C4, JPG C8 and DAC CC).
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_CHANNELS = {1: 1, 3: 3, 4: 3}  # components -> channels (CMYK is converted to RGB).
_JPEG_TAIL = 65536  # the end-of-image marker is looked for in the last 64 KiB.
_BMP_CHANNELS = {8: 1, 24: 3, 32: 4}  # bits per pixel -> channels.


class ImageHeader(NamedTuple):
    """What a file's header says: format, size and the channels TensorFlow decodes."""

    format: str
    height: int
    width: int
    channels: int


class InvalidImageError(ValueError):
    """A file that is not a complete PNG, JPEG, BMP or GIF image TensorFlow can decode."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path} {reason}")
        self.path = path
        self.reason = reason


def read_header(path: str) -> ImageHeader:
    """Returns the header of the image file at `path`.

    Raises:
        InvalidImageError: (a `ValueError`) naming the file and what is wrong with it.
    """
    try:
        with open(path, "rb") as file:
            return _read(file, os.fstat(file.fileno()).st_size, path)
    except OSError as error:
        raise InvalidImageError(path, f"could not be read ({error}).") from error


def header_from_bytes(data: bytes, name: str) -> ImageHeader:
    """Returns the header of an encoded image held in memory (`name` is for messages)."""
    return _read(io.BytesIO(data), len(data), name)


def _read(file: BinaryIO, size: int, path: str) -> ImageHeader:
    start = file.read(8)
    if not start:
        raise InvalidImageError(path, "is empty (0 bytes).")
    if start == _PNG_SIGNATURE:
        return _png(file, size, path)
    if start[:2] == b"\xff\xd8":
        return _jpeg(file, size, path)
    if start[:2] == b"BM":
        return _bmp(file, size, path)
    if start[:6] in (b"GIF87a", b"GIF89a"):
        return _gif(file, size, path)
    raise InvalidImageError(
        path,
        f"is not a PNG, JPEG, BMP or GIF image: it starts with the bytes {start!r}.",
    )


def _truncated(path: str, format_name: str, detail: str) -> InvalidImageError:
    return InvalidImageError(
        path, f"is a truncated or corrupt {format_name} file ({detail}). Replace it."
    )


def _png(file: BinaryIO, size: int, path: str) -> ImageHeader:
    chunk = file.read(25)
    if len(chunk) < 25 or chunk[4:8] != b"IHDR":
        raise _truncated(path, "PNG", "no IHDR chunk after the signature")
    if zlib.crc32(chunk[4:21]) != struct.unpack(">I", chunk[21:25])[0]:
        raise _truncated(path, "PNG", "the IHDR chunk fails its CRC")
    width, height, _, color_type = struct.unpack(">IIBB", chunk[8:18])
    if color_type not in _PNG_CHANNELS or not width or not height:
        raise _truncated(path, "PNG", f"colour type {color_type}, size {height}x{width}")
    channels = _PNG_CHANNELS[color_type]
    while True:  # Chunks up to the first IDAT: a palette's transparency comes before it.
        chunk_header = file.read(8)
        if len(chunk_header) < 8:
            raise _truncated(path, "PNG", "it ends before its image data")
        length, kind = struct.unpack(">I4s", chunk_header)
        if kind == b"IDAT":
            break
        if kind == b"tRNS" and color_type == 3:
            channels = 4
        file.seek(length + 4, io.SEEK_CUR)
    file.seek(max(size - len(_PNG_END), 0))
    if file.read(len(_PNG_END)) != _PNG_END:
        raise _truncated(path, "PNG", "it does not end with an IEND chunk")
    return ImageHeader("png", height, width, channels)


def _jpeg(file: BinaryIO, size: int, path: str) -> ImageHeader:
    file.seek(2)
    frame = None
    while True:
        byte = file.read(1)
        if not byte:
            raise _truncated(path, "JPEG", "it ends before its image data")
        if byte != b"\xff":
            raise _truncated(path, "JPEG", f"expected a marker at byte {file.tell() - 1}")
        marker = file.read(1)
        while marker == b"\xff":  # fill bytes
            marker = file.read(1)
        if not marker:
            raise _truncated(path, "JPEG", "it ends before its image data")
        code = marker[0]
        if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without a length
            continue
        if code == 0xD9:
            raise _truncated(path, "JPEG", "it ends before its image data")
        length_bytes = file.read(2)
        if len(length_bytes) < 2:
            raise _truncated(path, "JPEG", "it ends inside a segment header")
        length = struct.unpack(">H", length_bytes)[0]
        if length < (8 if code in _JPEG_FRAMES else 2):
            raise _truncated(path, "JPEG", f"a segment of impossible length {length}")
        if code in _JPEG_FRAMES:
            data = file.read(6)
            if len(data) < 6:
                raise _truncated(path, "JPEG", "it ends inside its frame header")
            _, height, width, components = struct.unpack(">BHHB", data)
            frame = (height, width, components)
            file.seek(length - 8, io.SEEK_CUR)
        elif code == 0xDA:  # start of scan: the compressed data follow
            break
        else:
            file.seek(length - 2, io.SEEK_CUR)
    if frame is None:
        raise _truncated(path, "JPEG", "no frame header before its image data")
    height, width, components = frame
    if components not in _JPEG_CHANNELS or not height or not width:
        raise InvalidImageError(
            path,
            f"is a JPEG with {components} components and size {height}x{width}, which "
            "TensorFlow's decoder does not read. Convert it to a standard RGB or grayscale "
            "JPEG or PNG.",
        )
    scan_start = file.tell()
    tail_start = max(scan_start, size - _JPEG_TAIL)
    file.seek(tail_start)
    if b"\xff\xd9" not in file.read(size - tail_start):
        raise _truncated(path, "JPEG", "no end-of-image marker")
    return ImageHeader("jpeg", height, width, _JPEG_CHANNELS[components])


def _bmp(file: BinaryIO, size: int, path: str) -> ImageHeader:
    file.seek(0)
    header = file.read(54)
    if len(header) < 54:
        raise _truncated(path, "BMP", "shorter than its 54-byte header")
    data_offset, dib_size, width, height, _, bits, compression = struct.unpack(
        "<I I i i H H I", header[10:34]
    )
    supported = (
        dib_size >= 40
        and bits in _BMP_CHANNELS
        and (compression == 0 or (compression == 3 and bits == 32))
    )
    if not supported or width <= 0 or height == 0:
        raise InvalidImageError(
            path,
            f"is a BMP with {bits} bits per pixel, compression {compression} and a "
            f"{dib_size}-byte header, which TensorFlow's decoder does not read (it reads "
            "uncompressed 8-bit grayscale, 24-bit and 32-bit BMPs). Convert it to PNG.",
        )
    if bits == 8:
        colors = struct.unpack("<I", header[46:50])[0] or 256
        file.seek(14 + dib_size)
        palette = file.read(4 * colors)
        gray = all(palette[4 * i : 4 * i + 3] == bytes((i, i, i)) for i in range(colors))
        if len(palette) < 4 * colors or not gray:
            raise InvalidImageError(
                path,
                "is an 8-bit BMP with a colour palette; TensorFlow's decoder would return the "
                "palette indices as gray levels. Convert it to PNG.",
            )
    row_bytes = (bits * width + 31) // 32 * 4
    needed = data_offset + row_bytes * abs(height)
    if size < needed:
        raise _truncated(path, "BMP", f"{size} bytes where its header needs {needed}")
    return ImageHeader("bmp", abs(height), width, _BMP_CHANNELS[bits])


def _gif(file: BinaryIO, size: int, path: str) -> ImageHeader:
    file.seek(6)
    screen = file.read(4)
    if len(screen) < 4:
        raise _truncated(path, "GIF", "shorter than its header")
    width, height = struct.unpack("<HH", screen)
    file.seek(size - 1)
    if not width or not height or file.read(1) != b"\x3b":
        raise _truncated(path, "GIF", "no trailer byte at its end")
    return ImageHeader("gif", height, width, 3)
