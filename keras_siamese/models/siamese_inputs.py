"""The batch formats of `SiameseNetwork` and their checks, before and during tracing.

A batch is one of three formats, decided by the structure of the data and the model's loss:

- `"pairs"` (contrastive loss): `((images_a, images_b), labels)`, labels 1 for a same-class
  pair and 0 otherwise.
- `"labelled"` (triplet loss, mined online): `(images, labels)` with integer class labels.
- `"triplets"` (triplet loss, given explicitly): `((anchors, positives, negatives),)`, i.e.
  `fit(x=(anchors, positives, negatives))`, or a dataset of `(anchors, positives, negatives)`.

The model's mode says which formats it takes: `"pairs"`, `"triplets"` (labelled or explicit
triplets), `"metric"` (a pair loss of `keras_siamese.losses.MetricLoss`: labelled batches with
two images of a class) or `"proxies"` (a proxy loss: labelled batches, any classes).

`parse_batch` works on anything with `.shape` and `.dtype` — tensors, numpy arrays and the
`tf.TensorSpec`s of a dataset's `element_spec` — so `fit` checks a dataset's structure
before anything is traced, and the step checks it again when it is traced.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_siamese import validation

PAIRS = "pairs"
LABELLED = "labelled"
TRIPLETS = "triplets"
METRIC = "metric"
PROXIES = "proxies"

PAIR_FORMAT = "((images_a, images_b), labels) with labels 1 for a same-class pair, 0 otherwise"
TRIPLET_FORMAT = (
    "(images, labels) with integer class labels (triplets are mined in the batch), or "
    "explicit triplets ((anchors, positives, negatives),)"
)
LABELLED_FORMAT = "(images, labels) with integer class labels"
_LOSS_KIND = {TRIPLETS: "a triplet loss", METRIC: "a pair loss", PROXIES: "a proxy loss"}
_FORMAT = {PAIRS: PAIR_FORMAT, TRIPLETS: TRIPLET_FORMAT}


def describe(structure) -> str:
    """The structure of a batch with shapes in place of tensors, for error messages."""
    if isinstance(structure, (tuple, list)):
        inner = ", ".join(describe(item) for item in structure)
        return f"({inner},)" if len(structure) == 1 else f"({inner})"
    if structure is None:
        return "None"
    shape = getattr(structure, "shape", None)
    if shape is None:
        return type(structure).__name__
    return f"<{tuple(shape)} {tf.as_dtype(structure.dtype).name}>"


def _is_images(value) -> bool:
    shape = getattr(value, "shape", None)
    return shape is not None and len(shape) == 4


def check_images(value, image_shape: tuple, argument: str) -> None:
    """Raises unless `value` is a `(batch, height, width, channels)` uint8/float batch."""
    validation.check_image_batch(value, image_shape, argument)


def _check_labels(labels, batch, argument: str, integer: bool) -> None:
    shape = tuple(labels.shape)
    if len(shape) != 1:
        hint = (
            " (integer class ids, not one-hot: use `argmax(labels, axis=-1)`)"
            if integer
            else " (one 0/1 label per pair)"
        )
        raise ValueError(
            f"Argument `{argument}` must have shape (batch,){hint}. "
            f"Received: {argument}.shape={shape}"
        )
    if None not in (shape[0], batch) and shape[0] != batch:
        raise ValueError(
            f"Argument `{argument}` must have one label per example of the batch ({batch}). "
            f"Received: {argument}.shape={shape}"
        )
    dtype = tf.as_dtype(labels.dtype)
    if integer and not dtype.is_integer:
        raise TypeError(
            f"Argument `{argument}` must hold integer class ids (e.g. `labels.astype('int64')`)."
            f" Received: {argument}.dtype={dtype.name}"
        )
    if not (dtype.is_integer or dtype.is_floating or dtype.is_bool):
        raise TypeError(
            f"Argument `{argument}` must be numeric 0/1 pair labels. "
            f"Received: {argument}.dtype={dtype.name}"
        )


def check_same_shapes(images, names) -> None:
    shapes = [tuple(image.shape) for image in images]
    for name, shape in zip(names[1:], shapes[1:], strict=True):
        pairs = zip(shapes[0], shape, strict=True)
        compatible = all(a is None or b is None or a == b for a, b in pairs)
        if not compatible:
            raise ValueError(
                f"Arguments `{names[0]}` and `{name}` must have the same shape. Received: "
                f"{names[0]}.shape={shapes[0]}, {name}.shape={shape}"
            )


def parse_batch(data, mode: str, image_shape: tuple):
    """Checks a batch against the model's loss and returns `(format, tensors)`.

    Args:
        data: what `train_step` receives (or a dataset's `element_spec`).
        mode: `"pairs"` for a contrastive model, `"triplets"` for a triplet model,
            `"metric"` or `"proxies"` for a pair or proxy loss of `losses.MetricLoss`.
        image_shape: the encoder's `(height, width, channels)`.

    Returns:
        `("pairs", (images_a, images_b, labels))`, `("labelled", (images, labels))` or
        `("triplets", (anchors, positives, negatives))`.

    Raises:
        ValueError: for a structure that is not one of the model's formats, images that are
            not `(batch, H, W, C)` with the encoder's channels, or labels not `(batch,)`.
        TypeError: for non-numeric images or non-integer class labels.
    """
    if isinstance(data, list):
        data = tuple(data)
    if isinstance(data, tuple) and len(data) == 3 and all(_is_images(item) for item in data):
        data = (data,)  # a dataset of (anchors, positives, negatives)
    if not isinstance(data, tuple):
        data = (data,)
    while len(data) > 1 and data[-1] is None:  # train_on_batch's (x, y, None), (x, None, None)
        data = data[:-1]
    if len(data) > 2:
        raise ValueError(
            "SiameseNetwork does not take sample weights: a batch is "
            f"{_FORMAT.get(mode, LABELLED_FORMAT)}. Received: {describe(data)}"
        )
    x = data[0]
    y = data[1] if len(data) == 2 else None
    if isinstance(x, list):
        x = tuple(x)
    if mode == PAIRS:
        if not (isinstance(x, tuple) and len(x) == 2 and y is not None):
            raise ValueError(
                f"A SiameseNetwork with a contrastive loss trains on pairs: {PAIR_FORMAT} "
                "(build them with `keras_siamese.sampling.make_pairs`). Received: a batch "
                f"{describe(data)}"
            )
        for value, name in zip(x, ("images_a", "images_b"), strict=True):
            check_images(value, image_shape, name)
        check_same_shapes(x, ("images_a", "images_b"))
        _check_labels(y, x[0].shape[0], "labels", integer=False)
        return PAIRS, (x[0], x[1], y)
    kind, expected = _LOSS_KIND[mode], _FORMAT.get(mode, LABELLED_FORMAT)
    if isinstance(x, tuple):
        if len(x) == 3 and y is None and mode == TRIPLETS:
            names = ("anchors", "positives", "negatives")
            for value, name in zip(x, names, strict=True):
                check_images(value, image_shape, name)
            check_same_shapes(x, names)
            return TRIPLETS, x
        raise ValueError(
            f"A SiameseNetwork with {kind} trains on {expected} (pairs go with "
            f"loss='contrastive'). Received: a batch {describe(data)}"
        )
    if y is None:
        raise ValueError(
            f"A SiameseNetwork with {kind} needs the class labels of the images: {expected}. "
            f"Received: a batch {describe(data)}"
        )
    check_images(x, image_shape, "images")
    _check_labels(y, x.shape[0], "labels", integer=True)
    return LABELLED, (x, y)


def check_arrays(x, y, mode: str, image_shape: tuple, batch_size: int | None) -> None:
    """The checks of `fit`/`evaluate` on numpy inputs that need the values, not only shapes."""
    data = (x,) if y is None else (x, y)
    kind, tensors = parse_batch(data, mode, image_shape)
    for value in tensors:
        if not isinstance(value, (np.ndarray, tf.Tensor)):
            return
    arrays = [np.asarray(value) for value in tensors]
    lengths = {len(array) for array in arrays}
    if len(lengths) != 1:
        raise ValueError(
            "All images and labels of `x` and `y` must have the same number of examples. "
            f"Received: {describe(data)}"
        )
    for array in arrays[:-1] if kind != TRIPLETS else arrays:
        validation.check_finite(array, "x")
    if kind == PAIRS:
        labels = arrays[2]
        if not np.all((labels == 0) | (labels == 1)):
            raise ValueError(
                "Argument `y` must hold pair labels: 1 for a same-class pair, 0 otherwise. "
                f"Received: y with values {np.unique(labels)[:10].tolist()}"
            )
    if kind == LABELLED and mode != PROXIES:
        labels = arrays[1]
        _, counts = np.unique(labels, return_counts=True)
        if counts.max(initial=0) < 2 or len(counts) < 2:
            raise ValueError(
                "Triplet and pair mining need batches holding at least two images of one class "
                "and an image of another class, but the labels cannot give any: "
                f"{len(counts)} class(es), at most {counts.max(initial=0)} image(s) per class. "
                "Use `keras_siamese.sampling.class_balanced_batches`. "
                f"Received: y.shape={labels.shape}"
            )
        size = batch_size or 32
        if len(labels) % size == 1:
            raise ValueError(
                f"{len(labels)} images in batches of {size} leave a last batch of one image, "
                "which holds no triplet. Change `batch_size` or drop an image. "
                f"Received: x.shape={arrays[0].shape}, batch_size={batch_size}"
            )


def check_dataset(dataset: tf.data.Dataset, mode: str, image_shape: tuple) -> None:
    """Checks the structure of a dataset's batches before anything is traced."""
    parse_batch(dataset.element_spec, mode, image_shape)
