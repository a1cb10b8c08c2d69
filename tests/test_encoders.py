"""Tests of keras_siamese.encoders: ResNet shapes and parameter counts, stems, adaptation."""

import warnings

import keras
import numpy as np
import pytest
from conftest import tiny_encoder

from keras_siamese import encoders

STAGE_BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


def conv_bn_parameters(kernel, inputs, outputs):
    """A bias-free convolution and its BatchNorm (scale, offset, moving mean and variance)."""
    return kernel * kernel * inputs * outputs + 4 * outputs


def expected_resnet_parameters(depth, width, channels, small_images=True):
    """Counts the parameters of He et al.'s ResNet from its description, layer by layer.

    Stem: one conv (3x3 for small images, 7x7 otherwise). Stages of `width * 2**stage`
    filters; a basic block is two 3x3 convs, a bottleneck block 1x1, 3x3, 1x1 (4x expansion);
    a block whose input and output differ (stride or channels) has a 1x1 projection shortcut.
    """
    total = conv_bn_parameters(3 if small_images else 7, channels, width)
    previous = width
    for stage, repeats in enumerate(STAGE_BLOCKS[depth]):
        filters = width * 2**stage
        for index in range(repeats):
            downsample = stage > 0 and index == 0
            if depth == 50:
                out = 4 * filters
                total += conv_bn_parameters(1, previous, filters)
                total += conv_bn_parameters(3, filters, filters)
                total += conv_bn_parameters(1, filters, out)
            else:
                out = filters
                total += conv_bn_parameters(3, previous, filters)
                total += conv_bn_parameters(3, filters, filters)
            if downsample or previous != out:
                total += conv_bn_parameters(1, previous, out)
            previous = out
    return total


def test_resnet10_parameter_count_by_hand():
    # depth 10, width 4, 16x16x1 images: conv weights k*k*in*out, BatchNorm 4 per channel.
    stem = 3 * 3 * 1 * 4 + 4 * 4  # 52
    stage1 = 2 * (3 * 3 * 4 * 4 + 4 * 4)  # 320
    stage2 = (3 * 3 * 4 * 8 + 4 * 8) + (3 * 3 * 8 * 8 + 4 * 8) + (4 * 8 + 4 * 8)  # 992
    stage3 = (3 * 3 * 8 * 16 + 64) + (3 * 3 * 16 * 16 + 64) + (8 * 16 + 64)  # 3776
    stage4 = (3 * 3 * 16 * 32 + 128) + (3 * 3 * 32 * 32 + 128) + (16 * 32 + 128)  # 14720
    assert stem + stage1 + stage2 + stage3 + stage4 == 19_860
    encoder = encoders.resnet(depth=10, input_shape=(16, 16, 1), width=4)
    assert encoder.count_params() == 19_860
    # Moving means and variances: 2 per channel of the 4 + 8 + 24 + 48 + 96 BatchNorm channels.
    non_trainable = sum(int(np.prod(w.shape)) for w in encoder.non_trainable_weights)
    assert non_trainable == 2 * 180
    assert expected_resnet_parameters(10, 4, 1) == 19_860


@pytest.mark.parametrize(
    "depth, published",
    [
        (10, None),
        # torchvision's resnet18/34/50 (11,689,512, 21,797,672 and 25,557,032 parameters)
        # without their 1000-class fc (512*1000+1000 or 2048*1000+1000 parameters): conv
        # weights and BatchNorm scale and offset, the trainable parameters here.
        (18, 11_689_512 - 513_000),
        (34, 21_797_672 - 513_000),
        (50, 25_557_032 - 2_049_000),
    ],
)
def test_resnet_output_shape_and_parameter_count(depth, published):
    width = 64
    encoder = encoders.resnet(depth=depth, input_shape=(32, 32, 3), small_images=False)
    features = (32 if depth == 50 else 8) * width
    assert encoder.output_shape == (None, features)
    assert encoder.name == f"resnet{depth}"
    assert encoder.count_params() == expected_resnet_parameters(depth, width, 3, False)
    if published is not None:
        trainable = sum(int(np.prod(w.shape)) for w in encoder.trainable_weights)
        assert trainable == published
    images = np.random.default_rng(depth).uniform(size=(2, 32, 32, 3)).astype("float32")
    output = encoder(images, training=False).numpy()
    assert output.shape == (2, features)
    assert np.all(np.isfinite(output)) and output.min() >= 0.0  # pooled ReLU outputs


