"""`AugmentationLayer`: keras-cv's vectorised augmentation protocol with per-replica seeds.

Every operation of `keras_siamese.augment` subclasses it. The protocol is keras-cv's
`VectorizedBaseImageAugmentationLayer`: `get_random_transformation_batch` draws the random
parameters of the whole batch at once (one value per image) and `augment_images` applies them,
so our layers and keras-cv's compose in one pipeline and accept what keras-cv layers accept (a
batch, a single image, or a dict with `"images"` and `"labels"`).

What this base changes: randomness comes from a Keras `SeedGenerator` whose seed is folded with
the replica id (`distribute.replica_seed`), and every draw is a stateless random op, so a seed
reproduces the views on any number of replicas (within one mode: XLA draws other numbers than
TensorFlow's kernels), and the generator's state is saved in `.keras` files, so a reloaded layer
continues its stream. keras-cv's own layers draw from a `tf.random.Generator` (the global
one unless seeded), which replicas share and a `.keras` file does not keep. `call` takes `training`:
`training=False` skips the randomness (identity, except for ops that resize). Layers compute in
float32 unless given another `dtype`, whatever the global mixed-precision policy, because
augmentations feed the model's input.
"""

from __future__ import annotations

import math
import numbers

import keras
import keras_cv
import tensorflow as tf

from keras_siamese import distribute, validation

# The `.keras` entry holding the position of a random layer's stream.
_SEED_STATE_KEY = "seed_generator_state"
# Mixes a recipe's seed with an operation's index into that operation's own seed.
_SEED_MULTIPLIER = 1_000_003
_SEED_MODULUS = 2**31 - 1


def derive_seed(seed: int | None, salt: int) -> int | None:
    """The seed of the `salt`-th random layer of a recipe seeded `seed` (None stays None).

    Example:
        >>> derive_seed(7, 2) != derive_seed(7, 3)
        True
    """
    if seed is None:
        return None
    return (seed * _SEED_MULTIPLIER + salt) % _SEED_MODULUS


def check_seed(seed) -> int | None:
    """Checks a layer seed: None or an integer >= 0."""
    if seed is None:
        return None
    return validation.check_integer("seed", seed, minimum=0)


def check_image_size(image_size, name: str = "image_size") -> tuple[int, int]:
    """Checks an output size: a positive int or `(height, width)`; returns the pair."""
    size = image_size
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    size = tuple(size) if isinstance(size, (tuple, list)) else ()
    valid = len(size) == 2 and all(
        isinstance(side, numbers.Integral) and not isinstance(side, bool) and side >= 1
        for side in size
    )
    if not valid:
        raise ValueError(
            f"Argument `{name}` must be a positive int or a pair (height, width) of positive "
            f"ints. Received: {name}={image_size!r}"
        )
    return (int(size[0]), int(size[1]))


def check_range(name: str, value, minimum: float, maximum: float | None = None) -> tuple:
    """Checks a `(low, high)` pair with `minimum <= low <= high (<= maximum)`; returns floats."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else None
    bounds = f"{minimum:g} <= low <= high" + ("" if maximum is None else f" <= {maximum:g}")
    if pair is None or len(pair) != 2:
        raise ValueError(
            f"Argument `{name}` must be a pair (low, high) with {bounds}. "
            f"Received: {name}={value!r}"
        )
    for item in pair:  # TypeError for a non-number, naming the argument
        validation.check_number(name, item, finite=False)
    low, high = float(pair[0]), float(pair[1])
    inside = minimum <= low <= high and (maximum is None or high <= maximum)
    if not inside or not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(
            f"Argument `{name}` must be a pair (low, high) with {bounds}. "
            f"Received: {name}={value!r}"
        )
    return (low, high)


def check_value_range(value_range) -> tuple[float, float]:
    """Checks an image value range `(low, high)` with `low < high`."""
    pair = tuple(value_range) if isinstance(value_range, (tuple, list)) else ()
    for item in pair:  # TypeError for a non-number
        validation.check_number("value_range", item, finite=False)
    if len(pair) != 2 or not all(map(math.isfinite, pair)) or not pair[0] < pair[1]:
        raise ValueError(
            "Argument `value_range` must be a pair (low, high) of finite numbers with low < high, "
            f"e.g. (0, 255). Received: value_range={value_range!r}"
        )
    return (float(pair[0]), float(pair[1]))


# One algorithm on every device (the default "auto_select" may pick another per device). XLA's
# own implementation still draws other numbers than TensorFlow's kernels: a seed reproduces the
# views within one mode, with or without `jit_compile`, not across them.
RANDOM_ALGORITHM = "philox"


def uniform(shape, seed, minval=0.0, maxval=1.0) -> tf.Tensor:
    """`tf.random.stateless_uniform` with the package's algorithm (Philox)."""
    return tf.random.stateless_uniform(shape, seed, minval, maxval, alg=RANDOM_ALGORITHM)


