"""Tests for keras_siamese.export: SavedModel layout, serving signature, atomic versions, reload."""

import os
import shutil
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, tiny_encoder

from keras_siamese.export import InferenceModel, export_for_serving, load_for_inference
from keras_siamese.models import RepresentationModel

IMAGE_SHAPE = (16, 16, 1)


class StandInTrainer(RepresentationModel):
    """Stands in for SimCLR/SimSiam: an encoder, a projection head, and the shared base.

    `call` returns the representation; the head is used only by the training step, so after
    `fit` the trainer has head weights and optimizer slots that must not reach the export.
    """

    def __init__(self, image_shape=IMAGE_SHAPE, **kwargs):
        super().__init__(tiny_encoder(tuple(image_shape)), **kwargs)
        self.head = keras.layers.Dense(4)
        self.head.build((None, self.feature_dim))

    def prepare_batch(self, data, training):
        return self.preprocess(data)

    def loss_on_batch(self, images, training):
        projections = self.head(self.embed(images, training=training))
        return tf.reduce_mean(tf.square(projections - 1.0)), {}

    def _check_inputs(self, x, y, batch_size, validation_data=None):
        pass


def trained_stand_in():
    """A stand-in trainer after one SGD-with-momentum step (so the optimizer has slots)."""
    model = StandInTrainer()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    model.fit(random_images(8, IMAGE_SHAPE).astype("float32"), epochs=1, batch_size=8, verbose=0)
    return model


def plain_model(seed=1):
    """A functional model that is not ours: Rescaling + tiny encoder."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(IMAGE_SHAPE)
    features = tiny_encoder(IMAGE_SHAPE)(keras.layers.Rescaling(1 / 255)(inputs))
    return keras.Model(inputs, features)


def l2_normalize_reference(features):
    """numpy version of tf.math.l2_normalize(axis=-1, epsilon=1e-12)."""
    features = np.asarray(features, np.float64)
    squared_norm = np.sum(features**2, axis=-1, keepdims=True)
    return (features / np.sqrt(np.maximum(squared_norm, 1e-12))).astype(np.float32)


def expected_embeddings(model, images):
    """What serving must answer: L2-normalised `model.predict` of float32 images."""
    return l2_normalize_reference(model.predict(images.astype("float32"), verbose=0))


def saved_model_cli():
    """The saved_model_cli command, next to this interpreter or on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if os.path.exists(beside):
        return [beside]
    found = shutil.which("saved_model_cli")
    if found:
        return [found]
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


def run_fresh_python(arguments, cwd):
    """Runs a command in a fresh process with quiet TensorFlow logs; returns the result."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        arguments,
        check=False,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export of a trained stand-in, shared by the tests that only read it."""
    keras.utils.set_random_seed(0)
    model = trained_stand_in()
    directory = tmp_path_factory.mktemp("exported")
    images = random_images(5, IMAGE_SHAPE, seed=3)
    expected = expected_embeddings(model, images)
    np.save(directory / "images.npy", images)
    np.save(directory / "expected.npy", expected)
    version_dir = export_for_serving(model, directory / "export")
    return types.SimpleNamespace(
        model=model,
        directory=directory,
        version_dir=version_dir,
        images=images,
        expected=expected,
    )


# ---------------------------------------------------------------- serving signature


def test_export_layout_and_serving_signature(exported):
    assert exported.version_dir == os.path.join(str(exported.directory / "export"), "1")
    assert sorted(os.listdir(exported.directory / "export")) == ["1"]
    assert os.path.isfile(os.path.join(exported.version_dir, "saved_model.pb"))

    loaded = tf.saved_model.load(exported.version_dir)
    assert sorted(loaded.signatures) == [
        "embed_bytes",
        "metadata",
        "serving_default",
        "similarity",
    ]  # no gallery, no threshold: no `search`, no `verify`
    serving = loaded.signatures["serving_default"]
    (images_spec,) = serving.structured_input_signature[1].values()
    assert images_spec.name == "images"
    assert images_spec.dtype == tf.uint8
    assert images_spec.shape.as_list() == [None, *IMAGE_SHAPE]
    assert list(serving.structured_outputs) == ["embedding"]
    assert serving.structured_outputs["embedding"].shape.as_list() == [None, 16]

    embedding = serving(images=tf.constant(exported.images))["embedding"].numpy()
    assert embedding.dtype == np.float32
    np.testing.assert_allclose(embedding, exported.expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=-1), 1.0, atol=1e-5)


