"""`train --method=barlow-twins`: Barlow Twins (Zbontar et al. 2021), its flags and its row.

The cross-correlation of the two views' projections driven to the identity, on BYOL's
asymmetric views. Defaults: `keras_siamese.recipes.get("barlow-twins")`. `EXPANDER_DIMS` is
shared with VICReg (their recipes agree on it).
"""

from __future__ import annotations

import keras_siamese as ks
from keras_siamese.cli.methods.method import Method, dims_flag, float_flag

RECIPE = ks.recipes.get("barlow-twins")

EXPANDER_DIMS = dims_flag(
    "expander_dims",
    "projection_dims",
    RECIPE.projection_dims,
    "Projector (Barlow Twins) or expander (VICReg) sizes (papers: 8192,8192,8192).",
)
FLAGS = (
    EXPANDER_DIMS,
    float_flag(
        "barlow_twins_lambda",
        "lambda_",
        RECIPE.lambda_,
        "Weight of the redundancy-reduction term (paper: 0.0051).",
    ),
)

METHOD = Method(
    "barlow-twins",
    "Barlow Twins: cross-correlation of the views to the identity (Zbontar et al. 2021)",
    model_class="BarlowTwins",
    recipe=RECIPE,
    flags=FLAGS,
)
