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

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines

import fashion_mnist_recipe as recipe  # examples/fashion_mnist_recipe.py: the shared run
from absl import app, flags

recipe.define_flags("simsiam_fashion_mnist")
flags.DEFINE_integer("projection_dim", 512, "Width of the projector layers and the prediction.")
flags.DEFINE_integer("projection_layers", 2, "Projector layers (paper: 2 on CIFAR, 3 on ImageNet).")
flags.DEFINE_integer("predictor_hidden_dim", 128, "The predictor's bottleneck width.")
flags.DEFINE_float("base_learning_rate", 0.5, "Rate for a batch of 256 (paper: 0.03).")
flags.DEFINE_float("warmup_epochs", 1.0, "Linear warmup of the decayed rate, in epochs.")
flags.DEFINE_float("weight_decay", 5e-4, "The paper's (coupled) weight decay.")
flags.DEFINE_bool("fixed_predictor_lr", True, "Keep the predictor's rate fixed (paper: yes).")
FLAGS = flags.FLAGS


def build_model(encoder, steps, steps_per_epoch):
    """SimSiam on `encoder` with the paper's optimizer (fixed-rate predictor)."""
    import keras_siamese as ks

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


def after_fit(model, history, steps):
    print(f"output_std per epoch: {[round(value, 4) for value in history.history['output_std']]}")
    return {}


if __name__ == "__main__":
    app.run(recipe.main("SimSiam", build_model, collapse_monitor=True, after_fit=after_fit))
