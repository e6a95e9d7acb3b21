"""The fast verdict of the ``ownership`` property equals the claim-by-claim scan.

``ownership`` runs after every transition, so it decides by sorting
(:func:`owned_once_and_allocated`) and scans claim by claim only for the message
(:func:`first_ownership_fault`). The two must agree on every set of claims: two
owners of one frame, a 4 KiB page inside a 2 MiB block, blocks that overlap by one
frame, a claim outside the pool or on a free frame.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vmballoon.core import intervals as iv
from vmballoon.core.env import Memory
from vmballoon.core.protocol import PAGES_PER_2M
from vmballoon.model.properties import first_ownership_fault, owned_once_and_allocated

BASE = 1000
END = BASE + 4 * PAGES_PER_2M

claim = st.tuples(
    st.sampled_from(["pages4k", "pages2m", "refused4k", "batch", "batch_page"]),
    st.integers(BASE - 3, END + 3),
    st.sampled_from([1, PAGES_PER_2M]),
)


@st.composite
def memories(draw: st.DrawFn) -> Memory:
    free: iv.Runs = ()
    for start, length in draw(
        st.lists(st.tuples(st.integers(BASE, END), st.integers(1, 700)), max_size=4)
    ):
        free = iv.add(free, start, min(start + length, END))
    return Memory(BASE, END, free, (), ())


@settings(max_examples=2000, derandomize=True)
@given(st.lists(claim, max_size=12), memories())
def test_fast_verdict_equals_the_scan(claims: list[tuple[str, int, int]], mem: Memory) -> None:
    assert owned_once_and_allocated(claims, mem) == (first_ownership_fault(claims, mem) is None)


def test_the_boundaries_of_a_block() -> None:
    mem = Memory(BASE, END, (), (), ())
    block = ("pages2m", BASE, PAGES_PER_2M)
    assert owned_once_and_allocated([block, ("pages4k", BASE + PAGES_PER_2M, 1)], mem)
    assert not owned_once_and_allocated([block, ("pages4k", BASE + PAGES_PER_2M - 1, 1)], mem)
    assert not owned_once_and_allocated(
        [block, ("pages2m", BASE + PAGES_PER_2M - 1, PAGES_PER_2M)], mem
    )
    # two 2 MiB pages side by side (a 2 MiB balloon in a contiguous pool) own apart
    beside = ("pages2m", BASE + PAGES_PER_2M, PAGES_PER_2M)
    assert owned_once_and_allocated([beside, block], mem)
    assert first_ownership_fault([beside, block], mem) is None
    assert not owned_once_and_allocated([("batch", END, 1)], mem)
    # one claim outside the pool is enough, on either side, whatever the others hold
    inside = ("pages4k", BASE + 10, 1)
    assert not owned_once_and_allocated([("batch", BASE - 1, 1), inside], mem)
    assert not owned_once_and_allocated([inside, ("refused4k", END, 1)], mem)
    assert owned_once_and_allocated([("batch", BASE, 1), inside, ("batch_page", END - 1, 1)], mem)
    free = ((BASE + 5, BASE + 6),)
    assert not owned_once_and_allocated([("batch", BASE + 5, 1)], Memory(BASE, END, free, (), ()))
    assert owned_once_and_allocated([("batch", BASE + 6, 1)], Memory(BASE, END, free, (), ()))


@settings(max_examples=2000, derandomize=True)
@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(0, 60)), max_size=12),
    st.lists(st.tuples(st.integers(-10, 320), st.integers(-5, 80)), max_size=24),
)
def test_removing_many_spans_in_one_sweep_is_removing_them_one_by_one(
    made: list[tuple[int, int]], cut: list[tuple[int, int]]
) -> None:
    """``no_leak`` and property conformance take every claim out of the allocated runs in
    one sweep (:func:`vmballoon.core.intervals.remove_all`): the same set as one
    :func:`~vmballoon.core.intervals.remove` per claim, overlapping, empty and reversed
    spans included."""
    runs: iv.Runs = ()
    for start, length in made:
        runs = iv.add(runs, start, start + length)
    spans = [(s, s + n) for s, n in cut]
    one_by_one = runs
    for s, e in spans:
        one_by_one = iv.remove(one_by_one, s, e)
    assert iv.remove_all(runs, spans) == one_by_one
