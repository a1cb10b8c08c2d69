"""One `fit` step under MirroredStrategy over N logical CPUs versus the default strategy.

Run by tests/test_equivalence.py in its own process (logical devices must be configured
before TensorFlow initialises). Prints one JSON line `EQUIVALENCE {...}` with the measured
differences; the test asserts on them.

Usage: python equivalence.py MODEL [REPLICAS ...]
    MODEL: simclr, simsiam or siamese (triplets mined over the global batch), nnclr (two
        steps, so that the support set written by the first is read by the second), or
        siamese-LOSS for a metric loss of SiameseNetwork (siamese-multi_similarity,
        siamese-proxy_anchor, ...; siamese-xbm: multi-similarity with a cross-batch memory),
        trained on two P x K batches so that the memory is read; mae (two steps, masks drawn
        for the global batch from (seed, step); also one batch split 6, 6, 4 over 3 replicas);
        REPLICAS: 2 4.
"""

import json
import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from scripts.logical_cpus import use_logical_cpus  # noqa: E402

MAX_DEVICES = 4
use_logical_cpus(MAX_DEVICES)

import keras  # noqa: E402
from conftest import random_images, tiny_encoder  # noqa: E402

import keras_siamese as ks  # noqa: E402
from keras_siamese import distribute  # noqa: E402

GLOBAL_BATCH = 16
LEARNING_RATE = 0.1  # the step moves the weights by up to ~20% of their norm


class FlipSecondHalf(keras.layers.Layer):
    """A deterministic two-view "augmenter": rescales, and mirrors the second half of the batch.

    The base calls the augmenter once on `concat([images, images])`, so the views are the
    images and their mirror images, identical on every replica and on one device.
    """

    def call(self, images, training=None):
        images = tf.cast(images, tf.float32) / 255.0
        first, second = tf.split(images, 2, axis=0)
        return tf.concat([first, tf.reverse(second, axis=[2])], axis=0)


def build_simclr(sync_batch_norm):
    return ks.SimCLR(
        tiny_encoder(),
        augmenter=FlipSecondHalf(),
        projection_dims=(16, 8),
        temperature=0.5,
        sync_batch_norm=sync_batch_norm,
    )


def build_simsiam(sync_batch_norm):
    return ks.models.SimSiam(
        tiny_encoder(),
        augmenter=FlipSecondHalf(),
        projection_dim=16,
        projection_layers=2,
        predictor_hidden_dim=8,
        sync_batch_norm=sync_batch_norm,
    )


def build_siamese(sync_batch_norm):
    return ks.models.SiameseNetwork(
        tiny_encoder(), loss="triplet", embedding_dim=8, sync_batch_norm=sync_batch_norm
    )


def build_metric(loss_name):
    """A SiameseNetwork under the metric loss `loss_name` (4 classes for the proxy losses)."""

    def build(sync_batch_norm):
        if loss_name == "xbm":
            loss = ks.losses.CrossBatchMemory(ks.losses.MultiSimilarityLoss(), 3 * GLOBAL_BATCH)
        else:
            loss = loss_name
        return ks.models.SiameseNetwork(
            tiny_encoder(),
            loss=loss,
            embedding_dim=8,
            num_classes=4 if loss_name in ks.loss_names.PROXY_LOSS_NAMES else None,
            sync_batch_norm=sync_batch_norm,
        )

    return build


def build_nnclr(sync_batch_norm):
    """NNCLR with a support set of 24: the second step's 16 projections wrap around."""
    return ks.NNCLR(
        tiny_encoder(),
        augmenter=FlipSecondHalf(),
        projection_dims=(16, 8),
        prediction_dims=(16, 8),
        temperature=0.5,
        support_set_size=24,
        sync_batch_norm=sync_batch_norm,
    )


BUILDERS = {"simclr": build_simclr, "simsiam": build_simsiam, "siamese": build_siamese}
BUILDERS["nnclr"] = build_nnclr
TWO_STEP_KINDS = ("nnclr",)  # read in the second step what the first one wrote


def build_mae(sync_batch_norm):
    """MAE on a tiny ViT (a 4 x 4 grid of patches, 4 visible), the images as they are: the
    masks are its only randomness. A ViT has no BatchNorm: `sync_batch_norm` changes nothing."""
    encoder = ks.encoders.vit(16, 4, dim=16, depth=1, heads=2, pooling="mean")
    return ks.MAE(
        encoder,
        augmenter=ks.augment.ToUnitRange(),
        decoder_dim=16,
        decoder_depth=1,
        decoder_heads=2,
        seed=5,
    )


