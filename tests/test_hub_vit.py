"""KerasHub Vision Transformers (ViTBackbone, DINOV2Backbone) as encoders, from local presets.

Tiny backbones built from their configs (32x32 images, 4x4 patches, 2 layers of width 32) and
saved with their image converters to presets in `tmp_path`: nothing is downloaded.
"""

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_siamese as ks  # noqa: E402
from keras_siamese import encoders  # noqa: E402
from keras_siamese.cli import encoder_flag  # noqa: E402

SIDE, PATCH, WIDTH, REGISTERS = 32, 4, 32, 2
TOKENS = 1 + (SIDE // PATCH) ** 2  # the class token, then the patches
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def vit_backbone(channels=3, **kwargs):
    return keras_hub.models.ViTBackbone(
        image_shape=(SIDE, SIDE, channels), patch_size=PATCH, num_layers=2, num_heads=2,
        hidden_dim=WIDTH, mlp_dim=2 * WIDTH, name="tiny_vit", **kwargs,
    )


def dinov2_backbone(channels=3):
    return keras_hub.models.DINOV2Backbone(
        patch_size=PATCH, num_layers=2, hidden_dim=WIDTH, num_heads=2,
        intermediate_dim=2 * WIDTH, num_register_tokens=REGISTERS,
        image_shape=(SIDE, SIDE, channels), position_embedding_shape=(SIDE, SIDE, channels),
        name="tiny_dinov2",
    )


def converter_of(family, channels=3):
    """ViT's [-1, 1] converter; DINOv2's per-channel ImageNet mean and std (one grey value)."""
    if family == "vit":
        return keras_hub.layers.ViTImageConverter(scale=1 / 127.5, offset=-1.0)
    if channels == 1:
        return keras_hub.layers.DINOV2ImageConverter(scale=1 / (255 * 0.226), offset=-0.449 / 0.226)
    return keras_hub.layers.DINOV2ImageConverter(
        scale=[1 / (255 * s) for s in STD], offset=[-m / s for m, s in zip(MEAN, STD, strict=True)]
    )


BUILDERS = {"vit": vit_backbone, "dinov2": dinov2_backbone}


def saved_preset(family, directory, channels=3):
    """The backbone, its converter, and a preset directory holding both."""
    backbone, converter = BUILDERS[family](channels), converter_of(family, channels)
    backbone.save_to_preset(str(directory))
    converter.save_to_preset(str(directory))
    return backbone, converter, str(directory)


def unit_images(count=2, shape=(SIDE, SIDE, 3), seed=0):
    return np.random.default_rng(seed).uniform(size=(count, *shape)).astype("float32")


def reference_tokens(backbone, converter, images):
    """The backbone called directly on the converter's pixels (raw [0, 255] * scale + offset)."""
    scale = np.asarray(converter.scale, "float32")
    offset = np.asarray(converter.offset, "float32")
    pixels = images * 255.0 * scale + offset
    if isinstance(backbone.input, dict):  # DINOv2 takes {"images": ...}
        pixels = {"images": pixels}
    return keras.ops.convert_to_numpy(backbone(pixels, training=False))


@pytest.mark.parametrize("channels", [3, 1], ids=["rgb", "grey"])
@pytest.mark.parametrize("family", ["vit", "dinov2"])
def test_a_preset_encodes_like_its_backbone_with_avg_and_cls_pooling(family, channels, tmp_path):
    backbone, converter, preset = saved_preset(family, tmp_path, channels)
    images = unit_images(shape=(SIDE, SIDE, channels))
    tokens = reference_tokens(backbone, converter, images)
    assert tokens.shape == (2, TOKENS + (REGISTERS if family == "dinov2" else 0), WIDTH)
    for pooling, expected in (("avg", tokens.mean(axis=1)), ("cls", tokens[:, 0])):
        encoder = encoders.from_keras_hub(preset, pooling=pooling)
        assert encoder.input_shape == (None, SIDE, SIDE, channels)
        assert encoder.output_shape == (None, WIDTH)
        features = keras.ops.convert_to_numpy(encoder(images, training=False))
        np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)


