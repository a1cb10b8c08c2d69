"""Progress of a command over many items: a bar on a terminal, a line per 10% in a log.

A tqdm bar redraws itself with carriage returns, which a terminal shows as one moving line but
a log file or a pipe (`cmd 2>&1 | tee log`, a batch scheduler) keeps as hundreds of fragments.
`Progress` therefore draws the bar only when its stream is a terminal, and otherwise writes
one plain line each time another tenth of the work is done (and at the end). `embed` shows its
images this way, and `evaluate` the features of its memory and test sets and the linear
probe's epochs (the library's `extract_features` and `linear_probe_on_features` report to
a `Progress` given as their `progress=`).

`train` follows the same rule through Keras: `fit_verbose("auto")` is 1 (Keras' progress bar
within each epoch, with steps and ETA) when standard output is a terminal, else 2 (one line
per epoch).
"""

from __future__ import annotations

import sys
import time

LINES = 10  # lines written over the whole work where no terminal shows a bar
AUTO = "auto"  # `train --verbose`: the progress bar on a terminal, else a line per epoch
PROGRESS_BAR = 1  # Keras fit's verbose: a bar redrawn within each epoch (steps, ETA)
EPOCH_LINES = 2  # Keras fit's verbose: one line per epoch


def is_terminal(stream) -> bool:
    """Whether `stream` is a terminal (False for files, pipes and streams without `isatty`)."""
    try:
        return bool(getattr(stream, "isatty", lambda: False)())
    except (ValueError, OSError):  # a closed or detached stream
        return False


def fit_verbose(flag, stream=None) -> int:
    """Keras fit's `verbose` from `train --verbose`.

    Args:
        flag: `"auto"`, or 0, 1 or 2 (as a string or an integer; kept as Keras reads them).
        stream: where Keras prints its progress (standard output by default).

    Returns:
        `flag` as an integer; for `"auto"`, 1 (the progress bar) when `stream` is a terminal,
        else 2 (one line per epoch: a log file or a pipe keeps no carriage-return fragments).
    """
    if flag == AUTO:
        stream = sys.stdout if stream is None else stream
        return PROGRESS_BAR if is_terminal(stream) else EPOCH_LINES
    return int(flag)


class Progress:
    """Work done: a tqdm bar on a terminal, else one line per 10% (a log, a pipe).

    With an unknown total the bar counts without a percentage, and a log gets one line when
    the work is closed. Closing also writes the last count when work stopped short of the total.

    Args:
        total: items to do (None: unknown).
        name: what the bar and the lines are called (the command, or its step).
        enabled: False shows nothing.
        stream: where to write (standard error by default).
        unit: what an item is, for the messages.

    Example:
        >>> progress = Progress(200, "embed")
        >>> progress.update(100)
        embed:  50% (100/200 images, 0.1 s)
        >>> progress.close()
    """

    def __init__(
        self,
        total: int | None,
        name: str,
        enabled: bool = True,
        stream=None,
        unit: str = "image",
    ):
        self.total = total
        self.name = name
        self.unit = unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self.written = 0  # `done` at the last line written
        self.started = time.perf_counter()
        self.next_line = 1  # in tenths (LINES) of the total
        self.bar = None
        if enabled and is_terminal(self.stream):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=name, unit=unit, file=self.stream)

    def update(self, count: int) -> None:
        """Adds `count` items done."""
        if count <= 0:
            return
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
            return
        if self.total is None:
            return
        total = max(self.total, 1)
        reached = self.done * LINES >= self.next_line * total or self.done >= self.total
        if not self.enabled or not reached:
            return
        self.next_line = self.done * LINES // total + 1
        self._write_line()

    def _write_line(self) -> None:
        seconds = time.perf_counter() - self.started
        if self.total is None:
            line = f"{self.name}: {self.done} {self.unit}s ({seconds:.1f} s)"
        else:
            done = f"{self.done}/{self.total} {self.unit}s"
            line = f"{self.name}: {self.done / max(self.total, 1):4.0%} ({done}, {seconds:.1f} s)"
        print(line, file=self.stream, flush=True)
        self.written = self.done

    def close(self) -> None:
        """Closes the bar, or writes the count not yet written (an unknown total, a stop)."""
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.done > self.written:
            self._write_line()
