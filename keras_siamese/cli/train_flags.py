"""The flags of `train`: three tables, defined per call in a fresh `absl.flags.FlagValues`.

`FLAGS` below (data, run and monitor flags), `recipe_flags.RECIPE_FLAGS` (the fields every
recipe has: `auto` is the method's recipe value) and each method's own flags
(`keras_siamese.cli.methods`, their help starting with the methods that read them, e.g.
`(simclr)`). This module never imports TensorFlow: `train --help` and flag errors answer
without it.
"""

from __future__ import annotations

from absl import flags

from keras_siamese.cli import encoder_flag, methods, recipe_flags, sources

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRING, INTEGER, BOOL, ENUM, FLOAT = (
    flags.DEFINE_string,
    flags.DEFINE_integer,
    flags.DEFINE_bool,
    flags.DEFINE_enum,
    flags.DEFINE_float,
)

# (define, name, default, help, options)
FLAGS = (
    (STRING, "dataset", "fashion_mnist", "fashion_mnist (local IDX files), a prepared TFDS name, "
     "or tfrecord:PATTERN (TFRecord files of encoded images, see --tfrecord_image_key). Not with "
     "--data_dir.", {}),
    (STRING, "data_dir", "", "Train on a folder of PNG/JPEG/BMP/GIF files instead of --dataset: "
     "one sub-folder per class, or any layout unlabelled (see --labels).", {}),
    (ENUM, "labels", "auto", "Labels of --data_dir: inferred (its sub-folders are the classes), "
     "none, or auto (inferred when it has two or more sub-folders and no image directly "
     "inside).", {"enum_values": list(sources.LABELS)}),
    (STRING, "eval_data_dir", "", "Labelled folder with the class sub-folders of --data_dir: the "
     "queries of the kNN monitor and of `evaluate` (empty: no kNN monitor).", {}),
    (ENUM, "on_error", "raise", "Unreadable image files or records: raise (naming them) or skip "
     "(counted in one warning).", {"enum_values": ["raise", "skip"]}),
    (INTEGER, "max_pixels", 4096 * 4096, "Images with more pixels (width x height, read from the "
     "file header before any decoding) are unreadable files: refused by name, or left out with "
     "--on_error=skip (0: no limit).", {"lower_bound": 0}),
    (STRING, "tfrecord_image_key", "image", "Image feature of --dataset=tfrecord:...", {}),
    (STRING, "tfrecord_label_key", "", "Int64 label feature of --dataset=tfrecord:... (empty: "
     "unlabelled).", {}),
    (STRING, "model_dir", "", "Run directory (required); re-running resumes.", {}),
    (STRING, "train_split", "train", "Split to train on (TFDS syntax).", {}),
    (STRING, "test_split", "test", "Split of the kNN monitor's queries.", {}),
    (INTEGER, "train_examples", 0, "Train on the first N examples only (0: all); folders and "
     "TFRecords: N random examples per epoch.", {"lower_bound": 0}),
    (INTEGER, "image_size", 0, "Side images are resized to (0: the dataset's, which must then be "
     "one size).", {"lower_bound": 0}),
    (ENUM, "channels", "auto", "Image channels (auto: the dataset's; for a folder 1 if every file "
     "is grayscale, 4 if any has alpha, else 3).", {"enum_values": ["auto", "1", "3", "4"]}),
    (STRING, "encoder", "auto", f"Backbone: auto (the recipe's encoder: a ResNet, MAE's ViT), "
     f"{', '.join(encoder_flag.RESNETS)} (see --encoder_width, --stem), vit (the package's Vision "
     "Transformer and the method's ViT recipe, see --patch_size, --vit_dim), "
     "keras.applications:NAME (e.g. keras.applications:EfficientNetV2B0, its preprocessing "
     "built in) or keras_hub:PRESET_DIR (a local KerasHub preset).", {}),
    (STRING, "encoder_weights", "", "Local weights file (no top) of a keras.applications encoder "
     "(empty: random init; nothing is downloaded).", {}),
    (INTEGER, "shuffle_buffer", 10000, "Shuffle buffer (examples; TFRecords: records). Folders "
     "reshuffle all their files every epoch instead.", {"lower_bound": 1}),
    (STRING, "strategy", "auto", "auto, default, mirrored, multi_worker, tpu or cpu:N.", {}),
    (ENUM, "precision", "auto", "Keras dtype policy. auto: one training step on one batch is "
     "timed in float32 and mixed_bfloat16 (and mixed_float16 with a GPU) and the faster is "
     "used; config.json records it and a resumed run keeps it.",
     {"enum_values": ["auto", *PRECISIONS]}),
    (STRING, "time_budget", "none", "Train for about this long: none (the epochs decide) or a "
     "duration (90s, 10m, 1.5h; a number: seconds). The steps are chosen from one training step "
     "of the run's model timed first (--precision=auto's probe when it runs) and its first step "
     "(tracing), rounded down to whole epochs, at most --epochs' when given; the kNN monitor, "
     "saves, checkpoints and SimCLR pretraining are outside the budget. config.json records the "
     "steps and a resumed run keeps them.", {}),
    (BOOL, "jit_compile", False, "XLA-compile the train step.", {}),
    (INTEGER, "seed", 0, "Random seed.", {"lower_bound": 0}),
    (BOOL, "knn_monitor", True, "Log the kNN accuracy (if the data has labels).", {}),
    (INTEGER, "knn_k", 200, "Neighbours of the kNN monitor.", {"lower_bound": 1}),
    (INTEGER, "knn_every", 0, "kNN every N epochs (0: about 4 times per run).", {"lower_bound": 0}),
    (INTEGER, "knn_memory_examples", 10000, "Training examples in the kNN memory (folders: a "
     "random N at each evaluation).", {"lower_bound": 1}),
    (INTEGER, "knn_query_examples", 2000, "Test examples classified by the kNN monitor (folders: a "
     "random N each time).", {"lower_bound": 1}),
    (INTEGER, "checkpoint_every_steps", 0, "Checkpoint into DIR/checkpoints every N steps (0: "
     "by time only). A run also checkpoints on SIGTERM/SIGINT at the next step, then exits with "
     "status 75; re-running resumes at that exact step.", {"lower_bound": 0}),
    (FLOAT, "checkpoint_every_minutes", 10.0, "Checkpoint every M minutes of training (0: by "
     "steps only).", {"lower_bound": 0.0}),
    (INTEGER, "log_every_steps", 50, "TensorBoard scalars every N steps.", {"lower_bound": 1}),
    (ENUM, "verbose", "auto", "Keras fit's console output: auto (1 when standard output is a "
     "terminal, else 2), 0 silent, 1 a progress bar within each epoch (steps, ETA), 2 one line "
     "per epoch (log files, pipes).", {"enum_values": ["auto", "0", "1", "2"]}),
    (BOOL, "plots", True, "Write plots/training_curves.png.", {}),
)  # fmt: skip


