"""The host's held frames as the ghost keeps them (vmballoon/model/frameset.py).

A :class:`FrameSet` is a set: after any sequence of additions and removals it holds
what a ``frozenset`` built the same way holds, compares and hashes equal to it, and
every set a change was made from still holds what it held (the ghost of an earlier
state must not move when a later one changes).
"""

from __future__ import annotations

from math import isqrt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmballoon.model.frameset import EMPTY, FrameSet

OPS = st.lists(st.tuples(st.booleans(), st.integers(0, 300)), max_size=400)


@settings(max_examples=200, derandomize=True)
@given(start=st.frozensets(st.integers(0, 300), max_size=200), ops=OPS)
def test_a_frameset_is_the_set_its_changes_make_and_its_past_stays(
    start: frozenset[int], ops: list[tuple[bool, int]]
) -> None:
    fs, want = FrameSet(start), start
    past: list[tuple[FrameSet, frozenset[int]]] = []
    for add, pfn in ops:
        past.append((fs, want))
        fs, want = (fs.with_frame(pfn), want | {pfn}) if add else (fs.without(pfn), want - {pfn})
        assert len(fs) == len(want)
        assert (pfn in fs) == add
    assert fs == want and want == fs and hash(fs) == hash(want)
    assert set(fs) == want and fs.frozen() == want
    assert all(x in fs for x in want) and not any(x in fs for x in range(301) if x not in want)
    for old, held in past:
        assert old == held, "a change moved a set it was made from"


@pytest.mark.parametrize("size", [0, 10_000])
def test_changes_share_the_set_until_they_outgrow_its_square_root(size: int) -> None:
    """What makes a change cheap: up to max(32, isqrt(n)) changes are kept beside the
    frames they were made to, which every later set shares; the next change folds them
    in (one copy of the set)."""
    start = FrameSet(range(size))
    room = max(32, isqrt(size))
    fs = start
    for k in range(room):
        fs = fs.with_frame(size + k)
        assert fs._base is start._base and len(fs._plus) == k + 1, f"copied after {k + 1}"
    fs = fs.with_frame(-1)
    assert fs._base is not start._base and not fs._plus and not fs._minus
    assert fs == frozenset(range(size + room)) | {-1}


def test_a_frameset_does_not_follow_the_set_it_was_made_from() -> None:
    frames = {1, 2}
    fs = FrameSet(frames)
    frames.add(3)
    assert 3 not in fs and len(fs) == 2 and hash(fs) == hash(frozenset({1, 2}))


def test_set_operations_give_plain_sets() -> None:
    fs = EMPTY.with_frame(3).with_frame(5)
    assert fs | {7} == frozenset({3, 5, 7}) and fs - {3} == frozenset({5})
    assert min(fs) == 3 and bool(fs) and not EMPTY
    assert FrameSet.of(fs) is fs and FrameSet.of({1}) == {1}