def split_seed(seed, count: int) -> tf.Tensor:
    """`count` independent stateless seeds `(count, 2)` from one."""
    return tf.random.experimental.stateless_split(seed, count, alg=RANDOM_ALGORITHM)


def per_image(values: tf.Tensor) -> tf.Tensor:
    """Reshapes one value per image `(batch,)` to broadcast over `(batch, h, w, c)`."""
    return tf.reshape(values, [-1, 1, 1, 1])


def select_images(mask: tf.Tensor, chosen: tf.Tensor, others: tf.Tensor) -> tf.Tensor:
    """`chosen[i]` where `mask[i]` else `others[i]`, for image batches of one shape.

    The same as `tf.where(per_image(mask), chosen, others)`, on `(batch, pixels)` views: TF's
    CPU kernel broadcasts a `(batch, 1)` mask several times faster than a `(batch, 1, 1, 1)` one.
    """
    flat = tf.where(
        mask[:, None],
        tf.reshape(chosen, [tf.shape(chosen)[0], -1]),
        tf.reshape(others, [tf.shape(others)[0], -1]),
    )
    return tf.reshape(flat, tf.shape(others))


def in_xla_context() -> bool:
    """Whether the current trace compiles with XLA (`jit_compile=True`, TPU replication).

    Under XLA every shape must be static, so operations that would gather the images an
    operation applies to (a batch of data-dependent size) mask instead. Reads TensorFlow's
    control-flow context (no public API says it); if that changes, it answers True, the
    static-shape choice that is correct everywhere.
    """
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - a TensorFlow without the private module
        return True
    if tf.executing_eagerly():
        return False
    try:
        return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
    except AttributeError:  # pragma: no cover
        return True


class AugmentationLayer(keras_cv.layers.VectorizedBaseImageAugmentationLayer):
    """Base of the package's deterministic image operations (abstract, not registered).

    Subclasses implement `augment_images(images, transformations)` and `get_config`.

    Args:
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...); `dtype` defaults to
            float32.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        # No seed to keras-cv: it would build a `tf.random.Generator`, which these layers never
        # use and which a strategy scope refuses to create with a seed.
        super().__init__(**kwargs)

    def call(self, inputs, training=True):
        if not training:
            return self.inference(inputs)
        return super().call(inputs)

    def inference(self, inputs):
        """The output with `training=False`: the inputs as float (resizing layers resize)."""
        return self._ensure_inputs_are_compute_dtype(inputs)

    def augment_labels(self, labels, transformations, **kwargs):
        return labels

    def compute_output_shape(self, input_shape):
        return input_shape


class RandomAugmentationLayer(AugmentationLayer):
    """Base of the package's random image operations (abstract, not registered).

    Subclasses implement `get_random_transformation_batch(batch_size, images=None, **kwargs)`
    with `self.next_seed()` and stateless random ops (one value per image), `augment_images`,
    and `get_config` (calling this one for `seed`).

    Args:
        seed: integer seed of the layer's random stream, or None for a random one (drawn from
            Python's `random`, so `keras.utils.set_random_seed` fixes it).
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, seed: int | None = None, **kwargs):
        seed = check_seed(seed)
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def next_seed(self) -> tf.Tensor:
        """A fresh stateless seed `(2,)` for this call, different on every replica."""
        return distribute.replica_seed(self.seed_generator.next())

    # Keras saves a layer's variables but not its seed generators' states: save the stream's
    # position too, so a reloaded layer (or a model resumed from a `.keras` file) continues
    # its random stream instead of replaying it from the start.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[_SEED_STATE_KEY] = self.seed_generator.state.numpy()

    def load_own_variables(self, store):
        if _SEED_STATE_KEY in store.keys():
            self.seed_generator.state.assign(store[_SEED_STATE_KEY])
        super().load_own_variables(
            {key: store[key] for key in store.keys() if key != _SEED_STATE_KEY}
        )

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config
