"""The methods of `train --method=...`: their recipes, models, optimizers and training data.

Each method is one `Method` row: what it needs from the dataset, its default learning rate
and weight decay (the `auto` values of `--learning_rate` and `--weight_decay`), and the
functions that build its model and its training batches from the resolved configuration.
Adding a method is adding one row.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import keras
import tensorflow as tf
from absl import app

import keras_siamese as ks

MOMENTUM = 0.9
SIAMESE_FLAGS = ("siamese_embedding_dim", "siamese_margin", "siamese_distance", "siamese_augment")


@dataclasses.dataclass(frozen=True)
class Method:
    """One training method of the command line."""

    name: str
    summary: str
    needs_labels: bool
    optimizer: str  # The `auto` value of --optimizer.
    learning_rate: float  # Peak rate for a batch of 256 (scaled by --learning_rate_scaling).
    weight_decay: float  # Keras' decoupled weight decay.
    model_class: str  # The keras_siamese attribute that must exist for the method to run.
    flags: tuple[str, ...]  # The method-specific flags it reads.


def _encoder(config: dict) -> keras.Model:
    resolved = config["resolved"]
    return ks.encoders.resnet(
        depth=config["encoder_depth"],
        input_shape=tuple(resolved["view_shape"]),
        small_images=resolved["stem"] == "small",
        width=config["encoder_width"],
    )


def _augmenter(config: dict) -> keras.layers.Layer:
    height, width, channels = config["resolved"]["view_shape"]
    return ks.augment.simclr_augmenter(
        (height, width),
        channels=channels,
        strength=config["color_strength"],
        blur=config["blur"],
        crop_area=(config["min_crop_area"], 1.0),
        seed=config["seed"],
    )


def _simclr(config: dict) -> keras.Model:
    return ks.SimCLR(
        _encoder(config),
        augmenter=_augmenter(config),
        projection_dims=tuple(int(dims) for dims in config["projection_dims"]),
        temperature=config["temperature"],
    )


def _simsiam(config: dict) -> keras.Model:
    return ks.SimSiam(
        _encoder(config),
        augmenter=_augmenter(config),
        projection_dim=config["simsiam_projection_dim"],
        projection_layers=config["simsiam_projection_layers"],
        predictor_hidden_dim=config["simsiam_predictor_hidden_dim"],
    )


def _siamese(loss: str) -> Callable[[dict], keras.Model]:
    def build(config: dict) -> keras.Model:
        margin = config["siamese_margin"]
        if loss == "contrastive":
            loss_fn = (
                ks.losses.ContrastiveMargin(margin) if margin else ks.losses.ContrastiveMargin()
            )
        else:
            mining = config["triplet_mining"]
            loss_fn = (
                ks.losses.TripletLoss(margin, mining)
                if margin
                else ks.losses.TripletLoss(mining=mining)
            )
        return ks.SiameseNetwork(
            _encoder(config),
            loss=loss_fn,
            distance=config["siamese_distance"],
            embedding_dim=config["siamese_embedding_dim"] or None,
            augmenter=_augmenter(config) if config["siamese_augment"] else None,
        )

    return build


def _image_batches(config: dict, images: tf.data.Dataset) -> tf.data.Dataset:
    """Shuffled, batched images for the two-view methods (labels unused)."""
    return (
        images.shuffle(config["shuffle_buffer"], seed=config["seed"], reshuffle_each_iteration=True)
        .batch(config["batch_size"], drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method(
            "simclr",
            "SimCLR: NT-Xent between two views against the batch (Chen et al. 2020)",
            needs_labels=False,
            optimizer="sgd",
            learning_rate=0.6,  # examples/simclr_fashion_mnist.py
            weight_decay=5e-4,
            model_class="SimCLR",
            flags=("temperature", "projection_dims"),
        ),
        Method(
            "simsiam",
            "SimSiam: predictor + stop-gradient, no negatives (Chen & He 2021)",
            needs_labels=False,
            optimizer="sgd",
            learning_rate=0.5,  # examples/simsiam_fashion_mnist.py (paper: 0.03, long runs)
            weight_decay=5e-3,  # The paper's coupled 5e-4 with momentum 0.9.
            model_class="SimSiam",
            flags=(
                "simsiam_projection_dim",
                "simsiam_projection_layers",
                "simsiam_predictor_hidden_dim",
            ),
        ),
        Method(
            "siamese-contrastive",
            "Siamese network on labelled pairs, contrastive margin loss (Hadsell et al. 2006)",
            needs_labels=True,
            optimizer="adam",
            learning_rate=2e-3,  # examples/siamese_fashion_mnist.py
            weight_decay=0.0,
            model_class="SiameseNetwork",
            flags=SIAMESE_FLAGS,
        ),
        Method(
            "siamese-triplet",
            "Siamese network on labelled triplets, triplet margin loss (Schroff et al. 2015)",
            needs_labels=True,
            optimizer="adam",
            learning_rate=2e-3,  # examples/siamese_fashion_mnist.py
            weight_decay=0.0,
            model_class="SiameseNetwork",
            flags=(*SIAMESE_FLAGS, "classes_per_batch", "triplet_mining"),
        ),
    )
}

_BUILDERS: dict[str, Callable[[dict], keras.Model]] = {
    "simclr": _simclr,
    "simsiam": _simsiam,
    "siamese-contrastive": _siamese("contrastive"),
    "siamese-triplet": _siamese("triplet"),
}


def check_available(name: str) -> Method:
    """Returns the method, or raises UsageError if this installation lacks its model class."""
    method = METHODS[name]
    if not hasattr(ks, method.model_class):
        raise app.UsageError(
            f"--method={name} needs keras_siamese.{method.model_class}, which this version of "
            f"keras_siamese does not have. Available: "
            f"{', '.join(m.name for m in METHODS.values() if hasattr(ks, m.model_class))}. "
            f"Received: --method={name}"
        )
    return method


def build_model(config: dict) -> keras.Model:
    """Builds the method's model from the resolved configuration."""
    return _BUILDERS[config["method"]](config)


