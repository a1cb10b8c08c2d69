"""LARS, the layer-wise adaptive rate scaling optimizer SimCLR trains with."""

from __future__ import annotations

import keras
from keras import ops

from keras_siamese import validation

DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY = ("bias", "batch_norm", "gamma", "beta")


@keras.saving.register_keras_serializable(package="keras_siamese")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Rate Scaling: momentum SGD with a per-variable trust ratio.

    From You, Gitman and Ginsburg, 2017, "Large Batch Training of Convolutional Networks"
    (https://arxiv.org/abs/1708.03888), in the form SimCLR trains with (Chen et al., 2020,
    Sec. B.1; google-research/simclr's `LARSOptimizer` with classic momentum). For a
    variable `w` with gradient `g`:

    ```
    g = g + weight_decay * w
    trust_ratio = trust_coefficient * ||w|| / ||g||   (1 if either norm is 0)
    v = momentum * v + learning_rate * trust_ratio * g
    w = w - v            # nesterov: w = w - (momentum * v + learning_rate * trust_ratio * g)
    ```

    A variable whose `path` or `name` contains one of the substrings in
    `exclude_from_weight_decay` gets neither weight decay nor the trust ratio: it is
    updated by plain momentum SGD (`v = momentum * v + learning_rate * g; w = w - v`).
    The defaults exclude biases and BatchNormalization's `gamma` and `beta` (paths like
    `"encoder/batch_normalization/gamma"`), as SimCLR does. The match is on the whole
    path, as in SimCLR (whose `"head_supervised"` excludes a whole head): a layer or
    model whose name contains an excluded substring (say a model named `"beta_vae"`)
    excludes all its variables. Variables excluded with Keras'
    `optimizer.exclude_from_weight_decay(var_list=..., var_names=...)` are excluded too.

    The weight decay is LARS' own, added to the gradient before the trust ratio; Keras'
    decoupled weight decay of the base optimizer is never applied on top of it (the
    `weight_decay` of `get_config` is this coupled decay).

    Args:
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`
            (e.g. `simclr_learning_rate(...)`). The default 0.3 is SimCLR's rate for a
            batch of 256 with linear scaling.
        momentum: momentum coefficient in [0, 1).
        weight_decay: L2 coefficient (>= 0) added to the gradient of non-excluded
            variables. SimCLR uses 1e-6.
        trust_coefficient: the LARS `eta` (> 0) multiplying `||w|| / ||g||`.
        exclude_from_weight_decay: substrings of variable paths or names excluded from
            weight decay and from the trust ratio. `None` or `()` excludes nothing.
        nesterov: whether to use Nesterov momentum.
        name: name of the optimizer.
        **kwargs: the other arguments of `keras.optimizers.Optimizer` (`clipnorm`,
            `global_clipnorm`, `use_ema`, `loss_scale_factor`,
            `gradient_accumulation_steps`, ...).

    Raises:
        ValueError: for a momentum outside [0, 1), a negative weight decay or a
            non-positive trust coefficient.
        TypeError: for a non-numeric hyperparameter, a non-bool `nesterov`, or
            `exclude_from_weight_decay` that is not a sequence of strings.

    Example:
        >>> import numpy as np
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> optimizer = LARS(learning_rate=0.1, weight_decay=1e-6)
        >>> model.compile(optimizer=optimizer, loss="mse")
        >>> model.fit(np.ones((8, 4)), np.zeros((8, 2)), verbose=0).history["loss"][0] >= 0
        True
    """

    def __init__(
        self,
        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 0.3,
        momentum: float = 0.9,
        weight_decay: float = 1e-6,
        trust_coefficient: float = 0.001,
        exclude_from_weight_decay: tuple[str, ...] | list[str] | None = (
            DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY
        ),
        nesterov: bool = False,
        name: str = "lars",
        **kwargs,
    ):
        momentum = validation.check_number("momentum", momentum, 0.0, 1.0, include_maximum=False)
        weight_decay = validation.check_number("weight_decay", weight_decay, 0.0)
        trust_coefficient = validation.check_number(
            "trust_coefficient", trust_coefficient, 0.0, include_minimum=False
        )
        if exclude_from_weight_decay is None:
            exclude_from_weight_decay = ()
        if isinstance(exclude_from_weight_decay, str) or not all(
            isinstance(part, str) for part in exclude_from_weight_decay
        ):
            raise TypeError(
                "Argument `exclude_from_weight_decay` must be a list or tuple of strings "
                "(substrings of variable paths or names). Received: "
                f"exclude_from_weight_decay={exclude_from_weight_decay!r}"
            )
        if not isinstance(nesterov, bool):
            raise TypeError(
                f"Argument `nesterov` must be a bool. Received: nesterov={nesterov!r}"
            )
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = momentum
        # The base class reads `self.weight_decay` in `_apply_weight_decay`, which this
        # class overrides to do nothing: the decay is applied once, in `update_step`.
        self.weight_decay = weight_decay
        self.trust_coefficient = trust_coefficient
        # Not `self.exclude_from_weight_decay`: that name is a method of the base class.
        self.excluded_name_substrings = tuple(exclude_from_weight_decay)
        self.nesterov = nesterov

    def build(self, variables):
        """Creates one momentum slot per variable."""
        if self.built:
            return
        super().build(variables)
        self.velocities = [
            self.add_variable_from_reference(variable, name="velocity")
            for variable in variables
        ]

    def _apply_weight_decay(self, variables):
        # LARS couples its weight decay with the gradient (see `update_step`); the base
        # class' decoupled decay would apply it a second time.
        return

    def adapts(self, variable) -> bool:
        """Returns True if `variable` gets weight decay and the trust ratio.

        Args:
            variable: a variable the optimizer was built with (the Keras variable or,
                inside `update_step`, its TensorFlow variable).

        Returns:
            False if the variable's path or name contains one of the excluded
            substrings or if it was excluded with `exclude_from_weight_decay()`.
        """
        if self.built and self._var_key(variable) in self._trainable_variables_indices:
            # Inside `update_step` TensorFlow passes the tf.Variable, which has no `path`.
            variable = self._trainable_variables[self._get_variable_index(variable)]
        names = (str(getattr(variable, "path", "")), str(variable.name))
        if any(part in name for part in self.excluded_name_substrings for name in names):
            return False
        return self._use_weight_decay(variable)

    def update_step(self, gradient, variable, learning_rate):
        """Applies one LARS update to `variable`."""
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(ops.convert_to_tensor(gradient), dtype)
        velocity = self.velocities[self._get_variable_index(variable)]
        momentum = ops.cast(self.momentum, dtype)

        if self.adapts(variable):
            if self.weight_decay > 0:
                gradient = gradient + ops.cast(self.weight_decay, dtype) * variable
            weight_norm = ops.sqrt(ops.sum(ops.square(variable)))
            gradient_norm = ops.sqrt(ops.sum(ops.square(gradient)))
            ratio = ops.cast(self.trust_coefficient, dtype) * ops.divide_no_nan(
                weight_norm, gradient_norm
            )
            positive = ops.logical_and(weight_norm > 0, gradient_norm > 0)
            learning_rate = learning_rate * ops.where(positive, ratio, ops.ones_like(ratio))

        step = learning_rate * gradient
        new_velocity = momentum * velocity + step
        self.assign(velocity, new_velocity)
        if self.nesterov:
            self.assign_sub(variable, momentum * new_velocity + step)
        else:
            self.assign_sub(variable, new_velocity)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay": self.weight_decay,
                "trust_coefficient": self.trust_coefficient,
                "exclude_from_weight_decay": list(self.excluded_name_substrings),
                "nesterov": self.nesterov,
            }
        )
        return config