BUILDERS["mae"] = build_mae
TWO_STEP_KINDS += ("mae",)  # the second step draws other masks (the step is in their seed)
BUILDERS |= {f"siamese-{name}": build_metric(name) for name in (*ks.loss_names.LOSS_NAMES, "xbm")}


def global_batches(kind):
    """Global batches: images for the two-view models, (images, labels) for Siamese networks
    (one batch; two for a metric loss, so that a cross-batch memory is read)."""
    batches = 2 if kind.startswith("siamese-") or kind in TWO_STEP_KINDS else 1
    images = random_images(GLOBAL_BATCH * batches, (16, 16, 1), seed=1)
    if kind.startswith("siamese"):
        # Four classes spread over every replica's share: P x K = 4 x 4.
        labels = np.arange(GLOBAL_BATCH * batches) % 4
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    else:
        dataset = tf.data.Dataset.from_tensor_slices(images)
    return dataset.batch(GLOBAL_BATCH, drop_remainder=True)


def train_one_step(kind, strategy, initial_weights, sync_batch_norm=True):
    """Builds under `strategy`, loads `initial_weights`, fits one step; returns loss, weights."""
    with strategy.scope():
        model = BUILDERS[kind](sync_batch_norm)
        model.set_weights(initial_weights)
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE))
    history = model.fit(global_batches(kind), epochs=1, verbose=0)
    report = distribute.distribution_report(model, GLOBAL_BATCH)
    return history.history["loss"][-1], model.get_weights(), report


def relative_difference(value, expected):
    """||value - expected|| / ||expected|| (0 when both are zero)."""
    scale = float(np.linalg.norm(expected))
    difference = float(np.linalg.norm(value - expected))
    return difference / scale if scale > 0 else difference


def flat(weights):
    return np.concatenate([np.ravel(weight) for weight in weights])


def weight_differences(weights, reference, initial):
    """Relative differences of all weights, and of the step's updates, as single vectors.

    Also lists the variables with an element further from the reference than 1e-4 of that
    variable's largest value (+ 1e-6 absolute, for values that are float32 noise around
    zero, e.g. a BatchNorm offset whose gradient is zero in exact arithmetic): the global
    norm must not hide one bad variable, while float32 sums taken in another order (the
    all-reduce) leave noise of about 1e-6 on elements near zero.
    """
    relative = relative_difference(flat(weights), flat(reference))
    update = relative_difference(flat(weights) - flat(initial), flat(reference) - flat(initial))
    not_close = [
        [index, float(np.abs(value - expected).max()), float(np.abs(expected).max())]
        for index, (value, expected) in enumerate(zip(weights, reference, strict=True))
        if np.abs(value - expected).max() > 1e-4 * np.abs(expected).max() + 1e-6
    ]
    return relative, update, not_close


def new_mirrored_strategy(devices):
    """A MirroredStrategy with its own collective group keys.

    Every MirroredStrategy numbers its collective groups from 1: a second strategy over
    another number of devices in the same process would join the first one's groups and
    fail. TensorFlow's own tests offset the keys through this class attribute.
    """
    tf.distribute.MirroredStrategy._collective_key_base += 1000
    return tf.distribute.MirroredStrategy(devices)


def masks_per_replica(kind, strategy, initial, loss, reference):
    """MAE's control: each replica draws the noise of its own images from the seed folded
    with its replica id, instead of its rows of the global batch's draw."""
    from keras_siamese.models import patch_masking

    def per_replica(seed, local_size, num_patches):
        shape = tf.stack([tf.cast(local_size, tf.int32), num_patches])
        return tf.random.stateless_uniform(shape, distribute.replica_seed(seed), alg="philox")

    saved, patch_masking.mask_noise = patch_masking.mask_noise, per_replica
    try:
        replica_loss, weights, _ = train_one_step(kind, strategy, initial)
    finally:
        patch_masking.mask_noise = saved
    return {
        "loss_difference": abs(replica_loss - loss),
        "weights_relative_difference": weight_differences(weights, reference, initial)[0],
    }


