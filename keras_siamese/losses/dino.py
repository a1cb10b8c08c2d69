"""DINO's self-distillation loss: `dino` and `DINOLoss`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf
from keras import ops

from keras_siamese import distribute, validation
from keras_siamese.losses._checks import _static_shape

if TYPE_CHECKING:
    import numpy as np


def _as_views(outputs, name: str) -> list:
    """A list of `(n, K)` float32 tensors from a list of views or a stacked `(views, n, K)`."""
    if isinstance(outputs, (list, tuple)):
        views = [ops.convert_to_tensor(view) for view in outputs]
    else:
        stacked = ops.convert_to_tensor(outputs)
        shape = _static_shape(stacked)
        if shape is None or len(shape) != 3 or shape[0] is None:
            raise ValueError(
                f"Argument `{name}` must be a list of (batch_size, output_dim) tensors, one "
                "per view, or their stack (views, batch_size, output_dim). "
                f"Received: {name}.shape={shape}"
            )
        views = [stacked[index] for index in range(shape[0])]
    if not views:
        raise ValueError(f"Argument `{name}` must hold at least one view. Received: {name}=[]")
    shapes = [_static_shape(view) for view in views]
    for index, shape in enumerate(shapes):
        if shape is not None and len(shape) != 2:
            raise ValueError(
                f"Argument `{name}` must hold (batch_size, output_dim) tensors. "
                f"Received: {name}[{index}].shape={shape}"
            )
    return [ops.cast(view, "float32") for view in views]


def _check_dino_shapes(teacher, student) -> None:
    shapes = [_static_shape(view) for view in teacher + student]
    known = [shape for shape in shapes if shape is not None]
    for axis, meaning in ((0, "batch_size"), (1, "output_dim")):
        sizes = {shape[axis] for shape in known if shape[axis] is not None}
        if len(sizes) > 1:
            raise ValueError(
                f"Every teacher and student view must have the same {meaning}. Received: "
                f"teacher shapes {shapes[: len(teacher)]}, student shapes "
                f"{shapes[len(teacher) :]}"
            )
    if len(teacher) > len(student):
        raise ValueError(
            "The student must see every view the teacher sees (the global views come first "
            f"in both lists). Received: {len(teacher)} teacher views and {len(student)} "
            "student views"
        )


def dino_cross_entropy(
    teacher_outputs, student_outputs, center, teacher_temperature, student_temperature
) -> tf.Tensor:
    """The maths of `dino` without argument checks (temperatures may be tensors), in float32
    whatever the outputs' dtype (bfloat16 heads under mixed precision)."""
    center = ops.reshape(ops.cast(center, "float32"), (1, -1))
    teacher_outputs = [ops.cast(view, "float32") for view in teacher_outputs]
    student_outputs = [ops.cast(view, "float32") for view in student_outputs]
    teacher = [
        ops.softmax((view - center) / teacher_temperature, axis=-1) for view in teacher_outputs
    ]
    student = [ops.log_softmax(view / student_temperature, axis=-1) for view in student_outputs]
    total = 0.0
    terms = 0
    for teacher_index, probabilities in enumerate(teacher):
        for student_index, log_probabilities in enumerate(student):
            if student_index == teacher_index:
                continue  # the same view
            total = total + ops.sum(-probabilities * log_probabilities)
            terms += 1
    local_size = ops.shape(teacher_outputs[0])[0]
    if distribute.in_replica_context():
        # Each example weighs 1 / N of the global batch, whichever replica holds it.
        sizes = distribute.all_gather(ops.reshape(ops.cast(local_size, "int32"), (1,)))
        count = ops.cast(ops.sum(sizes), "float32")
        return total / (terms * count) * float(distribute.num_replicas())
    return total / (terms * ops.cast(local_size, "float32"))


