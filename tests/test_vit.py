"""The Vision Transformer encoder against numpy references, its sizes, errors and round trips."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_siamese as ks
from keras_siamese.encoders import patches

RNG = np.random.default_rng(0)


def numpy_patchify(images, size):
    """Patches row by row, each patch's pixels row by row with channels last (loops)."""
    batch, height, width, channels = images.shape
    out = []
    for image in images:
        rows = []
        for top in range(0, height, size):
            for left in range(0, width, size):
                rows.append(image[top : top + size, left : left + size, :].reshape(-1))
        out.append(rows)
    return np.asarray(out)


def numpy_sincos(rows, columns, dim):
    """The 2-D sine-cosine table written out position by position, frequency by frequency."""
    quarter = dim // 4
    table = np.zeros((rows * columns, dim))
    for r in range(rows):
        for c in range(columns):
            token = r * columns + c
            for i in range(quarter):
                frequency = 10000.0 ** (-i / quarter)
                table[token, i] = math.sin(r * frequency)
                table[token, quarter + i] = math.cos(r * frequency)
                table[token, 2 * quarter + i] = math.sin(c * frequency)
                table[token, 3 * quarter + i] = math.cos(c * frequency)
    return table


def layer_norm(x, layer, epsilon=1e-6):
    mean = x.mean(-1, keepdims=True)
    variance = x.var(-1, keepdims=True)
    gamma, beta = (np.asarray(w) for w in layer.weights)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    return np.exp(x) / np.exp(x).sum(-1, keepdims=True)


def numpy_attention(x, attention):
    def dense(layer, inputs):
        kernel, bias = (np.asarray(w) for w in layer.weights)
        return np.einsum("btd,dhk->bthk", inputs, kernel) + bias

    q = dense(attention._query_dense, x)
    k = dense(attention._key_dense, x)
    v = dense(attention._value_dense, x)
    scores = np.einsum("bqhk,bthk->bhqt", q, k) / math.sqrt(q.shape[-1])
    mixed = np.einsum("bhqt,bthk->bqhk", softmax(scores), v)
    kernel, bias = (np.asarray(w) for w in attention._output_dense.weights)
    return np.einsum("bqhk,hkd->bqd", mixed, kernel) + bias


def numpy_block(x, block):
    x = x + numpy_attention(layer_norm(x, block.attention_norm), block.attention)
    hidden_kernel, hidden_bias = (np.asarray(w) for w in block.mlp_hidden.weights)
    out_kernel, out_bias = (np.asarray(w) for w in block.mlp_output.weights)
    hidden = gelu(layer_norm(x, block.mlp_norm) @ hidden_kernel + hidden_bias)
    return x + hidden @ out_kernel + out_bias


