"""Tests of keras_siamese.MAE: the masking, the encoder on visible tokens only, the loss against
numpy, a fit step, reconstructions, save/reload, input errors, the recipe, the command line and
(in the shared replica process) 2 and 3 replicas against one device."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, tiny_encoder

import keras_siamese as ks
from keras_siamese import augment
from keras_siamese.models import patch_masking

IMAGE_SHAPE = (16, 16, 1)
PATCH = 4
PATCHES = 16  # a 4 x 4 grid
VISIBLE = 4  # round(0.25 * 16)


def tiny_vit(**kwargs):
    options = dict(dim=16, depth=1, heads=2, position_embedding="sincos", pooling="mean")
    options.update(kwargs)
    return ks.encoders.vit(IMAGE_SHAPE[0], PATCH, channels=IMAGE_SHAPE[-1], **options)


def make_model(encoder=None, **kwargs):
    """A compiled MAE on a tiny ViT; augmenter `ToUnitRange` (the images as they are)."""
    kwargs.setdefault("augmenter", augment.ToUnitRange())
    options = dict(decoder_dim=16, decoder_depth=1, decoder_heads=2, seed=7, **kwargs)
    model = ks.MAE(encoder or tiny_vit(), **options)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def numpy_patches(views, patch):
    """`(batch, patches, patch * patch * C)`, row-major over the grid, pixels row by row."""
    batch, height, width, _ = views.shape
    return np.stack(
        [
            views[:, r : r + patch, c : c + patch, :].reshape(batch, -1)
            for r in range(0, height, patch)
            for c in range(0, width, patch)
        ],
        axis=1,
    )


def numpy_loss(predictions, views, mask, normalize):
    targets = numpy_patches(np.asarray(views, np.float64), PATCH)
    if normalize:
        mean = targets.mean(-1, keepdims=True)
        variance = targets.var(-1, ddof=1, keepdims=True)  # MAE's torch `var` (unbiased)
        targets = (targets - mean) / np.sqrt(variance + 1e-6)
    per_patch = ((np.asarray(predictions, np.float64) - targets) ** 2).mean(-1)
    return (per_patch * mask).sum() / mask.sum()


# ---------------------------------------------------------------------------------------
# Masking
# ---------------------------------------------------------------------------------------


def test_masking_keeps_the_lowest_noise_patches_of_each_image():
    noise = np.random.default_rng(0).uniform(size=(6, 49)).astype("float32")
    keep, restore, mask = (t.numpy() for t in patch_masking.random_masking(noise, 12))
    assert keep.shape == (6, 12) and mask.shape == (6, 49)
    for row in range(6):
        np.testing.assert_array_equal(keep[row], np.argsort(noise[row])[:12])
        assert mask[row].sum() == 49 - 12
        assert np.all(mask[row, keep[row]] == 0)
        # restore puts "kept, then masked" back in grid order.
        shuffled = np.concatenate([keep[row], np.argsort(noise[row])[12:]])
        np.testing.assert_array_equal(shuffled[restore[row]], np.arange(49))


def test_visible_count_rounds_and_refuses_empty_or_full():
    assert patch_masking.visible_count(49, 0.75) == 12
    assert patch_masking.visible_count(16, 0.75) == 4
    with pytest.raises(ValueError, match=r"`mask_ratio` must leave .* Received: mask_ratio=0.99"):
        patch_masking.visible_count(16, 0.99)
    with pytest.raises(ValueError, match="keeps 16"):
        patch_masking.visible_count(16, 0.01)


def test_one_device_noise_is_the_global_draw_and_depends_on_seed_and_step():
    model = make_model()
    first = patch_masking.mask_noise(model.mask_seed(0), 5, PATCHES).numpy()
    expected = tf.random.stateless_uniform((5, PATCHES), model.mask_seed(0), alg="philox")
    np.testing.assert_array_equal(first, expected.numpy())
    again = patch_masking.mask_noise(model.mask_seed(0), 5, PATCHES).numpy()
    np.testing.assert_array_equal(first, again)
    later = patch_masking.mask_noise(model.mask_seed(1), 5, PATCHES).numpy()
    assert not np.allclose(first, later)


# ---------------------------------------------------------------------------------------
# The step: visible tokens only, the loss against numpy, gradients
# ---------------------------------------------------------------------------------------


def test_the_encoder_blocks_see_only_the_visible_tokens(monkeypatch):
    model = make_model()
    seen = []
    block = model.transformer.blocks[0]
    original = block.call

    def spy(tokens, *args, **kwargs):
        seen.append(tuple(tokens.shape))
        return original(tokens, *args, **kwargs)

    monkeypatch.setattr(block, "call", spy)
    images = random_images(4, IMAGE_SHAPE)
    model.fit(images, batch_size=4, epochs=1, verbose=0)
    assert seen and all(shape[1] == 1 + VISIBLE for shape in seen), seen
    seen.clear()
    model(images)  # the representation: the whole image
    assert seen == [(4, 1 + PATCHES, 16)]


def test_predictions_ignore_masked_pixels_and_follow_visible_ones():
    model = make_model()
    batch = model.prepare_batch(random_images(4, IMAGE_SHAPE), training=False)
    views, keep, restore, mask = (batch[k] for k in ("views", "keep_ids", "restore_ids", "mask"))
    predictions = model.predict_patches(views, keep, restore).numpy()
    patch_mask = np.repeat(np.repeat(mask.numpy().reshape(4, 4, 4), PATCH, 1), PATCH, 2)
    noise = np.random.default_rng(1).uniform(size=views.shape).astype("float32")
    masked_changed = np.where(patch_mask[..., None] == 1, noise, views.numpy())
    after = model.predict_patches(tf.constant(masked_changed), keep, restore).numpy()
    np.testing.assert_allclose(after, predictions, rtol=1e-5, atol=1e-6)
    visible_changed = np.where(patch_mask[..., None] == 0, noise, views.numpy())
    after = model.predict_patches(tf.constant(visible_changed), keep, restore).numpy()
    assert not np.allclose(after, predictions, atol=1e-4)


@pytest.mark.parametrize("normalize", [True, False])
def test_loss_equals_the_numpy_reference_on_masked_patches(normalize):
    model = make_model(normalize_targets=normalize)
    batch = model.prepare_batch(random_images(6, IMAGE_SHAPE), training=False)
    loss, metrics = model.loss_on_batch(batch, training=False)
    predictions = model.predict_patches(batch["views"], batch["keep_ids"], batch["restore_ids"])
    mask = batch["mask"].numpy()
    assert metrics == {} and mask.sum() == 6 * (PATCHES - VISIBLE)
    expected = numpy_loss(predictions, batch["views"], mask, normalize)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    # Only masked patches count: the loss on the visible ones is another number.
    assert not np.isclose(expected, numpy_loss(predictions, batch["views"], 1 - mask, normalize))


def test_gradients_reach_every_encoder_and_decoder_weight():
    model = make_model(tiny_vit(position_embedding="learned"))
    batch = model.prepare_batch(random_images(4, IMAGE_SHAPE), training=True)
    with tf.GradientTape() as tape:
        loss, _ = model.loss_on_batch(batch, training=True)
    variables = model.trainable_variables
    gradients = tape.gradient(loss, variables)
    missing = [v.path for v, g in zip(variables, gradients, strict=True) if g is None]
    assert not missing
    zero = [v.path for v, g in zip(variables, gradients, strict=True) if not np.any(g.numpy())]
    assert not zero
    encoder_ids = {id(v) for v in model.encoder.trainable_variables}
    decoder_ids = {id(v) for v in model.decoder.trainable_variables}
    assert encoder_ids and decoder_ids and encoder_ids | decoder_ids == {id(v) for v in variables}


def test_fit_step_changes_encoder_and_decoder_with_a_finite_loss():
    model = make_model(augmenter=None)  # the default crop and flip
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(random_images(8, IMAGE_SHAPE), batch_size=8, epochs=1, verbose=0)
    assert set(history.history) == {"loss"} and np.isfinite(history.history["loss"][0])
    changed = {
        id(w) for w, old in zip(model.trainable_weights, before, strict=True)
        if not np.allclose(w.numpy(), old)
    }  # fmt: skip
    assert {id(w) for w in model.encoder.trainable_weights if "kernel" in w.path} <= changed
    assert {id(w) for w in model.decoder.trainable_weights if "kernel" in w.path} <= changed
    results = model.evaluate(random_images(8, IMAGE_SHAPE), batch_size=8, verbose=0)
    assert np.isfinite(results)


def test_default_augmenter_is_crop_and_flip_to_unit_range():
    model = ks.MAE(tiny_vit(), decoder_dim=16, decoder_depth=1, decoder_heads=2, seed=1)
    layers = model.augmenter.layers
    assert [type(layer).__name__ for layer in layers] == [
        "RandomResizedCrop",
        "RandomFlip",
        "ToUnitRange",
    ]
    assert layers[0].crop_area == (0.2, 1.0) and layers[0].image_size == (16, 16)
    views = model.make_views(tf.constant(random_images(4, IMAGE_SHAPE)))
    assert views.dtype == tf.float32 and 0.0 <= float(tf.reduce_min(views))
    assert float(tf.reduce_max(views)) <= 1.0


# ---------------------------------------------------------------------------------------
# Reconstructions, representation, saving
# ---------------------------------------------------------------------------------------


def test_reconstruct_masks_by_seed_and_denormalises_per_patch():
    model = make_model()
    images = random_images(3, IMAGE_SHAPE)
    mask, reconstruction = model.reconstruct(images, seed=3)
    assert mask.shape == (3, 16, 16, 1) and reconstruction.shape == (3, 16, 16, 1)
    np.testing.assert_allclose(mask.numpy().mean(axis=(1, 2, 3)), 0.75)
    assert 0.0 <= float(tf.reduce_min(reconstruction)) <= float(tf.reduce_max(reconstruction))
    assert float(tf.reduce_max(reconstruction)) <= 255.0
    np.testing.assert_array_equal(model.reconstruct(images, seed=3)[0], mask)
    assert not np.array_equal(model.reconstruct(images, seed=4)[0], mask)
    with pytest.raises(ValueError, match=r"`statistics` must be one of"):
        model.reconstruct(images, statistics="hidden")
    # A decoder predicting 0 (a normalised patch's mean) paints patch means: with "original"
    # each patch's own; with "visible" a masked patch gets the mean of the visible ones.
    for weight in model.decoder.prediction.weights:
        weight.assign(tf.zeros_like(weight))
    means = numpy_patches(images.astype("float64"), PATCH).mean(-1)  # (3, 16)
    patch_mask = mask.numpy()[:, ::PATCH, ::PATCH, 0].reshape(3, PATCHES)

    def painted(values):
        return np.repeat(np.repeat(values.reshape(3, 4, 4), PATCH, 1), PATCH, 2)

    _, flat = model.reconstruct(images, seed=3, statistics="original")
    np.testing.assert_allclose(flat.numpy()[..., 0], painted(means), rtol=1e-4, atol=1e-3)
    visible_mean = (means * (1 - patch_mask)).sum(1, keepdims=True) / VISIBLE
    expected = np.where(patch_mask == 1, visible_mean, means)
    _, flat = model.reconstruct(images, seed=3)
    np.testing.assert_allclose(flat.numpy()[..., 0], painted(expected), rtol=1e-4, atol=1e-3)


def test_reconstructions_figure_is_written_whole_at_its_size(tmp_path):
    from PIL import Image

    from keras_siamese import plots

    model = make_model()
    images = random_images(3, IMAGE_SHAPE)
    mask, reconstruction = model.reconstruct(images)
    path = plots.mae_reconstructions(images, mask, reconstruction, tmp_path / "p" / "mae.png")
    assert Image.open(path).size == plots.reconstruction_figure_pixels(3)
    assert os.listdir(tmp_path / "p") == ["mae.png"]  # no temporary file left
    with pytest.raises(ValueError, match=r"`masks` and `reconstructions` must have shapes"):
        plots.mae_reconstructions(images, mask[:2], reconstruction, tmp_path / "bad.png")
    assert not os.path.exists(tmp_path / "bad.png")


def test_call_and_embedding_model_are_the_encoder_on_whole_images():
    model = make_model()
    images = random_images(4, IMAGE_SHAPE)
    expected = model.encoder(images.astype("float32") / 255.0)
    np.testing.assert_allclose(model(images), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        model.embedding_model()(images.astype("float32")), expected, rtol=1e-5, atol=1e-6
    )
    assert model.predict(images, verbose=0).shape == (4, 16)


def test_save_and_reload_keeps_config_weights_and_outputs(tmp_path):
    model = make_model(tiny_vit(any_size=True), image_size=(16, 16), mask_ratio=0.5)
    model.fit(random_images(8, IMAGE_SHAPE), batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "mae.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is ks.MAE
    assert json.loads(json.dumps(loaded.get_config())) == json.loads(json.dumps(model.get_config()))
    assert loaded.visible_patches == 8 and loaded.seed == 7 and loaded.image_size == (16, 16)
    images = random_images(4, IMAGE_SHAPE)
    np.testing.assert_allclose(loaded(images), model(images), rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(loaded.reconstruct(images), model.reconstruct(images), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)
    assert int(loaded.optimizer.iterations) == 1


def test_a_seed_of_none_is_drawn_and_kept():
    keras.utils.set_random_seed(3)
    first = ks.MAE(tiny_vit(), decoder_dim=16, decoder_depth=1, decoder_heads=2)
    keras.utils.set_random_seed(3)
    second = ks.MAE(tiny_vit(), decoder_dim=16, decoder_depth=1, decoder_heads=2)
    assert isinstance(first.seed, int) and first.seed == second.seed
    assert first.get_config()["seed"] == first.seed


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


def test_an_encoder_that_is_not_the_vit_is_a_type_error():
    with pytest.raises(TypeError, match=r"`encoder` must be a Vision Transformer.*Received"):
        ks.MAE(tiny_encoder(IMAGE_SHAPE))


@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5, -0.1])
def test_mask_ratio_outside_zero_one_is_refused(ratio):
    with pytest.raises(ValueError, match=r"`mask_ratio` must be .*Received: mask_ratio="):
        ks.MAE(tiny_vit(), mask_ratio=ratio)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match=r"`mask_ratio` must leave .* Received: mask_ratio=0.99"):
        ks.MAE(tiny_vit(), mask_ratio=0.99)
    with pytest.raises(TypeError, match=r"`normalize_targets` must be a bool. Received"):
        ks.MAE(tiny_vit(), normalize_targets=1)
    with pytest.raises(ValueError, match=r"multiples of the encoder's patch_size=4.*\(18, 18\)"):
        ks.MAE(tiny_vit(any_size=True), image_size=(18, 18))
    with pytest.raises(ValueError, match=r"`decoder_dim` must be a multiple of 4"):
        ks.MAE(tiny_vit(), decoder_dim=18, decoder_heads=2)
    with pytest.raises(ValueError, match=r"`decoder_dim` must be a multiple of `decoder_heads`"):
        ks.MAE(tiny_vit(), decoder_dim=20, decoder_heads=3)
    with pytest.raises(ValueError, match=r"`seed` must be an integer >= 0"):
        ks.MAE(tiny_vit(), seed=-1)


def test_bad_images_are_refused_before_training():
    model = make_model()
    with pytest.raises(ValueError, match=r"must have 1 channels .* Received: x.shape"):
        model.fit(random_images(8, (16, 16, 3)), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=r"must have images of size \(16, 16\)"):
        model.fit(random_images(8, (20, 20, 1)), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=r"must have 1 channels"):
        model.reconstruct(random_images(2, (16, 16, 3)))


def test_an_augmenter_outside_the_unit_range_is_named():
    model = make_model(augmenter=keras.layers.Identity(name="raw"))
    with pytest.raises(ValueError, match=r"Identity 'raw' produced values in"):
        model.fit(random_images(8, IMAGE_SHAPE).astype("float32"), batch_size=8, verbose=0)


# ---------------------------------------------------------------------------------------
# Recipe and command line
# ---------------------------------------------------------------------------------------


def test_recipe_builds_the_paper_scaled_model_and_optimizer():
    recipe = ks.recipes.get("mae")
    assert (recipe.encoder_type, recipe.vit_position_embedding, recipe.vit_pooling) == (
        "vit",
        "sincos",
        "grid",
    )
    tiny = recipe.replace(vit_dim=16, vit_depth=1, vit_heads=2, decoder_dim=16, decoder_heads=2)
    model = tiny.build((28, 28, 1), total_steps=10, seed=0)
    assert isinstance(model, ks.MAE) and model.seed == 0
    assert (model.num_patches, model.visible_patches, model.mask_ratio) == (49, 12, 0.75)
    assert model.decoder.depth == 2 and model.normalize_targets
    crop = model.augmenter.layers[0]
    assert crop.crop_area == (0.2, 1.0) and crop.image_size == (28, 28)
    config = model.optimizer.get_config()
    assert type(model.optimizer) is keras.optimizers.Adam
    assert config["beta_2"] == 0.95 and config["weight_decay"] == 0.05


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"crop_size": 16}, r"`crop_size` must be None for MAE"),
        ({"encoder_type": "resnet"}, r"`encoder_type` must be 'vit' for MAE"),
        ({"mask_ratio": 1.0}, r"`mask_ratio` must be below 1"),
        ({"decoder_dim": 66}, r"`decoder_dim` must be a multiple of 4"),
        ({"decoder_heads": 3}, r"`decoder_heads` must be a divisor of .*decoder_heads=3"),
        ({"normalize_targets": "yes"}, r"`normalize_targets` must be a bool"),
    ],
)
def test_recipe_refuses_bad_fields(changes, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ks.recipes.get("mae", **changes)


@pytest.mark.slow
def test_train_method_mae_runs_end_to_end(tmp_path):
    from keras_siamese import cli

    model_dir = tmp_path / "run"
    arguments = [
        "keras-siamese", "train", "--method=mae", f"--model_dir={model_dir}",
        "--train_examples=64", "--batch_size=32", "--epochs=1", "--image_size=16",
        "--decoder_dim=16", "--decoder_depth=1", "--mask_ratio=0.5", "--precision=float32",
        "--vit_dim=16", "--vit_depth=1", "--vit_heads=2",
        "--knn_memory_examples=64", "--knn_query_examples=32", "--knn_k=5",
        "--strategy=default", "--verbose=0",
    ]  # fmt: skip
    assert cli.main(arguments) == 0
    config = json.loads((model_dir / "config.json").read_text())
    recipe = config["resolved"]["recipe"]
    assert (recipe["mask_ratio"], recipe["decoder_dim"], recipe["decoder_depth"]) == (0.5, 16, 1)
    result = json.loads((model_dir / "train_result.json").read_text())
    assert result["steps"] == 2 and np.isfinite(result["final"]["loss"])
    model = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
    assert isinstance(model, ks.MAE) and model.visible_patches == 8
