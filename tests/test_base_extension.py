"""A third two-view method in one short class: the base needs nothing more than this.

`MinimalBarlowTwins` below (Zbontar et al. 2021, https://arxiv.org/abs/2103.03230) is the
whole method: its metric names, its head, its loss and its config. Views, the single encoder
pass, train/test steps, trackers, input checks, `call`, export and `.keras` saving all
come from `keras_siamese.models.two_view_model.TwoViewModel`.
"""

import json

import keras
import numpy as np
from conftest import random_images, tiny_encoder
from keras import ops

import keras_siamese as ks
from keras_siamese.models.two_view_model import TwoViewModel, normalized_std


@keras.saving.register_keras_serializable(package="keras_siamese_tests")
class MinimalBarlowTwins(TwoViewModel):
    """Barlow Twins in a few lines (the package's own is `keras_siamese.models.BarlowTwins`).

    Loss: `sum_i (1 - C_ii)^2 + redundancy_weight * sum_{i != j} C_ij^2`, where `C` is
    the cross-correlation matrix of the batch-standardised projections of the two views.
    """

    metric_names = ("on_diagonal", "output_std")

    def __init__(
        self,
        encoder,
        augmenter=None,
        projection_dims=(64, 64),
        redundancy_weight=5e-3,
        **kwargs,
    ):
        if not redundancy_weight >= 0:
            raise ValueError(
                "Argument `redundancy_weight` must be >= 0. "
                f"Received: redundancy_weight={redundancy_weight}"
            )
        super().__init__(encoder, augmenter, **kwargs)
        self.projection_dims = tuple(projection_dims)
        self.redundancy_weight = float(redundancy_weight)
        self.projector = ks.heads.ProjectionHead(self.projection_dims, name="projector")
        self.build((None, *self.image_shape))

    def loss_on_features(self, features_a, features_b, training):
        z_a = self.projector(features_a, training=training)
        z_b = self.projector(features_b, training=training)

        def standardise(z):
            return (z - ops.mean(z, axis=0)) / (ops.std(z, axis=0) + 1e-5)

        batch = ops.cast(ops.shape(z_a)[0], "float32")
        correlation = ops.matmul(ops.transpose(standardise(z_a)), standardise(z_b)) / batch
        diagonal = ops.diagonal(correlation)
        on_diagonal = ops.sum(ops.square(1.0 - diagonal))
        off_diagonal = ops.sum(ops.square(correlation)) - ops.sum(ops.square(diagonal))
        loss = on_diagonal + self.redundancy_weight * off_diagonal
        return loss, {"on_diagonal": on_diagonal, "output_std": normalized_std(z_a)}

    def get_config(self):
        config = super().get_config()
        config.update(
            {"projection_dims": self.projection_dims, "redundancy_weight": self.redundancy_weight}
        )
        return config


def numpy_barlow_twins(z_a, z_b, redundancy_weight):
    def standardise(z):
        return (z - z.mean(axis=0)) / (z.std(axis=0) + 1e-5)

    correlation = standardise(z_a).T @ standardise(z_b) / len(z_a)
    on_diagonal = np.sum((1.0 - np.diag(correlation)) ** 2)
    off_diagonal = np.sum(correlation**2) - np.sum(np.diag(correlation) ** 2)
    return on_diagonal + redundancy_weight * off_diagonal


def test_the_method_defines_only_its_heads_loss_and_config():
    defined = {name for name in vars(MinimalBarlowTwins) if not name.startswith("__")}
    assert defined == {"metric_names", "loss_on_features", "get_config"}


def test_barlow_twins_loss_matches_numpy():
    model = MinimalBarlowTwins(tiny_encoder(), projection_dims=(8, 6))
    rng = np.random.default_rng(0)
    features_a, features_b = rng.normal(size=(2, 16, model.feature_dim)).astype("float32")
    loss, values = model.loss_on_features(features_a, features_b, training=False)
    z_a = model.projector(features_a, training=False).numpy()
    z_b = model.projector(features_b, training=False).numpy()
    np.testing.assert_allclose(float(loss), numpy_barlow_twins(z_a, z_b, 5e-3), rtol=1e-4)
    assert set(values) == {"on_diagonal", "output_std"}


def test_barlow_twins_trains_a_step_and_round_trips_through_keras_file(tmp_path):
    model = MinimalBarlowTwins(tiny_encoder(), projection_dims=(16, 8))
    # Every head variable exists before fit, so the optimizer is built on all of them.
    assert len(model.projector.trainable_variables) == 5
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    images = random_images(16)
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(images, batch_size=8, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "on_diagonal", "output_std"}
    assert np.isfinite(history.history["loss"][0])
    changed = [
        not np.allclose(b, v.numpy())
        for b, v in zip(before, model.trainable_variables, strict=True)
    ]
    encoder_count = len(model.encoder.trainable_variables)
    assert all(changed[:encoder_count]) and any(changed[encoder_count:])

    path = str(tmp_path / "barlow_twins.keras")
    model.save(path)
    restored = keras.saving.load_model(path)  # no custom_objects: the class is registered
    assert isinstance(restored, MinimalBarlowTwins)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    np.testing.assert_allclose(
        model.predict(images, verbose=0), restored.predict(images, verbose=0), atol=1e-5
    )
    assert int(restored.optimizer.iterations) == 2
    restored.fit(images, batch_size=8, epochs=1, verbose=0)  # training resumes
    assert int(restored.optimizer.iterations) == 4

    version_dir = ks.export.export_for_serving(restored, str(tmp_path / "export"))
    served = ks.export.load_for_inference(version_dir).embed(images)
    assert served.shape == (16, restored.feature_dim)


@keras.saving.register_keras_serializable(package="keras_siamese_tests")
class CountingSteps(TwoViewModel):
    """A BYOL-style hook: non-trainable state updated after every optimizer step."""

    def __init__(self, encoder, **kwargs):
        super().__init__(encoder, **kwargs)
        self.projector = keras.layers.Dense(4, name="projector")
        self.steps_seen = keras.Variable(0, dtype="int64", trainable=False, name="steps_seen")
        self.build((None, *self.image_shape))  # after all state is created

    def loss_on_features(self, features_a, features_b, training):
        difference = self.projector(features_a) - self.projector(features_b)
        return ops.mean(ops.square(difference)), {}

    def after_optimizer_step(self):
        self.steps_seen.assign_add(1)


def test_after_optimizer_step_runs_once_per_train_step_and_not_in_evaluate():
    model = CountingSteps(tiny_encoder())
    model.compile(optimizer="sgd")
    model.fit(random_images(24), batch_size=8, epochs=1, verbose=0)
    model.evaluate(random_images(16), batch_size=8, verbose=0)
    assert int(model.steps_seen.numpy()) == 3