def test_export_holds_only_the_embedding_variables(exported):
    """Head weights and optimizer slots of the trainer stay out of the SavedModel."""
    embedding_weights = exported.model.embedding_model().weights
    assert exported.model.optimizer.variables  # the trainer does have optimizer state
    saved = [
        (name, shape)
        for name, shape in tf.train.list_variables(
            os.path.join(exported.version_dir, "variables", "variables")
        )
        if name.endswith("VARIABLE_VALUE")
    ]
    assert sorted(tuple(shape) for _, shape in saved) == sorted(
        tuple(weight.shape) for weight in embedding_weights
    )
    reader = tf.train.load_checkpoint(os.path.join(exported.version_dir, "variables", "variables"))
    saved_values = sorted(float(np.sum(reader.get_tensor(name))) for name, _ in saved)
    trained_values = sorted(float(np.sum(weight.numpy())) for weight in embedding_weights)
    np.testing.assert_allclose(saved_values, trained_values, rtol=1e-6, atol=1e-6)


def test_plain_keras_model_is_exported_as_is(tmp_path):
    model = plain_model()
    images = random_images(4, IMAGE_SHAPE, seed=5)
    version_dir = export_for_serving(model, tmp_path)
    loaded = tf.saved_model.load(version_dir)
    embedding = loaded.signatures["serving_default"](images=tf.constant(images))["embedding"]
    np.testing.assert_allclose(embedding.numpy(), expected_embeddings(model, images), atol=1e-5)


@pytest.mark.parametrize(
    "representation, embedding",
    [
        ((3.0, 4.0), (0.6, 0.8)),  # unit length
        ((0.0, 0.0), (0.0, 0.0)),  # zero stays zero, not NaN
        ((3e-7, 4e-7), (0.3, 0.4)),  # squared norm 2.5e-13 < 1e-12: divided by sqrt(1e-12)
    ],
)
def test_l2_normalisation_analytic_cases(tmp_path, representation, embedding):
    inputs = keras.Input(IMAGE_SHAPE)
    features = keras.layers.Dense(
        2,
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(representation),
    )(keras.layers.Flatten()(inputs))
    version_dir = export_for_serving(keras.Model(inputs, features), tmp_path)
    result = load_for_inference(version_dir).embed(random_images(2, IMAGE_SHAPE))
    np.testing.assert_allclose(result, np.array([embedding, embedding], np.float32), atol=1e-6)