def define_flags(values: flags.FlagValues) -> None:
    """Defines the flags of `train` in `values` (one FlagValues per command)."""
    listed = ", ".join(f"{m.name} ({m.summary})" for m in methods.METHODS.values())
    flags.DEFINE_enum(
        "method", "simclr", list(methods.METHODS), f"Method: {listed}.", flag_values=values
    )
    for define, name, default, help_text, options in FLAGS:
        define(name, default, help=help_text, flag_values=values, **options)
    for flag in recipe_flags.RECIPE_FLAGS:
        flag.define(flag.name, flag.default, help=flag.help, flag_values=values, **flag.options)
    for flag, readers in methods.method_flags().values():
        text = f"({', '.join(readers)}) {flag.help}"
        flag.define(flag.name, flag.default, help=text, flag_values=values, **flag.options)


def flag_values(*arguments: str) -> dict:
    """`{name: value}` of `train ARGUMENTS` (no data read, no TensorFlow), `--crop_size` and
    `--encoder_grid` and the numbers of `auto` flags parsed as recorded in config.json.

    Example:
        >>> flag_values("--method=byol")["method"]
        'byol'
    """
    from keras_siamese.cli import view_recipe

    values = flags.FlagValues()
    define_flags(values)
    values(["train", *arguments])
    parsed = view_recipe.parse_flags({name: values[name].value for name in values})
    return recipe_flags.recorded(parsed)
