"""The parts the recipe sweep and the quality benchmark build their runs from.

The sweep's recipes (`RECIPES`, what `recipe.py` overrides) are `keras_siamese.recipes`'
(SimCLR, SimSiam, the triplet Siamese network) spelled in the sweep's keys; `to_recipe` turns
an overridden configuration back into a `ks.recipes` recipe that builds the model and the
optimizer, on the encoder `encoder` builds through `ks.encoders.resnet` (free widths, blocks,
stem stride and output pooling). Also: the optimizers a recipe lacks (AdamW, LAMB), the input
pipeline, the timed float32/bfloat16 probe and the unseen-class evaluation of the Siamese
runs. Benchmark code: imported by `recipe.py` and `quality.py` only.
"""

import os
import time

import keras
import numpy as np
import tensorflow as tf

import keras_siamese as ks

IMAGE_SHAPE = (28, 28, 1)
SEEN_CLASSES = tuple(range(7))  # the Siamese runs train on 0-6, evaluate on unseen 7-9
UNSEEN_PAIRS_SEED = 1  # the unseen-class pairs never change with the run's seed
DEPTH_BLOCKS = {10: [1, 1, 1, 1], 18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}  # basic-block ResNets
SWEEP_ONLY_OPTIMIZERS = ("adamw", "lamb")  # beside the recipes' sgd, lars and adam


def _common(recipe):
    """The keys every sweep recipe has, from a `ks.recipes` recipe."""
    return {
        "blocks": DEPTH_BLOCKS[recipe.encoder_depth],  # residual blocks per stage
        "widths": [recipe.encoder_width * 2**stage for stage in range(4)],  # filters per stage
        "stem_stride": 1,  # 1: the CIFAR stem (3x3, stride 1, no pooling); 2: stride 2
        "pool": "avg" if recipe.encoder_grid == 1 else f"grid{recipe.encoder_grid}",
        "view_size": recipe.crop_size or IMAGE_SHAPE[0],  # the model still takes 28x28
        "batch": recipe.batch_size,
        "epochs": float(recipe.epochs),
        "optimizer": recipe.optimizer,
        "learning_rate": recipe.learning_rate,  # peak, for this batch (not rescaled)
        "weight_decay": recipe.weight_decay,  # decoupled (SimSiam: x 0.1 = the paper's coupled)
        "warmup": recipe.warmup_fraction,  # fraction of the steps
        "min_crop": recipe.min_crop_area,
        "strength": recipe.color_strength,
        "blur": recipe.blur,
        "precision": "float32",  # float32, bfloat16 or auto (the faster, probed)
    }


def _sweep_recipes():
    simclr, simsiam = ks.recipes.get("simclr"), ks.recipes.get("simsiam")
    triplet = ks.recipes.get("siamese-triplet")
    classes, per_class = triplet.triplet_layout(len(SEEN_CLASSES))
    return {
        "simclr": {
            "method": "simclr",
            **_common(simclr),
            "train_on": "all",  # all train images, or "seen": classes 0-6 only
            "temperature": simclr.temperature,
            "projection": list(simclr.projection_dims),
        },
        "simsiam": {
            "method": "simsiam",
            **_common(simsiam),
            "train_on": "all",
            "projection": [simsiam.projection_dim] * simsiam.projection_layers,  # width x layers
            "predictor": simsiam.predictor_hidden_dim,
        },
        "siamese": {
            "method": "siamese",
            **_common(triplet),
            "loss": "triplet",  # or contrastive (the siamese-contrastive recipe)
            "train_examples": 10500,  # of the 42,000 seen-class images (0: all)
            "batch": ks.recipes.get("siamese-contrastive").batch_size,  # contrastive: pairs
            "classes_per_batch": classes,  # triplet: P x K
            "samples_per_class": per_class,
            "mining": triplet.mining,
            "margin": 0.0,  # 0: the loss's recipe's (contrastive 1.0, triplet 0.2)
            "embedding": triplet.embedding_dim,
            "distance": triplet.distance,
            "augment": 0.0,  # 0: none; else SimCLR crops/flips/jitter of this strength
            "pretrain_epochs": triplet.pretrain_epochs,  # SimCLR on the seen images first
        },
    }


# The recipes. `recipe.py` overrides keys of these.
RECIPES = _sweep_recipes()


def recipe(overrides):
    """The recipe of `overrides["method"]` (default simclr) with `overrides` applied.

    A Siamese run with `"loss": "contrastive"` starts from the contrastive recipe's rate and
    embedding size.
    """
    method = overrides.get("method", "simclr")
    base = RECIPES["siamese" if method.startswith("siamese") else method]
    if method.startswith("siamese") and overrides.get("loss") == "contrastive":
        contrastive = ks.recipes.get("siamese-contrastive")
        base = {
            **base,
            "learning_rate": contrastive.learning_rate,
            "embedding": contrastive.embedding_dim,
        }
    unknown = set(overrides) - set(base)
    if unknown:
        raise ValueError(f"Unknown recipe keys {sorted(unknown)} for {method}: {sorted(base)}")
    return {**base, **overrides}


