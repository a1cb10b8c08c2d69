"""Tests of the backbone encoders: keras.applications and KerasHub behind the [0, 1] contract,
PixelPreprocessing, and ResNets with 4 and 13 channels."""

import importlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_siamese import encoders
from keras_siamese.encoders.applications import preprocessing_of


def unit_images(count=2, shape=(32, 32, 3), seed=0):
    """Float images in [0, 1], as the models hand them to encoders."""
    return np.random.default_rng(seed).uniform(size=(count, *shape)).astype("float32")


def reload(model, tmp_path, name="encoder.keras"):
    path = tmp_path / name
    model.save(path)
    return keras.saving.load_model(path)


def family_preprocess(name):
    module = importlib.import_module(getattr(keras.applications, name).__module__)
    return module.preprocess_input


# ----------------------------------------------------------------------------- PixelPreprocessing


def test_pixel_preprocessing_by_hand_and_config_round_trip():
    layer = encoders.PixelPreprocessing(
        scale=[255.0, 255.0, 255.0], offset=[-1.0, -2.0, -3.0], reverse_channels=True
    )
    images = np.array([[[[0.0, 0.5, 1.0]]]], "float32")
    # BGR of (0, 127.5, 255) minus (1, 2, 3).
    np.testing.assert_allclose(layer(images).numpy(), [[[[254.0, 125.5, -3.0]]]])
    clone = encoders.PixelPreprocessing.from_config(layer.get_config())
    np.testing.assert_array_equal(clone(images).numpy(), layer(images).numpy())
    assert keras.saving.serialize_keras_object(layer)["registered_name"] == (
        "keras_siamese>PixelPreprocessing"
    )


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        ({"scale": "2"}, TypeError, r"`scale`.*Received: scale='2'"),
        ({"offset": float("nan")}, ValueError, r"`offset`.*Received: offset=nan"),
        ({"scale": []}, TypeError, r"`scale`.*Received: scale=\[\]"),
        ({"reverse_channels": 1}, TypeError, r"Received: reverse_channels=1"),
    ],
)
def test_pixel_preprocessing_bad_arguments(arguments, error, match):
    with pytest.raises(error, match=match):
        encoders.PixelPreprocessing(**arguments)


def test_pixel_preprocessing_channel_mismatch_raises_when_built():
    layer = encoders.PixelPreprocessing(scale=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"2 per-channel values.*3 channels.*Received: scale"):
        layer(np.zeros((1, 2, 2, 3), "float32"))


# ----------------------------------------------------------------------------- keras.applications


@pytest.mark.parametrize(
    "name, reverse, scale, offset",
    [
        ("ResNet50", True, [255.0] * 3, [-103.939, -116.779, -123.68]),  # caffe
        ("ResNet50V2", False, [2.0] * 3, [-1.0] * 3),  # tf
        ("DenseNet121", False, [1 / 0.229, 1 / 0.224, 1 / 0.225],
         [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]),  # torch
        ("EfficientNetV2B0", False, [255.0] * 3, [0.0] * 3),  # normalises inside
    ],
)
def test_preprocessing_is_read_off_each_family(name, reverse, scale, offset):
    found_scale, found_offset, found_reverse = preprocessing_of(family_preprocess(name), 3, name)
    assert found_reverse == reverse
    # In [0, 1] units, as the encoder applies them.
    np.testing.assert_allclose(255.0 * found_scale, scale, rtol=1e-5)
    np.testing.assert_allclose(found_offset, offset, rtol=1e-5, atol=1e-6)


def test_resnet50v2_matches_the_application_on_its_own_preprocessing(tmp_path):
    encoder = encoders.from_keras_applications("ResNet50V2", input_shape=(32, 32, 3))
    assert encoder.output_shape == (None, 2048)
    assert encoder.name == "resnet50v2_encoder"
    images = unit_images()
    backbone = encoder.layers[-1]
    # The reference: the application's own preprocess_input on the [0, 255] pixels.
    reference = backbone(family_preprocess("ResNet50V2")(images * 255.0), training=False)
    features = encoder(images, training=False).numpy()
    np.testing.assert_allclose(features, reference.numpy(), rtol=1e-4, atol=1e-5)
    reloaded = reload(encoder, tmp_path)
    np.testing.assert_allclose(reloaded(images, training=False).numpy(), features, atol=1e-6)
    assert isinstance(reloaded.get_layer("preprocessing"), encoders.PixelPreprocessing)