def numpy_vit(images, layer):
    """The ViT of the paper's equations 1-4 in numpy, reading the layer's weights."""
    kernel, bias = (np.asarray(w) for w in layer.patch_embedding.weights)
    tokens = numpy_patchify(images, layer.patch_size) @ kernel.reshape(-1, layer.dim) + bias
    tokens = tokens + np.asarray(layer.positions)
    class_token = np.asarray(layer.class_token)
    if layer.class_position is not None:
        class_token = class_token + np.asarray(layer.class_position)
    x = np.concatenate([np.repeat(class_token, len(images), axis=0), tokens], axis=1)
    for block in layer.blocks:
        x = numpy_block(x, block)
    x = layer_norm(x, layer.norm)
    if layer.pooling == "grid":  # equal cells: (rows / g) x (columns / g) tokens each
        rows, columns = images.shape[1] // layer.patch_size, images.shape[2] // layer.patch_size
        g = layer.pool_grid
        maps = x[:, 1:].reshape(len(x), g, rows // g, g, columns // g, layer.dim)
        return maps.mean(axis=(2, 4)).reshape(len(x), -1)
    return x[:, 0] if layer.pooling == "cls" else x[:, 1:].mean(axis=1)


def test_patchify_matches_a_loop_and_unpatchify_inverts_it():
    images = RNG.random((2, 8, 12, 3)).astype("float32")
    cut = patches.patchify(images, 4).numpy()
    np.testing.assert_array_equal(cut, numpy_patchify(images, 4))
    back = patches.unpatchify(cut, 4, (2, 3), 3).numpy()
    np.testing.assert_array_equal(back, images)


def test_patchify_refuses_sides_that_are_not_multiples():
    with pytest.raises(ValueError, match=r"multiples of patch_size=4.*\(1, 10, 8, 1\)"):
        patches.patchify(np.zeros((1, 10, 8, 1), "float32"), 4)


def test_sincos_table_matches_the_formula_written_out():
    np.testing.assert_allclose(
        patches.sincos_position_embedding(3, 5, 16), numpy_sincos(3, 5, 16), atol=1e-6
    )
    with pytest.raises(ValueError, match="multiple of 4.*dim=10"):
        patches.sincos_position_embedding(2, 2, 10)


@pytest.mark.parametrize("position_embedding, pooling", [("learned", "cls"), ("sincos", "mean")])
def test_forward_pass_equals_a_numpy_vit(position_embedding, pooling):
    keras.utils.set_random_seed(1)
    encoder = ks.encoders.vit(
        (8, 12), 4, dim=16, depth=2, heads=2, channels=3,
        position_embedding=position_embedding, pooling=pooling,
    )  # fmt: skip
    layer = ks.encoders.vision_transformer_of(encoder)
    images = RNG.random((3, 8, 12, 3)).astype("float32")
    np.testing.assert_allclose(
        encoder(images).numpy(), numpy_vit(images.astype("float64"), layer), atol=2e-4
    )
    trainable = {w.path.split("/")[-1] for w in layer.trainable_weights}
    assert ("positions" in trainable) == (position_embedding == "learned")


def test_vit_small_16_has_the_published_weight_count():
    # timm's vit_small_patch16_224 without its classifier: 21,665,664 weights.
    encoder = ks.encoders.vit(224, 16, dim=384, depth=12, heads=6, channels=3)
    assert encoder.count_params() == 21_665_664
    assert encoder.output_shape == (None, 384)


def test_any_size_encoder_equals_the_fixed_one_on_its_grid_and_resizes_otherwise():
    keras.utils.set_random_seed(2)
    fixed = ks.encoders.vit(16, 4, dim=16, depth=1, heads=2)
    flexible = ks.encoders.vit(16, 4, dim=16, depth=1, heads=2, any_size=True)
    flexible.set_weights(fixed.get_weights())
    images = RNG.random((2, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(flexible(images), fixed(images), atol=1e-6)
    assert flexible(RNG.random((2, 28, 28, 1)).astype("float32")).shape == (2, 16)
    layer = ks.encoders.vision_transformer_of(flexible)
    table = np.asarray(layer.position_table(7, 7))
    assert table.shape == (1, 49, 16)
    # Bicubic resizing keeps a table's corners near its corners' values and its mean.
    np.testing.assert_allclose(table.mean(), np.asarray(layer.positions).mean(), atol=2e-3)


@pytest.mark.parametrize("position_embedding", ["learned", "sincos"])
def test_keras_round_trip(tmp_path, position_embedding):
    encoder = ks.encoders.vit(
        12, 4, dim=8, depth=1, heads=2, channels=2, position_embedding=position_embedding
    )
    path = str(tmp_path / "vit.keras")
    encoder.save(path)
    loaded = keras.saving.load_model(path)
    images = RNG.random((2, 12, 12, 2)).astype("float32")
    np.testing.assert_allclose(loaded(images), encoder(images), atol=1e-6)
    assert loaded.get_layer("vision_transformer").get_config() == (
        encoder.get_layer("vision_transformer").get_config()
    )


def test_bfloat16_policy_computes_close_to_float32():
    keras.utils.set_random_seed(3)
    images = RNG.random((2, 16, 16, 1)).astype("float32")
    reference = ks.encoders.vit(16, 4, dim=16, depth=1, heads=2)
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        mixed = ks.encoders.vit(16, 4, dim=16, depth=1, heads=2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    mixed.set_weights(reference.get_weights())
    outputs = mixed(images)
    assert outputs.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(outputs, tf.float32), reference(images), atol=0.1)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"image_size": 30}, r"multiple of patch_size=4.*image_size=\(30, 30\)"),
        ({"dim": 30, "heads": 4}, r"`dim` must be a multiple of `heads`.*dim=30, heads=4"),
        ({"dim": 18, "heads": 2, "position_embedding": "sincos"}, r"multiple of 4.*dim=18"),
        ({"pooling": "max"}, r"`pooling` must be one of \('cls', 'mean', 'grid'\).*'max'"),
        ({"pool_grid": 0}, r"`pool_grid` must be an integer >= 1.*pool_grid=0"),
        ({"position_embedding": "rope"}, r"`position_embedding` must be one of.*'rope'"),
        ({"depth": 0}, r"`depth` must be an integer >= 1.*depth=0"),
        ({"image_size": "big"}, r"`image_size` must be an int or \(height, width\)"),
    ],
)
def test_bad_arguments_name_themselves(arguments, message):
    with pytest.raises(ValueError, match=message):
        ks.encoders.vit(**arguments)


def test_vision_transformer_of_refuses_other_encoders():
    with pytest.raises(TypeError, match=r"`encoder` must be a Vision Transformer.*Conv2D"):
        ks.encoders.vision_transformer_of(ks.encoders.resnet(10, (16, 16, 1), width=4))


def test_recipe_builds_its_vit_on_the_views_grid():
    recipe = ks.recipes.get("simclr", encoder_type="vit", vit_dim=16, vit_depth=1, vit_heads=2)
    encoder = recipe.build_encoder(1, (28, 28, 1))
    layer = ks.encoders.vision_transformer_of(encoder)
    assert layer.grid_size == (4, 4)  # 16x16 views, patches of 4
    assert encoder.input_shape == (None, None, None, 1)
    assert recipe.smallest_view() == 4
    assert recipe.replace(crop_size=None).build_encoder(1, (28, 28, 1)).layers[1].grid_size == (
        7,
        7,
    )
    with pytest.raises(ValueError, match="needs the images' shape.*image_shape=None"):
        recipe.build_encoder(1)
    with pytest.raises(ValueError, match="`vit_dim` must be a multiple of `vit_heads`"):
        recipe.replace(vit_heads=3)
    with pytest.raises(ValueError, match="`encoder_type` must be one of"):
        recipe.replace(encoder_type="convnext")
