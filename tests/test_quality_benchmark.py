"""benchmarks/quality.py and recipe_parts.py build from `ks.recipes`: every method's model and
optimizer are its recipe's with the budget's epochs, the sweep's recipes are the library's;
the speed ratio, output names and targets read the results as the table does."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_siamese as ks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
METHODS = ("simclr", "simsiam", "byol", "moco", "dino", "barlow_twins", "vicreg", "swav")


@pytest.fixture(scope="module")
def benchmarks():
    """`(quality, recipe_parts)`, imported from benchmarks/."""
    sys.path.insert(0, BENCHMARKS)
    try:
        import quality
        import recipe_parts

        yield quality, recipe_parts
    finally:
        sys.path.remove(BENCHMARKS)


def configs(model, optimizer):
    """What two builds must share: the model's serialized config and the optimizer's."""
    return keras.saving.serialize_keras_object(model), optimizer.get_config()


@pytest.mark.parametrize("method", [*METHODS, "siamese"])
def test_build_method_is_the_recipe_with_the_budgets_epochs(benchmarks, method):
    quality, _ = benchmarks
    keras.backend.clear_session()  # the same automatic layer names in both builds
    built = configs(*quality.build_method(method, "quick", 120, seed=0))
    name = quality.RECIPE_NAMES[method]
    recipe = ks.recipes.get(name).replace(epochs=quality.BUDGETS["quick"]["epochs"][method])
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    batch_size = recipe.batch_size
    if method == "siamese":  # P x K on Fashion-MNIST's 10 classes: 10 x 11 of the 112
        assert recipe.triplet_layout(10) == (10, 11)
        batch_size = 110
    expected = configs(
        recipe.build_model((28, 28, 1), 120, seed=0), recipe.build_optimizer(120, batch_size)
    )
    assert built == expected
    assert quality.method_recipe(method, "quick") == recipe


@pytest.mark.parametrize("baseline", ["dino", "mae"])
def test_the_supervised_baseline_trains_on_one_view_of_every_vit_recipe(benchmarks, baseline):
    # DINO's ViT recipe makes 4 local views: the baseline once got its 6 views as inputs.
    quality, _ = benchmarks
    recipe = quality.method_recipe("supervised", "quick", encoder="vit", baseline=baseline)
    model, encoder = quality.supervised_baseline(recipe.replace(vit_depth=1), total_steps=4)
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype("uint8")
    assert tuple(model(images, training=True).shape) == (4, 10)
    assert encoder.name == "vit"


def test_budgets_change_only_the_epochs_but_full_the_encoder(benchmarks):
    quality, _ = benchmarks
    for budget in ("smoke", "quick"):
        for method in [*METHODS, "siamese"]:
            recipe = quality.method_recipe(method, budget)
            unchanged = ks.recipes.get(quality.RECIPE_NAMES[method]).replace(epochs=recipe.epochs)
            if method == "siamese" and budget == "smoke":
                unchanged = unchanged.replace(pretrain_epochs=recipe.pretrain_epochs)
            assert recipe == unchanged, (budget, method)
    full = quality.method_recipe("byol", "full")
    assert (full.encoder_depth, full.encoder_width, full.epochs) == (18, 64, 200)


def test_sweep_recipes_are_the_librarys(benchmarks):
    _, parts = benchmarks
    for method, name in (
        ("simclr", "simclr"),
        ("simsiam", "simsiam"),
        ("siamese", "siamese-triplet"),
    ):
        config = parts.recipe({"method": method})
        recipe = parts.to_recipe(config)
        expected = ks.recipes.get(name)
        if method == "siamese":  # P = the 7 seen classes, spelled out
            expected = expected.replace(classes_per_batch=7)
        assert recipe == expected, method
    contrastive = parts.to_recipe(parts.recipe({"method": "siamese", "loss": "contrastive"}))
    assert contrastive == ks.recipes.get("siamese-contrastive")


def test_sweep_overrides_reach_the_recipe_and_the_encoder(benchmarks):
    _, parts = benchmarks
    config = parts.recipe(
        {"temperature": 0.5, "view_size": 20, "pool": "avg", "widths": [8, 16, 32, 64]}
    )
    recipe = parts.to_recipe(config)
    assert (recipe.temperature, recipe.crop_size, recipe.encoder_grid) == (0.5, 20, 1)
    encoder = parts.encoder({**config, "blocks": [1, 2, 1, 1], "stem_stride": 2})
    assert encoder.output_shape == (None, 64)
    assert encoder.get_layer("stem_conv").strides == (2, 2)
    assert "stage2_block2_out" in [layer.name for layer in encoder.layers]


def test_sweep_encoder_is_the_recipes_layer_for_layer(benchmarks):
    _, parts = benchmarks

    def layers(encoder):
        return [(type(layer).__name__, layer.name, layer.get_config()) for layer in encoder.layers]

    config = parts.recipe({"method": "simclr"})
    assert layers(parts.encoder(config)) == layers(ks.recipes.get("simclr").build_encoder(1))


SUMMARY = """
import json, sys
sys.path.insert(0, {benchmarks!r})
import quality
quality.FLAGS(["quality.py", *{argv!r}])
row = lambda score, speed=None: {{
    "knn": {{"top1": score}}, "linear_probe": {{"top1": score, "top5": 1.0}},
    "sklearn": {{"top1": score}},
    "few_label_linear": {{"1%": {{"top1": score}}, "10%": {{"top1": score}}}},
    "fine_tune": {{}}, **({{"images_per_second": speed}} if speed else {{}}),
}}
results = {{"pixels": row(0.5), "simclr": row(0.9, 1000.0), "byol": row(0.4, 500.0)}}
import quality_report as report
flags = quality.FLAGS
print(json.dumps({{
    "suffix": report.output_suffix(flags.methods, flags.tag, quality.DEFAULT_METHODS),
    "ratios": report.speed_ratios(results),
    "checks": report.checks(results, flags.methods),
}}))
"""


def summary(*argv):
    process = subprocess.run(
        [sys.executable, "-c", SUMMARY.format(benchmarks=BENCHMARKS, argv=list(argv))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    return json.loads(process.stdout.splitlines()[-1])


def test_summary_of_a_run_of_other_methods():
    result = summary("--methods=simclr,byol", "--fine_tune=false")
    assert result["suffix"] == "-simclr-byol"  # never the main quality-<budget> files
    assert result["ratios"] == {"simclr": 1.0, "byol": 0.5}
    simclr, byol = result["checks"]
    assert simclr.startswith("- SimCLR: linear 90.0% meets the 88% target")
    assert "above raw pixels on every protocol" in simclr
    assert "1% fine-tune not run" in simclr
    assert "NOT above raw pixels on: kNN (40.0 vs 50.0)" in byol


def test_default_methods_keep_the_main_file_name_and_a_tag_overrides():
    assert summary()["suffix"] == ""
    assert summary("--methods=moco", "--tag=momentum")["suffix"] == "-momentum"


def test_an_unknown_method_is_refused():
    process = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "quality.py"), "--methods=simclr,mocco"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode != 0
    assert "--methods must name distinct methods" in process.stderr
