"""Where ``vmballoon replay`` writes: safely, with its size known up front and progress shown.

- :func:`atomic_output`: a file is written as ``.NAME.PID.partial`` beside it and renamed
  to ``NAME`` only when the whole output is written; an interrupted or failed run removes
  the partial file, so no truncated file is ever left under the name asked for.
- :func:`estimate_itf`: the size of a replay's ITF before it is written.  An ITF holds
  every state's balloon lists, so it grows with states x balloon (the 64 GiB guest
  inflating 2 MiB pages to 48 GiB and back: 49,272 states, 5.4 GB).  The estimate
  walks the model once without writing (about 1 s for that scenario) and counts each
  state's list text as the writer would, by the list's head (O(1) per transition).
- :class:`Progress`: one line on stderr every few seconds once a write has run for a
  few seconds (the states done, of how many when known, and the bytes written).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import TextIO

from vmballoon.apps.nogc import cyclic_gc_paused
from vmballoon.apps.traces import ItfWriter, TraceStep, list_segments, walk
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import Variant
from vmballoon.model.plist import PList, iterate

ITF_LIMIT = 1_000_000_000
"""Bytes of ITF ``replay`` writes without ``--force`` (1 GB)."""

EVENT_BYTES = 110
"""About the ITF text of one event (an ``hv`` event is 90-130 characters)."""


def fmt_bytes(n: int) -> str:
    """``5.37 GB``, ``340.2 MB``, ``12.0 kB``, ``812 B`` (decimal units)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{n} B"


@contextmanager
def atomic_output(path: Path) -> Iterator[TextIO]:
    """A text stream that becomes ``path`` only if the block ends without an exception."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with tmp.open("w", encoding="utf-8") as stream:
            yield stream
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


class CountingStream:
    """A text sink that counts the characters written through it (ASCII: bytes)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.written = 0

    def write(self, text: str) -> int:
        """Write ``text`` to the wrapped stream."""
        self.written += len(text)
        return self.out.write(text)

    def flush(self) -> None:
        """Flush the wrapped stream."""
        self.out.flush()


class Progress:
    """Progress lines on ``stream``: the first after ``first`` seconds, then every ``every``."""

    def __init__(
        self,
        stream: TextIO,
        what: str,
        total: int | None = None,
        written: Callable[[], int] | None = None,
        first: float = 3.0,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.what = what
        self.total = total
        self.written = written
        self.every = every
        self.clock = clock
        self.start = clock()
        self.next = self.start + first
        self.lines = 0

    def line(self, done: int) -> str:
        """The progress line after ``done`` items."""
        if self.total:
            count = f"{done:,}/{self.total:,} {self.what} ({100 * done // self.total}%)"
        else:
            count = f"{done:,} {self.what}"
        size = f", {fmt_bytes(self.written())} written" if self.written is not None else ""
        return f"replay: {count}{size}, {self.clock() - self.start:.0f} s"

    def update(self, done: int) -> None:
        """Called after each item; prints when the next line is due."""
        now = self.clock()
        if now < self.next:
            return
        self.next = now + self.every
        self.lines += 1
        self.stream.write(self.line(done) + "\n")
        self.stream.flush()

    def follow(self, steps: Iterable[TraceStep]) -> Iterator[TraceStep]:
        """``steps``, with :meth:`update` called after each."""
        for done, item in enumerate(steps, start=1):
            yield item
            self.update(done)


class _ListChars:
    """The length of a persistent list's ITF text (``", "``-joined numbers), followed by
    the list's head as :class:`vmballoon.apps.traces._ListText` follows its text."""

    def __init__(self, num: Callable[[int], str]) -> None:
        self.num = num
        self.node: PList = None
        self.chars = 0

    def __call__(self, node: PList) -> int:
        old = self.node
        if node is old:
            return self.chars
        if node is None:
            chars = 0
        elif node[1] is old:  # a new head
            chars = len(self.num(node[0])) + (self.chars + 2 if old is not None else 0)
        elif old is not None and old[1] is node:  # the head was taken off
            chars = self.chars - len(self.num(old[0])) - 2
        else:
            items = [len(self.num(v)) for v in iterate(node)]
            chars = sum(items) + 2 * (len(items) - 1)
        self.node, self.chars = node, chars
        return chars


@dataclass(frozen=True)
class ItfEstimate:
    """What ``replay --format itf`` would write: its states and about how many bytes."""

    states: int
    bytes: int


def estimate_itf(scenario: Scenario, variant: Variant, checked: bool) -> ItfEstimate:
    """The states of the replay and the ITF's size, within a few percent (module doc)."""
    from vmballoon.apps.traces import _num

    lists = [[_ListChars(_num) for _ in range(3)] for _ in range(2)]
    total = states = 0
    base = 0
    with cyclic_gc_paused():
        for item in walk(scenario, variant, check=False):
            pages = 0
            for idx in (0, 1):
                for count, seg in zip(lists[idx], list_segments(item.state, idx), strict=True):
                    pages += count(seg)
            if states == 0:
                buf = StringIO()
                ItfWriter(buf).state(item, checked)
                base = len(buf.getvalue()) - pages + 2  # + the separator ",\n"
            total += base + pages + EVENT_BYTES * len(item.events)
            states += 1
    return ItfEstimate(states, total + 600)  # + the header and the end
