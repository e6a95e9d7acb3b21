"""Persistent stacks: the kernel's ``list_head`` lists as immutable cons cells.

``list_add`` (insert at the head) and taking the head are O(1) and share the
tail; iteration starts at the head, as ``list_for_each_entry`` does.
"""

from __future__ import annotations

from collections.abc import Iterator

PList = tuple[int, "PList"] | None
"""``None`` is the empty list; ``(pfn, rest)`` a list whose head is ``pfn``."""

EMPTY: PList = None


def push(lst: PList, pfn: int) -> PList:
    """``list_add``: ``pfn`` becomes the head."""
    return (pfn, lst)


def iterate(lst: PList) -> Iterator[int]:
    """The PFNs from head to tail."""
    while lst is not None:
        yield lst[0]
        lst = lst[1]


_RECENT: dict[int, tuple[PList, list[int]]] = {}
"""The last lists :func:`to_list` walked, by the identity of their head cell (kept with
them, so that the identity cannot be reused): the checkers read the same lists of one
state several times over."""
_RECENT_SIZE = 8


def to_list(lst: PList) -> list[int]:
    """The PFNs from head to tail, as a new Python list."""
    if lst is None:
        return []
    hit = _RECENT.get(id(lst))  # the cell is kept with its walk: the same cell
    if hit is not None:
        return list(hit[1])
    head, out = lst, []
    while lst is not None:
        out.append(lst[0])
        lst = lst[1]
    if len(_RECENT) >= _RECENT_SIZE:
        del _RECENT[next(iter(_RECENT))]
    _RECENT[id(head)] = (head, out)
    return list(out)


def from_iterable(pfns: list[int], rest: PList = None) -> PList:
    """The list whose head-to-tail order is ``pfns`` (followed by ``rest``, shared)."""
    out: PList = rest
    for pfn in reversed(pfns):
        out = (pfn, out)
    return out


def concat(front: PList, back: PList) -> PList:
    """``front`` followed by ``back``; costs O(len(front))."""
    out = back
    for pfn in reversed(to_list(front)):
        out = (pfn, out)
    return out


def drop(lst: PList, n: int) -> PList:
    """The list without its first ``n`` entries (shared)."""
    for _ in range(n):
        assert lst is not None
        lst = lst[1]
    return lst


def length(lst: PList) -> int:
    """Number of entries (O(n); used by reports and tests, never by transitions)."""
    n = 0
    while lst is not None:
        n += 1
        lst = lst[1]
    return n
