"""Siamese networks on Fashion-MNIST: verify and retrieve classes never seen in training.

Trains a small ResNet embedding on Fashion-MNIST classes 0-6 (T-shirt/top ... Shirt), once
with the contrastive loss on pairs (Hadsell, Chopra & LeCun 2006) and once with the triplet
loss and semi-hard mining on P x K batches (Schroff et al. 2015), then evaluates both on the
unseen classes 7-9 (Sneaker, Bag, Ankle boot) of the test split: verification of 3,000 random
pairs (ROC AUC, equal error rate, best-threshold accuracy) and leave-one-out retrieval among
the 3,000 test images (recall@k, mAP@R). Each run writes `model.keras`, `roc_curve.png`,
`retrieval_grid.png` (8 queries and their top-5 neighbours) and `results.json` (with the
flags) to `--model_dir/<loss>/`, and a SavedModel to `--export_dir/<loss>/<version>/`.

Scaled down for a shared 2-core CPU (about 5-6 minutes for both losses): a ResNet-10 of width
8, 2 epochs over a 10,500-image subset (1,500 per class) of the 42,000 seen-class training
images, no augmentation. The paper-scale recipe is `--train_examples=0 --epochs=20
--encoder_width=16`.

Run: `python examples/siamese_fashion_mnist.py` (`--losses=triplet` for one run).
"""

import json
import os
import time

from absl import app, flags

flags.DEFINE_list("losses", ["contrastive", "triplet"], "Losses to train: contrastive, triplet.")
flags.DEFINE_integer("epochs", 2, "Epochs over the training subset.")
flags.DEFINE_integer("train_examples", 10500, "Seen-class training images used (0: all 42,000).")
flags.DEFINE_integer("batch_size", 64, "Pairs per batch (contrastive loss).")
flags.DEFINE_integer("samples_per_class", 16, "K of the P x K batches (P = the 7 seen classes).")
flags.DEFINE_string("mining", "semi-hard", "Triplet mining: semi-hard, hard or all.")
flags.DEFINE_float("contrastive_margin", 1.0, "Margin of the contrastive loss.")
flags.DEFINE_float("triplet_margin", 0.2, "Margin of the triplet loss.")
flags.DEFINE_integer("embedding_dim", 64, "Size of the L2-normalised embedding.")
flags.DEFINE_integer("encoder_width", 8, "Filters of the ResNet-10's first stage.")
flags.DEFINE_float("learning_rate", 2e-3, "Adam learning rate.")
flags.DEFINE_string("model_dir", "runs/siamese_fashion_mnist", "Models, figures and results.")
flags.DEFINE_string("export_dir", "saved_models/siamese_fashion_mnist", "SavedModel base dir.")
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS

SEEN_CLASSES = range(7)


def plot_roc_curve(scores, same, report, title, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    from keras_siamese.evaluation import roc_curve

    fpr, tpr, _ = roc_curve(scores, same)
    figure, axes = pyplot.subplots(figsize=(4.5, 4.5), dpi=100)
    axes.plot(fpr, tpr, label=f"AUC {report['roc_auc']:.3f}, EER {report['equal_error_rate']:.3f}")
    axes.plot([0, 1], [0, 1], color="gray", linestyle=":")
    axes.set(xlabel="false accept rate", ylabel="true accept rate", title=title)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def main(argv):
    del argv
    import keras
    import numpy as np

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
    # The same 3,000 unseen-class pairs (half same-class) for every model.
    unseen_pairs = ks.sampling.make_pairs(unseen, 0.5, seed=FLAGS.seed + 1).batch(500).cache()
    names = ks.datasets.FASHION_MNIST_CLASSES
    print(
        f"Training on {len(seen[1])} images of classes 0-6; evaluating on {len(unseen[1])} test "
        f"images of the unseen classes {', '.join(names[7:])}."
    )

    for loss_name in FLAGS.losses:
        run_dir = os.path.join(FLAGS.model_dir, loss_name)
        os.makedirs(run_dir, exist_ok=True)
        started = time.perf_counter()
        if loss_name == "contrastive":  # ((image_a, image_b), 1 if same class else 0)
            loss = ks.losses.ContrastiveMargin(margin=FLAGS.contrastive_margin)
            batches = ks.sampling.make_pairs(seen, 0.5, seed=FLAGS.seed)
            batches = batches.batch(FLAGS.batch_size, drop_remainder=True)
        elif loss_name == "triplet":  # (images, labels), 7 classes x K images per batch
            loss = ks.losses.TripletLoss(margin=FLAGS.triplet_margin, mining=FLAGS.mining)
            batches = ks.sampling.class_balanced_batches(
                seen, len(SEEN_CLASSES), FLAGS.samples_per_class, seed=FLAGS.seed
            )
        else:
            raise app.UsageError(f"--losses takes contrastive, triplet. Received: {loss_name!r}")

        # ---- model: ResNet-10 -> Dense(embedding_dim) -> L2 normalisation; Euclidean distance.
        encoder = ks.encoders.resnet(depth=10, input_shape=(28, 28, 1), width=FLAGS.encoder_width)
        model = ks.SiameseNetwork(encoder, loss=loss, embedding_dim=FLAGS.embedding_dim)
        model.compile(optimizer=keras.optimizers.Adam(FLAGS.learning_rate))
        model.fit(batches.prefetch(2), epochs=FLAGS.epochs, verbose=2)
        train_seconds = time.perf_counter() - started

        # ---- evaluation on the unseen classes.
        scores, same = ks.evaluation.pair_scores(model, unseen_pairs, progress=False)
        verification = ks.evaluation.verification_metrics(scores, same)
        retrieval = ks.evaluation.retrieval_report(model, unseen, unseen, progress=False)
        seconds = time.perf_counter() - started
        results = {**verification, **retrieval, "train_seconds": train_seconds, "seconds": seconds}
        print(
            f"{loss_name}: unseen classes 7-9: ROC AUC {verification['roc_auc']:.4f}, EER "
            f"{verification['equal_error_rate']:.4f}, accuracy {verification['accuracy']:.4f}, "
            f"recall@1 {retrieval['recall@1']:.4f}, mAP@R {retrieval['map@r']:.4f}; "
            f"train {train_seconds:.0f} s, train + evaluation {seconds:.0f} s"
        )

        # ---- figures, model, results and export, next to each other.
        plot_roc_curve(
            scores,
            same,
            verification,
            f"{loss_name} loss, unseen classes 7-9",
            os.path.join(run_dir, "roc_curve.png"),
        )
        embeddings, _ = ks.evaluation.extract_features(model, unseen, progress=False)
        neighbours = ks.evaluation.nearest_neighbors(
            embeddings, embeddings, k=5, distance=model.distance, exclude_self=True
        )
        queries = np.random.default_rng(FLAGS.seed).choice(len(unseen[1]), 8, replace=False)
        images, labels = unseen[0], unseen[1]
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
        version_dir = ks.export.export_for_serving(model, os.path.join(FLAGS.export_dir, loss_name))
        print(f"Wrote {run_dir}/ (model.keras, roc_curve.png, retrieval_grid.png), {version_dir}")


if __name__ == "__main__":
    app.run(main)
