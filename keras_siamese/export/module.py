"""The object written to disk (`ExportModule`) and the functions that build its signatures.

Each signature is built by one small function over the module, taking and returning
dictionaries of named tensors, as TensorFlow Serving sees them:

| signature | inputs | outputs |
| --- | --- | --- |
| `serving_default` | `images` uint8 `[None, H, W, C]` | `embedding` float32 `[None, D]` |
| `embed_bytes` | `image_bytes` string `[None]` | `embedding` |
| `similarity` | `images_a`, `images_b` | `score` float32 `[None]` |
| `verify` | `images_a`, `images_b` | `score`, `same` bool `[None]` |
| `search` | `images` | `ids` int64 or string `[None, k]`, `scores` float32 `[None, k]` |
| `metadata` | (none) | `json`, `distance` string, `embedding_dims` int64, `threshold` |

`embedding` is always L2-normalised. `score` is higher for more similar pairs: for a
Siamese model it is the model's own score (`keras_siamese.similarity.score_from_distance`
of its distance on its embedding: cosine similarity, or negated Euclidean distance); for any
other model it is the cosine similarity of the embeddings.
"""

from __future__ import annotations

import json

import keras
import tensorflow as tf

from keras_siamese import similarity as similarity_lib
from keras_siamese.export import preprocess, search

SERVING_SIGNATURE = "serving_default"
EMBED_BYTES_SIGNATURE = "embed_bytes"
SIMILARITY_SIGNATURE = "similarity"
VERIFY_SIGNATURE = "verify"
SEARCH_SIGNATURE = "search"
METADATA_SIGNATURE = "metadata"

IMAGES_KEY = "images"
IMAGE_BYTES_KEY = "image_bytes"
IMAGES_A_KEY = "images_a"
IMAGES_B_KEY = "images_b"
EMBEDDING_KEY = "embedding"
SCORE_KEY = "score"
SAME_KEY = "same"
IDS_KEY = "ids"
SCORES_KEY = "scores"
L2_EPSILON = 1e-12

Function = tf.types.experimental.PolymorphicFunction


class ExportModule(tf.Module):
    """The object written to disk: the variables the signatures read, and the signatures.

    The Keras model itself is held in a plain closure (`_representation`), which
    `tf.saved_model.save` does not follow: only the variables that the traced signatures
    actually read are tracked (`used_variables`, set by `concrete_signatures`), so a
    compiled model's optimizer slots or a trainer's heads cannot leak into the export.

    Args:
        embedding_model: float32 images `[batch, H, W, C]` in [0, 255] -> `[batch, D]`.
        image_shape: `(H, W, C)` of the serving inputs.
        embedding_dims: `D`.
        distance: `"cosine"` or `"euclidean"`: how `similarity` scores a pair of
            representations.
    """

    def __init__(
        self,
        embedding_model: keras.Model,
        image_shape: tuple[int, int, int],
        embedding_dims: int,
        distance: str,
    ):
        super().__init__(name="keras_siamese_export")
        height, width, channels = image_shape
        self.image_shape = tuple(image_shape)
        self.embedding_dims = int(embedding_dims)
        self.distance = similarity_lib.check_distance(distance)
        self.image_spec = tf.TensorSpec([None, height, width, channels], tf.uint8, name=IMAGES_KEY)

        def representation(images: tf.Tensor) -> tf.Tensor:
            return embedding_model(images, training=False)

        self._representation = representation
        self._gallery = None

    def representation(self, images: tf.Tensor) -> tf.Tensor:
        """The model's float32 output for uint8 images (cast to float32 in [0, 255]).

        An empty batch skips the model: TensorFlow 2.21's CPU `Conv2D` returns a batch of zero
        images with the *input's* channels, which later layers reject, so an empty request
        would fail with an obscure shape error instead of returning zero embeddings.
        """

        def run_model():
            return tf.cast(self._representation(tf.cast(images, tf.float32)), tf.float32)

        def no_images():
            return tf.zeros([0, self.embedding_dims], tf.float32)

        return tf.cond(tf.shape(images)[0] > 0, run_model, no_images)

    def embed(self, images: tf.Tensor) -> tf.Tensor:
        """Maps uint8 images `[batch, H, W, C]` to L2-normalised float32 embeddings."""
        return tf.math.l2_normalize(self.representation(images), axis=-1, epsilon=L2_EPSILON)

    def score(self, images_a: tf.Tensor, images_b: tf.Tensor) -> tf.Tensor:
        """Pair scores (higher = more similar) of two equally long batches of uint8 images."""
        # The check must run before the model: automatic control dependencies only promise
        # that the assertion runs, not that it runs first, so a mismatch could otherwise
        # surface as the distance's shape error.
        check = tf.debugging.assert_equal(
            tf.shape(images_a)[0],
            tf.shape(images_b)[0],
            message=f"`{IMAGES_A_KEY}` and `{IMAGES_B_KEY}` must hold the same number of images",
        )
        with tf.control_dependencies([check] if check is not None else []):
            images_a = tf.identity(images_a)
        count = tf.shape(images_a)[0]
        features = self.representation(tf.concat([images_a, images_b], axis=0))
        distances = similarity_lib.pair_distance(features[:count], features[count:], self.distance)
        return similarity_lib.score_from_distance(distances, self.distance)

    def attach_gallery(self, gallery: search.Gallery) -> None:
        """Stores the gallery's variables on the module (they are saved with it)."""
        self._gallery = gallery
        self.gallery_embeddings, self.gallery_ids = gallery.variables()

    @property
    def gallery(self) -> search.Gallery | None:
        return self._gallery

    def search_gallery(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """Top-k gallery ids and cosine similarities for uint8 query images."""
        gallery = self._gallery
        scores, indices = search.top_k_neighbours(
            self.embed(images),
            self.gallery_embeddings,
            size=gallery.size,
            chunk_rows=gallery.chunk_rows,
            chunks=gallery.chunks,
            top_k=gallery.top_k,
        )
        return {IDS_KEY: tf.gather(self.gallery_ids, indices), SCORES_KEY: scores}


def _pair_specs(module: ExportModule) -> list[tf.TensorSpec]:
    shape = module.image_spec.shape
    return [
        tf.TensorSpec(shape, tf.uint8, name=IMAGES_A_KEY),
        tf.TensorSpec(shape, tf.uint8, name=IMAGES_B_KEY),
    ]


def serving_default(module: ExportModule) -> Function:
    """`serving_default`: uint8 `images` `[None, H, W, C]` -> float32 `embedding` `[None, D]`."""

    @tf.function(input_signature=[module.image_spec])
    def serving_default(images):
        return {EMBEDDING_KEY: module.embed(images)}

    return serving_default


def embed_bytes(module: ExportModule, max_pixels: int | None) -> Function:
    """`embed_bytes`: string `image_bytes` `[None]` (JPEG/PNG/...) -> `embedding` `[None, D]`.

    An image whose header declares more than `max_pixels` pixels is refused undecoded.
    """

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_KEY)])
    def embed_bytes(image_bytes):
        images = preprocess.decode_images(image_bytes, module.image_shape, max_pixels)
        return {EMBEDDING_KEY: module.embed(images)}

    return embed_bytes


