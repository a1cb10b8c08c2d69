"""Export a trained model as a versioned TensorFlow SavedModel, and load it back without Keras.

`export_for_serving` writes `export_dir/<version>/`, the layout TensorFlow Serving polls: one
numeric sub-directory per version, the highest one served. The SavedModel holds only the
embedding model (encoder and its preprocessing) — never the trainer, so projection and
prediction heads, loss trackers and optimizer state stay out of it — and answers a
`serving_default` signature mapping uint8 `images` to L2-normalised float32 `embedding`s.

The saved object is one `tf.Module` (`_ExportModule`); each signature is built by one small
function over it (`_SIGNATURE_BUILDERS`), so adding a signature is adding one function.

`load_for_inference` reads an export with `tf.saved_model.load` only: the serving process needs
TensorFlow and NumPy, not Keras and not `keras_siamese`.
"""

from __future__ import annotations

import numbers
import os
import secrets
import shutil
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

SERVING_SIGNATURE = "serving_default"
IMAGES_KEY = "images"
EMBEDDING_KEY = "embedding"
L2_EPSILON = 1e-12
INFERENCE_BATCH_SIZE = 256
_TEMPORARY_PREFIX = ".tmp-"
_REPLACED_PREFIX = ".old-"
_SAVED_MODEL_FILE = "saved_model.pb"


class _ExportModule(tf.Module):
    """The object written to disk: the variables the signatures read, and the signatures.

    The Keras model itself is held in a plain closure (`_representation`), which
    `tf.saved_model.save` does not follow: only the variables that the traced signatures
    actually read are tracked (`used_variables`, set by `_track_used_variables`), so a
    compiled model's optimizer slots or a trainer's heads cannot leak into the export.
    """

    def __init__(self, embedding_model: keras.Model, image_shape: tuple[int, int, int]):
        super().__init__(name="keras_siamese_export")
        height, width, channels = image_shape
        self.image_spec = tf.TensorSpec([None, height, width, channels], tf.uint8, name=IMAGES_KEY)

        def representation(images: tf.Tensor) -> tf.Tensor:
            return embedding_model(images, training=False)

        self._representation = representation

    def embed(self, images: tf.Tensor) -> tf.Tensor:
        """Maps uint8 images `[batch, H, W, C]` to L2-normalised float32 embeddings."""
        features = self._representation(tf.cast(images, tf.float32))
        features = tf.cast(features, tf.float32)
        return tf.math.l2_normalize(features, axis=-1, epsilon=L2_EPSILON)


def _serving_default(module: _ExportModule) -> tf.types.experimental.PolymorphicFunction:
    """`serving_default`: uint8 `images` `[None, H, W, C]` -> float32 `embedding` `[None, D]`."""

    @tf.function(input_signature=[module.image_spec])
    def serving_default(images):
        return {EMBEDDING_KEY: module.embed(images)}

    return serving_default


# Signature name -> function building it over the module. Extend here.
_SignatureBuilder = Callable[[_ExportModule], tf.types.experimental.PolymorphicFunction]
_SIGNATURE_BUILDERS: dict[str, _SignatureBuilder] = {
    SERVING_SIGNATURE: _serving_default,
}


def _track_used_variables(
    module: _ExportModule, functions: dict[str, tf.types.experimental.PolymorphicFunction]
) -> None:
    """Traces every signature and tracks each variable it reads, once, on `module`."""
    used_variables = []
    seen = set()
    for function in functions.values():
        for variable in function.get_concrete_function().variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                used_variables.append(variable)
    module.used_variables = used_variables


def _build_export_module(
    embedding_model: keras.Model, image_shape: tuple[int, int, int]
) -> tuple[_ExportModule, dict[str, tf.types.experimental.PolymorphicFunction]]:
    """Builds the module, attaches every signature to it and returns it with the signatures."""
    module = _ExportModule(embedding_model, image_shape)
    functions = {name: build(module) for name, build in _SIGNATURE_BUILDERS.items()}
    for name, function in functions.items():
        setattr(module, name, function)
    _track_used_variables(module, functions)
    return module, functions


