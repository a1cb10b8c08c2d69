"""Datasets: Fashion-MNIST from local IDX files, TensorFlow Datasets, and your own files.

Every reader yields images as `uint8` in `[0, 255]` with shape `(height, width, channels)`
and labels as `int64` scalars. Nothing here rescales pixels: the models divide by 255
themselves, so the same pipeline feeds training, evaluation and export. Nothing is ever
downloaded.

- `load(name, split)`: Fashion-MNIST (parsed from the IDX files of the original release, see
  `load_arrays`) or any prepared TFDS dataset, unbatched; `load_arrays` gives Fashion-MNIST as
  numpy arrays, `num_classes` the class count.
- `from_directory(path, image_size)`: a folder of PNG, JPEG, BMP or GIF files, labelled by
  sub-folder or not, streamed with `tf.data`; `list_image_files` lists what it reads.
- `from_numpy_files(path, image_size)`: a folder of `.npy` arrays with any channel count
  (multispectral stacks).
- `from_tfrecords(file_pattern, image_size)`: sharded TFRecord files of encoded images or
  serialized tensors, read interleaved.
- `shuffled_batches(arrays, batch_size, seed)`: arrays already in memory as endless shuffled
  batches (an index shuffle and a gather, so the step never waits).

The file readers check every file (or every shard's first record) before yielding anything and
name the file at fault; `on_error="skip"` leaves bad files out with one warning.
"""

# The converter `load` applies, kept importable under its name from before the split
# (tests of the serving graph compare their pixels with it).
from keras_siamese.datasets.conversion import image_converter as _image_converter  # noqa: F401
from keras_siamese.datasets.directory import from_directory
from keras_siamese.datasets.fashion_mnist import (
    DATA_DIR_VARIABLE,
    FASHION_MNIST,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIRS,
    load_arrays,
)
from keras_siamese.datasets.image_files import ImageFiles, list_image_files
from keras_siamese.datasets.in_memory import shuffled_batches
from keras_siamese.datasets.loading import load, num_classes
from keras_siamese.datasets.numpy_files import from_numpy_files
from keras_siamese.datasets.tfrecords import from_tfrecords

__all__ = [
    "DATA_DIR_VARIABLE",
    "FASHION_MNIST",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIRS",
    "ImageFiles",
    "from_directory",
    "from_numpy_files",
    "from_tfrecords",
    "list_image_files",
    "load",
    "load_arrays",
    "num_classes",
    "shuffled_batches",
]
