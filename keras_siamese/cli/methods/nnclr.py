"""`train --method=nnclr`: NNCLR (Dwibedi et al. 2021), its flags and its row.

Each view's nearest neighbour in a support set of past projections is contrasted with the
other view's prediction against the batch. Defaults: `keras_siamese.recipes.get("nnclr")`
(its temperature and heads differ from SimCLR's, so the flags have their own names).
"""

from __future__ import annotations

import keras_siamese as ks
from keras_siamese.cli.methods.method import Method, dims_flag, float_flag, integer_flag

RECIPE = ks.recipes.get("nnclr")

FLAGS = (
    float_flag(
        "nnclr_temperature", "temperature", RECIPE.temperature, "NNCLR's temperature (paper: 0.1)."
    ),
    dims_flag(
        "nnclr_projection_dims",
        "projection_dims",
        RECIPE.projection_dims,
        "Projection MLP sizes, BatchNorm on every layer (paper: 2048,2048,256).",
    ),
    dims_flag(
        "nnclr_prediction_dims",
        "prediction_dims",
        RECIPE.prediction_dims,
        "Prediction MLP sizes, the last the projection's (paper: 4096,256).",
    ),
    integer_flag(
        "support_set_size",
        "support_set_size",
        RECIPE.support_set_size,
        "Projections in the support set of nearest neighbours (at least --batch_size; "
        "paper: 98304 for batches of 4096).",
    ),
)

METHOD = Method(
    "nnclr",
    "NNCLR: nearest neighbours from a support set as positives (Dwibedi et al. 2021)",
    model_class="NNCLR",
    recipe=RECIPE,
    flags=FLAGS,
)
