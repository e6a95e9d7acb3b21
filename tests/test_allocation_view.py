"""What α reads of the allocator for a frame ``f`` (``f_alloc``, ``f_o9``), as property
conformance computes it for many frames at once
(:func:`vmballoon.proofs.abstraction.allocation_in`), against the allocator's own
reading (:meth:`vmballoon.core.env.Memory.allocated` and the runs of
:mod:`vmballoon.core.intervals`)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmballoon.core import intervals as iv
from vmballoon.core.env import Memory
from vmballoon.proofs.abstraction import NotRepresentable, allocation_in


def runs_of(values: Iterable[int]) -> iv.Runs:
    """The frames ``values`` (any order) as the allocator's runs."""
    runs: iv.Runs = ()
    for v in values:
        runs = iv.add(runs, v, v + 1)
    return runs


FRAMES = st.integers(0, 3 * 512)
memories = st.builds(
    lambda base, n, free, blocks, orphans: Memory(
        base, base + n, runs_of(free), runs_of(blocks), runs_of(orphans)
    ),
    FRAMES,
    FRAMES,
    st.lists(FRAMES, max_size=40),
    st.lists(st.integers(0, 3), max_size=3),
    st.lists(FRAMES, max_size=3),
)


@settings(max_examples=300, derandomize=True)
@given(memories, st.lists(FRAMES | st.sampled_from([0, 512, 1024, 1536]), max_size=30))
def test_the_allocation_of_many_frames_is_the_allocators(mem: Memory, frames: list[int]) -> None:
    of = allocation_in(mem)
    for f in frames:
        if iv.contains(mem.orphans, f):
            with pytest.raises(NotRepresentable):
                of(f)
            continue
        in_block = iv.contains(mem.blocks, f >> 9)
        o9 = in_block and f % 512 == 0
        allocated = mem.allocated(f) and (o9 or not in_block)
        assert of(f) == (allocated, allocated and o9), f
