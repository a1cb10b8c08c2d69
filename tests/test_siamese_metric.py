"""Tests of SiameseNetwork with the metric-learning losses (pair losses, proxy losses and the
cross-batch memory), against float64 references of pytorch-metric-learning's formulas (the
module-level references of tests/test_pair_losses.py and tests/test_proxy_losses.py).

Every loss name but contrastive/triplet, and a `CrossBatchMemory` ("xbm"), trains one step on
a 4 x 4 batch of 16x16 images; the model's loss equals the reference on its own embeddings
(its proxies, its memory); `.keras` reloads restore the proxies and the memory and train on;
the export leaves them out; the XBM references are the `memory_size` most recent embeddings,
the current batch included; `views_per_image=2` embeds two augmented copies of every image.
"""

import functools
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import FlipSecondHalf, random_images, tiny_encoder
from test_pair_losses import (
    reference_batch_contrastive,
    reference_circle,
    reference_multi_similarity,
    reference_pairs,
    reference_supervised_contrastive,
)
from test_proxy_losses import LOSSES as PROXY_LOSSES
from test_siamese import KERAS_FREE_SERVING, changed, encoder_weights

import keras_siamese as ks
from keras_siamese import losses
from keras_siamese.loss_names import LOSS_NAMES, MARGIN_LOSS_NAMES, PROXY_LOSS_NAMES
from keras_siamese.losses.pair_batch import EMPTY_LABEL

IMAGE_SHAPE = (16, 16, 1)
EMBEDDING_DIM = 6
NUM_CLASSES = 4
LABELS = np.repeat(np.arange(NUM_CLASSES), 4)  # 16 images, P x K = 4 x 4
IMAGES = random_images(16, IMAGE_SHAPE, seed=1)
XBM_SIZE = 24  # 1.5 batches: the second batch wraps around
CASES = (*(name for name in LOSS_NAMES if name not in MARGIN_LOSS_NAMES), "xbm")
PAIR_REFERENCES = {
    "multi_similarity": reference_multi_similarity,
    "circle": reference_circle,
    "supervised_contrastive": reference_supervised_contrastive,
    "batch_contrastive": reference_batch_contrastive,
    "xbm": reference_multi_similarity,
}


def make_loss(case, memory_size=XBM_SIZE):
    if case == "xbm":
        return losses.CrossBatchMemory(losses.MultiSimilarityLoss(), memory_size)
    return case


def build(case, **keywords):
    num_classes = NUM_CLASSES if case in PROXY_LOSS_NAMES else None
    return ks.SiameseNetwork(
        tiny_encoder(IMAGE_SHAPE),
        loss=make_loss(case),
        num_classes=num_classes,
        embedding_dim=EMBEDDING_DIM,
        **keywords,
    )


@functools.cache
def trained(case):
    """The model of `case` after one SGD step on the 4 x 4 batch (built once per module)."""
    keras.utils.set_random_seed(0)
    model = build(case)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.weights_before = encoder_weights(model)
    proxies = model.proxies
    model.proxies_before = None if proxies is None else proxies.proxies.numpy().copy()
    history = model.fit(IMAGES, LABELS, batch_size=16, shuffle=False, epochs=1, verbose=0)
    model.history_values = history.history
    return model


def reference_loss(case, embeddings, labels, proxies=None, memory=None):
    """The float64 reference of the loss of `case` (PML's formulas)."""
    if case in PROXY_LOSS_NAMES:
        return PROXY_LOSSES[case][1](embeddings, labels, proxies)
    pairs = reference_pairs(embeddings, labels, memory)
    return PAIR_REFERENCES[case](pairs, pairs.positives, pairs.negatives)


def masked_memory(model, incoming):
    """The memory's rows as `contents(incoming)` must give them: slots to be overwritten
    by the next `incoming` rows labelled EMPTY_LABEL (computed here in numpy)."""
    memory = model.memory
    labels = memory.labels.numpy().copy()
    pointer = int(memory.pointer.numpy())
    labels[(pointer + np.arange(incoming)) % memory.memory_size] = EMPTY_LABEL
    return memory.embeddings.numpy(), labels


