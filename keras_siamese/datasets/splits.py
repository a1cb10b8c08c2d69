"""TFDS-style split strings for the local arrays: `"train[:1000]"`, `"test[:10%]"`, `"a+b"`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

_SPLIT_PART = re.compile(r"^(?P<name>\w+)(?:\[(?P<start>[^:\]]*):(?P<stop>[^:\]]*)\])?$")
_SPLIT_BOUND = re.compile(r"^(?P<value>-?\d+)(?P<percent>%?)$")


class SplitPart(NamedTuple):
    """One `+`-separated part of a split: a split name and raw slice bounds ("" when absent)."""

    name: str
    start: str
    stop: str


def parse_split(split: str, names: Iterable[str], dataset: str) -> list[SplitPart]:
    """Parses `split` into parts whose names are among `names` (the dataset's splits)."""
    names = tuple(names)
    parts = []
    for text in split.replace(" ", "").split("+"):
        match = _SPLIT_PART.match(text)
        if match is None or match["name"] not in names:
            quoted = " or ".join(repr(name) for name in names)
            raise ValueError(
                f"`split` for {dataset!r} must be {quoted}, optionally sliced "
                "as in 'train[:1000]', 'train[1000:]', 'test[10:20]' or 'test[:10%]', or "
                f"joined with '+'. Received: split={split!r}"
            )
        parts.append(SplitPart(match["name"], match["start"] or "", match["stop"] or ""))
    return parts


def _bound(text: str, count: int, split: str) -> int | None:
    if not text:
        return None
    match = _SPLIT_BOUND.match(text)
    if match is None:
        raise ValueError(
            "Slice bounds in `split` must be integers or percentages such as 10%. "
            f"Received: split={split!r}"
        )
    value = int(match["value"])
    if not match["percent"]:
        return value
    if not -100 <= value <= 100:
        raise ValueError(
            f"Percentages in `split` must be between -100% and 100%. Received: split={split!r}"
        )
    return round(value * count / 100)


def select(count: int, part: SplitPart, split: str) -> range:
    """The indices of `count` examples that `part` selects (never empty)."""
    indices = range(count)
    selected = indices[_bound(part.start, count, split) : _bound(part.stop, count, split)]
    if len(selected) == 0:
        raise ValueError(
            f"`split` selects no examples from the {count} of {part.name!r}. "
            f"Received: split={split!r}"
        )
    return selected
