"""`train --encoder=vit`: the method's ViT recipe, the ViT flags, their checks before
TensorFlow, and a ViT run that trains, resumes, evaluates and exports."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import app, flags

import keras_siamese as ks
from keras_siamese import cli
from keras_siamese.cli import (
    data,
    methods,
    run_config,
    run_dir,
    sources,
    train_command,
    train_flags,
    train_run,
)
from keras_siamese.encoders import vision_transformer_of
from keras_siamese.loss_names import PROXY_LOSS_NAMES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_MNIST = data.DatasetInfo("fashion_mnist", (28, 28, 1), 10, None, 60000)


def resolved_config(*arguments, info=FASHION_MNIST):
    return run_config.resolve(train_flags.flag_values("--model_dir=unused", *arguments), info)


def with_classes(recipe, num_classes=10):
    """A proxy loss' recipe with the data's classes, as the CLI resolves it."""
    if getattr(recipe, "loss", None) in PROXY_LOSS_NAMES:
        return recipe.replace(num_classes=num_classes)
    return recipe


# ----------------------------------------------------------------------------- the recipe


@pytest.mark.parametrize("method", list(methods.METHODS))
def test_encoder_vit_trains_the_methods_vit_recipe(method):
    config = resolved_config(f"--method={method}", "--encoder=vit")
    assert config.recipe == with_classes(ks.recipes.get(method, encoder_type="vit"))
    record = config.record()
    assert record["encoder"] == "vit" and record["resolved"]["recipe"]["encoder_type"] == "vit"
    assert record["resolved"]["encoder_type"] == "vit"
    grid = config.recipe.encoder_grid if config.recipe.vit_pooling == "grid" else None
    assert record["resolved"]["stem"] is None and record["resolved"]["encoder_grid"] == grid
    if methods.METHODS[method].pretrains:  # SimCLR pretrains the same ViT
        assert config.pretraining_recipe().encoder_type == "vit"


def test_auto_is_the_recipes_encoder():
    assert resolved_config("--method=simclr").recipe.encoder_type == "resnet"
    if "mae" in methods.METHODS:  # MAE's recipe is a ViT's
        config = resolved_config("--method=mae")
        assert config.recipe == ks.recipes.get("mae")
        assert config.recipe.encoder_type == "vit"
        assert config.record()["resolved"]["encoder_type"] == "vit"
    config = resolved_config("--method=simclr", "--encoder=resnet18")
    assert (config.recipe.encoder_type, config.recipe.encoder_depth) == ("resnet", 18)


def test_the_vit_flags_set_the_vit_fields_together():
    config = resolved_config(
        "--encoder=vit",
        "--vit_heads=3",  # 64 features are not a multiple of 3: checked with --vit_dim
        "--vit_dim=18",
        "--vit_depth=2",
        "--patch_size=2",
        "--vit_pooling=mean",
        "--crop_size=20",
    )
    recipe = config.recipe
    assert (recipe.vit_dim, recipe.vit_heads, recipe.vit_depth) == (18, 3, 2)
    assert (recipe.patch_size, recipe.vit_pooling, recipe.crop_size) == (2, "mean", 20)
    assert config.record()["patch_size"] == 2  # recorded as a number, as the others
    sincos = resolved_config("--encoder=vit", "--vit_position_embedding=sincos").recipe
    assert sincos.vit_position_embedding == "sincos"


def test_grid_pooling_reads_the_grid_flag():
    config = resolved_config("--encoder=vit", "--vit_pooling=grid", "--encoder_grid=2")
    assert config.recipe.encoder_grid == 2 and config.record()["resolved"]["encoder_grid"] == 2
    # auto: at most the views' patches per side (16x16 crops in patches of 8: 2)
    config = resolved_config("--encoder=vit", "--vit_pooling=grid", "--patch_size=8")
    assert config.recipe.encoder_grid == 2


def test_a_method_flag_left_at_its_default_keeps_the_vit_recipes_value():
    vit = ks.recipes.get("dino", encoder_type="vit")
    recipe = resolved_config("--method=dino", "--encoder=vit").recipe
    assert (recipe.local_views, recipe.target_momentum, recipe.head_batch_norm) == (4, 0.99, True)
    recipe = resolved_config(
        "--method=dino",
        "--encoder=vit",
        "--dino_local_views=2",
        "--target_momentum=0.99",
        "--dino_teacher_temperature_warmup_fraction=0.5",
    ).recipe
    assert recipe == vit.replace(local_views=2, teacher_temperature_warmup_fraction=0.5)


def test_the_views_fit_the_patches_once_the_images_are_known():
    config = resolved_config("--encoder=vit", "--method=dino")  # 16x16 crops of 28x28
    assert config.view_shape == (16, 16, 1)
    with pytest.raises(app.UsageError, match=r"20x20 \(the views\) is not a multiple of --pat"):
        resolved_config(  # whole 20x20 images: not a multiple of 8
            "--encoder=vit",
            "--patch_size=8",
            "--crop_size=0",
            info=data.DatasetInfo("x", (20, 20, 1), 2, None, 64),
        )
    # The image rules' views of 20x20 images are 16x16: two patches of 8.
    ruled = resolved_config(
        "--encoder=vit",
        "--patch_size=8",
        "--batch_size=32",
        info=data.DatasetInfo("x", (20, 20, 1), 2, None, 64),
    )
    assert ruled.view_shape == (16, 16, 1)
    # The triplets' whole 28x28 images are 4x4 patches of 7, SimCLR's pretraining crops not.
    with pytest.raises(app.UsageError, match=r"16x16 \(the views\) is not a multiple of --pat"):
        resolved_config("--method=siamese-triplet", "--encoder=vit", "--patch_size=7")


# ----------------------------------------------------------------------------- flag checks


def test_vit_flag_errors_answer_before_tensorflow(tmp_path):
    cases = [
        (["--encoder=vit", "--crop_size=18"], "18 (--crop_size) is not a multiple of "
         "--patch_size (4)"),
        (["--encoder=vit", "--patch_size=8", "--image_size=20", "--crop_size=0"],
         "20 (the whole images) is not a multiple of --patch_size (8)"),
        (["--encoder=vit", "--vit_dim=18"], "--vit_dim must be a multiple of --vit_heads. "
         "Received: --vit_dim=18, --vit_heads=4"),
        (["--encoder=vit", "--patch_size=0"], "--patch_size must be at least 1. Received: "
         "--patch_size=0"),
        (["--encoder=vit", "--vit_depth=two"], "--vit_depth must be 'auto' or an integer"),
        (["--encoder=vitt"], "Did you mean 'vit'"),
    ]  # fmt: skip
    if "mae" in methods.METHODS:
        cases.append(
            (
                ["--method=mae", "--encoder=resnet18"],
                "--method=mae trains only the package's Vision Transformer",
            )
        )
    script = (
        "import json, sys\n"
        "sys.argv = ['/usr/local/bin/keras-siamese']\n"  # the console script: lazy package
        "from keras_siamese import cli\n"
        f"for arguments in json.loads({json.dumps(json.dumps([c for c, _ in cases]))}):\n"
        f"    print(cli.main(['keras-siamese', 'train', *arguments, "
        f"'--model_dir={tmp_path / 'run'}']))\n"
        "    print('---', file=sys.stderr)\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & {'tensorflow', 'keras'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    *statuses, heavy = result.stdout.split()
    assert heavy == "[]" and statuses == ["2"] * len(cases), result.stdout
    errors = result.stderr.split("---\n")
    for (arguments, expected), error in zip(cases, errors, strict=False):
        assert error.startswith("error: ") and expected in error, (arguments, error)
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize(
    ("arguments", "warned", "unwarned"),
    [
        (["--encoder=vit", "--stem=imagenet", "--encoder_grid=2", "--vit_dim=32",
          "--vit_pooling=cls"],
         ["--stem is not used with --encoder=vit", "--encoder_grid is not used"], ["--vit_dim"]),
        (["--vit_dim=32", "--patch_size=2", "--stem=imagenet"],
         ["--vit_dim is not used with --encoder=auto (the recipe's ResNet)",
          "--patch_size is not used"], ["--stem"]),
        (["--encoder=vit", "--vit_pooling=grid", "--encoder_grid=2", "--stem=small"],
         ["--stem is not used with --encoder=vit"], ["--encoder_grid"]),
        (["--encoder=keras.applications:MobileNetV3Small", "--vit_heads=2"],
         ["--vit_heads is not used with --encoder=keras.applications:MobileNetV3Small"], []),
    ],
)  # fmt: skip
def test_the_other_encoders_flags_warn(capsys, arguments, warned, unwarned):
    given = flags.FlagValues()
    train_flags.define_flags(given)
    given(["train", *arguments])
    values = train_flags.flag_values(*arguments)
    train_command._warn_unused(values, given, sources.Source(sources.NAMED, "fashion_mnist"))
    error = capsys.readouterr().err
    assert all(text in error for text in warned), error
    assert not any(f"{text} is not used" in error for text in unwarned), error


# ----------------------------------------------------------------------------- a ViT run

TINY_VIT_RUN = [
    "--method=dino",
    "--encoder=vit",
    "--vit_dim=16",
    "--vit_depth=1",
    "--vit_heads=2",
    "--dino_output_dim=16",
    "--dino_hidden_dim=16",
    "--dino_bottleneck_dim=8",
    "--dino_local_views=2",
    "--image_size=16",
    "--train_examples=16",
    "--batch_size=16",
    "--epochs=2",
    "--precision=float32",
    "--noknn_monitor",
    "--noplots",
    "--strategy=default",
    "--verbose=0",
]


class Preempted(Exception):
    pass


class Interrupt(keras.callbacks.Callback):
    """Stops training after the first epoch's checkpoint, as a pre-emption would."""

    def on_epoch_end(self, epoch, logs=None):
        raise Preempted(f"after epoch {epoch}")