# ---------------------------------------------------------------------------------------
# Training: one step of every loss, and the loss against its reference
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_one_fit_step_trains_the_encoder_and_the_proxies(case):
    model = trained(case)
    assert set(model.history_values) == {"loss"}
    assert np.isfinite(model.history_values["loss"][0])
    assert changed(model.weights_before, model)
    if case in PROXY_LOSS_NAMES:
        rows = NUM_CLASSES * model.loss_fn.proxies_per_class
        assert model.proxies.proxies.shape == (rows, EMBEDDING_DIM)
        assert not np.allclose(model.proxies.proxies.numpy(), model.proxies_before)
    else:
        assert model.proxies is None
    if case == "xbm":  # the global batch was written at slots 0..15, in order
        expected = np.concatenate([LABELS, np.full(XBM_SIZE - 16, EMPTY_LABEL)])
        np.testing.assert_array_equal(model.memory.labels.numpy(), expected)
        assert int(model.memory.pointer.numpy()) == 16
        assert not np.any(model.memory.embeddings.numpy()[16:])
    else:
        assert model.memory is None


@pytest.mark.parametrize("case", CASES)
def test_evaluate_equals_the_loss_on_the_models_own_embeddings(case):
    model = trained(case)
    images, labels = random_images(16, IMAGE_SHAPE, seed=2), np.tile(np.arange(4), 4)
    result = model.evaluate(images, labels, batch_size=16, verbose=0, return_dict=True)
    embeddings = model(images).numpy()
    proxies = memory = None
    if case in PROXY_LOSS_NAMES:
        proxies = model.proxies.proxies.numpy()
        library = PROXY_LOSSES[case][0](embeddings, labels, proxies)  # e.g. ks.losses.arcface
        np.testing.assert_allclose(
            model.loss_fn.compute(embeddings, labels, proxies=proxies), library, rtol=1e-6
        )
    else:
        if case == "xbm":  # slots 16..23 and 0..7 would be overwritten: 8..15 stay
            memory = masked_memory(model, 16)
            assert list(memory[1] != EMPTY_LABEL).count(True) == 8
        library = model.loss_fn.compute(embeddings, labels, memory=memory)
    np.testing.assert_allclose(result["loss"], library, rtol=1e-5, atol=1e-6)
    expected = reference_loss(case, embeddings, labels, proxies, memory)
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------
# Save and reload, export
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["circle", "sub_center_arcface", "proxy_anchor", "xbm"])
def test_keras_file_restores_proxies_memory_and_trains_on(tmp_path, case):
    model = trained(case)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")  # no custom_objects
    images = random_images(5, IMAGE_SHAPE, seed=7)
    np.testing.assert_allclose(restored(images), model(images), atol=1e-6)
    assert type(restored.loss_fn) is type(model.loss_fn)
    assert restored.get_config()["loss"] == model.get_config()["loss"]
    assert int(restored.optimizer.iterations) == 1
    if model.proxies is not None:
        np.testing.assert_array_equal(restored.proxies.proxies.numpy(), model.proxies.proxies)
    if model.memory is not None:
        for name in ("embeddings", "labels", "pointer"):
            saved, loaded = getattr(model.memory, name), getattr(restored.memory, name)
            np.testing.assert_array_equal(loaded.numpy(), saved.numpy())
    proxies_before = None if model.proxies is None else restored.proxies.proxies.numpy().copy()
    weights_before = encoder_weights(restored)
    history = restored.fit(IMAGES, LABELS, batch_size=16, shuffle=False, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(restored.optimizer.iterations) == 2
    assert changed(weights_before, restored)
    if proxies_before is not None:
        assert not np.allclose(restored.proxies.proxies.numpy(), proxies_before)
    if model.memory is not None:
        assert int(restored.memory.pointer.numpy()) == (16 + 16) % XBM_SIZE


@pytest.mark.parametrize("case", ["sub_center_arcface", "proxy_nca", "xbm"])
def test_embedding_model_leaves_out_proxies_and_memory(case):
    model = trained(case)
    embedding_model = model.embedding_model()
    triplet = ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), loss="triplet", embedding_dim=6)
    reference_weights = triplet.embedding_model().weights
    assert len(embedding_model.weights) == len(reference_weights)
    shapes = sorted(tuple(weight.shape) for weight in embedding_model.weights)
    assert shapes == sorted(tuple(weight.shape) for weight in reference_weights)
    state = (model.proxies or model.memory).weights
    assert state and not {id(v) for v in state} & {id(v) for v in embedding_model.weights}
    images = random_images(4, IMAGE_SHAPE, seed=3)
    np.testing.assert_allclose(embedding_model(images.astype("float32")), model(images), atol=1e-6)


