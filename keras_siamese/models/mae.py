"""MAE (He et al. 2022): mask most patches, encode the rest, reconstruct the masked pixels."""

from __future__ import annotations

import random

import keras
import tensorflow as tf

from keras_siamese import augment, validation
from keras_siamese.encoders.patches import patchify, unpatchify
from keras_siamese.encoders.vit import vision_transformer_of
from keras_siamese.losses.pair_batch import global_mean
from keras_siamese.models import patch_masking
from keras_siamese.models import two_view_inputs as inputs
from keras_siamese.models.mae_decoder import MAEDecoder
from keras_siamese.models.representation_model import RepresentationModel
from keras_siamese.models.two_view_model import _augment

# "the normalized pixel values of each patch" (section 3): (x - mean) / sqrt(var + 1e-6),
# with the unbiased variance of the reference code's `Tensor.var`.
TARGET_EPSILON = 1e-6
MAX_SEED = 2**31 - 1
RECONSTRUCTION_STATISTICS = ("visible", "original")
MASK_STREAM = 0x4D4145  # "MAE": the masks' stream, folded into (seed, step)


def patch_statistics(patches) -> tuple[tf.Tensor, tf.Tensor]:
    """`(mean, scale)` of each patch `(batch, patches, 1)`: its pixels' mean and
    `sqrt(unbiased variance + 1e-6)`, MAE's normalised-pixel target statistics."""
    patches = tf.cast(patches, tf.float32)
    mean = tf.reduce_mean(patches, axis=-1, keepdims=True)
    values = max(int(patches.shape[-1]) - 1, 1)
    variance = tf.reduce_sum(tf.square(patches - mean), axis=-1, keepdims=True) / values
    return mean, tf.sqrt(variance + TARGET_EPSILON)


def _visible_statistics(mean, scale, mask) -> tuple[tf.Tensor, tf.Tensor]:
    """Each patch's `(mean, scale)` `(batch, patches, 1)`: a visible patch's own, a masked
    patch's the average over the image's visible patches (`mask` 1 where masked)."""
    visible = 1.0 - mask
    count = tf.reduce_sum(visible, axis=1, keepdims=True)
    average_mean = tf.reduce_sum(mean * visible, axis=1, keepdims=True) / count
    average_scale = tf.reduce_sum(scale * visible, axis=1, keepdims=True) / count
    return (
        visible * mean + mask * average_mean,
        visible * scale + mask * average_scale,
    )


def _check_arguments(mask_ratio, decoder_dim, decoder_heads, normalize_targets) -> float:
    """Checks MAE's own arguments (the decoder checks its sizes again); returns the ratio."""
    mask_ratio = validation.check_number(
        "mask_ratio", mask_ratio, 0.0, 1.0, include_minimum=False, include_maximum=False
    )
    decoder_dim = validation.check_integer("decoder_dim", decoder_dim)
    decoder_heads = validation.check_integer("decoder_heads", decoder_heads)
    if decoder_dim % decoder_heads:
        raise ValueError(
            "Argument `decoder_dim` must be a multiple of `decoder_heads` (each head sees "
            f"decoder_dim / decoder_heads features). Received: decoder_dim={decoder_dim}, "
            f"decoder_heads={decoder_heads}"
        )
    if not isinstance(normalize_targets, bool):
        raise TypeError(
            "Argument `normalize_targets` must be a bool. "
            f"Received: normalize_targets={normalize_targets!r}"
        )
    return mask_ratio


def mae_augmenter(image_size, crop_area=(0.2, 1.0), seed: int | None = None) -> augment.Pipeline:
    """MAE's augmentation: "random resized cropping (0.2-1) and horizontal flipping" only
    (section 4 / appendix A.1), uint8/float [0, 255] in, float32 [0, 1] out at `image_size`.

    Example:
        >>> mae_augmenter(28, seed=0)(np.zeros((2, 28, 28, 1), "uint8")).shape
        TensorShape([2, 28, 28, 1])
    """
    return augment.Pipeline(
        [
            augment.RandomResizedCrop(image_size, crop_area, seed=augment.derive_seed(seed, 0)),
            augment.RandomFlip(seed=augment.derive_seed(seed, 1)),
            augment.ToUnitRange(),
        ],
        dtype="float32",
        name="mae_augmenter",
    )


