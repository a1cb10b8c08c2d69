"""Builds every method the three ways a user meets it and prints their configs as JSON.

The command line (`train_command.build_model_and_optimizer` on the resolved default flags
for Fashion-MNIST), `benchmarks/quality.py` (`build_method` at the quick budget) and the
examples (`make_model` with their default flags). Run by tests/test_recipe_drift.py in its
own process: the benchmark and the examples define absl flags on the global `FLAGS`, which
are removed after each so the next can define its own.

Prints one JSON object: `{builder: {method: {"model": config, "optimizer": config}}}`.
"""

import importlib.util
import json
import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import keras  # noqa: E402
from absl import flags  # noqa: E402

import keras_siamese as ks  # noqa: E402
from keras_siamese.cli import data, run_config, train_command, train_flags  # noqa: E402

TOTAL_STEPS = 2340  # 10 epochs of 234 steps
CLI_METHODS = (
    "simclr", "simsiam", "byol", "moco", "dino", "barlow-twins", "vicreg", "swav",
    "siamese-triplet", "siamese-contrastive", "siamese-metric", "nnclr",
)  # fmt: skip
CLI_METHODS += ("mae",)
QUALITY_METHODS = {  # quality.py's --methods names
    "simclr": "simclr", "simsiam": "simsiam", "byol": "byol", "moco": "moco", "dino": "dino",
    "barlow-twins": "barlow_twins", "vicreg": "vicreg", "swav": "swav",
    "siamese-triplet": "siamese",
}  # fmt: skip
EXAMPLES = {
    "simclr": "simclr_fashion_mnist",
    "simsiam": "simsiam_fashion_mnist",
    "byol": "byol_fashion_mnist",
    "barlow-twins": "barlow_twins_fashion_mnist",
}
SIAMESE_EXAMPLE = "siamese_fashion_mnist"
# The Siamese example's losses, by the method whose default they are.
SIAMESE_LOSSES = {
    "siamese-triplet": "triplet",
    "siamese-contrastive": "contrastive",
    "siamese-metric": ks.recipes.get("siamese-metric").loss,
}


def configs(model, optimizer):
    return {
        "model": keras.saving.serialize_keras_object(model),
        "optimizer": keras.saving.serialize_keras_object(optimizer),
    }


def cli_builds():
    info = data.DatasetInfo("fashion_mnist", (28, 28, 1), 10, None, 60000)
    builds = {}
    for method in CLI_METHODS:
        config = run_config.resolve(train_flags.flag_values(f"--method={method}"), info)
        keras.utils.set_random_seed(0)
        model, optimizer = train_command.build_model_and_optimizer(config, encoder=None)
        builds[method] = configs(model, optimizer)
        builds[method]["total_steps"] = config.total_steps
        builds[method]["batch_size"] = config.batch_size
    return builds


class FreshFlags:
    """Removes the absl flags defined inside the block from the global `FLAGS`."""

    def __enter__(self):
        self.before = set(flags.FLAGS)
        return self

    def __exit__(self, *error):
        for name in set(flags.FLAGS) - self.before:
            delattr(flags.FLAGS, name)
        flags.FLAGS.unparse_flags()


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flags.FLAGS([name])
    return module


def quality_builds(cli):
    builds = {}
    with FreshFlags():
        quality = load(os.path.join(ROOT, "benchmarks", "quality.py"), "quality")
        for method, name in QUALITY_METHODS.items():
            model, optimizer = quality.build_method(name, "quick", cli[method]["total_steps"])
            builds[method] = configs(model, optimizer)
    return builds


def example_builds(cli):
    builds = {}
    for method, name in EXAMPLES.items():
        with FreshFlags():
            example = load(os.path.join(ROOT, "examples", f"{name}.py"), name)
            model = example.make_model(cli[method]["total_steps"])
            builds[method] = configs(model, model.optimizer)
    with FreshFlags():
        example = load(os.path.join(ROOT, "examples", f"{SIAMESE_EXAMPLE}.py"), SIAMESE_EXAMPLE)
        for method, loss in SIAMESE_LOSSES.items():
            # The CLI's Fashion-MNIST has 10 classes (the example passes its 7 seen ones).
            model = example.make_model(loss, cli[method]["total_steps"], num_classes=10)
            builds[method] = configs(model, model.optimizer)
            builds[method]["batch_size"] = example.recipe_for(loss).batch_size
    return builds


def with_classes(recipe, num_classes=10):
    """A proxy loss' recipe with Fashion-MNIST's classes, as the CLI resolves it."""
    if getattr(recipe, "loss", None) in ks.loss_names.PROXY_LOSS_NAMES:
        return recipe.replace(num_classes=num_classes)
    return recipe


def recipe_builds(cli, examples):
    """The recipes themselves at the CLI's steps and batch (and the examples' batch)."""
    builds = {}
    for method in CLI_METHODS:
        recipe = with_classes(ks.recipes.get(method))
        keras.utils.set_random_seed(0)
        model = recipe.build_model((28, 28, 1), cli[method]["total_steps"], seed=0)
        optimizer = recipe.build_optimizer(cli[method]["total_steps"], cli[method]["batch_size"])
        builds[method] = configs(model, optimizer)
        if "batch_size" in examples.get(method, {}):
            batch = examples[method]["batch_size"]
            builds[method]["optimizer_at_example_batch"] = configs(
                model, recipe.build_optimizer(cli[method]["total_steps"], batch)
            )["optimizer"]
    return builds


if __name__ == "__main__":
    cli = cli_builds()
    examples = example_builds(cli)
    result = {
        "cli": cli,
        "quality": quality_builds(cli),
        "examples": examples,
        "recipes": recipe_builds(cli, examples),
    }
    print("RESULT " + json.dumps(result, default=str))
