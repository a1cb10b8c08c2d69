"""The recipes: checked values, round trips, the learning-rate rules and what they build."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_siamese as ks
from keras_siamese import recipes

IMAGE_SHAPE = (28, 28, 1)
# A recipe small enough to build every method quickly.
TINY = {"encoder_width": 4, "batch_size": 16}


def rounded(value):
    """`value` with every float rounded to 12 significant digits and without the `name`s
    Keras numbers automatically (`sgd_2`): configs compared by content."""
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items() if key != "name"}
    if isinstance(value, list | tuple):
        return [rounded(item) for item in value]
    return float(f"{value:.12g}") if isinstance(value, float) else value


@pytest.mark.parametrize("name", recipes.NAMES)
def test_config_round_trip_gives_an_equal_recipe(name):
    recipe = recipes.get(name, epochs=3)
    config = json.loads(json.dumps(recipe.get_config()))  # as config.json stores it
    assert type(recipe).from_config(config) == recipe
    assert config["epochs"] == 3


def test_get_refuses_an_unknown_name_and_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown recipe 'simclrr'.*simclr, simsiam.*Received"):
        recipes.get("simclrr")


def test_from_config_refuses_unknown_fields():
    with pytest.raises(ValueError, match=r"Unknown fields \['temprature'\] for SimCLRRecipe"):
        recipes.SimCLRRecipe.from_config({"temprature": 0.5})


@pytest.mark.parametrize(
    "name, changes, error, message",
    [
        ("simclr", {"temperature": 0.0}, ValueError, r"`temperature` must be in \(0.0"),
        ("simclr", {"projection_dims": (512, 0)}, ValueError, r"`projection_dims` must be at"),
        ("simclr", {"projection_dims": [512]}, TypeError, r"non-empty tuple.*\[512\]"),
        ("simclr", {"optimizer": "rmsprop"}, ValueError, r"`optimizer` must be one of"),
        ("simclr", {"batch_size": 2.5}, TypeError, r"`batch_size` must be an integer"),
        ("simclr", {"min_crop_area": 0.0}, ValueError, r"`min_crop_area` must be in \(0.0, 1.0\]"),
        ("simclr", {"learning_rate": float("nan")}, ValueError, r"learning_rate=nan"),
        ("simclr", {"blur": 1}, TypeError, r"`blur` must be a bool"),
        ("simclr", {"encoder_depth": 12}, ValueError, r"`encoder_depth` must be one of"),
        ("byol", {"target_momentum": 1.5}, ValueError, r"`target_momentum` must be in"),
        ("moco", {"moco_version": "v1"}, ValueError, r"`moco_version` must be one of"),
        ("swav", {"local_views": -1}, ValueError, r"`local_views` must be at least 0"),
        ("siamese-triplet", {"mining": "easy"}, ValueError, r"`mining` must be one of"),
        ("siamese-triplet", {"loss": "arc_face"}, ValueError, r"`loss` must be one of"),
        ("siamese-metric", {"views_per_image": 3}, ValueError, r"`views_per_image` must be one"),
        ("siamese-metric", {"memory_size": -1}, ValueError, r"`memory_size` must be at least 0"),
        (  # two copies of an image differ only by augmentation
            "siamese-metric",
            {"views_per_image": 2},
            ValueError,
            r"`views_per_image` must be 1 unless `augment`.*augment=False",
        ),
        (  # the triplet loss mines one view per image
            "siamese-metric",
            {"views_per_image": 2, "augment": True, "loss": "triplet"},
            ValueError,
            r"`views_per_image` must be 1 .*loss='triplet'",
        ),
        (  # a proxy loss has its class proxies instead of a memory
            "siamese-metric",
            {"loss": "arcface", "memory_size": 256},
            ValueError,
            r"`memory_size` must be 0 for the loss 'arcface'.*class proxies",
        ),
        (
            "siamese-triplet",
            {"memory_size": 256},
            ValueError,
            r"`memory_size` must be 0 for the loss 'triplet': a cross-batch memory serves a pair",
        ),
    ],
)
def test_bad_values_name_the_field(name, changes, error, message):
    with pytest.raises(error, match=message):
        recipes.get(name, **changes)


def test_recipes_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipes.get("simclr").temperature = 0.5


@pytest.mark.parametrize(
    "scaling, batch, expected",
    [("linear", 512, 1.2), ("linear", 64, 0.15), ("sqrt", 1024, 1.2), ("none", 1024, 0.6)],
)
def test_peak_learning_rate_follows_the_batch_size(scaling, batch, expected):
    recipe = recipes.get("simclr", learning_rate_scaling=scaling)
    assert recipe.peak_learning_rate(batch) == pytest.approx(expected)
    assert recipe.peak_learning_rate() == pytest.approx(0.6)


def test_optimizer_schedule_is_linear_warmup_then_cosine_to_zero():
    recipe = recipes.get("simclr")
    total = 200
    optimizer = recipe.build_optimizer(total, batch_size=512)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.momentum == pytest.approx(0.9)
    assert optimizer.weight_decay == pytest.approx(5e-4)
    peak, warmup = 1.2, 20  # 0.6 * 512 / 256; 10% of the steps
    schedule = optimizer._learning_rate
    for step in (0, 10, 20, 110, 199):
        if step < warmup:
            expected = peak * step / warmup
        else:  # SimCLR's cosine decay without restarts, from the peak to 0 at `total`
            expected = peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize(
    "name, optimizer_class",
    [("dino", keras.optimizers.Adam), ("simclr", keras.optimizers.SGD)],
)
def test_optimizer_classes(name, optimizer_class):
    assert isinstance(recipes.get(name).build_optimizer(10), optimizer_class)
    lars = recipes.get(name, optimizer="lars").build_optimizer(10)
    assert isinstance(lars, ks.optimizers.LARS)


def test_simsiam_optimizer_is_the_papers_with_coupled_decay():
    recipe = recipes.get("simsiam")
    optimizer = recipe.build_optimizer(100, batch_size=512)
    reference = ks.optimizers.simsiam_optimizer(
        batch_size=512, steps=100, base_learning_rate=0.5, weight_decay=5e-4, warmup_steps=10
    )
    assert rounded(optimizer.get_config()) == rounded(reference.get_config())


def test_warmup_steps_stay_below_the_total():
    recipe = recipes.get("simclr", warmup_fraction=0.9)
    assert recipe.warmup_steps(1) == 0
    assert recipe.warmup_steps(10) == 9
    assert recipes.get("siamese-triplet").warmup_steps(100) == 0


def test_views_follow_the_recipe():
    byol = recipes.get("byol").build_augmenter(IMAGE_SHAPE, seed=1)
    assert isinstance(byol, tuple) and len(byol) == 2  # BYOL's asymmetric pair
    simclr = recipes.get("simclr").build_augmenter(IMAGE_SHAPE, seed=1)
    assert simclr.image_size == (16, 16)
    assert recipes.get("siamese-triplet").build_augmenter(IMAGE_SHAPE) is None
    with pytest.raises(ValueError, match=r"`crop_size` \(32\) is larger than the images"):
        recipes.get("simclr", crop_size=32).build_augmenter(IMAGE_SHAPE)


def test_multi_crop_local_views_are_at_least_the_smallest_view():
    recipe = recipes.get("swav", local_views=3)
    views = recipe.build_augmenter(IMAGE_SHAPE, seed=0)
    # 16 * 96 / 224 = 6.9 pixels would end below the 2x2 map the 4x4 grid needs.
    assert recipe.smallest_view() == 9
    images = np.zeros((2, *IMAGE_SHAPE), "uint8")
    shapes = [tuple(view.shape[1:3]) for view in views(images)]
    assert shapes == [(16, 16)] * 2 + [(9, 9)] * 3


@pytest.mark.parametrize(
    "name, model_class, values",
    [
        ("simclr", "SimCLR", {"temperature": 0.2, "projection_dims": (512, 128)}),
        ("simsiam", "SimSiam", {"predictor_hidden_dim": 128, "projection_layers": 2}),
        ("byol", "BYOL", {"hidden_dim": 512, "projection_dim": 128}),
        ("moco", "MoCo", {"queue_size": 4096, "temperature": 0.2, "version": "v2"}),
        ("nnclr", "NNCLR", {"support_set_size": 8192, "prediction_dims": (512, 128)}),
        ("dino", "DINO", {"output_dim": 1024, "hidden_dim": 512, "bottleneck_dim": 128}),
        ("barlow-twins", "BarlowTwins", {"lambda_": 0.0051}),
        ("vicreg", "VICReg", {"variance_weight": 25.0, "covariance_weight": 1.0}),
        ("swav", "SwAV", {"num_prototypes": 100, "temperature": 0.1}),
        ("siamese-triplet", "SiameseNetwork", {"embedding_dim": None, "distance": "euclidean"}),
        ("siamese-contrastive", "SiameseNetwork", {"embedding_dim": 128}),
    ],
)
def test_build_gives_the_method_with_the_recipes_values(name, model_class, values):
    recipe = recipes.get(name, **TINY)
    model = recipe.build(IMAGE_SHAPE, total_steps=50, seed=0)
    assert type(model).__name__ == model_class
    config = model.get_config()
    for key, value in values.items():
        found = config[key]
        assert (tuple(found) if isinstance(found, list) else found) == value, key
    assert config["image_size"] == (28, 28) or list(config["image_size"]) == [28, 28]
    assert rounded(model.optimizer.get_config()) == rounded(recipe.build_optimizer(50).get_config())


def test_siamese_losses_follow_the_recipe():
    triplet = recipes.get("siamese-triplet").build_loss()
    assert isinstance(triplet, ks.losses.TripletLoss)
    assert (triplet.margin, triplet.mining) == (0.2, "hard")
    contrastive = recipes.get("siamese-contrastive").build_loss()
    assert isinstance(contrastive, ks.losses.ContrastiveMargin)
    assert contrastive.margin == 1.0


def test_metric_recipes_build_each_loss_by_name():
    assert recipes.get("siamese-metric") == recipes.for_loss("proxy_anchor")
    assert recipes.for_loss("triplet") == recipes.get("siamese-triplet")
    assert recipes.for_loss("contrastive") == recipes.get("siamese-contrastive")
    assert isinstance(recipes.for_loss("circle").build_loss(), ks.losses.CircleLoss)
    with pytest.raises(ValueError, match=r"`loss` must be one of"):
        recipes.for_loss("arc_face")
    # a proxy loss: one proxy per class, set from the data by whoever builds the model
    with pytest.raises(ValueError, match=r"'arcface' needs num_classes.*num_classes=0"):
        recipes.for_loss("arcface").build_loss()
    arcface = recipes.for_loss("arcface").replace(num_classes=7).build_loss()
    assert isinstance(arcface, ks.losses.ArcFaceLoss) and arcface.num_classes == 7
    # a pair loss with a memory, on two augmented views of each image
    recipe = recipes.get("siamese-metric", loss="supervised_contrastive", augment=True)
    recipe = recipe.replace(memory_size=64, views_per_image=2)
    loss = recipe.build_loss()
    assert isinstance(loss, ks.losses.CrossBatchMemory) and loss.memory_size == 64
    assert isinstance(loss.loss, ks.losses.SupervisedContrastiveLoss)
    model = recipe.replace(**TINY).build_model(IMAGE_SHAPE, total_steps=10, seed=0)
    assert model.views_per_image == 2 and model.augmenter is not None
    assert model.memory.memory_size == 64


def test_triplet_layout():
    recipe = recipes.get("siamese-triplet")
    assert recipe.triplet_layout(7) == (7, 16)  # the example's seen classes
    assert recipe.triplet_layout(10) == (10, 11)
    with pytest.raises(ValueError, match=r"classes_per_batch \(12\) exceeds the 10 classes"):
        recipe.replace(classes_per_batch=12).triplet_layout(10)
    with pytest.raises(ValueError, match=r"at least 2 examples of each"):
        recipe.replace(classes_per_batch=10).triplet_layout(10, batch_size=12)


def test_pretraining_recipe_shares_the_encoder():
    recipe = recipes.get("siamese-triplet", encoder_width=8, encoder_grid=2)
    pretraining = recipe.pretraining_recipe()
    assert isinstance(pretraining, recipes.SimCLRRecipe)
    assert (pretraining.encoder_width, pretraining.encoder_grid) == (8, 2)
    assert pretraining.temperature == recipes.get("simclr").temperature


def test_one_step_trains_the_encoder():
    recipe = recipes.get("simclr", **TINY)
    model = recipe.build(IMAGE_SHAPE, total_steps=4, seed=0)
    before = [weight.copy() for weight in model.encoder.get_weights()]
    images = np.random.default_rng(0).integers(0, 256, (16, *IMAGE_SHAPE)).astype("uint8")
    history = model.fit(images, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    changed = [
        not np.allclose(a, b) for a, b in zip(before, model.encoder.get_weights(), strict=True)
    ]
    assert any(changed)


def test_recipes_import_without_tensorflow():
    code = (
        "import sys; sys.argv = ['keras-siamese']; import keras_siamese as ks; "
        "print(ks.recipes.get('byol').learning_rate, 'tensorflow' in sys.modules)"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60
    )
    assert result.stdout.split() == ["0.8", "False"], result.stderr
