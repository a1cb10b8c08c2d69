"""Tests of `dino` / `DINOLoss`: numpy references, analytic cases, gradients, checks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.losses.dino import DINOLoss, dino


def softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    return np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def lightly_dino_loss(teacher, student, center, teacher_temperature, student_temperature):
    """lightly 1.6.0's DINOLoss forward, from its documented formula: stack the views,
    t = softmax((teacher - center) / T_t), s = log_softmax(student / T_s), the (t, s)
    matrix -einsum("tbd,sbd->ts"), its diagonal (the same views) zeroed, the sum over the
    t * s - min(t, s) remaining terms times the batch size."""
    t_out = softmax((np.stack(teacher) - center.reshape(1, 1, -1)) / teacher_temperature)
    s_out = log_softmax(np.stack(student) / student_temperature)
    loss = -np.einsum("tbd,sbd->ts", t_out, s_out)
    np.fill_diagonal(loss, 0.0)
    terms = loss.size - min(loss.shape)
    return loss.sum() / (terms * t_out.shape[1])


def paper_two_view_loss(teacher, student, center, teacher_temperature, student_temperature):
    """DINO's Algorithm 1 (Caron et al. 2021): loss = H(t1, s2) / 2 + H(t2, s1) / 2."""

    def cross_entropy(t, s):
        t = softmax((t - center) / teacher_temperature)
        return -(t * log_softmax(s / student_temperature)).sum(axis=1).mean()

    return cross_entropy(teacher[0], student[1]) / 2 + cross_entropy(teacher[1], student[0]) / 2


def random_views(seed, teacher_views=2, student_views=4, batch=5, dims=7):
    rng = np.random.default_rng(seed)
    teacher = list(rng.normal(size=(teacher_views, batch, dims)))
    student = list(rng.normal(size=(student_views, batch, dims)))
    return teacher, student, rng.normal(size=(dims,))


def as_float32(views):
    return [view.astype("float32") for view in views]


def test_dino_matches_lightly_formula_with_local_views_and_a_center():
    teacher, student, center = random_views(0)
    expected = lightly_dino_loss(teacher, student, center, 0.04, 0.1)
    loss = dino(as_float32(teacher), as_float32(student), center.astype("float32"), 0.04, 0.1)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    # A stacked (views, batch, K) tensor gives the same value; a zero center is the default.
    zero = lightly_dino_loss(teacher, student, np.zeros(7), 0.07, 0.2)
    stacked = dino(np.stack(teacher).astype("float32"), np.stack(student).astype("float32"),
                   teacher_temperature=0.07, student_temperature=0.2)
    np.testing.assert_allclose(float(stacked), zero, rtol=1e-5)


def test_dino_two_views_matches_the_papers_algorithm():
    teacher, student, center = random_views(1, student_views=2)
    expected = paper_two_view_loss(teacher, student, center, 0.04, 0.1)
    loss = dino(as_float32(teacher), as_float32(student), center.astype("float32"))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_dino_analytic_cases():
    teacher, student, center = random_views(2)
    # A constant student: log_softmax = -log K for every output, whatever the teacher.
    constant = [np.full((5, 7), 3.0, "float32")] * 4
    np.testing.assert_allclose(
        float(dino(as_float32(teacher), constant, center.astype("float32"))), np.log(7.0),
        rtol=1e-6,
    )
    # A teacher equal to the center is uniform: the loss is the student's mean -log_softmax.
    uniform_teacher = [np.tile(center, (5, 1)).astype("float32")] * 2
    s = log_softmax(np.stack(student) / 0.1)
    terms = [-s[j].mean() for i in range(2) for j in range(4) if i != j]  # P = 1 / K
    np.testing.assert_allclose(
        float(dino(uniform_teacher, as_float32(student), center.astype("float32"))),
        np.mean(terms), rtol=1e-5,
    )


def test_dino_gradients_match_finite_differences_and_skip_nothing_else():
    teacher, student, center = random_views(3, batch=2, dims=3, student_views=3)
    variables = [tf.Variable(view.astype("float32")) for view in teacher + student]
    with tf.GradientTape() as tape:
        loss = dino(variables[:2], variables[2:], center.astype("float32"), 0.5, 0.3)
    gradients = tape.gradient(loss, variables)
    views = teacher + student
    step = 1e-6
    for index, value in enumerate(views):
        numeric = np.zeros_like(value)
        for position in np.ndindex(value.shape):
            plus, minus = [v.copy() for v in views], [v.copy() for v in views]
            plus[index][position] += step
            minus[index][position] -= step
            numeric[position] = (
                lightly_dino_loss(plus[:2], plus[2:], center, 0.5, 0.3)
                - lightly_dino_loss(minus[:2], minus[2:], center, 0.5, 0.3)
            ) / (2 * step)
        np.testing.assert_allclose(gradients[index].numpy(), numeric, rtol=2e-3, atol=2e-6)


def test_dino_loss_class_value_and_config_round_trip():
    teacher, student, _ = random_views(4)
    loss_fn = DINOLoss(teacher_temperature=0.05, student_temperature=0.2)
    expected = lightly_dino_loss(teacher, student, np.zeros(7), 0.05, 0.2)
    value = loss_fn(np.stack(teacher).astype("float32"), np.stack(student).astype("float32"))
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(loss_fn))
    assert isinstance(restored, DINOLoss)
    assert (restored.teacher_temperature, restored.student_temperature) == (0.05, 0.2)
    assert restored.get_config() == loss_fn.get_config()


@pytest.mark.parametrize(
    "teacher_shapes, student_shapes, center_shape, match",
    [
        ([(4, 3)], [(4, 3)], None, r"one teacher and one student view.*1 student view"),
        ([(4, 3)] * 2, [(4, 3)], None, r"must see every view the teacher sees.*2 teacher views"),
        ([(4, 3)] * 2, [(4, 3), (5, 3)], None, r"same batch_size"),
        ([(4, 3)] * 2, [(4, 3), (4, 2)], None, r"same output_dim"),
        ([(4, 3)] * 2, [(4, 3, 1)] * 2, None, r"student_outputs\[0\].shape=\(4, 3, 1\)"),
        ([(4, 3)] * 2, [(4, 3)] * 2, (2,), r"`center` must have shape \(3,\).*\(2,\)"),
        ([], [(4, 3)] * 2, None, r"`teacher_outputs` must hold at least one view"),
    ],
)
def test_dino_bad_shapes_raise(teacher_shapes, student_shapes, center_shape, match):
    teacher = [np.ones(shape, "float32") for shape in teacher_shapes]
    student = [np.ones(shape, "float32") for shape in student_shapes]
    center = None if center_shape is None else np.zeros(center_shape, "float32")
    with pytest.raises(ValueError, match=match):
        dino(teacher, student, center)


def test_dino_bad_stack_and_temperatures_raise():
    with pytest.raises(ValueError, match=r"`teacher_outputs` must be a list.*shape=\(4, 3\)"):
        dino(np.ones((4, 3), "float32"), np.ones((2, 4, 3), "float32"))
    ones = [np.ones((4, 3), "float32")] * 2
    with pytest.raises(ValueError, match=r"`teacher_temperature` must be finite and > 0"):
        dino(ones, ones, teacher_temperature=0.0)
    with pytest.raises(TypeError, match=r"`student_temperature` must be a number"):
        DINOLoss(student_temperature="0.1")
