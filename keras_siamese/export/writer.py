"""`export_for_serving`: one call from a trained model to a versioned SavedModel for TF Serving."""

from __future__ import annotations

import json
import logging
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from keras_siamese.datasets import pixel_limit
from keras_siamese.export import calibration, checks, preprocess, search, versions
from keras_siamese.export import module as module_lib
from keras_siamese.export import warmup as warmup_lib

METADATA_FILE = "metadata.json"
METADATA_FORMAT = "keras_siamese.export/1"
CALIBRATION_BATCH_SIZE = 256
numeric_versions = versions.numeric_versions  # where `inference` and users look for it

logger = logging.getLogger(__name__)


def _pair_scores(similarity, images_a: np.ndarray, images_b: np.ndarray) -> np.ndarray:
    """Scores of the exported `similarity` function on validation pairs, in chunks."""
    similarity = similarity.get_concrete_function()
    scores = [
        similarity(
            tf.constant(images_a[start : start + CALIBRATION_BATCH_SIZE]),
            tf.constant(images_b[start : start + CALIBRATION_BATCH_SIZE]),
        )[module_lib.SCORE_KEY].numpy()
        for start in range(0, len(images_a), CALIBRATION_BATCH_SIZE)
    ]
    return np.concatenate(scores) if scores else np.zeros((0,), np.float32)


def _metadata(
    model: keras.Model,
    module: module_lib.ExportModule,
    embedding_dims: int,
    is_metric_model: bool,
    signatures: list[str],
    verification: dict | None,
    warmup_signatures: list[str] | None,
) -> dict:
    """What a client needs to know about the export, stored as the `metadata` signature."""
    height, width, channels = module.image_shape
    gallery = module.gallery
    score = "cosine similarity" if module.distance == "cosine" else "negated euclidean distance"
    return {
        "format": METADATA_FORMAT,
        "model": model.name,
        "model_class": type(model).__name__,
        "distance": module.distance,
        "normalize": model.normalize if is_metric_model else None,
        "embedding_dims": embedding_dims,
        "image_size": [height, width],
        "channels": channels,
        "signatures": signatures,
        "preprocessing": {
            "images": "uint8 in [0, 255], cast to float32 and given to the model as in training",
            "image_bytes": preprocess.DESCRIPTION,
            "embedding": "L2-normalised float32",
        },
        "score": score + " (higher = more similar)",
        "verify": verification,
        "search": None
        if gallery is None
        else {
            "gallery_size": gallery.size,
            "top_k": gallery.top_k,
            "id_dtype": gallery.id_dtype.name,
            "scores": "cosine similarity to the L2-normalised gallery embeddings",
            "chunk_rows": gallery.chunk_rows,
        },
        "warmup": None
        if warmup_signatures is None
        else {
            "file": f"{warmup_lib.WARMUP_DIRECTORY}/{warmup_lib.WARMUP_FILE}",
            "signatures": warmup_signatures,
        },
        "tensorflow_version": tf.__version__,
    }


def _verification(model, functions, calibration_pairs, threshold, is_metric_model):
    """The `verify` threshold and its calibration, or None (no `verify` signature)."""
    if calibration_pairs is not None:
        images_a, images_b, same = calibration_pairs
        scores = _pair_scores(functions[module_lib.SIMILARITY_SIGNATURE], images_a, images_b)
        return calibration.calibrate(scores, same, threshold)
    if threshold is not None:
        return {"threshold": threshold, "threshold_source": "given"}
    if is_metric_model:
        logger.warning(
            "No `verify` signature for %s: pass `threshold=` or `calibration_pairs=` to "
            "export_for_serving to get one.",
            model.name,
        )
    return None


def _write_version(module, concrete, metadata, records, version_dir, version, overwrite):
    """Writes the SavedModel and its extras into a temporary directory, then publishes it."""
    temporary_dir = versions.new_temporary_dir(os.path.dirname(version_dir), version)
    try:
        tf.saved_model.save(module, temporary_dir, signatures=concrete)
        extra_dir = os.path.join(temporary_dir, warmup_lib.WARMUP_DIRECTORY)
        os.makedirs(extra_dir, exist_ok=True)
        with open(os.path.join(extra_dir, METADATA_FILE), "w", encoding="utf-8") as file:
            json.dump(metadata, file, indent=2, sort_keys=True)
        if records is not None:
            warmup_lib.write_warmup_file(temporary_dir, records)
        versions.publish(temporary_dir, version_dir, version, overwrite)
    finally:
        if os.path.exists(temporary_dir):
            shutil.rmtree(temporary_dir, ignore_errors=True)


