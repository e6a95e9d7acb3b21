"""Immutable sets of integers stored as sorted, disjoint, non-adjacent runs.

The guest page allocator hands out frames in order and the balloon gives them
back mostly in reverse, so the free frames of even a 64 GiB guest form a
handful of runs.  An update copies the tuple of runs: O(runs), not O(frames).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

Runs = tuple[tuple[int, int], ...]
"""Half-open runs ``(start, end)``, sorted, disjoint and never adjacent."""

INF = 1 << 80
"""Above every value: ``(v, INF)`` sorts after every run that starts at ``v``."""


def run_containing(runs: Runs, value: int) -> int:
    """Index of the run holding ``value``, or -1."""
    i = bisect_right(runs, (value, INF)) - 1
    if i >= 0 and runs[i][1] > value:
        return i
    return -1


def contains(runs: Runs, value: int) -> bool:
    """Whether ``value`` is in the set."""
    return run_containing(runs, value) >= 0


def overlaps(runs: Runs, start: int, end: int) -> bool:
    """Whether any value of ``[start, end)`` is in the set."""
    i = bisect_right(runs, (start, INF)) - 1
    if i >= 0 and runs[i][1] > start:
        return True
    return i + 1 < len(runs) and runs[i + 1][0] < end


def covers(runs: Runs, start: int, end: int) -> bool:
    """Whether every value of ``[start, end)`` is in the set."""
    i = run_containing(runs, start)
    return i >= 0 and runs[i][1] >= end


def add(runs: Runs, start: int, end: int) -> Runs:
    """The set with ``[start, end)`` added."""
    if start >= end:
        return runs
    lo = bisect_right(runs, (start, INF)) - 1
    if lo >= 0 and runs[lo][1] >= start:
        start = min(start, runs[lo][0])
    else:
        lo += 1
    hi = lo
    while hi < len(runs) and runs[hi][0] <= end:
        end = max(end, runs[hi][1])
        hi += 1
    return (*runs[:lo], (start, end), *runs[hi:])


def remove(runs: Runs, start: int, end: int) -> Runs:
    """The set with ``[start, end)`` taken out."""
    if start >= end or not runs:
        return runs
    lo = bisect_right(runs, (start, INF)) - 1
    if lo < 0 or runs[lo][1] <= start:
        lo += 1
    hi = lo
    pieces: list[tuple[int, int]] = []
    while hi < len(runs) and runs[hi][0] < end:
        s, e = runs[hi]
        if s < start:
            pieces.append((s, start))
        if e > end:
            pieces.append((end, e))
        hi += 1
    if lo == hi:
        return runs
    return (*runs[:lo], *pieces, *runs[hi:])


def remove_all(runs: Runs, spans: Iterable[tuple[int, int]]) -> Runs:
    """The set with every ``[start, end)`` of ``spans`` taken out: what :func:`remove`
    once per span gives, in one sweep over the sorted spans (O(spans log spans + runs),
    not O(spans * runs))."""
    cut = sorted((s, e) for s, e in spans if s < e)
    if not cut or not runs:
        return runs
    out: list[tuple[int, int]] = []
    j = 0
    for s, e in runs:
        while j < len(cut) and cut[j][1] <= s:
            j += 1
        cur, k = s, j
        while k < len(cut) and cut[k][0] < e and cur < e:
            cs, ce = cut[k]
            if cs > cur:
                out.append((cur, cs))
            cur = max(cur, ce)
            k += 1
        if cur < e:
            out.append((cur, e))
    return tuple(out)


def intersect(runs: Runs, start: int, end: int) -> Runs:
    """The part of the set inside ``[start, end)``."""
    out: list[tuple[int, int]] = []
    i = max(bisect_right(runs, (start, INF)) - 1, 0)
    while i < len(runs) and runs[i][0] < end:
        s, e = runs[i]
        s, e = max(s, start), min(e, end)
        if s < e:
            out.append((s, e))
        i += 1
    return tuple(out)


def first_aligned(runs: Runs, size: int) -> int | None:
    """The lowest multiple of ``size`` that starts ``size`` consecutive values of the set."""
    for s, e in runs:
        a = -(-s // size) * size
        if a + size <= e:
            return a
    return None


def count(runs: Runs) -> int:
    """Number of values in the set."""
    return sum(e - s for s, e in runs)