@pytest.mark.parametrize("small_images, stem_size, final_size", [(True, 32, 4), (False, 8, 1)])
def test_stem_downsampling(small_images, stem_size, final_size):
    width = 4
    encoder = encoders.resnet(
        depth=10, input_shape=(32, 32, 1), small_images=small_images, width=width, name="net"
    )
    assert encoder.name == "net"
    # The stem output feeds the first block; the last block feeds the pooling layer.
    stem_output = encoder.get_layer("stage1_block1_1_conv").input
    assert tuple(stem_output.shape) == (None, stem_size, stem_size, width)
    assert tuple(encoder.get_layer("pool").input.shape) == (None, final_size, final_size, 8 * width)
    stem_kernel = encoder.get_layer("stem_conv").kernel
    assert tuple(stem_kernel.shape) == ((3, 3) if small_images else (7, 7)) + (1, width)
    assert (encoder.get_layer("stem_conv").strides == (1, 1)) == small_images
    assert ("stem_pool" in [layer.name for layer in encoder.layers]) != small_images


@pytest.mark.parametrize(
    "arguments, match",
    [
        ({"depth": 20}, r"`depth` must be one of \[10, 18, 34, 50\].*Received: depth=20"),
        ({"width": 0}, r"`width`.*Received: width=0"),
        ({"width": 2.5}, r"`width`.*Received: width=2.5"),
        ({"input_shape": (32, 32)}, r"`input_shape`.*Received: input_shape=\(32, 32\)"),
        ({"input_shape": (32, 0, 3)}, r"`input_shape`.*Received: input_shape=\(32, 0, 3\)"),
        ({"input_shape": (32, None, 3)}, r"`input_shape`.*Received"),
        ({"input_shape": (None, 32, 3)}, r"`input_shape`.*Received"),
        ({"input_shape": None}, r"`input_shape`.*Received: input_shape=None"),
        ({"depth": 10.0}, r"`depth`.*Received: depth=10.0"),
        ({"depth": True}, r"`depth`.*Received: depth=True"),
        ({"width": True}, r"`width`.*Received: width=True"),
        ({"input_shape": (None, None, None)}, r"`input_shape`.*\(or None, None, channels\)"),
        ({"grid_size": 0}, r"`grid_size` must be None.*Received: grid_size=0"),
        ({"grid_size": 2.0}, r"`grid_size`.*Received: grid_size=2.0"),
        ({"grid_size": True}, r"`grid_size`.*Received: grid_size=True"),
    ],
)
def test_resnet_bad_arguments_raise(arguments, match):
    with pytest.raises(ValueError, match=match):
        encoders.resnet(**{"depth": 10, "input_shape": (32, 32, 3), "width": 4, **arguments})


def test_resnet_grid_pooling_is_the_flattened_cell_average_of_the_last_map():
    encoder = encoders.resnet(10, (None, None, 1), width=2, grid_size=2)
    images = np.random.default_rng(0).uniform(size=(3, 16, 16, 1)).astype("float32")
    last_map = keras.Model(encoder.input, encoder.get_layer("stage4_block1_out").output)
    maps = np.asarray(last_map(images))  # (3, 2, 2, 16): each cell is one position
    assert maps.shape == (3, 2, 2, 16)
    np.testing.assert_allclose(np.asarray(encoder(images)), maps.reshape(3, -1), rtol=1e-5)
    # 28x28 ends on a 4x4 map: 2x2 cells of 2x2 positions each.
    images = np.random.default_rng(1).uniform(size=(2, 28, 28, 1)).astype("float32")
    maps = np.asarray(last_map(images))
    expected = maps.reshape(2, 2, 2, 2, 2, 16).mean(axis=(2, 4)).reshape(2, -1)
    np.testing.assert_allclose(np.asarray(encoder(images)), expected, rtol=1e-5, atol=1e-6)
    assert encoder.output_shape == (None, 64)


def test_resnet_of_any_size_equals_the_fixed_size_one():
    keras.utils.set_random_seed(0)
    fixed = encoders.resnet(10, (28, 28, 1), width=2)
    keras.utils.set_random_seed(0)
    free = encoders.resnet(10, (None, None, 1), width=2)
    images = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(free(images)), np.asarray(fixed(images)), rtol=1e-6)
    assert free.input_shape == (None, None, None, 1)


def test_resnet_accepts_numpy_integer_depth():
    encoder = encoders.resnet(depth=np.int64(10), input_shape=(8, 8, 1), width=2)
    assert encoder.name == "resnet10"


def layer_signature(encoder):
    """Each layer's class, name, output shape and weight shapes, in order."""
    return [
        (
            type(layer).__name__,
            layer.name,
            tuple(layer.output.shape),
            [tuple(weight.shape) for weight in layer.weights],
        )
        for layer in encoder.layers
    ]


@pytest.mark.parametrize("depth, small_images", [(10, True), (18, False), (50, True)])
def test_resnet_stage_arguments_at_their_defaults_change_nothing(depth, small_images):
    default = encoders.resnet(depth, (32, 32, 1), small_images=small_images, width=4)
    spelled_out = encoders.resnet(
        depth,
        (32, 32, 1),
        small_images=small_images,
        widths=(4, 8, 16, 32),
        blocks=STAGE_BLOCKS[depth],
        stem_stride=1 if small_images else 2,
    )
    assert layer_signature(spelled_out) == layer_signature(default)
    assert spelled_out.name == default.name == f"resnet{depth}"
    blocks = [layer.name for layer in default.layers if layer.name.endswith("_out")]
    assert len(blocks) == sum(STAGE_BLOCKS[depth])