def _build(
    model,
    embedding_model,
    image_shape,
    gallery,
    gallery_ids,
    top_k,
    threshold,
    calibration_pairs,
    warmup_enabled,
    max_pixels,
):
    """Builds the module, its signatures (as `tf.function`s and traced) and its metadata."""
    distance, is_metric_model = checks.model_distance(model)
    embedding_dims = checks.embedding_dims_of(embedding_model)
    module = module_lib.ExportModule(embedding_model, image_shape, embedding_dims, distance)
    if gallery is not None:
        module.attach_gallery(search.Gallery(gallery, gallery_ids, top_k, embedding_dims))

    functions = {module_lib.SERVING_SIGNATURE: module_lib.serving_default(module)}
    if image_shape[-1] in (1, 3):
        functions[module_lib.EMBED_BYTES_SIGNATURE] = module_lib.embed_bytes(module, max_pixels)
    else:
        logger.warning(
            "No `embed_bytes` signature: encoded images decode to 1 or 3 channels, and the "
            "model takes %d.",
            image_shape[-1],
        )
    functions[module_lib.SIMILARITY_SIGNATURE] = module_lib.similarity(module)

    verification = _verification(model, functions, calibration_pairs, threshold, is_metric_model)
    if verification is not None:
        verification["rule"] = "same = score >= threshold"
        functions[module_lib.VERIFY_SIGNATURE] = module_lib.verify(
            module, verification["threshold"]
        )
    if module.gallery is not None:
        functions[module_lib.SEARCH_SIGNATURE] = module_lib.search_signature(module)

    signatures = [*functions, module_lib.METADATA_SIGNATURE]
    warmup_signatures = list(functions) if warmup_enabled else None
    metadata = _metadata(
        model,
        module,
        embedding_dims,
        is_metric_model,
        signatures,
        verification,
        warmup_signatures,
    )
    metadata["preprocessing"]["max_pixels"] = max_pixels
    functions[module_lib.METADATA_SIGNATURE] = module_lib.metadata(metadata)
    return module, functions, module_lib.concrete_signatures(module, functions), metadata


