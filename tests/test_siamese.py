"""Tests of keras_siamese.SiameseNetwork: pair and triplet training, scores, save/reload, export."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, tiny_encoder
from test_metric_losses import brute_force_triplet

import keras_siamese as ks
from keras_siamese import losses
from keras_siamese.models import siamese_inputs

IMAGE_SHAPE = (16, 16, 1)
LABELS = np.repeat(np.arange(4), 4)  # 16 images, 4 classes of 4
TRIPLET_METRICS = ("loss", "fraction_active", "positive_distance", "negative_distance")


def encoder_weights(model):
    return [weight.numpy().copy() for weight in model.encoder.trainable_weights]


def changed(before, model):
    return any(
        not np.allclose(old, new.numpy())
        for old, new in zip(before, model.encoder.trainable_weights, strict=True)
    )


def pair_data(count=8, seed=0):
    """Pairs and their labels (1 = same class) drawn from LABELS."""
    images = random_images(16, IMAGE_SHAPE, seed=seed)
    rng = np.random.default_rng(seed)
    first, second = rng.integers(0, 16, count), rng.integers(0, 16, count)
    second[: count // 2] = first[: count // 2] ^ 1  # same class: 4k and 4k+1, ...
    same = (LABELS[first] == LABELS[second]).astype("int64")
    return (images[first], images[second]), same


@pytest.fixture(scope="module")
def triplet_model():
    """A triplet model trained for one step on P x K batches (2 classes x 4 images)."""
    keras.utils.set_random_seed(0)
    model = ks.SiameseNetwork(
        tiny_encoder(IMAGE_SHAPE),
        loss=losses.TripletLoss(margin=0.3, mining="hard"),
        embedding_dim=6,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    images = random_images(16, IMAGE_SHAPE, seed=1)
    before = encoder_weights(model)
    batches = ks.sampling.class_balanced_batches((images, LABELS), 2, 4, seed=0)
    history = model.fit(batches.take(1), epochs=1, verbose=0)
    model.history_values = history.history
    model.weights_before = before
    return model


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------


def test_triplet_fit_step_changes_encoder_and_reports_metrics(triplet_model):
    history = triplet_model.history_values
    assert set(history) == set(TRIPLET_METRICS)
    assert np.isfinite(history["loss"][0]) and history["loss"][0] > 0
    assert 0.0 <= history["fraction_active"][0] <= 1.0
    assert changed(triplet_model.weights_before, triplet_model)


@pytest.mark.parametrize("mining", ["semi-hard", "all"])
def test_triplet_evaluate_loss_equals_brute_force(triplet_model, mining):
    images = random_images(16, IMAGE_SHAPE, seed=2)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 5, 5, 6])  # 4, 6: no positive
    model = ks.SiameseNetwork(triplet_model.encoder, loss=losses.TripletLoss(0.4, mining))
    model.compile()
    result = model.evaluate(images, labels, batch_size=16, verbose=0, return_dict=True)
    embeddings = model.predict(images, verbose=0)
    expected = brute_force_triplet(embeddings, labels, 0.4, mining)
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_pair_fit_and_evaluate_match_contrastive_reference(distance):
    model = ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), loss="contrastive", distance=distance)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    (images_a, images_b), same = pair_data()
    before = encoder_weights(model)
    history = model.fit((images_a, images_b), same, batch_size=8, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "pair_accuracy"}
    assert changed(before, model)
    # evaluate() = mean(y d^2 + (1 - y) max(1 - d, 0)^2) on the model's own embeddings,
    # with y = 1 for the same-class pairs.
    result = model.evaluate((images_a, images_b), same, batch_size=8, verbose=0, return_dict=True)
    embeddings_a = model.predict(images_a, verbose=0).astype(np.float64)
    embeddings_b = model.predict(images_b, verbose=0).astype(np.float64)
    if distance == "cosine":
        d = 1.0 - np.sum(embeddings_a * embeddings_b, axis=1)  # unit-norm embeddings
    else:
        d = np.linalg.norm(embeddings_a - embeddings_b, axis=1)
    expected = np.mean(same * d**2 + (1 - same) * np.maximum(1.0 - d, 0.0) ** 2)
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result["pair_accuracy"], np.mean((d < 0.5) == (same == 1)))


def test_explicit_triplets_from_arrays_and_dataset():
    model = ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), loss="triplet")
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    anchors, positives, negatives = (random_images(8, IMAGE_SHAPE, seed=s) for s in (3, 4, 5))
    before = encoder_weights(model)
    history = model.fit((anchors, positives, negatives), batch_size=8, epochs=1, verbose=0)
    assert changed(before, model)
    assert set(history.history) == set(TRIPLET_METRICS)
    dataset = tf.data.Dataset.from_tensor_slices((anchors, positives, negatives)).batch(8)
    result = model.evaluate(dataset, verbose=0, return_dict=True)
    a, p, n = (
        model.predict(x, verbose=0).astype(np.float64) for x in (anchors, positives, negatives)
    )
    d_ap, d_an = np.linalg.norm(a - p, axis=1), np.linalg.norm(a - n, axis=1)
    np.testing.assert_allclose(
        result["loss"], np.mean(np.maximum(d_ap - d_an + 0.2, 0)), rtol=1e-4, atol=1e-6
    )


def test_augmenter_is_applied_in_training_only():
    # Rescaling(0) blanks every image: in training all embeddings coincide, so every pair is at
    # distance 0 and the contrastive loss is exactly the fraction of negative pairs (margin 1).
    model = ks.SiameseNetwork(
        tiny_encoder(IMAGE_SHAPE), augmenter=keras.layers.Rescaling(0.0), embedding_dim=4
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    pairs, same = pair_data()
    history = model.fit(pairs, same, batch_size=8, epochs=1, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], np.mean(1 - same), rtol=1e-6)
    evaluated = model.evaluate(pairs, same, batch_size=8, verbose=0, return_dict=True)
    assert abs(evaluated["loss"] - np.mean(1 - same)) > 1e-3


# ---------------------------------------------------------------------------------------
# Embeddings and scores
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", [True, False])
def test_call_embedding_model_and_shapes(normalize):
    model = ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), embedding_dim=5, normalize=normalize)
    images = random_images(4, IMAGE_SHAPE)
    embeddings = model(images).numpy()
    assert embeddings.shape == (4, 5) and model.output_dim == 5
    norms = np.linalg.norm(embeddings, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5) == normalize
    functional = model.embedding_model()
    assert functional.input_shape == (None, *IMAGE_SHAPE)
    np.testing.assert_allclose(functional(images.astype("float32")), embeddings, atol=1e-6)
    np.testing.assert_allclose(model(images.astype("float32")), embeddings, atol=1e-6)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_similarity_scores_higher_is_more_similar(distance):
    model = ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), distance=distance, normalize=False)
    images_a = random_images(6, IMAGE_SHAPE, seed=1)
    images_b = random_images(6, IMAGE_SHAPE, seed=2)
    scores = model.similarity(images_a, images_b).numpy()
    a, b = model(images_a).numpy().astype(np.float64), model(images_b).numpy().astype(np.float64)
    if distance == "cosine":
        expected = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        best = 1.0
    else:
        expected, best = -np.linalg.norm(a - b, axis=1), 0.0
    assert scores.shape == (6,)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.similarity(images_a, images_a), best, atol=1e-4)
    assert np.all(model.similarity(images_a, images_a).numpy() >= scores - 1e-6)


# ---------------------------------------------------------------------------------------
# Save and reload
# ---------------------------------------------------------------------------------------


def test_keras_file_round_trip(tmp_path, triplet_model):
    path = tmp_path / "triplet.keras"
    triplet_model.save(path)
    restored = keras.saving.load_model(path)
    images = random_images(5, IMAGE_SHAPE, seed=7)
    np.testing.assert_allclose(restored(images), triplet_model(images), atol=1e-6)
    assert isinstance(restored.loss_fn, losses.TripletLoss)
    assert (restored.margin, restored.loss_fn.mining) == (0.3, "hard")
    config, original = restored.get_config(), triplet_model.get_config()
    for key in ("loss", "distance", "embedding_dim", "normalize", "augmenter", "name"):
        assert config[key] == original[key]
    assert int(restored.optimizer.iterations) == int(triplet_model.optimizer.iterations)


def test_keras_file_round_trip_pair_model_with_augmenter(tmp_path):
    augmenter = ks.augment.simclr_augmenter(16, channels=1, strength=0.5, seed=3)
    model = ks.SiameseNetwork(
        tiny_encoder(IMAGE_SHAPE),
        loss=losses.ContrastiveMargin(0.7),
        distance="cosine",
        augmenter=augmenter,
        normalize=False,
    )
    model.save(tmp_path / "pairs.keras")
    restored = keras.saving.load_model(tmp_path / "pairs.keras")
    images = random_images(3, IMAGE_SHAPE)
    np.testing.assert_allclose(restored(images), model(images), atol=1e-6)
    config = restored.get_config()
    assert (config["distance"], config["normalize"], restored.margin) == ("cosine", False, 0.7)
    assert isinstance(restored.augmenter, ks.augment.SimCLRAugmenter)


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keywords, error, match",
    [
        ({"loss": "softmax"}, ValueError, "loss='softmax'"),
        ({"loss": keras.losses.MeanSquaredError()}, TypeError, "loss=<"),
        ({"distance": "manhattan"}, ValueError, "distance='manhattan'"),
        ({"embedding_dim": 0}, ValueError, "embedding_dim=0"),
        ({"augmenter": "flip"}, TypeError, "augmenter='flip'"),
    ],
)
def test_bad_constructor_arguments_raise(keywords, error, match):
    with pytest.raises(error, match=match):
        ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), **keywords)


def test_compile_refuses_loss_and_metrics():
    model = ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE))
    with pytest.raises(ValueError, match="loss='mse'"):
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="metrics="):
        model.compile(optimizer="sgd", metrics=["accuracy"])


def test_bad_data_raises_clear_errors():
    images = random_images(16, IMAGE_SHAPE)
    pairs, same = pair_data()
    triplet = ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), loss="triplet")
    contrastive = ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), loss="contrastive")
    for model in (triplet, contrastive):
        model.compile()
    with pytest.raises(ValueError, match=r"labels.shape=\(16, 4\)"):  # one-hot labels
        triplet.fit(images, np.eye(4, dtype="int64")[LABELS], batch_size=8, verbose=0)
    with pytest.raises(TypeError, match="integer class ids"):
        triplet.fit(images, LABELS.astype("float32"), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="Triplet and pair mining need"):  # all labels distinct
        triplet.fit(images, np.arange(16), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="trains on pairs"):  # not ((a, b), y)
        contrastive.fit(images, LABELS, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="trains on pairs"):
        contrastive.fit((pairs[0], pairs[1], pairs[0]), same, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="pair labels"):
        contrastive.fit(pairs, same + 1, batch_size=8, verbose=0)
    flat = tf.data.Dataset.from_tensor_slices((pairs[0], pairs[1], same)).batch(4)
    with pytest.raises(ValueError, match="does not take sample weights"):
        contrastive.fit(flat, verbose=0)
    unbatched = tf.data.Dataset.from_tensor_slices((images, LABELS))
    with pytest.raises(ValueError, match="batch them first"):
        triplet.fit(unbatched, verbose=0)
    with pytest.raises(ValueError, match="1 channels"):
        triplet.fit(np.zeros((16, 16, 16, 3), "uint8"), LABELS, batch_size=8, verbose=0)


def test_batch_without_triplet_stops_training_with_a_clear_error():
    model = ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), loss="triplet")
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = encoder_weights(model)
    # Shape checks pass; the labels of the first batch are all distinct.
    dataset = tf.data.Dataset.from_tensor_slices(
        (random_images(16, IMAGE_SHAPE), np.arange(16))
    ).batch(8)
    with pytest.raises(tf.errors.InvalidArgumentError, match="found no triplet in the batch"):
        model.fit(dataset, epochs=1, verbose=0)
    assert not changed(before, model)


def test_parse_batch_describes_what_it_received():
    spec = tf.TensorSpec((None, 16, 16, 1), tf.uint8)
    with pytest.raises(ValueError, match=r"Received: a batch \(<\(None, 16, 16, 1\) uint8>,\)"):
        siamese_inputs.parse_batch(spec, "pairs", IMAGE_SHAPE)


# ---------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------

# Run by a fresh interpreter that cannot import keras or keras_siamese:
# argv = version_dir, directory with images_a.npy, images_b.npy, embedding.npy, score.npy.
KERAS_FREE_SERVING = """
import os, sys
for name in ("keras", "tf_keras", "keras_siamese"):
    sys.modules[name] = None  # importing it now raises ImportError
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
data = {name: np.load(os.path.join(sys.argv[2], name + ".npy"))
        for name in ("images_a", "images_b", "embedding", "score")}
