"""`mae_reconstructions`: a masked autoencoder's reconstructions beside the images, as a PNG."""

from __future__ import annotations

import os

import numpy as np

from keras_siamese import atomic_files
from keras_siamese.plots.figures import DPI, _as_uint8_images, _check_path, _pyplot

RECONSTRUCTION_CELL_INCHES = (1.2, 1.3)  # (width, height) of one image of the grid
RECONSTRUCTION_COLUMNS = ("original", "masked", "reconstruction", "with visible")
MASKED_GRAY = 128  # the masked patches' gray in the "masked" column


def reconstruction_figure_pixels(num_images: int) -> tuple[int, int]:
    """Returns the `(width, height)` in pixels of `mae_reconstructions`."""
    return (
        round(len(RECONSTRUCTION_COLUMNS) * RECONSTRUCTION_CELL_INCHES[0] * DPI),
        round(num_images * RECONSTRUCTION_CELL_INCHES[1] * DPI),
    )


def _check_inputs(images, masks, reconstructions) -> tuple[np.ndarray, ...]:
    images = np.asarray(images, np.float64)
    masks = np.asarray(masks, np.float64)
    reconstructions = np.asarray(reconstructions, np.float64)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or not len(images):
        raise ValueError(
            "Argument `images` must have shape (images, height, width, 1 or 3). "
            f"Received: images.shape={images.shape}"
        )
    if masks.shape != (*images.shape[:3], 1) or reconstructions.shape != images.shape:
        raise ValueError(
            "Arguments `masks` and `reconstructions` must have shapes "
            f"{(*images.shape[:3], 1)} and {images.shape} (`MAE.reconstruct`'s outputs for "
            f"`images`). Received: masks.shape={masks.shape}, "
            f"reconstructions.shape={reconstructions.shape}"
        )
    return images, masks, reconstructions


def mae_reconstructions(
    images, masks, reconstructions, path: str | os.PathLike, title: str | None = None
) -> str:
    """Draws each image, its masked version, the reconstruction and the two combined.

    One row per image, four columns: the original; the visible patches with the masked ones
    gray; the decoder's output on every patch (`keras_siamese.MAE.reconstruct`); the
    visible patches with the reconstruction in the masked ones (MAE's figures show the
    third, noting the fourth looks better). Cells are `RECONSTRUCTION_CELL_INCHES` at
    `DPI` (see `reconstruction_figure_pixels`). The file is written whole or not at all.

    Args:
        images: `(N, H, W, C)` images in [0, 255], C = 1 or 3 (at the model's image size).
        masks: `(N, H, W, 1)`, 1 on masked pixels (`reconstruct`'s first output).
        reconstructions: `(N, H, W, C)` in [0, 255] (`reconstruct`'s second output).
        path: the PNG file to write; its directory is created.
        title: the figure's title.

    Returns:
        `path`.

    Raises:
        TypeError: if `path` is not a path.
        ValueError: if the shapes do not fit together.

    Example:
        >>> mask, reconstruction = model.reconstruct(images[:4], seed=0)
        >>> mae_reconstructions(images[:4], mask, reconstruction, "/tmp/plots/mae.png")
        '/tmp/plots/mae.png'
    """
    images, masks, reconstructions = _check_inputs(images, masks, reconstructions)
    path = _check_path(path)
    columns = (
        images,
        np.where(masks > 0.5, MASKED_GRAY, images),
        reconstructions,
        np.where(masks > 0.5, reconstructions, images),
    )
    pixels = [_as_uint8_images(column) for column in columns]
    pyplot = _pyplot()
    width, height = reconstruction_figure_pixels(len(images))
    figure, axes = pyplot.subplots(
        len(images), len(columns), figsize=(width / DPI, height / DPI), dpi=DPI, squeeze=False
    )
    gray = pixels[0].ndim == 3
    for row in range(len(images)):
        for column, name in enumerate(RECONSTRUCTION_COLUMNS):
            axis = axes[row, column]
            axis.imshow(pixels[column][row], cmap="gray" if gray else None, vmin=0, vmax=255)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(name, fontsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9 if title else 0.95)
    with atomic_files.atomic_path(path) as temporary:  # whole or absent
        figure.savefig(temporary, format="png", dpi=DPI)
    pyplot.close(figure)
    return path