def _resolve_embedding_model(model: keras.Model) -> keras.Model:
    """Returns `model.embedding_model()` for keras_siamese models, else `model` itself."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a `keras.Model` (a keras_siamese model or a model mapping "
            f"images to representations). Received: model={model!r} of type {type(model).__name__}"
        )
    if not callable(getattr(model, "embedding_model", None)):
        return model
    embedding_model = model.embedding_model()
    if not isinstance(embedding_model, keras.Model):
        raise TypeError(
            "`model.embedding_model()` must return a `keras.Model`. "
            f"Received: embedding_model={embedding_model!r} of type "
            f"{type(embedding_model).__name__}"
        )
    return embedding_model


def _image_shape_of(embedding_model: keras.Model) -> tuple[int, int, int]:
    """Checks the model maps one `(H, W, C)` image input to one `(batch, D)` output."""
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
    if any(size is None for size in input_shape[1:]):
        raise ValueError(
            "Exporting needs a fixed image size: build the model on "
            "`keras.Input(shape=(height, width, channels))` with every size given. "
            f"Received: input_shape={input_shape}"
        )
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        raise ValueError(
            "Exporting needs a model returning one representation of shape (batch, dims); "
            "pool feature maps first (e.g. `keras.layers.GlobalAveragePooling2D`). "
            f"Received: output shapes={[tuple(tensor.shape) for tensor in outputs]}"
        )
    return tuple(int(size) for size in input_shape[1:])


def _numeric_versions(export_dir: str) -> list[int]:
    """Returns the versions found in `export_dir`: its sub-directories named by an integer."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(
        int(entry.name)
        for entry in os.scandir(export_dir)
        if entry.name.isdigit() and entry.is_dir()
    )


def _check_arguments(export_dir, version, overwrite) -> str:
    """Validates the arguments of `export_for_serving` and returns `export_dir` as a str."""
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
    return export_dir


def _refuse_existing(version_dir: str, version: int) -> None:
    raise ValueError(
        f"Version {version} already exists at {version_dir!r}; pass overwrite=True to "
        f"replace it, or another version. Received: version={version}"
    )


def _move_into_place(temporary_dir: str, version_dir: str, version: int, overwrite: bool) -> None:
    """Renames the finished `temporary_dir` to `version_dir`, moving an old version aside first."""
    if not os.path.lexists(version_dir):
        os.rename(temporary_dir, version_dir)
        return
    if not overwrite:
        _refuse_existing(version_dir, version)
    export_dir = os.path.dirname(version_dir)
    replaced_dir = os.path.join(export_dir, f"{_REPLACED_PREFIX}{version}-{secrets.token_hex(4)}")
    os.rename(version_dir, replaced_dir)
    try:
        os.rename(temporary_dir, version_dir)
    except BaseException:
        os.rename(replaced_dir, version_dir)
        raise
    if os.path.isdir(replaced_dir) and not os.path.islink(replaced_dir):
        shutil.rmtree(replaced_dir, ignore_errors=True)
    else:
        os.remove(replaced_dir)


