"""`train --method=dino`: DINO (Caron et al. 2021), its flags and its row.

Self-distillation from a momentum teacher, centred and sharpened. Defaults:
`keras_siamese.recipes.get("dino")` (head 512 -> 128 -> 1024 with BatchNorm, Adam).
"""

from __future__ import annotations

import keras_siamese as ks
from keras_siamese.cli.methods.byol import TARGET_MOMENTUM
from keras_siamese.cli.methods.method import Method, bool_flag, float_flag, integer_flag

RECIPE = ks.recipes.get("dino")

FLAGS = (
    TARGET_MOMENTUM,
    integer_flag(
        "dino_output_dim",
        "output_dim",
        RECIPE.output_dim,
        "Outputs (prototypes) of the DINO head (paper: 65536).",
    ),
    integer_flag(
        "dino_hidden_dim",
        "hidden_dim",
        RECIPE.hidden_dim,
        "Hidden width of the head (paper: 2048).",
    ),
    integer_flag(
        "dino_bottleneck_dim",
        "bottleneck_dim",
        RECIPE.bottleneck_dim,
        "Bottleneck of the head (paper: 256).",
    ),
    float_flag(
        "dino_teacher_temperature",
        "teacher_temperature",
        RECIPE.teacher_temperature,
        "Teacher temperature (paper: 0.04 to 0.07).",
    ),
    bool_flag(
        "dino_head_batch_norm",
        "head_batch_norm",
        RECIPE.head_batch_norm,
        "BatchNorm in the head's hidden layers (paper: off; without it a small encoder's "
        "outputs collapsed to uniform in tests/test_dino.py).",
    ),
    integer_flag(
        "dino_local_views",
        "local_views",
        RECIPE.local_views,
        "Multi-crop's local views, 96/224 of the view size (paper: 6+; 0: two views).",
    ),
)

METHOD = Method(
    "dino",
    "DINO: self-distillation from a momentum teacher, centred and sharpened (Caron et al. 2021)",
    model_class="DINO",
    recipe=RECIPE,
    flags=FLAGS,
)