def mae_uneven_split(devices, initial):
    """MAE's loss, gradients and masks of one global batch of 16 images split 6, 6, 4 over 3
    replicas, against one device. Run by `strategy.run`: Keras' `fit` cannot start on a
    batch that splits unevenly (its symbolic build adds the replicas' batches together)."""
    images = tf.constant(random_images(GLOBAL_BATCH, (16, 16, 1), seed=1))

    def model_under(strategy):
        with strategy.scope():
            model = build_mae(True)
            model.set_weights(initial)
            model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE))
        return model

    traced = []  # the static batch size each replica is traced with (6, 6, 4: not one size)

    def parts(model, batch):
        traced.append(batch.shape[0])
        with tf.GradientTape() as tape:
            prepared = model.prepare_batch(batch, training=True)
            loss, _ = model.loss_on_batch(prepared, training=True)
            scaled = distribute.scale_for_replicas(loss)
        return loss, tape.gradient(scaled, model.trainable_variables), prepared["mask"]

    model = model_under(tf.distribute.get_strategy())
    loss, gradients, mask = tf.function(lambda batch: parts(model, batch))(images)
    strategy = new_mirrored_strategy(devices)
    replicated = model_under(strategy)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(GLOBAL_BATCH)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    run = tf.function(lambda batch: strategy.run(lambda b: parts(replicated, b), args=(batch,)))
    losses, replica_gradients, masks = run(batch)
    masks = strategy.experimental_local_results(masks)
    summed = [strategy.reduce("SUM", gradient, axis=None) for gradient in replica_gradients]
    return {
        "replica_batch_sizes": [int(part.shape[0]) for part in masks],
        "traced_replica_batch_sizes": traced[1:],
        "masks_equal": bool(np.array_equal(np.concatenate(masks), mask.numpy())),
        "loss_difference": abs(float(strategy.reduce("MEAN", losses, axis=None)) - float(loss)),
        "gradients_relative_difference": relative_difference(flat(summed), flat(gradients)),
    }


def main(kind, counts):
    keras.utils.set_random_seed(0)
    first = BUILDERS[kind](True)
    initial = first.get_weights()
    names = [weight.path for weight in first.weights]  # the order of get_weights()
    devices = use_logical_cpus(MAX_DEVICES)
    default = tf.distribute.get_strategy()
    loss, reference, _ = train_one_step(kind, default, initial)
    update = relative_difference(flat(initial), flat(reference))
    results = {"model": kind, "reference_loss": loss, "relative_update": update}

    for count in counts:
        strategy = new_mirrored_strategy(devices[:count])
        replica_loss, weights, report = train_one_step(kind, strategy, initial)
        relative, update, not_close = weight_differences(weights, reference, initial)
        results[f"replicas_{count}"] = {
            "loss_difference": abs(replica_loss - loss),
            "weights_relative_difference": relative,
            "updates_relative_difference": update,
            "variables_not_close": not_close,
            "report": {
                "replicas": report.replicas,
                "per_replica_batch_size": report.per_replica_batch_size,
                "negatives_per_anchor": report.negatives_per_anchor,
                "local_batch_norm": list(report.local_batch_norm),
                "warnings": list(report.warnings),
            },
        }

    # Controls that must differ, so the comparison above can fail (the BatchNorm one is
    # asserted for the models of tests/test_equivalence.py, not again per metric loss).
    strategy = new_mirrored_strategy(devices[:2])
    if not kind.startswith("siamese-"):
        unsynchronized_loss, weights, report = train_one_step(
            kind, strategy, initial, sync_batch_norm=False
        )
        results["without_sync_batch_norm"] = {
            "loss_difference": abs(unsynchronized_loss - loss),
            "weights_relative_difference": weight_differences(weights, reference, initial)[0],
            "warnings": list(report.warnings),
        }
    if kind in ("simclr", "siamese", *TWO_STEP_KINDS) or kind.startswith("siamese-"):
        # Without the gather each replica contrasts (or mines) its anchors within its share.
        # Both switches: the losses that ask `in_replica_context` and those that gather
        # unconditionally (`distribute.all_gather` is the identity outside replicas).
        saved = distribute.in_replica_context, distribute.all_gather
        distribute.in_replica_context, distribute.all_gather = (lambda: False), (lambda v: v)
        try:
            local_loss, weights, _ = train_one_step(kind, strategy, initial)
        finally:
            distribute.in_replica_context, distribute.all_gather = saved
        relative, _, not_close = weight_differences(weights, reference, initial)
        results["without_all_gather"] = {
            "loss_difference": abs(local_loss - loss),
            "weights_relative_difference": relative,
            "variables_not_close": [names[index] for index, *_ in not_close],
        }
    if kind == "mae":
        results["masks_per_replica"] = masks_per_replica(kind, strategy, initial, loss, reference)
        results["uneven_3_replicas"] = mae_uneven_split(devices[:3], initial)
    print("EQUIVALENCE " + json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1], [int(count) for count in sys.argv[2:]] or [2, 4])
