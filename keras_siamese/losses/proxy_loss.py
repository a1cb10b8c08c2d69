"""`ProxyLoss`: the base of the proxy losses, which score embeddings against class proxies.

`ArcFaceLoss`, `SubCenterArcFaceLoss`, `CosFaceLoss`, `ProxyAnchorLoss` and `ProxyNCALoss`
each wrap two pure functions: `loss(embeddings, labels, proxies, **hyperparameters)` and
`loss_from_cosines(cosines, labels, **hyperparameters)` (`arcface`, `arcface_from_cosines`,
...). What the wrapping adds is the same for all five and lives here: `num_classes` (checked
first), the Keras `call` on the cosines of `keras_siamese.proxies.ClassProxies` (`y_pred`
with `num_classes * proxies_per_class` columns), `compute` on the embeddings and the proxies
(no cross-batch memory) and a config of `num_classes` and every hyperparameter. A subclass
names its functions and checks its hyperparameters.
"""

from __future__ import annotations

import tensorflow as tf

from keras_siamese import proxies as class_proxies
from keras_siamese import validation
from keras_siamese.losses.metric_loss import MetricLoss


class ProxyLoss(MetricLoss):
    """The base of the proxy losses: a proxy-loss function and its settings as a `MetricLoss`.

    `y_true` holds the integer labels `(batch,)` (or `(batch, 1)`) and `y_pred` the cosine
    similarities of the embeddings to the proxies, `(batch, num_classes * proxies_per_class)`:
    the output of `keras_siamese.proxies.ClassProxies`, which owns the proxies; the value is
    `cosine_function(y_pred, labels, **hyperparameters)`. `compute(embeddings, labels,
    proxies=proxies)` takes the embeddings instead and gives `proxy_function(embeddings,
    labels, proxies, **hyperparameters)`.

    A subclass sets `proxy_function` and `cosine_function` (each a `staticmethod`), overrides
    `check_hyperparameters` with its keyword arguments, and passes them from its `__init__`;
    each becomes an attribute and an entry of the config, after `num_classes`. `num_classes`
    is checked first, then the hyperparameters.

    Args:
        num_classes: the number of classes (>= 1).
        hyperparameters: the subclass's hyperparameters by name (unchecked; the keyword
            arguments of its functions).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default leaves it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for `num_classes` < 1, the errors of `check_hyperparameters`; at call time
            for `y_pred` without `num_classes * proxies_per_class` columns, labels out of
            range, or the shape errors of the functions.
        TypeError: for a non-integer `num_classes`, the errors of `check_hyperparameters`.

    Example:
        >>> from keras_siamese.losses.proxy_nca import proxy_nca, proxy_nca_from_cosines
        >>> class ScaledProxyNCALoss(ProxyLoss):
        ...     proxy_function = staticmethod(proxy_nca)
        ...     cosine_function = staticmethod(proxy_nca_from_cosines)
        ...
        ...     def __init__(self, num_classes, softmax_scale=4.0, name="scaled_proxy_nca"):
        ...         super().__init__(num_classes, {"softmax_scale": softmax_scale}, name=name)
        >>> loss_fn = ScaledProxyNCALoss(2)
        >>> float(loss_fn(np.array([0, 1]), np.eye(2, dtype="float32"))) < 0.01
        True
    """

    uses_proxies = True

    def __init__(
        self,
        num_classes: int,
        hyperparameters: dict,
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        num_classes = validation.check_integer("num_classes", num_classes)
        hyperparameters = self.check_hyperparameters(**hyperparameters)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.num_classes = num_classes
        self._set_hyperparameters(hyperparameters)

    @staticmethod
    def proxy_function(embeddings, labels, proxies, **hyperparameters):
        """The loss of embeddings against proxies (a subclass's function, e.g. `arcface`)."""
        raise NotImplementedError("A ProxyLoss subclass must set `proxy_function`.")

    @staticmethod
    def cosine_function(cosines, labels, **hyperparameters):
        """The loss of precomputed cosines (a subclass's, e.g. `arcface_from_cosines`)."""
        raise NotImplementedError("A ProxyLoss subclass must set `cosine_function`.")

    def call(self, y_true, y_pred):
        labels = class_proxies.check_loss_inputs(self, y_true, y_pred)
        return self.cosine_function(y_pred, labels, **self.hyperparameters)

    def compute(self, embeddings, labels, proxies=None, memory=None) -> tf.Tensor:
        """The loss of `embeddings` against the class proxies `proxies` (`proxy_function`)."""
        class_proxies.check_loss_arguments(self, proxies, memory, "proxies")
        return self.proxy_function(embeddings, labels, proxies, **self.hyperparameters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                **self.hyperparameters,
                "dtype": self._dtype_policy.name,
            }
        )
        return config
