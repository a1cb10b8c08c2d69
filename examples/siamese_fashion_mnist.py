"""Siamese networks on Fashion-MNIST: verify and retrieve classes never seen in training.

SimCLR pretraining on the seen classes (no labels, kept in --model_dir for reruns), then each
loss of `--losses` (contrastive, triplet, multi-similarity, circle, SupCon, ArcFace, ProxyAnchor,
...) on them, each evaluated beside the raw pixels on `--unseen_classes` (7,8,9): 3,000 fixed
pairs (ROC AUC, EER), leave-one-out retrieval (recall@1, mAP@R, R-precision, NMI); ROC curve,
retrieval grid, model, results, export per loss. Defaults: `ks.recipes.for_loss(name)`.
"""

import json
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow: no C++ INFO lines

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

import keras_siamese as ks
from keras_siamese import atomic_files, plots

IMAGE_SHAPE, BASE = (28, 28, 1), ks.recipes.get("siamese-metric")

# ---- hyperparameters: a flag left unset takes each loss' recipe value (ks.recipes.for_loss).
LOSSES = [ks.recipes.get("siamese-triplet").loss, BASE.loss]  # the best two, measured
flags.DEFINE_multi_enum("losses", LOSSES, ks.recipes.siamese.LOSSES, "Losses.")
flags.DEFINE_list("unseen_classes", ["7", "8", "9"], "Classes held out of training.")
flags.DEFINE_float("pretrain_epochs", BASE.pretrain_epochs, "SimCLR epochs first (0: none).")
flags.DEFINE_integer("epochs", None, "Epochs of each loss over the seen classes.")
flags.DEFINE_integer("encoder_width", BASE.encoder_width, "Filters of the ResNet's stage 1.")
flags.DEFINE_integer("embedding_dim", None, "L2-normalised embedding size.")
flags.DEFINE_integer("batch_size", None, "Images (or pairs) per batch.")
flags.DEFINE_float("learning_rate", None, "Adam's peak learning rate.")
flags.DEFINE_float("margin", None, "Margin of the contrastive and triplet losses.")
flags.DEFINE_enum("mining", None, ["semi-hard", "hard", "all"], "Triplet mining.")
flags.DEFINE_integer("memory_size", None, "Cross-batch memory of a pair loss (0: none).")
flags.DEFINE_integer("train_examples", 0, "Seen-class training images used (0: all).")
flags.DEFINE_string("model_dir", "runs/siamese_fashion_mnist", "Models, figures and results.")
flags.DEFINE_string("export_dir", "saved_models/siamese_fashion_mnist", "SavedModel base dir.")
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS
CHANGEABLE = "epochs embedding_dim batch_size learning_rate margin mining memory_size".split()
COLUMNS = {"roc_auc": "ROC AUC", "equal_error_rate": "EER", "recall@1": "recall@1",
           "map@r": "mAP@R", "r_precision": "R-precision", "nmi": "NMI",
           "train_seconds": "train (s)"}  # fmt: skip
DIGITS = {key: 4 for key in COLUMNS} | {"train_seconds": 0}


def recipe_for(loss_name: str, num_classes: int = 0):
    """The recipe of `loss_name` with the flags that were set (the others: the recipe's)."""
    changes = {name: FLAGS[name].value for name in CHANGEABLE if FLAGS[name].value is not None}
    changes.update(pretrain_epochs=FLAGS.pretrain_epochs, encoder_width=FLAGS.encoder_width)
    return ks.recipes.for_loss(loss_name).replace(num_classes=num_classes, **changes)


def make_model(loss_name: str, total_steps: int, encoder=None, num_classes: int = 7):
    """The compiled, untrained SiameseNetwork of `loss_name` on `encoder` (None: a new one)."""
    keras.utils.set_random_seed(FLAGS.seed)
    recipe = recipe_for(loss_name, num_classes)
    return recipe.build(IMAGE_SHAPE, total_steps, encoder=encoder, seed=FLAGS.seed)


def pretrain(seen):
    """SimCLR's recipe on the Siamese encoder over the seen-class images (labels unused)."""
    recipe = recipe_for("triplet").pretraining_recipe()
    keras.utils.set_random_seed(FLAGS.seed)
    if not FLAGS.pretrain_epochs:
        return recipe.build_encoder(IMAGE_SHAPE[-1], IMAGE_SHAPE), 0.0
    steps = max(1, round(FLAGS.pretrain_epochs * len(seen[1]) / recipe.batch_size))
    path = os.path.join(FLAGS.model_dir, "pretrained", "encoder.keras")
    key = [recipe.get_config(), steps, FLAGS.unseen_classes, FLAGS.train_examples, FLAGS.seed]
    key = json.loads(json.dumps(key))  # what a rerun with the same flags reads back
    found = pathlib.Path(f"{path}.json")  # written after the encoder: both are whole
    saved = json.loads(found.read_text()) if found.is_file() else {}
    if saved.get("key") == key:
        return keras.saving.load_model(path), saved["seconds"]
    simclr = recipe.build(IMAGE_SHAPE, steps, seed=FLAGS.seed)
    batches = ks.datasets.shuffled_batches(seen[0], recipe.batch_size, seed=FLAGS.seed)
    started = time.perf_counter()
    simclr.fit(batches, epochs=1, steps_per_epoch=steps, verbose=2)
    seconds = time.perf_counter() - started
    ks.callbacks.save_model(simclr.encoder, path)  # whole or absent, then its key
    with atomic_files.atomic_write(f"{path}.json") as file:
        json.dump({"key": key, "seconds": seconds}, file)
    return simclr.encoder, seconds


