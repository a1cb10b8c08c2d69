"""Barlow Twins on Fashion-MNIST, with the SimCLR demo's encoder, views and budget.

Pretrains the SimCLR demo's encoder with Barlow Twins on the 60,000 Fashion-MNIST training
images (labels unused) for as many epochs, prints the two loss terms and `output_std` per epoch
(about 1 is healthy, near 0 is collapse) and the demo's table: the raw pixels, the encoder at
random initialisation and the Barlow Twins encoder, each measured on the 10,000 test images
with the weighted kNN (k=200, T=0.1), the linear probe (all labels) and the linear probe on 1%
of the labels (600). The encoder is exported to
`saved_models/barlow_twins_fashion_mnist/<version>/` for TF Serving.

Barlow Twins needs no negatives, no predictor, no moving average and no large batch: the
loss makes the cross-correlation of the two views' projections the identity.

The encoder and views are the demo recipe `benchmarks/recipe.py` measured (README "The demo
recipe"): a ResNet-10 of width 16 trained on 16x16 views (crops of 25-100% of the image,
resized), whose representation is its whole 4x4x128 last feature map, no blur; bfloat16 only
where a timed probe finds it faster. The views are BYOL's asymmetric pair, as in the paper
(`ks.augment.byol_augmenters`, colour strength 1.0: its jitter of brightness and contrast 0.4;
solarisation with p=0.2 on the second view only).
Scaled down from the paper (Zbontar et al. 2021, ImageNet: ResNet-50, 1000 epochs, batch
2048, projector 3x8192, LARS 0.2 x B / 256, lambda 0.0051): 10 epochs, projector 3x512,
SGD+momentum with a warmup and cosine decay (LARS' trust ratio mainly helps batches in the
thousands) at 0.01: the loss sums d^2 terms, so its gradients are large (the rate was chosen
among 0.01, 0.05 and 0.2 on the earlier 28x28-view recipe). Measured numbers are in
benchmarks/results/.

Run: `python examples/barlow_twins_fashion_mnist.py` (about as long as the SimCLR demo).
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
flags.DEFINE_integer("projection_dim", 512, "Width of every projector layer (paper: 8192).")
flags.DEFINE_integer("projection_layers", 3, "Projector layers (paper: 3).")
flags.DEFINE_float("lambda_", 0.0051, "Weight of the redundancy-reduction term (paper: 0.0051).")
flags.DEFINE_float("learning_rate", 0.01, "Peak learning rate (after a 10% warmup).")
flags.DEFINE_float("weight_decay", 1.5e-6, "Weight decay (paper: 1.5e-6).")
flags.DEFINE_float("min_crop_area", 0.25, "Smallest random-crop area fraction (paper: 0.08).")
flags.DEFINE_float("color_strength", 1.0, "Scales BYOL's colour jitter (brightness/contrast here).")
flags.DEFINE_integer("train_examples", 0, "Use only the first N training images (0: all).")
flags.DEFINE_integer("probe_epochs", 20, "Epochs of the linear probe.")
flags.DEFINE_string("model_dir", "runs/barlow_twins_fashion_mnist", "Backups, checkpoints, logs.")
flags.DEFINE_string("export_dir", "saved_models/barlow_twins_fashion_mnist", "SavedModel base.")
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
        model = ks.BarlowTwins(
            encoder,
            augmenters,
            projection_dims=(FLAGS.projection_dim,) * FLAGS.projection_layers,
            lambda_=FLAGS.lambda_,
            image_size=(28, 28),
        )
        schedule = ks.optimizers.WarmupCosine(FLAGS.learning_rate, steps, max(1, steps // 10))
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
    for name in ("invariance", "redundancy", "output_std"):
        print(f"{name} per epoch: {[round(value, 4) for value in history.history[name]]}")
    rows["Barlow Twins"] = evaluate(model)

    # ---- the table, results and export
    table.print_table(rows, seconds)
    results = {"results": rows, "train_seconds": seconds, "precision": precision}
    results.update(images_per_second=steps * FLAGS.batch_size / seconds, history=history.history)
    with open(os.path.join(FLAGS.model_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=2, default=float)
    if ks.distribute.is_chief(strategy):  # one export per job, written atomically
        print(f"SavedModel for TF Serving: {ks.export.export_for_serving(model, FLAGS.export_dir)}")


if __name__ == "__main__":
    app.run(main)