def export_for_serving(
    model: keras.Model,
    export_dir: str | os.PathLike,
    version: int | None = None,
    overwrite: bool = False,
) -> str:
    """Writes `model`'s embedding as a versioned SavedModel for TensorFlow Serving.

    The export is the model's representation — `model.embedding_model()` for keras_siamese
    models (SimCLR, SimSiam, SiameseNetwork: encoder without projection or prediction
    heads, as used downstream by SimCLR, Chen et al. 2020, Sec. 2.1), or `model` itself for a
    plain Keras model — L2-normalised so that a dot product of two embeddings is their cosine
    similarity. Its `serving_default` signature takes `images`, uint8 `[batch, H, W, C]` in
    [0, 255], casts them to float32 (the models' input convention) and returns
    `{"embedding": float32 [batch, D]}`. Neither the trainer nor its optimizer state is saved.

    The version is written atomically: into a hidden temporary directory of `export_dir`
    (`.tmp-<version>-<random>`), then renamed to `<version>`, so a server polling `export_dir`
    never sees a half-written version, and a failed export leaves nothing behind.
    With `overwrite=True` an existing version is moved aside just before the rename and
    deleted just after it.

    Args:
        model: a keras_siamese model, or a `keras.Model` taking float32 images in [0, 255]
            of a fixed shape `(H, W, C)` and returning representations `(batch, D)`.
        export_dir: the directory holding the versions; created if missing.
        version: the version to write, a positive integer. Defaults to one more than the
            highest version in `export_dir` (1 for an empty one).
        overwrite: replace `version` if it exists instead of raising.

    Returns:
        The path of the written version directory, `export_dir/<version>`.

    Raises:
        TypeError: if `model` is not a `keras.Model`, `export_dir` is not a path, `version` is
            not an integer or `overwrite` is not a bool.
        ValueError: if `version` is not positive, `export_dir` is a file, the version exists
            and `overwrite` is False, or the model has no fixed `(H, W, C)` image input or does
            not return `(batch, D)`.

    Example:
        >>> inputs = keras.Input((16, 16, 1))
        >>> features = keras.layers.GlobalAveragePooling2D()(
        ...     keras.layers.Conv2D(4, 3)(keras.layers.Rescaling(1 / 255)(inputs)))
        >>> path = export_for_serving(keras.Model(inputs, features), "/tmp/embedder")
        >>> sorted(load_for_inference(path).signatures)
        ['serving_default']
    """
    export_dir = _check_arguments(export_dir, version, overwrite)
    embedding_model = _resolve_embedding_model(model)
    image_shape = _image_shape_of(embedding_model)
    if version is None:
        version = max(_numeric_versions(export_dir), default=0) + 1
    version = int(version)
    version_dir = os.path.join(export_dir, str(version))
    if os.path.lexists(version_dir) and not overwrite:
        _refuse_existing(version_dir, version)

    module, functions = _build_export_module(embedding_model, image_shape)

    os.makedirs(export_dir, exist_ok=True)
    temporary_dir = os.path.join(export_dir, f"{_TEMPORARY_PREFIX}{version}-{secrets.token_hex(4)}")
    os.mkdir(temporary_dir)
    try:
        tf.saved_model.save(module, temporary_dir, signatures=functions)
        _move_into_place(temporary_dir, version_dir, version, overwrite)
    finally:
        if os.path.exists(temporary_dir):
            shutil.rmtree(temporary_dir, ignore_errors=True)
    return version_dir


def _saved_model_dir(path: str) -> str:
    """Returns `path` if it is a SavedModel, else its highest numeric version that is one."""
    if os.path.isfile(os.path.join(path, _SAVED_MODEL_FILE)):
        return path
    for version in reversed(_numeric_versions(path)):
        candidate = os.path.join(path, str(version))
        if os.path.isfile(os.path.join(candidate, _SAVED_MODEL_FILE)):
            return candidate
    raise ValueError(
        "`path` must be a SavedModel directory (holding saved_model.pb) or an export directory "
        "with numeric version sub-directories, as written by `export_for_serving`. "
        f"Received: path={path!r}"
    )