def train(loss_name, seen, encoder):
    """`loss_name`'s network from a copy of `encoder`: pairs (half positive) or P x K batches."""
    recipe = recipe_for(loss_name, int(seen[1].max()) + 1)
    if recipe.pairs:  # ((image_a, image_b), 1 if same class else 0)
        pairs = ks.sampling.make_pairs(seen, 0.5, seed=FLAGS.seed)
        data = pairs.batch(recipe.batch_size, drop_remainder=True)
    else:  # (images, labels): P classes x K images of each
        layout = recipe.triplet_layout(len(np.unique(seen[1])))  # (P, K): P x K <= batch_size
        data = ks.sampling.class_balanced_batches(seen, *layout, seed=FLAGS.seed)
    steps = max(1, len(seen[1]) // recipe.batch_size)
    copy = keras.models.clone_model(encoder)
    copy.set_weights(encoder.get_weights())
    model = make_model(loss_name, recipe.epochs * steps, copy, int(seen[1].max()) + 1)
    model.fit(data.repeat().prefetch(4), epochs=recipe.epochs, steps_per_epoch=steps, verbose=2)
    return model


def draw_neighbours(model, unseen, path):
    """Eight random unseen queries and their 5 nearest neighbours (wrong class: framed red)."""
    embedded, _ = ks.evaluation.extract_features(model, unseen, progress=False)
    nearest = ks.evaluation.nearest_neighbors(embedded, embedded, 5, model.distance, True)
    queries = np.random.default_rng(FLAGS.seed).choice(len(unseen[1]), 8, replace=False)
    (images, labels), names = unseen, ks.datasets.FASHION_MNIST_CLASSES
    found = (images[nearest[queries]], labels[nearest[queries]])
    plots.retrieval_grid(images[queries], labels[queries], *found, path, class_names=names)


def evaluate(model, pairs, unseen, **options):
    """Verification of the fixed unseen-class pairs and retrieval among the unseen images."""
    scores, same = ks.evaluation.pair_scores(model, pairs, progress=False, **options)
    retrieval = ks.evaluation.retrieval_report(model, unseen, unseen, progress=False, **options)
    return {**ks.evaluation.verification_metrics(scores, same), **retrieval}, (scores, same)


def main(_):
    logging.set_verbosity(logging.WARNING)  # absl's INFO lines (the export's, ...)
    tf.get_logger().setLevel("ERROR")  # and TensorFlow's Python warnings (retracing, ...)
    # ---- data: seen classes of the train split train (relabelled 0..P-1), unseen ones test.
    unseen_classes = sorted(int(value) for value in FLAGS.unseen_classes)
    seen_classes = [label for label in range(10) if label not in unseen_classes]
    load = ks.datasets.load_arrays
    seen, _ = ks.sampling.split_classes(load("fashion_mnist", "train"), seen_classes)
    _, unseen = ks.sampling.split_classes(load("fashion_mnist", "test"), seen_classes)
    order = np.random.default_rng(FLAGS.seed).permutation(len(seen[1]))[
        : FLAGS.train_examples or None
    ]
    seen = (seen[0][order], np.searchsorted(seen_classes, seen[1][order]))
    pairs = ks.sampling.make_pairs(unseen, 0.5, seed=1).batch(500).cache()  # same for all
    print(f"Training on {len(order)} images of classes {seen_classes}, testing on the unseen.")
    pixels = ks.evaluation.raw_pixels(IMAGE_SHAPE)
    rows = {"raw pixels (cosine)": evaluate(pixels, pairs, unseen, distance="cosine")[0]}
    encoder, pretrain_seconds = pretrain(seen)  # SimCLR once; each loss starts from it
    if FLAGS.pretrain_epochs:
        features = evaluate(encoder, pairs, unseen, distance="cosine", input_scale=1 / 255)[0]
        rows["SimCLR features (cosine)"] = {**features, "train_seconds": pretrain_seconds}
    for loss_name in FLAGS.losses:
        started = time.perf_counter()
        model = train(loss_name, seen, encoder)
        seconds = pretrain_seconds + time.perf_counter() - started
        results, scored_pairs = evaluate(model, pairs, unseen)
        rows[f"{loss_name} loss"] = results = {**results, "train_seconds": seconds}
        run_dir = os.path.join(FLAGS.model_dir, loss_name)  # ROC, model, results, export
        os.makedirs(run_dir, exist_ok=True)
        plots.roc_figure(*scored_pairs, os.path.join(run_dir, "roc_curve.png"), title=loss_name)
        draw_neighbours(model, unseen, os.path.join(run_dir, "retrieval_grid.png"))
        ks.callbacks.save_model(model, os.path.join(run_dir, "model.keras"))  # whole or absent
        with atomic_files.atomic_write(os.path.join(run_dir, "results.json")) as file:
            json.dump({"flags": FLAGS.flag_values_dict(), "results": results}, file, indent=2)
        ks.export.export_for_serving(model, os.path.join(FLAGS.export_dir, loss_name))

    table = ks.evaluation.format_table(rows, COLUMNS, "Embedding", scale=1, digits=DIGITS)
    print(f"\nUnseen classes {unseen_classes}, test split:\n{table}")


if __name__ == "__main__":
    app.run(main)