def export_for_serving(
    model: keras.Model,
    export_dir: str | os.PathLike,
    version: int | None = None,
    overwrite: bool = False,
    image_size: int | tuple[int, int] | None = None,
    gallery=None,
    gallery_ids=None,
    top_k: int = 10,
    warmup: bool = True,
    threshold: float | None = None,
    calibration_pairs: tuple | None = None,
    max_pixels: int | None = pixel_limit.DEFAULT_MAX_PIXELS,
) -> str:
    """Writes `model` as a versioned SavedModel that TensorFlow Serving answers end to end.

    The export holds the model's representation — `model.embedding_model()` for keras_siamese
    models (the encoder without projection or prediction heads, as used downstream by SimCLR,
    Chen et al. 2020, Sec. 2.1), or `model` itself for a plain Keras model taking float32
    images in [0, 255] — and all preprocessing, so a client needs nothing of ours. Neither the
    trainer nor its optimizer state is saved. Signatures (see `keras_siamese.export.module`):

    - `serving_default`: uint8 `images` `[None, H, W, C]` -> L2-normalised `embedding`.
    - `embed_bytes`: string `image_bytes` `[None]` (JPEG, PNG, ...; grayscale or RGB, up to
      `max_pixels` pixels) -> `embedding`, decoded and resized in the graph as
      `keras_siamese.datasets.load` does for training. The size is read from each image's
      header first: a larger image is refused before decoding, in milliseconds and without a
      large allocation (a 1.2 MB PNG can declare 20000x20000 pixels, 1.2 GiB decoded).
    - `similarity`: `images_a`, `images_b` -> `score` (the Siamese model's own score, or the
      cosine similarity for other models; higher = more similar).
    - `verify` (given `threshold` or `calibration_pairs`): -> `score` and `same`
      (`score >= threshold`). With `calibration_pairs` the threshold is set at the pairs' equal
      error rate, unless `threshold` is also given; their ROC AUC and EER go in the metadata.
    - `search` (given a `gallery`): `images` -> the `top_k` gallery `ids` and their cosine
      `scores`; the gallery is stored as a variable and searched in chunks.
    - `metadata`: no inputs -> `json` (distance, sizes, preprocessing, threshold and its
      calibration, ...), also written to `assets.extra/metadata.json`.

    With `warmup=True`, `assets.extra/tf_serving_warmup_requests` holds one request per
    signature with inputs, which TensorFlow Serving replays on load. It needs
    `tensorflow-serving-api`, installed with `pip install --no-deps tensorflow-serving-api`
    (a plain install pulls the full `tensorflow` package); without it this raises ImportError
    before anything is written — pass `warmup=False` to export without warm-up.

    The version is written atomically: into a hidden temporary directory of `export_dir`
    (`.version-<version>.tmp-<pid>-<random>`), flushed, then renamed to `<version>`, so a
    server polling `export_dir` never sees a half-written version, and a failed export leaves
    nothing behind. With `overwrite=True` the old and new directories are swapped in one
    atomic step where the OS allows it, else renamed in an order that keeps a complete
    numeric version at every moment (see `keras_siamese.export.versions`): a kill at any
    point leaves a servable version. Every export first removes what killed exports left
    (temporary directories whose process no longer runs).

    Args:
        model: a keras_siamese model, or a `keras.Model` taking float32 images in [0, 255]
            of shape `(H, W, C)` and returning representations `(batch, D)`.
        export_dir: the directory holding the versions; created if missing.
        version: the version to write, a positive integer. Defaults to one more than the
            highest version in `export_dir` (1 for an empty one).
        overwrite: replace `version` if it exists instead of raising.
        image_size: `(H, W)` of the served images, needed only for a model taking any size.
        gallery: `(N, D)` gallery embeddings, the model's raw `predict` output; adds `search`.
        gallery_ids: `(N,)` integer or string ids of the gallery; `0 .. N-1` by default.
        top_k: how many neighbours `search` returns, at most `N`.
        warmup: write TensorFlow Serving's warm-up requests.
        threshold: the `verify` threshold on the score, if known.
        calibration_pairs: validation pairs `(images_a, images_b, same)` (uint8 images of the
            served shape, one boolean per pair) to calibrate and document the threshold.
        max_pixels: the most pixels (width x height) an `embed_bytes` image may have, read
            from its header before decoding; 4096 x 4096 by default, None for no limit.
            Stored in the metadata (`preprocessing.max_pixels`).

    Returns:
        The path of the written version directory, `export_dir/<version>`.

    Raises:
        TypeError: for arguments of the wrong type (`model` not a `keras.Model`, ...).
        ValueError: if `version` is not positive, `export_dir` is a file, the version exists
            and `overwrite` is False, the model has no `(H, W, C)` image input or does not
            return `(batch, D)`, the gallery and its ids disagree in length or `top_k`
            exceeds the gallery, or the calibration pairs are malformed or of one class.
        ImportError: if `warmup=True` and `tensorflow-serving-api` cannot be imported.

    Example:
        >>> inputs = keras.Input((16, 16, 1))
        >>> features = keras.layers.GlobalAveragePooling2D()(
        ...     keras.layers.Conv2D(4, 3)(keras.layers.Rescaling(1 / 255)(inputs)))
        >>> path = export_for_serving(keras.Model(inputs, features), "/tmp/embedder")
        >>> sorted(load_for_inference(path).signatures)
        ['embed_bytes', 'metadata', 'serving_default', 'similarity']
    """
    export_dir = checks.check_arguments(export_dir, version, overwrite, top_k, warmup)
    max_pixels = pixel_limit.check_max_pixels(max_pixels)
    threshold = calibration.check_threshold(threshold)
    if gallery is None and gallery_ids is not None:
        raise ValueError(
            "`gallery_ids` needs a `gallery` (the embeddings they name). "
            "Received: gallery=None with gallery_ids"
        )
    if warmup:
        warmup_lib.require_serving_api()
    embedding_model = checks.resolve_embedding_model(model)
    image_shape = checks.image_shape_of(embedding_model, image_size)
    if calibration_pairs is not None:
        calibration_pairs = checks.check_calibration_pairs(calibration_pairs, image_shape)
    for path in versions.remove_leftovers(export_dir):
        logger.warning("Removed or restored %s, left by an export that was killed.", path)
    if version is None:
        version = max(numeric_versions(export_dir), default=0) + 1
    version = int(version)
    version_dir = os.path.join(export_dir, str(version))
    if os.path.lexists(version_dir) and not overwrite:
        versions.refuse_existing(version_dir, version)

    module, functions, concrete, metadata = _build(
        model,
        embedding_model,
        image_shape,
        gallery,
        gallery_ids,
        top_k,
        threshold,
        calibration_pairs,
        warmup,
        max_pixels,
    )
    records = None
    if warmup:
        model_name = os.path.basename(os.path.abspath(export_dir))
        records = warmup_lib.warmup_requests(functions, image_shape, model_name)

    os.makedirs(export_dir, exist_ok=True)
    _write_version(module, concrete, metadata, records, version_dir, version, overwrite)
    return version_dir
