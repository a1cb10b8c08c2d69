"""`train --method=mae`: MAE (He et al. 2022), its flags and its row.

A ViT encodes the visible quarter of each image's patches and a small decoder reconstructs
the masked pixels. The encoder is the recipe's ViT (`--encoder=auto` or `vit`): the method
drops patch tokens inside it. Defaults: `keras_siamese.recipes.get("mae")`.
"""

from __future__ import annotations

import keras_siamese as ks
from keras_siamese.cli.methods.method import (
    Method,
    bool_flag,
    float_flag,
    integer_flag,
    no_monitors,
)

RECIPE = ks.recipes.get("mae")

FLAGS = (
    float_flag(
        "mask_ratio",
        "mask_ratio",
        RECIPE.mask_ratio,
        "Fraction of each image's patches masked and reconstructed (paper: 0.75).",
    ),
    integer_flag(
        "decoder_dim",
        "decoder_dim",
        RECIPE.decoder_dim,
        "MAE decoder's token features, a multiple of 4 and of --decoder_heads (paper: 512).",
    ),
    integer_flag(
        "decoder_depth", "decoder_depth", RECIPE.decoder_depth, "MAE decoder's blocks (paper: 8)."
    ),
    integer_flag(
        "decoder_heads",
        "decoder_heads",
        RECIPE.decoder_heads,
        "MAE decoder's attention heads (paper: 16).",
    ),
    bool_flag(
        "normalize_targets",
        "normalize_targets",
        RECIPE.normalize_targets,
        "Reconstruct each patch's normalised pixels (the paper's); --nonormalize_targets: "
        "the pixels in [0, 1].",
    ),
)

METHOD = Method(
    "mae",
    "MAE: reconstruct the masked 75% of a ViT's patches (He et al. 2022)",
    model_class="MAE",
    recipe=RECIPE,
    flags=FLAGS,
    build_monitors=no_monitors,  # a reconstruction loss has no collapse to watch
    vit_only=True,
)
