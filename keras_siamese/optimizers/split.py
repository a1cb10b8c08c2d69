"""`SplitOptimizer`: a second optimizer for some variables (SimSiam's fixed-rate predictor)."""

from __future__ import annotations

import keras


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