def test_saved_model_cli_run_answers(exported, tmp_path):
    result = run_fresh_python(
        saved_model_cli()
        + [
            "run",
            "--dir",
            exported.version_dir,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"images={exported.directory / 'images.npy'}",
            "--outdir",
            str(tmp_path),
        ],
        cwd=exported.directory,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    embedding = np.load(tmp_path / "embedding.npy")
    assert embedding.shape == (5, 16)
    np.testing.assert_allclose(embedding, exported.expected, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- versions


def test_versions_count_up_from_the_highest_numeric_directory(tmp_path):
    model = plain_model()
    assert export_for_serving(model, tmp_path) == os.path.join(str(tmp_path), "1")
    assert export_for_serving(model, tmp_path) == os.path.join(str(tmp_path), "2")
    (tmp_path / "7").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "99").write_text("a file, not a version")
    assert export_for_serving(model, str(tmp_path)) == os.path.join(str(tmp_path), "8")
    assert export_for_serving(model, tmp_path, version=3) == os.path.join(str(tmp_path), "3")
    assert sorted(os.listdir(tmp_path)) == ["1", "2", "3", "7", "8", "99", "notes"]


def test_missing_export_dir_is_created(tmp_path):
    export_dir = tmp_path / "a" / "b"
    version_dir = export_for_serving(plain_model(), export_dir, version=np.int64(4))
    assert version_dir == os.path.join(str(export_dir), "4")
    assert os.listdir(export_dir) == ["4"]


def test_existing_version_is_refused_then_overwritten(tmp_path):
    first, second = plain_model(seed=1), plain_model(seed=2)
    images = random_images(3, IMAGE_SHAPE, seed=7)
    export_for_serving(first, tmp_path, version=1)
    with pytest.raises(ValueError, match=r"already exists at .*1.*pass overwrite=True"):
        export_for_serving(second, tmp_path, version=1)
    np.testing.assert_allclose(
        load_for_inference(tmp_path / "1").embed(images),
        expected_embeddings(first, images),
        atol=1e-5,
    )

    version_dir = export_for_serving(second, tmp_path, version=1, overwrite=True)
    assert version_dir == os.path.join(str(tmp_path), "1")
    assert os.listdir(tmp_path) == ["1"]  # no temporary or replaced directory left
    np.testing.assert_allclose(
        load_for_inference(version_dir).embed(images),
        expected_embeddings(second, images),
        atol=1e-5,
    )


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    def failing_save(module, directory, signatures=None):
        with open(os.path.join(directory, "saved_model.pb"), "wb") as file:
            file.write(b"half written")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        export_for_serving(plain_model(), tmp_path / "export")
    assert os.listdir(tmp_path / "export") == []


def test_failed_overwrite_keeps_the_old_version(tmp_path, monkeypatch):
    model = plain_model(seed=1)
    images = random_images(2, IMAGE_SHAPE)
    export_for_serving(model, tmp_path, version=1)

    def failing_save(module, directory, signatures=None):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        export_for_serving(plain_model(seed=2), tmp_path, version=1, overwrite=True)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["1"]
    np.testing.assert_allclose(
        load_for_inference(tmp_path).embed(images), expected_embeddings(model, images), atol=1e-5
    )


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("version", [0, -3])
def test_non_positive_version_is_refused(tmp_path, version):
    with pytest.raises(ValueError, match=rf"positive integer.*Received: version={version}"):
        export_for_serving(plain_model(), tmp_path, version=version)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("version", ["1", 1.0, True])
def test_non_integer_version_is_refused(tmp_path, version):
    with pytest.raises(
        TypeError, match=r"`version` must be a positive integer.*Received: version="
    ):
        export_for_serving(plain_model(), tmp_path, version=version)


def test_bad_overwrite_and_export_dir_types_are_refused(tmp_path):
    with pytest.raises(
        TypeError, match=r"`overwrite` must be True or False.*Received: overwrite=1"
    ):
        export_for_serving(plain_model(), tmp_path, overwrite=1)
    with pytest.raises(TypeError, match=r"`export_dir` must be a path.*Received: export_dir=3"):
        export_for_serving(plain_model(), 3)


def test_export_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "export"
    path.write_text("not a directory")
    with pytest.raises(ValueError, match=r"existing file.*Received: export_dir="):
        export_for_serving(plain_model(), path)


def test_variable_image_size_is_refused(tmp_path):
    inputs = keras.Input((None, None, 1))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(
        ValueError, match=r"fixed image size.*Received: input_shape=\(None, None, None, 1\)"
    ):
        export_for_serving(keras.Model(inputs, features), tmp_path)
    assert os.listdir(tmp_path) == []


def test_models_without_one_image_input_and_one_vector_output_are_refused(tmp_path):
    inputs = keras.Input(IMAGE_SHAPE)
    feature_map = keras.layers.Conv2D(4, 3)(inputs)
    with pytest.raises(
        ValueError, match=r"\(batch, dims\).*Received: output shapes=\[\(None, 14, 14, 4\)\]"
    ):
        export_for_serving(keras.Model(inputs, feature_map), tmp_path)

    vectors = keras.Input((8,))
    message = r"\(batch, height, width, channels\).*Received: input_shape=\(None, 8\)"
    with pytest.raises(ValueError, match=message):
        export_for_serving(keras.Model(vectors, keras.layers.Dense(2)(vectors)), tmp_path)

    class Unbuilt(keras.Model):
        def call(self, images):
            return images

    with pytest.raises(ValueError, match=r"known input.*Received: model="):
        export_for_serving(Unbuilt(), tmp_path)


def test_non_models_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"`model` must be a `keras.Model`.*Received: model="):
        export_for_serving(lambda images: images, tmp_path)

    class BrokenTrainer(StandInTrainer):
        def embedding_model(self):
            return "not a model"

    with pytest.raises(TypeError, match=r"embedding_model\(\)` must return a `keras.Model`"):
        export_for_serving(BrokenTrainer(), tmp_path)