def dino(
    teacher_outputs: list | tf.Tensor | np.ndarray,
    student_outputs: list | tf.Tensor | np.ndarray,
    center: tf.Tensor | np.ndarray | None = None,
    teacher_temperature: float = 0.04,
    student_temperature: float = 0.1,
) -> tf.Tensor:
    """DINO's cross-entropy between the sharpened, centred teacher and the student.

    From Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers"
    (https://arxiv.org/abs/2104.14294), Eq. 3 and Algorithm 1: with
    `P_t = softmax((g_t - center) / T_t)` and `log P_s = log_softmax(g_s / T_s)`, the loss
    is the mean of `-sum_k P_t log P_s` over every (teacher view, student view) pair that
    are not the same view, each pair averaged over the batch. The teacher sees the
    global views, the student all views with the same global views first, so teacher
    view `i` and student view `i` are the same crop and skipped. The teacher outputs are
    targets: pass them through `stop_gradient` (the DINO model does). This equals
    lightly 1.6.0's `DINOLoss(...)(teacher_outputs, student_outputs, teacher_temp=T_t)`
    for the same center (lightly's starts at zero). The caller updates the center, e.g.
    `center <- m * center + (1 - m) * mean(global batch of teacher outputs)`.

    Under a multi-replica strategy the value is the sum over local examples divided by
    the global batch, times the number of replicas (see `info_nce`). Computed in float32.

    Args:
        teacher_outputs: the teacher's `(n, K)` outputs of the global views (a list, or
            their stack `(views, n, K)`).
        student_outputs: the student's `(n, K)` outputs of all views, global views first.
        center: `(K,)` (or `(1, K)`) center subtracted from the teacher outputs; None for
            zeros.
        teacher_temperature: `T_t` (finite, > 0; DINO: 0.04 to 0.07).
        student_temperature: `T_s` (finite, > 0; DINO: 0.1).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: for views of different shapes, more teacher than student views, a
            single view pair that is the same view (no term), or bad temperatures.
        TypeError: if a temperature is not a number.

    Example:
        >>> teacher = [keras.random.normal((8, 32), seed=s) for s in (1, 2)]
        >>> student = teacher + [keras.random.normal((8, 32), seed=3)]
        >>> float(dino(teacher, student)) > 0
        True
    """
    teacher_temperature = validation.check_temperature(teacher_temperature, "teacher_temperature")
    student_temperature = validation.check_temperature(student_temperature, "student_temperature")
    teacher = _as_views(teacher_outputs, "teacher_outputs")
    student = _as_views(student_outputs, "student_outputs")
    _check_dino_shapes(teacher, student)
    if len(student) == 1:
        raise ValueError(
            "DINO compares different views: with one teacher and one student view, both "
            "the same, there is no term. Pass at least two student views. "
            f"Received: {len(teacher)} teacher view(s) and {len(student)} student view(s)"
        )
    if center is None:
        center = ops.zeros((ops.shape(teacher[0])[-1],), "float32")
    else:
        center = ops.convert_to_tensor(center)
        size = _static_shape(teacher[0])[-1]
        center_shape = _static_shape(center)
        if center_shape is not None and (
            len(center_shape) not in (1, 2)
            or (size is not None and center_shape[-1] not in (None, size))
            or (len(center_shape) == 2 and center_shape[0] not in (None, 1))
        ):
            raise ValueError(
                f"Argument `center` must have shape ({size},) or (1, {size}), one value per "
                f"output dimension. Received: center.shape={center_shape}"
            )
    return dino_cross_entropy(teacher, student, center, teacher_temperature, student_temperature)


@keras.saving.register_keras_serializable(package="keras_siamese")
class DINOLoss(keras.losses.Loss):
    """DINO's loss with a zero center as a `keras.losses.Loss`.

    `y_true` holds the teacher's outputs of the global views stacked as `(views, n, K)`
    and `y_pred` the student's outputs of all views `(views, n, K)`, global views first.
    The center is zero: the `keras_siamese.DINO` model keeps and updates its own center
    and calls `dino`. See `dino` (Caron et al. 2021, https://arxiv.org/abs/2104.14294).

    Args:
        teacher_temperature: the teacher's temperature (finite, > 0).
        student_temperature: the student's temperature (finite, > 0).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for bad temperatures; at call time for the errors of `dino`.
        TypeError: if a temperature is not a number.

    Example:
        >>> loss_fn = DINOLoss(teacher_temperature=0.04, student_temperature=0.1)
        >>> outputs = keras.random.normal((2, 8, 32), seed=1)
        >>> float(loss_fn(outputs, outputs)) > 0
        True
    """

    def __init__(
        self,
        teacher_temperature: float = 0.04,
        student_temperature: float = 0.1,
        name: str = "dino",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        teacher_temperature = validation.check_temperature(
            teacher_temperature, "teacher_temperature"
        )
        student_temperature = validation.check_temperature(
            student_temperature, "student_temperature"
        )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.teacher_temperature = teacher_temperature
        self.student_temperature = student_temperature

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return dino(
            y_true,
            y_pred,
            teacher_temperature=self.teacher_temperature,
            student_temperature=self.student_temperature,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "teacher_temperature": self.teacher_temperature,
                "student_temperature": self.student_temperature,
                "dtype": self._dtype_policy.name,
            }
        )
        return config
