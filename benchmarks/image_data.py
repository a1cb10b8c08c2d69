"""Colour, larger and cluttered benchmark images built offline from Fashion-MNIST, seeded.

The package's recipes were first measured on 28x28 grey Fashion-MNIST only. These data sets
ask the same ten-class question of images a user might bring, built from nothing but the
machine's Fashion-MNIST and a fixed seed (never stored in the repository):

- `colour32`: each 28x28 shape centred on a 32x32 canvas, drawn in a random foreground colour
  on a random background colour (the two at least `MIN_COLOUR_DISTANCE` apart in RGB, so the
  shape stays visible). Colour carries no class information: a nuisance.
- `clutter64`, `clutter96`: each shape scaled to 40-80% of the side and placed at a random
  position, in a random colour, on a textured, cluttered background (two random colour
  gratings and smooth colour noise at 60% contrast, three random strokes), the shape's colour
  at least `MIN_COLOUR_DISTANCE` from the background's mean colour.

`build(name, split, seed)` returns `(images uint8 (N, S, S, 3), labels int64)`, the same
for the same arguments on any machine; `write_folder` writes them as one PNG per image under
one sub-folder per class (what `train --data_dir` reads).

    python benchmarks/image_data.py --name=colour32 --output_dir=/tmp/ks_images
"""

from __future__ import annotations

import os

import numpy as np

NAMES = ("colour32", "clutter64", "clutter96")
CLASS_NAMES = (
    "t_shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot",
)  # fmt: skip
MIN_COLOUR_DISTANCE = 96.0  # RGB distance between a shape's colour and its background's
SCALES = (0.4, 0.8)  # clutter: the shape's side as a fraction of the image side
TEXTURE_CONTRAST = 0.6  # clutter: the texture's deviations from its mean colour, scaled
SPLIT_SEEDS = {"train": 0, "test": 1}
CHUNK = 2000


def side_of(name: str) -> int:
    """The image side of data set `name` (32, 64 or 96)."""
    if name not in NAMES:
        raise ValueError(
            f"Unknown data set {name!r}; known: {', '.join(NAMES)}. Received: name={name!r}"
        )
    return int(name[-2:])


