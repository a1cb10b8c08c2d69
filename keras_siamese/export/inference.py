"""`load_for_inference`: an export read back with TensorFlow only, behind a small wrapper.

The serving process needs TensorFlow and NumPy, not Keras and not keras_siamese: the
SavedModel holds the traced graph and the variables. `InferenceModel` batches NumPy inputs
through the signatures and returns NumPy outputs.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.export import module as module_lib
from keras_siamese.export.writer import numeric_versions

INFERENCE_BATCH_SIZE = 256
_SAVED_MODEL_FILE = "saved_model.pb"


def _saved_model_dir(path: str) -> str:
    """Returns `path` if it is a SavedModel, else its highest numeric version that is one."""
    if os.path.isfile(os.path.join(path, _SAVED_MODEL_FILE)):
        return path
    for version in reversed(numeric_versions(path)):
        candidate = os.path.join(path, str(version))
        if os.path.isfile(os.path.join(candidate, _SAVED_MODEL_FILE)):
            return candidate
    raise ValueError(
        "`path` must be a SavedModel directory (holding saved_model.pb) or an export directory "
        "with numeric version sub-directories, as written by `export_for_serving`. "
        f"Received: path={path!r}"
    )


class InferenceModel:
    """An export of `export_for_serving`, loaded with TensorFlow only.

    Returned by `load_for_inference`. Calling it (or `embed`) runs `serving_default`;
    `embed_bytes`, `similarity`, `verify` and `search` run the signatures of the same names,
    each in chunks of `batch_size`. `signatures` gives the raw signatures (as TensorFlow
    Serving sees them) and `metadata` the export's metadata.

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
        >>> images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 1), "uint8")
        >>> model.similarity(images, images).round(4)
        array([1., 1.], dtype=float32)
    """

    def __init__(self, loaded, path: str):
        if module_lib.SERVING_SIGNATURE not in loaded.signatures:
            raise ValueError(
                f"The SavedModel has no {module_lib.SERVING_SIGNATURE!r} signature, so it was "
                f"not written by `export_for_serving`. Received: path={path!r} with signatures "
                f"{sorted(loaded.signatures)}"
            )
        self.loaded = loaded
        self.path = path
        serving = loaded.signatures[module_lib.SERVING_SIGNATURE]
        images_spec = serving.structured_input_signature[1][module_lib.IMAGES_KEY]
        self.image_shape = tuple(images_spec.shape[1:])
        self.embedding_dims = serving.structured_outputs[module_lib.EMBEDDING_KEY].shape[-1]
        self.metadata = {}
        if module_lib.METADATA_SIGNATURE in loaded.signatures:
            values = loaded.signatures[module_lib.METADATA_SIGNATURE]()
            self.metadata = json.loads(values["json"].numpy().decode("utf-8"))

    @property
    def signatures(self):
        """The SavedModel's signatures (`serving_default`, ...), called with keyword tensors."""
        return self.loaded.signatures

    def _signature(self, name: str, needs: str):
        if name not in self.loaded.signatures:
            raise ValueError(
                f"This export has no {name!r} signature; export it with {needs}. "
                f"Received: path={self.path!r} with signatures {sorted(self.loaded.signatures)}"
            )
        return self.loaded.signatures[name]

    def _check_images(self, images, name: str = "images") -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise TypeError(
                f"`{name}` must be uint8 in [0, 255] (use `{name}.astype('uint8')` on pixel "
                "values; do not pass images scaled to [0, 1]). "
                f"Received: {name}.dtype={images.dtype}"
            )
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"`{name}` must have shape (N,) + {self.image_shape} (for one image use "
                f"`image[None]`). Received: {name}.shape={images.shape}"
            )
        return images

    def _check_pairs(self, images_a, images_b) -> tuple[np.ndarray, np.ndarray]:
        images_a = self._check_images(images_a, "images_a")
        images_b = self._check_images(images_b, "images_b")
        if len(images_a) != len(images_b):
            raise ValueError(
                "`images_a` and `images_b` must hold the same number of images. "
                f"Received: images_a.shape={images_a.shape}, images_b.shape={images_b.shape}"
            )
        return images_a, images_b

    @staticmethod
    def _run(signature, inputs: dict, batch_size: int, empty: dict) -> dict:
        """Runs `signature` on chunks of the (equally long) `inputs`; concatenates outputs."""
        batch_size = validation.check_integer("batch_size", batch_size)
        count = len(next(iter(inputs.values())))
        chunks = [
            {
                key: value.numpy()
                for key, value in signature(
                    **{
                        name: tf.constant(array[start : start + batch_size])
                        for name, array in inputs.items()
                    }
                ).items()
            }
            for start in range(0, count, batch_size)
        ]
        if not chunks:
            return empty
        return {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}

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
        images = self._check_images(images)
        empty = {module_lib.EMBEDDING_KEY: np.zeros((0, self.embedding_dims or 0), np.float32)}
        serving = self.loaded.signatures[module_lib.SERVING_SIGNATURE]
        outputs = self._run(serving, {module_lib.IMAGES_KEY: images}, batch_size, empty)
        return outputs[module_lib.EMBEDDING_KEY]

    __call__ = embed

    def embed_bytes(self, image_bytes, batch_size: int = INFERENCE_BATCH_SIZE) -> np.ndarray:
        """Embeddings `[N, D]` of encoded images (a list of JPEG/PNG/... `bytes`).

        Raises:
            TypeError: if `image_bytes` is not a sequence of bytes.
            tf.errors.InvalidArgumentError: for bytes that are not an image.
        """
        if isinstance(image_bytes, (bytes, str)) or not all(
            isinstance(value, bytes) for value in image_bytes
        ):
            raise TypeError(
                "`image_bytes` must be a list of encoded images (`bytes`), one per image. "
                f"Received: image_bytes of type {type(image_bytes).__name__}"
            )
        signature = self._signature(module_lib.EMBED_BYTES_SIGNATURE, "1 or 3 channels")
        empty = {module_lib.EMBEDDING_KEY: np.zeros((0, self.embedding_dims or 0), np.float32)}
        values = np.array(list(image_bytes), dtype=object)
        outputs = self._run(signature, {module_lib.IMAGE_BYTES_KEY: values}, batch_size, empty)
        return outputs[module_lib.EMBEDDING_KEY]

    def similarity(self, images_a, images_b, batch_size: int = INFERENCE_BATCH_SIZE) -> np.ndarray:
        """float32 scores `[N]` of the pairs `(images_a[i], images_b[i])`, higher = more similar."""
        images_a, images_b = self._check_pairs(images_a, images_b)
        signature = self._signature(module_lib.SIMILARITY_SIGNATURE, "a current keras_siamese")
        inputs = {module_lib.IMAGES_A_KEY: images_a, module_lib.IMAGES_B_KEY: images_b}
        empty = {module_lib.SCORE_KEY: np.zeros((0,), np.float32)}
        return self._run(signature, inputs, batch_size, empty)[module_lib.SCORE_KEY]

    def verify(
        self, images_a, images_b, batch_size: int = INFERENCE_BATCH_SIZE
    ) -> tuple[np.ndarray, np.ndarray]:
        """`(scores [N], same [N] bool)`: same when the score reaches the exported threshold."""
        images_a, images_b = self._check_pairs(images_a, images_b)
        signature = self._signature(
            module_lib.VERIFY_SIGNATURE, "`threshold=` or `calibration_pairs=`"
        )
        inputs = {module_lib.IMAGES_A_KEY: images_a, module_lib.IMAGES_B_KEY: images_b}
        empty = {
            module_lib.SCORE_KEY: np.zeros((0,), np.float32),
            module_lib.SAME_KEY: np.zeros((0,), bool),
        }
        outputs = self._run(signature, inputs, batch_size, empty)
        return outputs[module_lib.SCORE_KEY], outputs[module_lib.SAME_KEY]

    def search(
        self, images, batch_size: int = INFERENCE_BATCH_SIZE
    ) -> tuple[np.ndarray, np.ndarray]:
        """`(ids [N, k], scores [N, k])`: the gallery's nearest neighbours of each image.

        String ids come back as `bytes` objects (as TensorFlow returns them).
        """
        images = self._check_images(images)
        signature = self._signature(module_lib.SEARCH_SIGNATURE, "`gallery=`")
        top_k = signature.structured_outputs[module_lib.SCORES_KEY].shape[-1] or 0
        id_dtype = signature.structured_outputs[module_lib.IDS_KEY].dtype
        empty = {
            module_lib.IDS_KEY: np.zeros((0, top_k), id_dtype.as_numpy_dtype),
            module_lib.SCORES_KEY: np.zeros((0, top_k), np.float32),
        }
        outputs = self._run(signature, {module_lib.IMAGES_KEY: images}, batch_size, empty)
        return outputs[module_lib.IDS_KEY], outputs[module_lib.SCORES_KEY]

    def __repr__(self) -> str:
        return (
            f"InferenceModel(path={self.path!r}, image_shape={self.image_shape}, "
            f"embedding_dims={self.embedding_dims}, signatures={sorted(self.signatures)})"
        )


def load_for_inference(path: str | os.PathLike) -> InferenceModel:
    """Loads an export of `export_for_serving` with `tf.saved_model.load` only.

    Needs neither Keras nor keras_siamese at serving time: the SavedModel holds the traced
    graph and the variables.

    Args:
        path: a version directory (`export_dir/3`), or an export directory, in which case its
            highest version is loaded (as TensorFlow Serving would).

    Returns:
        An `InferenceModel` with `embed`, `embed_bytes`, `similarity`, `verify`, `search`,
        `metadata` and the raw `signatures`.

    Raises:
        TypeError: if `path` is not a path.
        ValueError: if `path` holds no SavedModel written by `export_for_serving`.

    Example:
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
