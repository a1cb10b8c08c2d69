"""benchmarks/quality.py's recipes and summary: the other methods share SimCLR's encoder and
views; the speed ratio, output names and targets read the results as the table does."""

import json
import os
import subprocess
import sys

import pytest

import keras_siamese as ks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
OTHER_METHODS = ("byol", "moco", "dino", "barlow_twins", "vicreg", "swav")


@pytest.fixture(scope="module")
def parts():
    sys.path.insert(0, BENCHMARKS)
    try:
        import recipe_parts

        yield recipe_parts
    finally:
        sys.path.remove(BENCHMARKS)


@pytest.mark.parametrize("method", OTHER_METHODS)
def test_other_methods_train_simclrs_encoder_on_its_schedule(parts, method):
    config = parts.recipe({"method": method})
    for key in parts.SHARED_WITH_SIMCLR:
        assert config[key] == parts.RECIPES["simclr"][key], key
    assert config["views"] in ("simclr", "simsiam", "byol")


def test_views_follow_the_recipe(parts):
    simclr_views = parts.views(parts.recipe({"method": "swav"}), seed=0)
    assert isinstance(simclr_views, ks.augment.SimCLRAugmenter)
    assert simclr_views.image_size == (16, 16)
    view_a, view_b = parts.views(parts.recipe({"method": "byol"}), seed=0)
    assert (view_a.solarize_probability, view_b.solarize_probability) == (0.0, 0.2)
    crops = parts.views(parts.recipe({"method": "dino", "local_views": 2}), seed=0)
    assert (crops.global_views, crops.local_views) == (2, 2)
    # 96/224 of 16 is 7, whose last stage would be 1 x 1: one more than the stride 8.
    assert crops.local_augmenter.image_size == (9, 9)


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
print(json.dumps({{
    "suffix": quality.output_suffix(),
    "ratios": quality.speed_ratios(results),
    "checks": quality.checks(results),
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
