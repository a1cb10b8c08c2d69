"""Step-level checkpoints that survive kills, and a `fit` that resumes at the exact step.

`StepCheckpoint` is a Keras callback, after `tf.train.CheckpointManager` (it keeps the `keep`
newest complete checkpoints) and `tf.distribute.experimental.PreemptionCheckpointHandler`
(on SIGTERM or SIGINT it saves at the next step boundary and stops training). A checkpoint
is two files in its directory:

```
ckpt-000001200.weights.h5   model.save_weights(): weights, optimizer (its step counter and
                            slots), the augmenters' SeedGenerator states
ckpt-000001200.json         the step, the weights' SHA-256, the metrics' running state and
                            Keras' global seed generator state; written last, so it marks the
                            checkpoint complete
```

Both are written under a temporary name, flushed and renamed (`keras_siamese.atomic_files`),
so a kill at any moment leaves the previous checkpoints whole. A checkpoint is trusted only if
its JSON parses and the weights file has the recorded SHA-256 and loads; otherwise the
previous one is used (with a warning naming the damaged file). Under a `tf.distribute`
strategy only the chief writes (`strategy.extended.should_checkpoint`) and every worker
restores; a signal must reach every worker (schedulers send it to all of them).

`fit(model, batches, ...)` resumes exactly: it restores the newest valid checkpoint, asks
`batches(step)` for the training batches from that global step on (so the data order must be
a function of the seed and the step, e.g. `dataset.repeat().skip(step)` of a seeded
pipeline), finishes the interrupted epoch (its metrics continue from the checkpoint), then
runs the remaining epochs. A run interrupted and resumed this way ends with the same weights
as an uninterrupted one (tests/test_checkpointing.py: equal within 1e-6 on CPU).

Example:
    >>> checkpoint = StepCheckpoint("run/checkpoints", every_steps=500)
    >>> fit(model, lambda step: batches.repeat().skip(step), epochs=10,
    ...     steps_per_epoch=100, checkpoint=checkpoint)
    >>> checkpoint.stopped_by  # "SIGTERM" when a signal stopped it (a checkpoint was saved)
"""

from keras_siamese.checkpointing.resume import fit, resumable_batches
from keras_siamese.checkpointing.step_checkpoint import SIGNALS, CheckpointError, StepCheckpoint

__all__ = ["SIGNALS", "CheckpointError", "StepCheckpoint", "fit", "resumable_batches"]
