"""The LARS optimizer and the warmup + cosine learning-rate schedule of SimCLR.

SimCLR (Chen et al., 2020, https://arxiv.org/abs/2002.05709, Sec. B.1) trains with LARS,
momentum 0.9, weight decay 1e-6 and a learning rate scaled with the batch size
(`0.075 * sqrt(batch_size)` or `0.3 * batch_size / 256`), warmed up linearly for 10 epochs
and then decayed with a cosine schedule without restarts.

SimSiam (Chen & He, 2021, https://arxiv.org/abs/2011.10566, Sec. 4 and appendix) trains
with SGD, momentum 0.9, weight decay 5e-4 (CIFAR) and `0.03 * batch_size / 256` with
cosine decay, except for the predictor whose rate stays fixed: `SplitOptimizer` gives a
model's predictor its own optimizer, `simsiam_optimizer` builds that recipe.
"""

from __future__ import annotations

import math
import numbers

import keras
from keras import ops

DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY = ("bias", "batch_norm", "gamma", "beta")
SCALINGS = {"sqrt": 0.075, "linear": 0.3}


def _check_number(name: str, value, minimum: float, inclusive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `{name}` must be a number. Received: {name}={value!r} of type "
            f"{type(value).__name__}"
        )
    if value < minimum or (not inclusive and value == minimum):
        relation = ">=" if inclusive else ">"
        raise ValueError(
            f"Argument `{name}` must be {relation} {minimum}. Received: {name}={value}"
        )
    return float(value)


