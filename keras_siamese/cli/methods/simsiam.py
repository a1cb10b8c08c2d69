"""`train --method=simsiam`: SimSiam (Chen & He 2021), its flags and its row.

A predictor and a stop-gradient, no negatives; with SGD the predictor keeps the peak rate
(the recipe builds that optimizer). Defaults: `keras_siamese.recipes.get("simsiam")`.
"""

from __future__ import annotations

import keras_siamese as ks
from keras_siamese.cli.methods.method import Method, bool_flag, integer_flag

RECIPE = ks.recipes.get("simsiam")

FLAGS = (
    integer_flag(
        "simsiam_projection_dim",
        "projection_dim",
        RECIPE.projection_dim,
        "Projector width (paper: 2048).",
    ),
    integer_flag(
        "simsiam_projection_layers",
        "projection_layers",
        RECIPE.projection_layers,
        "Projector layers (paper: 2 on CIFAR).",
    ),
    integer_flag(
        "simsiam_predictor_hidden_dim",
        "predictor_hidden_dim",
        RECIPE.predictor_hidden_dim,
        "Predictor bottleneck (paper: 512).",
    ),
    bool_flag(
        "simsiam_fixed_predictor_learning_rate",
        "fixed_predictor_learning_rate",
        RECIPE.fixed_predictor_learning_rate,
        "With SGD, the predictor keeps the peak learning rate (paper, section 4.4).",
    ),
)

METHOD = Method(
    "simsiam",
    "SimSiam: predictor + stop-gradient, no negatives (Chen & He 2021)",
    model_class="SimSiam",
    recipe=RECIPE,
    flags=FLAGS,
)
