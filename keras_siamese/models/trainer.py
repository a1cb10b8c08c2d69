"""What every trainer shares: checked `fit`/`evaluate`, metrics, reloading, the report.

`TwoViewModel` (SimCLR, SimSiam) and `SiameseNetwork` subclass `Trainer` and implement
`_check_inputs`, which validates their own data formats before anything is traced.
"""

from __future__ import annotations

import keras

from keras_siamese import distribute


class Trainer(keras.Model):
    """A `keras.Model` whose `fit` checks its data, prints the distribution report and
    makes the data safe for multi-worker collectives.

    Subclasses own `loss_tracker` (a `keras.metrics.Mean`), `trackers` (name -> Mean)
    and `_check_inputs(x, y, batch_size, validation_data=None)`.
    """

    def _check_inputs(self, x, y, batch_size, validation_data=None):
        raise NotImplementedError(f"{type(self).__name__} must implement _check_inputs().")

    def compile_from_config(self, config):
        """Re-compiles a reloaded model with its saved optimizer (see `compile`).

        Keras skips this for models that override `compile` (ours refuse `loss`), which
        would leave a reloaded model uncompiled and its optimizer state unrestored.
        """
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def _update_metrics(self, loss, values):
        self.loss_tracker.update_state(loss)
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return distribute.step_logs({metric.name: metric.result() for metric in self.metrics})

    def fit(self, x=None, y=None, batch_size=None, validation_data=None, **kwargs):
        self._check_inputs(x, y, batch_size, validation_data)
        self._global_batch_size = distribute.global_batch_size(x, batch_size)
        if kwargs.get("verbose", "auto") != 0:
            print(self.distribution_report(), flush=True)
        x = distribute.collective_safe(x, self.distribute_strategy)
        validation_data = distribute.collective_safe(validation_data, self.distribute_strategy)
        return super().fit(x, y, batch_size=batch_size, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        self._check_inputs(x, y, batch_size)
        x = distribute.collective_safe(x, self.distribute_strategy)
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    def distribution_report(self, global_batch_size: int | None = None):
        """How a training step runs across replicas (printed at the start of `fit`).

        Args:
            global_batch_size: examples per step; the last `fit`'s batch size when None.

        Returns:
            A `keras_siamese.distribute.DistributionReport`; print it for the text block.

        Example:
            >>> print(model.distribution_report(global_batch_size=256))
        """
        if global_batch_size is None:
            global_batch_size = getattr(self, "_global_batch_size", None)
        return distribute.distribution_report(self, global_batch_size)
