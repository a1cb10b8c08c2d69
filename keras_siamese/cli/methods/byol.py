"""`train --method=byol`: BYOL (Grill et al. 2020), its flags and its row.

An online network predicts a moving-average target on BYOL's asymmetric views, no
negatives. Defaults: `keras_siamese.recipes.get("byol")`. `TARGET_MOMENTUM` is shared with
MoCo and DINO (their recipes agree on it).
"""

from __future__ import annotations

import keras_siamese as ks
from keras_siamese.cli.methods.method import Method, float_flag, integer_flag

RECIPE = ks.recipes.get("byol")

TARGET_MOMENTUM = float_flag(
    "target_momentum",
    "target_momentum",
    RECIPE.target_momentum,
    "Base momentum of the moving-average target, raised to 1 by a cosine schedule over the "
    "run (MoCo v2: constant). Papers: BYOL and DINO 0.996, MoCo v2 0.999, MoCo v3 0.99.",
)
FLAGS = (
    TARGET_MOMENTUM,
    integer_flag(
        "byol_projection_dim",
        "projection_dim",
        RECIPE.projection_dim,
        "Output of the projector and predictor (paper: 256).",
    ),
    integer_flag(
        "byol_hidden_dim",
        "hidden_dim",
        RECIPE.hidden_dim,
        "Hidden width of the projector and predictor (paper: 4096).",
    ),
)

METHOD = Method(
    "byol",
    "BYOL: online network predicts a moving-average target, no negatives (Grill et al. 2020)",
    model_class="BYOL",
    recipe=RECIPE,
    flags=FLAGS,
)
