"""MAE's random patch masking, drawn for the global batch so replicas mask as one device does.

He et al. 2022 (MAE), section 3: "we sample random patches without replacement, following a
uniform distribution"; the reference code shuffles each image's patches by the argsort of
uniform noise and keeps the first ones. Under `tf.distribute` a per-replica draw would give
image i another mask on N replicas than on one device. `mask_noise` draws the noise of the
whole global batch from a stateless seed (the model's seed and the optimizer step) and
keeps this replica's rows, so every image gets the same mask on any number of replicas and
a resumed run draws the masks of an uninterrupted one.
"""

from __future__ import annotations

import math

import tensorflow as tf

from keras_siamese import distribute
from keras_siamese.augment.base import in_xla_context

RANDOM_ALGORITHM = "philox"  # the augmentations' (one algorithm on every device)


def visible_count(num_patches: int, mask_ratio: float) -> int:
    """Patches each image keeps: `(1 - mask_ratio) * num_patches`, rounded half up.

    Args:
        num_patches: patches per image.
        mask_ratio: the fraction masked, in (0, 1).

    Returns:
        The count, from 1 to `num_patches - 1`.

    Raises:
        ValueError: when the rounding keeps no patch or every patch.

    Example:
        >>> visible_count(49, 0.75)
        12
    """
    visible = math.floor((1.0 - mask_ratio) * num_patches + 0.5)
    if not 0 < visible < num_patches:
        raise ValueError(
            f"Argument `mask_ratio` must leave at least one visible and one masked patch of "
            f"the {num_patches} patches per image (it keeps {visible}). "
            f"Received: mask_ratio={mask_ratio}"
        )
    return visible


def replica_rows(local_size) -> tuple:
    """`(offset, global size)`: this replica's first row in the global batch, and its size.

    The offset is the sum of the lower replicas' batch sizes (an `all_gather` of the local
    sizes), right for uneven splits too: a last partial batch of 16 images on 3 replicas
    arrives as 6, 6 and 4, each replica with its own static size. Under XLA, whose shapes
    must be constants (TPUs, which split batches evenly), a static `local_size` is taken as
    every replica's: offset `replica_id * local_size`. `(0, local_size)` outside replicas.
    """
    if not distribute.in_replica_context():
        return 0, local_size
    if isinstance(local_size, int) and in_xla_context():
        return distribute.replica_id() * local_size, local_size * distribute.num_replicas()
    local_size = tf.cast(local_size, tf.int32)
    sizes = distribute.all_gather(tf.reshape(local_size, (1,)))
    before = tf.range(tf.shape(sizes)[0]) < distribute.replica_id()
    offset = tf.reduce_sum(tf.where(before, sizes, tf.zeros_like(sizes)))
    return offset, tf.reduce_sum(sizes)


def mask_noise(seed, local_size, num_patches: int) -> tf.Tensor:
    """Uniform noise `(local_size, num_patches)`: this replica's rows of the global draw.

    Args:
        seed: a stateless seed `(2,)` (the model's seed and the optimizer step).
        local_size: images on this replica: a Python int when static, else a scalar tensor.
        num_patches: patches per image.

    Returns:
        float32 noise in [0, 1): rows `offset .. offset + local_size` of the noise drawn for
        the whole global batch.

    Example:
        >>> mask_noise(tf.constant([0, 3], tf.int64), 4, 49).shape
        TensorShape([4, 49])
    """
    offset, total = replica_rows(local_size)
    shape = tf.stack([total, num_patches])
    noise = tf.random.stateless_uniform(shape, seed, alg=RANDOM_ALGORITHM)
    if isinstance(offset, int):  # one device
        return noise
    rows = tf.cast(local_size, tf.int32)
    return tf.slice(noise, tf.stack([tf.cast(offset, tf.int32), 0]), tf.stack([rows, -1]))


def random_masking(noise, visible: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per-image random masking: the `visible` patches of lowest noise are kept.

    Args:
        noise: float `(batch, patches)`.
        visible: patches kept per image.

    Returns:
        `(keep_ids, restore_ids, mask)`: int32 `(batch, visible)` ids of the kept patches
        (lowest noise first); int32 `(batch, patches)`, the place of each patch in the
        order "kept, then masked" (`tf.gather(shuffled, restore_ids, batch_dims=1)` puts a
        shuffled sequence back in grid order); float32 `(batch, patches)`, 1 for a masked
        patch and 0 for a kept one, in grid order.

    Example:
        >>> keep, restore, mask = random_masking(tf.constant([[0.3, 0.1, 0.9, 0.5]]), 2)
        >>> keep.numpy().tolist(), mask.numpy().tolist()
        ([[1, 0]], [[0.0, 0.0, 1.0, 1.0]])
    """
    shuffle = tf.argsort(noise, axis=1, stable=True)
    restore = tf.argsort(shuffle, axis=1, stable=True)
    mask = tf.cast(restore >= visible, tf.float32)
    return shuffle[:, :visible], restore, mask
