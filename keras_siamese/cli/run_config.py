"""`RunConfig`: the resolved configuration of a `train` run, typed and frozen.

`resolve(flag_values, info)` turns the flag values (`train_flags.flag_values(...)`) and what
the data says (`DatasetInfo`: image shape, classes, size) into a `RunConfig` without reading
any data or importing TensorFlow: the method's recipe with every flag applied
(`recipe_flags`) and the views fitted to the images (`view_recipe`), the image shape, the
batch layout and the steps. `record()` is what config.json holds: the flags (what a resumed
run compares) and, under `resolved`, what was derived from them. With `--time_budget`, the
steps are chosen once a step has been timed (`train_precision.budget`) and set by
`with_steps`.

Example:
    >>> info = DatasetInfo("fashion_mnist", (28, 28, 1), 10, None, 60000)
    >>> config = resolve(train_flags.flag_values("--method=byol"), info)
    >>> model, optimizer = train_command.build_model_and_optimizer(config)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from absl import app

from keras_siamese import recipes
from keras_siamese.cli import encoder_flag, methods, recipe_flags, sources, view_recipe
from keras_siamese.loss_names import PROXY_LOSS_NAMES

CONFIG_VERSION = 2  # config.json with `resolved.recipe` (the recipes' CLI)
NO_BUDGET = "none"  # --time_budget: the epochs decide


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything `train` builds and reads from, resolved once.

    Attributes:
        flags: the flag values as config.json records them (`auto` where they were).
        recipe: the method's recipe with the flags and the images applied.
        source: where the training images are read.
        image_shape: `(height, width, channels)` of the images the model takes.
        num_classes: classes of the data, or None without labels.
        class_names: their names, or None.
        train_examples: training examples per epoch.
        batch_size: the global batch (P x K for triplets).
        triplet_batch: `(P, K)` of triplet batches, or None.
        steps_per_epoch: whole batches per epoch.
        total_steps: optimizer steps of the run.
        pretrain_steps: steps of SimCLR pretraining first (0: none).
        knn_monitor: whether the kNN monitor runs.
        knn_every: its period in epochs.
    """

    flags: Mapping[str, Any]
    recipe: recipes.Recipe
    source: sources.Source
    image_shape: tuple[int, int, int]
    num_classes: int | None
    class_names: tuple[str, ...] | None
    train_examples: int
    batch_size: int
    triplet_batch: tuple[int, int] | None
    steps_per_epoch: int
    total_steps: int
    pretrain_steps: int
    knn_monitor: bool
    knn_every: int

    @property
    def method(self) -> methods.Method:
        return methods.METHODS[self.flags["method"]]

    @property
    def seed(self) -> int:
        return self.flags["seed"]

    @property
    def encoder(self) -> encoder_flag.EncoderChoice:
        return encoder_flag.parse(self.flags["encoder"])

    @property
    def files_shuffled(self) -> bool:
        """Folders and TFRecords shuffle as they read (all files; shards and records)."""
        return self.source.kind != sources.NAMED

    @property
    def view_shape(self) -> tuple[int, int, int]:
        return (*self.recipe.view_size(self.image_shape), self.image_shape[2])

    def pretraining_recipe(self) -> recipes.Recipe:
        """SimCLR's recipe on this run's encoder, its views fitted to the images."""
        pretraining = self.recipe.pretraining_recipe()
        from_recipe = encoder_flag.from_recipe(self.encoder)
        return view_recipe.for_images(pretraining, self.image_shape, from_recipe)

    def record(self, **facts: Any) -> dict:
        """config.json: the flags, and under `resolved` what was derived (and `facts`)."""
        recipe = self.recipe
        resnet = encoder_flag.from_recipe(self.encoder) and recipe.encoder_type == "resnet"
        grid = resnet or (recipe.encoder_type == "vit" and recipe.vit_pooling == "grid")
        resolved = {
            "config_version": CONFIG_VERSION,
            "source": dataclasses.asdict(self.source),
            "files_shuffled": self.files_shuffled,
            "image_shape": list(self.image_shape),
            "view_shape": list(self.view_shape),
            "encoder_type": recipe.encoder_type if encoder_flag.from_recipe(self.encoder) else None,
            "stem": recipe.stem if resnet else None,
            "encoder_grid": recipe.encoder_grid if grid else None,
            "num_classes": self.num_classes,
            "class_names": None if self.class_names is None else list(self.class_names),
            "train_examples": self.train_examples,
            "batch_size": self.batch_size,
            "triplet_batch": None if self.triplet_batch is None else list(self.triplet_batch),
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "warmup_steps": recipe.warmup_steps(self.total_steps),
            "peak_learning_rate": recipe.peak_learning_rate(self.batch_size),
            "pretrain_steps": self.pretrain_steps,
            "knn_monitor": self.knn_monitor,
            "knn_every": self.knn_every,
            "recipe": recipe.get_config(),
            **facts,
        }
        return {**self.flags, "resolved": resolved}


def _image_shape(values: dict, info, source: sources.Source) -> tuple[int, int, int]:
    height, width, channels = info.image_shape
    if values["image_size"]:
        height = width = values["image_size"]
    if height is None or width is None:
        raise app.UsageError(
            f"The images of {source.describe()} are of different sizes: pass --image_size. "
            "Received: --image_size=0"
        )
    if values["channels"] != "auto":
        channels = int(values["channels"])
    return int(height), int(width), int(channels)


def _check_labels(method: methods.Method, info, source: sources.Source) -> None:
    if method.needs_labels and info.num_classes is None:
        hint = " (one sub-folder per class, --labels=inferred)" if source.kind == "folder" else ""
        raise app.UsageError(
            f"--method={method.name} trains on labelled pairs or triplets, but "
            f"{source.describe()} has no class label{hint}. Use simclr or simsiam. "
            f"Received: --method={method.name}, {source.describe()}"
        )


