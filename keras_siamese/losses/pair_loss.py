"""`PairLoss`: the base of the pair losses, which score the pairs of a labelled batch.

`MultiSimilarityLoss`, `CircleLoss`, `SupervisedContrastiveLoss` and `BatchContrastiveLoss`
each wrap a pure function `loss(embeddings, labels, **hyperparameters, miner=None,
memory=None)` (`multi_similarity`, `circle`, ...). What the wrapping adds is the same for all
four and lives here: the Keras `call` (labels in `y_true`, embeddings in `y_pred`), `compute`
(a cross-batch memory taken, class proxies refused), the `miner` argument (checked, saved in
the config as a Keras object and restored by `from_config`) and a config of every
hyperparameter. A subclass names its function and checks its hyperparameters.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese.losses.metric_loss import MetricLoss
from keras_siamese.losses.pair_miner import Miner, check_miner


def _check_no_proxies(loss_name: str, proxies) -> None:
    """A pair loss scores the pairs of the batch: it takes no class proxies.

    Raises:
        ValueError: if `proxies` is not None.
    """
    if proxies is not None:
        raise ValueError(
            f"{loss_name} is a pair loss: it scores the pairs of the batch and takes no "
            "`proxies` (use a proxy loss such as ProxyAnchor). "
            f"Received: proxies of type {type(proxies).__name__}"
        )


def _serialize_miner(miner: Miner | None) -> dict | None:
    """The config entry of a loss's miner (None stays None)."""
    return None if miner is None else keras.saving.serialize_keras_object(miner)


def _deserialize_miner(config: dict) -> dict:
    """A copy of a loss's config with its `miner` entry turned back into a miner."""
    config = dict(config)
    if config.get("miner") is not None:
        config["miner"] = keras.saving.deserialize_keras_object(config["miner"])
    return config


class PairLoss(MetricLoss):
    """The base of the pair losses: a pair-loss function and its settings as a `MetricLoss`.

    `y_true` holds the integer class labels `(batch,)` and `y_pred` the embeddings
    `(batch, dims)`; the value is `pair_function(embeddings, labels, **hyperparameters,
    miner=miner)`. `compute(embeddings, labels, memory=...)` also takes a cross-batch memory
    (`CrossBatchMemory`) and refuses class proxies.

    A subclass sets `pair_function` (a `staticmethod`), overrides `check_hyperparameters` with
    its keyword arguments, and passes them from its `__init__`; each becomes an attribute and
    an entry of the config, before `miner` and `dtype`. The hyperparameters are checked first,
    then the miner.

    Args:
        hyperparameters: the subclass's hyperparameters by name (unchecked; the keyword
            arguments of `pair_function`).
        miner: None or a pair miner such as `MultiSimilarityMiner()` (saved in the config).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default keeps it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError, TypeError: from `check_hyperparameters`.
        TypeError: for a `miner` that is not callable.

    Example:
        >>> from keras_siamese.losses.pair_miner import mined_pairs
        >>> def positive_distance(embeddings, labels, scale=1.0, miner=None, memory=None):
        ...     pairs = mined_pairs(embeddings, labels, miner, memory)
        ...     distances = tf.where(pairs.positive, 1.0 - pairs.similarities, 0.0)
        ...     return scale * tf.reduce_mean(distances)
        >>> class PositiveDistanceLoss(PairLoss):
        ...     pair_function = staticmethod(positive_distance)
        ...
        ...     def __init__(self, scale=1.0, miner=None, name="positive_distance"):
        ...         super().__init__({"scale": scale}, miner, name=name)
        >>> PositiveDistanceLoss(2.0).get_config()["scale"]
        2.0
    """

    uses_proxies = False

    def __init__(
        self,
        hyperparameters: dict,
        miner: Miner | None = None,
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        hyperparameters = self.check_hyperparameters(**hyperparameters)
        check_miner(miner)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._set_hyperparameters(hyperparameters)
        self.miner = miner

    @staticmethod
    def pair_function(embeddings, labels, miner=None, memory=None, **hyperparameters):
        """The loss of a labelled batch (a subclass's function, e.g. `multi_similarity`)."""
        raise NotImplementedError("A PairLoss subclass must set `pair_function`.")

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        # Keras converts `y_true` to the loss dtype: the labels come back as integers here.
        return self.compute(y_pred, tf.cast(y_true, tf.int32))

    def compute(self, embeddings, labels, proxies=None, memory=None) -> tf.Tensor:
        """`pair_function` of the batch (and memory) with this loss's settings."""
        _check_no_proxies(type(self).__name__, proxies)
        return self.pair_function(
            embeddings, labels, **self.hyperparameters, miner=self.miner, memory=memory
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                **self.hyperparameters,
                "miner": _serialize_miner(self.miner),
                "dtype": self._dtype_policy.name,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> PairLoss:
        return cls(**_deserialize_miner(config))