def test_export_of_a_proxy_model_serves_its_embedding_model_without_keras(tmp_path):
    model = trained("arcface")
    images_a = random_images(5, IMAGE_SHAPE, seed=8)
    images_b = random_images(5, IMAGE_SHAPE, seed=9)
    embedding_model = model.embedding_model()
    np.save(tmp_path / "images_a.npy", images_a)
    np.save(tmp_path / "images_b.npy", images_b)
    np.save(tmp_path / "embedding.npy", embedding_model(images_a.astype("float32")).numpy())
    np.save(tmp_path / "score.npy", model.similarity(images_a, images_b).numpy())
    version_dir = ks.export.export_for_serving(model, tmp_path / "export", warmup=False)
    saved = [
        tuple(shape)
        for name, shape in tf.train.list_variables(
            os.path.join(version_dir, "variables", "variables")
        )
        if name.endswith("VARIABLE_VALUE")
    ]
    assert sorted(saved) == sorted(tuple(weight.shape) for weight in embedding_model.weights)
    assert (NUM_CLASSES, EMBEDDING_DIM) not in saved  # the class proxies stayed behind
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
    assert f"served (5, {EMBEDDING_DIM})" in result.stdout


# ---------------------------------------------------------------------------------------
# The cross-batch memory and two views per image, step by step
# ---------------------------------------------------------------------------------------

XBM_LABELS = ([0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 2, 3, 0, 1, 2, 3], [3, 3, 2, 2, 1, 1, 0, 0])