class InferenceModel:
    """An exported embedding model, loaded with TensorFlow only.

    Returned by `load_for_inference`. `embed` runs the `serving_default` signature in chunks;
    `signatures` gives the raw signatures (as TensorFlow Serving sees them).

    Args:
        loaded: the object returned by `tf.saved_model.load`.
        path: the SavedModel directory it was loaded from.

    Example:
        >>> inputs = keras.Input((16, 16, 1))
        >>> features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
        >>> path = export_for_serving(keras.Model(inputs, features), "/tmp/embedder")
        >>> model = load_for_inference("/tmp/embedder")  # its highest version
        >>> model.embed(np.zeros((2, 16, 16, 1), "uint8")).shape
        (2, 4)
    """

    def __init__(self, loaded, path: str):
        if SERVING_SIGNATURE not in loaded.signatures:
            raise ValueError(
                f"The SavedModel has no {SERVING_SIGNATURE!r} signature, so it was not written "
                f"by `export_for_serving`. Received: path={path!r} with signatures "
                f"{sorted(loaded.signatures)}"
            )
        self.loaded = loaded
        self.path = path
        serving = loaded.signatures[SERVING_SIGNATURE]
        images_spec = serving.structured_input_signature[1][IMAGES_KEY]
        self.image_shape = tuple(images_spec.shape[1:])
        self.embedding_dims = serving.structured_outputs[EMBEDDING_KEY].shape[-1]

    @property
    def signatures(self):
        """The SavedModel's signatures (`serving_default`, ...), called with keyword tensors."""
        return self.loaded.signatures

    def embed(self, images: np.ndarray, batch_size: int = INFERENCE_BATCH_SIZE) -> np.ndarray:
        """Returns the L2-normalised float32 embeddings `[N, D]` of uint8 images `[N, H, W, C]`.

        Args:
            images: uint8 array of shape `(N,) + image_shape`, values in [0, 255].
            batch_size: how many images go through the signature at once.

        Returns:
            A float32 array of shape `(N, embedding_dims)`.

        Raises:
            TypeError: if `images` is not uint8 or `batch_size` not an integer.
            ValueError: if `images` is not `(N,) + image_shape` or `batch_size` < 1.
        """
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise TypeError(
                "`images` must be uint8 in [0, 255] (use `images.astype('uint8')` on pixel "
                "values; do not pass images scaled to [0, 1]). "
                f"Received: images.dtype={images.dtype}"
            )
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"`images` must have shape (N,) + {self.image_shape} (for one image use "
                f"`image[None]`). Received: images.shape={images.shape}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
            raise TypeError(f"`batch_size` must be an integer. Received: batch_size={batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be at least 1. Received: batch_size={batch_size}")
        serving = self.loaded.signatures[SERVING_SIGNATURE]
        chunks = [
            serving(**{IMAGES_KEY: tf.constant(images[start : start + batch_size])})[
                EMBEDDING_KEY
            ].numpy()
            for start in range(0, len(images), batch_size)
        ]
        if not chunks:
            return np.zeros((0, self.embedding_dims or 0), np.float32)
        return np.concatenate(chunks, axis=0)

    def __repr__(self) -> str:
        return (
            f"InferenceModel(path={self.path!r}, image_shape={self.image_shape}, "
            f"embedding_dims={self.embedding_dims})"
        )


def load_for_inference(path: str | os.PathLike) -> InferenceModel:
    """Loads an export of `export_for_serving` with `tf.saved_model.load` only.

    Needs neither Keras nor keras_siamese at serving time: the SavedModel holds the traced
    graph and the variables.

    Args:
        path: a version directory (`export_dir/3`), or an export directory, in which case its
            highest version is loaded (as TensorFlow Serving would).

    Returns:
        An `InferenceModel` with `embed(images)` and the raw `signatures`.

    Raises:
        TypeError: if `path` is not a path.
        ValueError: if `path` holds no SavedModel written by `export_for_serving`.

    Example:
        >>> inputs = keras.Input((16, 16, 1))
        >>> features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
        >>> path = export_for_serving(keras.Model(inputs, features), "/tmp/embedder")
        >>> model = load_for_inference("/tmp/embedder")  # its highest version
        >>> model.embed(np.zeros((2, 16, 16, 1), "uint8")).shape
        (2, 4)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`path` must be a path (str or os.PathLike). Received: path={path!r} of type "
            f"{type(path).__name__}"
        )
    saved_model_dir = _saved_model_dir(os.fspath(path))
    return InferenceModel(tf.saved_model.load(saved_model_dir), saved_model_dir)
