"""`embed`: the embedding of every image of a folder, written for a vector database.

```
OUTPUT/embeddings.npy   float32 (N, dims): row i is the embedding of row i of index.csv
OUTPUT/index.csv        row,path,label: path relative to --data_dir, label its class folder
```

The embedding is the one `export` serves as `embedding`: the run's `embedding_model()`
(`model.keras` itself for a plain Keras model), cast to float32 and L2-normalised, computed
by the export's own module; `--nonormalize` keeps the representation unnormalised, as
`evaluate`'s features. Each file is decoded as the export's `embed_bytes` signature decodes
bytes (alpha dropped, converted to the model's channels, resized to its input size with
antialiased bilinear, pixel-exact at that size), so a row equals `embed_bytes` of that file.

Every image at any depth of --data_dir is embedded, in the order `list_image_files` lists them
(a folder's files sorted, then its sub-folders): `label` is the first sub-folder of its path
(`cats` for `cats/a/1.png`), empty for images directly in --data_dir; `path` is the id that
`export --gallery_dir` gives the same file. Images stream through `tf.data` in batches of
--batch_size: one batch is embedded at a time, and its rows go straight to the files (a
memory-mapped `.npy` and the CSV), so memory does not grow with the folder. Both files are
written under temporary names in OUTPUT and renamed once complete, index.csv first and
embeddings.npy last (after removing the previous embeddings.npy with --overwrite): a kill
leaves no half file, and an embeddings.npy that exists always matches index.csv.

Bad images follow the folder readers' policy (`train --on_error`): every file's header is
checked before the model loads, and by default a file that is not a complete image, is empty,
cut short or damaged inside, or has more than --max_pixels pixels stops the command with one
`error:` line naming it (exit status 2), and nothing is written. `--on_error=skip` leaves such
files out, naming them in a warning; they get no row in either file.
"""

from __future__ import annotations

import contextlib
import csv
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from absl import app, flags

from keras_siamese import atomic_files
from keras_siamese.cli import progress_lines, run_dir

USAGE = "embed --model_dir=RUN --data_dir=FOLDER --output=DIR [flags]"
SUMMARY = "Embed every image of a folder: DIR/embeddings.npy and DIR/index.csv."
EMBEDDINGS = "embeddings.npy"
INDEX = "index.csv"
INDEX_COLUMNS = ("row", "path", "label")


def define_flags(values: flags.FlagValues) -> None:
    """Defines the flags of `embed` in `values`."""
    define = {"flag_values": values}
    flags.DEFINE_string("model_dir", "", "Run directory written by `train` (required).", **define)
    flags.DEFINE_string(
        "data_dir",
        "",
        "Folder of PNG/JPEG/BMP/GIF images, at any depth; the first sub-folder of a path is "
        "its label (required).",
        **define,
    )
    flags.DEFINE_string(
        "output",
        "",
        f"Directory to write {EMBEDDINGS} and {INDEX} to, created if missing (required).",
        **define,
    )
    flags.DEFINE_integer(
        "batch_size", 256, "Images read and embedded at a time.", lower_bound=1, **define
    )
    flags.DEFINE_bool("overwrite", False, f"Replace the {EMBEDDINGS} of --output.", **define)
    flags.DEFINE_bool(
        "normalize",
        True,
        "L2-normalise the embeddings, as the export serves them (false: the raw "
        "representation, as evaluate's features).",
        **define,
    )
    flags.DEFINE_enum(
        "on_error",
        "raise",
        ["raise", "skip"],
        "Unreadable or too large images: raise (naming them, nothing written) or skip "
        "(named in a warning, left out of both files).",
        **define,
    )
    flags.DEFINE_integer(
        "max_pixels",
        4096 * 4096,
        "Images with more pixels (width x height, read from the header before decoding) are "
        "bad files, per --on_error (0: no limit).",
        lower_bound=0,
        **define,
    )
    flags.DEFINE_bool(
        "progress", True, "Show a progress bar (a line per 10% when not a terminal).", **define
    )


def _required(options: dict, name: str) -> str:
    if not options[name]:
        raise app.UsageError(f"--{name} is required. Received: --{name}=''")
    return options[name]


def check_options(options: dict) -> tuple[str, str, str]:
    """The checks that need no TensorFlow: the run, the folder and the output directory.

    Returns:
        `(model_dir, data_dir, output)`.

    Raises:
        absl.app.UsageError: naming the flag at fault.
    """
    model_dir = run_dir.require_model_dir(options["model_dir"])
    run_dir.read_config(model_dir)  # refuses a folder that holds no run
    data_dir, output = _required(options, "data_dir"), _required(options, "output")
    if not os.path.isdir(data_dir):
        raise app.UsageError(
            f"--data_dir must be an existing folder of images. Received: --data_dir={data_dir}"
        )
    if os.path.exists(output) and not os.path.isdir(output):
        raise app.UsageError(
            f"--output must be a directory, but it is a file. Received: --output={output}"
        )
    if os.path.exists(os.path.join(output, EMBEDDINGS)) and not options["overwrite"]:
        raise app.UsageError(
            f"--output already holds {EMBEDDINGS}; pass --overwrite to replace it and {INDEX}, "
            f"or choose another --output. Received: --output={output}"
        )
    return model_dir, data_dir, output


