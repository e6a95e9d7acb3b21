"""The host's held frames as the ghost keeps them (vmballoon/model/frameset.py).

A :class:`FrameSet` is a set: after any sequence of additions and removals it holds
what a ``frozenset`` built the same way holds, compares and hashes equal to it, and
every set a change was made from still holds what it held (the ghost of an earlier
state must not move when a later one changes).
"""

from __future__ import annotations

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


def test_set_operations_give_plain_sets() -> None:
    fs = EMPTY.with_frame(3).with_frame(5)
    assert fs | {7} == frozenset({3, 5, 7}) and fs - {3} == frozenset({5})
    assert min(fs) == 3 and bool(fs) and not EMPTY
    assert FrameSet.of(fs) is fs and FrameSet.of({1}) == {1}
