"""Tests of keras_siamese.callbacks: the kNN monitor inside a real `fit`."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import evaluation
from keras_siamese.callbacks import KNNMonitor


def labelled_points(count, seed):
    """Images of shape (4, 4, 1) around 3 class centres, with their labels."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(100).normal(size=(3, 16))
    labels = rng.integers(0, 3, count)
    images = centres[labels] + 1.5 * rng.normal(size=(count, 16))
    return images.reshape(count, 4, 4, 1).astype("float32"), labels


def tiny_model():
    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(6)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def fit(model, callbacks, epochs):
    train_images, _ = labelled_points(32, seed=1)
    targets = np.random.default_rng(2).normal(size=(32, 6)).astype("float32")
    return model.fit(
        train_images, targets, batch_size=8, epochs=epochs, callbacks=callbacks, verbose=0
    )


class Recorder(keras.callbacks.Callback):
    """Records, per epoch, the logs it is given and the kNN accuracy of the current weights."""

    def __init__(self, memory, queries, k):
        super().__init__()
        self.memory, self.queries, self.k = memory, queries, k
        self.logs, self.accuracies = {}, {}

    def on_epoch_end(self, epoch, logs=None):
        self.logs[epoch] = dict(logs)
        self.accuracies[epoch] = evaluation.knn_accuracy(
            self.model, self.memory, self.queries, k=self.k, progress=False, input_scale=1.0
        )


class no_warning_about:
    """Fails the block if a warning mentioning `text` is raised (e.g. a missing metric)."""

    def __init__(self, text):
        self.text = text

    def __enter__(self):
        self._catcher = warnings.catch_warnings(record=True)
        self._records = self._catcher.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc_info):
        self._catcher.__exit__(*exc_info)
        messages = [str(record.message) for record in self._records]
        assert not [m for m in messages if self.text in m], messages
        return False


def test_monitor_logs_accuracy_into_history_after_each_epoch():
    memory, queries = labelled_points(40, seed=3), labelled_points(20, seed=4)
    model = tiny_model()
    before = Recorder(memory, queries, k=5)
    after = Recorder(memory, queries, k=5)
    monitor = KNNMonitor(memory, queries, k=5, every=1, verbose=0, input_scale=1.0)
    kernel_before = model.layers[-1].kernel.numpy().copy()

    history = fit(model, [before, monitor, after], epochs=2)

    assert not np.allclose(kernel_before, model.layers[-1].kernel.numpy())  # it did train
    values = history.history["val_knn_accuracy"]
    assert len(values) == 2
    # Same weights as after the last epoch, so the same accuracy.
    final = evaluation.knn_accuracy(model, memory, queries, k=5, progress=False, input_scale=1.0)
    assert values[-1] == pytest.approx(final, abs=1e-12)
    # Each epoch's value is the accuracy of that epoch's weights.
    assert values == pytest.approx([after.accuracies[0], after.accuracies[1]], abs=1e-12)
    # Callbacks after the monitor see the key; callbacks before it do not (list order).
    assert [after.logs[e]["val_knn_accuracy"] for e in (0, 1)] == values
    assert all("val_knn_accuracy" not in before.logs[e] for e in (0, 1))


def test_monitor_every_two_skips_epochs_but_not_the_last():
    memory, queries = labelled_points(30, seed=5), labelled_points(12, seed=6)
    monitor = KNNMonitor(
        memory, queries, k=3, every=2, log_name="knn_top1", verbose=0, input_scale=1.0
    )
    recorder = Recorder(memory, queries, k=3)
    history = fit(tiny_model(), [monitor, recorder], epochs=5)
    evaluated = [e for e in range(5) if "knn_top1" in recorder.logs[e]]
    assert evaluated == [1, 3, 4]  # epochs 2 and 4, and 5 because it is the last
    assert len(history.history["knn_top1"]) == 3
    for epoch in evaluated:
        assert recorder.logs[epoch]["knn_top1"] == pytest.approx(
            recorder.accuracies[epoch], abs=1e-12
        )


def test_monitor_accepts_datasets_and_drives_early_stopping(capsys):
    memory_images, memory_labels = labelled_points(30, seed=7)
    query_images, query_labels = labelled_points(12, seed=8)
    memory = tf.data.Dataset.from_tensor_slices((memory_images, memory_labels))
    queries = tf.data.Dataset.from_tensor_slices((query_images, query_labels)).batch(5)
    monitor = KNNMonitor(memory, queries, k=4, batch_size=7, verbose=1, input_scale=1.0)
    # An EarlyStopping after the monitor sees its key (a missing key would warn instead).
    stopping = keras.callbacks.EarlyStopping(monitor="val_knn_accuracy", mode="max", patience=5)
    with no_warning_about("val_knn_accuracy"):
        history = fit(tiny_model(), [monitor, stopping], epochs=2)
    assert len(history.history["val_knn_accuracy"]) == 2
    assert "Epoch 2: val_knn_accuracy = " in capsys.readouterr().out


def test_monitor_rejects_rank_4_model_output():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 1)])
    model.compile(optimizer="sgd", loss="mse")
    images, labels = labelled_points(8, seed=9)
    monitor = KNNMonitor((images, labels), (images, labels), k=2, verbose=0, input_scale=1.0)
    with pytest.raises(ValueError, match=r"`encoder` must map .* rank-2.*\(8, 4, 4, 2\)"):
        model.fit(images, np.zeros((8, 4, 4, 2)), epochs=1, callbacks=[monitor], verbose=0)


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        ({"k": 0}, ValueError, "`k` must be .*>= 1.*Received: k=0"),
        ({"temperature": 0}, ValueError, "`temperature` must be .* > 0.*temperature=0"),
        ({"every": 0}, ValueError, "`every` must be >= 1.*Received: every=0"),
        ({"every": 1.5}, TypeError, "`every` must be an int"),
        ({"batch_size": 0}, ValueError, "Received: batch_size=0"),
        ({"log_name": ""}, ValueError, "`log_name` must be a non-empty string"),
        ({"verbose": 3}, ValueError, "`verbose` must be 0, 1 or 2.*verbose=3"),
        ({"memory_data": np.zeros((3, 4))}, TypeError, "`memory_data` must be a tuple"),
        ({"query_data": (np.zeros((3, 4)), np.arange(2))}, ValueError, "len\\(labels\\)=2"),
    ],
)
def test_monitor_rejects_bad_arguments(overrides, error, match):
    data = (np.zeros((3, 4)), np.arange(3))
    arguments = {"memory_data": data, "query_data": data}
    arguments.update(overrides)
    with pytest.raises(error, match=match):
        KNNMonitor(**arguments)