def label_of(relative_path: str) -> str:
    """The class of a path relative to --data_dir: its first folder, or '' at the top."""
    parts = relative_path.replace(os.sep, "/").split("/")
    return parts[0] if len(parts) > 1 else ""


def list_images(data_dir: str, on_error: str, max_pixels: int) -> list[str]:
    """Every image under `data_dir` whose header checks out, as absolute paths, in order."""
    from keras_siamese import datasets
    from keras_siamese.cli import data

    try:
        files = datasets.list_image_files(
            data_dir, labels=None, on_error=on_error, max_pixels=max_pixels or None
        )
    except (ValueError, TypeError) as error:
        raise data.usage_error(error, f"--data_dir={data_dir}") from error
    return list(files.file_paths)


def embedding_function(model: Any, normalize: bool) -> tuple[Callable, tuple[int, int, int], int]:
    """What the export serves, as one traced function over uint8 batches.

    Returns:
        `(embed, image_shape, dims)`: `embed` maps uint8 `[B, H, W, C]` to float32 `[B, dims]`.

    Raises:
        absl.app.UsageError: for a model the export could not serve from encoded images.
    """
    import tensorflow as tf

    from keras_siamese.export import checks, module

    try:
        embedding_model = checks.resolve_embedding_model(model)
        image_shape = checks.image_shape_of(embedding_model)
    except (TypeError, ValueError) as error:
        raise app.UsageError(f"The run's model cannot be embedded: {error}") from error
    if image_shape[2] not in (1, 3):
        raise app.UsageError(
            "embed decodes images as the export's embed_bytes does, to 1 or 3 channels, but "
            f"the model takes {image_shape[2]}. Received: input shape {image_shape}"
        )
    dims = checks.embedding_dims_of(embedding_model)
    served = module.ExportModule(
        embedding_model, image_shape, dims, checks.model_distance(model)[0]
    )
    embed = served.embed if normalize else served.representation
    return tf.function(embed, reduce_retracing=True), image_shape, dims


def image_batches(file_paths: Sequence[str], image_shape: tuple[int, int, int], options: dict):
    """A `tf.data` stream of `(uint8 images [B, H, W, C], int64 positions [B])`.

    Files are read in parallel and decoded as `embed_bytes` decodes them; a file the decoder
    rejects stops the stream naming it (`--on_error=raise`) or is left out, its position
    missing from the stream (`skip`).
    """
    import numpy as np
    import tensorflow as tf

    from keras_siamese.datasets import streaming
    from keras_siamese.export import preprocess

    max_pixels = options["max_pixels"] or None

    def read(element):
        image_bytes = tf.io.read_file(element["path"])
        return preprocess.decode_image(image_bytes, image_shape, max_pixels, element["path"])

    positions = np.arange(len(file_paths), dtype=np.int64)
    elements = {"path": np.asarray(file_paths)}
    return streaming.stream(
        elements, read, positions, options["batch_size"], False, 0, options["on_error"]
    )


@contextlib.contextmanager
def _memory_mapped(file_path: str, rows: int, dims: int) -> Iterator:
    """A float32 `.npy` of `(rows, dims)` mapped at `file_path`, flushed after a clean exit.

    Only the pages written lately stay in memory: the OS writes them back to the file.
    """
    from numpy.lib import format as npy_format

    array = npy_format.open_memmap(file_path, mode="w+", dtype="float32", shape=(rows, dims))
    yield array
    array.flush()


def _shrink(file_path: str, rows: int, dims: int, chunk_rows: int) -> None:
    """Keeps the first `rows` rows of the `.npy` at `file_path` (copied in chunks)."""
    import numpy as np

    smaller = atomic_files.temporary_name(file_path)
    try:
        with _memory_mapped(smaller, rows, dims) as target:
            source = np.load(file_path, mmap_mode="r")
            for start in range(0, rows, chunk_rows):
                target[start : start + chunk_rows] = source[start : start + chunk_rows]
            del source
        os.replace(smaller, file_path)
    finally:
        if os.path.exists(smaller):
            os.remove(smaller)


