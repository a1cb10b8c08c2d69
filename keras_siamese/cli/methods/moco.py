"""`train --method=moco`: MoCo v2/v3 (He et al. 2020; Chen et al. 2020, 2021), flags and row.

InfoNCE against momentum keys from a queue (v2) or the batch (v3). Defaults:
`keras_siamese.recipes.get("moco")`.
"""

from __future__ import annotations

import keras_siamese as ks
from keras_siamese.cli.methods.byol import TARGET_MOMENTUM
from keras_siamese.cli.methods.method import Method, enum_flag, float_flag, integer_flag

RECIPE = ks.recipes.get("moco")

FLAGS = (
    TARGET_MOMENTUM,
    enum_flag(
        "moco_version",
        "moco_version",
        RECIPE.moco_version,
        ("v2", "v3"),
        "v2: a queue of keys; v3: the batch's keys, a predictor, a cosine momentum.",
    ),
    integer_flag(
        "moco_queue_size",
        "queue_size",
        RECIPE.queue_size,
        "MoCo v2's queue of negative keys (at least --batch_size).",
    ),
    float_flag(
        "moco_temperature", "temperature", RECIPE.temperature, "InfoNCE temperature (v2: 0.2)."
    ),
    integer_flag(
        "moco_projection_dim",
        "projection_dim",
        RECIPE.projection_dim,
        "Output of the heads (papers: 128 for v2, 256 for v3).",
    ),
    integer_flag(
        "moco_hidden_dim",
        "hidden_dim",
        RECIPE.hidden_dim,
        "Hidden width of the heads (papers: 2048 for v2, 4096 for v3).",
    ),
)

METHOD = Method(
    "moco",
    "MoCo v2/v3: InfoNCE against momentum keys from a queue or the batch "
    "(He et al. 2020, Chen et al. 2021)",
    model_class="MoCo",
    recipe=RECIPE,
    flags=FLAGS,
)
