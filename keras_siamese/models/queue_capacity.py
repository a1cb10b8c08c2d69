"""The check shared by the package's FIFO queues (NNCLR's support set, the cross-batch
memory): a global batch must fit in the queue before it is written."""

import tensorflow as tf


def batch_fits(count, size: int, message: str) -> list:
    """Checks that a global batch of `count` rows fits in a queue of `size` rows.

    Args:
        count: rows of the global batch: an int, a tensor, or None (unknown: no check).
        size: the queue's rows.
        message: the error, with `{}` where the batch size goes.

    Returns:
        `[]` when the count is known here; for a count known only when the graph runs
        (a dataset's last, partial batch), the assertion to run before the write.

    Raises:
        ValueError: for a known count larger than `size`.

    Example:
        >>> batch_fits(8, 16, "batch of {} is too large")
        []
    """
    known = count if count is None or isinstance(count, int) else tf.get_static_value(count)
    if known is not None and known > size:
        raise ValueError(message.format(int(known)))
    if known is not None or count is None:
        return []
    limit = tf.constant(size, tf.int64)
    return [
        tf.debugging.assert_less_equal(
            tf.cast(count, tf.int64), limit, message=message.format("x (below)")
        )
    ]
