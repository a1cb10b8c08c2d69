"""The parts the recipe sweep and the quality benchmark build their runs from.

One place for the recipes (`RECIPES`, what `recipe.py` sweeps around and `quality.py`
trains), the encoder builder they vary (a ResNet with free widths, depths, stem and output
pooling; the default equals `keras_siamese.encoders.resnet(10, width=16)`), the optimizers
(SGD, LARS, Adam, AdamW, LAMB on a warmup + cosine schedule), the input pipeline, the
timed float32/bfloat16 probe and the unseen-class evaluation of the Siamese runs.
Benchmark code: imported by `recipe.py`, `quality.py` and `device_check.py` only.
"""

import inspect
import os
import time

import keras
import numpy as np
import tensorflow as tf

import keras_siamese as ks

IMAGE_SHAPE = (28, 28, 1)
SEEN_CLASSES = tuple(range(7))  # the Siamese runs train on 0-6, evaluate on unseen 7-9
UNSEEN_PAIRS_SEED = 1  # the unseen-class pairs never change with the run's seed

# The recipes. `recipe.py` overrides keys of these; `quality.py` trains them as they are.
RECIPES = {
    "simclr": {
        "method": "simclr",
        "blocks": [1, 1, 1, 1],  # residual blocks per stage (ResNet-10)
        "widths": [16, 32, 64, 128],  # filters per stage
        "stem_stride": 1,  # 1: the CIFAR stem (3x3, stride 1, no pooling); 2: stride 2
        "pool": "grid4",  # encoder output: avg (global average) or gridN (N x N average grid)
        "view_size": 16,  # side of the augmented views (the model still takes 28x28)
        "train_on": "all",  # all train images, or "seen": classes 0-6 only
        "batch": 256,
        "epochs": 4.0,
        "optimizer": "sgd",
        "learning_rate": 0.6,  # peak, for this batch (not rescaled)
        "weight_decay": 5e-4,
        "warmup": 0.1,  # fraction of the steps
        "temperature": 0.2,
        "min_crop": 0.25,
        "strength": 1.0,
        "blur": False,
        "projection": [512, 128],
        "precision": "float32",  # float32, bfloat16 or auto (the faster, probed)
    },
    "simsiam": {
        "method": "simsiam",
        "blocks": [1, 1, 1, 1],
        "widths": [16, 32, 64, 128],
        "stem_stride": 1,
        "pool": "grid4",
        "view_size": 16,
        "train_on": "all",
        "batch": 256,
        "epochs": 4.0,
        "optimizer": "sgd",
        "learning_rate": 0.5,  # SGD: base rate x batch / 256 (simsiam_optimizer)
        "weight_decay": 5e-4,
        "warmup": 0.1,
        "min_crop": 0.25,
        "strength": 1.0,
        "blur": False,
        "projection": [512, 512],  # projector: width x layers
        "predictor": 128,
        "precision": "float32",
    },
    "siamese": {
        "method": "siamese",
        "loss": "triplet",  # or contrastive
        "blocks": [1, 1, 1, 1],
        "widths": [8, 16, 32, 64],
        "stem_stride": 1,
        "pool": "avg",
        "view_size": 28,
        "epochs": 2.0,
        "train_examples": 10500,  # of the 42,000 seen-class images (0: all)
        "batch": 64,  # contrastive: pairs per batch
        "classes_per_batch": 7,  # triplet: P x K
        "samples_per_class": 16,
        "mining": "semi-hard",
        "margin": 0.0,  # 0: the loss's default (contrastive 1.0, triplet 0.2)
        "embedding": 64,
        "distance": "euclidean",
        "augment": 0.0,  # 0: none; else SimCLR crops/flips/jitter of this strength
        "pretrain_epochs": 0.0,  # SimCLR (its recipe) on the seen images first, 0: none
        "min_crop": 0.5,
        "optimizer": "adam",
        "learning_rate": 2e-3,
        "weight_decay": 0.0,
        "warmup": 0.0,
        "precision": "float32",
    },
}

