"""The frames the driver claims, kept up to date transition by transition.

:func:`vmballoon.model.properties.owners` lists every claim of ownership of a state
(the balloon lists, the refused lists, the batch page, the batch in flight); the
properties ``ownership`` and ``accounting`` read it.  Listing it after every
transition costs time proportional to the balloon, so a replay of a 24,576-page
inflation checked that way is quadratic.  :class:`Claims` keeps the same claims as
a multiset and, for each new state, applies only what changed:

* every source of claims is a persistent list (:mod:`vmballoon.model.plist`) or a
  single PFN; two versions of a list share their tail, so :func:`diff` finds what
  was pushed and popped by walking both heads until they meet (O(change));
* claims are indexed by 2 MiB bucket (``pfn >> 9``), so whether a new claim overlaps
  another is a look at three buckets, and the number of overlapping pairs is kept;
* a claim's first frame must be allocated: the claims whose first frame is free are
  counted, and when the memory changes only the frames newly freed are looked at.

The verdict (:meth:`Claims.owned_once_and_allocated`, the lengths of the balloon
lists) is the one the whole listing gives; the message of a violation is still
computed from the whole listing, once (:func:`vmballoon.model.properties.ownership`).
"""

from __future__ import annotations

from collections import Counter

from vmballoon.core import intervals as iv
from vmballoon.core.env import Memory
from vmballoon.core.protocol import PAGE_SHIFT, PAGES_PER_2M, U64_MASK
from vmballoon.model.plist import PList, iterate
from vmballoon.model.state import DEFLATE_LOCS, LOOP_LOCS, OPS_BASIC, OPS_BATCHED, Loc, State

Segments = tuple[PList, PList, PList]


def diff(old: PList, new: PList) -> tuple[list[int], list[int]]:
    """``(added, removed)``: the entries of ``new`` not in ``old`` and those of ``old`` not in
    ``new``, as persistent lists that share a tail; O(entries before the shared tail)."""
    if old is new:
        return [], []
    if new is not None and new[1] is old:  # one entry pushed: the common case
        return [new[0]], []
    if old is not None and old[1] is new:  # the head taken off
        return [], [old[0]]
    seen_old: dict[int, int] = {}
    seen_new: dict[int, int] = {}
    walked_old: list[int] = []
    walked_new: list[int] = []
    a, b = old, new
    while a is not None or b is not None:
        if a is not None:
            at = seen_new.get(id(a))
            if at is not None:
                return walked_new[:at], walked_old
            seen_old[id(a)] = len(walked_old)
            walked_old.append(a[0])
            a = a[1]
        if b is not None:
            at = seen_old.get(id(b))
            if at is not None:
                return walked_new, walked_old[:at]
            seen_new[id(b)] = len(walked_new)
            walked_new.append(b[0])
            b = b[1]
    return walked_new, walked_old


def list_segments(state: State, idx: int) -> Segments:
    """Balloon list ``idx`` head to tail as three persistent segments (their
    concatenation is ``balloon_pages(state)[idx]``): pages deflate put back at the
    head, the list itself, and the rest of a list that deflate is iterating."""
    pages = state.drv.pages[idx]
    loop = state.loop
    if int(loop.is_2m) != idx:
        return None, pages, None
    iterating = state.loc in DEFLATE_LOCS or (state.loc == Loc.CRASHED and loop.cursor is not None)
    return loop.readded, pages, loop.cursor if iterating else None


def _entry_pfn(entry: int) -> int:
    """The PFN a batch entry names (lines 179-185)."""
    return (entry & U64_MASK) >> PAGE_SHIFT