def peak_learning_rate(config: dict) -> float:
    """The peak rate: `--learning_rate` (or the method's) scaled to the batch size."""
    base = config["resolved"]["learning_rate"]
    batch_size = config["resolved"]["batch_size"]
    scaling = config["learning_rate_scaling"]
    if scaling == "linear":
        return base * batch_size / 256
    if scaling == "sqrt":
        return base * math.sqrt(batch_size / 256)
    return base


def build_optimizer(config: dict) -> keras.optimizers.Optimizer:
    """SGD with momentum, LARS or Adam on a warmup + cosine schedule.

    SimSiam with SGD keeps its predictor at the constant peak rate (Chen & He 2021,
    section 4.4) through `keras_siamese.optimizers.simsiam_optimizer`.
    """
    resolved = config["resolved"]
    peak = resolved["peak_learning_rate"]
    total_steps = resolved["total_steps"]
    warmup_steps = resolved["warmup_steps"]
    weight_decay = resolved["weight_decay"] or None
    optimizer = resolved["optimizer"]
    if config["method"] == "simsiam" and optimizer == "sgd":
        return ks.optimizers.simsiam_optimizer(
            batch_size=config["batch_size"],
            steps=total_steps,
            base_learning_rate=peak * 256 / config["batch_size"],
            momentum=MOMENTUM,
            # simsiam_optimizer takes the paper's coupled decay and divides it by (1 - momentum).
            weight_decay=(weight_decay or 0.0) * (1.0 - MOMENTUM),
            warmup_steps=warmup_steps,
        )
    schedule = ks.optimizers.WarmupCosine(
        peak_learning_rate=peak, total_steps=total_steps, warmup_steps=warmup_steps
    )
    if optimizer == "lars":
        return ks.optimizers.LARS(schedule, momentum=MOMENTUM, weight_decay=weight_decay or 0.0)
    if optimizer == "adam":
        return keras.optimizers.Adam(schedule, weight_decay=weight_decay)
    return keras.optimizers.SGD(schedule, momentum=MOMENTUM, weight_decay=weight_decay)


def training_data(config: dict, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """The method's training batches from the unbatched training split.

    `dataset` yields `(image, label)` pairs for methods that need labels, images otherwise.
    """
    if not METHODS[config["method"]].needs_labels:
        return _image_batches(config, dataset)
    return _siamese_batches(config, dataset)


def triplet_batch_shape(config: dict, num_classes: int) -> tuple[int, int]:
    """`(classes_per_batch, samples_per_class)` of the P x K batches of siamese-triplet."""
    classes = config["classes_per_batch"] or min(num_classes, config["batch_size"] // 2)
    if classes > num_classes:
        raise app.UsageError(
            f"--classes_per_batch ({classes}) exceeds the {num_classes} classes of the dataset. "
            f"Received: --classes_per_batch={classes}"
        )
    samples = config["batch_size"] // classes
    if samples < 2:
        raise app.UsageError(
            f"--batch_size ({config['batch_size']}) must hold at least 2 examples of each of the "
            f"{classes} classes per batch, or no triplet has a positive. "
            f"Received: --batch_size={config['batch_size']}, --classes_per_batch={classes}"
        )
    return classes, samples


def _siamese_batches(config: dict, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Labelled pairs (contrastive) or P x K class-balanced batches (triplet)."""
    seed = config["seed"]
    if config["method"] == "siamese-contrastive":
        pairs = ks.sampling.make_pairs(dataset, positive_fraction=0.5, seed=seed)
        # One pair per example: tell Keras the epoch length, which `unbatch` hides.
        batches = pairs.batch(config["batch_size"], drop_remainder=True).apply(
            tf.data.experimental.assert_cardinality(config["resolved"]["steps_per_epoch"])
        )
    else:
        classes, samples = config["resolved"]["triplet_batch"]
        batches = ks.sampling.class_balanced_batches(dataset, classes, samples, seed=seed)
    return batches.prefetch(tf.data.AUTOTUNE)
