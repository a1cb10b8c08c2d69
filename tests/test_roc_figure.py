"""Tests of keras_siamese.plots.roc_figure: a PNG of the fixed size, checked arguments."""

import numpy as np
import pytest

from keras_siamese import plots


def test_writes_a_png_of_the_fixed_size(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    same = rng.integers(0, 2, 200)
    scores = same + rng.normal(0, 0.8, 200)
    path = plots.roc_figure(scores, same, tmp_path / "figures" / "roc.png", title="pairs")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (450, 450)


def test_refuses_one_class_and_a_bad_path(tmp_path):
    with pytest.raises(ValueError, match="both same-class"):
        plots.roc_figure([0.1, 0.2], [1, 1], tmp_path / "roc.png")
    with pytest.raises(TypeError, match="path"):
        plots.roc_figure([0.1, 0.2], [0, 1], 3)
