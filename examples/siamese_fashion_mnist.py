"""Siamese networks on Fashion-MNIST: verify and retrieve classes never seen in training.

SimCLR pretraining on classes 0-6 (no labels), then a Siamese embedding trained on them with the
contrastive loss on pairs (Hadsell et al. 2006) and the triplet loss with hard mining on P x K
batches (Schroff et al. 2015; Hermans et al. 2017), each evaluated beside the raw pixels on the
unseen classes 7-9: verification of 3,000 fixed pairs (ROC AUC, EER), leave-one-out retrieval
(recall@1, mAP@R); ROC curve, retrieval grid, model, results, export per loss. Defaults: the
recipes "siamese-triplet", "siamese-contrastive" (scaled down: ResNet-10, 28x28; ~2 CPU-min).
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow: no C++ INFO lines

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

import keras_siamese as ks
from keras_siamese import atomic_files, plots

IMAGE_SHAPE, SEEN = (28, 28, 1), range(7)  # classes 0-6 train, 7-9 test
RECIPES = {loss: ks.recipes.get(f"siamese-{loss}") for loss in ("contrastive", "triplet")}
TRIPLET = RECIPES["triplet"]

# ---- hyperparameters: each default is the recipes'; the shared ones are the same in both.
flags.DEFINE_multi_enum("losses", list(RECIPES), list(RECIPES), "Losses to train, in order.")
flags.DEFINE_float("pretrain_epochs", TRIPLET.pretrain_epochs, "SimCLR epochs first (0: none).")
flags.DEFINE_integer("epochs", TRIPLET.epochs, "Epochs of each loss over the seen classes.")
flags.DEFINE_integer("encoder_width", TRIPLET.encoder_width, "Filters of the ResNet's stage 1.")
flags.DEFINE_integer("embedding_dim", TRIPLET.embedding_dim, "L2-normalised embedding size.")
flags.DEFINE_enum("mining", TRIPLET.mining, ["semi-hard", "hard", "all"], "Triplet mining.")
SHARED_FLAGS = ("pretrain_epochs", "epochs", "encoder_width", "embedding_dim")
for loss, recipe in RECIPES.items():  # --triplet_margin, --contrastive_batch_size, ...
    flags.DEFINE_integer(f"{loss}_batch_size", recipe.batch_size, f"Batch of the {loss} loss.")
    flags.DEFINE_float(f"{loss}_margin", recipe.margin, f"Margin of the {loss} loss.")
    flags.DEFINE_float(f"{loss}_learning_rate", recipe.learning_rate, "Adam's peak rate.")
flags.DEFINE_integer("train_examples", 0, "Seen-class training images used (0: all 42,000).")
flags.DEFINE_string("model_dir", "runs/siamese_fashion_mnist", "Models, figures and results.")
flags.DEFINE_string("export_dir", "saved_models/siamese_fashion_mnist", "SavedModel base dir.")
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS
COLUMNS = {"roc_auc": "ROC AUC", "equal_error_rate": "EER", "recall@1": "recall@1",
           "map@r": "mAP@R", "train_seconds": "train (s)"}  # fmt: skip
DIGITS = {key: 4 for key in COLUMNS} | {"train_seconds": 0}


def recipe_for(loss_name: str):
    """The recipe of `loss_name` ("contrastive" or "triplet") with the flags' values."""
    own = {name: FLAGS[f"{loss_name}_{name}"].value for name in ("batch_size", "margin")}
    own.update(learning_rate=FLAGS[f"{loss_name}_learning_rate"].value, mining=FLAGS.mining)
    return RECIPES[loss_name].replace(**{name: FLAGS[name].value for name in SHARED_FLAGS}, **own)


def make_model(loss_name: str, total_steps: int, encoder=None) -> keras.Model:
    """The compiled, untrained SiameseNetwork of `loss_name` on `encoder` (None: a new one)."""
    keras.utils.set_random_seed(FLAGS.seed)
    return recipe_for(loss_name).build(IMAGE_SHAPE, total_steps, encoder=encoder, seed=FLAGS.seed)


