"""Momentum targets: the moving-average update shared by BYOL, MoCo and DINO.

A momentum method trains an online network by gradients and regresses (BYOL), contrasts
(MoCo) or distils (DINO) against a target network whose weights are an exponential moving
average of the online weights, `target <- m * target + (1 - m) * online`, applied after
every optimizer step. The momentum `m` rises from its base value to 1 with a cosine
schedule over training (BYOL, section 3.1; MoCo v3 and DINO do the same).

- `cosine_momentum`: the schedule, a pure function.
- `MomentumUpdate`: a layer holding the schedule and its step counter (saved with the
  model, so a reloaded or resumed model continues the schedule), and the update itself.
- `MomentumModel`: the `TwoViewModel` base of the three methods: the target encoder, the
  update after each optimizer step, and the schedule's length taken from `fit`.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.models.two_view_model import TwoViewModel


def cosine_momentum(step, total_steps, momentum: float, final_momentum: float = 1.0):
    """The momentum at `step`: `momentum` at step 0, `final_momentum` from `total_steps` on.

    BYOL (Grill et al. 2020, https://arxiv.org/abs/2006.07733, section 3.1): "the
    exponential moving average parameter tau starts from tau_base = 0.996 and is increased
    to one during training", with `tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2` at
    step `k` of `K`. Here the end value is `final_momentum` (1 in the papers); with
    `total_steps` 0 the momentum stays at `momentum`.

    Args:
        step: the number of updates done so far (a scalar, tensor or int).
        total_steps: the length `K` of the schedule; 0 for a constant momentum.
        momentum: the base momentum.
        final_momentum: the momentum at the end of the schedule.

    Returns:
        A float32 scalar tensor.

    Example:
        >>> float(cosine_momentum(50, 100, 0.99))
        0.995
    """
    step = tf.cast(step, tf.float32)
    total = tf.cast(total_steps, tf.float32)
    progress = tf.where(total > 0, tf.minimum(step / tf.maximum(total, 1.0), 1.0), 0.0)
    base = tf.constant(momentum, tf.float32)
    final = tf.constant(final_momentum, tf.float32)
    return final - (final - base) * (tf.cos(math.pi * progress) + 1.0) / 2.0


def steps_of_fit(x, batch_size=None, epochs: int = 1, steps_per_epoch=None) -> int | None:
    """How many optimizer steps `fit(x, batch_size=..., epochs=...)` runs, or None if unknown.

    Example:
        >>> steps_of_fit(np.zeros((100, 8, 8, 1)), batch_size=32, epochs=3)
        12
    """
    if steps_per_epoch is not None:
        return int(epochs) * int(steps_per_epoch)
    if isinstance(x, tf.data.Dataset):
        cardinality = int(x.cardinality())
        return int(epochs) * cardinality if cardinality >= 0 else None
    if isinstance(x, (tuple, list)) and x and hasattr(x[0], "shape"):
        x = x[0]
    if isinstance(x, (np.ndarray, tf.Tensor)) and x.shape[0] is not None:
        return int(epochs) * math.ceil(int(x.shape[0]) / (batch_size or 32))
    batches = getattr(x, "num_batches", None)  # a keras.utils.PyDataset
    return int(epochs) * int(batches) if isinstance(batches, int) else None


def _paired_weights(online: keras.layers.Layer, target: keras.layers.Layer) -> list:
    """`(online_weight, target_weight)` pairs of two layers of one architecture."""
    online_weights, target_weights = online.weights, target.weights
    shapes = [tuple(w.shape) for w in online_weights], [tuple(w.shape) for w in target_weights]
    if shapes[0] != shapes[1]:
        raise ValueError(
            f"The target {target.name!r} must have the architecture of {online.name!r} (a "
            f"copy). Received: weight shapes {shapes[1]} for the target and {shapes[0]} "
            "for the online network"
        )
    return list(zip(online_weights, target_weights, strict=True))


@keras.saving.register_keras_serializable(package="keras_siamese")
class MomentumUpdate(keras.layers.Layer):
    """The exponential moving average of online weights into target weights.

    `update(pairs)` sets every target weight to `m * target + (1 - m) * online` for the
    online network's trainable weights (kernels, biases, BatchNorm scales and offsets; a
    target's BatchNorm statistics follow its own forward passes, as in BYOL's and lightly's
    code), with `m = cosine_momentum(step, total_steps, momentum, final_momentum)` at the
    current step, then counts the step. Under `tf.distribute` every replica applies the
    same update to its copy: the online weights are equal after the optimizer's step, so
    no communication is needed. The step counter and the schedule's length are
    non-trainable variables, saved in `.keras` files and by `BackupAndRestore`.

    Args:
        momentum: the base momentum, in [0, 1).
        final_momentum: the momentum at the end of the schedule, in [momentum, 1].
        total_steps: the schedule's length; None (default) to set it later with
            `schedule` (the models do at the first `fit`). Until set, the momentum stays
            at `momentum`.

    Raises:
        ValueError: for momenta outside those ranges or `total_steps` < 1.

    Example:
        >>> update = MomentumUpdate(momentum=0.99, total_steps=100)
        >>> update.start([(online_head, target_head)])
        >>> update.update([(online_head, target_head)])  # after each optimizer step
    """

    def __init__(
        self,
        momentum: float = 0.996,
        final_momentum: float = 1.0,
        total_steps: int | None = None,
        **kwargs,
    ):
        momentum = validation.check_number("momentum", momentum, 0.0, 1.0, include_maximum=False)
        final_momentum = validation.check_number("final_momentum", final_momentum, momentum, 1.0)
        if total_steps is not None:
            total_steps = validation.check_integer("total_steps", total_steps)
        super().__init__(**kwargs)
        self.momentum = momentum
        self.final_momentum = final_momentum
        self.total_steps = total_steps

    def build(self, input_shape=None):
        self.step = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False, name="step"
        )
        self.schedule_steps = self.add_weight(
            shape=(),
            dtype="int64",
            initializer=keras.initializers.Constant(self.total_steps or 0),
            trainable=False,
            name="schedule_steps",
        )

    def schedule(self, total_steps: int | None) -> None:
        """Sets the schedule's length if the constructor left it to `fit` and it is not set yet.

        A resumed or reloaded model keeps the length it was first given.
        """
        if self.total_steps is None and total_steps and int(self.schedule_steps.numpy()) == 0:
            self.schedule_steps.assign(int(total_steps))

    def current_momentum(self) -> tf.Tensor:
        """The momentum the next `update` uses (float32 scalar)."""
        return cosine_momentum(self.step, self.schedule_steps, self.momentum, self.final_momentum)

    def start(self, pairs) -> None:
        """Copies each online layer's weights into its target and freezes the target's weights.

        Args:
            pairs: `(online_layer, target_layer)` pairs of the same architecture.
        """
        for online, target in pairs:
            for source, destination in _paired_weights(online, target):
                destination.assign(source)
                destination.trainable = False

    def update(self, pairs) -> None:
        """One moving-average step of every target, then the step counter.

        Args:
            pairs: `(online_layer, target_layer)` pairs, as given to `start`.
        """
        momentum = self.current_momentum()
        for online, target in pairs:
            for source, destination in _paired_weights(online, target):
                if not source.trainable:
                    continue
                m = tf.cast(momentum, destination.dtype)
                destination.assign(m * destination + (1.0 - m) * tf.cast(source, m.dtype))
        self.step.assign_add(1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "final_momentum": self.final_momentum,
                "total_steps": self.total_steps,
            }
        )
        return config


def clone_layer(layer: keras.layers.Layer, name: str) -> keras.layers.Layer:
    """A new layer of the same architecture as `layer`, with fresh weights.

    Models (encoders) are cloned with `keras.models.clone_model` and keep their name; other
    layers (heads) are rebuilt from their config and named `name`.
    """
    if isinstance(layer, keras.Model):
        return keras.models.clone_model(layer)
    return type(layer).from_config({**layer.get_config(), "name": name})


class MomentumModel(TwoViewModel):
    """Base class of the methods with a momentum target: BYOL, MoCo and DINO.

    The constructor clones the encoder into `target_encoder`; a method adds its heads and
    their targets, lists the pairs in `target_pairs()`, creates its weights in
    `build_heads()` and computes its loss in `loss_on_views`. This base builds the heads,
    copies the online weights into the targets (which are never trained by gradients: their
    weights are not trainable), runs `MomentumUpdate.update` after every optimizer step
    (`after_optimizer_step`), and gives the momentum schedule the length of the first `fit`
    (epochs x steps per epoch) unless `momentum_steps` fixes it.

    Args:
        encoder: `keras.Model` from float images in [0, 1] to features.
        augmenter: view augmentation (see `TwoViewModel`).
        momentum: the base momentum of the moving average.
        final_momentum: the momentum at the end of training (1: the target freezes).
        momentum_steps: the length of the cosine schedule in optimizer steps; None for
            the number of steps of the first `fit` (a constant momentum if `fit` cannot
            tell, e.g. for an infinite dataset without `steps_per_epoch`).
        sync_batch_norm: global BatchNorm: `"auto"`, True or False.
        **kwargs: `keras.Model` arguments.
    """

    def __init__(
        self,
        encoder: keras.Model,
        augmenter=None,
        momentum: float = 0.996,
        final_momentum: float = 1.0,
        momentum_steps: int | None = None,
        sync_batch_norm: bool | str = "auto",
        **kwargs,
    ):
        momentum_update = MomentumUpdate(
            momentum, final_momentum, momentum_steps, name="momentum_update"
        )
        super().__init__(encoder, augmenter, sync_batch_norm=sync_batch_norm, **kwargs)
        self.momentum = momentum_update.momentum
        self.final_momentum = momentum_update.final_momentum
        self.momentum_steps = momentum_update.total_steps
        self.momentum_update = momentum_update
        self.target_encoder = clone_layer(self.encoder, f"target_{self.encoder.name}")

    # ----------------------------------------------------------------- the method's part

    def target_pairs(self) -> list:
        """`(online_layer, target_layer)` pairs that the moving average updates."""
        return [(self.encoder, self.target_encoder)]

    def build_heads(self) -> None:
        """Creates the weights of the heads, their targets and any state (zero inputs)."""

    # ----------------------------------------------------------------- shared steps

    def build(self, input_shape=None):
        """Builds the heads and the momentum state, then copies the online weights into
        the targets. Building again does nothing."""
        if self.built:
            return
        self.momentum_update.build()
        self.build_heads()
        self.momentum_update.start(self.target_pairs())
        self.built = True

    def encode_targets(self, views, training: bool) -> tf.Tensor:
        """The target encoder's features of the concatenated `views` (one pass, one size).

        The target runs in the step's mode, so its BatchNorm normalises with the batch's
        statistics in training, as in BYOL's, MoCo's and DINO's code; its output is a
        constant of the loss (`tf.stop_gradient`).
        """
        views = [self._at_encoder_size(view) for view in views]
        batch = views[0] if len(views) == 1 else tf.concat(views, axis=0)
        return tf.stop_gradient(self.target_encoder(batch, training=training))

    def after_optimizer_step(self):
        self.momentum_update.update(self.target_pairs())

    def fit(self, x=None, y=None, batch_size=None, validation_data=None, **kwargs):
        self.momentum_update.schedule(
            steps_of_fit(x, batch_size, kwargs.get("epochs", 1), kwargs.get("steps_per_epoch"))
        )
        return super().fit(x, y, batch_size=batch_size, validation_data=validation_data, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "final_momentum": self.final_momentum,
                "momentum_steps": self.momentum_steps,
            }
        )
        return config
