"""The set of pages on some kernel list (``page->lru`` linked), cheap for both page sizes.

``list_add`` must detect a page that is already on a list (``list_corrupt``), so
the model keeps the set of listed PFNs.  As plain runs of PFNs
(:mod:`vmballoon.intervals`) a balloon of 4 KiB pages is one run, but a
balloon of 2 MiB pages is one run *per page* (their PFNs are 512 apart): every
update then copies O(balloon) runs, and a 48 GiB inflation turns quadratic.

:data:`Listed` splits the set by alignment: ``aligned`` holds ``pfn >> 9`` for
the listed PFNs that are multiples of 512 (consecutive 2 MiB pages: one run),
``other`` the listed PFNs that are not.  Membership of a multiple of 512 is
only ever read from ``aligned``, so ``other`` may hold any multiple of 512 it
likes; it includes one when that bridges two of its runs, so that consecutive
4 KiB pages stay one run across 2 MiB boundaries.  The set's value is exact;
only the representation is chosen for speed.
"""

from __future__ import annotations

from vmballoon.core import intervals as iv

Listed = tuple[iv.Runs, iv.Runs]
"""``(aligned, other)``: see the module's docstring."""

EMPTY: Listed = ((), ())

_LOW = (1 << 9) - 1


def contains(listed: Listed, pfn: int) -> bool:
    """Whether page ``pfn`` is on a list."""
    if pfn & _LOW == 0:
        return iv.contains(listed[0], pfn >> 9)
    return iv.contains(listed[1], pfn)


def add(listed: Listed, pfn: int) -> Listed:
    """The set with page ``pfn`` added."""
    if pfn & _LOW == 0:
        return iv.add(listed[0], pfn >> 9, (pfn >> 9) + 1), listed[1]
    lo, hi = pfn, pfn + 1
    if (pfn - 1) & _LOW == 0:  # a don't-care neighbour: bridge to the run before it
        lo -= 1
    if (pfn + 1) & _LOW == 0:
        hi += 1
    return listed[0], iv.add(listed[1], lo, hi)


def remove(listed: Listed, pfn: int) -> Listed:
    """The set with page ``pfn`` taken out."""
    if pfn & _LOW == 0:
        return iv.remove(listed[0], pfn >> 9, (pfn >> 9) + 1), listed[1]
    other = listed[1]
    lo, hi = pfn, pfn + 1
    # drop a don't-care neighbour that no longer bridges anything
    if (pfn - 1) & _LOW == 0 and not iv.contains(other, pfn - 2):
        lo -= 1
    if (pfn + 1) & _LOW == 0 and not iv.contains(other, pfn + 2):
        hi += 1
    return listed[0], iv.remove(other, lo, hi)


def count_runs(listed: Listed) -> int:
    """Number of runs stored (a measure of the cost of an update)."""
    return len(listed[0]) + len(listed[1])
