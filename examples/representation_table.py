"""The table the self-supervised Fashion-MNIST examples end with: one row per encoder.

Each row measures an encoder's frozen features on the test split three ways: the weighted kNN
(k=200, T=0.1, the training images as memory), the linear probe on all training labels and the
linear probe on 1% of them (600 on the full split, class-balanced), all from one
`ks.evaluation.representation_report`. The rows are the raw pixels, the encoder at random
initialisation and the trained encoder, so a method is read against both baselines.
"""

COLUMNS = ("kNN", "linear probe", "linear probe, 1% of labels")


def raw_pixels(image_shape):
    """The baseline "encoder": pixels scaled to [0, 1] and flattened, float32 always."""
    import keras

    return keras.Sequential(
        [
            keras.Input(image_shape),
            keras.layers.Rescaling(1 / 255, dtype="float32"),
            keras.layers.Flatten(dtype="float32"),
        ]
    )


def evaluate(network, train, test, probe_epochs, seed):
    """One row: `{column: top-1 accuracy in [0, 1]}` of `network`'s features.

    Args:
        network: a keras_siamese model or a `keras.Model` taking images in [0, 255].
        train: `(images, labels)`: the kNN memory and the probes' training data.
        test: `(images, labels)`: the queries.
        probe_epochs: epochs of the linear probe.
        seed: seed of the probes and of the 1% subset.
    """
    import keras_siamese as ks

    report = ks.evaluation.representation_report(
        network,
        train,
        test,
        label_fractions=(),
        linear_label_fractions=(0.01,),
        linear_probe_options={"epochs": probe_epochs},
        seed=seed,
        progress=False,
    )
    numbers = (
        report["knn"]["top1"],
        report["linear_probe"]["top1"],
        report["few_label_linear"]["1%"]["top1"],
    )
    return dict(zip(COLUMNS, numbers, strict=True))


def print_table(rows, seconds):
    """Prints `{encoder name: row}` as a Markdown table of top-1 % after `seconds` of training."""
    print(f"\nFashion-MNIST test split, top-1 %, after {seconds / 60:.1f} min of pretraining:")
    print("| Encoder | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{100 * row[column]:.1f}" for column in COLUMNS) + " |")
