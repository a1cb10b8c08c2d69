"""Image patches of a Vision Transformer: cutting images into them, and the 2-D sine-cosine
position embedding of their grid.

The order of the patches is the order of the ViT's tokens: row by row, left to right (the
Conv2D patch embedding's output reshaped), each patch's pixels row by row with the channels
last. MAE (`keras_siamese.MAE`) uses `patchify` for its targets and `unpatchify` to show its
reconstructions.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_siamese import validation


def patchify(images, patch_size: int) -> tf.Tensor:
    """Cuts `(batch, H, W, C)` images into `(batch, H/p * W/p, p * p * C)` patches.

    Args:
        images: a rank-4 tensor whose height and width are multiples of `patch_size`.
        patch_size: side `p` of the square patches.

    Returns:
        The patches, row-major over the grid, each flattened as `(p, p, C)`.

    Raises:
        ValueError: for a non-positive patch size or a side that is not a multiple of it.

    Example:
        >>> patchify(tf.zeros((2, 28, 28, 1)), 4).shape
        TensorShape([2, 49, 16])
    """
    patch_size = validation.check_integer("patch_size", patch_size)
    images = tf.convert_to_tensor(images)
    height, width, channels = images.shape[1:4]
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"Argument `images` must have a height and width that are multiples of "
            f"patch_size={patch_size}. Received: images.shape={tuple(images.shape)}"
        )
    rows, columns = height // patch_size, width // patch_size
    patches = tf.reshape(images, (-1, rows, patch_size, columns, patch_size, channels))
    patches = tf.transpose(patches, (0, 1, 3, 2, 4, 5))
    return tf.reshape(patches, (-1, rows * columns, patch_size * patch_size * channels))


def unpatchify(patches, patch_size: int, grid: tuple[int, int], channels: int) -> tf.Tensor:
    """The inverse of `patchify`: `(batch, rows * columns, p * p * C)` -> images.

    Args:
        patches: the patches, row-major over the grid.
        patch_size: side `p` of the patches.
        grid: `(rows, columns)` of patches.
        channels: image channels `C`.

    Returns:
        `(batch, rows * p, columns * p, C)` images.

    Example:
        >>> images = tf.random.uniform((2, 8, 8, 3))
        >>> bool(tf.reduce_all(unpatchify(patchify(images, 4), 4, (2, 2), 3) == images))
        True
    """
    rows, columns = int(grid[0]), int(grid[1])
    images = tf.reshape(patches, (-1, rows, columns, patch_size, patch_size, channels))
    images = tf.transpose(images, (0, 1, 3, 2, 4, 5))
    return tf.reshape(images, (-1, rows * patch_size, columns * patch_size, channels))


def sincos_position_embedding(rows: int, columns: int, dim: int) -> np.ndarray:
    """The fixed 2-D sine-cosine position embedding of a `rows x columns` grid of patches.

    Half of the `dim` features encode the row, half the column, each as the 1-D embedding of
    Vaswani et al. 2017 (section 3.5): `sin(pos * w_i)` then `cos(pos * w_i)` with
    `w_i = 1 / 10000^(i / (dim / 4))`, `i < dim / 4`. This is the embedding MAE (He et al.
    2022) and MoCo v3 (Chen et al. 2021) fix instead of learning one.

    Args:
        rows: patches per column of the grid.
        columns: patches per row.
        dim: embedding size, a multiple of 4.

    Returns:
        float32 `(rows * columns, dim)`, row-major like the tokens.

    Raises:
        ValueError: for a `dim` that is not a positive multiple of 4.

    Example:
        >>> sincos_position_embedding(7, 7, 64).shape
        (49, 64)
    """
    dim = validation.check_integer("dim", dim)
    if dim % 4:
        raise ValueError(
            "Argument `dim` must be a multiple of 4 for the 2-D sine-cosine position "
            f"embedding (sin and cos of the row and of the column). Received: dim={dim}"
        )
    quarter = dim // 4
    frequencies = 1.0 / 10000.0 ** (np.arange(quarter, dtype=np.float64) / quarter)
    row, column = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")

    def one_axis(positions):
        angles = positions.reshape(-1, 1) * frequencies.reshape(1, -1)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    return np.concatenate([one_axis(row), one_axis(column)], axis=1).astype(np.float32)