def pretrain(seen):
    """SimCLR's recipe on the Siamese encoder over the seen-class images (labels unused)."""
    recipe = recipe_for("triplet").pretraining_recipe()
    keras.utils.set_random_seed(FLAGS.seed)
    if not FLAGS.pretrain_epochs:
        return recipe.build_encoder(IMAGE_SHAPE[-1]), 0.0
    steps = max(1, round(FLAGS.pretrain_epochs * len(seen[1]) / recipe.batch_size))
    simclr = recipe.build(IMAGE_SHAPE, steps, seed=FLAGS.seed)
    batches = ks.datasets.shuffled_batches(seen[0], recipe.batch_size, seed=FLAGS.seed)
    started = time.perf_counter()
    simclr.fit(batches, epochs=1, steps_per_epoch=steps, verbose=2)
    return simclr.encoder, time.perf_counter() - started


def train(loss_name, seen, encoder):
    """`loss_name`'s network from a copy of `encoder`: pairs (half positive) or P x K batches."""
    recipe = recipe_for(loss_name)
    if recipe.loss == "triplet":  # (images, labels): P classes x K images of each
        layout = recipe.triplet_layout(len(SEEN))  # (P, K): P x K <= batch_size
        data = ks.sampling.class_balanced_batches(seen, *layout, seed=FLAGS.seed)
    else:  # ((image_a, image_b), 1 if same class else 0)
        pairs = ks.sampling.make_pairs(seen, 0.5, seed=FLAGS.seed)
        data = pairs.batch(recipe.batch_size, drop_remainder=True)
    steps = max(1, len(seen[1]) // recipe.batch_size)
    copy = keras.models.clone_model(encoder)
    copy.set_weights(encoder.get_weights())
    model = make_model(loss_name, recipe.epochs * steps, encoder=copy)
    model.fit(data.repeat().prefetch(4), epochs=recipe.epochs, steps_per_epoch=steps, verbose=2)
    return model


def draw_neighbours(model, unseen, path):
    """Eight random unseen queries and their 5 nearest neighbours (wrong class: framed red)."""
    embeddings, _ = ks.evaluation.extract_features(model, unseen, progress=False)
    nearest = ks.evaluation.nearest_neighbors(
        embeddings, embeddings, k=5, distance=model.distance, exclude_self=True
    )
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
    # ---- data: seen classes 0-6 of the train split train, unseen 7-9 of the test split test.
    seen, _ = ks.sampling.split_classes(ks.datasets.load_arrays("fashion_mnist", "train"), SEEN)
    _, unseen = ks.sampling.split_classes(ks.datasets.load_arrays("fashion_mnist", "test"), SEEN)
    order = np.random.default_rng(FLAGS.seed).permutation(len(seen[1]))
    seen = tuple(array[order[: FLAGS.train_examples or None]] for array in seen)
    pairs = ks.sampling.make_pairs(unseen, 0.5, seed=1).batch(500).cache()  # same for all
    print(f"Training on {len(seen[1])} images of classes 0-6, testing on {len(unseen[1])} of 7-9.")
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
        rows[f"{loss_name} loss"] = {**results, "train_seconds": seconds}
        run_dir = os.path.join(FLAGS.model_dir, loss_name)  # ROC, model, results, export
        os.makedirs(run_dir, exist_ok=True)
        plots.roc_figure(*scored_pairs, os.path.join(run_dir, "roc_curve.png"), title=loss_name)
        draw_neighbours(model, unseen, os.path.join(run_dir, "retrieval_grid.png"))
        ks.callbacks.save_model(model, os.path.join(run_dir, "model.keras"))  # whole or absent
        with atomic_files.atomic_write(os.path.join(run_dir, "results.json")) as file:
            json.dump({"flags": FLAGS.flag_values_dict(), "results": results}, file, indent=2)
        ks.export.export_for_serving(model, os.path.join(FLAGS.export_dir, loss_name))

    table = ks.evaluation.format_table(rows, COLUMNS, "Embedding", scale=1, digits=DIGITS)
    print(f"\nUnseen classes 7-9 (Sneaker, Bag, Ankle boot), test split:\n{table}")


if __name__ == "__main__":
    app.run(main)