@pytest.mark.parametrize("memory_size", [8, 12, 16, 24])
def test_memory_references_are_the_most_recent_embeddings(memory_size):
    """PML's CrossBatchMemory: each step's anchors meet the `memory_size` most recent
    embeddings, this batch of 8 included; older rows (overwritten slots) are left out."""
    model = ks.SiameseNetwork(
        tiny_encoder(IMAGE_SHAPE), loss=make_loss("xbm", memory_size), embedding_dim=EMBEDDING_DIM
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # embeddings stay fixed
    batches = [
        (random_images(8, IMAGE_SHAPE, seed=10 + step), np.array(labels))
        for step, labels in enumerate(XBM_LABELS)
    ]
    step_losses = [model.train_on_batch(x, y, return_dict=True)["loss"] for x, y in batches]
    embeddings = [
        model.embed(model.preprocess(x), training=True).numpy() for x, _ in batches
    ]  # what the steps saw: same weights, BatchNorm on the batch
    past_embeddings, past_labels = np.zeros((0, EMBEDDING_DIM), "float32"), np.zeros(0, int)
    for step, (_, labels) in enumerate(batches):
        kept = memory_size - 8  # the current batch takes 8 of the references
        memory = None
        if kept and len(past_labels):
            memory = (past_embeddings[-kept:], past_labels[-kept:])
        expected = reference_loss("xbm", embeddings[step], labels, memory=memory)
        np.testing.assert_allclose(step_losses[step], expected, rtol=1e-4, atol=1e-5)
        library = losses.multi_similarity(embeddings[step], labels, memory=memory)
        np.testing.assert_allclose(step_losses[step], library, rtol=1e-5, atol=1e-6)
        if len(past_labels) > kept:  # the left-out rows change the loss: the check can fail
            everything = (past_embeddings, past_labels)
            wrong = reference_loss("xbm", embeddings[step], labels, memory=everything)
            assert abs(wrong - expected) > 1e-3
        past_embeddings = np.concatenate([past_embeddings, embeddings[step]])
        past_labels = np.concatenate([past_labels, labels])
    ring_labels = np.full(memory_size, EMPTY_LABEL)  # each slot holds its latest row
    ring_embeddings = np.zeros((memory_size, EMBEDDING_DIM), "float32")
    for row in range(24):
        ring_labels[row % memory_size] = past_labels[row]
        ring_embeddings[row % memory_size] = past_embeddings[row]
    np.testing.assert_array_equal(model.memory.labels.numpy(), ring_labels)
    np.testing.assert_allclose(model.memory.embeddings.numpy(), ring_embeddings, atol=1e-5)
    assert int(model.memory.pointer.numpy()) == 24 % memory_size


def test_two_views_per_image_embed_two_augmented_copies():
    model = ks.SiameseNetwork(
        tiny_encoder(IMAGE_SHAPE),
        loss="supervised_contrastive",
        augmenter=FlipSecondHalf(),
        views_per_image=2,
        embedding_dim=EMBEDDING_DIM,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    images, labels = random_images(8, IMAGE_SHAPE, seed=3), np.repeat(np.arange(4), 2)
    loss = model.train_on_batch(images, labels, return_dict=True)["loss"]
    views = np.concatenate([images, images[:, :, ::-1]]).astype("float32") / 255.0
    embeddings = model.embed(tf.constant(views), training=True).numpy()
    both_labels = np.concatenate([labels, labels])
    expected = reference_loss("supervised_contrastive", embeddings, both_labels)
    np.testing.assert_allclose(loss, expected, rtol=1e-4, atol=1e-5)
    library = losses.supervised_contrastive(embeddings, both_labels)
    np.testing.assert_allclose(loss, library, rtol=1e-5, atol=1e-6)
    unflipped = model.embed(tf.constant(np.concatenate([views[:8]] * 2)), training=True)
    same_views = reference_loss("supervised_contrastive", unflipped.numpy(), both_labels)
    assert abs(same_views - loss) > 1e-3  # the second copy is augmented on its own
    # evaluate sees each image once, without augmentation
    result = model.evaluate(images, labels, batch_size=8, verbose=0, return_dict=True)
    once = reference_loss("supervised_contrastive", model(images).numpy(), labels)
    np.testing.assert_allclose(result["loss"], once, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keywords, error, match",
    [
        ({"loss": "arcface"}, ValueError, "loss='arcface', num_classes=None"),
        ({"loss": "cosface", "num_classes": 1}, ValueError, "num_classes=1"),
        (
            {"loss": losses.ArcFaceLoss(num_classes=4), "num_classes": 5},
            ValueError,
            r"num_classes` \(5\) disagrees with the loss' num_classes \(4\)",
        ),
        ({"loss": "arc_face"}, ValueError, "loss='arc_face'"),
        ({"loss": "circle", "views_per_image": 2}, ValueError, "views_per_image=2"),
        ({"loss": "circle", "views_per_image": 3}, ValueError, "views_per_image=3"),
        (
            {"loss": "triplet", "views_per_image": 2, "augmenter": FlipSecondHalf()},
            ValueError,
            "views_per_image=2",
        ),
    ],
)
def test_bad_constructor_arguments_raise(keywords, error, match):
    with pytest.raises(error, match=match):
        ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), **keywords)


def test_cross_batch_memory_refuses_a_proxy_loss():
    with pytest.raises(TypeError, match="must be a pair loss"):
        losses.CrossBatchMemory(losses.ArcFaceLoss(num_classes=4), 64)


