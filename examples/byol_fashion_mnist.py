"""BYOL on Fashion-MNIST, with the SimCLR demo's encoder, views and budget: pretrain, compare.

Pretrains the SimCLR demo's encoder with BYOL on the 60,000 Fashion-MNIST training images
(labels unused) for as many epochs, prints `output_std` per epoch (about 1 is healthy, near 0
is collapse), the target's momentum at the end and the demo's table: the raw pixels, the
encoder at random initialisation and the BYOL (online) encoder, each measured on the 10,000
test images with the weighted kNN (k=200, T=0.1), the linear probe (all labels) and the linear
probe on 1% of the labels (600). The online encoder is exported to
`saved_models/byol_fashion_mnist/<version>/` for TF Serving.

The encoder and views are the demo recipe `benchmarks/recipe.py` measured (README "The demo
recipe"): a ResNet-10 of width 16 trained on 16x16 views (crops of 25-100% of the image,
resized), whose representation is its whole 4x4x128 last feature map, no blur; bfloat16 only
where a timed probe finds it faster. The two views are BYOL's asymmetric pair
(`ks.augment.byol_augmenters`, colour strength 1.0: its jitter of brightness and contrast 0.4;
solarisation with p=0.2 on the second view only).
Scaled down from the paper (Grill et al. 2020, ImageNet: ResNet-50, 1000 epochs, batch
4096, projector and predictor 4096 -> 256, LARS 0.2*B/256 with weight decay 1.5e-6, target
momentum 0.996 -> 1): 10 epochs, projector and predictor 512 -> 128, SGD with momentum and
a rate of 0.8*B/256 with a 1-epoch warmup and cosine decay, and a base momentum of 0.99
(in a run of a few thousand steps a target at 0.996 barely leaves its random start). In the
tests' 512-step run of a two-layer encoder on 2,048 images, the base momentum 0.96 beat 0.99
(kNN 0.628 against 0.566). Measured numbers are in benchmarks/results/.

Run: `python examples/byol_fashion_mnist.py` (longer than the SimCLR demo: each step also runs
the target network).
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines

import console  # examples/console.py
import representation_table as table  # examples/representation_table.py
from absl import app, flags
from precision_choice import training_precision  # examples/precision_choice.py

flags.DEFINE_integer("epochs", 10, "Pretraining epochs over the train split.")
flags.DEFINE_integer("batch_size", 256, "Global batch size (images; each gives two views).")
flags.DEFINE_integer("encoder_width", 16, "Filters of the ResNet-10's first stage.")
flags.DEFINE_integer("view_size", 16, "Side of the augmented training views.")
flags.DEFINE_integer("grid", 4, "Features: the last map averaged over N x N cells (1: global).")
flags.DEFINE_integer("projection_dim", 128, "Output size of the projector and predictor.")
flags.DEFINE_integer("hidden_dim", 512, "Hidden width of the projector and predictor.")
flags.DEFINE_float("momentum", 0.99, "Base momentum of the target, raised to 1 (paper: 0.996).")
flags.DEFINE_float("base_learning_rate", 0.8, "Peak rate for a batch of 256 (SGD, momentum 0.9).")
flags.DEFINE_float("warmup_epochs", 1.0, "Linear warmup of the rate, in epochs.")
flags.DEFINE_float("weight_decay", 1e-4, "Decoupled weight decay of SGD.")
flags.DEFINE_float("min_crop_area", 0.25, "Smallest random-crop area fraction (paper: 0.08).")
flags.DEFINE_float("color_strength", 1.0, "Scales BYOL's colour jitter (brightness/contrast here).")
flags.DEFINE_integer("train_examples", 0, "Use only the first N training images (0: all).")
flags.DEFINE_integer("probe_epochs", 20, "Epochs of the linear probe.")
flags.DEFINE_string("model_dir", "runs/byol_fashion_mnist", "Backups, checkpoints, logs, flags.")
flags.DEFINE_string("export_dir", "saved_models/byol_fashion_mnist", "SavedModel base dir.")
flags.DEFINE_string("strategy", "auto", "auto, default, mirrored, multi_worker, tpu or cpu:N.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the train step (slower on CPU).")
flags.DEFINE_enum(
    "precision",
    "auto",
    ["auto", "float32", "bfloat16"],
    "Compute dtype; auto: bfloat16 if a timed probe finds it faster here.",
)
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    with console.framework_messages_to(os.path.join(FLAGS.model_dir, "stderr.log")):
        run()


def run():
    import keras
    import tensorflow as tf

    import keras_siamese as ks

    strategy = ks.distribute.get_strategy(FLAGS.strategy)
    with open(os.path.join(FLAGS.model_dir, "flags.json"), "w") as file:
        json.dump(FLAGS.flag_values_dict(), file, indent=2, default=str)

    # ---- data: uint8 images in [0, 255]; labels only for the evaluation. Batches are gathers
    # of shuffled indices from one in-memory tensor, prefetched: the step never waits.
    train = ks.datasets.load_arrays("fashion_mnist", "train")
    test = ks.datasets.load_arrays("fashion_mnist", "test")
    if FLAGS.train_examples:
        train = (train[0][: FLAGS.train_examples], train[1][: FLAGS.train_examples])
    steps_per_epoch = len(train[0]) // FLAGS.batch_size
    steps = FLAGS.epochs * steps_per_epoch
    pretrain = ks.datasets.shuffled_batches(train[0], FLAGS.batch_size, seed=FLAGS.seed)

    # ---- model: the demo's grid-pooled ResNet-10 on 16x16 views; it takes and serves 28x28.
    def build_model():
        keras.utils.set_random_seed(FLAGS.seed)
        encoder = ks.encoders.resnet(
            10, (None, None, 1), width=FLAGS.encoder_width, grid_size=FLAGS.grid or None
        )
        augmenters = ks.augment.byol_augmenters(  # view a, view b: own recipes and seeds
            FLAGS.view_size,
            channels=1,
            strength=FLAGS.color_strength,
            blur=False,
            crop_area=(FLAGS.min_crop_area, 1.0),
            seed=FLAGS.seed,
        )
        model = ks.BYOL(
            encoder,
            augmenters,
            projection_dim=FLAGS.projection_dim,
            hidden_dim=FLAGS.hidden_dim,
            momentum=FLAGS.momentum,
            image_size=(28, 28),
        )
        schedule = ks.optimizers.WarmupCosine(
            FLAGS.base_learning_rate * FLAGS.batch_size / 256,
            total_steps=steps,
            warmup_steps=min(int(FLAGS.warmup_epochs * steps_per_epoch), steps - 1),
        )
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=FLAGS.weight_decay)
        model.compile(optimizer=optimizer, jit_compile=FLAGS.jit_compile)
        return model

    batch = tf.constant(train[0][: FLAGS.batch_size])
    precision = training_precision(FLAGS.precision, build_model, batch)
    with strategy.scope():
        model = build_model()
    print(
        f"Encoder: {model.encoder.count_params():,} parameters, {model.feature_dim} features; "
        f"{steps} steps of {FLAGS.batch_size} images in {precision}."
    )

    def evaluate(network):
        return table.evaluate(network, train, test, FLAGS.probe_epochs, FLAGS.seed)

    rows = {"raw pixels": evaluate(table.raw_pixels(train[0].shape[1:]))}
    rows["random init"] = evaluate(model)

    # ---- pretraining
    callbacks = [
        ks.callbacks.CollapseMonitor(threshold=0.1, patience=2),  # watches output_std
        keras.callbacks.BackupAndRestore(
            ks.distribute.worker_directory(os.path.join(FLAGS.model_dir, "backup"), strategy)
        ),
        keras.callbacks.ModelCheckpoint(os.path.join(FLAGS.model_dir, "model.keras")),
        keras.callbacks.TensorBoard(os.path.join(FLAGS.model_dir, "logs"), update_freq=50),
    ]
    started = time.perf_counter()
    history = model.fit(
        pretrain,
        epochs=FLAGS.epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=2,
    )
    seconds = time.perf_counter() - started
    momentum = float(model.momentum_update.current_momentum())
    print(f"output_std per epoch: {[round(value, 4) for value in history.history['output_std']]}")
    print(f"Target momentum after {steps} steps: {momentum:.4f}")
    rows["BYOL"] = evaluate(model)  # the online encoder; the target and heads are dropped

    # ---- the table, results and export
    table.print_table(rows, seconds)
    results = {"results": rows, "train_seconds": seconds, "precision": precision}
    results.update(images_per_second=steps * FLAGS.batch_size / seconds, history=history.history)
    results["final_momentum"] = momentum
    with open(os.path.join(FLAGS.model_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=2, default=float)
    if ks.distribute.is_chief(strategy):  # one export per job, written atomically
        print(f"SavedModel for TF Serving: {ks.export.export_for_serving(model, FLAGS.export_dir)}")


if __name__ == "__main__":
    app.run(main)
