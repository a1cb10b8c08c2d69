"""Progress of a command over many items: a bar on a terminal, a line per 10% in a log.

A tqdm bar redraws itself with carriage returns, which a terminal shows as one moving line but
a log file or a pipe (`cmd 2>&1 | tee log`, a batch scheduler) keeps as hundreds of fragments.
`Progress` therefore draws the bar only when its stream is a terminal, and otherwise writes
one plain line each time another tenth of the work is done (and at the end).
"""

from __future__ import annotations

import sys
import time

LINES = 10  # lines written over the whole work where no terminal shows a bar


class Progress:
    """Work done: a tqdm bar on a terminal, else one line per 10% (a log, a pipe).

    Args:
        total: items to do.
        name: what the bar and the lines are called (the command).
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
        self, total: int, name: str, enabled: bool = True, stream=None, unit: str = "image"
    ):
        self.total = total
        self.name = name
        self.unit = unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = time.perf_counter()
        self.next_line = 1  # in tenths (LINES) of the total
        self.bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
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
        total = max(self.total, 1)
        reached = self.done * LINES >= self.next_line * total or self.done >= self.total
        if not self.enabled or not reached:
            return
        self.next_line = self.done * LINES // total + 1
        seconds = time.perf_counter() - self.started
        done = f"{self.done}/{self.total} {self.unit}s"
        print(
            f"{self.name}: {self.done / total:4.0%} ({done}, {seconds:.1f} s)",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        """Closes the bar (lines need no closing)."""
        if self.bar is not None:
            self.bar.close()
