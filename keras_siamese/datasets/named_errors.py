"""A parallel `tf.data` map whose failures name the element (the file, or shard and record).

TensorFlow's decoders fail with their own words only (`Invalid PNG data, size 852`), so a
file damaged inside its image data, which passes every header check, stopped training
without saying which file it was. `map_naming_errors` names it without `py_function`: each
element is mapped in a one-element dataset of its own, whose errors (and only those: a
reader's errors upstream still stop the iteration as they are) are dropped with
`ignore_errors(log_warning=True)`, which logs TensorFlow's reason; when that leaves nothing,
a second one-element dataset fails with an `InvalidArgumentError` naming the element. The
elements are read in parallel and yielded in order (`interleave` of one element each).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def _blank(spec):
    return tf.nest.map_structure(lambda one: tf.zeros(one.shape, one.dtype), spec)


def map_naming_errors(
    dataset: tf.data.Dataset,
    function: Callable,
    name_of: Callable[[dict], tf.Tensor],
    on_error: str,
) -> tf.data.Dataset:
    """`dataset.map(function)` (parallel, deterministic), with failures named or skipped.

    Args:
        dataset: elements are dicts of scalar tensors.
        function: element -> output (the read and decoded image, ...).
        name_of: element -> a string tensor naming it in messages (a path, a shard and
            record index).
        on_error: `"skip"` drops failing elements silently; `"raise"` stops with an
            `InvalidArgumentError` that names the first failing element (TensorFlow's own
            error is logged just before it).

    Returns:
        The mapped dataset.
    """
    if on_error == "skip":
        return dataset.map(
            function, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        ).ignore_errors()
    output_blank = _blank(dataset.map(function).element_spec)

    def fail(element):
        message = tf.strings.format(
            "{} could not be read or decoded (TensorFlow's own error is logged just above). "
            "Replace or remove it, or pass on_error='skip' to leave such elements out. "
            "Received: on_error='raise'",
            name_of(element),
        )
        with tf.control_dependencies([tf.debugging.Assert(False, [message], summarize=1)]):
            return tf.nest.map_structure(tf.identity, output_blank)

    def isolated(element):
        one = tf.data.Dataset.from_tensors(element)
        read = one.map(function).ignore_errors(log_warning=True)
        return read.concatenate(one.map(fail)).take(1)

    count = dataset.cardinality()
    mapped = dataset.interleave(
        isolated,
        cycle_length=tf.data.AUTOTUNE,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if count >= 0:  # one output per element (or an error): keep the length known
        mapped = mapped.apply(tf.data.experimental.assert_cardinality(count))
    return mapped
