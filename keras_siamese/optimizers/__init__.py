"""The LARS optimizer, SimCLR's warmup + cosine schedule and SimSiam's split optimizer.

SimCLR (Chen et al., 2020, https://arxiv.org/abs/2002.05709, Sec. B.1) trains with LARS,
momentum 0.9, weight decay 1e-6 and a learning rate scaled with the batch size
(`0.075 * sqrt(batch_size)` or `0.3 * batch_size / 256`), warmed up linearly for 10 epochs
and then decayed with a cosine schedule without restarts (`WarmupCosine`, Keras'
`CosineDecay` with a warmup under SimCLR's arguments).

SimSiam (Chen & He, 2021, https://arxiv.org/abs/2011.10566, Sec. 4 and appendix) trains
with SGD, momentum 0.9, weight decay 5e-4 (CIFAR) and `0.03 * batch_size / 256` with
cosine decay, except for the predictor whose rate stays fixed: `SplitOptimizer` gives a
model's predictor its own optimizer, `simsiam_optimizer` builds that recipe.

Modules, re-exported here:
    - `lars`: `LARS`.
    - `schedules`: `WarmupCosine`, `simclr_learning_rate`.
    - `split`: `SplitOptimizer`.
    - `simsiam_optimizer`: `simsiam_optimizer`.
"""

from keras_siamese.optimizers.lars import DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY, LARS
from keras_siamese.optimizers.schedules import SCALINGS, WarmupCosine, simclr_learning_rate
from keras_siamese.optimizers.simsiam_optimizer import simsiam_optimizer
from keras_siamese.optimizers.split import SplitOptimizer

__all__ = [
    "DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY",
    "LARS",
    "SCALINGS",
    "SplitOptimizer",
    "WarmupCosine",
    "simclr_learning_rate",
    "simsiam_optimizer",
]