def test_resnet_widths_blocks_and_stem_stride_shape_the_network():
    encoder = encoders.resnet(
        18, (None, None, 1), widths=(8, 12, 20), blocks=(1, 2, 1), stem_stride=2, grid_size=2
    )
    assert encoder.name == "resnet18"
    assert encoder.get_layer("stem_conv").strides == (2, 2)
    blocks = [layer.name for layer in encoder.layers if layer.name.endswith("_out")]
    assert blocks == ["stage1_block1_out", "stage2_block1_out", "stage2_block2_out"] + [
        "stage3_block1_out"
    ]
    assert encoder.get_layer("stage2_block2_2_conv").kernel.shape == (3, 3, 12, 12)
    # 28 -> 14 (stem) -> 7 -> 4: a 4x4 map of 20 filters in 2x2 cells.
    last_map = encoder.get_layer("stage3_block1_out").output
    images = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype("float32")
    assert keras.Model(encoder.input, last_map)(images).shape == (2, 4, 4, 20)
    assert encoder(images).shape == (2, 2 * 2 * 20)
    assert keras.Model.from_config(encoder.get_config()).output_shape == (None, 80)


@pytest.mark.parametrize(
    "arguments, match",
    [
        ({"widths": (8, 16), "blocks": (1, 1, 1)}, r"same length.*Received: widths=\(8, 16\)"),
        ({"widths": (8, 16)}, r"same length.*blocks=\(1, 1, 1, 1\)"),
        ({"widths": (8, 0, 16, 32)}, r"`widths` must be a non-empty.*Received: widths="),
        ({"widths": ()}, r"`widths` must be a non-empty.*Received: widths=\(\)"),
        ({"blocks": 2}, r"`blocks` must be a non-empty.*Received: blocks=2"),
        ({"blocks": (1, 1.5, 1, 1)}, r"`blocks`.*Received: blocks=\(1, 1.5, 1, 1\)"),
        ({"width": 16, "widths": (8, 16, 32, 64)}, r"either `width`.*Received: width=16"),
        ({"stem_stride": 0}, r"`stem_stride` must be None.*Received: stem_stride=0"),
        ({"stem_stride": True}, r"`stem_stride`.*Received: stem_stride=True"),
    ],
)
def test_resnet_bad_stage_arguments_raise(arguments, match):
    with pytest.raises(ValueError, match=match):
        encoders.resnet(**{"depth": 10, "input_shape": (32, 32, 3), **arguments})


# ---------------------------------------------------------------------------------------
# adapt_encoder
# ---------------------------------------------------------------------------------------


def test_adapt_encoder_returns_rank2_encoders_unchanged():
    encoder = tiny_encoder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert encoders.adapt_encoder(encoder) is encoder


def test_adapt_encoder_pools_feature_maps_with_a_warning():
    inputs = keras.Input((8, 8, 1))
    maps = keras.layers.Conv2D(5, 3, padding="same", activation="relu")(inputs)
    feature_maps = keras.Model(inputs, maps, name="maps")
    with pytest.warns(UserWarning, match=r"'maps' returns feature maps.*global average pooling"):
        adapted = encoders.adapt_encoder(feature_maps)
    assert adapted.output_shape == (None, 5)
    assert adapted.input_shape == (None, 8, 8, 1)
    images = np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype("float32")
    expected = feature_maps(images).numpy().mean(axis=(1, 2))
    np.testing.assert_allclose(adapted(images).numpy(), expected, rtol=1e-5, atol=1e-6)
    # The adapted encoder shares the weights of the original.
    assert {id(w) for w in feature_maps.weights} <= {id(w) for w in adapted.weights}


def test_adapt_encoder_bad_encoders_raise():
    with pytest.raises(TypeError, match=r"`encoder` must be a keras.Model.*type Dense"):
        encoders.adapt_encoder(keras.layers.Dense(3))
    with pytest.raises(TypeError, match=r"`encoder` must be a keras.Model"):
        encoders.adapt_encoder(lambda images: images)
    vectors = keras.Input((10,))
    dense = keras.Model(vectors, keras.layers.Dense(3)(vectors))
    with pytest.raises(ValueError, match=r"images of shape.*encoder.input_shape=\(None, 10\)"):
        encoders.adapt_encoder(dense)
    images = keras.Input((4, 4, 1))
    rank3 = keras.Model(images, keras.layers.Reshape((16, 1))(images))
    with pytest.raises(ValueError, match=r"encoder.output_shape=\(None, 16, 1\)"):
        encoders.adapt_encoder(rank3)
    unbuilt = keras.Sequential([keras.layers.Conv2D(4, 3)], name="unbuilt")
    with pytest.raises(ValueError, match=r"built model.*Received: encoder='unbuilt'"):
        encoders.adapt_encoder(unbuilt)