@pytest.mark.parametrize("name", ["ResNet50", "MobileNetV3Small", "DenseNet121"])
def test_other_families_match_their_preprocessing(name):
    encoder = encoders.from_keras_applications(name, input_shape=(32, 32, 3), pooling="max")
    images = unit_images(seed=1)
    reference = encoder.layers[-1](family_preprocess(name)(images * 255.0), training=False)
    np.testing.assert_allclose(
        encoder(images, training=False).numpy(), reference.numpy(), rtol=1e-4, atol=1e-4
    )


def test_four_channel_application_where_the_family_allows_it():
    encoder = encoders.from_keras_applications("MobileNetV2", input_shape=(32, 32, 4))
    assert encoder(unit_images(shape=(32, 32, 4)), training=False).shape == (2, 1280)
    with pytest.raises(ValueError, match=r"red, green and blue.*Received: input_shape\[-1\]=4"):
        encoders.from_keras_applications("ResNet50", input_shape=(32, 32, 4))


def test_local_weights_file_is_loaded(tmp_path):
    source = encoders.from_keras_applications("MobileNetV3Small", input_shape=(32, 32, 3))
    path = tmp_path / "notop.weights.h5"
    source.layers[-1].save_weights(path)
    encoder = encoders.from_keras_applications(
        "MobileNetV3Small", input_shape=(32, 32, 3), weights=path
    )
    images = unit_images()
    np.testing.assert_allclose(
        encoder(images, training=False).numpy(), source(images, training=False).numpy(),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        ({"name": "ResNet51V2"}, ValueError, r"Close matches: \['ResNet50V2'.*Received: name="),
        ({"weights": "imagenet"}, ValueError, r"never downloads.*Received: weights='imagenet'"),
        ({"weights": "/no/such.h5"}, FileNotFoundError, r"Received: weights='/no/such.h5'"),
        ({"pooling": None}, ValueError, r"Received: pooling=None"),
        ({"input_shape": (32, 32)}, ValueError, r"Received: input_shape=\(32, 32\)"),
        ({"input_shape": (16, 16, 3)}, ValueError, r"cannot be built.*at least 32x32"),
    ],
)
def test_from_keras_applications_bad_arguments(arguments, error, match):
    arguments = {"name": "ResNet50V2", "input_shape": (32, 32, 3), **arguments}
    with pytest.raises(error, match=match):
        encoders.from_keras_applications(**arguments)


# ----------------------------------------------------------------------------- KerasHub



def tiny_hub_backbone(keras_hub):
    """A two-stage ResNet backbone built from its config (82k parameters, nothing downloaded)."""
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 8],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(16, 16, 3),
        name="tiny_resnet",
    )


