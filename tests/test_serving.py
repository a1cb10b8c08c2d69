"""Tests for the serving signatures of keras_siamese.export, checked as TF Serving uses them.

No TensorFlow Serving binary can be installed here, so these tests prove what it relies on:
the SavedModel's signatures answer in a process that imports only TensorFlow and match the
Keras model; `saved_model_cli` lists them; the warm-up file parses as `PredictionLog`s whose
requests each signature answers; a REST body in TF Serving's documented JSON format (row
format, binary values as `{"b64": ...}`) maps to tensors the signatures answer.
"""

import base64
import json
import os
import pickle
import shutil
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import in_replica_process, random_images, tiny_encoder
from sklearn.metrics import roc_auc_score, roc_curve

import keras_siamese as ks
from keras_siamese.datasets import _image_converter
from keras_siamese.export import (
    INSTALL_COMMAND,
    calibration,
    export_for_serving,
    load_for_inference,
    write_models_config,
)
from keras_siamese.export import search as search_lib

RGB_SHAPE = (16, 16, 3)
GRAY_SHAPE = (16, 16, 1)
ALL_SIGNATURES = ["embed_bytes", "metadata", "search", "serving_default", "similarity", "verify"]


def make_siamese(distance="euclidean", normalize=False, image_shape=RGB_SHAPE):
    """A `SiameseNetwork` on the tiny encoder: the export serves its `embedding_model()`
    (float32 [0, 255] images -> the embedding, L2-normalised when `normalize`) and scores
    pairs with its own `distance`."""
    return ks.SiameseNetwork(
        tiny_encoder(tuple(image_shape)), distance=distance, normalize=normalize
    )


def gray_model(seed=1):
    """A plain functional 1-channel model: Rescaling + tiny encoder."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(GRAY_SHAPE)
    return keras.Model(inputs, tiny_encoder(GRAY_SHAPE)(keras.layers.Rescaling(1 / 255)(inputs)))


def l2_normalize(values):
    values = np.asarray(values, np.float64)
    norms = np.sqrt(np.maximum(np.sum(values**2, axis=-1, keepdims=True), 1e-12))
    return (values / norms).astype(np.float32)


def keras_embeddings(model, images):
    return l2_normalize(model.predict(images.astype("float32"), verbose=0))


def keras_scores(model, images_a, images_b):
    return np.asarray(model.similarity(images_a.astype("float32"), images_b.astype("float32")))


def brute_force_eer_threshold(scores, same):
    """Independent reference: try every score as threshold of `score >= t`."""
    same = np.asarray(same, bool)
    best = None
    for threshold in sorted(set(scores.tolist())):
        accepted = scores >= threshold
        false_accept, false_reject = accepted[~same].mean(), (~accepted[same]).mean()
        gap = abs(false_accept - false_reject)
        if best is None or gap <= best[0]:
            best = (gap, threshold)
    return best[1]


def sklearn_interpolated_eer(scores, same):
    """The EER where the ROC curve (sklearn) crosses false accept = false reject, linearly."""
    false_accept, true_accept, _ = roc_curve(same, scores)
    false_reject = 1.0 - true_accept
    after = np.flatnonzero(false_reject <= false_accept)[0]
    before = after - 1
    gap_before = false_reject[before] - false_accept[before]
    gap_after = false_accept[after] - false_reject[after]
    weight = gap_before / (gap_before + gap_after)
    return false_accept[before] + weight * (false_accept[after] - false_accept[before])


def numpy_top_k(queries, gallery, k):
    scores = l2_normalize(queries) @ l2_normalize(gallery).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def encode_png(image):
    return tf.io.encode_png(image).numpy()


def run_fresh(arguments, cwd):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        arguments,
        check=False,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def siamese(tmp_path_factory):
    """A stand-in Siamese model exported with a string-id gallery and calibrated pairs."""
    keras.utils.set_random_seed(0)
    model = make_siamese(distance="euclidean", normalize=False)
    model(np.zeros((1, *RGB_SHAPE), "float32"))
    directory = tmp_path_factory.mktemp("siamese")
    gallery = model.predict(random_images(40, RGB_SHAPE, seed=11).astype("float32"), verbose=0)
    gallery_ids = np.array([f"item-{index:02d}" for index in range(40)])
    pairs_a = random_images(24, RGB_SHAPE, seed=12)
    same = np.arange(24) % 2 == 0
    noise = np.random.default_rng(13).integers(-20, 21, pairs_a.shape)
    pairs_b = np.clip(pairs_a.astype(int) + noise, 0, 255).astype("uint8")
    pairs_b[~same] = random_images(12, RGB_SHAPE, seed=14)
    version_dir = export_for_serving(
        model,
        directory / "siamese",
        gallery=gallery,
        gallery_ids=gallery_ids,
        top_k=3,
        calibration_pairs=(pairs_a, pairs_b, same),
    )
    return types.SimpleNamespace(
        model=model,
        directory=directory,
        version_dir=version_dir,
        loaded=tf.saved_model.load(version_dir),
        gallery=gallery,
        gallery_ids=gallery_ids,
        calibration=(pairs_a, pairs_b, same),
    )


# ---------------------------------------------------------------- signatures


def test_signature_specs(siamese):
    signatures = siamese.loaded.signatures
    assert sorted(signatures) == ALL_SIGNATURES

    def inputs(name):
        return {
            key: (spec.dtype, spec.shape.as_list())
            for key, spec in signatures[name].structured_input_signature[1].items()
        }

    def outputs(name):
        return {
            key: (spec.dtype, spec.shape.as_list())
            for key, spec in signatures[name].structured_outputs.items()
        }

    images = (tf.uint8, [None, *RGB_SHAPE])
    assert inputs("serving_default") == {"images": images}
    assert outputs("serving_default") == {"embedding": (tf.float32, [None, 16])}
    assert inputs("embed_bytes") == {"image_bytes": (tf.string, [None])}
    assert outputs("embed_bytes") == {"embedding": (tf.float32, [None, 16])}
    assert inputs("similarity") == {"images_a": images, "images_b": images}
    assert outputs("similarity") == {"score": (tf.float32, [None])}
    assert inputs("verify") == inputs("similarity")
    assert outputs("verify") == {"score": (tf.float32, [None]), "same": (tf.bool, [None])}
    assert inputs("search") == {"images": images}
    assert outputs("search") == {"ids": (tf.string, [None, 3]), "scores": (tf.float32, [None, 3])}
    assert inputs("metadata") == {}
    assert sorted(outputs("metadata")) == ["distance", "embedding_dims", "json", "threshold"]


# Run by a fresh interpreter: argv = version_dir, cases.pkl.
TENSORFLOW_ONLY_SERVING = """
import pickle, sys
for name in ("keras", "tf_keras", "keras_siamese"):
    sys.modules[name] = None  # importing it now raises ImportError
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
with open(sys.argv[2], "rb") as file:
    cases = pickle.load(file)
