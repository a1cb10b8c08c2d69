"""TensorBoard Embedding Projector files: embeddings, metadata, sprite and config.

The projector plugin reads `projector_config.pbtxt` (a `ProjectorConfig` protobuf in text
format) from the root of the log directory or from a run directory; `projector_files` writes
the tensors as TSV and the config with the plugin's own `tensorboard.plugins.projector`
(`ProjectorConfig` and `visualize_embeddings`). TensorBoard and Pillow are imported inside
the function.
"""

from __future__ import annotations

import math
import os

import numpy as np

from keras_siamese import atomic_files
from keras_siamese.plots.figures import _as_uint8_images, _class_name

MAX_SPRITE_SIDE = 8192  # TensorBoard's limit on the sprite image, in pixels.
# The file name the plugin looks for (`tensorboard.plugins.projector.metadata.PROJECTOR_FILENAME`).
PROJECTOR_CONFIG = "projector_config.pbtxt"
PROJECTOR_TENSORS = "projector_tensors.tsv"
PROJECTOR_METADATA = "projector_metadata.tsv"
PROJECTOR_SPRITE = "projector_sprite.png"


def _sprite(images: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Tiles images row-major into a square sprite no larger than TensorBoard accepts."""
    from PIL import Image

    images = _as_uint8_images(images)
    count, height, width = images.shape[:3]
    columns = math.ceil(math.sqrt(count))
    scale = min(1.0, MAX_SPRITE_SIDE / (columns * max(height, width)))
    if scale < 1.0:
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        images = np.stack([np.asarray(Image.fromarray(image).resize(size)) for image in images])
        height, width = images.shape[1:3]
    sprite = np.zeros((columns * height, columns * width) + images.shape[3:], np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        sprite[row * height : (row + 1) * height, column * width : (column + 1) * width] = image
    return sprite, (height, width)


def projector_files(
    embeddings: np.ndarray,
    labels: np.ndarray,
    images: np.ndarray,
    log_dir: str | os.PathLike,
    class_names: list[str] | tuple[str, ...] | None = None,
    tensor_name: str = "test_embeddings",
) -> str:
    """Writes the files of TensorBoard's Embedding Projector into `log_dir`.

    `tensorboard --logdir LOG_DIR` then shows the points in its Projector tab (PCA, t-SNE,
    UMAP, nearest neighbours), each drawn as its image and searchable by class. Written, in
    the projector plugin's format: `projector_tensors.tsv` (one embedding per line),
    `projector_metadata.tsv` (a `label<TAB>class` header, one line per embedding),
    `projector_sprite.png` (the images tiled row-major, scaled down if needed so the sprite
    stays within 8192 pixels) and `projector_config.pbtxt`, the `ProjectorConfig` that ties
    them together (paths relative to `log_dir`), written by
    `tensorboard.plugins.projector.visualize_embeddings`. A config already in `log_dir` is
    replaced.

    Args:
        embeddings: `(N, D)` embeddings.
        labels: `(N,)` integer classes.
        images: `(N, H, W, C)` images in [0, 255] (C = 1 or 3), in the same order.
        log_dir: the TensorBoard log directory (created if missing).
        class_names: names indexed by class for the metadata (class numbers otherwise).
        tensor_name: the name the projector shows for the embeddings.

    Returns:
        The path of `projector_config.pbtxt`.

    Raises:
        ValueError: if the shapes do not fit together, there are no embeddings, or they are
            not finite.

    Example:
        >>> projector_files(np.eye(4), [0, 1, 0, 1], np.zeros((4, 8, 8, 1), "uint8"),
        ...                 "/tmp/logs")
        '/tmp/logs/projector_config.pbtxt'
    """
    embeddings = np.asarray(embeddings, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    images = np.asarray(images)
    count = len(embeddings)
    if embeddings.ndim != 2 or count == 0 or labels.shape != (count,):
        raise ValueError(
            "Arguments `embeddings` and `labels` must have shapes (N, D) and (N,) with N >= 1. "
            f"Received: embeddings.shape={embeddings.shape}, labels.shape={labels.shape}"
        )
    if images.ndim != 4 or len(images) != count or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"Argument `images` must have shape ({count}, height, width, 1 or 3), one image per "
            f"embedding. Received: images.shape={images.shape}"
        )
    if not np.isfinite(embeddings).all():
        raise ValueError("Argument `embeddings` contains NaN or infinite values.")
    if not isinstance(log_dir, (str, os.PathLike)):
        raise TypeError(
            f"Argument `log_dir` must be a directory path. Received: log_dir={log_dir!r}"
        )
    log_dir = os.fspath(log_dir)
    os.makedirs(log_dir, exist_ok=True)
    from PIL import Image
    from tensorboard.plugins import projector

    with atomic_files.atomic_write(os.path.join(log_dir, PROJECTOR_TENSORS)) as file:
        np.savetxt(file, embeddings, fmt="%.6g", delimiter="\t")
    with atomic_files.atomic_write(os.path.join(log_dir, PROJECTOR_METADATA)) as file:
        file.write("label\tclass\n")
        for label in labels:
            name = _class_name(int(label), class_names).replace("\t", " ").replace("\n", " ")
            file.write(f"{int(label)}\t{name}\n")
    sprite, (height, width) = _sprite(images)
    with atomic_files.atomic_write(os.path.join(log_dir, PROJECTOR_SPRITE), "wb") as file:
        Image.fromarray(sprite).save(file, format="PNG")
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = tensor_name
    embedding.tensor_path = PROJECTOR_TENSORS
    embedding.metadata_path = PROJECTOR_METADATA
    embedding.sprite.image_path = PROJECTOR_SPRITE
    embedding.sprite.single_image_dim.extend([width, height])
    projector.visualize_embeddings(log_dir, config)
    return os.path.join(log_dir, PROJECTOR_CONFIG)
