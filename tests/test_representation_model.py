"""The shared base: contracts, preprocessing, build, global BatchNorm, views, and the fixes
found in review (SimCLR's head on 2N features, SimSiam's affine-free output BatchNorm)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, tiny_encoder

import keras_siamese as ks
from keras_siamese.models import RepresentationModel


def tiny_simclr(**kwargs):
    return ks.SimCLR(tiny_encoder(), projection_dims=(16, 8), **kwargs)


def tiny_simsiam(**kwargs):
    return ks.SimSiam(
        tiny_encoder(), projection_dim=16, projection_layers=2, predictor_hidden_dim=4, **kwargs
    )


def tiny_siamese(**kwargs):
    return ks.SiameseNetwork(tiny_encoder(), loss="triplet", embedding_dim=8, **kwargs)


ALL_MODELS = {"simclr": tiny_simclr, "simsiam": tiny_simsiam, "siamese": tiny_siamese}


@pytest.mark.parametrize("name", sorted(ALL_MODELS))
def test_every_model_shares_the_base_and_declares_its_contract(name):
    model = ALL_MODELS[name]()
    assert isinstance(model, RepresentationModel)
    expected = {
        "simclr": ("representation_std", "cosine"),
        "simsiam": ("output_std", "cosine"),
        "siamese": (None, "euclidean"),
    }[name]
    assert (model.collapse_metric, model.distance) == expected
    if model.collapse_metric is not None:
        assert model.collapse_metric in [metric.name for metric in model.metrics]


@pytest.mark.parametrize("name", sorted(ALL_MODELS))
def test_call_and_embedding_model_agree_to_the_last_bit(name):
    # Both go through the same Rescaling layer: the served embedding is exactly `call`'s.
    model = ALL_MODELS[name]()
    images = random_images(6).astype("float32")
    from_call = model(images).numpy()
    from_functional = model.embedding_model()(images).numpy()
    np.testing.assert_array_equal(from_call, from_functional)
    assert from_call.shape == (6, model.output_dim)


@pytest.mark.parametrize("name", sorted(ALL_MODELS))
def test_build_is_idempotent(name):
    # People call build() before summary(); it used to raise "You cannot add new elements
    # of state" on an already constructed model.
    model = ALL_MODELS[name]()
    count = len(model.weights)
    model.build((None, 16, 16, 1))
    model.build((None, 16, 16, 1))
    assert len(model.weights) == count


def test_similarity_of_a_self_supervised_model_is_the_cosine_of_its_features():
    model = tiny_simclr()
    images_a, images_b = random_images(4, seed=1), random_images(4, seed=2)
    scores = model.similarity(images_a, images_b).numpy()
    a, b = model(images_a).numpy(), model(images_b).numpy()
    expected = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"same shape.*images_b.shape=\(3, 16, 16, 1\)"):
        model.similarity(images_a, images_b[:3])


def test_simclr_runs_its_head_once_on_both_views():
    # The reference runs the projection head on the concatenated 2N features: its BatchNorm
    # normalises both views together and its moving statistics move once per step.
    model = tiny_simclr()
    rng = np.random.default_rng(0)
    features_a, features_b = rng.normal(size=(2, 8, model.feature_dim)).astype("float32")
    dense, norm = model.projector.hidden[0]
    hidden = dense(np.concatenate([features_a, features_b])).numpy()
    before = norm.moving_mean.numpy().copy()
    model.loss_on_features(features_a, features_b, training=True)
    expected = norm.momentum * before + (1 - norm.momentum) * hidden.mean(axis=0)
    np.testing.assert_allclose(norm.moving_mean.numpy(), expected, rtol=1e-5, atol=1e-6)

    # The projections are those of the joint pass (training-mode BatchNorm over 2N rows).
    z_joint = model.projector(np.concatenate([features_a, features_b]), training=True).numpy()
    loss, logits, _ = ks.losses.nt_xent(z_joint[:8], z_joint[8:], 0.5, return_logits=True)
    loss_model, _ = model.loss_on_features(features_a, features_b, training=True)
    np.testing.assert_allclose(float(loss_model), float(loss), rtol=1e-5)


def test_simsiam_projector_output_batch_norm_learns_no_scale_or_offset():
    # SimSiam's code: BatchNorm1d(affine=False) on the projector output.
    model = tiny_simsiam()
    norm = model.projector.output_norm
    assert norm.center is False and norm.scale is False
    assert {w.path.split("/")[-1] for w in norm.weights} == {"moving_mean", "moving_variance"}
    z = model.projector(
        np.random.default_rng(1).normal(size=(32, model.feature_dim)), training=True
    )
    np.testing.assert_allclose(z.numpy().mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.numpy().std(axis=0), 1.0, atol=1e-2)


def test_sync_batch_norm_auto_is_off_on_one_device_and_checked():
    model = tiny_simclr()
    assert model.sync_batch_norm == "auto" and model.synchronized_batch_norm is False
    assert not any(layer.synchronized for layer in ks.distribute.batch_norm_layers(model).values())
    assert model.get_config()["sync_batch_norm"] == "auto"
    forced = tiny_simsiam(sync_batch_norm=True)
    assert all(layer.synchronized for layer in ks.distribute.batch_norm_layers(forced).values())
    with pytest.raises(ValueError, match=r'`sync_batch_norm` must be "auto".*Received: sync_b'):
        tiny_simclr(sync_batch_norm="yes")


def test_a_pair_of_augmenters_makes_asymmetric_views_and_round_trips(tmp_path):
    flip = keras.Sequential(
        [keras.layers.Rescaling(1 / 255), keras.layers.RandomFlip("horizontal")]
    )
    invert = keras.Sequential([keras.layers.Rescaling(-1 / 255, offset=1.0)])
    model = tiny_simclr(augmenter=(flip, invert))
    images = random_images(4)
    view_a, view_b = model.make_views(tf.constant(images))
    np.testing.assert_allclose(view_b.numpy(), 1.0 - images / 255.0, atol=1e-6)
    for view, image in zip(view_a.numpy(), images / 255.0, strict=True):  # flipped or not
        assert np.allclose(view, image, atol=1e-6) or np.allclose(view, image[:, ::-1], atol=1e-6)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    path = str(tmp_path / "pair.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.augmenter, tuple) and len(restored.augmenter) == 2
    np.testing.assert_allclose(
        restored.make_views(tf.constant(images))[1].numpy(), view_b.numpy(), atol=1e-6
    )
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )


def test_views_of_another_size_are_resized_to_the_encoder_input():
    crop = keras.Sequential([keras.layers.Rescaling(1 / 255), keras.layers.CenterCrop(12, 12)])
    model = tiny_simclr(augmenter=crop)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_an_augmenter_that_forgets_to_rescale_gets_a_clear_error():
    unscaled = keras.Sequential([keras.layers.RandomFlip("horizontal")], name="no_rescaling")
    model = tiny_simclr(augmenter=unscaled)
    model.compile(optimizer="sgd")
    expected = r"augmenter Sequential 'no_rescaling' produced values in.*Rescaling\(1 / 255\)"
    with pytest.raises(ValueError, match=expected):
        model.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices(random_images(16)).batch(8)
    with pytest.raises(ValueError, match=r"produced values in.*expects \[0, 1\]"):
        model.fit(dataset, epochs=1, verbose=0)


def test_augmenter_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match=r"`augmenter` must be a keras.layers.Layer.*pair"):
        tiny_simclr(augmenter="simclr")
    with pytest.raises(TypeError, match=r"`augmenter`"):
        tiny_simclr(augmenter=(keras.layers.Identity(),))


def test_an_encoder_of_any_size_takes_image_size_and_sees_views_at_their_size(tmp_path):
    inputs = keras.Input((None, None, 1))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    encoder = keras.Model(inputs, features)
    crop = keras.Sequential([keras.layers.Rescaling(1 / 255), keras.layers.CenterCrop(12, 12)])
    model = ks.SimCLR(encoder, augmenter=crop, projection_dims=(8, 4), image_size=(16, 16))
    assert model.image_shape == (16, 16, 1) and not model.fixed_size_encoder
    views = model.make_views(tf.constant(random_images(4)))
    features_a, _ = model.encode_views(views, training=False)
    np.testing.assert_allclose(features_a.numpy(), encoder(views[0]).numpy(), rtol=1e-5)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    model.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "any_size.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.image_shape == (16, 16, 1)
    np.testing.assert_allclose(restored(random_images(2)), model(random_images(2)), rtol=1e-5)


def test_fit_on_a_dataset_does_not_warn_about_shuffling():
    import warnings

    model = tiny_simclr()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    dataset = tf.data.Dataset.from_tensor_slices(random_images(16)).batch(8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(dataset, epochs=1, verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)], [str(w.message) for w in caught]
