"""Learned class proxies: the `ClassProxies` layer and the checks of the proxy losses.

A proxy loss (ArcFace, sub-center ArcFace, CosFace, ProxyAnchor, ProxyNCA; see
`keras_siamese.losses`) scores each embedding against one learned vector per class (or
`proxies_per_class` of them, the sub-centres of sub-center ArcFace). Every one of them starts
from the same matrix, the cosine similarities of the L2-normalised embeddings with the
L2-normalised proxies, so a plain Keras classifier trains them:

    model = keras.Sequential([encoder, ClassProxies(10)])
    model.compile(optimizer="adam", loss=ArcFaceLoss(10))
    model.fit(images, labels)

`ClassProxies` owns the proxies and returns those cosines; the loss takes them as `y_pred`,
like logits for a sparse categorical cross-entropy. The helpers below check what the losses
share: the shapes of embeddings against proxies and labels inside `[0, num_classes)`.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.validation import static_shape as _static_shape


def default_initializer() -> keras.initializers.Initializer:
    """The proxies' default initializer: a standard normal, `N(0, 1)` in every entry.

    It is `torch.nn.init.normal_`, what pytorch-metric-learning gives the class weights of
    ArcFace, sub-center ArcFace, CosFace and ProxyNCA. ProxyAnchor there uses
    `kaiming_normal_(mode="fan_out")` instead; on a `(num_classes, dims)` weight that is
    `keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal")` here. Both
    draw isotropic Gaussian rows, so the initial cosines have the same distribution; only the
    rows' norms differ (which changes the size of the gradient steps on the directions).

    Example:
        >>> default_initializer().get_config()["stddev"]
        1.0
    """
    return keras.initializers.RandomNormal(mean=0.0, stddev=1.0)


def proxy_cosines(embeddings, proxies) -> tf.Tensor:
    """The cosine similarities of every embedding with every proxy, in float32.

    Both are L2-normalised as `torch.nn.functional.normalize` does, `x / max(|x|, 1e-12)`
    (a division by the square root, which leaves unit vectors exact: ArcFace's
    `arccos` magnifies an error of 1e-7 in a cosine near 1 into 4.5e-4 radians), then
    multiplied: pytorch-metric-learning's `CosineSimilarity()` distance.

    Args:
        embeddings: `(batch, dims)` embeddings.
        proxies: `(num_proxies, dims)` proxies (class weights).

    Returns:
        float32 `(batch, num_proxies)` cosines in [-1, 1].

    Example:
        >>> proxy_cosines(np.eye(2, 3), np.eye(3)).numpy().tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    return tf.matmul(_unit_rows(embeddings), _unit_rows(proxies), transpose_b=True)


def _unit_rows(x) -> tf.Tensor:
    """float32 `x / max(|x|, 1e-12)` per row, with a zero (not NaN) gradient at 0."""
    x = tf.cast(x, tf.float32)
    squared_norm = tf.reduce_sum(tf.square(x), axis=-1, keepdims=True)
    return x / tf.sqrt(tf.maximum(squared_norm, 1e-24))


def check_proxies(embeddings, proxies, argument: str = "proxies", rows_divisor: int = 1):
    """Rank-2 embeddings and proxies of the same dims (static shapes only).

    Args:
        embeddings: `(batch, dims)` embeddings.
        proxies: `(num_proxies, dims)` proxies.
        argument: the proxies' argument name in the caller (`"class_weights"`, `"proxies"`).
        rows_divisor: the number of proxies must be a multiple of it (the sub-centres).

    Raises:
        ValueError: naming the argument, for a rank other than 2, dims that differ, or a
            number of rows that `rows_divisor` does not divide.
    """
    shape_e = validation.check_rank_2("embeddings", embeddings, "(batch_size, dims)")
    shape_p = validation.check_rank_2(
        argument, proxies, "(num_proxies, dims): one row per class (times its sub-centres)"
    )
    if shape_e is None or shape_p is None:
        return
    if None not in (shape_e[1], shape_p[1]) and shape_e[1] != shape_p[1]:
        raise ValueError(
            f"Arguments `embeddings` and `{argument}` must have the same number of dims (last "
            f"axis). Received: embeddings.shape={shape_e}, {argument}.shape={shape_p}"
        )
    if shape_p[0] is not None and shape_p[0] % rows_divisor:
        raise ValueError(
            f"Argument `{argument}` must have num_classes * sub_centers rows (a multiple of "
            f"sub_centers={rows_divisor}). Received: {argument}.shape={shape_p}"
        )


def check_proxy_rows(proxies, rows: int, argument: str, meaning: str) -> None:
    """A static number of proxies equal to `rows` (what a loss class was built for).

    Raises:
        ValueError: naming the argument and `meaning` (e.g. "num_classes=10").
    """
    shape = _static_shape(proxies)
    if shape is not None and len(shape) >= 1 and shape[0] is not None and shape[0] != rows:
        raise ValueError(
            f"Argument `{argument}` must have {rows} rows ({meaning}). "
            f"Received: {argument}.shape={shape}"
        )


