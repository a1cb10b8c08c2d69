"""TensorFlow Datasets, read offline only (`download=False`): names, loading, class counts."""

from __future__ import annotations

import difflib
import functools

import tensorflow as tf

from keras_siamese.datasets.fashion_mnist import FASHION_MNIST


@functools.lru_cache(maxsize=1)
def _builder_names() -> tuple[str, ...]:
    import tensorflow_datasets as tfds

    return tuple(tfds.list_builders(with_community_datasets=False))


def check_tfds_name(name: str) -> None:
    """Raises ValueError unless `name` (possibly "name/config:version") is a TFDS builder."""
    base = name.split(":")[0].split("/")[0]
    builders = _builder_names()
    if base in builders:
        return
    candidates = sorted(set(builders) | {FASHION_MNIST})
    close = difflib.get_close_matches(base, candidates, n=5)
    hint = f" Close matches: {', '.join(repr(match) for match in close)}." if close else ""
    raise ValueError(
        f"Unknown dataset. Expected {FASHION_MNIST!r} (read from local IDX files) or any name "
        f"from `tfds.list_builders()`.{hint} Received: name={name!r}"
    )


def load_tfds(name: str, split: str, as_supervised: bool) -> tf.data.Dataset:
    """Returns `(uint8 image, int64 label)` pairs (label 0 when not supervised)."""
    check_tfds_name(name)
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load(name, split=split, as_supervised=as_supervised, download=False)
    except AssertionError as error:  # tfds' "could not find data" when not prepared.
        data_dir = tfds.core.constants.get_default_data_dir()
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared in data_dir={data_dir!r} and keras_siamese "
            f"never downloads at run time. Prepare it with `tfds build {name}` (or "
            f"`tfds.builder({name!r}).download_and_prepare()`) on a machine with internet "
            "access, then copy it to data_dir or point TFDS_DATA_DIR at it."
        ) from error
    if not as_supervised:
        keys = list(dataset.element_spec)
        if "image" not in keys:
            raise ValueError(
                f"Dataset {name!r} has no 'image' feature (features: {keys}). "
                f"Received: name={name!r}"
            )
        dataset = dataset.map(lambda example: (example["image"], tf.constant(0, tf.int64)))

    def to_uint8(image, label):
        if image.dtype != tf.uint8:
            image = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
        return image, tf.cast(label, tf.int64)

    return dataset.map(to_uint8, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def tfds_num_classes(name: str) -> int:
    """`num_classes` of a TFDS dataset's `ClassLabel`, from the builder's offline metadata."""
    check_tfds_name(name)
    import tensorflow_datasets as tfds

    info = tfds.builder(name).info
    label_key = info.supervised_keys[1] if info.supervised_keys else "label"
    features = info.features
    label = features[label_key] if label_key in features.keys() else None
    if not isinstance(label, tfds.features.ClassLabel):
        raise ValueError(
            f"Dataset {name!r} has no class label feature {label_key!r}. "
            f"Received: name={name!r}"
        )
    return label.num_classes