def test_from_keras_hub_applies_the_converter_and_round_trips(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    backbone = tiny_hub_backbone(keras_hub)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(16, 16), scale=[1 / (255 * s) for s in std],
        offset=[-m / s for m, s in zip(mean, std, strict=True)],
    )
    encoder = encoders.from_keras_hub(backbone, converter)
    assert encoder.output_shape == (None, 8) and encoder.name == "tiny_resnet_encoder"
    images = unit_images(shape=(16, 16, 3))
    # The reference: KerasHub's own converter on the [0, 255] pixels, then the backbone.
    maps = backbone(converter(images * 255.0), training=False).numpy()
    features = encoder(images, training=False).numpy()
    np.testing.assert_allclose(features, maps.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
    path = tmp_path / "hub.keras"
    encoder.save(path)
    np.testing.assert_allclose(
        keras.saving.load_model(path)(images, training=False).numpy(), features, atol=1e-6
    )
    # A process that imports keras_siamese (registering PixelPreprocessing) but not
    # keras_hub reloads it: Keras imports the backbone's module from the file's config.
    script = (
        "import keras, numpy as np; from keras_siamese import encoders; "
        f"m = keras.saving.load_model({str(path)!r}); "
        "print(m(np.ones((1, 16, 16, 3), 'float32')).shape)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "(1, 8)" in result.stdout, result.stderr[-2000:]


def test_from_keras_hub_reads_a_local_preset_directory(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    backbone = tiny_hub_backbone(keras_hub)
    converter = keras_hub.layers.ResNetImageConverter(scale=1 / 127.5, offset=-1.0)
    backbone.save_to_preset(str(tmp_path))
    converter.save_to_preset(str(tmp_path))
    encoder = encoders.from_keras_hub(str(tmp_path), pooling="max")
    images = unit_images(shape=(16, 16, 3))
    maps = backbone(images * 2.0 - 1.0, training=False).numpy()
    np.testing.assert_allclose(
        encoder(images, training=False).numpy(), maps.max(axis=(1, 2)), rtol=1e-4, atol=1e-5
    )


def test_from_keras_hub_refuses_to_guess():
    keras_hub = pytest.importorskip("keras_hub")
    backbone = tiny_hub_backbone(keras_hub)
    with pytest.raises(ValueError, match=r"does not carry its preprocessing.*image_converter=None"):
        encoders.from_keras_hub(backbone)
    with pytest.raises(ValueError, match=r"local KerasHub preset directory.*resnet_18_imagenet"):
        encoders.from_keras_hub("resnet_18_imagenet")
    with pytest.raises(TypeError, match=r"keras_hub.models.Backbone.*type Sequential"):
        encoders.from_keras_hub(keras.Sequential(), keras_hub.layers.ImageConverter())


# ----------------------------------------------------------------------------- channels


@pytest.mark.parametrize("channels", [4, 13])
def test_resnet_takes_any_channel_count_and_round_trips(channels, tmp_path):
    encoder = encoders.resnet(depth=10, input_shape=(16, 16, channels), width=4)
    assert tuple(encoder.get_layer("stem_conv").kernel.shape) == (3, 3, channels, 4)
    images = unit_images(shape=(16, 16, channels))
    features = encoder(images, training=False).numpy()
    assert features.shape == (2, 32) and np.all(np.isfinite(features))
    # Every channel feeds the features.
    changed = images.copy()
    changed[..., -1] = 0.0
    assert not np.allclose(encoder(changed, training=False).numpy(), features)
    np.testing.assert_allclose(
        reload(encoder, tmp_path)(images, training=False).numpy(), features, atol=1e-6
    )


# ----------------------------------------------------------------------------- in a model


def hub_encoder():
    keras_hub = pytest.importorskip("keras_hub")
    converter = keras_hub.layers.ImageConverter(scale=1 / 127.5, offset=-1.0)
    return encoders.from_keras_hub(tiny_hub_backbone(keras_hub), converter)


def applications_encoder():
    # MobileNetV2 (2.3 M weights) rather than ResNet50V2 (23.6 M, 56 s here): the same path
    # (PixelPreprocessing, the application, its pooling) at a twelfth of the save and export.
    return encoders.from_keras_applications("MobileNetV2", input_shape=(32, 32, 3))


@pytest.mark.parametrize(
    "build",
    [hub_encoder, applications_encoder],
    ids=["keras_hub", "MobileNetV2"],
)
def test_backbone_trains_a_simclr_step_reloads_and_serves_the_same_embedding(build, tmp_path):
    import tensorflow as tf

    import keras_siamese as ks

    encoder = build()
    shape = encoder.input_shape[1:]
    images = np.random.default_rng(0).integers(0, 256, (8, *shape)).astype("uint8")
    model = ks.SimCLR(encoder, projection_dims=(32, 16), temperature=0.5)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    before = [weight.numpy().copy() for weight in encoder.trainable_weights]
    history = model.fit(tf.data.Dataset.from_tensors(images), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, encoder.trainable_weights,
                                                                strict=True)]
    assert sum(changed) > len(changed) // 2

    features = np.asarray(model(images, training=False))
    reloaded = reload(model, tmp_path, "simclr.keras")
    np.testing.assert_allclose(np.asarray(reloaded(images, training=False)), features, atol=1e-5)
    version_dir = ks.export.export_for_serving(model, tmp_path / "export")
    serving = tf.saved_model.load(version_dir).signatures["serving_default"]
    served = serving(images=tf.constant(images))["embedding"].numpy()
    expected = features / np.linalg.norm(features, axis=-1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-5)