@keras.saving.register_keras_serializable(package="keras_siamese")
class MAE(RepresentationModel):
    """Masked autoencoder: a ViT encodes the visible 25% of the patches, a decoder paints the rest.

    He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners"
    (https://arxiv.org/abs/2111.06377): "we mask random patches of the input image and
    reconstruct the missing pixels ... an asymmetric encoder-decoder architecture, with an
    encoder that operates only on the visible subset of patches (without mask tokens)".
    Each step: the images are augmented (crop 0.2-1 and flip) to float [0, 1] views; each
    view keeps `round((1 - mask_ratio) * patches)` random patches (the lowest of uniform
    noise, `patch_masking`); the encoder's Transformer blocks run on the class token and
    the visible tokens only, which is what makes MAE cheap; `MAEDecoder` predicts every
    patch's pixels; the loss is the mean squared error per patch, averaged over the masked
    patches only ("computing the loss only on masked patches"), against each patch's
    normalised pixels when `normalize_targets`.

    Under `tf.distribute` the masks are drawn for the global batch from the seed and the
    optimizer step, and each replica takes its images' rows, so N replicas mask every image
    as one device does, and a resumed run continues with the masks of an uninterrupted one;
    the loss is the mean over the masked patches of the global batch (right for uneven
    splits too). `call`, `predict`, `embedding_model` and the export run the encoder on
    whole, unmasked images: the representation is the ViT's pooled output (mean of the
    patch tokens for MAE's fine-tuning, `vit(pooling="mean")`).

    Metric: `loss`. No collapse metric: a reconstruction loss cannot collapse to a constant.

    Args:
        encoder: a ViT of `keras_siamese.encoders.vit` (images -> `VisionTransformer`).
        augmenter: a layer from uint8/float [0, 255] images to float32 [0, 1] views (views of
            another size are resized to the model's); None: `mae_augmenter` (the paper's
            crop 0.2-1 and flip). `augment.ToUnitRange()` trains on the images as they are.
        mask_ratio: the fraction of patches masked, in (0, 1) (paper: 0.75).
        decoder_dim: the decoder's token features (paper: 512).
        decoder_depth: the decoder's Transformer blocks (paper: 8).
        decoder_heads: the decoder's attention heads (paper: 16).
        normalize_targets: reconstruct each patch's normalised pixels (paper's default,
            "improves representation quality"); False: the pixels in [0, 1].
        image_size: `(height, width)` of the images, for an encoder of any size
            (`vit(any_size=True)`); sides multiples of the patch size.
        seed: integer seed of the masks (and of the default augmenter); None draws one
            (from Python's `random`, which `keras.utils.set_random_seed` seeds) and keeps it
            in the config.
        **kwargs: `keras.Model` arguments.

    Raises:
        TypeError: for an encoder that is not the package's ViT, a non-bool
            `normalize_targets`, or an augmenter that is not a layer.
        ValueError: for a `mask_ratio` outside (0, 1) or one that keeps no patch or all,
            image sides that are not multiples of the patch size, or bad decoder sizes.

    Example:
        >>> encoder = keras_siamese.encoders.vit(28, 4, dim=64, depth=4, heads=4,
        ...     position_embedding="sincos", pooling="mean")
        >>> model = MAE(encoder, decoder_dim=64, decoder_depth=2, decoder_heads=4)
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_2=0.95))
        >>> model.fit(images, batch_size=256, epochs=1)
        >>> mask, reconstruction = model.reconstruct(images[:8])
    """

    metric_names: tuple[str, ...] = ()
    collapse_metric = None
    cross_replica_loss = (
        "masks drawn for the global batch (seed, step); loss the mean over the masked "
        "patches of the global batch"
    )

    def __init__(
        self,
        encoder: keras.Model,
        augmenter: keras.layers.Layer | None = None,
        mask_ratio: float = 0.75,
        decoder_dim: int = 512,
        decoder_depth: int = 8,
        decoder_heads: int = 16,
        normalize_targets: bool = True,
        image_size: tuple[int, int] | None = None,
        seed: int | None = None,
        **kwargs,
    ):
        transformer = vision_transformer_of(encoder)
        mask_ratio = _check_arguments(mask_ratio, decoder_dim, decoder_heads, normalize_targets)
        if seed is None:
            seed = random.randrange(MAX_SEED)
        self.seed = validation.check_integer("seed", seed, minimum=0)
        super().__init__(encoder, augmenter, image_size=image_size, **kwargs)
        self.patch_size = transformer.patch_size
        self.grid_size = self._grid(self.image_shape)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.visible_patches = patch_masking.visible_count(self.num_patches, mask_ratio)
        self.mask_ratio = mask_ratio
        self.normalize_targets = normalize_targets
        self.decoder = MAEDecoder(
            self.patch_size,
            self.image_shape[-1],
            self.grid_size,
            decoder_dim=decoder_dim,
            depth=decoder_depth,
            heads=decoder_heads,
            name="decoder",
        )
        self.decoder_dim, self.decoder_depth = self.decoder.decoder_dim, self.decoder.depth
        self.decoder_heads = self.decoder.heads
        self.build((None, *self.image_shape))

    def _grid(self, image_shape) -> tuple[int, int]:
        height, width = image_shape[:2]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                "The images' height and width must be multiples of the encoder's "
                f"patch_size={self.patch_size}: MAE reconstructs whole patches. "
                f"Received: image_size={(height, width)}"
            )
        return height // self.patch_size, width // self.patch_size

    def _check_augmenter(self, augmenter, image_shape):
        if augmenter is None:
            return mae_augmenter(image_shape[:2], seed=self.seed)
        return super()._check_augmenter(augmenter, image_shape)

    @property
    def transformer(self):
        """The encoder's `VisionTransformer` layer (its steps run apart in training)."""
        return vision_transformer_of(self.encoder)

    def build(self, input_shape=None):
        if not self.decoder.built:
            self.decoder.build((None, None, self.transformer.dim))
        self.built = True

    # ----------------------------------------------------------------- the step's parts

    def make_views(self, images) -> tf.Tensor:
        """Augmented float [0, 1] views of `images` at the model's image size."""
        views = _augment(self.augmenter, images)
        if tuple(views.shape[1:3]) != tuple(self.image_shape[:2]):
            views = tf.image.resize(views, self.image_shape[:2], antialias=True)
        return views

    def mask_seed(self, step, seed: int | None = None) -> tf.Tensor:
        """The stateless seed of the masks of optimizer step `step`: `(seed, step)` (the
        model's seed by default) folded with a constant of its own, so the masks never
        share a random stream with the augmenter's layers seeded from the same number."""
        seed = self.seed if seed is None else seed
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])
        return tf.random.experimental.stateless_fold_in(
            key, MASK_STREAM, alg=patch_masking.RANDOM_ALGORITHM
        )

    def masks(self, seed, views) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """`(keep_ids, restore_ids, mask)` of this replica's `views` (`patch_masking`)."""
        batch_size = views.shape[0] if views.shape[0] is not None else tf.shape(views)[0]
        noise = patch_masking.mask_noise(seed, batch_size, self.num_patches)
        return patch_masking.random_masking(noise, self.visible_patches)

    def predict_patches(self, views, keep_ids, restore_ids, training: bool = False):
        """The decoder's pixels `(batch, patches, patch_size**2 * C)` for every patch, the
        encoder's blocks seeing the class token and the `keep_ids` patches only."""
        transformer = self.transformer
        tokens = transformer.patch_tokens(views)
        visible = tf.gather(tokens, keep_ids, batch_dims=1)
        encoded = transformer.encode_tokens(visible, training=training)
        return self.decoder(encoded, restore_ids, training=training)

    def patch_targets(self, views) -> tf.Tensor:
        """The reconstruction targets: `patchify(views)`, normalised per patch if asked."""
        patches = tf.cast(patchify(views, self.patch_size), tf.float32)
        if not self.normalize_targets:
            return patches
        mean, scale = patch_statistics(patches)
        return (patches - mean) / scale

    def prepare_batch(self, data, training: bool):
        images = inputs.images_from(data)
        validation.check_image_batch(images, self.image_shape, "images")
        images = tf.convert_to_tensor(images)
        views = self.make_views(images) if training else self.preprocess(images)
        seed = self.mask_seed(self.optimizer.iterations)
        keep_ids, restore_ids, mask = self.masks(seed, views)
        return {"views": views, "keep_ids": keep_ids, "restore_ids": restore_ids, "mask": mask}

    def loss_on_batch(self, batch, training: bool):
        views, mask = batch["views"], batch["mask"]
        predictions = self.predict_patches(
            views, batch["keep_ids"], batch["restore_ids"], training=training
        )
        errors = tf.square(tf.cast(predictions, tf.float32) - self.patch_targets(views))
        per_patch = tf.reduce_mean(errors, axis=-1)
        return global_mean(tf.reduce_sum(per_patch * mask), tf.reduce_sum(mask)), {}

    # ----------------------------------------------------------------- reconstructions

    def reconstruct(
        self, images, seed: int = 0, statistics: str = "visible"
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Masks `images` at random and returns the model's reconstruction of every patch.

        With `normalize_targets` the model predicts each patch's normalised pixels, without
        its brightness and contrast. `statistics` says what maps them back: `"visible"`
        (default) uses only what the model sees: a visible patch its own mean and spread, a
        masked patch the average of those of the image's visible patches. `"original"`
        gives every patch the mean and spread of the original patch, as many MAE
        visualisations do: sharper pictures, but a masked patch's brightness and contrast
        then come from the hidden image, not from the model. (MAE's own figures use a model
        trained on plain pixels, `normalize_targets=False`, whose output needs neither.)

        Args:
            images: `(batch, H, W, C)` uint8/float images in [0, 255] (resized to the
                model's image size).
            seed: integer seed of the masks (each seed, the same masks on every call).
            statistics: `"visible"` or `"original"` (see above; unused for a model trained
                on plain pixels).

        Returns:
            `(mask, reconstruction)`: float32 `(batch, H, W, 1)`, 1 on the masked pixels;
            float32 `(batch, H, W, C)` in [0, 255], the decoder's output on every patch
            (visible ones included, which the loss never trains).

        Raises:
            ValueError: for images of another rank or channel count, a negative seed or
                unknown `statistics`.

        Example:
            >>> mask, reconstruction = model.reconstruct(images[:8], seed=0)
            >>> pasted = mask * reconstruction + (1 - mask) * images[:8]
        """
        images = tf.convert_to_tensor(images)
        validation.check_image_batch(images, self.image_shape, "images")
        seed = validation.check_integer("seed", seed, minimum=0)
        if statistics not in RECONSTRUCTION_STATISTICS:
            raise ValueError(
                f"Argument `statistics` must be one of {RECONSTRUCTION_STATISTICS}. "
                f"Received: statistics={statistics!r}"
            )
        views = self.preprocess(images)
        keep_ids, restore_ids, mask = self.masks(self.mask_seed(0, seed), views)
        pixels = tf.cast(self.predict_patches(views, keep_ids, restore_ids), tf.float32)
        if self.normalize_targets:
            mean, scale = patch_statistics(patchify(views, self.patch_size))
            if statistics == "visible":
                mean, scale = _visible_statistics(mean, scale, mask[:, :, None])
            pixels = pixels * scale + mean
        channels = self.image_shape[-1]
        pixels = unpatchify(pixels, self.patch_size, self.grid_size, channels)
        mask = tf.tile(mask[:, :, None], (1, 1, self.patch_size**2))
        mask = unpatchify(mask, self.patch_size, self.grid_size, 1)
        return mask, tf.clip_by_value(pixels * 255.0, 0.0, 255.0)

    # ----------------------------------------------------------------- inputs and config

    def _check_inputs(self, x, y, batch_size, validation_data=None):
        inputs.check_data(self, x, batch_size)
        if validation_data is not None and not isinstance(validation_data, tuple):
            inputs.check_data(self, validation_data, batch_size, "validation_data")
        images = inputs.first_images(x)
        if images is not None and images.shape[0]:
            views = self.make_views(tf.convert_to_tensor(images))
            augment.check_views(views, self.augmenter, (None, None, self.image_shape[-1]))

    def predict(self, x, batch_size=None, **kwargs):
        """The representations of `x` (images in [0, 255]), after `fit`'s input checks."""
        inputs.check_data(self, x, batch_size, for_predict=True)
        return super().predict(x, batch_size=batch_size, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("sync_batch_norm")  # a ViT has no BatchNorm
        config.update(
            {
                "mask_ratio": self.mask_ratio,
                "decoder_dim": self.decoder_dim,
                "decoder_depth": self.decoder_depth,
                "decoder_heads": self.decoder_heads,
                "normalize_targets": self.normalize_targets,
                "seed": self.seed,
            }
        )
        return config