def _steps(requested: int, examples: int, batch_size: int) -> int:
    steps_per_epoch = examples // batch_size
    if steps_per_epoch < 1:
        raise app.UsageError(
            f"--batch_size ({requested}) is larger than the {examples} training "
            f"examples. Received: --batch_size={requested}"
        )
    return steps_per_epoch


def _check_memory(recipe, batch_size: int, requested) -> None:
    """A cross-batch memory holds at least one global batch of embeddings (every view)."""
    memory = getattr(recipe, "memory_size", 0)
    views = getattr(recipe, "views_per_image", 1)
    if memory and memory < batch_size * views:
        held = f" ({views} views of {batch_size} images)" if views > 1 else ""
        raise app.UsageError(
            f"--memory_size ({memory}) must hold at least one global batch of embeddings: "
            f"{batch_size * views}{held}. Use a larger --memory_size or a smaller "
            f"--batch_size. Received: --memory_size={memory}, --batch_size={requested}"
        )


def budget_seconds(flag: str) -> float | None:
    """Seconds of a `--time_budget` value, or None for `none` (the epochs decide).

    Raises:
        absl.app.UsageError: naming the flag, the value and what it takes.
    """
    if flag.strip().lower() == NO_BUDGET:
        return None
    try:
        return recipes.parse_duration(flag)
    except ValueError:
        raise app.UsageError(
            f"--time_budget takes {NO_BUDGET} or a positive duration: seconds (600) or a "
            f"number with s, m or h (90s, 10m, 1.5h). Received: --time_budget={flag}"
        ) from None


def epochs_given(config: RunConfig) -> bool:
    """Whether `--epochs` was given (then it caps a time budget's steps)."""
    value = config.flags["epochs"]
    return not (isinstance(value, str) and value.strip().lower() == methods.AUTO)


def with_steps(config: RunConfig, steps: int) -> RunConfig:
    """`config` training `steps` steps or a few less: whole epochs of the data when one fits.

    Keras trains `epochs x steps_per_epoch` steps and the data's epochs are whole batches, so
    `steps` is rounded down to whole epochs (`steps_per_epoch` as the data gives it); fewer
    steps than one epoch train one epoch of `steps` steps. The recipe's `epochs` and the
    kNN monitor's default period follow.
    """
    if steps < 1:
        raise ValueError(f"A run trains at least 1 step. Received: steps={steps}")
    epochs, per_epoch = max(1, steps // config.steps_per_epoch), config.steps_per_epoch
    if steps < per_epoch:
        per_epoch = steps
    return dataclasses.replace(
        config,
        recipe=config.recipe.replace(epochs=epochs),
        steps_per_epoch=per_epoch,
        total_steps=epochs * per_epoch,
        knn_every=config.flags["knn_every"] or max(1, epochs // 4),
    )


def pretrain_steps(method: methods.Method, recipe, examples: int) -> int:
    """Steps of SimCLR pretraining: `pretrain_epochs` of batches of its recipe (0: none)."""
    if not method.pretrains or not recipe.pretrain_epochs:
        return 0
    batch = min(recipe.pretraining_recipe().batch_size, examples)
    return max(1, round(recipe.pretrain_epochs * examples / batch))


def resolve(values: dict, info, source: sources.Source | None = None) -> RunConfig:
    """The `RunConfig` of flag values for data described by `info` (see the module docstring).

    Args:
        values: the flag values (`train_flags.flag_values(...)`).
        info: a `DatasetInfo` (image_shape, num_classes, class_names, num_examples).
        source: where `info` was read (default: the named `--dataset`).

    Raises:
        absl.app.UsageError: naming the flag whose value does not fit the data.
    """
    method = methods.METHODS[values["method"]]
    source = source or sources.Source(sources.NAMED, values["dataset"])
    recipe = recipe_flags.recipe_from_flags(method, values)
    image_shape = _image_shape(values, info, source)
    from_recipe = encoder_flag.from_recipe(encoder_flag.parse(values["encoder"]))
    recipe = view_recipe.resolve(recipe, values, image_shape, from_recipe)
    _check_labels(method, info, source)
    if getattr(recipe, "loss", None) in PROXY_LOSS_NAMES and not recipe.num_classes:
        recipe = recipe.replace(num_classes=info.num_classes)  # one proxy per class
    examples = info.num_examples
    if values["train_examples"]:
        examples = min(examples, values["train_examples"])
    requested = recipe_flags.batch_size(recipe, values)
    batch_size, triplet_batch = method.batch_layout(recipe, info.num_classes, requested)
    _check_memory(recipe, batch_size, values["batch_size"])
    steps_per_epoch = _steps(requested, examples, batch_size)
    has_queries = source.kind == sources.NAMED or source.eval_dir is not None
    config = RunConfig(
        flags=dict(values),
        recipe=recipe,
        source=source,
        image_shape=image_shape,
        num_classes=info.num_classes,
        class_names=None if info.class_names is None else tuple(info.class_names),
        train_examples=examples,
        batch_size=batch_size,
        triplet_batch=triplet_batch,
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * recipe.epochs,
        pretrain_steps=pretrain_steps(method, recipe, examples),
        knn_monitor=bool(values["knn_monitor"] and info.num_classes is not None and has_queries),
        knn_every=values["knn_every"] or max(1, recipe.epochs // 4),
    )
    if config.pretrain_steps:  # SimCLR's crops of the same ViT: whole patches too
        view_recipe.check_patches(config.pretraining_recipe(), values, image_shape)
    return config