# The other self-supervised methods train SimCLR's encoder on SimCLR's views and schedule
# (these keys are read from RECIPES["simclr"]); their own keys are the CLI rows'
# (`keras_siamese/cli/methods.py`: optimizer, peak rate for batch 256, decay; the flag defaults
# for heads, momentum, queue, temperatures), which were measured on a 2-core CPU.
SHARED_WITH_SIMCLR = (
    "blocks", "widths", "stem_stride", "pool", "view_size", "train_on", "batch", "epochs",
    "warmup", "min_crop", "strength", "blur", "precision",
)  # fmt: skip


def _like_simclr(method, **own):
    return {"method": method, **{key: RECIPES["simclr"][key] for key in SHARED_WITH_SIMCLR}, **own}


RECIPES.update(
    {
        "byol": _like_simclr(
            "byol",
            views="byol",  # BYOL's asymmetric pair (augment.byol_augmenters; blur off)
            optimizer="sgd",
            learning_rate=0.8,
            weight_decay=0.0,
            momentum=0.99,  # base, cosine to 1 over the run (paper: 0.996)
            projection=[512, 128],  # hidden, output of projector and predictor (paper: 4096, 256)
        ),
        "moco": _like_simclr(
            "moco",  # v2: a queue of keys, a constant momentum
            views="simsiam",  # MoCo v2's augmentation (SimSiam reuses it)
            optimizer="sgd",
            learning_rate=0.8,
            weight_decay=0.0,
            momentum=0.99,  # constant (paper: 0.999)
            queue=4096,  # 16 batches of 256 (paper: 65536)
            temperature=0.2,
            projection=[512, 128],  # hidden, output (paper: 2048, 128)
        ),
        "dino": _like_simclr(
            "dino",
            views="simclr",
            local_views=0,  # 0: the two global views only; else multi-crop's local ones too
            optimizer="adam",  # decoupled decay (the CLI's AdamW)
            learning_rate=2e-3,
            weight_decay=0.04,
            momentum=0.99,  # base, cosine to 1 (paper: 0.996)
            projection=[512, 128],  # hidden, bottleneck of the head (paper: 2048, 256)
            output_dim=1024,  # paper: 65536
            head_batch_norm=True,  # without it small encoders collapsed (tests/test_dino.py)
            teacher_temperature=0.07,
        ),
        "barlow_twins": _like_simclr(
            "barlow_twins",
            views="byol",  # the paper's (BYOL's asymmetric pair)
            optimizer="sgd",
            learning_rate=0.01,  # the loss sums d^2 terms: large gradients
            weight_decay=1.5e-6,
            projection=[512, 512, 512],  # paper: 8192 x 3
            lambda_=0.0051,
        ),
        "vicreg": _like_simclr(
            "vicreg",
            views="byol",  # the paper's (BYOL's asymmetric pair)
            optimizer="sgd",
            learning_rate=0.1,
            weight_decay=1e-6,
            projection=[512, 512, 512],  # the expander (paper: 8192 x 3)
            weights=[25.0, 25.0, 1.0],  # invariance, variance, covariance (the paper's)
        ),
        "swav": _like_simclr(
            "swav",
            views="simclr",
            local_views=0,  # 0: the two global views only; else multi-crop's local ones too
            optimizer="sgd",
            learning_rate=0.3,
            weight_decay=1e-6,
            projection=[512, 128],  # paper: 2048, 128
            prototypes=100,  # 10 classes (paper: 3000 on ImageNet)
            temperature=0.1,
            epsilon=0.05,
            sinkhorn_iterations=3,
            queue=0,  # a batch of 256 already spreads over 100 prototypes (paper: 3840)
            freeze_prototypes_steps=0,  # paper: one epoch
        ),
    }
)


def recipe(overrides):
    """The recipe of `overrides["method"]` (default simclr) with `overrides` applied."""
    method = overrides.get("method", "simclr")
    base = RECIPES["siamese" if method.startswith("siamese") else method]
    unknown = set(overrides) - set(base)
    if unknown:
        raise ValueError(f"Unknown recipe keys {sorted(unknown)} for {method}: {sorted(base)}")
    return {**base, **overrides}


# --------------------------------------------------------------------------- encoder


def _conv_bn(x, filters, kernel_size, strides, name, activation=True):
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if activation else x


