"""The methods of `train --method=...`: one `Method` row each, holding all `train` needs.

A row names the method's defaults (the `auto` values of `--optimizer`, `--learning_rate` and
`--weight_decay`), its own flags, and the functions that build its model, its batches, its
optimizer and its monitors from the resolved configuration. `train`, its flags and its help
read only the rows, so adding a method (BYOL, MoCo, ...) is adding one row:

```python
Method(
    "byol",
    "BYOL: online network predicts a momentum target, no negatives (Grill et al. 2020)",
    model_class="BYOL",
    needs_labels=False,
    optimizer="lars",
    learning_rate=0.2,
    weight_decay=1.5e-6,
    flags=(BYOL_TARGET_DECAY,),            # MethodFlag(flags.DEFINE_float, "byol_...", ...)
    build_model=method_models.byol,        # config -> keras.Model
    batch_layout=method_batches.whole_batch,
    build_batches=method_batches.images,
    build_optimizer=method_optimizers.scheduled,
    build_monitors=method_models.collapse_monitor,
)
```

This module and the three it takes functions from never import TensorFlow at import time,
so `--help` and flag errors are answered in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from absl import app, flags

import keras_siamese as ks
from keras_siamese.cli import (
    flag_checks,
    method_batches,
    method_models,
    method_optimizers,
    momentum_models,
    redundancy_models,
)

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class MethodFlag:
    """A flag that only some methods read; `train` defines it once, whichever rows list it.

    Attributes:
        define: the absl function that defines it, e.g. `flags.DEFINE_float`.
        name: the flag's name.
        default: its default value.
        help: its help; `train --help` prefixes the methods that read it.
        options: more keyword arguments of `define` (`lower_bound`, `enum_values`, ...).
        check: `check(name, value)` raises `absl.app.UsageError` for a bad value; it runs
            before TensorFlow is imported, whichever method is chosen. None: no check.
    """

    define: Callable[..., Any]
    name: str
    default: Any
    help: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    check: Callable[[str, Any], Any] | None = None


@dataclasses.dataclass(frozen=True)
class Method:
    """One training method of the command line: everything `train` needs to run it.

    Attributes:
        name: the `--method` value.
        summary: one line for the help, naming the paper.
        model_class: the public `keras_siamese` class the method trains; `train` refuses the
            method (before importing TensorFlow) when this installation lacks it.
        needs_labels: whether the method trains on `(image, label)` examples; the dataset must
            then have class labels.
        optimizer: the `auto` value of `--optimizer` (sgd, lars or adam).
        learning_rate: the `auto` value of `--learning_rate`: the peak rate for a batch of 256,
            scaled by `--learning_rate_scaling`.
        weight_decay: the `auto` value of `--weight_decay` (decoupled, as Keras applies it).
        flags: the method's own flags; `train` warns when a flag of another method is given.
        build_model: `config -> keras.Model`, called inside the strategy scope.
        batch_layout: `(config, num_classes) -> dict` while resolving: `batch_size` (the real
            global batch) and what `build_batches` reads, stored in `config["resolved"]`.
        build_batches: `(config, dataset) -> tf.data.Dataset`: the training batches from the
            unbatched split (images, or `(image, label)` pairs when `needs_labels`).
        build_optimizer: `config -> keras.optimizers.Optimizer`, from the resolved optimizer,
            peak rate, weight decay and steps.
        build_monitors: `config -> list of keras.callbacks.Callback` particular to the method
            (the kNN monitor, checkpoints and logs are common to all methods).
        view_recipe: whether `auto` `--crop_size` and `--encoder_grid` take the views recipe
            measured on Fashion-MNIST (16x16 crops of 28x28 images, a ResNet's 4x4 grid of
            averages). False for methods trained on whole labelled images (the siamese rows:
            the image size, global average pooling, as their own measured recipe).
    """

    name: str
    summary: str
    model_class: str
    needs_labels: bool
    optimizer: str
    learning_rate: float
    weight_decay: float
    flags: tuple[MethodFlag, ...]
    build_model: Callable[[dict], keras.Model]
    batch_layout: Callable[[dict, int | None], dict]
    build_batches: Callable[[dict, tf.data.Dataset], tf.data.Dataset]
    build_optimizer: Callable[[dict], keras.optimizers.Optimizer]
    build_monitors: Callable[[dict], list[keras.callbacks.Callback]]
    view_recipe: bool = True


TEMPERATURE = MethodFlag(
    flags.DEFINE_float, "temperature", 0.2, "NT-Xent temperature.", check=flag_checks.positive
)
PROJECTION_DIMS = MethodFlag(
    flags.DEFINE_list,
    "projection_dims",
    ["512", "128"],
    "Projection MLP sizes.",
    check=flag_checks.positive_integers,
)
SIMSIAM_FLAGS = (
    MethodFlag(
        flags.DEFINE_integer,
        "simsiam_projection_dim",
        512,
        "Projector width (paper: 2048).",
        {"lower_bound": 1},
    ),
    MethodFlag(
        flags.DEFINE_integer,
        "simsiam_projection_layers",
        2,
        "Projector layers (paper: 2 on CIFAR).",
        {"lower_bound": 1},
    ),
    MethodFlag(
        flags.DEFINE_integer,
        "simsiam_predictor_hidden_dim",
        128,
        "Predictor bottleneck (paper: 512).",
        {"lower_bound": 1},
    ),
)
SIAMESE_FLAGS = (
    MethodFlag(
        flags.DEFINE_integer,
        "siamese_embedding_dim",
        64,
        "Size of the L2-normalised embedding (0: the encoder's features).",
        {"lower_bound": 0},
    ),
    MethodFlag(
        flags.DEFINE_float,
        "siamese_margin",
        0.0,
        "Loss margin (0: contrastive 1.0, triplet 0.2).",
        {"lower_bound": 0.0},
        check=flag_checks.non_negative,
    ),
    MethodFlag(
        flags.DEFINE_enum,
        "siamese_distance",
        "euclidean",
        "Distance.",
        {"enum_values": ["euclidean", "cosine"]},
    ),
    MethodFlag(
        flags.DEFINE_bool,
        "siamese_augment",
        False,
        "Augment the images (SimCLR's crops, jitter).",
    ),
)
TRIPLET_FLAGS = (
    MethodFlag(
        flags.DEFINE_enum,
        "triplet_mining",
        "semi-hard",
        "Online triplet mining.",
        {"enum_values": ["semi-hard", "hard", "all"]},
    ),
    MethodFlag(
        flags.DEFINE_integer,
        "classes_per_batch",
        0,
        "Classes P of the P x K batches (0: as many as the dataset has, at most "
        "batch_size / 2); K = batch_size // P.",
        {"lower_bound": 0},
    ),
)

EXPANDER_DIMS = MethodFlag(
    flags.DEFINE_list,
    "expander_dims",
    ["512", "512", "512"],
    "Projector (Barlow Twins) or expander (VICReg) sizes (papers: 8192,8192,8192).",
    check=flag_checks.positive_integers,
)
BARLOW_TWINS_FLAGS = (
    EXPANDER_DIMS,
    MethodFlag(
        flags.DEFINE_float,
        "barlow_twins_lambda",
        0.0051,
        "Weight of the redundancy-reduction term (paper: 0.0051).",
        check=flag_checks.non_negative,
    ),
)
VICREG_FLAGS = (
    EXPANDER_DIMS,
    *(
        MethodFlag(
            flags.DEFINE_float,
            f"vicreg_{term}_weight",
            default,
            f"Weight of the {term} term (paper: {default:g}).",
            check=flag_checks.non_negative,
        )
        for term, default in (("invariance", 25.0), ("variance", 25.0), ("covariance", 1.0))
    ),
)
SWAV_FLAGS = (
    PROJECTION_DIMS,
    MethodFlag(
        flags.DEFINE_integer,
        "swav_prototypes",
        100,
        "Number of prototypes K (paper: 3000 on ImageNet).",
        {"lower_bound": 1},
    ),
    MethodFlag(
        flags.DEFINE_float,
        "swav_temperature",
        0.1,
        "Softmax temperature of the swapped predictions (paper: 0.1).",
        check=flag_checks.positive,
    ),
    MethodFlag(
        flags.DEFINE_float,
        "swav_epsilon",
        0.05,
        "Entropy weight of the Sinkhorn codes (paper: 0.05).",
        check=flag_checks.positive,
    ),
    MethodFlag(
        flags.DEFINE_integer,
        "swav_sinkhorn_iterations",
        3,
        "Sinkhorn-Knopp iterations (paper: 3).",
        {"lower_bound": 1},
    ),
    MethodFlag(
        flags.DEFINE_integer,
        "swav_queue_size",
        0,
        "Projections of earlier batches kept per global view for the codes (paper: 3840 "
        "with batches of 256; 0: none).",
        {"lower_bound": 0},
    ),
    MethodFlag(
        flags.DEFINE_integer,
        "swav_freeze_prototypes_steps",
        0,
        "Steps without prototype updates at the start (paper: one epoch).",
        {"lower_bound": 0},
    ),
    MethodFlag(
        flags.DEFINE_integer,
        "swav_local_views",
        0,
        "Multi-crop's low-resolution views, 96/224 of the view size (paper: 6; 0: two views "
        "as the other methods).",
        {"lower_bound": 0},
    ),
)

TARGET_MOMENTUM = MethodFlag(
    flags.DEFINE_float,
    "target_momentum",
    0.99,
    "Base momentum of the moving-average target, raised to 1 by a cosine schedule over the "
    "run (MoCo v2: constant). Papers: BYOL and DINO 0.996, MoCo v2 0.999, MoCo v3 0.99.",
    check=functools.partial(flag_checks.number, minimum=0.0, maximum=1.0, open_maximum=True),
)
BYOL_FLAGS = (
    MethodFlag(
        flags.DEFINE_integer,
        "byol_projection_dim",
        128,
        "Output of the projector and predictor (paper: 256).",
        {"lower_bound": 1},
    ),
    MethodFlag(
        flags.DEFINE_integer,
        "byol_hidden_dim",
        512,
        "Hidden width of the projector and predictor (paper: 4096).",
        {"lower_bound": 1},
    ),
)
MOCO_FLAGS = (
    MethodFlag(
        flags.DEFINE_enum,
        "moco_version",
        "v2",
        "v2: a queue of keys; v3: the batch's keys, a predictor, a cosine momentum.",
        {"enum_values": ["v2", "v3"]},
    ),
    MethodFlag(
        flags.DEFINE_integer,
        "moco_queue_size",
        4096,
        "MoCo v2's queue of negative keys (at least --batch_size).",
        {"lower_bound": 1},
    ),
    MethodFlag(
        flags.DEFINE_float,
        "moco_temperature",
        0.2,
        "InfoNCE temperature (v2 paper: 0.2).",
        check=flag_checks.positive,
    ),
    MethodFlag(
        flags.DEFINE_integer,
        "moco_projection_dim",
        128,
        "Output of the heads (papers: 128 for v2, 256 for v3).",
        {"lower_bound": 1},
    ),
    MethodFlag(
        flags.DEFINE_integer,
        "moco_hidden_dim",
        512,
        "Hidden width of the heads (papers: 2048 for v2, 4096 for v3).",
        {"lower_bound": 1},
    ),
)
DINO_FLAGS = (
    MethodFlag(
        flags.DEFINE_integer,
        "dino_output_dim",
        1024,
        "Outputs (prototypes) of the DINO head (paper: 65536).",
        {"lower_bound": 1},
    ),
    MethodFlag(
        flags.DEFINE_float,
        "dino_teacher_temperature",
        0.07,
        "Teacher temperature (paper: 0.04 to 0.07).",
        check=flag_checks.positive,
    ),
    MethodFlag(
        flags.DEFINE_bool,
        "dino_head_batch_norm",
        True,
        "BatchNorm in the head's hidden layers (paper: off; without it a small encoder's "
        "outputs collapsed to uniform in tests/test_dino.py).",
    ),
)

METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method(
            "simclr",
            "SimCLR: NT-Xent between two views against the batch (Chen et al. 2020)",
            model_class="SimCLR",
            needs_labels=False,
            optimizer="sgd",
            learning_rate=0.6,  # examples/simclr_fashion_mnist.py
            weight_decay=5e-4,
            flags=(TEMPERATURE, PROJECTION_DIMS),
            build_model=method_models.simclr,
            batch_layout=method_batches.whole_batch,
            build_batches=method_batches.images,
            build_optimizer=method_optimizers.scheduled,
            build_monitors=method_models.collapse_monitor,
        ),
        Method(
            "simsiam",
            "SimSiam: predictor + stop-gradient, no negatives (Chen & He 2021)",
            model_class="SimSiam",
            needs_labels=False,
            optimizer="sgd",
            learning_rate=0.5,  # examples/simsiam_fashion_mnist.py (paper: 0.03, long runs)
            weight_decay=5e-3,  # The paper's coupled 5e-4 with momentum 0.9.
            flags=SIMSIAM_FLAGS,
            build_model=method_models.simsiam,
            batch_layout=method_batches.whole_batch,
            build_batches=method_batches.images,
            build_optimizer=method_optimizers.simsiam,
            build_monitors=method_models.collapse_monitor,
        ),
        Method(
            "siamese-contrastive",
            "Siamese network on labelled pairs, contrastive margin loss (Hadsell et al. 2006)",
            model_class="SiameseNetwork",
            needs_labels=True,
            optimizer="adam",
            learning_rate=2e-3,  # examples/siamese_fashion_mnist.py
            weight_decay=0.0,
            flags=SIAMESE_FLAGS,
            build_model=method_models.siamese_contrastive,
            batch_layout=method_batches.whole_batch,
            build_batches=method_batches.pairs,
            build_optimizer=method_optimizers.scheduled,
            build_monitors=method_models.no_monitors,
            view_recipe=False,
        ),
        Method(
            "siamese-triplet",
            "Siamese network on labelled triplets, triplet margin loss (Schroff et al. 2015)",
            model_class="SiameseNetwork",
            needs_labels=True,
            optimizer="adam",
            learning_rate=2e-3,  # examples/siamese_fashion_mnist.py
            weight_decay=0.0,
            flags=(*SIAMESE_FLAGS, *TRIPLET_FLAGS),
            build_model=method_models.siamese_triplet,
            batch_layout=method_batches.class_balanced,
            build_batches=method_batches.class_balanced_batches,
            build_optimizer=method_optimizers.scheduled,
            build_monitors=method_models.no_monitors,
            view_recipe=False,
        ),
        # Rates: the best of 0.01/0.05/0.2 (Barlow Twins), 0.02/0.1 (VICReg) and
        # 0.01/0.05/0.3 (SwAV) in 2 epochs on 16,384 images with the demo's ResNet-10: kNN
        # 0.717, 0.723, 0.738 against 0.707 at random init. Decays: the papers' (LARS).
        Method(
            "barlow-twins",
            "Barlow Twins: cross-correlation of the views to the identity (Zbontar et al. 2021)",
            model_class="BarlowTwins",
            needs_labels=False,
            optimizer="sgd",
            learning_rate=0.01,  # the loss sums d^2 terms: large gradients
            weight_decay=1.5e-6,
            flags=BARLOW_TWINS_FLAGS,
            build_model=redundancy_models.barlow_twins,
            batch_layout=method_batches.whole_batch,
            build_batches=method_batches.images,
            build_optimizer=method_optimizers.scheduled,
            build_monitors=method_models.collapse_monitor,
        ),
        Method(
            "vicreg",
            "VICReg: invariance, variance and covariance terms (Bardes et al. 2022)",
            model_class="VICReg",
            needs_labels=False,
            optimizer="sgd",
            learning_rate=0.1,
            weight_decay=1e-6,
            flags=VICREG_FLAGS,
            build_model=redundancy_models.vicreg,
            batch_layout=method_batches.whole_batch,
            build_batches=method_batches.images,
            build_optimizer=method_optimizers.scheduled,
            build_monitors=method_models.collapse_monitor,
        ),
        Method(
            "swav",
            "SwAV: swapped prediction of Sinkhorn cluster codes (Caron et al. 2020)",
            model_class="SwAV",
            needs_labels=False,
            optimizer="sgd",
            learning_rate=0.3,
            weight_decay=1e-6,
            flags=SWAV_FLAGS,
            build_model=redundancy_models.swav,
            batch_layout=method_batches.whole_batch,
            build_batches=method_batches.images,
            build_optimizer=method_optimizers.scheduled,
            build_monitors=method_models.collapse_monitor,
        ),
        Method(
            "byol",
            "BYOL: online network predicts a moving-average target, no negatives "
            "(Grill et al. 2020)",
            model_class="BYOL",
            needs_labels=False,
            optimizer="sgd",
            # tests/test_byol.py's 0.2 at batch 64; examples/byol_fashion_mnist.py at this rate,
            # 2 epochs on 16,384 images with the demo's ResNet-10: kNN 0.707 -> 0.719.
            learning_rate=0.8,
            weight_decay=0.0,
            flags=(TARGET_MOMENTUM, *BYOL_FLAGS),
            build_model=momentum_models.byol,
            batch_layout=method_batches.whole_batch,
            build_batches=method_batches.images,
            build_optimizer=method_optimizers.scheduled,
            build_monitors=method_models.collapse_monitor,
        ),
        Method(
            "moco",
            "MoCo v2/v3: InfoNCE against momentum keys from a queue or the batch "
            "(He et al. 2020, Chen et al. 2021)",
            model_class="MoCo",
            needs_labels=False,
            optimizer="sgd",
            learning_rate=0.8,  # tests/test_moco.py's kNN runs: 0.2 at batch 64
            weight_decay=0.0,
            flags=(TARGET_MOMENTUM, *MOCO_FLAGS),
            build_model=momentum_models.moco,
            batch_layout=method_batches.whole_batch,
            build_batches=method_batches.images,
            build_optimizer=method_optimizers.scheduled,
            build_monitors=method_models.collapse_monitor,
        ),
        Method(
            "dino",
            "DINO: self-distillation from a momentum teacher, centred and sharpened "
            "(Caron et al. 2021)",
            model_class="DINO",
            needs_labels=False,
            optimizer="adam",
            learning_rate=2e-3,  # the peak of tests/test_dino.py (AdamW, batch 64); paper: 5e-4
            weight_decay=0.04,  # the paper's start value
            flags=(TARGET_MOMENTUM, *DINO_FLAGS),
            build_model=momentum_models.dino,
            batch_layout=method_batches.whole_batch,
            build_batches=method_batches.images,
            build_optimizer=method_optimizers.scheduled,
            build_monitors=method_models.collapse_monitor,
        ),
    )
}


def method_flags() -> dict[str, tuple[MethodFlag, tuple[str, ...]]]:
    """Every method-specific flag once: `{name: (flag, names of the methods that read it)}`.

    Raises:
        ValueError: if two rows define different flags under one name.
    """
    found: dict[str, tuple[MethodFlag, tuple[str, ...]]] = {}
    for method in METHODS.values():
        for flag in method.flags:
            known, readers = found.get(flag.name, (flag, ()))
            if known != flag:
                raise ValueError(
                    f"Methods {readers} and {method.name!r} define different flags named "
                    f"{flag.name!r}: share one `MethodFlag`. Received: {known} and {flag}"
                )
            found[flag.name] = (flag, (*readers, method.name))
    return found


def check_available(name: str) -> Method:
    """Returns the method, or raises UsageError if this installation lacks its model class.

    Reads `keras_siamese.__all__`, so it answers without importing TensorFlow.
    """
    method = METHODS[name]
    if method.model_class not in ks.__all__:
        available = [m.name for m in METHODS.values() if m.model_class in ks.__all__]
        raise app.UsageError(
            f"--method={name} needs keras_siamese.{method.model_class}, which this version of "
            f"keras_siamese does not have. Available: {', '.join(available)}. "
            f"Received: --method={name}"
        )
    return method
