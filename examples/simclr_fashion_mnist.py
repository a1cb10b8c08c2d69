"""SimCLR on Fashion-MNIST in 10 minutes on 2 CPU cores: pretrain, compare, export.

Pretrains a small ResNet with SimCLR on the 60,000 Fashion-MNIST training images (labels
unused), then prints one table: the raw pixels, the encoder at random initialisation and the
SimCLR encoder, each measured on the 10,000 test images with the weighted kNN (k=200,
T=0.1), the linear probe (all labels) and the linear probe on 1% of the labels (600). The
encoder is exported to `saved_models/simclr_fashion_mnist/<version>/` for TF Serving.

The recipe is what `benchmarks/recipe.py` measured to learn most per CPU-minute (README "The
demo recipe"). Scaled down from the paper (ResNet-50 on 224-pixel views, batch 4096, LARS,
100-800 epochs): a ResNet-10 of width 16 trained on 16x16 views (crops of 25-100% of the image,
resized: a quarter of the 28x28 cost), whose representation is its whole last feature map
(4x4x128 on a 28x28 image, not globally averaged: the garment's layout survives), colour
strength 1.0 (brightness and contrast), no blur, batch 256, temperature 0.2, SGD with momentum,
warmup and cosine decay. bfloat16 only where a timed probe finds it faster than float32.

Run: `python examples/simclr_fashion_mnist.py` (or `make demo`).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines

import fashion_mnist_recipe as recipe  # examples/fashion_mnist_recipe.py: the shared run
from absl import app, flags

recipe.define_flags("simclr_fashion_mnist")
flags.DEFINE_float("temperature", 0.2, "NT-Xent temperature.")
flags.DEFINE_enum("optimizer", "sgd", ["sgd", "lars", "adam"], "SGD/LARS: momentum 0.9.")
flags.DEFINE_float("learning_rate", 0.6, "Peak learning rate (after a 10% warmup).")
flags.DEFINE_float("weight_decay", 5e-4, "Decoupled weight decay.")
FLAGS = flags.FLAGS


def build_model(encoder, steps, steps_per_epoch):
    """SimCLR on `encoder`: 16x16 views, projection 512 -> 128, SGD + warmup and cosine."""
    import keras

    import keras_siamese as ks

    augmenter = ks.augment.simclr_augmenter(
        FLAGS.view_size,
        channels=1,
        strength=FLAGS.color_strength,
        blur=False,
        crop_area=(FLAGS.min_crop_area, 1.0),
        seed=FLAGS.seed,
    )
    model = ks.SimCLR(encoder, augmenter, (512, 128), FLAGS.temperature, image_size=(28, 28))
    schedule = ks.optimizers.WarmupCosine(FLAGS.learning_rate, steps, max(1, steps // 10))
    optimizer = {
        "sgd": lambda: keras.optimizers.SGD(schedule, 0.9, weight_decay=FLAGS.weight_decay),
        "lars": lambda: ks.optimizers.LARS(schedule, 0.9, weight_decay=FLAGS.weight_decay),
        "adam": lambda: keras.optimizers.Adam(schedule, weight_decay=FLAGS.weight_decay),
    }[FLAGS.optimizer]()
    model.compile(optimizer=optimizer, jit_compile=FLAGS.jit_compile)
    return model


if __name__ == "__main__":
    app.run(recipe.main("SimCLR", build_model))
