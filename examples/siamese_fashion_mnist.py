"""Siamese networks on Fashion-MNIST: verify and retrieve classes never seen in training.

Trains a small ResNet embedding on Fashion-MNIST classes 0-6 (T-shirt/top ... Shirt), once
with the contrastive loss on pairs (Hadsell, Chopra & LeCun 2006) and once with the triplet
loss and semi-hard mining on P x K batches (Schroff et al. 2015), then evaluates both on the
unseen classes 7-9 (Sneaker, Bag, Ankle boot) of the test split: verification of random
pairs (ROC AUC, equal error rate, best-threshold accuracy) and leave-one-out retrieval
(recall@k, mAP@R). Each run writes, in `--model_dir/<loss>/`, the model (`model.keras`),
`roc_curve.png`, `retrieval_grid.png` (queries and their top-5 neighbours) and
`results.json`, and exports a SavedModel to `--export_dir/<loss>/<version>/`.

Scaled down for a 2-core CPU (about 6 minutes for both losses): a ResNet-10 of width 8,
3 epochs over a 21,000-image subset of the 42,000 seen-class images, no augmentation.

Run: `python examples/siamese_fashion_mnist.py` (`--losses=triplet` for one run).
"""

import json
import os
import time

from absl import app, flags

flags.DEFINE_list("losses", ["contrastive", "triplet"], "Losses to train: contrastive, triplet.")
flags.DEFINE_integer("epochs", 3, "Epochs over the training subset.")
flags.DEFINE_integer("train_examples", 21000, "Seen-class training images used (0: all 42,000).")
flags.DEFINE_integer("batch_size", 128, "Pairs per batch (contrastive loss).")
flags.DEFINE_integer("samples_per_class", 16, "K of the P x K batches (P = the 7 seen classes).")
flags.DEFINE_string("mining", "semi-hard", "Triplet mining: semi-hard, hard or all.")
flags.DEFINE_float("contrastive_margin", 1.0, "Margin of the contrastive loss.")
flags.DEFINE_float("triplet_margin", 0.2, "Margin of the triplet loss.")
flags.DEFINE_integer("embedding_dim", 64, "Size of the L2-normalised embedding.")
flags.DEFINE_integer("encoder_width", 8, "Filters of the ResNet-10's first stage.")
flags.DEFINE_float("learning_rate", 2e-3, "Adam learning rate.")
flags.DEFINE_string("model_dir", "runs/siamese_fashion_mnist", "Models, figures and results.")
flags.DEFINE_string(
    "export_dir", "saved_models/siamese_fashion_mnist", "SavedModel base directory."
)
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS

SEEN_CLASSES = range(7)