def to_recipe(config):
    """The `ks.recipes` recipe of a sweep configuration (its encoder is `encoder(config)`)."""
    method = config["method"]
    if method == "siamese":
        name = f"siamese-{config['loss']}"
    else:
        name = method
    base = ks.recipes.get(name)
    fields = {
        "encoder_grid": 1 if config["pool"] == "avg" else int(config["pool"][4:]),
        "crop_size": None if config["view_size"] == IMAGE_SHAPE[0] else config["view_size"],
        "batch_size": config["batch"],
        "learning_rate": config["learning_rate"],
        "weight_decay": config["weight_decay"],
        "warmup_fraction": config["warmup"],
        "min_crop_area": config["min_crop"],
        "color_strength": config["strength"],
        "blur": config["blur"],
    }
    if config["optimizer"] not in SWEEP_ONLY_OPTIMIZERS:
        fields["optimizer"] = config["optimizer"]
    fields.update(_method_fields(config))
    return base.replace(**fields)


def _method_fields(config):
    """The recipe fields of the method's own sweep keys."""
    if config["method"] == "simclr":
        return {
            "temperature": config["temperature"],
            "projection_dims": tuple(config["projection"]),
        }
    if config["method"] == "simsiam":
        return {
            "projection_dim": config["projection"][0],
            "projection_layers": len(config["projection"]),
            "predictor_hidden_dim": config["predictor"],
        }
    triplet = config["loss"] == "triplet"
    fields = {
        "embedding_dim": config["embedding"],
        "distance": config["distance"],
        "augment": bool(config["augment"]),
        "pretrain_epochs": config["pretrain_epochs"],
        "batch_size": config["classes_per_batch"] * config["samples_per_class"]
        if triplet
        else config["batch"],
        "mining": config["mining"],
    }
    if triplet:
        fields["classes_per_batch"] = config["classes_per_batch"]
    if config["margin"]:
        fields["margin"] = config["margin"]
    if config["augment"]:
        fields["color_strength"] = config["augment"]
    return fields


# --------------------------------------------------------------------------- encoder


def encoder(config):
    """`ks.encoders.resnet` of basic blocks with `widths`, `blocks`, `stem_stride` and `pool`.

    With a recipe's values it is that recipe's `build_encoder()`: images of any size (train on
    `view_size` views, serve 28x28 images).
    """
    if not config["pool"] == "avg" and not config["pool"].startswith("grid"):
        raise ValueError(f"pool must be avg or gridN. Received: pool={config['pool']!r}")
    return ks.encoders.resnet(
        10,
        input_shape=(None, None, IMAGE_SHAPE[-1]),
        small_images=True,
        widths=config["widths"],
        blocks=config["blocks"],
        stem_stride=config["stem_stride"],
        grid_size=None if config["pool"] == "avg" else int(config["pool"][4:]),
        name="resnet",
    )


def build_model(config, steps, seed):
    """The uncompiled model of a (SimCLR, SimSiam or Siamese) sweep configuration."""
    recipe_of_config = to_recipe(config)
    return recipe_of_config.build_model(IMAGE_SHAPE, steps, encoder=encoder(config), seed=seed)


def simclr_pretraining(siamese, encoder, images, seed, verbose=2):
    """`siamese.pretraining_recipe()` (SimCLR) on `encoder` in place, for the Siamese recipe's
    `pretrain_epochs` over `images` (at least 10 steps); returns the steps."""
    simclr = siamese.pretraining_recipe()
    steps = max(10, round(siamese.pretrain_epochs * len(images) / simclr.batch_size))
    model = simclr.build_model(IMAGE_SHAPE, steps, encoder=encoder, seed=seed)
    model.compile(optimizer=simclr.build_optimizer(steps))
    dataset = images_dataset(images, simclr.batch_size, seed)
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=verbose)
    return steps


# --------------------------------------------------------------------------- optimizer


def optimizer(config, steps):
    """The recipe's optimizer on warmup + cosine to 0 at `steps`; AdamW and LAMB beside it."""
    name = config["optimizer"]
    if name not in SWEEP_ONLY_OPTIMIZERS:
        return to_recipe(config).build_optimizer(steps)
    warmup = min(int(steps * config["warmup"]), steps - 1)
    schedule = ks.optimizers.WarmupCosine(
        config["learning_rate"], total_steps=steps, warmup_steps=warmup
    )
    decay = config["weight_decay"]
    if name == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=decay)
    return keras.optimizers.Lamb(schedule, weight_decay=decay or None)


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


def precision_probe(recipe, seed=0, config=None):
    """Which precision trains `recipe`'s step faster here (a ~20 s probe).

    `config`: a sweep configuration whose `encoder` the model takes (default the recipe's).
    """
    batch = tf.constant(
        np.random.default_rng(seed).integers(
            0, 256, (recipe.batch_size, *IMAGE_SHAPE), dtype=np.uint8
        )
    )

    def build_model_for_probe():
        keras.utils.set_random_seed(seed)
        backbone = encoder(config) if config else None
        model = recipe.build_model(IMAGE_SHAPE, 1, encoder=backbone, seed=seed)
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
        return model

    return ks.distribute.fastest_precision(build_model_for_probe, batch, ("float32", "bfloat16"))


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