assert sorted(loaded.signatures) == sorted(cases), sorted(loaded.signatures)
for name, (inputs, expected) in sorted(cases.items()):
    outputs = loaded.signatures[name](**{key: tf.constant(value) for key, value in inputs.items()})
    for key, value in expected.items():
        got = np.asarray(outputs[key].numpy())
        if got.dtype.kind == "f":
            np.testing.assert_allclose(got, value, atol=1e-5, rtol=0, err_msg=name + "/" + key)
        else:
            np.testing.assert_array_equal(got, value, err_msg=name + "/" + key)
    print("answered", name, sorted(outputs))
ours = ("keras", "tf_keras", "keras_siamese")
assert not [n for n, m in sys.modules.items() if m is not None and n.split(".")[0] in ours]
"""


def test_every_signature_matches_the_keras_model_in_a_tensorflow_only_process(siamese):
    model = siamese.model
    images = random_images(5, RGB_SHAPE, seed=21)
    images_a, images_b = random_images(6, RGB_SHAPE, seed=22), random_images(6, RGB_SHAPE, seed=23)
    embeddings = keras_embeddings(model, images)
    scores = keras_scores(model, images_a, images_b)
    calibration_scores = keras_scores(model, *siamese.calibration[:2])
    threshold = brute_force_eer_threshold(calibration_scores, siamese.calibration[2])
    assert np.min(np.abs(scores - threshold)) > 1e-4  # no decision rests on rounding
    order, neighbour_scores = numpy_top_k(
        model.predict(images.astype("float32"), verbose=0), siamese.gallery, 3
    )
    cases = {
        "serving_default": ({"images": images}, {"embedding": embeddings}),
        "embed_bytes": (
            {"image_bytes": np.array([encode_png(image) for image in images], object)},
            {"embedding": embeddings},
        ),
        "similarity": ({"images_a": images_a, "images_b": images_b}, {"score": scores}),
        "verify": (
            {"images_a": images_a, "images_b": images_b},
            {"score": scores, "same": scores >= threshold},
        ),
        "search": (
            {"images": images},
            {"ids": siamese.gallery_ids[order].astype(bytes), "scores": neighbour_scores},
        ),
        "metadata": (
            {},
            {"distance": b"euclidean", "embedding_dims": 16, "threshold": np.float32(threshold)},
        ),
    }
    with open(siamese.directory / "cases.pkl", "wb") as file:
        pickle.dump(cases, file)
    result = run_fresh(
        [sys.executable, "-c", TENSORFLOW_ONLY_SERVING, siamese.version_dir, "cases.pkl"],
        cwd=siamese.directory,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("answered") == len(ALL_SIGNATURES)


def test_saved_model_cli_show_lists_every_signature(siamese):
    beside = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    command = [beside] if os.path.exists(beside) else [shutil.which("saved_model_cli")]
    result = run_fresh(command + ["show", "--dir", siamese.version_dir, "--all"], siamese.directory)
    assert result.returncode == 0, result.stderr[-3000:]

    def signature_text(name):
        text = result.stdout[result.stdout.index(f"signature_def['{name}']") :]
        return text[: text.index("Method name is")]

    for name in ALL_SIGNATURES:
        assert f"signature_def['{name}']" in result.stdout
    serving = signature_text("serving_default")
    assert "inputs['images']" in serving and "dtype: DT_UINT8" in serving
    assert "shape: (-1, 16, 16, 3)" in serving
    assert "outputs['embedding']" in serving and "dtype: DT_FLOAT" in serving
    assert "shape: (-1, 16)" in serving
    embed_bytes = signature_text("embed_bytes")
    assert "inputs['image_bytes']" in embed_bytes and "dtype: DT_STRING" in embed_bytes
    verify = signature_text("verify")
    assert "outputs['same']" in verify and "dtype: DT_BOOL" in verify
    search = signature_text("search")
    assert "outputs['ids']" in search and "dtype: DT_STRING" in search
    assert "shape: (-1, 3)" in search


# ---------------------------------------------------------------- embed_bytes


def test_embed_bytes_equals_serving_default_on_the_decoded_pixels(siamese):
    serving = siamese.loaded.signatures["serving_default"]
    embed_bytes = siamese.loaded.signatures["embed_bytes"]
    images = random_images(3, RGB_SHAPE, seed=31)
    pngs = [encode_png(image) for image in images]
    from_png = embed_bytes(image_bytes=tf.constant(pngs))["embedding"].numpy()
    from_pixels = serving(images=tf.constant(images))["embedding"].numpy()
    np.testing.assert_array_equal(from_png, from_pixels)  # PNG is lossless: exact

    jpegs = [tf.io.encode_jpeg(image, quality=80).numpy() for image in images]
    decoded = np.stack([tf.io.decode_jpeg(jpeg).numpy() for jpeg in jpegs])
    assert np.abs(decoded.astype(int) - images).max() > 0  # JPEG is lossy ...
    from_jpeg = embed_bytes(image_bytes=tf.constant(jpegs))["embedding"].numpy()
    expected = serving(images=tf.constant(decoded))["embedding"].numpy()
    np.testing.assert_allclose(from_jpeg, expected, atol=1e-6, rtol=0)  # ... but decoded alike

    # Empty requests answer empty outputs (TF 2.21's Conv2D mis-shapes an empty batch).
    assert embed_bytes(image_bytes=tf.constant([], tf.string))["embedding"].shape == (0, 16)
    no_images = tf.zeros((0, *RGB_SHAPE), tf.uint8)
    assert serving(images=no_images)["embedding"].shape == (0, 16)
    assert siamese.loaded.signatures["search"](images=no_images)["ids"].shape == (0, 3)


def test_embed_bytes_converts_channels_and_size_as_the_training_pipeline(siamese, tmp_path):
    rgb_serving = siamese.loaded.signatures["serving_default"]
    rgb_embed_bytes = siamese.loaded.signatures["embed_bytes"]

    # Grayscale bytes of another size into the RGB model.
    gray = random_images(1, (20, 12, 1), seed=41)[0]
    pixels = _image_converter(1, (16, 16), 3)(tf.constant(gray)).numpy()
    assert pixels.shape == RGB_SHAPE
    np.testing.assert_array_equal(
        rgb_embed_bytes(image_bytes=tf.constant([encode_png(gray)]))["embedding"].numpy(),
        rgb_serving(images=tf.constant(pixels[None]))["embedding"].numpy(),
    )

    # RGBA bytes: the alpha channel is dropped.
    rgb = random_images(1, RGB_SHAPE, seed=42)[0]
    rgba = np.concatenate([rgb, np.full((16, 16, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(
        rgb_embed_bytes(image_bytes=tf.constant([encode_png(rgba)]))["embedding"].numpy(),
        rgb_serving(images=tf.constant(rgb[None]))["embedding"].numpy(),
    )

    # RGB bytes of another size into a grayscale model.
    model = gray_model()
    gray_model_dir = export_for_serving(model, tmp_path, warmup=False)
    served = load_for_inference(gray_model_dir)
    color = random_images(1, (24, 24, 3), seed=43)[0]
    pixels = _image_converter(3, (16, 16), 1)(tf.constant(color)).numpy()
    np.testing.assert_array_equal(
        served.embed_bytes([encode_png(color)]), served.embed(pixels[None])
    )
    np.testing.assert_allclose(
        served.embed_bytes([encode_png(color)]), keras_embeddings(model, pixels[None]), atol=1e-5
    )


def test_non_image_bytes_are_an_invalid_argument_and_serving_goes_on(siamese):
    embed_bytes = siamese.loaded.signatures["embed_bytes"]
    good = encode_png(random_images(1, RGB_SHAPE)[0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        embed_bytes(image_bytes=tf.constant([good, b"this is not an image"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Input is empty"):
        embed_bytes(image_bytes=tf.constant([b""]))
    with pytest.raises(tf.errors.InvalidArgumentError):
        embed_bytes(image_bytes=tf.constant([good[: len(good) // 2]]))  # truncated PNG
    assert embed_bytes(image_bytes=tf.constant([good]))["embedding"].shape == (1, 16)

    similarity = siamese.loaded.signatures["similarity"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="same number of images"):
        similarity(
            images_a=tf.constant(random_images(2, RGB_SHAPE)),
            images_b=tf.constant(random_images(3, RGB_SHAPE)),
        )


# ---------------------------------------------------------------- TF Serving's wire formats


def rest_request_to_tensors(body: str, signature) -> dict:
    """TF Serving's REST "row" format (`instances`) -> the signature's named input tensors.

    From the documented format: each instance is an object keyed by input name (or, for a
    signature with one input, the bare value); a `{"b64": "..."}` object is base64-decoded
    into a binary string; instances are stacked along a new first (batch) dimension.
    """
    request = json.loads(body)
    specs = signature.structured_input_signature[1]
    instances = request["instances"]

    def decode(value):
        if isinstance(value, dict) and list(value) == ["b64"]:
            return base64.b64decode(value["b64"])
        if isinstance(value, list):
            return [decode(item) for item in value]
        return value

    if len(specs) == 1 and not all(
        isinstance(row, dict) and set(row) == set(specs) for row in instances
    ):
        instances = [{next(iter(specs)): row} for row in instances]
    tensors = {}
    for name, spec in specs.items():
        values = [decode(row[name]) for row in instances]
        array = np.array(
            values, dtype=object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
        )
        tensors[name] = tf.constant(array, dtype=spec.dtype)
    return tensors


def rest_response(outputs: dict) -> str:
    """The row-format response: one prediction per instance (an object for several outputs)."""
    columns = {key: value.numpy().tolist() for key, value in outputs.items()}
    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    if len(columns) == 1:
        rows = [next(iter(row.values())) for row in rows]
    return json.dumps({"predictions": rows}, default=lambda value: value.decode("utf-8"))


def test_rest_json_bodies_are_answered(siamese):
    signatures = siamese.loaded.signatures
    images = random_images(2, RGB_SHAPE, seed=51)
    body = json.dumps(
        {
            "signature_name": "embed_bytes",
            "instances": [
                {"image_bytes": {"b64": base64.b64encode(encode_png(image)).decode("ascii")}}
                for image in images
            ],
        }
    )
    tensors = rest_request_to_tensors(body, signatures["embed_bytes"])
    response = json.loads(rest_response(signatures["embed_bytes"](**tensors)))
    np.testing.assert_allclose(
        np.array(response["predictions"], np.float32),
        keras_embeddings(siamese.model, images),
        atol=1e-5,
    )

    # Pixel lists for a two-input signature; bare values for a one-input signature.
    verify_body = json.dumps(
        {
            "signature_name": "verify",
            "instances": [{"images_a": images[0].tolist(), "images_b": images[1].tolist()}],
        }
    )
    tensors = rest_request_to_tensors(verify_body, signatures["verify"])
    (prediction,) = json.loads(rest_response(signatures["verify"](**tensors)))["predictions"]
    score = keras_scores(siamese.model, images[:1], images[1:])[0]
    assert prediction["score"] == pytest.approx(float(score), abs=1e-5)
    threshold = json.loads(signatures["metadata"]()["json"].numpy())["verify"]["threshold"]
    assert prediction["same"] == bool(score >= threshold)

    search_body = json.dumps({"signature_name": "search", "instances": [images[0].tolist()]})
    tensors = rest_request_to_tensors(search_body, signatures["search"])
    (prediction,) = json.loads(rest_response(signatures["search"](**tensors)))["predictions"]
    order, _ = numpy_top_k(
        siamese.model.predict(images[:1].astype("float32"), verbose=0), siamese.gallery, 3
    )
    assert prediction["ids"] == siamese.gallery_ids[order[0]].tolist()


def test_warmup_file_holds_one_answerable_request_per_signature(siamese):
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(siamese.version_dir, "assets.extra", "tf_serving_warmup_requests")
    records = [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(path)
    ]
    names = [record.predict_log.request.model_spec.signature_name for record in records]
    assert sorted(names) == [name for name in ALL_SIGNATURES if name != "metadata"]
    for record in records:
        request = record.predict_log.request
        assert request.model_spec.name == "siamese"
        signature = siamese.loaded.signatures[request.model_spec.signature_name]
        specs = signature.structured_input_signature[1]
        assert sorted(request.inputs) == sorted(specs)
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        for key, spec in specs.items():
            assert tf.as_dtype(request.inputs[key].dtype) == spec.dtype
            assert spec.shape.is_compatible_with(inputs[key].shape)
        outputs = signature(**{key: tf.constant(value) for key, value in inputs.items()})
        assert all(value.shape[0] == len(next(iter(inputs.values()))) for value in outputs.values())
    metadata = json.loads(siamese.loaded.signatures["metadata"]()["json"].numpy())
    assert sorted(metadata["warmup"]["signatures"]) == sorted(names)


def test_missing_serving_api_fails_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
    with pytest.raises(
        ImportError, match=r"pip install --no-deps tensorflow-serving-api.*warmup=False"
    ):
        export_for_serving(gray_model(), tmp_path / "export")
    assert not os.path.exists(tmp_path / "export")
    assert INSTALL_COMMAND == "pip install --no-deps tensorflow-serving-api"


# ---------------------------------------------------------------- search


def test_search_is_exact_across_chunks_with_integer_ids(tmp_path, monkeypatch):
    monkeypatch.setattr(search_lib, "CHUNK_ROWS", 7)  # 50 rows -> 8 chunks of 7, 6 padded rows
    model = gray_model()
    gallery = model.predict(random_images(50, GRAY_SHAPE, seed=61).astype("float32"), verbose=0)
    ids = np.arange(1000, 1050)
    version_dir = export_for_serving(
        model, tmp_path, gallery=gallery, gallery_ids=ids, top_k=5, warmup=False
    )
    served = load_for_inference(version_dir)
    assert served.metadata["search"]["chunk_rows"] == 7
    queries = np.concatenate(
        [random_images(9, GRAY_SHAPE, seed=62), random_images(1, GRAY_SHAPE, seed=61)]
    )
    found_ids, scores = served.search(queries, batch_size=4)
    order, expected_scores = numpy_top_k(
        model.predict(queries.astype("float32"), verbose=0), gallery, 5
    )
    assert found_ids.dtype == np.int64
    np.testing.assert_array_equal(found_ids, ids[order])
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    assert found_ids[-1, 0] == 1000 and scores[-1, 0] == pytest.approx(1.0, abs=1e-5)  # itself


def test_gallery_layout_in_chunks():
    gallery = search_lib.Gallery(np.ones((100_000, 4)), None, top_k=10, embedding_dims=4)
    assert (gallery.chunks, gallery.chunk_rows) == (4, 25_000)
    np.testing.assert_allclose(np.linalg.norm(gallery.embeddings[:3], axis=1), 1.0, rtol=1e-6)
    small = search_lib.Gallery(
        np.ones((5, 4)), ["a", "b", "c", "d", "e"], top_k=5, embedding_dims=4
    )
    assert (small.chunks, small.chunk_rows, small.id_dtype) == (1, 5, tf.string)
    queries = tf.constant([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    # 7 rows in 3 chunks of 3; rows 7 and 8 are padding equal to row 0, and never found.
    embeddings = tf.Variable(np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 1, 2, 0, 0, 0]])
    scores, indices = search_lib.top_k_neighbours(queries, embeddings, 7, 3, 3, 2)
    np.testing.assert_array_equal(indices.numpy(), [[1, 4], [0, 6]])
    np.testing.assert_array_equal(scores.numpy(), [[1.0, 1.0], [1.0, 1.0]])


@pytest.mark.slow
@in_replica_process
def test_a_million_item_gallery_is_searched(tmp_path):
    keras.utils.set_random_seed(7)
    inputs = keras.Input(GRAY_SHAPE)
    features = keras.layers.Dense(128)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, features)
    gallery = np.random.default_rng(71).standard_normal((1_000_000, 128), dtype=np.float32)
    version_dir = export_for_serving(model, tmp_path, gallery=gallery, top_k=4, warmup=False)
    variables = os.path.join(version_dir, "variables")
    assert sum(entry.stat().st_size for entry in os.scandir(variables)) > 512e6
    served = load_for_inference(version_dir)
    assert served.metadata["search"]["chunk_rows"] * 31 >= 1_000_000  # 31 chunks
    queries = random_images(3, GRAY_SHAPE, seed=72)
    ids, scores = served.search(queries)

    query_embeddings = l2_normalize(model.predict(queries.astype("float32"), verbose=0))
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    all_scores = query_embeddings @ gallery.T
    expected = np.argsort(-all_scores, axis=1)[:, :4]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(all_scores, expected, 1), atol=1e-5)


# ---------------------------------------------------------------- verify and its calibration


def test_calibration_matches_references():
    rng = np.random.default_rng(81)
    same = rng.random(200) < 0.4
    scores = np.round(rng.normal(same * 1.0, 1.0), 1)  # rounded: many ties
    summary = calibration.calibrate(scores, same)
    assert summary["threshold"] == brute_force_eer_threshold(scores, same)
    assert summary["threshold_source"] == "equal error rate"
    assert summary["roc_auc"] == pytest.approx(roc_auc_score(same, scores), abs=1e-12)
    assert summary["equal_error_rate"] == pytest.approx(
        sklearn_interpolated_eer(scores, same), abs=1e-12
    )
    accepted = scores >= summary["threshold"]
    assert summary["false_accept_rate"] == pytest.approx(accepted[~same].mean())
    assert summary["false_reject_rate"] == pytest.approx((~accepted[same]).mean())
    assert (summary["pairs"], summary["same_pairs"]) == (200, int(same.sum()))

    # Analytic cases: separable pairs, a given threshold, and ties at the threshold.
    assert calibration.equal_error_threshold([0.9, 0.8, 0.3], [1, 1, 0]) == 0.8
    assert calibration.error_rates([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0], 0.5) == (0.5, 0.5)
    assert calibration.error_rates([0.5, 0.5], [True, False], 0.5) == (1.0, 0.0)
    summary = calibration.calibrate([0.9, 0.8, 0.3], [1, 1, 0], threshold=0.85)
    assert summary["threshold"] == 0.85 and summary["threshold_source"] == "given"
    assert (summary["false_accept_rate"], summary["false_reject_rate"]) == (0.0, 0.5)
    assert (summary["roc_auc"], summary["equal_error_rate"]) == (1.0, 0.0)


@pytest.mark.parametrize(
    "scores, same, message",
    [
        ([0.1, 0.2], [1, 1], r"both same-class \(1\) and different-class \(0\) pairs"),
        ([0.1, 0.2], [1, 0, 1], r"same shape.*scores.shape=\(2,\), labels.shape=\(3,\)"),
        ([0.1, np.nan], [1, 0], r"NaN or infinite"),
        ([0.1, 0.2], [2, 0], r"1 for a same-class pair and 0 otherwise"),
        ([0.1, 0.2], [0.5, 0], r"1 for a same-class pair and 0 otherwise"),
    ],
)
def test_calibration_bad_input(scores, same, message):
    with pytest.raises(ValueError, match=message):
        calibration.calibrate(scores, same)


def test_calibrated_threshold_and_metadata(siamese):
    pairs_a, pairs_b, same = siamese.calibration
    scores = keras_scores(siamese.model, pairs_a, pairs_b)
    threshold = brute_force_eer_threshold(scores, same)
    served = load_for_inference(siamese.version_dir)
    verification = served.metadata["verify"]
    assert verification["threshold_source"] == "equal error rate"
    assert verification["threshold"] == pytest.approx(threshold, abs=1e-5)
    assert verification["equal_error_rate"] == pytest.approx(
        sklearn_interpolated_eer(scores, same), abs=1e-6
    )
    assert verification["roc_auc"] == pytest.approx(roc_auc_score(same, scores), abs=1e-6)
    assert (verification["pairs"], verification["same_pairs"]) == (24, 12)
    stored = siamese.loaded.signatures["metadata"]()
    assert float(stored["threshold"]) == pytest.approx(verification["threshold"], abs=1e-6)

    other_a, other_b = random_images(8, RGB_SHAPE, seed=91), random_images(8, RGB_SHAPE, seed=92)
    served_scores, decided = served.verify(other_a, other_b, batch_size=3)
    np.testing.assert_allclose(
        served_scores, keras_scores(siamese.model, other_a, other_b), atol=1e-5
    )
    np.testing.assert_array_equal(decided, served_scores >= np.float32(verification["threshold"]))
    np.testing.assert_allclose(served.similarity(other_a, other_b), served_scores, atol=1e-6)


def test_metadata_signature_and_asset(siamese):
    with open(os.path.join(siamese.version_dir, "assets.extra", "metadata.json")) as file:
        asset = json.load(file)
    stored = siamese.loaded.signatures["metadata"]()
    assert json.loads(stored["json"].numpy()) == asset
    assert stored["distance"].numpy() == b"euclidean" and int(stored["embedding_dims"]) == 16
    assert asset["distance"] == "euclidean" and asset["normalize"] is False
    assert (asset["embedding_dims"], asset["image_size"], asset["channels"]) == (16, [16, 16], 3)
    assert sorted(asset["signatures"]) == ALL_SIGNATURES
    assert asset["search"]["gallery_size"] == 40 and asset["search"]["id_dtype"] == "string"
    assert "decode_image" in asset["preprocessing"]["image_bytes"]
    assert asset["score"].startswith("negated euclidean distance")


def test_cosine_siamese_with_given_threshold(tmp_path):
    model = make_siamese(distance="cosine", normalize=True)
    version_dir = export_for_serving(model, tmp_path, threshold=0.25, warmup=False)
    served = load_for_inference(version_dir)
    assert sorted(served.signatures) == [
        "embed_bytes",
        "metadata",
        "serving_default",
        "similarity",
        "verify",
    ]
    assert served.metadata["verify"] == {
        "threshold": 0.25,
        "threshold_source": "given",
        "rule": "same = score >= threshold",
    }
    images_a, images_b = random_images(6, RGB_SHAPE, seed=93), random_images(6, RGB_SHAPE, seed=94)
    images_b[:3] = images_a[:3]
    scores, same = served.verify(images_a, images_b)
    np.testing.assert_allclose(scores, keras_scores(model, images_a, images_b), atol=1e-5)
    np.testing.assert_allclose(scores[:3], 1.0, atol=1e-5)
    np.testing.assert_array_equal(same, scores >= 0.25)


def test_real_siamese_network_is_served_like_its_keras_model(tmp_path):
    from keras_siamese.models import SiameseNetwork

    model = SiameseNetwork(
        tiny_encoder(RGB_SHAPE), distance="euclidean", embedding_dim=8, normalize=False
    )
    gallery_images = random_images(12, RGB_SHAPE, seed=101)
    gallery = model.predict(gallery_images, verbose=0)
    pairs_a = random_images(10, RGB_SHAPE, seed=102)
    pairs_b = np.concatenate([pairs_a[:5], random_images(5, RGB_SHAPE, seed=103)])
    same = np.arange(10) < 5
    version_dir = export_for_serving(
        model,
        tmp_path,
        gallery=gallery,
        top_k=2,
        calibration_pairs=(pairs_a, pairs_b, same),
        warmup=False,
    )
    served = load_for_inference(version_dir)
    assert served.metadata["distance"] == "euclidean" and served.metadata["normalize"] is False
    assert served.metadata["model_class"] == "SiameseNetwork"
    images_a, images_b = (
        random_images(6, RGB_SHAPE, seed=104),
        random_images(6, RGB_SHAPE, seed=105),
    )
    expected_scores = keras_scores(model, images_a, images_b)
    np.testing.assert_allclose(served.similarity(images_a, images_b), expected_scores, atol=1e-5)
    np.testing.assert_allclose(served.embed(images_a), keras_embeddings(model, images_a), atol=1e-5)
    threshold = brute_force_eer_threshold(keras_scores(model, pairs_a, pairs_b), same)
    assert served.metadata["verify"]["threshold"] == pytest.approx(threshold, abs=1e-5)
    assert served.metadata["verify"]["roc_auc"] == 1.0  # identical images score 0, the maximum
    np.testing.assert_array_equal(
        served.verify(images_a, images_b)[1], expected_scores >= threshold
    )
    ids, _ = served.search(gallery_images[:3])
    np.testing.assert_array_equal(ids[:, 0], [0, 1, 2])  # each image finds itself first


def test_siamese_without_threshold_warns_that_verify_is_left_out(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="keras_siamese.export.writer"):
        version_dir = export_for_serving(make_siamese(), tmp_path, warmup=False)
    assert "No `verify` signature" in caplog.text and "calibration_pairs=" in caplog.text
    served = load_for_inference(version_dir)
    assert "verify" not in served.signatures and served.metadata["verify"] is None


def test_ssl_model_similarity_is_cosine_and_verify_is_opt_in(tmp_path):
    from keras_siamese.models import SimCLR

    model = SimCLR(tiny_encoder(GRAY_SHAPE), projection_dims=(8, 4))
    version_dir = export_for_serving(model, tmp_path, warmup=False)
    served = load_for_inference(version_dir)
    assert "verify" not in served.signatures and served.metadata["distance"] == "cosine"
    images_a, images_b = (
        random_images(4, GRAY_SHAPE, seed=95),
        random_images(4, GRAY_SHAPE, seed=96),
    )
    expected = np.sum(keras_embeddings(model, images_a) * keras_embeddings(model, images_b), axis=1)
    np.testing.assert_allclose(served.similarity(images_a, images_b), expected, atol=1e-5)
    with pytest.raises(
        ValueError, match=r"no 'verify' signature.*`threshold=` or `calibration_pairs=`"
    ):
        served.verify(images_a, images_b)
    with pytest.raises(ValueError, match=r"no 'search' signature.*`gallery=`"):
        served.search(images_a)


def test_model_of_any_size_is_served_at_image_size(tmp_path):
    inputs = keras.Input((None, None, 1))
    features = keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(4, 3)(keras.layers.Rescaling(1 / 255)(inputs))
    )
    model = keras.Model(inputs, features)
    served = load_for_inference(
        export_for_serving(model, tmp_path, image_size=(12, 20), warmup=False)
    )
    assert served.image_shape == (12, 20, 1)
    images = random_images(2, (12, 20, 1))
    np.testing.assert_allclose(served.embed(images), keras_embeddings(model, images), atol=1e-5)
    assert os.listdir(os.path.join(served.path, "assets.extra")) == ["metadata.json"]
    assert served.metadata["warmup"] is None  # warmup=False: said so, not silently skipped


# ---------------------------------------------------------------- bad arguments


@pytest.fixture(scope="module")
def shared_gray_model():
    return gray_model()


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        (
            dict(gallery=np.ones((5, 16)), gallery_ids=np.arange(4)),
            ValueError,
            r"one id per gallery embedding; the gallery has 5. Received: gallery_ids.shape=\(4,\)",
        ),
        (dict(gallery=np.ones((5, 8))), ValueError, r"shape \(N, 16\).*gallery.shape=\(5, 8\)"),
        (dict(gallery=np.full((2, 16), np.nan)), ValueError, r"`gallery` must be finite"),
        (dict(gallery=np.array([["a"] * 16])), TypeError, r"float array.*gallery.dtype=<U1"),
        (dict(gallery_ids=np.arange(3)), ValueError, r"`gallery_ids` needs a `gallery`"),
        (
            dict(gallery=np.ones((5, 16)), gallery_ids=[1.5] * 5),
            TypeError,
            r"integers or strings.*gallery_ids.dtype=float64",
        ),
        (
            dict(gallery=np.ones((5, 16)), top_k=6),
            ValueError,
            r"between 1 and the gallery size 5. Received: top_k=6",
        ),
        (dict(top_k=0), ValueError, r"at least 1. Received: top_k=0"),
        (dict(top_k=2.0), TypeError, r"`top_k` must be an integer"),
        (dict(warmup="yes"), TypeError, r"`warmup` must be True or False. Received: warmup='yes'"),
        (dict(threshold=float("nan")), ValueError, r"finite. Received: threshold=nan"),
        (dict(threshold="0.5"), TypeError, r"`threshold` must be a number"),
        (
            dict(image_size=(8, 8)),
            ValueError,
            r"match the model's input size \(16, 16\).*Received: image_size=\(8, 8\)",
        ),
        (dict(image_size=(0, 8)), ValueError, r"positive int or \(height, width\)"),
        (dict(calibration_pairs=np.zeros(3)), TypeError, r"tuple `\(images_a, images_b, same\)`"),
        (
            dict(calibration_pairs=(np.zeros((2, 16, 16, 1)),) * 2 + ([1, 0],)),
            TypeError,
            r"images_a must be uint8.*Received: images_a.dtype=float64",
        ),
        (
            dict(calibration_pairs=(random_images(2, (8, 8, 1)),) * 2 + ([1, 0],)),
            ValueError,
            r"shape \(N,\) \+ \(16, 16, 1\).*images_a.shape=\(2, 8, 8, 1\)",
        ),
        (
            dict(calibration_pairs=(random_images(2), random_images(3), [1, 0])),
            ValueError,
            r"as many images_a as images_b",
        ),
        (
            dict(calibration_pairs=(random_images(2), random_images(2), [1, 1])),
            ValueError,
            r"both same-class \(1\) and different-class \(0\) pairs",
        ),
    ],
)
def test_bad_serving_arguments_are_refused_before_writing(
    shared_gray_model, tmp_path, arguments, error, message
):
    arguments = {"warmup": False, **arguments}
    with pytest.raises(error, match=message):
        export_for_serving(shared_gray_model, tmp_path / "export", **arguments)
    assert not os.path.exists(tmp_path / "export") or os.listdir(tmp_path / "export") == []


# ---------------------------------------------------------------- models.config


def test_write_models_config(siamese, tmp_path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    models = tmp_path / "models"
    shutil.copytree(siamese.version_dir, models / "faces" / "3")
    shutil.copytree(siamese.version_dir, models / "clothes" / "1")
    (models / "notes").mkdir()  # no version: not a model
    (models / "empty" / "2").mkdir(parents=True)  # a version without saved_model.pb
    (models / ".tmp-7").mkdir()

    path = write_models_config(models, base_path="/models")
    assert path == os.path.join(str(models), "models.config")
    with open(path) as file:
        config = text_format.Parse(file.read(), model_server_config_pb2.ModelServerConfig())
    entries = [
        (entry.name, entry.base_path, entry.model_platform)
        for entry in config.model_config_list.config
    ]
    assert entries == [
        ("clothes", "/models/clothes", "tensorflow"),
        ("faces", "/models/faces", "tensorflow"),
    ]
    other = write_models_config(str(models), config_path=tmp_path / "serving.config")
    with open(other) as file:
        config = text_format.Parse(file.read(), model_server_config_pb2.ModelServerConfig())
    assert config.model_config_list.config[0].base_path == os.path.abspath(models / "clothes")
    assert sorted(os.listdir(tmp_path)) == ["models", "serving.config"]

    with pytest.raises(ValueError, match=r"holds no exported model.*Received: models_dir="):
        write_models_config(models / "notes")
    with pytest.raises(ValueError, match=r"must be a directory.*Received: models_dir="):
        write_models_config(tmp_path / "missing")
    with pytest.raises(TypeError, match=r"`base_path` must be a str"):
        write_models_config(models, base_path=3)


# ---------------------------------------------------------------- load_for_inference


def test_load_for_inference_wrapper(siamese):
    served = load_for_inference(os.path.dirname(siamese.version_dir))
    assert served.path == siamese.version_dir and "search" in repr(served)
    images = random_images(5, RGB_SHAPE, seed=97)
    np.testing.assert_allclose(served(images), keras_embeddings(siamese.model, images), atol=1e-5)
    np.testing.assert_array_equal(
        served.embed_bytes([encode_png(image) for image in images], batch_size=2),
        served.embed(images),
    )
    ids, scores = served.search(images, batch_size=2)
    assert ids.shape == (5, 3) and ids.dtype == object and scores.dtype == np.float32
    assert served.search(images[:0])[0].shape == (0, 3)
    assert served.similarity(images[:0], images[:0]).shape == (0,)

    with pytest.raises(ValueError, match=r"same number of images.*images_b.shape=\(4, 16, 16, 3\)"):
        served.similarity(images, images[:4])
    with pytest.raises(TypeError, match=r"`images_b` must be uint8"):
        served.verify(images, images.astype("float32"))
    with pytest.raises(TypeError, match=r"list of encoded images"):
        served.embed_bytes(encode_png(images[0]))


# ---------------------------------------------------------------- installing the protos


REGISTRY_UNREACHABLE = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Max retries exceeded",
    "No matching distribution found for tensorflow-serving-api",
)


@pytest.mark.slow
def test_serving_api_installs_without_a_second_tensorflow(tmp_path):
    """`pip install --no-deps tensorflow-serving-api` in a fresh venv works beside our TF.

    The package is installed into an empty venv, which then sees this environment's packages
    through a `.pth` file placed after its own site-packages (as `--system-site-packages`
    would), so Python finds the installed TensorFlow beside it. A dry run of the plain install
    there shows the trap: pip would add the full `tensorflow` package.
    """
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    own_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()

    def pip_install(*arguments):
        result = run_fresh([python, "-m", "pip", "install", *arguments], tmp_path)
        if result.returncode != 0:
            if any(text in result.stdout + result.stderr for text in REGISTRY_UNREACHABLE):
                pytest.skip(f"pip cannot reach the package registry: {result.stderr[-500:]}")
            raise AssertionError(result.stdout[-2000:] + result.stderr[-2000:])
        return result

    pip_install(*INSTALL_COMMAND.split()[2:])
    installed = sorted(os.listdir(own_site))
    assert not [name for name in installed if name.lower().startswith("tensorflow-")]
    assert [name for name in installed if name.startswith("tensorflow_serving_api")]

    # Now let the venv see this environment, with its TensorFlow, after its own packages.
    with open(os.path.join(own_site, "project_environment.pth"), "w") as file:
        file.write(sysconfig.get_paths()["purelib"] + "\n")
    check = run_fresh(
        [
            python,
            "-c",
            "import tensorflow as tf, tensorflow_serving, google.protobuf\n"
            "from tensorflow_serving.apis import prediction_log_pb2, predict_pb2\n"
            "request = predict_pb2.PredictRequest()\n"
            "request.inputs['x'].CopyFrom(tf.make_tensor_proto([1.0]))\n"
            "log = prediction_log_pb2.PredictionLog(\n"
            "    predict_log=prediction_log_pb2.PredictLog(request=request))\n"
            "assert prediction_log_pb2.PredictionLog.FromString(log.SerializeToString()) == log\n"
            "print(tf.__file__); print(tensorflow_serving.__file__)",
        ],
        tmp_path,
    )
    assert check.returncode == 0, check.stderr[-3000:]
    tensorflow_file, serving_file = check.stdout.split()[-2:]
    assert tensorflow_file.startswith(sysconfig.get_paths()["purelib"])
    assert serving_file.startswith(own_site)

    dry_run = pip_install("--dry-run", "tensorflow-serving-api")
    would_install = dry_run.stdout.split("Would install")[-1].split()
    assert any(name.startswith("tensorflow-2.") for name in would_install), dry_run.stdout[-2000:]