def plot_roc_curve(fpr, tpr, report, title, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(4.5, 4.5), dpi=100)
    label = f"AUC {report['roc_auc']:.3f}, EER {report['equal_error_rate']:.3f}"
    axes.plot(fpr, tpr, label=label)
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
    seen, _ = ks.sampling.split_classes(
        ks.datasets.load_arrays("fashion_mnist", "train"), SEEN_CLASSES
    )
    _, unseen = ks.sampling.split_classes(
        ks.datasets.load_arrays("fashion_mnist", "test"), SEEN_CLASSES
    )
    if FLAGS.train_examples:
        order = np.random.default_rng(FLAGS.seed).permutation(len(seen[1]))[: FLAGS.train_examples]
        seen = (seen[0][order], seen[1][order])
    unseen_pairs = ks.sampling.make_pairs(unseen, positive_fraction=0.5, seed=FLAGS.seed + 1)
    unseen_pairs = unseen_pairs.batch(500).cache()  # the same 3,000 pairs for every model
    class_names = ks.datasets.FASHION_MNIST_CLASSES
    print(
        f"Training on {len(seen[1])} images of classes 0-6; evaluating on {len(unseen[1])} "
        f"test images of the unseen classes {', '.join(class_names[7:])}."
    )

    results = {}
    for loss_name in FLAGS.losses:
        run_dir = os.path.join(FLAGS.model_dir, loss_name)
        os.makedirs(run_dir, exist_ok=True)
        started = time.perf_counter()
        if loss_name == "contrastive":
            loss = ks.losses.ContrastiveMargin(margin=FLAGS.contrastive_margin)
            batches = ks.sampling.make_pairs(seen, positive_fraction=0.5, seed=FLAGS.seed)
            batches = batches.batch(FLAGS.batch_size, drop_remainder=True)
        elif loss_name == "triplet":
            loss = ks.losses.TripletLoss(margin=FLAGS.triplet_margin, mining=FLAGS.mining)
            batches = ks.sampling.class_balanced_batches(
                seen, len(SEEN_CLASSES), FLAGS.samples_per_class, seed=FLAGS.seed
            )
        else:
            raise app.UsageError(f"--losses takes contrastive and triplet. Received: {loss_name!r}")

        # ---- model: ResNet-10 -> Dense(embedding_dim) -> L2 normalisation.
        encoder = ks.encoders.resnet(depth=10, input_shape=(28, 28, 1), width=FLAGS.encoder_width)
        model = ks.SiameseNetwork(encoder, loss=loss, embedding_dim=FLAGS.embedding_dim)
        model.compile(optimizer=keras.optimizers.Adam(FLAGS.learning_rate))
        model.fit(batches.prefetch(2), epochs=FLAGS.epochs, verbose=2)
        train_seconds = time.perf_counter() - started

        # ---- evaluation on the unseen classes.
        scores, same = ks.evaluation.pair_scores(model, unseen_pairs, progress=False)
        verification = ks.evaluation.verification_metrics(scores, same)
        retrieval = ks.evaluation.retrieval_report(model, unseen, unseen, progress=False)
        results[loss_name] = {
            **verification,
            **retrieval,
            "train_seconds": train_seconds,
            "total_seconds": time.perf_counter() - started,
        }
        print(
            f"{loss_name}: unseen-class ROC AUC {verification['roc_auc']:.4f}, "
            f"EER {verification['equal_error_rate']:.4f}, "
            f"accuracy {verification['accuracy']:.4f}, recall@1 {retrieval['recall@1']:.4f}, "
            f"mAP@R {retrieval['map@r']:.4f}; train {train_seconds:.0f} s, "
            f"total {results[loss_name]['total_seconds']:.0f} s"
        )

        # ---- figures, model and export, next to each other.
        fpr, tpr, _ = ks.evaluation.roc_curve(scores, same)
        plot_roc_curve(
            fpr,
            tpr,
            verification,
            f"{loss_name}: unseen classes 7-9",
            os.path.join(run_dir, "roc_curve.png"),
        )
        queries = np.random.default_rng(FLAGS.seed).choice(len(unseen[1]), 8, replace=False)
        embeddings, _ = ks.evaluation.extract_features(model, unseen, progress=False)
        neighbours = ks.evaluation.nearest_neighbors(
            embeddings, embeddings, k=5, distance=model.distance, exclude_self=True
        )[queries]
        plots.retrieval_grid(
            unseen[0][queries],
            unseen[1][queries],
            unseen[0][neighbours],
            unseen[1][neighbours],
            os.path.join(run_dir, "retrieval_grid.png"),
            class_names=class_names,
        )
        model.save(os.path.join(run_dir, "model.keras"))
        with open(os.path.join(run_dir, "results.json"), "w") as file:
            json.dump(
                {"flags": FLAGS.flag_values_dict(), "results": results[loss_name]},
                file,
                indent=2,
                default=str,
            )
        version_dir = ks.export.export_for_serving(model, os.path.join(FLAGS.export_dir, loss_name))
        print(
            f"Wrote {run_dir}/ (model.keras, roc_curve.png, retrieval_grid.png) and {version_dir}"
        )


if __name__ == "__main__":
    app.run(main)