def _decode_failure(error, file_paths: Sequence[str], data_dir: str) -> app.UsageError:
    """The stream's failure (which names the file in quotes) as one usage error line."""
    message = getattr(error, "message", str(error))
    named = [path for path in file_paths if f'"{path}"' in message or f'\\"{path}\\"' in message]
    if not named:
        return app.UsageError(f"--data_dir={data_dir}: {message.strip().splitlines()[0]}")
    return app.UsageError(
        f"--data_dir={data_dir}: {named[0]} could not be read or decoded (its header is "
        "fine, its image data are not). Replace or remove it, or pass --on_error=skip to "
        "leave such files out. Received: --on_error=raise"
    )


def write_rows(
    batches: Iterable,
    embed: Callable,
    file_paths: Sequence[str],
    data_dir: str,
    npy_path: str,
    csv_path: str,
    dims: int,
    progress: progress_lines.Progress,
) -> list[int]:
    """Embeds each batch and writes its rows to the `.npy` and the CSV at once.

    Returns:
        The positions (in `file_paths`) of the rows written, in order.
    """
    import numpy as np
    import tensorflow as tf

    written: list[int] = []
    with (
        _memory_mapped(npy_path, len(file_paths), dims) as array,
        open(csv_path, "w", encoding="utf-8", newline="") as file,
    ):
        writer = csv.writer(file)
        writer.writerow(INDEX_COLUMNS)
        try:
            for images, positions in batches:
                rows = np.asarray(embed(images), np.float32)
                start = len(written)
                array[start : start + len(rows)] = rows
                positions = positions.numpy().tolist()
                for position in positions:
                    relative = os.path.relpath(file_paths[position], data_dir)
                    writer.writerow((len(written), relative, label_of(relative)))
                    written.append(position)
                progress.update(positions[-1] + 1 - progress.done)  # skipped files count too
        except tf.errors.OpError as error:
            raise _decode_failure(error, file_paths, data_dir) from None
        progress.update(len(file_paths) - progress.done)  # files skipped at the end
        file.flush()
        os.fsync(file.fileno())
    return written


def _warn_skipped(file_paths: Sequence[str], written: Sequence[int], data_dir: str) -> None:
    kept = set(written)
    skipped = [path for position, path in enumerate(file_paths) if position not in kept]
    if skipped:
        shown = "\n  ".join(skipped[:5]) + ("\n  ..." if len(skipped) > 5 else "")
        warnings.warn(
            f"Skipped {len(skipped)} of {len(file_paths)} files under {data_dir} that could "
            f"not be decoded (--on_error=skip):\n  {shown}",
            stacklevel=2,
        )


def write_embeddings(
    batches: Iterable,
    embed: Callable,
    file_paths: Sequence[str],
    data_dir: str,
    output: str,
    dims: int,
    options: dict,
) -> int:
    """Writes OUTPUT/index.csv then OUTPUT/embeddings.npy, each whole; returns the rows."""
    npy_target, csv_target = os.path.join(output, EMBEDDINGS), os.path.join(output, INDEX)
    progress = progress_lines.Progress(len(file_paths), "embed", options["progress"])
    try:
        with (
            atomic_files.atomic_path(npy_target) as npy_path,
            atomic_files.atomic_path(csv_target) as csv_path,
        ):
            written = write_rows(
                batches, embed, file_paths, data_dir, npy_path, csv_path, dims, progress
            )
            if not written:
                shown = ", ".join(file_paths[:3]) + (", ..." if len(file_paths) > 3 else "")
                raise app.UsageError(
                    f"No image under --data_dir could be decoded; all {len(file_paths)} were "
                    f"skipped ({shown}). Received: --data_dir={data_dir}"
                )
            if len(written) < len(file_paths):
                _shrink(npy_path, len(written), dims, options["batch_size"])
            if os.path.exists(npy_target):  # --overwrite: never an old one beside a new CSV
                os.remove(npy_target)
    finally:
        progress.close()
    _warn_skipped(file_paths, written, data_dir)
    return len(written)


def run(values: flags.FlagValues) -> int:
    """Runs `embed` with parsed flags; returns the exit code."""
    options = {name: values[name].value for name in values}
    model_dir, data_dir, output = check_options(options)
    file_paths = list_images(data_dir, options["on_error"], options["max_pixels"])
    model = run_dir.load_model(model_dir)
    embed, image_shape, dims = embedding_function(model, options["normalize"])
    created = not os.path.isdir(output)
    os.makedirs(output, exist_ok=True)
    atomic_files.remove_stale(output)
    batches = image_batches(file_paths, image_shape, options)
    try:
        rows = write_embeddings(batches, embed, file_paths, data_dir, output, dims, options)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(output)  # only if empty: a failed run leaves nothing behind
        raise
    print(
        f"Wrote {rows} embeddings of {dims} dimensions: {os.path.join(output, EMBEDDINGS)} "
        f"and {os.path.join(output, INDEX)}"
    )
    return 0
