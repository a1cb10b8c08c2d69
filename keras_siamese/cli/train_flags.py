"""The flags of `train`, defined per call in a fresh `absl.flags.FlagValues`.

The method-specific flags come from the `Method` rows (`keras_siamese.cli.methods.METHODS`);
their help starts with the methods that read them, e.g. `(simclr)`. `--learning_rate`,
`--weight_decay` and `--optimizer` default to `auto`, the method's recipe. This module never
imports TensorFlow: `train --help` and flag errors answer without it.
"""

from __future__ import annotations

from absl import flags

from keras_siamese.cli import encoder_flag, methods, sources

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def define_flags(values: flags.FlagValues) -> None:
    """Defines the flags of `train` in `values` (one FlagValues per command)."""
    method_list = ", ".join(f"{m.name} ({m.summary})" for m in methods.METHODS.values())
    define = {"flag_values": values}
    flags.DEFINE_enum(
        "method", "simclr", list(methods.METHODS), f"Method: {method_list}.", **define
    )
    flags.DEFINE_string(
        "dataset",
        "fashion_mnist",
        "fashion_mnist (local IDX files), a prepared TFDS name, or tfrecord:PATTERN (TFRecord "
        "files of encoded images, see --tfrecord_image_key). Not with --data_dir.",
        **define,
    )
    flags.DEFINE_string(
        "data_dir",
        "",
        "Train on a folder of PNG/JPEG/BMP/GIF files instead of --dataset: one sub-folder per "
        "class, or any layout unlabelled (see --labels).",
        **define,
    )
    flags.DEFINE_enum(
        "labels",
        "auto",
        list(sources.LABELS),
        "Labels of --data_dir: inferred (its sub-folders are the classes), none, or auto "
        "(inferred when it has two or more sub-folders and no image directly inside).",
        **define,
    )
    flags.DEFINE_string(
        "eval_data_dir",
        "",
        "Labelled folder with the class sub-folders of --data_dir: the queries of the kNN "
        "monitor and of `evaluate` (empty: no kNN monitor).",
        **define,
    )
    flags.DEFINE_enum(
        "on_error",
        "raise",
        ["raise", "skip"],
        "Unreadable image files or records: raise (naming them) or skip (counted in one warning).",
        **define,
    )
    flags.DEFINE_string(
        "tfrecord_image_key", "image", "Image feature of --dataset=tfrecord:...", **define
    )
    flags.DEFINE_string(
        "tfrecord_label_key",
        "",
        "Int64 label feature of --dataset=tfrecord:... (empty: unlabelled).",
        **define,
    )
    flags.DEFINE_string("model_dir", "", "Run directory (required); re-running resumes.", **define)
    flags.DEFINE_string("train_split", "train", "Split to train on (TFDS syntax).", **define)
    flags.DEFINE_string("test_split", "test", "Split of the kNN monitor's queries.", **define)
    flags.DEFINE_integer(
        "train_examples",
        0,
        "Train on the first N examples only (0: all); folders and TFRecords: N random "
        "examples per epoch.",
        lower_bound=0,
        **define,
    )
    flags.DEFINE_integer(
        "image_size",
        0,
        "Side images are resized to (0: the dataset's, which must then be one size).",
        lower_bound=0,
        **define,
    )
    flags.DEFINE_string(
        "crop_size",
        "auto",
        "Side of the augmented training views (0: --image_size). A crop smaller than the "
        "images trains a resnetN encoder of any input size on the crops; the model still "
        "takes and serves whole images. auto: 16 on 28x28 images with a resnetN encoder (the "
        "recipe measured best on Fashion-MNIST, benchmarks/results/sweep.md; only 28x28 was "
        "measured), else (and for the siamese methods) the image size.",
        **define,
    )
    flags.DEFINE_enum(
        "channels",
        "auto",
        ["auto", "1", "3", "4"],
        "Image channels (auto: the dataset's; for a folder 1 if every file is grayscale, 4 if "
        "any has alpha, else 3).",
        **define,
    )
    flags.DEFINE_string(
        "encoder",
        "resnet10",
        f"Backbone: {', '.join(encoder_flag.RESNETS)} (see --encoder_width, --stem), "
        "keras.applications:NAME (e.g. keras.applications:EfficientNetV2B0, its preprocessing "
        "built in) or keras_hub:PRESET_DIR (a local KerasHub preset).",
        **define,
    )
    flags.DEFINE_string(
        "encoder_weights",
        "",
        "Local weights file (no top) of a keras.applications encoder (empty: random init; "
        "nothing is downloaded).",
        **define,
    )
    flags.DEFINE_integer(
        "encoder_width",
        16,
        "Filters of the ResNet's first stage (64 in the papers).",
        lower_bound=1,
        **define,
    )
    flags.DEFINE_enum(
        "stem",
        "auto",
        ["auto", "small", "imagenet"],
        "ResNet stem: small (3x3, no pooling, CIFAR) or imagenet (7x7/2 + max-pool); "
        "auto: small for views up to 64 pixels.",
        **define,
    )
    flags.DEFINE_string(
        "encoder_grid",
        "auto",
        "ResNet representation: its last feature map averaged over an N x N grid of cells and "
        "flattened (N*N times the features), or 1 for global average pooling (the papers). "
        "auto: 4 with the small stem (on 28x28 images the whole 4x4 map, 2048 features at "
        "width 16: +6 to +9 points of linear probe on Fashion-MNIST; at most the map's side, "
        "image side / 8), 1 with the imagenet stem and for the siamese methods (their measured "
        "recipe).",
        **define,
    )
    flags.DEFINE_integer(
        "batch_size", 256, "Global batch size (over all replicas).", lower_bound=2, **define
    )
    flags.DEFINE_integer(
        "epochs",
        10,
        "Training epochs. 10: `train` on Fashion-MNIST with the defaults (SimCLR) is a ~5 "
        "minute run on 2 CPU cores (2,340 steps at ~115 ms; 3 epochs measured kNN 86.1, "
        "linear probe 92.2).",
        lower_bound=1,
        **define,
    )
    flags.DEFINE_enum(
        "optimizer",
        "auto",
        ["auto", "sgd", "lars", "adam"],
        "SGD (momentum 0.9), LARS or Adam; auto: the method's "
        + ", ".join(f"{m.name} {m.optimizer}" for m in methods.METHODS.values())
        + ".",
        **define,
    )
    flags.DEFINE_string(
        "learning_rate",
        "auto",
        "Peak learning rate before --learning_rate_scaling; auto: the method's "
        + ", ".join(f"{m.name} {m.learning_rate:g}" for m in methods.METHODS.values())
        + ".",
        **define,
    )
    flags.DEFINE_enum(
        "learning_rate_scaling",
        "linear",
        ["linear", "sqrt", "none"],
        "Peak rate = learning_rate * batch_size / 256 (linear), * sqrt(batch_size / 256) "
        "(sqrt) or unchanged (none).",
        **define,
    )
    flags.DEFINE_float(
        "warmup_fraction",
        0.1,
        "Fraction of the steps in linear warmup (then cosine decay).",
        lower_bound=0.0,
        upper_bound=0.9,
        **define,
    )
    flags.DEFINE_string(
        "weight_decay",
        "auto",
        "Decoupled weight decay; auto: the method's "
        + ", ".join(f"{m.name} {m.weight_decay:g}" for m in methods.METHODS.values())
        + ".",
        **define,
    )
    for flag, readers in methods.method_flags().values():
        flag.define(
            flag.name,
            flag.default,
            help=f"({', '.join(readers)}) {flag.help}",
            **flag.options,
            **define,
        )
    flags.DEFINE_float(
        "min_crop_area", 0.25, "Smallest random-crop area fraction (paper: 0.08).", **define
    )
    flags.DEFINE_float(
        "color_strength",
        1.0,
        "Colour-jitter strength s (paper: 0.5 on CIFAR; on Fashion-MNIST 1.0 measured +1.5 to "
        "+2.4 points of kNN over 0.5).",
        **define,
    )
    flags.DEFINE_bool("blur", False, "Gaussian blur on the views (paper: ImageNet only).", **define)
    flags.DEFINE_integer(
        "shuffle_buffer",
        10000,
        "Shuffle buffer (examples; TFRecords: records). Folders reshuffle all their files "
        "every epoch instead.",
        lower_bound=1,
        **define,
    )
    flags.DEFINE_string(
        "strategy", "auto", "auto, default, mirrored, multi_worker, tpu or cpu:N.", **define
    )
    flags.DEFINE_enum(
        "precision",
        "auto",
        ["auto", *PRECISIONS],
        "Keras dtype policy. auto: one training step on one batch is timed in float32 and "
        "mixed_bfloat16 (and mixed_float16 with a GPU) and the faster is used (bfloat16 is "
        "~2x faster on some CPUs, 1.6x slower on others); config.json records it and a resumed "
        "run keeps it.",
        **define,
    )
    flags.DEFINE_bool("jit_compile", False, "XLA-compile the train step.", **define)
    flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0, **define)
    flags.DEFINE_bool(
        "knn_monitor", True, "Log the kNN accuracy (if the data has labels).", **define
    )
    flags.DEFINE_integer("knn_k", 200, "Neighbours of the kNN monitor.", lower_bound=1, **define)
    flags.DEFINE_integer(
        "knn_every", 0, "kNN every N epochs (0: about 4 times per run).", lower_bound=0, **define
    )
    flags.DEFINE_integer(
        "knn_memory_examples",
        10000,
        "Training examples in the kNN memory (folders: a random N at each evaluation).",
        lower_bound=1,
        **define,
    )
    flags.DEFINE_integer(
        "knn_query_examples",
        2000,
        "Test examples classified by the kNN monitor (folders: a random N each time).",
        lower_bound=1,
        **define,
    )
    flags.DEFINE_integer(
        "log_every_steps", 50, "TensorBoard scalars every N steps.", lower_bound=1, **define
    )
    flags.DEFINE_enum("verbose", "2", ["0", "1", "2"], "Keras fit verbosity.", **define)
    flags.DEFINE_bool("plots", True, "Write plots/training_curves.png.", **define)
