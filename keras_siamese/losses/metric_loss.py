"""`MetricLoss`: the base of the metric-learning losses on labelled batches.

Two families share it, and `SiameseNetwork(loss=...)` trains either:

- **Pair losses** (multi-similarity, circle, supervised contrastive, in-batch contrastive):
  `compute(embeddings, labels, memory=None)` scores the pairs of the global batch (and of a
  cross-batch memory). As a Keras loss, `y_true` holds the labels and `y_pred` the embeddings.
- **Proxy losses** (ArcFace, sub-center ArcFace, CosFace, ProxyAnchor, ProxyNCA): learned class
  weights ("proxies") stand for the classes. `compute(embeddings, labels, proxies=...)`. As a
  Keras loss `y_pred` holds the cosine similarities of the embeddings to the proxies, the
  output of `keras_siamese.proxies.ClassProxies`, like logits for a classification loss. The
  proxies live in the model that owns them (saved with it, left out of its export).

Each family has its base beside this one, `PairLoss` (`pair_loss`) and `ProxyLoss`
(`proxy_loss`): a loss of either is its pure function plus the hyperparameters kept here.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import distribute


class MetricLoss(keras.losses.Loss):
    """Base class of the losses of embeddings and integer labels (see the module docstring).

    Subclasses set `uses_proxies` and implement `compute`; the value of `compute` follows the
    package's replica convention (`keras_siamese.losses.pair_batch.global_mean`). A loss's
    hyperparameters (the keyword arguments of its function, each an attribute and a config
    entry) are checked by `check_hyperparameters` and kept by `_set_hyperparameters`.

    Attributes:
        uses_proxies: True for the proxy losses (they need `num_classes`).
        proxies_per_class: proxies of each class (sub-centres), 1 for most.
        num_classes: the classes of a proxy loss (None for pair losses).
        hyperparameters: the loss's hyperparameters by name.
    """

    uses_proxies: bool = False
    num_classes: int | None = None
    _hyperparameter_names: tuple[str, ...] = ()

    @staticmethod
    def check_hyperparameters(**hyperparameters) -> dict:
        """Checks the hyperparameters of a subclass, returns them by name (checked values).

        A subclass overrides it with its own keyword arguments; the base accepts anything.

        Raises:
            ValueError, TypeError: for a value out of its range or of the wrong type.
        """
        return hyperparameters

    def _set_hyperparameters(self, hyperparameters: dict) -> None:
        """Keeps each (checked) hyperparameter as an attribute of its name."""
        self._hyperparameter_names = tuple(hyperparameters)
        for name, value in hyperparameters.items():
            setattr(self, name, value)

    @property
    def hyperparameters(self) -> dict:
        """The hyperparameters by name, in their order of the signature (the current values)."""
        return {name: getattr(self, name) for name in self._hyperparameter_names}

    @property
    def proxies_per_class(self) -> int:
        """Proxies of each class: `sub_centers` for sub-center ArcFace, else 1."""
        return int(getattr(self, "sub_centers", 1))

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss as plain Keras `fit` needs it, also under `tf.distribute`.

        Keras divides a loss by the number of replicas only when it reduces a loss per
        example itself; these losses are already this replica's share of the global mean,
        a scalar Keras leaves as it is, so the division (`distribute.scale_for_replicas`)
        happens here. `SiameseNetwork` calls `compute` and divides in its own step.
        """
        loss = super().__call__(y_true, y_pred, sample_weight)
        return distribute.scale_for_replicas(loss)

    def compute(self, embeddings, labels, proxies=None, memory=None) -> tf.Tensor:
        """The loss of a batch; see the subclass. Returns a float32 scalar."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute().")
