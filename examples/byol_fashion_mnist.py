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

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines

import fashion_mnist_recipe as recipe  # examples/fashion_mnist_recipe.py: the shared run
from absl import app, flags

recipe.define_flags("byol_fashion_mnist")
flags.DEFINE_integer("projection_dim", 128, "Output size of the projector and predictor.")
flags.DEFINE_integer("hidden_dim", 512, "Hidden width of the projector and predictor.")
flags.DEFINE_float("momentum", 0.99, "Base momentum of the target, raised to 1 (paper: 0.996).")
flags.DEFINE_float("base_learning_rate", 0.8, "Peak rate for a batch of 256 (SGD, momentum 0.9).")
flags.DEFINE_float("warmup_epochs", 1.0, "Linear warmup of the rate, in epochs.")
flags.DEFINE_float("weight_decay", 1e-4, "Decoupled weight decay of SGD.")
FLAGS = flags.FLAGS


def build_model(encoder, steps, steps_per_epoch):
    """BYOL on `encoder`: the asymmetric views, a momentum target, SGD + warmup and cosine."""
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


def after_fit(model, history, steps):
    momentum = float(model.momentum_update.current_momentum())
    print(f"output_std per epoch: {[round(value, 4) for value in history.history['output_std']]}")
    print(f"Target momentum after {steps} steps: {momentum:.4f}")
    return {"final_momentum": momentum}


if __name__ == "__main__":
    app.run(recipe.main("BYOL", build_model, collapse_monitor=True, after_fit=after_fit))