def similarity(module: ExportModule) -> Function:
    """`similarity`: `images_a`, `images_b` `[None, H, W, C]` -> float32 `score` `[None]`."""

    @tf.function(input_signature=_pair_specs(module))
    def similarity(images_a, images_b):
        return {SCORE_KEY: module.score(images_a, images_b)}

    return similarity


def verify(module: ExportModule, threshold: float) -> Function:
    """`verify`: `images_a`, `images_b` -> `score` and bool `same` (`score >= threshold`)."""
    threshold = float(threshold)

    @tf.function(input_signature=_pair_specs(module))
    def verify(images_a, images_b):
        scores = module.score(images_a, images_b)
        return {SCORE_KEY: scores, SAME_KEY: scores >= tf.constant(threshold, tf.float32)}

    return verify


def search_signature(module: ExportModule) -> Function:
    """`search`: uint8 `images` -> top-k gallery `ids` and cosine-similarity `scores`."""

    @tf.function(input_signature=[module.image_spec])
    def search(images):
        return module.search_gallery(images)

    return search


def metadata(metadata_values: dict) -> Function:
    """`metadata`: no inputs -> the export's metadata as `json` and a few typed scalars."""
    text = json.dumps(metadata_values, sort_keys=True)
    verification = metadata_values.get("verify") or {}
    threshold = float(verification.get("threshold", float("nan")))

    @tf.function(input_signature=[])
    def metadata():
        return {
            "json": tf.constant(text),
            "distance": tf.constant(metadata_values["distance"]),
            "embedding_dims": tf.constant(metadata_values["embedding_dims"], tf.int64),
            "threshold": tf.constant(threshold, tf.float32),
        }

    return metadata


def concrete_signatures(
    module: ExportModule, functions: dict[str, Function]
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """Traces every signature once and tracks each variable it reads, once, on `module`.

    The concrete functions are what gets saved as signatures. They are not attached to the
    module as attributes: `tf.saved_model.save` would trace every attached `tf.function` again
    (doubling the export time), and TensorFlow Serving reads only the signatures.
    """
    concrete = {name: function.get_concrete_function() for name, function in functions.items()}
    used_variables = []
    seen = set()
    for function in concrete.values():
        for variable in function.variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                used_variables.append(variable)
    module.used_variables = used_variables
    return concrete
