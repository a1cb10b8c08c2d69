"""TensorFlow Serving's warm-up file of a SavedModel, built with `tensorflow-serving-api` protos.

TensorFlow Serving replays `assets.extra/tf_serving_warmup_requests` — a TFRecord file of
`tensorflow.serving.PredictionLog` records — when it loads a version, so the first client
request does not pay for graph initialisation. `write_warmup_file` writes one `PredictRequest`
per signature that takes inputs (a batch of one blank image; for `embed_bytes` one PNG and
one JPEG, so both decoders warm up). The input-less `metadata` signature gets none: it only
returns constants.

Packaging: the protos come from the `tensorflow-serving-api` package, whose 2.21 release
declares a dependency on the full `tensorflow` package, so `pip install tensorflow-serving-api`
would install a second TensorFlow over `tensorflow-cpu`. It needs only `protobuf` and `grpcio`
beside the TensorFlow already installed, so install it with::

    pip install --no-deps tensorflow-serving-api

It is not a requirement of keras_siamese: it is imported only when a warm-up file or a
`models.config` is written (here and in `models_config`), and a missing package raises an
`ImportError` giving that command.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

INSTALL_COMMAND = "pip install --no-deps tensorflow-serving-api"
WARMUP_DIRECTORY = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


def require_serving_api():
    """Imports and returns the TensorFlow Serving proto modules, or raises a clear ImportError.

    Returns:
        A namespace-like tuple `(prediction_log_pb2, predict_pb2, model_server_config_pb2)`.

    Raises:
        ImportError: if `tensorflow-serving-api` is missing or cannot be imported.
    """
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError as error:
        raise ImportError(
            "Writing TensorFlow Serving files (the warm-up requests, models.config) needs the "
            "`tensorflow-serving-api` protos. Install them without their dependencies, which "
            "would pull the full `tensorflow` package over `tensorflow-cpu`: "
            f"`{INSTALL_COMMAND}`. Or export with warmup=False. Received: {error}"
        ) from error
    return prediction_log_pb2, predict_pb2, model_server_config_pb2


def _example_value(spec: tf.TensorSpec, image_shape: tuple[int, int, int]) -> np.ndarray:
    """A small valid input for one signature input."""
    if spec.dtype == tf.string:
        blank = np.full(image_shape, 128, np.uint8)
        png = tf.io.encode_png(blank).numpy()
        jpeg = tf.io.encode_jpeg(blank).numpy()
        return np.array([png, jpeg], dtype=object)
    shape = [1 if size is None else size for size in spec.shape.as_list()]
    return np.full(shape, 128, spec.dtype.as_numpy_dtype)


def warmup_requests(functions: dict, image_shape: tuple[int, int, int], model_name: str) -> list:
    """One `PredictionLog` per signature with inputs, ready to be written.

    Args:
        functions: signature name -> `tf.function` with an input signature.
        image_shape: the model's `(H, W, C)`, for the encoded images of `embed_bytes`.
        model_name: the name written in each request's `model_spec`.

    Returns:
        A list of `tensorflow.serving.PredictionLog` messages.
    """
    prediction_log_pb2, predict_pb2, _ = require_serving_api()
    records = []
    for name, function in functions.items():
        specs = function.input_signature
        if not specs:
            continue
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = name
        for spec in specs:
            value = _example_value(spec, image_shape)
            request.inputs[spec.name].CopyFrom(tf.make_tensor_proto(value, dtype=spec.dtype))
        records.append(
            prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
        )
    return records


def write_warmup_file(saved_model_dir: str, records: list) -> str:
    """Writes `records` to `saved_model_dir/assets.extra/tf_serving_warmup_requests`.

    Returns:
        The path of the written file.
    """
    directory = os.path.join(saved_model_dir, WARMUP_DIRECTORY)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path
