"""The gallery of the `search` signature: validated and normalised at export, searched in-graph.

The gallery embeddings are stored in the SavedModel as one non-trainable variable, already
L2-normalised, so the search is a matrix product with the (L2-normalised) query embeddings
followed by `tf.math.top_k`: the scores are cosine similarities. To bound memory for large
galleries (1M x 128 float32 is 512 MB; its full score matrix for 64 queries another 256 MB)
the gallery is searched in chunks of at most `CHUNK_ROWS` rows: each chunk keeps its own top k,
and a last `top_k` picks the best of those candidates, which is exactly the global top k.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import tensorflow as tf

CHUNK_ROWS = 32768
L2_EPSILON = 1e-12  # as tf.math.l2_normalize, on the squared norm


class Gallery:
    """Gallery embeddings and ids, checked, L2-normalised and laid out in search chunks.

    Args:
        embeddings: `(N, D)` float array: the model's raw `predict` output for the gallery.
        ids: `(N,)` integer or string ids, or None for `0 .. N-1`.
        top_k: how many neighbours the search returns, at most `N`.
        embedding_dims: `D` of the exported model.

    Raises:
        TypeError: for non-numeric embeddings, ids that are neither integers nor strings, or a
            non-integer `top_k`.
        ValueError: for a wrong shape, non-finite values, ids and embeddings of different
            lengths, or `top_k` outside `[1, N]`.

    Example:
        >>> gallery = Gallery(np.eye(3, 4), ids=["a", "b", "c"], top_k=2, embedding_dims=4)
        >>> gallery.size, gallery.id_dtype
        (3, tf.string)
    """

    def __init__(self, embeddings, ids, top_k: int, embedding_dims: int):
        embeddings = np.asarray(embeddings)
        if embeddings.dtype.kind not in "fiu":
            raise TypeError(
                "`gallery` must be a float array of embeddings (the model's `predict` output). "
                f"Received: gallery.dtype={embeddings.dtype}"
            )
        if embeddings.ndim != 2 or embeddings.shape[1] != embedding_dims or not len(embeddings):
            raise ValueError(
                f"`gallery` must have shape (N, {embedding_dims}) with N >= 1: one embedding of "
                "the model per gallery item. "
                f"Received: gallery.shape={embeddings.shape}"
            )
        embeddings = embeddings.astype(np.float32)
        if not np.all(np.isfinite(embeddings)):
            raise ValueError("`gallery` must be finite. Received: NaN or infinite values")
        size = len(embeddings)
        self.ids, self.id_dtype = _check_ids(ids, size)
        if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
            raise TypeError(f"`top_k` must be an integer. Received: top_k={top_k!r}")
        if not 1 <= top_k <= size:
            raise ValueError(
                f"`top_k` must be between 1 and the gallery size {size}. Received: top_k={top_k}"
            )
        self.size = size
        self.top_k = int(top_k)
        # Equal chunks of at most CHUNK_ROWS rows (at least top_k), padded by fewer rows than
        # there are chunks.
        chunks = max(1, math.ceil(size / CHUNK_ROWS))
        self.chunk_rows = max(math.ceil(size / chunks), self.top_k)
        self.chunks = math.ceil(size / self.chunk_rows)
        squared_norms = np.sum(np.square(embeddings, dtype=np.float64), axis=1)
        norms = np.sqrt(np.maximum(squared_norms, L2_EPSILON))
        padded = np.zeros((self.chunks * self.chunk_rows, embedding_dims), np.float32)
        padded[:size] = embeddings / norms[:, None].astype(np.float32)
        self.embeddings = padded

    def variables(self) -> tuple[tf.Variable, tf.Variable]:
        """Creates the two variables stored in the SavedModel: embeddings and ids."""
        embeddings = tf.Variable(self.embeddings, trainable=False, name="gallery_embeddings")
        ids = tf.Variable(self.ids, dtype=self.id_dtype, trainable=False, name="gallery_ids")
        return embeddings, ids


def _check_ids(ids, size: int) -> tuple[np.ndarray, tf.DType]:
    if ids is None:
        return np.arange(size, dtype=np.int64), tf.int64
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) != size:
        raise ValueError(
            "`gallery_ids` must be a 1-D array with one id per gallery embedding; "
            f"the gallery has {size}. Received: gallery_ids.shape={ids.shape}"
        )
    if np.issubdtype(ids.dtype, np.integer):
        return ids.astype(np.int64), tf.int64
    if ids.dtype.kind in ("U", "S") or (
        ids.dtype == object and all(isinstance(value, (str, bytes)) for value in ids)
    ):
        encoded = [
            value.encode("utf-8") if isinstance(value, str) else bytes(value) for value in ids
        ]
        return np.array(encoded, dtype=object), tf.string
    raise TypeError(
        "`gallery_ids` must hold integers or strings. "
        f"Received: gallery_ids.dtype={ids.dtype}"
    )


def top_k_neighbours(
    queries: tf.Tensor,
    embeddings: tf.Variable,
    size: int,
    chunk_rows: int,
    chunks: int,
    top_k: int,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The `top_k` highest dot products of each query with the first `size` gallery rows.

    Args:
        queries: float32 `[B, D]`.
        embeddings: float32 variable `[chunks * chunk_rows, D]`; rows from `size` on are padding.
        size: number of real gallery rows.
        chunk_rows: rows per chunk.
        chunks: number of chunks.
        top_k: neighbours per query.

    Returns:
        `(scores [B, top_k] float32, indices [B, top_k] int32)`, best first.

    Example:
        >>> gallery = tf.Variable(tf.eye(4))
        >>> top_k_neighbours(tf.eye(4)[:1], gallery, 4, 2, 2, 1)[1].numpy()
        array([[0]], dtype=int32)
    """
    if chunks == 1:
        scores = tf.matmul(queries, embeddings[:size], transpose_b=True)
        return tf.math.top_k(scores, k=top_k)

    padding = tf.range(chunk_rows)

    def chunk_top_k(chunk):
        start = chunk * chunk_rows
        rows = embeddings[start : start + chunk_rows]
        scores = tf.matmul(queries, rows, transpose_b=True)
        real = (start + padding) < size
        scores = tf.where(real[None, :], scores, tf.constant(-np.inf, tf.float32))
        values, indices = tf.math.top_k(scores, k=top_k)
        return values, indices + start

    values, indices = tf.map_fn(
        chunk_top_k,
        tf.range(chunks),
        fn_output_signature=(tf.float32, tf.int32),
        parallel_iterations=1,
    )  # [chunks, B, top_k] each
    batch = tf.shape(queries)[0]
    values = tf.reshape(tf.transpose(values, [1, 0, 2]), [batch, chunks * top_k])
    indices = tf.reshape(tf.transpose(indices, [1, 0, 2]), [batch, chunks * top_k])
    best, position = tf.math.top_k(values, k=top_k)
    return best, tf.gather(indices, position, batch_dims=1)
