"""Export a trained model as a versioned SavedModel that TensorFlow Serving answers end to end.

`export_for_serving` writes `export_dir/<version>/`, the layout TensorFlow Serving polls: one
numeric sub-directory per version, the highest one served, written atomically. The SavedModel
holds only the embedding model (encoder and its preprocessing) — never the trainer, so
projection and prediction heads, loss trackers and optimizer state stay out of it — with every
preprocessing step in the graph: a client sends uint8 pixels or JPEG/PNG bytes (REST
`{"b64": ...}` or a gRPC `PredictRequest`) and gets embeddings, similarity scores, verification
decisions or gallery neighbours. `load_for_inference` reads an export back with TensorFlow
only, and `write_models_config` writes TensorFlow Serving's `models.config` for a directory of
exports.

Modules: `writer` (export_for_serving), `module` (the saved tf.Module and its signatures),
`preprocess` (in-graph image decoding), `search` (the gallery), `calibration` (the verify
threshold), `warmup` (TensorFlow Serving's warm-up file), `models_config`, `inference`
(load_for_inference), `checks` (argument validation).

The warm-up file and `models.config` need `tensorflow-serving-api`, which is not a requirement
of keras_siamese: install it with `pip install --no-deps tensorflow-serving-api` (its declared
dependency on the full `tensorflow` package would otherwise install a second TensorFlow over
`tensorflow-cpu`; it needs only protobuf and grpcio, which TensorFlow already brings).
"""

from keras_siamese.export.inference import INFERENCE_BATCH_SIZE, InferenceModel, load_for_inference
from keras_siamese.export.models_config import write_models_config
from keras_siamese.export.module import (
    EMBED_BYTES_SIGNATURE,
    EMBEDDING_KEY,
    IMAGE_BYTES_KEY,
    IMAGES_KEY,
    L2_EPSILON,
    METADATA_SIGNATURE,
    SEARCH_SIGNATURE,
    SERVING_SIGNATURE,
    SIMILARITY_SIGNATURE,
    VERIFY_SIGNATURE,
)
from keras_siamese.export.warmup import INSTALL_COMMAND
from keras_siamese.export.writer import export_for_serving

__all__ = [
    "EMBED_BYTES_SIGNATURE",
    "EMBEDDING_KEY",
    "IMAGE_BYTES_KEY",
    "IMAGES_KEY",
    "INFERENCE_BATCH_SIZE",
    "INSTALL_COMMAND",
    "L2_EPSILON",
    "METADATA_SIGNATURE",
    "SEARCH_SIGNATURE",
    "SERVING_SIGNATURE",
    "SIMILARITY_SIGNATURE",
    "VERIFY_SIGNATURE",
    "InferenceModel",
    "export_for_serving",
    "load_for_inference",
    "write_models_config",
]
