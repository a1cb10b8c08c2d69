"""SimSiam on Fashion-MNIST, with the SimCLR demo's encoder, views and budget: pretrain, compare.

Pretrains the SimCLR demo's encoder with SimSiam on the 60,000 Fashion-MNIST training images
(labels unused) for as many epochs, prints `output_std` per epoch (about 1 is healthy, near 0
is collapse) and the demo's table: the raw pixels, the encoder at random initialisation and the
SimSiam encoder, each measured on the 10,000 test images with the weighted kNN (k=200, T=0.1),
the linear probe (all labels) and the linear probe on 1% of the labels (600). The encoder is
exported to `saved_models/simsiam_fashion_mnist/<version>/` for TF Serving.

The encoder and views are the demo recipe `benchmarks/recipe.py` measured (README "The demo
recipe"): a ResNet-10 of width 16 trained on 16x16 views (crops of 25-100% of the image,
resized), whose representation is its whole 4x4x128 last feature map, colour strength 1.0
(brightness and contrast), no blur; bfloat16 only where a timed probe finds it faster.
Scaled down from the paper (Chen & He 2021, CIFAR: ResNet-18, 800 epochs, batch 512,
projector 2x2048, predictor 512, SGD 0.03*B/256, cosine decay, weight decay 5e-4, fixed
predictor rate): 10 epochs, projector 2x512, predictor 128 and a rate of 0.5*B/256 with a
1-epoch warmup. The cosine loss' gradients are ~5x smaller than NT-Xent's at temperature 0.2,
so the paper's rate learns little in a short run (the rate was chosen on the earlier
28x28-view recipe). Measured numbers are in benchmarks/results/ (sweep.md, quality-quick.md).

Run: `python examples/simsiam_fashion_mnist.py` (about as long as the SimCLR demo).
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
flags.DEFINE_integer("projection_dim", 512, "Width of the projector layers and the prediction.")
flags.DEFINE_integer("projection_layers", 2, "Projector layers (paper: 2 on CIFAR, 3 on ImageNet).")
flags.DEFINE_integer("predictor_hidden_dim", 128, "The predictor's bottleneck width.")
flags.DEFINE_float("base_learning_rate", 0.5, "Rate for a batch of 256 (paper: 0.03).")
flags.DEFINE_float("warmup_epochs", 1.0, "Linear warmup of the decayed rate, in epochs.")
flags.DEFINE_float("weight_decay", 5e-4, "The paper's (coupled) weight decay.")
flags.DEFINE_bool("fixed_predictor_lr", True, "Keep the predictor's rate fixed (paper: yes).")
flags.DEFINE_float("min_crop_area", 0.25, "Smallest random-crop area fraction (paper: 0.2).")
flags.DEFINE_float("color_strength", 1.0, "Colour-jitter strength (brightness/contrast here).")
flags.DEFINE_integer("train_examples", 0, "Use only the first N training images (0: all).")
flags.DEFINE_integer("probe_epochs", 20, "Epochs of the linear probe.")
flags.DEFINE_string("model_dir", "runs/simsiam_fashion_mnist", "Backups, checkpoints, logs, flags.")
flags.DEFINE_string("export_dir", "saved_models/simsiam_fashion_mnist", "SavedModel base dir.")
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
        augmenter = ks.augment.simsiam_augmenter(
            FLAGS.view_size,
            channels=1,
            strength=FLAGS.color_strength,
            blur=False,
            crop_area=(FLAGS.min_crop_area, 1.0),
            seed=FLAGS.seed,
        )
        model = ks.SimSiam(
            encoder,
            augmenter,
            projection_dim=FLAGS.projection_dim,
            projection_layers=FLAGS.projection_layers,
            predictor_hidden_dim=FLAGS.predictor_hidden_dim,
            image_size=(28, 28),
        )
        optimizer = ks.optimizers.simsiam_optimizer(
            FLAGS.batch_size,
            steps,
            base_learning_rate=FLAGS.base_learning_rate,
            weight_decay=FLAGS.weight_decay,
            fixed_predictor_learning_rate=FLAGS.fixed_predictor_lr,
            warmup_steps=min(int(FLAGS.warmup_epochs * steps_per_epoch), steps - 1),
        )
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
        ks.callbacks.KNNMonitor(
            (train[0][:10000], train[1][:10000]), (test[0][:2000], test[1][:2000]), verbose=0
        ),
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
    print(f"output_std per epoch: {[round(value, 4) for value in history.history['output_std']]}")
    rows["SimSiam"] = evaluate(model)

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
