"""`train --method=simclr`: SimCLR (Chen et al. 2020), its flags and its row.

NT-Xent between two views against the global batch. The flags' defaults are
`keras_siamese.recipes.get("simclr")`'s values.
"""

from __future__ import annotations

import keras_siamese as ks
from keras_siamese.cli.methods.method import Method, dims_flag, float_flag

RECIPE = ks.recipes.get("simclr")

TEMPERATURE = float_flag("temperature", "temperature", RECIPE.temperature, "NT-Xent temperature.")
PROJECTION_DIMS = dims_flag(
    "projection_dims", "projection_dims", RECIPE.projection_dims, "Projection MLP sizes."
)

METHOD = Method(
    "simclr",
    "SimCLR: NT-Xent between two views against the batch (Chen et al. 2020)",
    model_class="SimCLR",
    recipe=RECIPE,
    flags=(TEMPERATURE, PROJECTION_DIMS),
)