def encoder(config):
    """A ResNet of basic blocks with `widths`, `blocks`, `stem_stride` and `pool` of `config`.

    With the defaults it is layer for layer `keras_siamese.encoders.resnet(10, (28, 28, 1),
    width=16)`. Views smaller than the images need an encoder of any input size: then its
    input is `(None, None, 1)` and the model gets `image_size=(28, 28)`.
    """
    size = None if config["view_size"] != IMAGE_SHAPE[0] else IMAGE_SHAPE[0]
    inputs = keras.Input((size, size, IMAGE_SHAPE[-1]), name="images")
    x = _conv_bn(inputs, config["widths"][0], 3, config["stem_stride"], "stem")
    stages = zip(config["widths"], config["blocks"], strict=True)
    for stage, (filters, repeats) in enumerate(stages):
        for index in range(repeats):
            strides = 2 if stage > 0 and index == 0 else 1
            name = f"stage{stage + 1}_block{index + 1}"
            y = _conv_bn(x, filters, 3, strides, f"{name}_1")
            y = _conv_bn(y, filters, 3, 1, f"{name}_2", activation=False)
            shortcut = x
            if strides != 1 or x.shape[-1] != filters:
                shortcut = _conv_bn(x, filters, 1, strides, f"{name}_shortcut", activation=False)
            x = keras.layers.Add(name=f"{name}_add")([y, shortcut])
            x = keras.layers.ReLU(name=f"{name}_out")(x)
    if config["pool"] == "avg":
        outputs = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    elif config["pool"].startswith("grid"):
        cells = int(config["pool"][4:])
        x = keras.layers.AdaptiveAveragePooling2D((cells, cells), name="pool")(x)
        outputs = keras.layers.Flatten(name="flatten")(x)
    else:
        raise ValueError(f"pool must be avg or gridN. Received: pool={config['pool']!r}")
    return keras.Model(inputs, outputs, name="resnet")


def model_size_arguments(config):
    """`image_size=` for an encoder of any size (smaller views), else nothing."""
    return {"image_size": IMAGE_SHAPE[:2]} if config["view_size"] != IMAGE_SHAPE[0] else {}


# --------------------------------------------------------------------------- augmentation


def augmenter(config, seed, kind="simclr"):
    """The recipe's augmentation at `view_size`, through the public recipe functions."""
    build = ks.augment.simsiam_augmenter if kind == "simsiam" else ks.augment.simclr_augmenter
    parameters = inspect.signature(build).parameters
    options = {"channels": IMAGE_SHAPE[-1], "strength": config["strength"], "seed": seed}
    if "blur" in parameters or kind == "simclr":
        options["blur"] = config.get("blur", False)
    if "min_crop" in parameters:
        options["min_crop"] = config["min_crop"]
    else:
        options["crop_area"] = (config["min_crop"], 1.0)
    size = config["view_size"]
    return build((size, size), **options)


def views(config, seed):
    """The augmenter of a recipe with a `views` key: a layer, a pair or a `MultiCrop`.

    `views`: simclr or simsiam (`augmenter`), byol (BYOL's asymmetric pair). A `local_views`
    above 0 gives multi-crop instead: two global views as the recipe's, plus that many local
    ones of 96/224 of `view_size` (crop area 0.05 to `min_crop`), at least one pixel more
    than the encoder's total stride: a grid pooling fails on a 1 x 1 last stage.
    """
    size, channels = (config["view_size"],) * 2, IMAGE_SHAPE[-1]
    crop_area = (config["min_crop"], 1.0)
    if config.get("local_views", 0):
        stride = config["stem_stride"] * 2 ** (len(config["widths"]) - 1)
        local = max(round(config["view_size"] * 96 / 224), stride + 1)
        return ks.augment.multi_crop_augmenter(
            size,
            (local, local),
            local_views=config["local_views"],
            channels=channels,
            global_crop_area=crop_area,
            local_crop_area=(0.05, config["min_crop"]),
            strength=config["strength"],
            blur=config["blur"],
            seed=seed,
        )
    if config["views"] == "byol":
        return ks.augment.byol_augmenters(
            size,
            channels=channels,
            strength=config["strength"],
            blur=config["blur"],
            crop_area=crop_area,
            seed=seed,
        )
    return augmenter(config, seed, kind=config["views"])


# --------------------------------------------------------------------------- optimizer


