"""`train --method=swav`: SwAV (Caron et al. 2020), its flags and its row.

Swapped prediction of Sinkhorn cluster codes, optionally with multi-crop's local views.
Defaults: `keras_siamese.recipes.get("swav")`.
"""

from __future__ import annotations

import keras_siamese as ks
from keras_siamese.cli.methods.method import Method, float_flag, integer_flag
from keras_siamese.cli.methods.simclr import PROJECTION_DIMS

RECIPE = ks.recipes.get("swav")

FLAGS = (
    PROJECTION_DIMS,
    integer_flag(
        "swav_prototypes",
        "num_prototypes",
        RECIPE.num_prototypes,
        "Number of prototypes K (paper: 3000 on ImageNet).",
    ),
    float_flag(
        "swav_temperature",
        "temperature",
        RECIPE.temperature,
        "Softmax temperature of the swapped predictions (paper: 0.1).",
    ),
    float_flag(
        "swav_epsilon",
        "epsilon",
        RECIPE.epsilon,
        "Entropy weight of the Sinkhorn codes (paper: 0.05).",
    ),
    integer_flag(
        "swav_sinkhorn_iterations",
        "sinkhorn_iterations",
        RECIPE.sinkhorn_iterations,
        "Sinkhorn-Knopp iterations (paper: 3).",
    ),
    integer_flag(
        "swav_queue_size",
        "queue_size",
        RECIPE.queue_size,
        "Projections of earlier batches kept per global view for the codes (paper: 3840 "
        "with batches of 256; 0: none).",
    ),
    integer_flag(
        "swav_freeze_prototypes_steps",
        "freeze_prototypes_steps",
        RECIPE.freeze_prototypes_steps,
        "Steps without prototype updates at the start (paper: one epoch).",
    ),
    integer_flag(
        "swav_local_views",
        "local_views",
        RECIPE.local_views,
        "Multi-crop's low-resolution views, 96/224 of the view size (paper: 6; 0: two views "
        "as the other methods).",
    ),
)

METHOD = Method(
    "swav",
    "SwAV: swapped prediction of Sinkhorn cluster codes (Caron et al. 2020)",
    model_class="SwAV",
    recipe=RECIPE,
    flags=FLAGS,
)