def check_cosine_columns(cosines, columns: int, meaning: str) -> None:
    """A static number of cosine columns equal to `columns` (what a loss class was built for).

    Raises:
        ValueError: naming `y_pred` and `meaning` (e.g. "num_classes=10").
    """
    shape = _static_shape(cosines)
    if shape is not None and len(shape) == 2 and shape[1] is not None and shape[1] != columns:
        raise ValueError(
            f"Argument `y_pred` must hold the cosine similarities to the {columns} class "
            f"proxies ({meaning}; the output of `ClassProxies`). Received: y_pred.shape={shape}"
        )


def check_cosines(cosines, labels, columns_divisor: int = 1) -> None:
    """Rank-2 cosines and integer labels `(batch,)` of the same batch size (static shapes).

    Raises:
        ValueError: for a wrong rank, batch sizes that differ, or a number of columns that
            `columns_divisor` (the sub-centres) does not divide.
        TypeError: for float labels.
    """
    validation.check_labels_per_row(
        cosines,
        labels,
        "cosines",
        "(batch_size, num_proxies): the cosine similarities of the embeddings to the proxies",
    )
    shape_c = _static_shape(cosines)
    if shape_c is not None and shape_c[1] is not None and shape_c[1] % columns_divisor:
        raise ValueError(
            "Argument `cosines` must have num_classes * sub_centers columns (a multiple of "
            f"sub_centers={columns_divisor}). Received: cosines.shape={shape_c}"
        )
    dtype = getattr(labels, "dtype", None)
    if dtype is not None and not tf.as_dtype(dtype).is_integer:
        raise TypeError(
            "Argument `labels` must hold integer class ids. "
            f"Received: labels.dtype={tf.as_dtype(dtype).name}"
        )


def class_labels(labels, num_classes) -> tuple[tf.Tensor, tf.Tensor]:
    """int32 labels checked to lie in `[0, num_classes)`, and a NaN guard for the loss.

    Where the values are known (numpy arrays, eager tensors) a label out of range raises a
    `ValueError` at once. Inside a graph a `tf.debugging` assertion names `num_classes`; XLA
    compiles assertions to nothing, so the guard (0, or NaN when a label is out of range) is
    added to the loss: the loss shows NaN instead of silently training on wrong classes.

    Args:
        labels: `(batch,)` integer labels.
        num_classes: an int, or a scalar int32 tensor (from a dynamic shape).

    Returns:
        `(labels, guard)`: int32 labels and a float32 scalar, 0 or NaN.

    Raises:
        ValueError: for a label out of range, when the values are known.
    """
    known = isinstance(labels, np.ndarray) or (
        tf.executing_eagerly() and isinstance(labels, tf.Tensor)
    )
    known_classes = isinstance(num_classes, int) or (
        tf.executing_eagerly() and isinstance(num_classes, tf.Tensor)
    )
    labels = tf.cast(labels, tf.int32)
    if known and known_classes:
        values, classes = np.asarray(labels), int(num_classes)
        outside = values[(values < 0) | (values >= classes)]
        if outside.size:
            raise ValueError(
                f"Argument `labels` must hold class ids in [0, num_classes) with "
                f"num_classes={classes}. Received: labels with values "
                f"{sorted(set(outside.tolist()))}"
            )
        return labels, tf.constant(0.0)
    num_classes = tf.cast(num_classes, tf.int32)
    in_range = (labels >= 0) & (labels < num_classes)
    check = tf.debugging.Assert(
        tf.reduce_all(in_range),
        [
            "Argument `labels` must hold class ids in [0, num_classes) with num_classes =",
            num_classes,
            "Received: labels =",
            labels,
        ],
        summarize=16,
    )
    with tf.control_dependencies([check]):
        labels = tf.identity(labels)
    guard = tf.where(tf.reduce_all(in_range), 0.0, math.nan)
    return labels, guard


def as_labels(labels):
    """Python sequences of labels as numpy arrays (so their values are checked at once)."""
    if isinstance(labels, (list, tuple)):
        return np.asarray(labels)
    return labels


def num_columns(cosines: tf.Tensor) -> int | tf.Tensor:
    """The static number of columns of `cosines`, else its dynamic one."""
    columns = cosines.shape[-1]
    return int(columns) if columns is not None else tf.shape(cosines)[-1]


