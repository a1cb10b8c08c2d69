"""benchmarks/time_to_accuracy.py and its hand-written baseline benchmarks/paper_simclr.py:
the level arithmetic, NT-Xent and LARS against their formulas written out, the views' shape
and range, the package system as the CLI resolves it, and a tiny run of the whole script."""

import json
import math
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_siamese as ks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")


@pytest.fixture(scope="module")
def modules():
    """`(time_to_accuracy, paper_simclr)`, imported from benchmarks/."""
    sys.path.insert(0, BENCHMARKS)
    try:
        import paper_simclr
        import time_to_accuracy

        yield time_to_accuracy, paper_simclr
    finally:
        sys.path.remove(BENCHMARKS)


def points(*pairs):
    return [{"minutes": minutes, "top1": top1} for minutes, top1 in pairs]


def test_a_level_is_reached_at_the_first_checkpoint_at_or_above_it(modules):
    benchmark, _ = modules
    curve = points((1.0, 80.0), (2.0, 86.5), (3.0, 85.0), (4.0, 87.99), (5.0, 88.0))
    assert benchmark.minutes_to_levels(curve) == {"85": 2.0, "88": 5.0, "90": None}
    assert benchmark.minutes_to_levels([]) == {"85": None, "88": None, "90": None}
    assert benchmark.minutes_to_levels(points((0.5, 90.0))) == {"85": 0.5, "88": 0.5, "90": 0.5}


def test_the_ratio_says_whether_the_package_is_twice_as_fast(modules):
    benchmark, _ = modules
    assert benchmark.ratio_text(6.0, 2.0, 30.0) == "3.0x (yes)"
    assert benchmark.ratio_text(3.0, 2.0, 30.0) == "1.5x (no)"
    assert benchmark.ratio_text(None, 10.0, 30.0) == "> 3.0x (yes)"  # a bound: the paper's run
    assert benchmark.ratio_text(None, 20.0, 30.0) == "> 1.5x (open)"
    assert benchmark.ratio_text(4.0, None, 30.0) == "no (package not reached)"
    assert benchmark.ratio_text(None, None, 30.0) == "neither reached"


def nt_xent_loops(z_a, z_b, temperature):
    """The paper's formula: l(i, j) = -log exp(s_ij / T) / sum_{k != i} exp(s_ik / T) over
    the 2N views (z_1..z_N, then their pairs), averaged over every view and its positive."""
    views = np.concatenate([z_a, z_b]).astype(np.float64)
    count = len(z_a)
    total = 0.0
    for i in range(2 * count):
        positive = (i + count) % (2 * count)
        similarities = []
        for k in range(2 * count):
            cosine = views[i] @ views[k] / (np.linalg.norm(views[i]) * np.linalg.norm(views[k]))
            similarities.append(cosine / temperature)
        denominator = sum(math.exp(similarities[k]) for k in range(2 * count) if k != i)
        total += -math.log(math.exp(similarities[positive]) / denominator)
    return total / (2 * count)


@pytest.mark.parametrize("temperature", [0.5, 0.1])
def test_nt_xent_is_the_papers_formula(modules, temperature):
    _, paper = modules
    rng = np.random.default_rng(0)
    z_a, z_b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    got = float(
        paper.nt_xent(tf.constant(z_a, tf.float32), tf.constant(z_b, tf.float32), temperature)
    )
    assert got == pytest.approx(nt_xent_loops(z_a, z_b, temperature), rel=1e-5)


def test_nt_xent_of_identical_views_against_orthogonal_others(modules):
    """Analytic case: N=2 orthogonal images, each view equal to its pair: the positive has
    cosine 1, the two negatives cosine 0."""
    _, paper = modules
    z = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + 2.0))
    assert float(paper.nt_xent(z, z, 0.5)) == pytest.approx(expected, rel=1e-6)


