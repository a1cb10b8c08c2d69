"""Image augmentation for self-supervised learning: keras-cv-protocol layers and method recipes.

Value range, everywhere in keras_siamese: images enter as uint8 or float in [0, 255]; every
recipe ends with `ToUnitRange`, so encoders see float32 in [0, 1].

Operations, one per module, each in keras-cv's vectorised protocol
(`VectorizedBaseImageAugmentationLayer`: one random draw per image per call, from a seed folded
with the replica id), so they mix with keras-cv and Keras core layers in one `Pipeline`. Which
keras-cv layer each default uses, or why not (benchmarks/results/augment.md):
    - `random_resized_crop`: `RandomResizedCrop`, `crop_boxes`, `crop_and_resize`. Not
      keras-cv's `RandomCropAndResize`: it loops over images (6x slower at 32x32, 2x at 224) and
      has no XLA kernel.
    - `random_flip`: `RandomFlip`. Not keras-cv's: full-size masks and both flips computed
      (2.4x slower), draws not saved.
    - `random_color_jitter`: `RandomColorJitter`, `adjust_brightness/contrast/saturation/hue`.
      Not keras-cv's: one fixed order for all images and an additive brightness.
    - `grayscale`: `Grayscale`. keras-cv's `Grayscale(output_channels=3)` gives the same values
      at about the same speed for RGB, but raises for other channel counts.
    - `random_gaussian_blur`: `RandomGaussianBlur`, `gaussian_blur`. Not keras-cv's: it loops
      over images (5x slower at 32x32, as fast at 224); not Keras core's: one sigma per batch.
    - `solarize`: `Solarize`. keras-cv's `Solarization` draws a random threshold per image.
    - `random_apply`: `RandomApply`, the per-image gate. keras-cv's fails in a Keras 3
      `train_step` (a Python `if` on a tensor).
    - `to_unit_range`: `ToUnitRange`, the last step of every recipe.
Composition and recipes:
    - `pipeline`: `Pipeline`, layers in order (ours, keras-cv's, Keras core's).
    - `simclr_augmenter`: `SimCLRAugmenter`, the SimCLR family's pipeline with named arguments.
    - `multi_crop`: `MultiCrop`, global and local views (a list) for SwAV and DINO.
    - `recipes`: `simclr_augmenter`, `simsiam_augmenter`, `byol_augmenters` (a pair),
      `multi_crop_augmenter`; each paper's ImageNet defaults.
    - `view_checks`: `check_views`, what a model checks on its first batch of views.
    - `placement`: `views_in_dataset`, the views made in `tf.data` instead of the train step.

Channels: every operation takes any channel count. Saturation, hue and grayscale need RGB: they
apply to 3-channel images; for any other count (1, 2, 4, 13, ...) the colour jitter is brightness
and contrast only and grayscale leaves the images unchanged (recipes leave it out).
"""

from keras_siamese.augment.base import AugmentationLayer, RandomAugmentationLayer, derive_seed
from keras_siamese.augment.grayscale import Grayscale
from keras_siamese.augment.multi_crop import MultiCrop
from keras_siamese.augment.pipeline import Pipeline
from keras_siamese.augment.placement import views_in_dataset
from keras_siamese.augment.random_apply import RandomApply
from keras_siamese.augment.random_color_jitter import (
    RandomColorJitter,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
)
from keras_siamese.augment.random_flip import RandomFlip
from keras_siamese.augment.random_gaussian_blur import (
    RandomGaussianBlur,
    blur_kernel_size,
    gaussian_blur,
)
from keras_siamese.augment.random_resized_crop import (
    RandomResizedCrop,
    crop_and_resize,
    crop_boxes,
)
from keras_siamese.augment.recipes import (
    byol_augmenters,
    default_blur,
    multi_crop_augmenter,
    simclr_augmenter,
    simsiam_augmenter,
)
from keras_siamese.augment.simclr_augmenter import SimCLRAugmenter
from keras_siamese.augment.solarize import Solarize
from keras_siamese.augment.to_unit_range import ToUnitRange
from keras_siamese.augment.view_checks import check_views

__all__ = [
    "AugmentationLayer",
    "Grayscale",
    "MultiCrop",
    "Pipeline",
    "RandomApply",
    "RandomAugmentationLayer",
    "RandomColorJitter",
    "RandomFlip",
    "RandomGaussianBlur",
    "RandomResizedCrop",
    "SimCLRAugmenter",
    "Solarize",
    "ToUnitRange",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "blur_kernel_size",
    "byol_augmenters",
    "check_views",
    "views_in_dataset",
    "crop_and_resize",
    "crop_boxes",
    "default_blur",
    "derive_seed",
    "gaussian_blur",
    "multi_crop_augmenter",
    "simclr_augmenter",
    "simsiam_augmenter",
]
