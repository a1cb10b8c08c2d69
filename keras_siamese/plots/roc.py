"""`roc_figure`: the ROC curve of verification scores, as a PNG file."""

from __future__ import annotations

import os

from keras_siamese import atomic_files
from keras_siamese.plots.figures import DPI, _check_path, _pyplot

ROC_INCHES = (4.5, 4.5)


def roc_figure(scores, same, path: str | os.PathLike, title: str | None = None) -> str:
    """Writes the ROC curve of pair scores with its AUC and equal error rate to a PNG file.

    The curve is `keras_siamese.evaluation.roc_curve` (true against false accept rate as
    the threshold falls); the legend gives `verification_metrics`' ROC AUC and equal error
    rate; the chance diagonal is dotted. The figure is `ROC_INCHES` at `DPI` (450x450 px).

    Args:
        scores: `(N,)` similarity scores, higher = more similar (e.g. from `pair_scores`).
        same: `(N,)` 1 for same-class pairs, 0 otherwise.
        path: the PNG file; its directory is created.
        title: the axes title.

    Returns:
        The path written.

    Raises:
        TypeError: if `path` is not a path.
        ValueError: as `keras_siamese.evaluation.roc_curve` (labels not 0/1, one class only,
            unequal shapes).

    Example:
        >>> roc_figure([0.9, 0.2, 0.7, 0.4], [1, 0, 1, 0], "/tmp/roc.png")
        '/tmp/roc.png'
    """
    from keras_siamese.evaluation import roc_curve, verification_metrics

    path = _check_path(path)
    false_accepts, true_accepts, _ = roc_curve(scores, same)
    metrics = verification_metrics(scores, same)
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=ROC_INCHES, dpi=DPI)
    label = f"AUC {metrics['roc_auc']:.3f}, EER {metrics['equal_error_rate']:.3f}"
    axes.plot(false_accepts, true_accepts, label=label)
    axes.plot([0, 1], [0, 1], color="gray", linestyle=":")
    axes.set(xlabel="false accept rate", ylabel="true accept rate", title=title or "")
    axes.legend(loc="lower right")
    figure.tight_layout()
    with atomic_files.atomic_path(path) as temporary:  # whole or absent
        figure.savefig(temporary, format=os.path.splitext(path)[1][1:].lower() or "png")
    pyplot.close(figure)
    return path
