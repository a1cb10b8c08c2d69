"""Tests of keras_siamese.distribute: strategies, replica helpers, global BN, the report."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, tiny_encoder

import keras_siamese as ks
from keras_siamese import distribute

REPLICAS_SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "replicas.py")


# ----------------------------------------------------------------- strategies


def test_get_strategy_default_is_one_replica():
    strategy = distribute.get_strategy("default")
    assert strategy.num_replicas_in_sync == 1
    assert strategy is tf.distribute.get_strategy()


@pytest.mark.parametrize("name", ["gpu", "cpu", "mirrored:2", ""])
def test_get_strategy_unknown_name_raises(name):
    with pytest.raises(ValueError, match=f"Received: name={name!r}"):
        distribute.get_strategy(name)


@pytest.mark.parametrize("name", ["cpu:0", "cpu:-1", "cpu:two"])
def test_get_strategy_bad_cpu_count_raises(name):
    with pytest.raises(ValueError, match="positive integer N"):
        distribute.get_strategy(name)


def test_get_strategy_cpu_after_initialisation_raises():
    tf.constant(1.0) + 1.0  # TensorFlow is initialised with one CPU device in this process
    with pytest.raises(ValueError, match="before any other TensorFlow operation"):
        distribute.get_strategy("cpu:3")


def test_get_strategy_non_string_raises():
    with pytest.raises(TypeError, match="Received: name=2"):
        distribute.get_strategy(2)


def test_get_strategy_auto_with_bad_tf_config_raises(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    monkeypatch.setattr(distribute.strategies, "_tpu_strategy", _no_tpu)
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.get_strategy("auto")


def test_get_strategy_auto_without_cluster_or_gpus_is_default(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(distribute.strategies, "_tpu_strategy", _no_tpu)
    assert distribute.get_strategy("auto") is tf.distribute.get_strategy()


def _no_tpu():
    raise ValueError("no TPU here")


# ----------------------------------------------------------------- one-replica helpers


def test_helpers_outside_a_strategy_are_identities():
    value = tf.reshape(tf.range(6, dtype=tf.float32), (3, 2))
    assert distribute.num_replicas() == 1
    assert not distribute.in_replica_context()
    assert int(distribute.replica_id()) == 0
    np.testing.assert_array_equal(distribute.all_gather(value), value)
    assert float(distribute.scale_for_replicas(tf.constant(3.0))) == 3.0
    seed = tf.constant([5, 6])
    np.testing.assert_array_equal(distribute.replica_seed(seed), [5, 6])
    assert distribute.replica_seed(tf.constant([5, 6], tf.int64)).dtype == tf.int32


def test_is_chief_and_worker_directory_on_one_machine(tmp_path):
    assert distribute.is_chief()
    assert distribute.worker_directory(str(tmp_path)) == str(tmp_path)


def test_worker_directory_of_a_multi_worker_cluster(tmp_path):
    class Resolver:
        task_type, task_id = "worker", 1

        def cluster_spec(self):
            return tf.train.ClusterSpec({"worker": ["127.0.0.1:1", "127.0.0.1:2"]})

    class Strategy:
        cluster_resolver = Resolver()

    directory = distribute.worker_directory(str(tmp_path), Strategy())
    assert directory == os.path.join(str(tmp_path), "worker_1")


# ----------------------------------------------------------------- the replica checks


@pytest.mark.replica_job("--fresh", REPLICAS_SCRIPT)
def test_two_logical_replicas_gather_scale_and_augment_differently(replica_job):
    """get_strategy('cpu:2'), the helpers in strategy.run, per-replica augmentation, report.

    Runs in a fresh process (started by the shared replica process of tests/conftest.py, so
    it runs beside pytest): get_strategy configures the logical CPU devices, which it must do
    before TensorFlow initialises.
    """
    result = replica_job
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "REPLICAS_OK" in result.stdout


# ----------------------------------------------------------------- mixed precision policy


@pytest.mark.parametrize(
    ("name", "policy"),
    [("bfloat16", "mixed_bfloat16"), ("float16", "mixed_float16"), ("none", "float32")],
)
def test_set_mixed_precision_sets_the_global_policy(name, policy):
    try:
        assert distribute.set_mixed_precision(name) == policy
        assert keras.mixed_precision.global_policy().name == policy
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_set_mixed_precision_unknown_name_raises():
    with pytest.raises(ValueError, match="Received: name='fp8'"):
        distribute.set_mixed_precision("fp8")
    assert keras.mixed_precision.global_policy().name == "float32"


# ----------------------------------------------------------------- global BatchNorm


def _nested_model():
    inner = tiny_encoder(name="inner")
    inputs = keras.Input((16, 16, 1))
    features = keras.layers.BatchNormalization(name="outer_bn")(inner(inputs))
    return keras.Model(inputs, features, name="outer")


def test_batch_norm_layers_finds_nested_layers_by_path():
    model = _nested_model()
    layers = distribute.batch_norm_layers(model)
    inner_bn = model.get_layer("inner").layers[2]
    assert layers == {f"inner/{inner_bn.name}": inner_bn, "outer_bn": model.get_layer("outer_bn")}


def test_convert_to_sync_batch_norm_converts_every_layer_in_place():
    model = _nested_model()
    images = random_images(4).astype("float32") / 255.0
    before = model(images, training=True)
    assert distribute.convert_to_sync_batch_norm(model) is model
    layers = distribute.batch_norm_layers(model).values()
    assert len(layers) == 2 and all(layer.synchronized for layer in layers)
    # On one device global statistics are the local ones: same outputs (to rounding:
    # E[x^2] - E[x]^2 against tf.nn.moments).
    np.testing.assert_allclose(model(images, training=True), before, rtol=1e-4, atol=1e-5)


def test_convert_to_sync_batch_norm_refuses_a_non_layer():
    with pytest.raises(TypeError, match="Received: model='encoder'"):
        distribute.convert_to_sync_batch_norm("encoder")


def test_simclr_sync_batch_norm_converts_the_encoder_and_survives_keras_file(tmp_path):
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8), sync_batch_norm=True)
    layers = distribute.batch_norm_layers(model)
    assert len(layers) == 2 and all(layer.synchronized for layer in layers.values())
    path = str(tmp_path / "simclr.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    reloaded_layers = distribute.batch_norm_layers(reloaded)
    assert len(reloaded_layers) == 2
    assert all(layer.synchronized for layer in reloaded_layers.values())
    images = random_images(4)
    np.testing.assert_allclose(reloaded(images), model(images), rtol=1e-5, atol=1e-6)


def test_simclr_without_sync_batch_norm_leaves_the_encoder_alone():
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8))
    assert not any(layer.synchronized for layer in distribute.batch_norm_layers(model).values())


# ----------------------------------------------------------------- the distribution report


def test_global_batch_size_of_datasets_and_arrays():
    images = random_images(20)
    static = tf.data.Dataset.from_tensor_slices(images).batch(8, drop_remainder=True)
    dynamic = tf.data.Dataset.from_tensor_slices(images).batch(8)
    labelled = tf.data.Dataset.from_tensor_slices((images, np.zeros(20))).batch(4, True)
    assert distribute.global_batch_size(static) == 8
    assert distribute.global_batch_size(dynamic) is None
    assert distribute.global_batch_size(labelled) == 4
    assert distribute.global_batch_size(images, batch_size=16) == 16
    assert distribute.global_batch_size(images) == 20  # Keras' 32, capped by the data
    assert distribute.global_batch_size(random_images(64)) == 32
    assert distribute.global_batch_size(None) is None


def test_report_of_simclr_on_one_device():
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8))
    report = model.distribution_report(global_batch_size=8)
    assert report.model == "SimCLR"
    assert report.replicas == 1 and report.workers == 1
    assert report.global_batch_size == 8 and report.per_replica_batch_size == 8
    assert report.has_negatives and report.negatives_per_anchor == 14  # 2 * 8 - 2
    assert "all_gathered" in report.cross_replica_loss
    assert len(report.local_batch_norm) == 2 and report.synchronized_batch_norm == ()
    assert report.dtype_policy == "float32"
    assert report.warnings == ()  # per-replica BN is harmless with one replica
    text = str(report)
    assert text.startswith("Distribution report for SimCLR")
    assert "8 global = 8 per replica x 1" in text and "14 per anchor" in text


def test_report_without_a_static_batch_warns():
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8))
    report = model.distribution_report()
    assert report.negatives_per_anchor is None and report.per_replica_batch_size is None
    assert any("drop_remainder=True" in warning for warning in report.warnings)
    assert "unknown" in str(report)


def test_report_of_a_model_without_negatives():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    report = distribute.distribution_report(model, global_batch_size=6)
    assert not report.has_negatives and report.negatives_per_anchor is None
    assert "nothing gathered" in report.cross_replica_loss
    assert "none (the method has no negatives)" in str(report)


def test_fit_prints_the_report_unless_silent(capsys):
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8))
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    dataset = tf.data.Dataset.from_tensor_slices(random_images(8)).batch(4, drop_remainder=True)
    model.fit(dataset, epochs=1, verbose=2)
    printed = capsys.readouterr().out
    assert "Distribution report for SimCLR" in printed
    assert "4 global = 4 per replica x 1" in printed
    assert model.distribution_report().global_batch_size == 4
    model.fit(dataset, epochs=1, verbose=0)
    assert "Distribution report" not in capsys.readouterr().out


# ----------------------------------------------------------------- Keras multi-worker workarounds
# (the multi-worker paths run in tests/test_multi_worker.py, on uint8 images)


def test_collective_safe_leaves_single_worker_inputs_alone():
    dataset = tf.data.Dataset.from_tensor_slices(random_images(4)).batch(2)
    assert distribute.collective_safe(dataset) is dataset
    images = random_images(4)
    assert distribute.collective_safe(images) is images
    assert distribute.collective_safe(None) is None


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (tf.uint8, tf.int32),
        (tf.int16, tf.int32),
        (tf.uint32, tf.int64),
        (tf.int64, tf.int64),
        (tf.float32, tf.float32),
        (tf.bool, tf.bool),
    ],
)
def test_collective_dtypes(dtype, expected):
    cast = distribute._collective_dtype(tf.zeros((2,), dtype))
    assert cast.dtype == expected


def test_step_logs_are_unchanged_on_one_worker():
    logs = {"loss": tf.constant(1.5), "vector": tf.ones((2,))}
    assert distribute.step_logs(logs) == logs