def optimizer(config, steps):
    """`config["optimizer"]` on a warmup + cosine schedule reaching 0 at `steps`."""
    warmup = min(int(steps * config["warmup"]), steps - 1)
    rate, decay = config["learning_rate"], config["weight_decay"]
    if config["method"] == "simsiam" and config["optimizer"] == "sgd":
        return ks.optimizers.simsiam_optimizer(
            config["batch"],
            steps,
            base_learning_rate=rate,
            weight_decay=decay,
            warmup_steps=warmup,
        )
    schedule = ks.optimizers.WarmupCosine(rate, total_steps=steps, warmup_steps=warmup)
    name = config["optimizer"]
    if name == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=decay or None)
    if name == "lars":
        return ks.optimizers.LARS(schedule, momentum=0.9, weight_decay=decay)
    if name == "adam":  # decoupled decay, as Keras applies weight_decay
        return keras.optimizers.Adam(schedule, weight_decay=decay or None)
    if name == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=decay)
    if name == "lamb":
        return keras.optimizers.Lamb(schedule, weight_decay=decay or None)
    raise ValueError(f"optimizer must be sgd, lars, adam, adamw or lamb. Received: {name!r}")


# --------------------------------------------------------------------------- data


def images_dataset(images, batch, seed):
    """Shuffled batches of uint8 images, endlessly; the index shuffle keeps it cheap.

    The 60,000 images stay one in-memory tensor; each batch is a `gather` of shuffled
    indices in a parallel `map`, prefetched, so the step never waits for its input.
    """
    table = tf.constant(images)
    return (
        tf.data.Dataset.range(len(images))
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch, drop_remainder=True)
        .map(lambda index: tf.gather(table, index), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def batches_per_second(dataset, count=200):
    """How fast `dataset` alone yields batches (after 10 warm-up batches)."""
    iterator = iter(dataset)
    for _ in range(10):
        next(iterator)
    started = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count / (time.perf_counter() - started)


# --------------------------------------------------------------------------- precision


def set_precision(name):
    """Sets the global policy for "float32" or "bfloat16"; returns the policy's name."""
    return ks.distribute.set_mixed_precision("bfloat16" if name == "bfloat16" else "none")


def precision_probe(config, seed=0):
    """Which precision trains `config`'s SimCLR step faster here (a ~20 s probe)."""
    batch = tf.constant(
        np.random.default_rng(seed).integers(0, 256, (config["batch"], 28, 28, 1), dtype=np.uint8)
    )

    def build_model():
        keras.utils.set_random_seed(seed)
        model = ks.SimCLR(
            encoder(config),
            augmenter(config, seed),
            tuple(config.get("projection", (512, 128))),
            0.2,
            **model_size_arguments(config),
        )
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
        return model

    return ks.distribute.fastest_precision(build_model, batch, ("float32", "bfloat16"))


# --------------------------------------------------------------------------- Siamese


def siamese_data(seed, train_examples):
    """`(seen-class train images, unseen-class test images, the fixed unseen pairs)`."""
    train = ks.datasets.load_arrays("fashion_mnist", "train")
    test = ks.datasets.load_arrays("fashion_mnist", "test")
    seen, _ = ks.sampling.split_classes(train, SEEN_CLASSES)
    _, unseen = ks.sampling.split_classes(test, SEEN_CLASSES)
    if train_examples:
        keep = np.random.default_rng(seed).permutation(len(seen[1]))[:train_examples]
        seen = (seen[0][keep], seen[1][keep])
    pairs = ks.sampling.make_pairs(unseen, 0.5, seed=UNSEEN_PAIRS_SEED).batch(500).cache()
    return seen, unseen, pairs


def unseen_class_report(model, unseen, pairs, **options):
    """ROC AUC / EER of the fixed unseen pairs and leave-one-out recall@1, mAP@R of `unseen`.

    `options` (`distance`, `input_scale`) are for a plain model such as the pixel baseline.
    """
    scores, same = ks.evaluation.pair_scores(model, pairs, progress=False, **options)
    verification = ks.evaluation.verification_metrics(scores, same)
    retrieval = ks.evaluation.retrieval_report(model, unseen, unseen, progress=False, **options)
    return {
        "roc_auc": verification["roc_auc"],
        "equal_error_rate": verification["equal_error_rate"],
        "recall@1": retrieval["recall@1"],
        "map@r": retrieval["map@r"],
    }


def load_average():
    return round(os.getloadavg()[0], 2)