@pytest.mark.slow
def test_a_vit_run_trains_resumes_evaluates_and_exports(capsys, tmp_path, monkeypatch):
    model_dir = tmp_path / "run"
    train = [
        "train",
        f"--model_dir={model_dir}",
        *TINY_VIT_RUN,
        "--dino_teacher_temperature_warmup_fraction=0.5",
    ]
    make_callbacks = train_run.callbacks
    monkeypatch.setattr(train_run, "callbacks", lambda *args: [*make_callbacks(*args), Interrupt()])
    with pytest.raises(Preempted):
        cli.main(["keras-siamese", *train])
    monkeypatch.undo()
    assert cli.main(["keras-siamese", *train]) == 0  # resumes the ViT at its second epoch
    config = json.loads((model_dir / run_dir.CONFIG).read_text())
    recipe = ks.recipes.DINORecipe.from_config(config["resolved"]["recipe"])
    assert recipe.encoder_type == "vit" and recipe.local_views == 2 and recipe.head_batch_norm
    assert config["resolved"]["view_shape"] == [16, 16, 1]
    result = json.loads((model_dir / run_dir.TRAIN_RESULT).read_text())
    assert result["steps"] == 2 and np.isfinite(result["final"]["loss"])
    model = keras.saving.load_model(model_dir / run_dir.MODEL)
    assert vision_transformer_of(model.encoder).grid_size == (4, 4)
    assert model.teacher_temperature_warmup_steps == round(0.5 * 2)  # the flag's, of 2 steps

    evaluate = [f"--model_dir={model_dir}", "--memory_examples=64", "--test_examples=32"]
    evaluate += ["--linear_probe_epochs=1", "--plot_points=16", "--knn_k=5", "--noprogress"]
    assert cli.main(["keras-siamese", "evaluate", *evaluate]) == 0
    results = json.loads((model_dir / run_dir.EVAL).read_text())
    assert 0.0 <= results["knn"]["top1"] <= 1.0

    export_dir = tmp_path / "exported"
    export = ["export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--warmup=false"]
    export += ["--gallery_examples=16", "--top_k=3", "--calibration_pairs=16"]
    assert cli.main(["keras-siamese", *export]) == 0
    served = ks.export.load_for_inference(str(export_dir))
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 1)).astype("uint8")
    expected = tf.math.l2_normalize(model(images), axis=1).numpy()
    np.testing.assert_allclose(served.embed(images), expected, atol=1e-4)