# ---------------------------------------------------------------- load_for_inference


def test_load_for_inference_round_trip_in_chunks(exported):
    model = load_for_inference(exported.version_dir)
    assert isinstance(model, InferenceModel)
    assert model.image_shape == IMAGE_SHAPE
    assert model.embedding_dims == 16
    assert "serving_default" in model.signatures
    images = random_images(300, IMAGE_SHAPE, seed=9)  # more than one chunk of 256
    embedding = model.embed(images)
    assert embedding.shape == (300, 16) and embedding.dtype == np.float32
    expected = expected_embeddings(exported.model, images)
    np.testing.assert_allclose(embedding, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(model.embed(images, batch_size=7), expected, atol=1e-5, rtol=0)
    assert model.embed(images[:0]).shape == (0, 16)


def test_load_for_inference_picks_the_highest_version(tmp_path):
    first, second = plain_model(seed=1), plain_model(seed=2)
    images = random_images(3, IMAGE_SHAPE, seed=4)
    export_for_serving(second, tmp_path, version=10)
    export_for_serving(first, tmp_path, version=9)
    (tmp_path / "11").mkdir()  # an empty, not-yet-complete directory is skipped
    model = load_for_inference(str(tmp_path))
    assert model.path == os.path.join(str(tmp_path), "10")
    np.testing.assert_allclose(model.embed(images), expected_embeddings(second, images), atol=1e-5)


def test_load_for_inference_bad_input(exported, tmp_path):
    model = load_for_inference(exported.version_dir)
    images = random_images(2, IMAGE_SHAPE)
    with pytest.raises(TypeError, match=r"must be uint8.*Received: images.dtype=float32"):
        model.embed(images.astype("float32") / 255)
    message = r"\(N,\) \+ \(16, 16, 1\).*Received: images.shape=\(16, 16, 1\)"
    with pytest.raises(ValueError, match=message):
        model.embed(images[0])
    with pytest.raises(ValueError, match=r"integer >= 1.*Received: batch_size=0"):
        model.embed(images, batch_size=0)
    with pytest.raises(TypeError, match=r"`batch_size` must be an integer"):
        model.embed(images, batch_size=2.5)
    with pytest.raises(ValueError, match=r"SavedModel directory.*Received: path="):
        load_for_inference(tmp_path)
    with pytest.raises(ValueError, match=r"SavedModel directory.*Received: path="):
        load_for_inference(tmp_path / "missing")
    with pytest.raises(TypeError, match=r"`path` must be a path"):
        load_for_inference(None)


def test_load_for_inference_refuses_a_savedmodel_without_serving_default(tmp_path):
    module = tf.Module()
    module.double = tf.function(
        lambda values: {"doubled": 2.0 * values},
        input_signature=[tf.TensorSpec([None], tf.float32, name="values")],
    )
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"double": module.double})
    with pytest.raises(ValueError, match=r"no 'serving_default' signature.*Received: path="):
        load_for_inference(tmp_path)
