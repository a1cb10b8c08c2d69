"""`train --method=vicreg`: VICReg (Bardes et al. 2022), its flags and its row.

Invariance, variance and covariance terms on BYOL's asymmetric views. Defaults:
`keras_siamese.recipes.get("vicreg")`.
"""

from __future__ import annotations

import keras_siamese as ks
from keras_siamese.cli.methods.barlow_twins import EXPANDER_DIMS
from keras_siamese.cli.methods.method import Method, float_flag

RECIPE = ks.recipes.get("vicreg")

FLAGS = (
    EXPANDER_DIMS,
    *(
        float_flag(
            f"vicreg_{term}_weight",
            f"{term}_weight",
            getattr(RECIPE, f"{term}_weight"),
            f"Weight of the {term} term (paper: {paper}).",
        )
        for term, paper in (("invariance", 25), ("variance", 25), ("covariance", 1))
    ),
)

METHOD = Method(
    "vicreg",
    "VICReg: invariance, variance and covariance terms (Bardes et al. 2022)",
    model_class="VICReg",
    recipe=RECIPE,
    flags=FLAGS,
)
