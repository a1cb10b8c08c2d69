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

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines

import fashion_mnist_recipe as recipe  # examples/fashion_mnist_recipe.py: the shared run
from absl import app, flags

recipe.define_flags("barlow_twins_fashion_mnist")
flags.DEFINE_integer("projection_dim", 512, "Width of every projector layer (paper: 8192).")
flags.DEFINE_integer("projection_layers", 3, "Projector layers (paper: 3).")
flags.DEFINE_float("lambda_", 0.0051, "Weight of the redundancy-reduction term (paper: 0.0051).")
flags.DEFINE_float("learning_rate", 0.01, "Peak learning rate (after a 10% warmup).")
flags.DEFINE_float("weight_decay", 1.5e-6, "Weight decay (paper: 1.5e-6).")
FLAGS = flags.FLAGS


def build_model(encoder, steps, steps_per_epoch):
    """Barlow Twins on `encoder`: BYOL's views, a 3-layer projector, SGD + warmup and cosine."""
    import keras

    import keras_siamese as ks

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


def after_fit(model, history, steps):
    for name in ("invariance", "redundancy", "output_std"):
        print(f"{name} per epoch: {[round(value, 4) for value in history.history[name]]}")
    return {}


if __name__ == "__main__":
    app.run(recipe.main("Barlow Twins", build_model, collapse_monitor=True, after_fit=after_fit))