def test_cls_pooling_needs_a_class_token_and_other_encoders_refuse_it():
    resnet = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 8],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(16, 16, 3), name="tiny_resnet",
    )
    converter = keras_hub.layers.ImageConverter(scale=1 / 255)
    with pytest.raises(ValueError, match=r"token sequence.*\(None, \d+, \d+, 8\).*pooling='cls'"):
        encoders.from_keras_hub(resnet, converter, pooling="cls")
    without = vit_backbone(use_class_token=False)
    with pytest.raises(ValueError, match=r"use_class_token=False.*Received: pooling='cls'"):
        encoders.from_keras_hub(without, converter, pooling="cls")
    with pytest.raises(ValueError, match=r"'avg', 'max' or 'cls'.*Received: pooling='mean'"):
        encoders.from_keras_hub(without, converter, pooling="mean")
    with pytest.raises(ValueError, match=r"must be 'avg' or 'max'.*Received: pooling='cls'"):
        encoders.from_keras_applications("MobileNetV3Small", (32, 32, 3), pooling="cls")


def hub_encoder(family, directory):
    """ViT from its preset with class-token pooling; DINOv2 as `--encoder=keras_hub:DIR`
    builds it for 16x16 views (position embeddings resized from 8x8 to 4x4 patches)."""
    _, _, preset = saved_preset(family, directory)
    if family == "vit":
        return encoders.from_keras_hub(preset, pooling="cls")
    return encoder_flag.build(encoder_flag.parse(f"keras_hub:{preset}"), (16, 16, 3))


@pytest.mark.parametrize("family", ["vit", "dinov2"])
def test_a_hub_vit_trains_a_simclr_step_and_reloads(family, tmp_path):
    encoder = hub_encoder(family, tmp_path / "preset")
    side = encoder.input_shape[1]
    images = np.random.default_rng(0).integers(0, 256, (8, side, side, 3)).astype("uint8")
    model = ks.SimCLR(encoder, projection_dims=(16, 8))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    before = [weight.numpy().copy() for weight in encoder.trainable_weights]
    history = model.fit(tf.data.Dataset.from_tensors(images), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, encoder.trainable_weights,
                                                                strict=True)]
    assert sum(changed) > len(changed) // 2
    # KerasHub saves trained, resized DINOv2 position embeddings by resampling them back to
    # the original size (or not at all): from_keras_hub freezes them, so the reload is exact.
    frozen = [w.path for w in encoder.non_trainable_weights if "position_embeddings" in w.path]
    assert len(frozen) == (2 if family == "dinov2" else 0)

    features = np.asarray(model(images, training=False))
    path = tmp_path / "simclr.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(reloaded(images, training=False)), features, atol=1e-5)


def test_the_cli_rebuilds_dinov2_at_the_view_size_and_explains_why_vit_cannot(tmp_path):
    _, _, dinov2 = saved_preset("dinov2", tmp_path / "dinov2")
    encoder = encoder_flag.build(encoder_flag.parse(f"keras_hub:{dinov2}"), (16, 16, 3))
    assert encoder.input_shape == (None, 16, 16, 3) and encoder.output_shape == (None, WIDTH)
    # KerasHub resizes the 8x8 grid of patch position embeddings to 4x4 (bicubic), keeping
    # the class token's.
    embedding = next(layer for layer in encoder.layers if "dinov2" in layer.name).embeddings
    resized = embedding.interpolated_position_embeddings.numpy()
    original = embedding.position_embeddings.numpy()
    assert resized.shape == (1, 1 + 4 * 4, WIDTH) and original.shape == (1, TOKENS, WIDTH)
    np.testing.assert_allclose(resized[:, 0], original[:, 0])
    features = np.asarray(encoder(unit_images(shape=(16, 16, 3)), training=False))
    assert features.shape == (2, WIDTH) and np.all(np.isfinite(features))

    _, _, vit = saved_preset("vit", tmp_path / "vit")
    with pytest.raises(ValueError, match=r"image_shape=\(32, 32, 3\).*\(16, 16, 3\).*"
                       r"value\.shape=\(65, 32\).*--image_size=32, --channels=3"):
        encoder_flag.build(encoder_flag.parse(f"keras_hub:{vit}"), (16, 16, 3))
    # At the preset's own size the ViT preset loads.
    encoder = encoder_flag.build(encoder_flag.parse(f"keras_hub:{vit}"), (SIDE, SIDE, 3))
    assert encoder.output_shape == (None, WIDTH)