def _check_integer(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"Argument `{name}` must be an integer. Received: {name}={value!r} of type "
            f"{type(value).__name__}"
        )
    if value < minimum:
        raise ValueError(f"Argument `{name}` must be >= {minimum}. Received: {name}={value}")
    return int(value)


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
        momentum = _check_number("momentum", momentum, 0.0)
        if momentum >= 1:
            raise ValueError(f"Argument `momentum` must be < 1. Received: momentum={momentum}")
        weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        trust_coefficient = _check_number(
            "trust_coefficient", trust_coefficient, 0.0, inclusive=False
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


@keras.saving.register_keras_serializable(package="keras_siamese")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to a peak, then cosine decay to a final rate.

    The schedule of SimCLR (Chen et al., 2020, Sec. B.1: "linear warmup for the first 10
    epochs, and decay the learning rate with the cosine decay schedule without
    restarts"). At step `t`:

    ```
    t < warmup_steps:  peak * t / warmup_steps
    otherwise:         final + (peak - final) * (1 + cos(pi * p)) / 2,
                       p = min(1, (t - warmup_steps) / (total_steps - warmup_steps))
    ```

    so the rate reaches `peak_learning_rate` at `warmup_steps` and `final_learning_rate`
    at `total_steps`, where it stays.

    Args:
        peak_learning_rate: the rate at the end of the warmup (> 0).
        total_steps: the step at which the rate reaches `final_learning_rate`.
        warmup_steps: length of the linear warmup (0 starts at the peak);
            `0 <= warmup_steps < total_steps`.
        final_learning_rate: the rate at and after `total_steps`, in
            `[0, peak_learning_rate]`.

    Raises:
        ValueError: if the steps or rates are out of range.
        TypeError: if a step count is not an integer or a rate not a number.

    Example:
        >>> schedule = WarmupCosine(1.0, total_steps=100, warmup_steps=10)
        >>> round(float(schedule(5)), 3), round(float(schedule(10)), 3)
        (0.5, 1.0)
    """

    def __init__(
        self,
        peak_learning_rate: float,
        total_steps: int,
        warmup_steps: int = 0,
        final_learning_rate: float = 0.0,
    ):
        peak_learning_rate = _check_number(
            "peak_learning_rate", peak_learning_rate, 0.0, inclusive=False
        )
        total_steps = _check_integer("total_steps", total_steps, 1)
        warmup_steps = _check_integer("warmup_steps", warmup_steps, 0)
        if warmup_steps >= total_steps:
            raise ValueError(
                "Argument `warmup_steps` must be smaller than `total_steps`. Received: "
                f"warmup_steps={warmup_steps}, total_steps={total_steps}"
            )
        final_learning_rate = _check_number("final_learning_rate", final_learning_rate, 0.0)
        if final_learning_rate > peak_learning_rate:
            raise ValueError(
                "Argument `final_learning_rate` must not exceed `peak_learning_rate`. "
                f"Received: final_learning_rate={final_learning_rate}, "
                f"peak_learning_rate={peak_learning_rate}"
            )
        self.peak_learning_rate = peak_learning_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.final_learning_rate = final_learning_rate

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        final = self.final_learning_rate
        warmup = float(self.warmup_steps)
        if self.warmup_steps > 0:
            warming = peak * step / warmup
        else:
            warming = ops.full_like(step, peak)
        progress = ops.clip((step - warmup) / (self.total_steps - warmup), 0.0, 1.0)
        decaying = final + (peak - final) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < warmup, warming, decaying)

    def get_config(self) -> dict:
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "final_learning_rate": self.final_learning_rate,
        }


def simclr_learning_rate(
    batch_size: int,
    steps: int,
    warmup_steps: int,
    scaling: str = "sqrt",
    base_learning_rate: float | None = None,
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Returns SimCLR's learning-rate schedule for a batch size: scaled peak, warmup, cosine.

    Chen et al., 2020 (https://arxiv.org/abs/2002.05709, Sec. B.1 and Appendix B.1):
    the peak rate is `base * sqrt(batch_size)` with base 0.075 (`scaling="sqrt"`, better
    for small batches and long training) or `base * batch_size / 256` with base 0.3
    (`scaling="linear"`). It is reached linearly over `warmup_steps` (SimCLR: 10 epochs)
    and decays with a cosine to 0 at `steps`.

    Args:
        batch_size: the global batch size (> 0), over all replicas.
        steps: total number of training steps (> warmup_steps).
        warmup_steps: number of warmup steps (>= 0).
        scaling: `"sqrt"` or `"linear"`.
        base_learning_rate: overrides the base rate of the scaling rule (> 0).

    Returns:
        A `WarmupCosine` schedule, to pass as `learning_rate` to `LARS`.

    Raises:
        ValueError: for a non-positive batch size, `steps <= warmup_steps`, a negative
            `warmup_steps`, an unknown `scaling` or a non-positive base rate.
        TypeError: for a non-integer batch size or step count.

    Example:
        >>> schedule = simclr_learning_rate(batch_size=256, steps=1000, warmup_steps=100)
        >>> round(schedule.peak_learning_rate, 6)
        1.2
    """
    batch_size = _check_integer("batch_size", batch_size, 1)
    steps = _check_integer("steps", steps, 1)
    warmup_steps = _check_integer("warmup_steps", warmup_steps, 0)
    if steps <= warmup_steps:
        raise ValueError(
            "Argument `steps` must be larger than `warmup_steps`. Received: "
            f"steps={steps}, warmup_steps={warmup_steps}"
        )
    if scaling not in SCALINGS:
        raise ValueError(
            f"Argument `scaling` must be one of {sorted(SCALINGS)}. Received: "
            f"scaling={scaling!r}"
        )
    if base_learning_rate is None:
        base_learning_rate = SCALINGS[scaling]
    base_learning_rate = _check_number(
        "base_learning_rate", base_learning_rate, 0.0, inclusive=False
    )
    if scaling == "sqrt":
        peak = base_learning_rate * math.sqrt(batch_size)
    else:
        peak = base_learning_rate * batch_size / 256
    return WarmupCosine(peak, total_steps=steps, warmup_steps=warmup_steps)


# ---------------------------------------------------------------------------------------
# SimSiam: a second optimizer for the predictor
# ---------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_siamese")
class SplitOptimizer(keras.optimizers.Optimizer):
    """Routes some variables to a second optimizer: per-group learning rates for Keras.

    Keras optimizers have one learning rate for all variables. SimSiam (Chen & He 2021,
    section 4.4 and appendix A) keeps the predictor's rate fixed while the rest decays
    ("a fixed learning rate for the predictor works better"): this wrapper sends the
    variables whose `path` contains one of the `route` substrings (for SimSiam,
    `"predictor"`: paths like `"sim_siam/predictor/hidden0/kernel"`) to
    `predictor_optimizer` and all others to `default_optimizer`. Each optimizer keeps its
    own schedule, iteration counter, slots, weight decay and clipping; under a
    `tf.distribute` strategy each all-reduces its own gradients. The match is on the whole
    path: a model or layer whose name contains a route substring sends all its variables.

    As a Keras optimizer: `learning_rate` reads and sets `default_optimizer`'s rate (what
    the progress bar, `TensorBoard`, `LearningRateScheduler` and `ReduceLROnPlateau` see);
    `iterations` counts the wrapper's steps; `loss_scale_factor` is that of both inner
    optimizers (they must agree); `variables` holds the wrapper's and both optimizers'
    variables, so a `.keras` file of a compiled model restores every slot; a
    `LossScaleOptimizer` (mixed precision) can wrap it.

    Args:
        default_optimizer: the optimizer of every variable not routed.
        predictor_optimizer: the optimizer of the routed variables.
        route: substrings of variable paths that select `predictor_optimizer`.
        name: name of the optimizer.

    Raises:
        TypeError: if an optimizer is not a `keras.optimizers.Optimizer` or `route` is
            not a sequence of strings.
        ValueError: if both optimizers are the same object, `route` is empty, the
            optimizers' `loss_scale_factor` differ, or (when built) `route` matches no
            variable.

    Example:
        >>> optimizer = SplitOptimizer(
        ...     keras.optimizers.SGD(WarmupCosine(0.06, total_steps=1000), momentum=0.9),
        ...     keras.optimizers.SGD(0.06, momentum=0.9),
        ...     route=("predictor",),
        ... )
        >>> model.compile(optimizer=optimizer)  # a keras_siamese.SimSiam
    """

    def __init__(
        self,
        default_optimizer: keras.optimizers.Optimizer,
        predictor_optimizer: keras.optimizers.Optimizer,
        route: tuple[str, ...] | list[str] = ("predictor",),
        name: str = "split_optimizer",
    ):
        for argument, value in (
            ("default_optimizer", default_optimizer),
            ("predictor_optimizer", predictor_optimizer),
        ):
            if not isinstance(value, keras.optimizers.Optimizer):
                raise TypeError(
                    f"Argument `{argument}` must be a keras.optimizers.Optimizer instance. "
                    f"Received: {argument}={value!r}"
                )
        if default_optimizer is predictor_optimizer:
            raise ValueError(
                "Arguments `default_optimizer` and `predictor_optimizer` must be two "
                "different optimizer objects (one per variable group). Received the same "
                f"object twice: {default_optimizer!r}"
            )
        if isinstance(route, str) or not all(isinstance(part, str) and part for part in route):
            raise TypeError(
                "Argument `route` must be a list or tuple of non-empty strings (substrings of "
                f"variable paths). Received: route={route!r}"
            )
        if not route:
            raise ValueError(
                "Argument `route` must name at least one substring of variable paths. "
                f"Received: route={route!r}"
            )
        if default_optimizer.loss_scale_factor != predictor_optimizer.loss_scale_factor:
            raise ValueError(
                "Both optimizers must have the same `loss_scale_factor`: the loss is scaled "
                "once and each optimizer unscales its own gradients. Received: "
                f"default_optimizer.loss_scale_factor={default_optimizer.loss_scale_factor}, "
                f"predictor_optimizer.loss_scale_factor={predictor_optimizer.loss_scale_factor}"
            )
        super().__init__(learning_rate=0.0, name=name)
        self.default_optimizer = default_optimizer
        self.predictor_optimizer = predictor_optimizer
        self.route = tuple(route)

    def routes_to_predictor(self, variable) -> bool:
        """Returns True if `variable` (by its path, else its name) goes to the predictor's."""
        name = str(getattr(variable, "path", None) or variable.name)
        return any(part in name for part in self.route)

    def _split(self, values, variables):
        groups = ([], [], [], [])
        for value, variable in zip(values, variables, strict=True):
            offset = 2 if self.routes_to_predictor(variable) else 0
            groups[offset].append(value)
            groups[offset + 1].append(variable)
        return groups

    def build(self, variables):
        """Builds both optimizers, each on its group of `variables`."""
        if self.built:
            return
        variables = list(variables)
        _, default_variables, _, predictor_variables = self._split(variables, variables)
        if variables and not predictor_variables:
            paths = [str(getattr(v, "path", None) or v.name) for v in variables[:4]]
            raise ValueError(
                f"Argument `route`={self.route} of {self.name} matches none of the "
                f"{len(variables)} variables (paths like {paths}): the predictor "
                "optimizer would train nothing. Check the predictor layer's name."
            )
        self.default_optimizer.build(default_variables)
        self.predictor_optimizer.build(predictor_variables)
        super().build(variables)

    @property
    def variables(self):
        return (
            self._variables[:]
            + self.default_optimizer.variables
            + self.predictor_optimizer.variables
        )

    @property
    def learning_rate(self):
        return self.default_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.default_optimizer.learning_rate = learning_rate

    @property
    def loss_scale_factor(self):
        inner = getattr(self, "default_optimizer", None)
        return None if inner is None else inner.loss_scale_factor

    @loss_scale_factor.setter
    def loss_scale_factor(self, value):
        # The base class sets it to None before the inner optimizers exist.
        if getattr(self, "default_optimizer", None) is not None:
            self.default_optimizer.loss_scale_factor = value
            self.predictor_optimizer.loss_scale_factor = value

    def apply(self, grads, trainable_variables=None):
        """Applies each group of gradients with its optimizer and counts one step."""
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `trainable_variables`, the optimizer must "
                    "already be built: call `optimizer.build(trainable_variables)` first."
                )
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
        default_grads, default_variables, predictor_grads, predictor_variables = self._split(
            list(grads), trainable_variables
        )
        self.default_optimizer.apply(default_grads, default_variables)
        self.predictor_optimizer.apply(predictor_grads, predictor_variables)
        self._iterations.assign_add(1)

    def finalize_variable_values(self, var_list):
        _, default_variables, _, predictor_variables = self._split(var_list, var_list)
        self.default_optimizer.finalize_variable_values(default_variables)
        self.predictor_optimizer.finalize_variable_values(predictor_variables)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "default_optimizer": keras.saving.serialize_keras_object(self.default_optimizer),
            "predictor_optimizer": keras.saving.serialize_keras_object(
                self.predictor_optimizer
            ),
            "route": list(self.route),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("default_optimizer", "predictor_optimizer"):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects
            )
        return cls(**config)


