"""`train --method=dino`: DINO (Caron et al. 2021), its flags and its row.

Self-distillation from a momentum teacher, centred and sharpened. Defaults:
`keras_siamese.recipes.get("dino")` (head 512 -> 128 -> 1024 with BatchNorm, Adam); with
`--encoder=vit` the ViT recipe `keras_siamese.recipes.get("dino", encoder_type="vit")` (the
same head and optimizer with 4 local views, learned positions and grid pooling), whose
values the flags left at their defaults keep.
"""

from __future__ import annotations

import keras_siamese as ks
from keras_siamese.cli.methods.byol import TARGET_MOMENTUM
from keras_siamese.cli.methods.method import Method, bool_flag, float_flag, integer_flag

RECIPE = ks.recipes.get("dino")
VIT = ks.recipes.get("dino", encoder_type="vit")

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
        "Teacher temperature, after its warm-up (paper: 0.04 to 0.07).",
    ),
    float_flag(
        "dino_warmup_teacher_temperature",
        "warmup_teacher_temperature",
        RECIPE.warmup_teacher_temperature,
        "Teacher temperature at the first step, raised linearly to --dino_teacher_temperature "
        "over --dino_teacher_temperature_warmup_fraction of the steps (paper: 0.04).",
    ),
    float_flag(
        "dino_teacher_temperature_warmup_fraction",
        "teacher_temperature_warmup_fraction",
        RECIPE.teacher_temperature_warmup_fraction,
        "Fraction of the steps of the teacher temperature's warm-up (0: none; paper: the first "
        f"30 of 100 epochs; --encoder=vit: {VIT.teacher_temperature_warmup_fraction}).",
    ),
    bool_flag(
        "dino_head_batch_norm",
        "head_batch_norm",
        RECIPE.head_batch_norm,
        "BatchNorm in the head's hidden layers (paper: off; without it a small encoder's "
        "outputs collapsed to uniform in tests/test_dino.py; --encoder=vit: off).",
    ),
    integer_flag(
        "dino_local_views",
        "local_views",
        RECIPE.local_views,
        "Multi-crop's local views, 96/224 of the view size (a ViT: whole patches) (paper: 6+; "
        f"0: two views; --encoder=vit: {VIT.local_views}).",
    ),
)

METHOD = Method(
    "dino",
    "DINO: self-distillation from a momentum teacher, centred and sharpened (Caron et al. 2021)",
    model_class="DINO",
    recipe=RECIPE,
    flags=FLAGS,
)
