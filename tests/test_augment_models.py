"""Any augmenter a user brings trains a model: keras-cv pipelines (with our per-image
RandomApply), keras-cv RandAugment, Keras core layers, and any channel count."""

import keras
import keras_cv
import numpy as np
import pytest
from conftest import random_images, tiny_encoder

import keras_siamese as ks


def fit_one_epoch(model, images):
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    before = [w.numpy().copy() for w in model.encoder.trainable_weights]
    history = model.fit(images, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = model.encoder.trainable_weights
    assert any(not np.allclose(b, a.numpy()) for b, a in zip(before, after, strict=True))


def test_a_keras_cv_pipeline_with_our_random_apply_trains_simclr():
    augmenter = ks.augment.Pipeline(
        [
            keras_cv.layers.RandomCropAndResize((16, 16), (0.3, 1.0), (3 / 4, 4 / 3)),
            keras_cv.layers.RandomFlip("horizontal"),
            ks.augment.RandomApply(
                keras_cv.layers.RandomBrightness(0.3, value_range=(0, 255)), probability=0.8
            ),
            keras.layers.Rescaling(1 / 255),
        ]
    )
    model = ks.SimCLR(tiny_encoder(), augmenter=augmenter, projection_dims=(16, 8))
    fit_one_epoch(model, random_images(16).astype("float32"))


def test_keras_cv_rand_augment_trains_simclr_on_rgb_images():
    augmenter = keras.Sequential(
        [
            keras_cv.layers.RandAugment(
                value_range=(0, 255), augmentations_per_image=2, magnitude=0.5
            ),
            keras.layers.Rescaling(1 / 255),
        ]
    )
    encoder = tiny_encoder((16, 16, 3))
    model = ks.SimCLR(encoder, augmenter=augmenter, projection_dims=(16, 8))
    fit_one_epoch(model, random_images(16, (16, 16, 3)).astype("float32"))


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: keras_cv.layers.RandomApply(keras_cv.layers.Grayscale(3), rate=0.5),
        lambda: keras_cv.layers.AugMix(value_range=(0, 255), severity=0.3, num_chains=2),
        lambda: keras_cv.layers.RandomAugmentationPipeline(
            [keras_cv.layers.RandomFlip(), keras_cv.layers.RandomSharpness(0.5, (0, 255))],
            augmentations_per_image=1,
        ),
    ],
    ids=["RandomApply", "AugMix", "RandomAugmentationPipeline"],
)
def test_keras_cv_layers_that_branch_in_python_train_inside_fit(make_layer):
    # They branch on tensors in Python: the base traces the augmenter with AutoGraph.
    augmenter = keras.Sequential([make_layer(), keras.layers.Rescaling(1 / 255)])
    model = ks.SimCLR(tiny_encoder((16, 16, 3)), augmenter=augmenter, projection_dims=(16, 8))
    fit_one_epoch(model, random_images(16, (16, 16, 3)).astype("float32"))


def test_a_keras_core_pipeline_trains_simsiam():
    augmenter = keras.Sequential(  # RandomContrast clips to its value_range, [0, 255]
        [
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomTranslation(0.1, 0.1),
            keras.layers.RandomContrast(0.3),
            keras.layers.Rescaling(1 / 255),
        ]
    )
    model = ks.SimSiam(
        tiny_encoder(),
        augmenter=augmenter,
        projection_dim=16,
        projection_layers=2,
        predictor_hidden_dim=4,
    )
    fit_one_epoch(model, random_images(16))


@pytest.mark.parametrize("channels", [4, 13])
def test_the_default_augmenter_trains_simclr_on_any_channel_count(channels):
    shape = (16, 16, channels)
    model = ks.SimCLR(tiny_encoder(shape), projection_dims=(16, 8))
    views = model.make_views(random_images(8, shape))
    assert all(tuple(view.shape) == (8, *shape) for view in views)
    fit_one_epoch(model, random_images(16, shape))


def test_multi_crop_views_go_only_to_methods_that_use_them():
    multi_crop = ks.augment.multi_crop_augmenter(16, local_size=8, local_views=2, channels=1)
    with pytest.raises(TypeError, match=r"SimCLR trains on two views.*DINO, SwAV"):
        ks.SimCLR(tiny_encoder(), augmenter=multi_crop)


def test_the_default_recipe_trains_under_xla():
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8))
    model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=True)
    history = model.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
