"""The budgets of `quality.py`: data sizes, epochs per method, protocol sizes; its methods.

Benchmark code, imported by `quality.py` (and its tests) only.
"""

DEFAULT_METHODS = ["simclr", "simsiam", "siamese"]  # the quick budget's <= 15 minutes
OTHER_METHODS = ["byol", "moco", "nnclr", "dino", "barlow_twins", "vicreg", "swav", "mae"]

# Per budget: data sizes, pretraining epochs per method (the recipes' fields: whole epochs;
# the supervised baseline's may be a fraction), recipe changes for every method (the `full`
# encoder), the Siamese recipe's SimCLR epochs (None: the recipe's), protocol sizes.
BUDGETS = {
    "smoke": {
        "train_examples": 3000, "test_examples": 1000,
        "epochs": {**{name: 1 for name in [*DEFAULT_METHODS, *OTHER_METHODS]}, "supervised": 0.5},
        "recipe": {}, "pretrain_epochs": 1.0,
        "curve_points": 2, "curve_memory": 1000, "curve_queries": 500,
        "probe_epochs": 5, "fine_tune_epochs": {0.01: 3, 0.1: 1}, "sklearn_iterations": 50,
    },
    "quick": {
        "train_examples": 60000, "test_examples": 10000,
        "epochs": {
            **{name: 4 for name in ["simclr", "simsiam", *OTHER_METHODS]},
            "siamese": 1, "supervised": 0.85,
        },
        "recipe": {}, "pretrain_epochs": None,
        "curve_points": 3, "curve_memory": 2000, "curve_queries": 1000,
        "probe_epochs": 20, "fine_tune_epochs": {0.01: 30, 0.1: 5}, "sklearn_iterations": 200,
    },
    "full": {
        "train_examples": 60000, "test_examples": 10000,
        "epochs": {
            **{name: 200 for name in ["simclr", "simsiam", *OTHER_METHODS]},
            "siamese": 50, "supervised": 30,
        },
        "recipe": {"encoder_depth": 18, "encoder_width": 64}, "pretrain_epochs": None,
        "curve_points": 20, "curve_memory": 10000, "curve_queries": 2000,
        "probe_epochs": 100, "fine_tune_epochs": {0.01: 60, 0.1: 30}, "sklearn_iterations": 1000,
    },
}  # fmt: skip
# The recipe (`ks.recipes.NAMES`) of each method of `--methods`.
RECIPE_NAMES = {
    "simclr": "simclr",
    "simsiam": "simsiam",
    "byol": "byol",
    "moco": "moco",
    "nnclr": "nnclr",
    "dino": "dino",
    "barlow_twins": "barlow-twins",
    "vicreg": "vicreg",
    "swav": "swav",
    "mae": "mae",
    "siamese": "siamese-triplet",  # on all 10 classes
}