class Claims:
    """The claims of :func:`vmballoon.model.properties.owners` for the last state given to
    :meth:`update`, as a multiset with the facts ``ownership`` and ``accounting`` need."""

    def __init__(self, state: State) -> None:
        self.singles: dict[int, dict[int, int]] = {}  # bucket -> {pfn: claims of one frame}
        self.blocks: dict[int, dict[int, int]] = {}  # bucket -> {pfn: claims of 512 frames}
        self.pairs = 0  # pairs of claims that overlap
        self.unallocated: dict[int, int] = {}  # first frame not allocated -> claims there
        self.memory: Memory = state.env.memory
        self.lists: list[PList] = [None] * 8  # 3 segments per balloon list, 2 refused lists
        self.lengths = [0] * 8
        self.batch_page: int | None = None
        self.fill: PList = None  # the batch in flight, when it is the whole fill list
        self.fill_length = 0
        self.batch: list[int] = []  # the batch in flight otherwise
        self.batch_frames = 1
        self.update(state)

    # -- the multiset ----------------------------------------------------------------------
    def _overlapping(self, pfn: int, frames: int) -> int:
        """Claims in the multiset that share a frame with ``[pfn, pfn + frames)``."""
        n = 0
        end = pfn + frames
        if frames == 1:
            n += self.singles.get(pfn >> 9, {}).get(pfn, 0)
        else:
            for bucket in range(pfn >> 9, ((end - 1) >> 9) + 1):
                for s, k in self.singles.get(bucket, {}).items():
                    if pfn <= s < end:
                        n += k
        if not self.blocks:
            return n
        for bucket in range((pfn - PAGES_PER_2M + 1) >> 9, ((end - 1) >> 9) + 1):
            for s, k in self.blocks.get(bucket, {}).items():
                if s < end and s + PAGES_PER_2M > pfn:
                    n += k
        return n

    def _add(self, pfn: int, frames: int) -> None:
        self.pairs += self._overlapping(pfn, frames)
        index = self.singles if frames == 1 else self.blocks
        bucket = index.setdefault(pfn >> 9, {})
        bucket[pfn] = bucket.get(pfn, 0) + 1
        if not self.memory.allocated(pfn):
            self.unallocated[pfn] = self.unallocated.get(pfn, 0) + 1

    def _remove(self, pfn: int, frames: int) -> None:
        index = self.singles if frames == 1 else self.blocks
        bucket = index[pfn >> 9]
        if bucket[pfn] == 1:
            del bucket[pfn]
            if not bucket:
                del index[pfn >> 9]
        else:
            bucket[pfn] -= 1
        self.pairs -= self._overlapping(pfn, frames)
        if pfn in self.unallocated:
            if self.unallocated[pfn] == 1:
                del self.unallocated[pfn]
            else:
                self.unallocated[pfn] -= 1

    def _claims_at(self, pfn: int) -> int:
        return self.singles.get(pfn >> 9, {}).get(pfn, 0) + self.blocks.get(pfn >> 9, {}).get(
            pfn, 0
        )

    def _starts_in(self, start: int, end: int) -> list[int]:
        """First frames of claims in ``[start, end)``."""
        out: list[int] = []
        if end - start <= 8:  # a few frames (a page freed): look each one up
            for pfn in range(start, end):
                if self._claims_at(pfn):
                    out.append(pfn)
            return out
        for index in (self.singles, self.blocks):
            if (end - start) >> 9 > len(index):
                buckets = [b for b in index if start >> 9 <= b <= (end - 1) >> 9]
            else:
                buckets = list(range(start >> 9, ((end - 1) >> 9) + 1))
            for bucket in buckets:
                out.extend(s for s in index.get(bucket, {}) if start <= s < end)
        return out

    def _set_memory(self, memory: Memory) -> None:
        """Follow the allocator: claims on frames newly freed, claims on frames allocated again."""
        old = self.memory
        self.memory = memory
        if memory is old:
            return
        if (memory.base, memory.end) != (old.base, old.end):  # never in a replay
            self._recheck_all()
            return
        if self.unallocated:  # claims on frames allocated again: only those runs looked at
            for start, end in _newly_free(memory.free, old.free):
                self._allocated_again(start, end)
        for start, end in _newly_free(old.free, memory.free):
            for pfn in set(self._starts_in(start, end)):
                self.unallocated[pfn] = self._claims_at(pfn)

    def _allocated_again(self, start: int, end: int) -> None:
        """Frames ``[start, end)`` were free and are allocated now: no claim there is on an
        unallocated frame any more."""
        if end - start <= len(self.unallocated):
            for pfn in range(start, end):
                self.unallocated.pop(pfn, None)
        else:
            for pfn in [p for p in self.unallocated if start <= p < end]:
                del self.unallocated[pfn]

    def _recheck_all(self) -> None:
        self.unallocated = {}
        for index in (self.singles, self.blocks):
            for bucket in index.values():
                for pfn in bucket:
                    if not self.memory.allocated(pfn):
                        self.unallocated[pfn] = self._claims_at(pfn)

    # -- the sources -----------------------------------------------------------------------
    def _follow(self, slot: int, node: PList, frames: int, pfn_of: bool = False) -> None:
        if self.lists[slot] is node:
            return
        added, removed = diff(self.lists[slot], node)
        for p in removed:
            self._remove(_entry_pfn(p) if pfn_of else p, frames)
        for p in added:
            self._add(_entry_pfn(p) if pfn_of else p, frames)
        self.lists[slot] = node
        self.lengths[slot] += len(added) - len(removed)

    def update(self, state: State) -> None:
        """The claims of ``state`` (any state: the diff is taken against the last one)."""
        self._set_memory(state.env.memory)
        for idx in (0, 1):
            frames = PAGES_PER_2M if idx else 1
            for k, node in enumerate(list_segments(state, idx)):
                self._follow(3 * idx + k, node, frames)
            self._follow(6 + idx, state.drv.refused[idx], frames)
        bp = state.drv.batch_page
        if bp != self.batch_page:
            if self.batch_page is not None:
                self._remove(self.batch_page, 1)
            if bp is not None:
                self._add(bp, 1)
            self.batch_page = bp
        self._follow_batch(state)

    def _follow_batch(self, state: State) -> None:
        """The batch in flight (:func:`vmballoon.model.properties.in_flight`)."""
        loop, drv = state.loop, state.drv
        frames = PAGES_PER_2M if loop.is_2m and drv.ops == OPS_BATCHED else 1
        n = loop.num_pages if state.loc in LOOP_LOCS else 0
        fill: PList = None
        batch: list[int] = []
        if n and drv.ops == OPS_BASIC:
            batch = [] if drv.page is None else [drv.page]
        elif n:
            fill = loop.fill
        if frames != self.batch_frames or batch or self.batch:
            self._drop_batch()
            self.batch_frames = frames
        if batch:
            for p in batch:
                self._add(p, frames)
            self.batch = batch
            return
        added, removed = diff(self.fill, fill)
        length = self.fill_length + len(added) - len(removed)
        if fill is not None and length != n:  # not the whole fill list: list the batch
            self._drop_batch()
            entries = list(iterate(fill))
            entries.reverse()
            self.batch = [_entry_pfn(e) for e in entries[:n]]
            for p in self.batch:
                self._add(p, frames)
            return
        if added and removed:  # a batch rebuilt from the batch page: mostly the same entries
            added, removed = _net(added, removed)
        for e in removed:
            self._remove(_entry_pfn(e), frames)
        for e in added:
            self._add(_entry_pfn(e), frames)
        self.fill, self.fill_length = fill, length

    def _drop_batch(self) -> None:
        for e in iterate(self.fill):
            self._remove(_entry_pfn(e), self.batch_frames)
        for p in self.batch:
            self._remove(p, self.batch_frames)
        self.fill, self.fill_length, self.batch = None, 0, []

    # -- the facts -------------------------------------------------------------------------
    def owned_once_and_allocated(self) -> bool:
        """No frame has two owners and every claim's first frame is allocated."""
        return self.pairs == 0 and not self.unallocated

    def balloon_lengths(self) -> tuple[int, int]:
        """Pages on the 4 KiB and on the 2 MiB balloon list (``balloon_pages``' lengths)."""
        return sum(self.lengths[0:3]), sum(self.lengths[3:6])


def _net(added: list[int], removed: list[int]) -> tuple[list[int], list[int]]:
    """``added`` and ``removed`` without the entries they share (as multisets): the claims
    after removing and adding are the same, the multiset is all they are a function of."""
    plus, minus = Counter(added), Counter(removed)
    return list((plus - minus).elements()), list((minus - plus).elements())


def _newly_free(old: iv.Runs, new: iv.Runs) -> list[tuple[int, int]]:
    """The runs of frames free in ``new`` and not in ``old``."""
    lo = 0
    while lo < len(old) and lo < len(new) and old[lo] == new[lo]:
        lo += 1
    hi_old, hi_new = len(old), len(new)
    while hi_old > lo and hi_new > lo and old[hi_old - 1] == new[hi_new - 1]:
        hi_old -= 1
        hi_new -= 1
    out: list[tuple[int, int]] = []
    before = old[lo:hi_old]
    for s, e in new[lo:hi_new]:
        i = iv.run_containing(before, s)
        if i >= 0 and before[i][1] >= e:  # inside a run free before (an allocation shrank it)
            continue
        rest: iv.Runs = ((s, e),)
        for os, oe in iv.intersect(before, s, e):
            rest = iv.remove(rest, os, oe)
        out.extend(rest)
    return out