embedding = loaded.signatures["serving_default"](images=tf.constant(data["images_a"]))
np.testing.assert_allclose(embedding["embedding"].numpy(), data["embedding"], atol=1e-5)
print("served", embedding["embedding"].shape)
score = loaded.signatures["similarity"](
    images_a=tf.constant(data["images_a"]), images_b=tf.constant(data["images_b"]))["score"]
np.testing.assert_allclose(score.numpy(), data["score"], atol=1e-5)
print("similarity", score.shape)
assert not [name for name, module in sys.modules.items()
            if module is not None and name.split(".")[0] in ("keras", "keras_siamese")]
"""


@pytest.mark.slow
def test_export_serves_embedding_and_similarity_without_keras(tmp_path, triplet_model):
    model = triplet_model
    images_a = random_images(5, IMAGE_SHAPE, seed=8)
    images_b = random_images(5, IMAGE_SHAPE, seed=9)
    np.save(tmp_path / "images_a.npy", images_a)
    np.save(tmp_path / "images_b.npy", images_b)
    np.save(tmp_path / "embedding.npy", model(images_a).numpy())  # unit norm already
    np.save(tmp_path / "score.npy", model.similarity(images_a, images_b).numpy())
    version_dir = ks.export.export_for_serving(model, tmp_path / "export", warmup=False)
    result = subprocess.run(
        [sys.executable, "-c", KERAS_FREE_SERVING, version_dir, str(tmp_path)],
        check=False,
        cwd=tmp_path,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"served (5, {model.output_dim})" in result.stdout
    assert "similarity (5,)" in result.stdout