def target_cosines(cosines: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`(is_target, target)`: the bool one-hot of the labels and each row's label column.

    A label out of range has no True column and a target of 0 (`class_labels` guards it).
    """
    is_target = tf.one_hot(labels, tf.shape(cosines)[1], on_value=True, off_value=False)
    return is_target, tf.reduce_sum(tf.where(is_target, cosines, 0.0), axis=1)


def labels_from_y_true(y_true) -> tf.Tensor:
    """The int32 labels `(batch,)` of a Keras `y_true` (Keras converts it to floats).

    `(batch, 1)` is squeezed like sparse categorical labels; other shapes are left for the
    shape checks to refuse.
    """
    y_true = tf.convert_to_tensor(y_true)
    shape = _static_shape(y_true)
    if shape is not None and len(shape) == 2 and shape[1] == 1:
        y_true = tf.squeeze(y_true, axis=1)
    return tf.cast(y_true, tf.int32)


def check_loss_arguments(loss, proxies, memory, argument: str) -> None:
    """The arguments of a proxy loss's `compute`: proxies given, no memory, rows that fit.

    Raises:
        ValueError: naming the argument.
    """
    name = type(loss).__name__
    if proxies is None:
        raise ValueError(
            f"{name}.compute needs the class proxies: pass `proxies` of shape "
            f"(num_classes * proxies_per_class, dims). Received: proxies=None"
        )
    if memory is not None:
        raise ValueError(
            f"{name} scores embeddings against class proxies; it takes no cross-batch "
            f"memory. Received: memory={type(memory).__name__}"
        )
    check_proxy_rows(proxies, loss.num_classes * loss.proxies_per_class, argument, _meaning(loss))


def _meaning(loss) -> str:
    meaning = f"num_classes={loss.num_classes}"
    if loss.proxies_per_class != 1:
        meaning += f" times sub_centers={loss.proxies_per_class}"
    return meaning


def check_loss_inputs(loss, y_true, y_pred) -> tf.Tensor:
    """Checks the `y_pred` columns of a proxy loss's `call`; returns the int32 labels.

    Raises:
        ValueError: for `y_pred` without `num_classes * proxies_per_class` columns.
    """
    check_cosine_columns(y_pred, loss.num_classes * loss.proxies_per_class, _meaning(loss))
    return labels_from_y_true(y_true)


@keras.saving.register_keras_serializable(package="keras_siamese")
class ClassProxies(keras.layers.Layer):
    """Learned class proxies; returns the cosine similarities of the embeddings to them.

    Holds `proxies`, a `(num_classes * proxies_per_class, dims)` weight built from the input's
    last axis (row `c * proxies_per_class + k` is proxy `k` of class `c`), and maps
    embeddings `(batch, dims)` to `(batch, num_classes * proxies_per_class)` float32 cosines
    (`proxy_cosines`), the `y_pred` of the proxy losses (`ArcFaceLoss`, `CosFaceLoss`,
    `SubCenterArcFaceLoss` with `proxies_per_class=sub_centers`, `ProxyAnchorLoss`,
    `ProxyNCALoss`). The layer computes in float32 under mixed precision (the losses scale the
    cosines by up to 64 before a softmax). Saved with the model; drop it to export the
    encoder alone.

    Args:
        num_classes: the number of classes (>= 1).
        proxies_per_class: proxies of each class (>= 1): the sub-centres of sub-center ArcFace.
        initializer: the proxies' initializer (a Keras initializer or its name); None gives
            `default_initializer()`, the standard normal of pytorch-metric-learning.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ValueError: for `num_classes` or `proxies_per_class` < 1, or (when built) an input
            that is not of rank 2 or has no static last axis.
        TypeError: for non-integer `num_classes` or `proxies_per_class`.

    Example:
        >>> layer = ClassProxies(10)
        >>> layer(np.ones((4, 8), "float32")).shape
        TensorShape([4, 10])
    """

    def __init__(self, num_classes: int, proxies_per_class: int = 1, initializer=None, **kwargs):
        num_classes = validation.check_integer("num_classes", num_classes)
        proxies_per_class = validation.check_integer("proxies_per_class", proxies_per_class)
        initializer = default_initializer() if initializer is None else initializer
        initializer = keras.initializers.get(initializer)
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.proxies_per_class = proxies_per_class
        self.initializer = initializer

    @property
    def num_proxies(self) -> int:
        """`num_classes * proxies_per_class`, the rows of `proxies`."""
        return self.num_classes * self.proxies_per_class

    def build(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != 2 or shape[-1] is None:
            raise ValueError(
                "ClassProxies takes embeddings of shape (batch_size, dims) with a known dims. "
                f"Received: input_shape={shape}"
            )
        self.proxies = self.add_weight(
            shape=(self.num_proxies, int(shape[-1])),
            initializer=self.initializer,
            name="proxies",
            dtype="float32",
            autocast=False,
        )

    def call(self, embeddings):
        return proxy_cosines(embeddings, self.proxies)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_proxies)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "proxies_per_class": self.proxies_per_class,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config
