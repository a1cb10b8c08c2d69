"""PNG figures of a run: training curves, retrieval grid, t-SNE embedding map.

matplotlib (Agg backend) and scikit-learn are imported inside the functions. Figures have
fixed sizes in pixels (`DPI` times the inch sizes below, never cropped with
`bbox_inches="tight"`), so a page or a test can rely on them.
"""

from __future__ import annotations

import math
import os

import numpy as np

from keras_siamese import atomic_files

DPI = 100
CURVE_PANEL_INCHES = (4.0, 3.0)  # (width, height) of one metric's panel.
CURVE_COLUMNS = 3  # Panels per row.
GRID_CELL_INCHES = (1.2, 1.35)  # (width, height) of one image of the retrieval grid.
MAP_INCHES = (7.0, 6.0)

_CORRECT_COLOR = "#2ca02c"
_WRONG_COLOR = "#d62728"
_QUERY_COLOR = "#1f77b4"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot

    return pyplot


def _check_path(path, argument: str = "path") -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"Argument `{argument}` must be a file path. Received: {argument}={path!r}")
    path = os.fspath(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    return path


def _class_name(label: int, class_names) -> str:
    if class_names is not None and 0 <= label < len(class_names):
        return str(class_names[label])
    return str(label)


def _as_uint8_images(images: np.ndarray) -> np.ndarray:
    """Rounds and clips images in [0, 255] to uint8 and drops a single channel."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = np.clip(np.round(images.astype(np.float64)), 0, 255).astype(np.uint8)
    return images[..., 0] if images.shape[-1] == 1 else images


def _series(history: dict) -> dict[str, np.ndarray]:
    """Returns each numeric series of `history` as float64 (NaN where an epoch has no value)."""
    if hasattr(history, "history") and isinstance(history.history, dict):
        history = history.history  # A keras.callbacks.History.
    if not isinstance(history, dict):
        raise TypeError(
            "Argument `history` must be a dict of metric name -> per-epoch values, such as "
            f"`model.fit(...).history`. Received: history of type {type(history).__name__}"
        )
    series = {}
    for name, values in history.items():
        if name == "epoch":
            continue
        try:
            array = np.array([np.nan if value is None else value for value in values], np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Argument `history` must hold numbers (None for epochs without a value). "
                f"Received: history[{name!r}]={values!r}"
            ) from error
        if array.ndim == 1 and np.isfinite(array).any():
            series[name] = array
    if not series:
        raise ValueError(
            "Argument `history` holds no finite per-epoch values to plot. "
            f"Received: history with keys {sorted(history)}"
        )
    return series


def _panel_names(series: dict[str, np.ndarray]) -> list[str]:
    """Groups `x` with `val_x` into one panel; `loss` first, then kNN accuracy, then the rest."""
    names = []
    for name in series:
        base = name[4:] if name.startswith("val_") else name
        if base not in names:
            names.append(base)
    order = {"loss": 0, "knn_accuracy": 1}
    return sorted(names, key=lambda base: order.get(base, 2))


def curve_figure_pixels(num_panels: int) -> tuple[int, int]:
    """Returns the `(width, height)` in pixels of `training_curves` with `num_panels` panels."""
    columns = min(num_panels, CURVE_COLUMNS)
    rows = math.ceil(num_panels / CURVE_COLUMNS)
    return round(columns * CURVE_PANEL_INCHES[0] * DPI), round(rows * CURVE_PANEL_INCHES[1] * DPI)


def training_curves(history: dict, path: str | os.PathLike, title: str | None = None) -> str:
    """Plots every metric of a training history per epoch, one panel per metric.

    A metric and its validation twin (`x` and `val_x`) share a panel: `loss` first, then the
    kNN accuracy written by `KNNMonitor` (`val_knn_accuracy`), then the rest in order
    (`contrastive_accuracy`, `representation_std`, `output_std`, ...). Epochs without a value
    (None or NaN, e.g. kNN measured every few epochs) are skipped. Panels are
    `CURVE_PANEL_INCHES` at `DPI`, `CURVE_COLUMNS` per row (see `curve_figure_pixels`).

    Args:
        history: metric name -> per-epoch values, e.g. `model.fit(...).history` (a
            `keras.callbacks.History` is accepted too). An `epoch` key is ignored.
        path: the PNG file to write; its directory is created.
        title: an optional figure title.

    Returns:
        `path`.

    Raises:
        TypeError: if `history` is not a dict or `path` not a path.
        ValueError: if `history` holds non-numbers or no finite value at all.

    Example:
        >>> training_curves({"loss": [5.1, 4.2, 3.9], "val_knn_accuracy": [None, 0.6, 0.7]},
        ...                 "/tmp/plots/training_curves.png")
        '/tmp/plots/training_curves.png'
    """
    series = _series(history)
    path = _check_path(path)
    panels = _panel_names(series)
    pyplot = _pyplot()
    from matplotlib import ticker

    width, height = curve_figure_pixels(len(panels))
    columns = min(len(panels), CURVE_COLUMNS)
    rows = math.ceil(len(panels) / CURVE_COLUMNS)
    figure, axes = pyplot.subplots(
        rows, columns, figsize=(width / DPI, height / DPI), dpi=DPI, squeeze=False
    )
    for axis, base in zip(axes.flat, panels, strict=False):
        for name, style in ((base, "-o"), (f"val_{base}", "--s")):
            if name not in series:
                continue
            values = series[name]
            epochs = np.arange(1, len(values) + 1)
            finite = np.isfinite(values)
            axis.plot(epochs[finite], values[finite], style, markersize=3, label=name)
        axis.set_title(base.replace("_", " "), fontsize=10)
        axis.set_xlabel("epoch", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.set_xlim(0.5, max(len(values) for values in series.values()) + 0.5)
        axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    with atomic_files.atomic_path(path) as temporary:  # whole or absent
        figure.savefig(temporary, format="png", dpi=DPI)
    pyplot.close(figure)
    return path


def grid_figure_pixels(num_queries: int, num_neighbours: int) -> tuple[int, int]:
    """Returns the `(width, height)` in pixels of `retrieval_grid`."""
    return (
        round((num_neighbours + 1) * GRID_CELL_INCHES[0] * DPI),
        round(num_queries * GRID_CELL_INCHES[1] * DPI),
    )


def retrieval_grid(
    query_images: np.ndarray,
    query_labels: np.ndarray,
    neighbour_images: np.ndarray,
    neighbour_labels: np.ndarray,
    path: str | os.PathLike,
    class_names: list[str] | tuple[str, ...] | None = None,
) -> str:
    """Draws each query next to its nearest neighbours; wrong-class neighbours framed in red.

    One row per query: the query (black frame) then its neighbours from most to least
    similar, each titled with its class, in a green frame when its class is the query's and a
    thick red frame when it is not. Cells are `GRID_CELL_INCHES` at `DPI`
    (see `grid_figure_pixels`).

    Args:
        query_images: `(Q, H, W, C)` images in [0, 255], C = 1 or 3.
        query_labels: `(Q,)` integer classes of the queries.
        neighbour_images: `(Q, K, H, W, C)` neighbours of each query, nearest first.
        neighbour_labels: `(Q, K)` their classes.
        path: the PNG file to write; its directory is created.
        class_names: names indexed by class, used in the titles (class numbers otherwise).

    Returns:
        `path`.

    Raises:
        ValueError: if the shapes do not fit together.

    Example:
        >>> images = np.zeros((2, 16, 16, 1), "uint8")
        >>> retrieval_grid(images, [0, 1], np.zeros((2, 3, 16, 16, 1), "uint8"),
        ...                [[0, 0, 1], [1, 0, 1]], "/tmp/plots/retrieval.png")
        '/tmp/plots/retrieval.png'
    """
    query_images, query_labels, neighbour_images, neighbour_labels = _check_grid_inputs(
        query_images, query_labels, neighbour_images, neighbour_labels
    )
    queries, neighbours = neighbour_images.shape[:2]
    path = _check_path(path)
    pyplot = _pyplot()
    width, height = grid_figure_pixels(queries, neighbours)
    figure, axes = pyplot.subplots(
        queries, neighbours + 1, figsize=(width / DPI, height / DPI), dpi=DPI, squeeze=False
    )
    query_pixels = _as_uint8_images(query_images)
    neighbour_pixels = _as_uint8_images(neighbour_images)
    gray = query_pixels.ndim == 3
    for row in range(queries):
        cells = [(query_pixels[row], query_labels[row], _QUERY_COLOR, 3.0, "query: ")]
        for column in range(neighbours):
            correct = neighbour_labels[row, column] == query_labels[row]
            cells.append(
                (
                    neighbour_pixels[row, column],
                    neighbour_labels[row, column],
                    _CORRECT_COLOR if correct else _WRONG_COLOR,
                    2.0 if correct else 4.0,
                    "",
                )
            )
        _draw_cells(axes[row], cells, gray, class_names)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.97, wspace=0.08, hspace=0.3)
    with atomic_files.atomic_path(path) as temporary:  # whole or absent
        figure.savefig(temporary, format="png", dpi=DPI)
    pyplot.close(figure)
    return path


def _check_grid_inputs(query_images, query_labels, neighbour_images, neighbour_labels):
    """Checks that the retrieval grid's arrays fit together; returns them as numpy arrays
    (labels as int64)."""
    query_images = np.asarray(query_images)
    neighbour_images = np.asarray(neighbour_images)
    query_labels = np.asarray(query_labels).astype(np.int64)
    neighbour_labels = np.asarray(neighbour_labels).astype(np.int64)
    if query_images.ndim != 4 or query_images.shape[-1] not in (1, 3) or not len(query_images):
        raise ValueError(
            "Argument `query_images` must have shape (queries, height, width, 1 or 3). "
            f"Received: query_images.shape={query_images.shape}"
        )
    queries = len(query_images)
    if (
        neighbour_images.ndim != 5
        or neighbour_images.shape[0] != queries
        or (neighbour_images.shape[2:] != query_images.shape[1:])
    ):
        raise ValueError(
            "Argument `neighbour_images` must have shape (queries, neighbours) + the query "
            f"image shape {query_images.shape[1:]}, with queries={queries}. "
            f"Received: neighbour_images.shape={neighbour_images.shape}"
        )
    neighbours = neighbour_images.shape[1]
    if query_labels.shape != (queries,) or neighbour_labels.shape != (queries, neighbours):
        raise ValueError(
            f"Arguments `query_labels` and `neighbour_labels` must have shapes ({queries},) and "
            f"({queries}, {neighbours}). Received: query_labels.shape={query_labels.shape}, "
            f"neighbour_labels.shape={neighbour_labels.shape}"
        )
    return query_images, query_labels, neighbour_images, neighbour_labels


def _draw_cells(axes, cells, gray: bool, class_names) -> None:
    """Draws one row of the grid: each `(image, label, color, line_width, prefix)` cell in
    its axis, framed in `color` and titled with its class."""
    for axis, (image, label, color, line_width, prefix) in zip(axes, cells, strict=True):
        axis.imshow(image, cmap="gray" if gray else None, vmin=0, vmax=255)
        axis.set_xticks([])
        axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(line_width)
        axis.set_title(prefix + _class_name(int(label), class_names), fontsize=7, color=color)


def embedding_map(
    embeddings: np.ndarray,
    labels: np.ndarray,
    path: str | os.PathLike,
    class_names: list[str] | tuple[str, ...] | None = None,
    max_points: int = 3000,
    seed: int = 0,
    perplexity: float = 30.0,
) -> str:
    """Maps embeddings to 2-D with t-SNE and draws them coloured by class.

    t-SNE (van der Maaten & Hinton, 2008; scikit-learn's Barnes-Hut implementation, PCA
    initialisation) keeps neighbourhoods, not distances: tight, separate clusters mean
    classes the embedding separates. At most `max_points` points (a seeded random subset) are
    mapped, as t-SNE costs about a second per thousand points. The perplexity is lowered to
    `(points - 1) / 3` for small sets. The figure is `MAP_INCHES` at `DPI`.

    Args:
        embeddings: `(N, D)` embeddings, N >= 5.
        labels: `(N,)` integer classes.
        path: the PNG file to write; its directory is created.
        class_names: names indexed by class for the legend (class numbers otherwise).
        max_points: the largest number of points mapped.
        seed: seed of the subset and of t-SNE.
        perplexity: t-SNE's perplexity (about the number of neighbours each point keeps).

    Returns:
        `path`.

    Raises:
        ValueError: for mismatched shapes, fewer than 5 points, non-finite embeddings or
            `max_points < 5`.

    Example:
        >>> points = np.random.default_rng(0).normal(size=(60, 8))
        >>> embedding_map(points, np.arange(60) % 3, "/tmp/plots/embedding_map.png")
        '/tmp/plots/embedding_map.png'
    """
    embeddings = np.asarray(embeddings, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if embeddings.ndim != 2 or labels.shape != (len(embeddings),) or len(embeddings) < 5:
        raise ValueError(
            "Arguments `embeddings` and `labels` must have shapes (N, D) and (N,) with N >= 5. "
            f"Received: embeddings.shape={embeddings.shape}, labels.shape={labels.shape}"
        )
    if not np.isfinite(embeddings).all():
        raise ValueError("Argument `embeddings` contains NaN or infinite values.")
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 5:
        raise ValueError(
            f"Argument `max_points` must be an integer >= 5. Received: max_points={max_points!r}"
        )
    path = _check_path(path)
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    if len(embeddings) > max_points:
        chosen = np.sort(rng.choice(len(embeddings), max_points, replace=False))
        embeddings, labels = embeddings[chosen], labels[chosen]
    points = TSNE(
        n_components=2,
        perplexity=min(float(perplexity), (len(embeddings) - 1) / 3.0),
        init="pca",
        random_state=seed,
    ).fit_transform(embeddings)

    pyplot = _pyplot()
    figure, axis = pyplot.subplots(figsize=MAP_INCHES, dpi=DPI)
    classes = np.unique(labels)
    colormap = pyplot.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for index, label in enumerate(classes):
        mine = labels == label
        axis.scatter(
            points[mine, 0],
            points[mine, 1],
            s=6,
            color=colormap(index % colormap.N),
            label=_class_name(int(label), class_names),
        )
    if len(classes) <= 20:
        axis.legend(fontsize=7, markerscale=2, loc="best", framealpha=0.8)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(f"t-SNE of {len(embeddings)} embeddings", fontsize=10)
    figure.tight_layout()
    with atomic_files.atomic_path(path) as temporary:  # whole or absent
        figure.savefig(temporary, format="png", dpi=DPI)
    pyplot.close(figure)
    return path
