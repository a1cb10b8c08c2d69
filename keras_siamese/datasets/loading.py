"""`load` and `num_classes`: one entry point for Fashion-MNIST and TensorFlow Datasets."""

from __future__ import annotations

import tensorflow as tf

from keras_siamese.datasets import arguments, conversion, fashion_mnist, tfds_loader


def load(
    name: str,
    split: str = "train",
    as_supervised: bool = True,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
) -> tf.data.Dataset:
    """Loads an image classification dataset as an unbatched `tf.data.Dataset`.

    `"fashion_mnist"` is parsed from the local IDX files (see
    `keras_siamese.datasets.load_arrays`); any other name is passed to
    `tensorflow_datasets.load(name, split=split, as_supervised=as_supervised, download=False)`,
    with non-`uint8` images converted by `tf.image.convert_image_dtype` and labels cast to
    `int64`.

    Splits are `"train"` (60000 examples) and `"test"` (10000) for Fashion-MNIST,
    with the TFDS slicing forms `"train[:1000]"`, `"train[1000:]"`, `"test[10:20]"`,
    `"test[:10%]"` (percentages round to the closest example, negative bounds count
    from the end) and concatenations such as `"train+test"`.

    Args:
        name: `"fashion_mnist"` or any name from `tfds.list_builders()`.
        split: the split to read, optionally sliced (see above).
        as_supervised: if True the elements are `(image, label)`; otherwise images only.
        image_size: if given, an int (square) or `(height, width)`: images are resized
            with antialiased bilinear interpolation, then rounded and clipped back to
            `uint8`.
        channels: if given, 1 or 3: grayscale images become RGB (1 -> 3) or RGB images
            become grayscale (3 -> 1); the same count as the input leaves them unchanged.

    Returns:
        An unbatched dataset of `(uint8 image [H, W, C], int64 label)` when
        `as_supervised`, else of `uint8` images `[H, W, C]`.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: for an unknown dataset name or split, a non-positive size, an
            unsupported channel conversion, or a corrupt Fashion-MNIST file.
        FileNotFoundError: if the Fashion-MNIST files are in none of the searched
            directories, or a TFDS dataset has not been prepared.

    Example:
        >>> dataset = load("fashion_mnist", split="test[:8]", image_size=16, channels=3)
        >>> images, labels = next(iter(dataset.batch(8)))
        >>> images.shape, images.dtype.name, labels.dtype.name
        (TensorShape([8, 16, 16, 3]), 'uint8', 'int64')
    """
    arguments.check_name(name)
    arguments.check_split(split)
    arguments.check_bool("as_supervised", as_supervised)
    image_size = arguments.normalize_image_size(image_size)
    channels = arguments.check_channels(channels)

    if fashion_mnist.is_fashion_mnist(name):
        images, labels = fashion_mnist.load_arrays(fashion_mnist.FASHION_MNIST, split)
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    else:
        dataset = tfds_loader.load_tfds(name, split, as_supervised)

    image_shape = dataset.element_spec[0].shape
    input_channels = image_shape[-1] if image_shape.rank else None
    convert = conversion.image_converter(input_channels, image_size, channels)
    if as_supervised:
        return dataset.map(
            lambda image, label: (convert(image), label),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return dataset.map(
        lambda image, label: convert(image),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def num_classes(name: str) -> int:
    """Returns the number of classes of a dataset.

    Args:
        name: `"fashion_mnist"` or a TFDS name whose label is a `ClassLabel`.

    Returns:
        10 for Fashion-MNIST; for TFDS, `num_classes` of the label feature (read from the
        builder's metadata, which works offline).

    Raises:
        TypeError: if `name` is not a string.
        ValueError: for an unknown name or a dataset without a class label.

    Example:
        >>> num_classes("fashion_mnist")
        10
    """
    arguments.check_name(name)
    if fashion_mnist.is_fashion_mnist(name):
        return len(fashion_mnist.FASHION_MNIST_CLASSES)
    return tfds_loader.tfds_num_classes(name)