def simsiam_optimizer(
    batch_size: int,
    steps: int,
    base_learning_rate: float = 0.03,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    fixed_predictor_learning_rate: bool = True,
    warmup_steps: int = 0,
) -> keras.optimizers.Optimizer:
    """Returns SimSiam's CIFAR recipe: SGD, linear-scaled rate, cosine decay, fixed predictor.

    Chen & He, 2021 (https://arxiv.org/abs/2011.10566, appendix D, CIFAR): SGD with
    momentum 0.9, weight decay 5e-4 and a rate `base_learning_rate * batch_size / 256`
    (base 0.03) decayed with a cosine to 0 at `steps`, and (section 4.4, their code's
    `--fix-pred-lr`) the predictor trained at the undecayed rate.

    The paper's (PyTorch) weight decay is added to the gradient and so accumulates
    through the momentum; Keras' `SGD(weight_decay=...)` is decoupled
    (`w -= lr * decay * w` each step). To give the same shrinkage per step, the Keras
    decay is `weight_decay / (1 - momentum)` (5e-3 for the defaults).

    Args:
        batch_size: the global batch size (> 0), over all replicas.
        steps: total number of training steps (> warmup_steps).
        base_learning_rate: the rate for a batch of 256 (> 0).
        momentum: SGD momentum in [0, 1).
        weight_decay: the paper's (coupled) weight decay, >= 0.
        fixed_predictor_learning_rate: give the predictor its own optimizer at the
            constant peak rate (a `SplitOptimizer` routing `"predictor"`); False returns
            one `SGD` for all variables.
        warmup_steps: linear warmup of the decayed rate (the paper uses none at
            batch 512; useful at high rates).

    Returns:
        A `SplitOptimizer` of two `keras.optimizers.SGD` (or one `SGD`).

    Raises:
        ValueError: for values out of range.
        TypeError: for non-numeric arguments.

    Example:
        >>> optimizer = simsiam_optimizer(batch_size=512, steps=800 * 97)
        >>> round(float(optimizer.predictor_optimizer.learning_rate), 4)
        0.06
    """
    batch_size = _check_integer("batch_size", batch_size, 1)
    steps = _check_integer("steps", steps, 1)
    warmup_steps = _check_integer("warmup_steps", warmup_steps, 0)
    base_learning_rate = _check_number(
        "base_learning_rate", base_learning_rate, 0.0, inclusive=False
    )
    momentum = _check_number("momentum", momentum, 0.0)
    if momentum >= 1:
        raise ValueError(f"Argument `momentum` must be < 1. Received: momentum={momentum}")
    weight_decay = _check_number("weight_decay", weight_decay, 0.0)
    if not isinstance(fixed_predictor_learning_rate, bool):
        raise TypeError(
            "Argument `fixed_predictor_learning_rate` must be a bool. Received: "
            f"fixed_predictor_learning_rate={fixed_predictor_learning_rate!r}"
        )
    peak = base_learning_rate * batch_size / 256
    schedule = WarmupCosine(peak, total_steps=steps, warmup_steps=warmup_steps)
    decay = weight_decay / (1.0 - momentum) if weight_decay > 0 else None
    default = keras.optimizers.SGD(schedule, momentum=momentum, weight_decay=decay, name="sgd")
    if not fixed_predictor_learning_rate:
        return default
    predictor = keras.optimizers.SGD(
        peak, momentum=momentum, weight_decay=decay, name="predictor_sgd"
    )
    return SplitOptimizer(default, predictor, route=("predictor",))
