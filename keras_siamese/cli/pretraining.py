"""`train`'s SimCLR pretraining of a Siamese network's encoder (`--pretrain_epochs`).

The Siamese recipes (`keras_siamese.recipes.SiameseRecipe`) first train their encoder with
SimCLR (`recipe.pretraining_recipe()`: its recipe on the same encoder, labels unused) for
`pretrain_epochs` of batches of 256, then train the Siamese loss on it. The pretrained
encoder's weights are saved in the run directory (DIR/pretrained_encoder.weights.h5, written
atomically), so a resumed run reuses them instead of pretraining again.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from keras_siamese import atomic_files
from keras_siamese.cli import encoder_flag, progress_lines, run_dir

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from keras_siamese.cli.run_config import RunConfig

PRETRAINED_ENCODER = "pretrained_encoder.weights.h5"


def build_encoder(config: RunConfig) -> keras.Model:
    """The run's encoder: the recipe's (ResNet or ViT), or `--encoder`'s at the view shape."""
    if encoder_flag.from_recipe(config.encoder):
        return config.recipe.build_encoder(config.image_shape[2], config.image_shape)
    return encoder_flag.build(config.encoder, config.view_shape, config.flags["encoder_weights"])


def _batches(config: RunConfig, images: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    import tensorflow as tf

    if not config.files_shuffled:
        images = images.shuffle(config.flags["shuffle_buffer"], seed=config.seed)
    images = images.repeat().batch(batch_size, drop_remainder=True)
    return images.prefetch(tf.data.AUTOTUNE)


def pretrained_encoder(
    config: RunConfig, model_dir: str, images: tf.data.Dataset
) -> keras.Model | None:
    """The run's encoder after `config.pretrain_steps` of SimCLR, or None without them.

    Args:
        config: the resolved run.
        model_dir: the run directory (holds the pretrained weights once written).
        images: the unbatched training images (no labels).

    Returns:
        The encoder (weights from DIR/pretrained_encoder.weights.h5 if it exists), or None
        when the run does not pretrain.
    """
    if not config.pretrain_steps:
        return None
    encoder = build_encoder(config)
    path = run_dir.path(model_dir, PRETRAINED_ENCODER)
    if os.path.isfile(path):
        encoder.load_weights(path)
        print(f"Pretrained encoder: {path} (reused).")
        return encoder
    recipe = config.pretraining_recipe()
    batch_size = min(recipe.batch_size, config.train_examples)
    steps = config.pretrain_steps
    model = recipe.build_model(config.image_shape, steps, encoder=encoder, seed=config.seed)
    model.compile(optimizer=recipe.build_optimizer(steps, batch_size))
    print(f"Pretraining the encoder with SimCLR: {steps} steps of {batch_size} images.")
    verbose = progress_lines.fit_verbose(config.flags["verbose"])
    model.fit(
        _batches(config, images, batch_size), epochs=1, steps_per_epoch=steps, verbose=verbose
    )
    os.makedirs(model_dir, exist_ok=True)
    with atomic_files.atomic_path(path) as temporary:  # whole or absent
        encoder.save_weights(temporary)
    return encoder