def _colour_pairs(
    rng: np.random.Generator, count: int, background: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`count` (foreground, background) RGB pairs at least MIN_COLOUR_DISTANCE apart (random
    backgrounds unless given)."""
    foreground = rng.uniform(0, 255, (count, 3))
    if background is None:
        background = rng.uniform(0, 255, (count, 3))
    close = np.linalg.norm(foreground - background, axis=1) < MIN_COLOUR_DISTANCE
    while close.any():
        foreground[close] = rng.uniform(0, 255, (int(close.sum()), 3))
        close = np.linalg.norm(foreground - background, axis=1) < MIN_COLOUR_DISTANCE
    return foreground, background


def _colour32(shapes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    alpha = np.pad(shapes.astype(np.float32) / 255.0, ((0, 0), (2, 2), (2, 2)))[..., None]
    foreground, background = _colour_pairs(rng, len(shapes))
    images = background[:, None, None] * (1 - alpha) + foreground[:, None, None] * alpha
    return np.clip(np.round(images), 0, 255).astype(np.uint8)


def _smooth_noise(rng: np.random.Generator, count: int, side: int) -> np.ndarray:
    """Colour noise on a coarse 8x8 grid, upsampled bilinearly: (count, side, side, 3)."""
    coarse = rng.uniform(0, 255, (count, 8, 8, 3)).astype(np.float32)
    positions = np.linspace(0, 7, side)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, 7)
    weight = (positions - low).astype(np.float32)
    rows = (
        coarse[:, low] * (1 - weight)[None, :, None, None]
        + coarse[:, high] * weight[None, :, None, None]
    )
    return (
        rows[:, :, low] * (1 - weight)[None, None, :, None]
        + rows[:, :, high] * weight[None, None, :, None]
    )


def _gratings(rng: np.random.Generator, count: int, side: int) -> np.ndarray:
    """Two random sinusoidal gratings per image, each in its own colour: (count, side, side, 3)."""
    grid = np.arange(side, dtype=np.float32)
    rows, cols = np.meshgrid(grid, grid, indexing="ij")
    texture = np.zeros((count, side, side, 3), np.float32)
    for _ in range(2):
        angle = rng.uniform(0, np.pi, count)[:, None, None]
        period = rng.uniform(4, side / 2, count)[:, None, None]
        phase = rng.uniform(0, 2 * np.pi, count)[:, None, None]
        wave = np.sin(2 * np.pi * (rows * np.cos(angle) + cols * np.sin(angle)) / period + phase)
        colour = rng.uniform(0, 255, (count, 1, 1, 3))
        texture += 0.5 * (wave[..., None] + 1) * colour / 2
    return texture


def _strokes(images: np.ndarray, rng: np.random.Generator) -> None:
    """Three random straight strokes (2 pixels wide, random colour) on each image, in place."""
    count, side = images.shape[:2]
    steps = np.linspace(0, 1, 2 * side)
    for _ in range(3):
        start = rng.uniform(0, side - 2, (count, 2))
        end = rng.uniform(0, side - 2, (count, 2))
        colour = rng.uniform(0, 255, (count, 3))
        points = start[:, None] + (end - start)[:, None] * steps[None, :, None]
        points = points.astype(int)
        index = np.repeat(np.arange(count), len(steps))
        for offset in ((0, 0), (1, 0), (0, 1), (1, 1)):
            y = points[..., 0].ravel() + offset[0]
            x = points[..., 1].ravel() + offset[1]
            images[index, y, x] = np.repeat(colour, len(steps), axis=0)


def _resized(shape: np.ndarray, size: int) -> np.ndarray:
    """One 28x28 shape resized to `size` (area-averaged when smaller, bilinear when larger)."""
    positions = (np.arange(size) + 0.5) * 28 / size - 0.5
    low = np.clip(np.floor(positions).astype(int), 0, 27)
    high = np.clip(low + 1, 0, 27)
    weight = np.clip(positions - low, 0, 1)
    rows = shape[low] * (1 - weight)[:, None] + shape[high] * weight[:, None]
    return rows[:, low] * (1 - weight)[None] + rows[:, high] * weight[None]


def _clutter(shapes: np.ndarray, rng: np.random.Generator, side: int) -> np.ndarray:
    count = len(shapes)
    texture = 0.5 * _gratings(rng, count, side) + 0.5 * _smooth_noise(rng, count, side)
    mean = texture.mean(axis=(1, 2), keepdims=True)
    background = mean + TEXTURE_CONTRAST * (texture - mean)
    _strokes(background, rng)
    sizes = np.round(rng.uniform(*SCALES, count) * side).astype(int)
    corners = rng.uniform(0, 1, (count, 2))
    foreground, _ = _colour_pairs(rng, count, background.mean(axis=(1, 2)))
    images = background
    for index in range(count):
        size = sizes[index]
        alpha = _resized(shapes[index].astype(np.float32) / 255.0, size)[..., None]
        top, left = (corners[index] * (side - size)).astype(int)
        window = images[index, top : top + size, left : left + size]
        window[:] = window * (1 - alpha) + foreground[index] * alpha
    return np.clip(np.round(images), 0, 255).astype(np.uint8)


def build(name: str, split: str = "train", seed: int = 0, limit: int | None = None):
    """Data set `name`'s `split`: `(uint8 images (N, S, S, 3), int64 labels (N,))`.

    Args:
        name: one of `NAMES`.
        split: "train" (60,000 images) or "test" (10,000).
        seed: the generator's seed (each split draws from its own stream of it).
        limit: the first `limit` images only (the same images as the whole split's first).

    Returns:
        The images and their Fashion-MNIST labels.
    """
    import keras_siamese as ks

    side = side_of(name)
    shapes, labels = ks.datasets.load_arrays("fashion_mnist", split)
    shapes = shapes[..., 0] if shapes.ndim == 4 else shapes
    count = len(shapes) if limit is None else min(limit, len(shapes))
    chunks = []
    for start in range(0, count, CHUNK):  # whole chunks: each drawn from its own seed
        rng = np.random.default_rng([seed, SPLIT_SEEDS[split], side, start])
        part = shapes[start : start + CHUNK]
        chunks.append(_colour32(part, rng) if side == 32 else _clutter(part, rng, side))
    return np.concatenate(chunks)[:count], labels[:count].astype(np.int64)


def write_folder(images: np.ndarray, labels: np.ndarray, directory: str) -> str:
    """One PNG per image in `directory/<class name>/<index>.png`; returns `directory`.

    A folder written completely before holds a `.complete` marker and is kept as it is.
    """
    import tensorflow as tf

    marker = os.path.join(directory, ".complete")
    if os.path.exists(marker):
        return directory
    for name in CLASS_NAMES:
        os.makedirs(os.path.join(directory, name), exist_ok=True)
    paths = [
        os.path.join(directory, CLASS_NAMES[label], f"{index:05d}.png")
        for index, label in enumerate(labels)
    ]

    def write(image, path):
        with tf.control_dependencies([tf.io.write_file(path, tf.io.encode_png(image))]):
            return tf.constant(0)

    # Encoded and written in a tf.data graph, in parallel (eager ops: ~25 ms an image).
    files = tf.data.Dataset.from_tensor_slices((images, paths)).map(
        write, num_parallel_calls=tf.data.AUTOTUNE
    )
    for _ in files:
        pass
    from keras_siamese.atomic_files import atomic_write

    with atomic_write(marker) as handle:  # written last, whole: an interrupted folder has none
        handle.write(f"{len(images)}\n")
    return directory


def write_split_folders(name: str, output_dir: str, seed: int = 0) -> dict[str, str]:
    """Writes `name`'s train and test folders under `output_dir/name`; returns their paths."""
    folders = {}
    for split in ("train", "test"):
        images, labels = build(name, split, seed)
        folders[split] = write_folder(images, labels, os.path.join(output_dir, name, split))
    return folders


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", choices=NAMES, default="colour32")
    parser.add_argument("--output_dir", default="/tmp/ks_images")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    print(write_split_folders(arguments.name, arguments.output_dir, arguments.seed))
