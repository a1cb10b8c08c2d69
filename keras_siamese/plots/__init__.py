"""Pictures of a run, written as PNG files: training curves, retrieval grid, embedding map.

Also the files of TensorBoard's Embedding Projector (`projector_files`), for browsing the
embeddings interactively with `tensorboard --logdir LOG_DIR`.

matplotlib (with the non-interactive Agg backend), scikit-learn (t-SNE) and Pillow are
imported inside the functions, so importing keras_siamese never needs them; install them with
`pip install keras_siamese[plots]`.

Modules, re-exported here: `figures` (the PNG figures, of fixed sizes in pixels), `roc` (the
ROC curve of verification scores), `reconstructions` (a masked autoencoder's
reconstructions beside the images), `curves` (training curves from a `CSVLogger` history file)
and `projector` (the Embedding Projector files).
"""

from keras_siamese.plots.curves import read_history, write_curves
from keras_siamese.plots.figures import (
    CURVE_COLUMNS,
    CURVE_PANEL_INCHES,
    DPI,
    GRID_CELL_INCHES,
    MAP_INCHES,
    curve_figure_pixels,
    embedding_map,
    grid_figure_pixels,
    retrieval_grid,
    training_curves,
)
from keras_siamese.plots.projector import (
    MAX_SPRITE_SIDE,
    PROJECTOR_CONFIG,
    PROJECTOR_METADATA,
    PROJECTOR_SPRITE,
    PROJECTOR_TENSORS,
    projector_files,
)
from keras_siamese.plots.reconstructions import (
    RECONSTRUCTION_CELL_INCHES,
    mae_reconstructions,
    reconstruction_figure_pixels,
)
from keras_siamese.plots.roc import ROC_INCHES, roc_figure

__all__ = [
    "CURVE_COLUMNS",
    "CURVE_PANEL_INCHES",
    "DPI",
    "GRID_CELL_INCHES",
    "MAP_INCHES",
    "MAX_SPRITE_SIDE",
    "PROJECTOR_CONFIG",
    "PROJECTOR_METADATA",
    "PROJECTOR_SPRITE",
    "PROJECTOR_TENSORS",
    "RECONSTRUCTION_CELL_INCHES",
    "ROC_INCHES",
    "curve_figure_pixels",
    "embedding_map",
    "grid_figure_pixels",
    "mae_reconstructions",
    "projector_files",
    "read_history",
    "reconstruction_figure_pixels",
    "retrieval_grid",
    "roc_figure",
    "training_curves",
    "write_curves",
]