def test_bad_batches_raise_before_training():
    arcface, circle = build("arcface"), build("circle")
    for model in (arcface, circle):
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = encoder_weights(arcface)
    with pytest.raises(ValueError, match=r"num_classes=4\).*values from 1 to 4"):
        arcface.fit(IMAGES, LABELS + 1, batch_size=16, verbose=0)
    assert not changed(before, arcface)
    with pytest.raises(ValueError, match="with a pair loss needs the class labels"):
        circle.fit(IMAGES, batch_size=16, verbose=0)
    unlabelled = tf.data.Dataset.from_tensor_slices(IMAGES).batch(8)
    with pytest.raises(ValueError, match="with a proxy loss needs the class labels"):
        arcface.fit(unlabelled, verbose=0)
    triplets = (IMAGES[:8], IMAGES[8:], IMAGES[::2])
    with pytest.raises(ValueError, match=r"with a pair loss trains on \(images, labels\)"):
        circle.fit(triplets, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=r"with a proxy loss trains on \(images, labels\)"):
        arcface.fit(tf.data.Dataset.from_tensor_slices(triplets).batch(4), verbose=0)


def test_memory_smaller_than_the_global_batch_stops_training():
    model = ks.SiameseNetwork(
        tiny_encoder(IMAGE_SHAPE), loss=make_loss("xbm", 8), embedding_dim=EMBEDDING_DIM
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = encoder_weights(model)
    with pytest.raises(ValueError, match="memory_size=8 for a global batch of 16"):
        model.fit(IMAGES, LABELS, batch_size=16, verbose=0)
    # A batch size known only when the step runs: the dataset's batches are (None, ...).
    dataset = tf.data.Dataset.from_tensor_slices((IMAGES, LABELS)).batch(16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="memory_size=8"):
        model.fit(dataset, verbose=0)
    assert not changed(before, model)
    np.testing.assert_array_equal(model.memory.labels.numpy(), [EMPTY_LABEL] * 8)
    two_views = ks.SiameseNetwork(
        tiny_encoder(IMAGE_SHAPE),
        loss=make_loss("xbm", 24),
        augmenter=FlipSecondHalf(),
        views_per_image=2,
    )
    two_views.compile(optimizer=keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match="memory_size=24 for a global batch of 32"):
        two_views.fit(IMAGES, LABELS, batch_size=16, verbose=0)


# ---------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------


def test_config_round_trip_keeps_the_memory_and_its_loss():
    loss = losses.CrossBatchMemory(losses.CircleLoss(margin=0.3, gamma=32.0), memory_size=48)
    model = ks.SiameseNetwork(
        tiny_encoder(IMAGE_SHAPE), loss=loss, distance="cosine", embedding_dim=EMBEDDING_DIM
    )
    restored = ks.SiameseNetwork.from_config(model.get_config())
    assert isinstance(restored.loss_fn, losses.CrossBatchMemory)
    assert isinstance(restored.loss_fn.loss, losses.CircleLoss)
    assert (restored.loss_fn.loss.margin, restored.loss_fn.loss.gamma) == (0.3, 32.0)
    assert restored.loss_fn.memory_size == restored.memory.memory_size == 48
    assert restored.memory.embeddings.shape == (48, EMBEDDING_DIM)
    assert (restored.mode, restored.distance, restored.proxies) == ("metric", "cosine", None)
    assert restored.get_config() == model.get_config()


def test_config_round_trip_of_a_proxy_model_with_two_views():
    loss = losses.SubCenterArcFaceLoss(num_classes=5, sub_centers=2, margin=20.0)
    model = ks.SiameseNetwork(
        tiny_encoder(IMAGE_SHAPE),
        loss=loss,
        augmenter=FlipSecondHalf(),
        views_per_image=2,
        embedding_dim=EMBEDDING_DIM,
    )
    restored = ks.SiameseNetwork.from_config(model.get_config())
    assert (restored.num_classes, restored.views_per_image, restored.mode) == (5, 2, "proxies")
    assert (restored.loss_fn.sub_centers, restored.loss_fn.margin) == (2, 20.0)
    assert restored.proxies.proxies.shape == (10, EMBEDDING_DIM)
    assert isinstance(restored.augmenter, FlipSecondHalf)
