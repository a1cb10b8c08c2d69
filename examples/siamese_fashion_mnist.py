"""Siamese networks on Fashion-MNIST: verify and retrieve classes never seen in training.

Pretrains a small ResNet with SimCLR on the images of Fashion-MNIST classes 0-6 (T-shirt/top
... Shirt; labels unused), then trains it as a Siamese embedding on those classes, once with the
contrastive loss on pairs (Hadsell, Chopra & LeCun 2006) and once with the triplet loss and
hard mining on P x K batches (Schroff et al. 2015; Hermans et al. 2017), and evaluates both on the
unseen classes 7-9 (Sneaker, Bag, Ankle boot) of the test split, beside the raw pixels
(cosine of the pixel vectors) measured in the same run: verification of 3,000 fixed random
pairs (ROC AUC, equal error rate) and leave-one-out retrieval among the 3,000 test images
(recall@1, mAP@R). Each run writes `model.keras`, `roc_curve.png`, `retrieval_grid.png` and
`results.json` (with the flags) to `--model_dir/<loss>/`, and a SavedModel to
`--export_dir/<loss>/<version>/`.

The recipe is the one `benchmarks/recipe.py` found best within 5 minutes for both losses on
2 CPU cores (benchmarks/results/sweep.md): the demo's SimCLR encoder (ResNet-10 of width 16,
its whole 4x4 last feature map as features, 16x16 views) pretrained for 3 epochs on the
seen-class images, then one epoch of each loss over all 42,000 seen-class images into a
128-d L2-normalised embedding. Against the raw pixels, the pretraining is what lifts
retrieval (recall@1), hard mining what lifts verification (ROC AUC): semi-hard mining from
scratch gave AUC 0.70-0.71. Scaled down from the papers: a ResNet-10 instead of an
Inception/ResNet-50, 28x28 images, minutes of training.

Run: `python examples/siamese_fashion_mnist.py` (`--losses=triplet` for one run).
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines

import console  # examples/console.py
from absl import app, flags

flags.DEFINE_list("losses", ["contrastive", "triplet"], "Losses to train: contrastive, triplet.")
flags.DEFINE_float("pretrain_epochs", 3.0, "SimCLR epochs over the seen-class images (0: none).")
flags.DEFINE_float("epochs", 1.0, "Epochs of each Siamese loss over the training images.")
flags.DEFINE_integer("train_examples", 0, "Seen-class training images used (0: all 42,000).")
flags.DEFINE_integer("batch_size", 64, "Pairs per batch (contrastive loss).")
flags.DEFINE_integer("samples_per_class", 16, "K of the P x K batches (P = the 7 seen classes).")
flags.DEFINE_enum("mining", "hard", ["semi-hard", "hard", "all"], "Triplet mining.")
flags.DEFINE_float("contrastive_margin", 1.0, "Margin of the contrastive loss.")
flags.DEFINE_float("triplet_margin", 0.2, "Margin of the triplet loss.")
flags.DEFINE_integer("embedding_dim", 128, "Size of the L2-normalised embedding.")
flags.DEFINE_integer("encoder_width", 16, "Filters of the ResNet-10's first stage.")
flags.DEFINE_integer("grid", 4, "Features: the last map averaged over N x N cells (1: global).")
flags.DEFINE_float("contrastive_learning_rate", 5e-4, "Adam's peak rate (cosine decay to 0).")
flags.DEFINE_float("triplet_learning_rate", 2e-3, "Adam's peak rate (cosine decay to 0).")
flags.DEFINE_string("model_dir", "runs/siamese_fashion_mnist", "Models, figures and results.")
flags.DEFINE_string("export_dir", "saved_models/siamese_fashion_mnist", "SavedModel base dir.")
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS

SEEN_CLASSES = range(7)


def main(argv):
    del argv
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    with console.framework_messages_to(os.path.join(FLAGS.model_dir, "stderr.log")):
        run()


def run():
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_siamese as ks
    from keras_siamese import plots

    keras.utils.set_random_seed(FLAGS.seed)
    # ---- data: seen classes 0-6 of the train split for training, unseen 7-9 of the test split.
    train = ks.datasets.load_arrays("fashion_mnist", "train")
    seen, _ = ks.sampling.split_classes(train, SEEN_CLASSES)
    _, unseen = ks.sampling.split_classes(
        ks.datasets.load_arrays("fashion_mnist", "test"), SEEN_CLASSES
    )
    if FLAGS.train_examples:
        keep = np.random.default_rng(FLAGS.seed).permutation(len(seen[1]))[: FLAGS.train_examples]
        seen = (seen[0][keep], seen[1][keep])
    # The same 3,000 unseen-class pairs (half same-class) for every model and every seed.
    unseen_pairs = ks.sampling.make_pairs(unseen, 0.5, seed=1).batch(500).cache()
    names = ks.datasets.FASHION_MNIST_CLASSES
    print(
        f"Training on {len(seen[1])} images of classes 0-6; evaluating on {len(unseen[1])} test "
        f"images of the unseen classes {', '.join(names[7:])}."
    )

    def evaluate(model, **options):
        scores, same = ks.evaluation.pair_scores(model, unseen_pairs, progress=False, **options)
        verification = ks.evaluation.verification_metrics(scores, same)
        retrieval = ks.evaluation.retrieval_report(model, unseen, unseen, progress=False, **options)
        return {**verification, **retrieval}, scores, same

    pixels = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten()], name="pixels")
    rows = {"raw pixels (cosine)": evaluate(pixels, distance="cosine", input_scale=1 / 255)[0]}

    # ---- SimCLR on the seen-class images (labels unused), once; each loss starts from it.
    keras.utils.set_random_seed(FLAGS.seed)
    encoder = ks.encoders.resnet(
        10, (None, None, 1), width=FLAGS.encoder_width, grid_size=FLAGS.grid or None
    )
    pretrain_seconds = 0.0
    if FLAGS.pretrain_epochs:
        started = time.perf_counter()
        steps = max(1, round(FLAGS.pretrain_epochs * len(seen[1]) / 256))
        simclr = ks.SimCLR(
            encoder,
            ks.augment.simclr_augmenter(16, channels=1, strength=1.0, blur=False, seed=FLAGS.seed),
            (512, 128),
            0.2,
            image_size=(28, 28),
        )
        schedule = ks.optimizers.WarmupCosine(0.6, steps, steps // 10)
        simclr.compile(optimizer=keras.optimizers.SGD(schedule, 0.9, weight_decay=5e-4))
        batches = ks.datasets.shuffled_batches(seen[0], 256, seed=FLAGS.seed)
        print(f"SimCLR pretraining on the seen-class images: {steps} steps")
        simclr.fit(batches, epochs=1, steps_per_epoch=steps, verbose=2)
        pretrain_seconds = time.perf_counter() - started
        rows["SimCLR features (cosine)"] = {
            **evaluate(encoder, distance="cosine", input_scale=1 / 255)[0],
            "train_seconds": pretrain_seconds,
        }
    pretrained = encoder.get_weights()

    for loss_name in FLAGS.losses:
        run_dir = os.path.join(FLAGS.model_dir, loss_name)
        os.makedirs(run_dir, exist_ok=True)
        started = time.perf_counter()
        if loss_name == "contrastive":  # ((image_a, image_b), 1 if same class else 0)
            loss = ks.losses.ContrastiveMargin(margin=FLAGS.contrastive_margin)
            batches = ks.sampling.make_pairs(seen, 0.5, seed=FLAGS.seed)
            batches = batches.batch(FLAGS.batch_size, drop_remainder=True)
            steps = round(FLAGS.epochs * len(seen[1]) / FLAGS.batch_size)
        elif loss_name == "triplet":  # (images, labels), 7 classes x K images per batch
            loss = ks.losses.TripletLoss(margin=FLAGS.triplet_margin, mining=FLAGS.mining)
            batches = ks.sampling.class_balanced_batches(
                seen, len(SEEN_CLASSES), FLAGS.samples_per_class, seed=FLAGS.seed
            )
            steps = round(FLAGS.epochs * len(seen[1]) / (7 * FLAGS.samples_per_class))
        else:
            raise app.UsageError(f"--losses takes contrastive, triplet. Received: {loss_name!r}")

        # ---- model: the pretrained ResNet-10 -> Dense(embedding_dim) -> L2 normalisation.
        keras.utils.set_random_seed(FLAGS.seed)
        encoder = keras.models.clone_model(encoder)
        encoder.set_weights(pretrained)
        model = ks.SiameseNetwork(
            encoder, loss=loss, embedding_dim=FLAGS.embedding_dim, image_size=(28, 28)
        )
        rate = FLAGS[f"{loss_name}_learning_rate"].value
        schedule = keras.optimizers.schedules.CosineDecay(rate, max(1, steps))
        model.compile(optimizer=keras.optimizers.Adam(schedule))
        model.fit(
            batches.repeat().prefetch(tf.data.AUTOTUNE),
            epochs=1,
            steps_per_epoch=max(1, steps),
            shuffle=False,
            verbose=2,
        )
        train_seconds = pretrain_seconds + time.perf_counter() - started

        # ---- evaluation on the unseen classes, figures, model, results and export.
        results, scores, same = evaluate(model)
        rows[f"{loss_name} loss"] = {**results, "train_seconds": train_seconds}
        title = f"{loss_name} loss, unseen classes 7-9"
        plots.roc_figure(scores, same, os.path.join(run_dir, "roc_curve.png"), title=title)
        embeddings, _ = ks.evaluation.extract_features(model, unseen, progress=False)
        neighbours = ks.evaluation.nearest_neighbors(
            embeddings, embeddings, k=5, distance=model.distance, exclude_self=True
        )
        queries = np.random.default_rng(FLAGS.seed).choice(len(unseen[1]), 8, replace=False)
        images, labels = unseen
        plots.retrieval_grid(
            images[queries],
            labels[queries],
            images[neighbours[queries]],
            labels[neighbours[queries]],
            os.path.join(run_dir, "retrieval_grid.png"),
            class_names=names,
        )
        model.save(os.path.join(run_dir, "model.keras"))
        with open(os.path.join(run_dir, "results.json"), "w") as file:
            json.dump({"flags": FLAGS.flag_values_dict(), "results": results}, file, indent=2)
        ks.export.export_for_serving(model, os.path.join(FLAGS.export_dir, loss_name))

    print("\nUnseen classes 7-9 (Sneaker, Bag, Ankle boot), test split:")
    print("| Embedding | ROC AUC | EER | recall@1 | mAP@R | train (s) |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        seconds = f"{row['train_seconds']:.0f}" if "train_seconds" in row else "—"
        print(
            f"| {name} | {row['roc_auc']:.4f} | {row['equal_error_rate']:.4f} "
            f"| {row['recall@1']:.4f} | {row['map@r']:.4f} | {seconds} |"
        )


if __name__ == "__main__":
    app.run(main)
