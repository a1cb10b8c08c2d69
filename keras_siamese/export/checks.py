"""Argument checks of `export_for_serving`, all run before anything is traced or written."""

from __future__ import annotations

import numbers
import os

import keras
import numpy as np

from keras_siamese import similarity as similarity_lib


def check_arguments(export_dir, version, overwrite, top_k, warmup) -> str:
    """Validates the plain arguments of `export_for_serving`; returns `export_dir` as a str."""
    if not isinstance(export_dir, (str, os.PathLike)):
        raise TypeError(
            "`export_dir` must be a path (str or os.PathLike). "
            f"Received: export_dir={export_dir!r} of type {type(export_dir).__name__}"
        )
    export_dir = os.fspath(export_dir)
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise ValueError(
            "`export_dir` must be a directory (it holds one sub-directory per version), "
            f"but it is an existing file. Received: export_dir={export_dir!r}"
        )
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, numbers.Integral):
            raise TypeError(
                "`version` must be a positive integer or None (next free version). "
                f"Received: version={version!r} of type {type(version).__name__}"
            )
        if version < 1:
            raise ValueError(
                "`version` must be a positive integer (TensorFlow Serving serves the "
                f"highest one). Received: version={version}"
            )
    if not isinstance(overwrite, bool):
        raise TypeError(f"`overwrite` must be True or False. Received: overwrite={overwrite!r}")
    if not isinstance(warmup, bool):
        raise TypeError(f"`warmup` must be True or False. Received: warmup={warmup!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
        raise TypeError(f"`top_k` must be an integer. Received: top_k={top_k!r}")
    if top_k < 1:
        raise ValueError(f"`top_k` must be at least 1. Received: top_k={top_k}")
    return export_dir


def resolve_embedding_model(model: keras.Model) -> keras.Model:
    """Returns `model.embedding_model()` for keras_siamese models, else `model` itself.

    A `keras_siamese.models.RepresentationModel` serves its `embedding_model()` (float
    images in [0, 255] -> the representation); any other `keras.Model` is served as it is
    and must itself map [0, 255] images to representations.
    """
    from keras_siamese.models import RepresentationModel

    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a `keras.Model` (a keras_siamese model or a model mapping "
            f"images to representations). Received: model={model!r} of type {type(model).__name__}"
        )
    if not isinstance(model, RepresentationModel):
        return model
    embedding_model = model.embedding_model()
    if not isinstance(embedding_model, keras.Model):
        raise TypeError(
            "`model.embedding_model()` must return a `keras.Model`. "
            f"Received: embedding_model={embedding_model!r} of type "
            f"{type(embedding_model).__name__}"
        )
    return embedding_model


def model_distance(model: keras.Model) -> tuple[str, bool]:
    """`(distance, is_metric_model)`: how the export compares two embeddings.

    A `SiameseNetwork` is trained for its own `distance` (Euclidean or cosine) on its
    embeddings, so the export scores pairs with it; the self-supervised models (whose
    declared `distance` is cosine) and plain Keras models are scored by the cosine
    similarity of their embeddings.
    """
    from keras_siamese.models import SiameseNetwork

    if isinstance(model, SiameseNetwork):
        return similarity_lib.check_distance(model.distance), True
    return "cosine", False


def _check_image_size(image_size) -> tuple[int, int]:
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or any(
            isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1
            for size in image_size
        )
    ):
        raise ValueError(
            "`image_size` must be a positive int or (height, width). "
            f"Received: image_size={image_size!r}"
        )
    return int(image_size[0]), int(image_size[1])


def image_shape_of(embedding_model: keras.Model, image_size=None) -> tuple[int, int, int]:
    """Checks the model maps one `(H, W, C)` image input to one `(batch, D)` output.

    Returns `(H, W, C)`: the model's own size, or `image_size` for a model taking any size.
    """
    try:
        inputs = embedding_model.inputs
        outputs = embedding_model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(
            "Exporting needs a model with a known input, such as a functional or Sequential "
            "model built from `keras.Input(shape=(height, width, channels))`. "
            f"Received: model={embedding_model.name!r} with no defined inputs"
        )
    if len(inputs) != 1:
        raise ValueError(
            "Exporting needs a model with exactly one image input. "
            f"Received: input shapes={[tuple(tensor.shape) for tensor in inputs]}"
        )
    input_shape = tuple(inputs[0].shape)
    if len(input_shape) != 4:
        raise ValueError(
            "Exporting needs an image input of shape (batch, height, width, channels). "
            f"Received: input_shape={input_shape}"
        )
    if input_shape[-1] is None:
        raise ValueError(
            "Exporting needs a known number of channels: build the model on "
            f"`keras.Input(shape=(height, width, channels))`. Received: input_shape={input_shape}"
        )
    model_size = input_shape[1:3]
    if image_size is not None:
        image_size = _check_image_size(image_size)
        if any(
            model is not None and model != given
            for model, given in zip(model_size, image_size, strict=True)
        ):
            raise ValueError(
                f"`image_size` must match the model's input size {model_size} (it is needed "
                "only for models taking any size). "
                f"Received: image_size={image_size}, input_shape={input_shape}"
            )
        model_size = image_size
    elif any(size is None for size in model_size):
        raise ValueError(
            "Exporting needs a fixed image size: build the model on "
            "`keras.Input(shape=(height, width, channels))` with every size given, or pass "
            "`image_size=(height, width)` for the served images. "
            f"Received: input_shape={input_shape}"
        )
    if len(outputs) != 1 or len(outputs[0].shape) != 2 or outputs[0].shape[-1] is None:
        raise ValueError(
            "Exporting needs a model returning one representation of shape (batch, dims); "
            "pool feature maps first (e.g. `keras.layers.GlobalAveragePooling2D`). "
            f"Received: output shapes={[tuple(tensor.shape) for tensor in outputs]}"
        )
    return int(model_size[0]), int(model_size[1]), int(input_shape[-1])


def embedding_dims_of(embedding_model: keras.Model) -> int:
    """`D` of a model already checked by `image_shape_of`."""
    return int(embedding_model.outputs[0].shape[-1])


def check_calibration_pairs(calibration_pairs, image_shape) -> tuple:
    """Validates `(images_a, images_b, same)`; returns them as numpy arrays."""
    if not isinstance(calibration_pairs, (tuple, list)) or len(calibration_pairs) != 3:
        raise TypeError(
            "`calibration_pairs` must be a tuple `(images_a, images_b, same)` of validation "
            "pairs: two uint8 image arrays and one boolean (or 0/1) label per pair. "
            f"Received: calibration_pairs of type {type(calibration_pairs).__name__}"
        )
    images_a, images_b, same = (np.asarray(value) for value in calibration_pairs)
    for name, images in (("images_a", images_a), ("images_b", images_b)):
        if images.dtype != np.uint8:
            raise TypeError(
                f"`calibration_pairs` {name} must be uint8 images in [0, 255], as served. "
                f"Received: {name}.dtype={images.dtype}"
            )
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(image_shape):
            raise ValueError(
                f"`calibration_pairs` {name} must have shape (N,) + {tuple(image_shape)}. "
                f"Received: {name}.shape={images.shape}"
            )
    if not len(images_a) == len(images_b) == len(same) or same.ndim != 1:
        raise ValueError(
            "`calibration_pairs` must hold one label per pair and as many images_a as "
            f"images_b. Received: images_a.shape={images_a.shape}, "
            f"images_b.shape={images_b.shape}, same.shape={same.shape}"
        )
    return images_a, images_b, same