def test_lars_steps_follow_the_formula(modules):
    """Two steps on a matrix (decay and trust ratio) and a vector (neither):
    v <- m v + lr * trust * (g + d w), w <- w - v, trust = eta ||w|| / ||g + d w||."""
    _, paper = modules
    rate, momentum, decay, eta = 0.5, 0.9, 0.01, 0.1
    optimizer = paper.LARS(rate, momentum, decay, eta)
    matrix = keras.Variable(np.array([[1.0, -2.0], [3.0, 0.5]], "float32"))
    vector = keras.Variable(np.array([0.5, -0.5], "float32"))
    gradients = [np.array([[0.1, 0.2], [-0.3, 0.4]]), np.array([1.0, 2.0])]
    w, b = matrix.numpy().astype(np.float64), vector.numpy().astype(np.float64)
    velocity_w, velocity_b = np.zeros_like(w), np.zeros_like(b)
    for _ in range(2):
        optimizer.apply_gradients(
            [
                (tf.constant(g, tf.float32), v)
                for g, v in zip(gradients, (matrix, vector), strict=True)
            ]
        )
        decayed = gradients[0] + decay * w
        trust = eta * np.linalg.norm(w) / np.linalg.norm(decayed)
        velocity_w = momentum * velocity_w + rate * trust * decayed
        velocity_b = momentum * velocity_b + rate * gradients[1]
        w, b = w - velocity_w, b - velocity_b
    np.testing.assert_allclose(matrix.numpy(), w, rtol=1e-5)
    np.testing.assert_allclose(vector.numpy(), b, rtol=1e-5)


def test_views_are_32x32_rgb_in_the_unit_range_and_differ(modules):
    _, paper = modules
    images = tf.constant(np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1)), tf.uint8)
    rgb = paper.unit_rgb(images)
    assert rgb.shape == (8, 28, 28, 3)
    seed = keras.random.SeedGenerator(0)
    view_a, view_b = paper.augment(rgb, seed), paper.augment(rgb, seed)
    assert view_a.shape == (8, 32, 32, 3) and view_a.dtype == tf.float32
    for view in (view_a, view_b):
        assert float(tf.reduce_min(view)) >= 0.0 and float(tf.reduce_max(view)) <= 1.0
    assert not np.allclose(view_a.numpy(), view_b.numpy())


def test_colour_jitter_keeps_the_range_and_changes_colour_images(modules):
    _, paper = modules
    images = tf.random.stateless_uniform((16, 8, 8, 3), (1, 2))
    jittered = paper.color_jitter(images, 0.5, keras.random.SeedGenerator(1))
    assert jittered.shape == images.shape
    assert float(tf.reduce_min(jittered)) >= 0.0 and float(tf.reduce_max(jittered)) <= 1.0
    assert float(tf.reduce_mean(tf.abs(jittered - images))) > 1e-3


def test_the_package_system_is_the_clis_recipe_on_these_images():
    """`ks.recipes.get("simclr", image_shape=...)` is what `train` resolves with auto flags."""
    from keras_siamese.cli import view_recipe

    values = {"crop_size": "auto", "stem": "auto", "encoder_grid": "auto", "encoder": "auto"}
    for shape in ((28, 28, 1), (32, 32, 3)):
        cli = view_recipe.resolve(ks.recipes.get("simclr"), values, shape, True)
        assert ks.recipes.get("simclr", image_shape=shape) == cli


def test_a_tiny_run_writes_both_files(modules, tmp_path, capsys):
    benchmark, _ = modules
    flags = [
        "--data=fashion_mnist", "--cap_minutes=0.01", "--probe_train=200", "--probe_test=100",
        "--train_examples=64", "--batch_size=8", "--paper_width=4", "--paper_steps=5",
        "--precision=float32", f"--output_dir={tmp_path}",
    ]  # fmt: skip
    benchmark.main(flags)
    results = json.loads((tmp_path / "time_to_accuracy.json").read_text())
    assert set(results) == {"config", "data"}
    entry = results["data"]["fashion_mnist"]
    assert 0 < entry["raw_pixels"] <= 100
    assert set(entry["runs"]) == {"package", "paper"}
    for system, run in entry["runs"].items():
        assert run["system"] == system and run["precision"] == "float32"
        assert set(run["minutes_to"]) == {"85", "88", "90"}
        assert run["checkpoints"] and run["steps"] >= 1 and run["images_per_second"] > 0
        assert run["final"] == run["checkpoints"][-1]["top1"] and run["best"] >= run["final"]
        assert run["checkpoints"][-1]["step"] == run["steps"]
    table = (tmp_path / "time_to_accuracy.md").read_text()
    assert "| fashion_mnist | package | float32 |" in table and "> 0.01" in table
    assert "at least 2x sooner" in table
    console = capsys.readouterr().out
    assert "[fashion_mnist/paper]" in console and "linear probe" in console


@pytest.mark.parametrize("module", ["time_to_accuracy.py", "paper_simclr.py"])
def test_the_benchmark_modules_keep_the_size_rules(module):
    from test_code_rules import MAX_MODULE_LINES, long_functions

    source = open(os.path.join(BENCHMARKS, module), encoding="utf-8").read()
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    assert long_functions(source) == []
