"""Unit tests of the model's helpers at their boundaries (issue 8: mutation score).

``model.listed`` is the set of listed PFNs kept as runs split by 2 MiB alignment;
its value must be exactly a set of PFNs, and its promise (consecutive pages stay
one run across 2 MiB boundaries, whatever the order of adds and removes) is what
keeps a 48 GiB inflation linear.  ``model.plist`` is a kernel list as cons cells: each
helper must be the Python list operation it names, sharing the tail it keeps.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmballoon.model import listed as ls
from vmballoon.model.plist import PList, concat, drop, from_iterable, length, push, to_list


def _listed(pfns: list[int]) -> ls.Listed:
    out = ls.EMPTY
    for pfn in pfns:
        out = ls.add(out, pfn)
    return out


@pytest.mark.parametrize("base", [0, 1, 510, 511, 512, 513, 1023, 1 << 32])
def test_consecutive_pages_are_one_run_across_2m_boundaries(base: int) -> None:
    pfns = list(range(base, base + 1500))
    listed = _listed(pfns)
    aligned = [p for p in pfns if p % 512 == 0]
    assert ls.count_runs(listed) == (1 if aligned else 0) + 1
    assert all(ls.contains(listed, p) for p in pfns)
    assert not ls.contains(listed, base - 1) and not ls.contains(listed, base + 1500)
    rest = listed
    for pfn in reversed(pfns):
        rest = ls.remove(rest, pfn)
    assert rest == ls.EMPTY


@pytest.mark.parametrize("seed", range(6))
def test_listed_is_exactly_a_set_of_pfns(seed: int) -> None:
    """Random adds and removes around 2 MiB boundaries agree with a Python set, and
    removing every page leaves the empty representation (no don't-care left over)."""
    rng = random.Random(seed)
    pool = [b + d for b in (0, 512, 1024, 4096) for d in (-2, -1, 0, 1, 2, 3) if b + d >= 0]
    model: set[int] = set()
    listed = ls.EMPTY
    for _ in range(400):
        pfn = rng.choice(pool)
        if pfn in model:
            model.discard(pfn)
            listed = ls.remove(listed, pfn)
        else:
            model.add(pfn)
            listed = ls.add(listed, pfn)
        assert {p for p in range(-3, 4100) if ls.contains(listed, p)} == model
    for pfn in sorted(model):
        listed = ls.remove(listed, pfn)
    assert listed == ls.EMPTY


def test_a_page_between_two_2m_boundaries_bridges_them() -> None:
    """Pages 511 and 513 around the multiple 512: adding 512 keeps one run of `other`."""
    listed = _listed([510, 511, 513, 514])
    assert ls.count_runs(listed) == 1  # 512 is a don't-care bridge in `other`
    listed = ls.add(listed, 512)
    assert ls.count_runs(listed) == 2
    assert all(ls.contains(listed, p) for p in range(510, 515))
    listed = ls.remove(listed, 511)
    assert [p for p in range(508, 517) if ls.contains(listed, p)] == [510, 512, 513, 514]


@pytest.mark.parametrize("n", [0, 1, 2, 5])
def test_plist_length(n: int) -> None:
    lst: PList = None
    for k in range(n):
        lst = (k, lst)
    assert length(lst) == n


PFNS = st.lists(st.integers(0, 2**52), max_size=12)


@settings(max_examples=300, derandomize=True)
@given(PFNS, PFNS, st.data())
def test_plists_are_the_lists_they_name_and_share_their_tails(
    front: list[int], back: list[int], data: st.DataObject
) -> None:
    """The C trace checker keeps the driver's lists as plists, read incrementally:
    ``drop`` the entries the C took off the head, ``from_iterable`` the new ones onto
    the tail it kept (``CObserver._read_lists``)."""
    rest = from_iterable(back)
    lst = from_iterable(front, rest)
    assert to_list(lst) == front + back and length(lst) == len(front) + len(back)
    assert to_list(concat(from_iterable(front), rest)) == front + back
    assert to_list(push(lst, 7)) == [7, *front, *back]
    n = data.draw(st.integers(0, len(front) + len(back)))
    assert to_list(drop(lst, n)) == (front + back)[n:]
    assert drop(lst, len(front)) is rest


def test_final_json_shows_the_refused_lists_mid_inflation() -> None:
    """The contract's ``final`` lists the refused pages 4 KiB first, then 2 MiB, each head
    first (list_add), with their counts.  A replay ends at IDLE (refused lists released,
    lines 921-925) or at a crash, so look at the state just before the release: a
    batched 2 MiB host (caps BATCHED | BATCHED_2M) refuses 3 of 4 pages (PINNED)."""
    from tests.test_boundaries import batched_reset, ok, scenario
    from vmballoon.core.protocol import CAP_BATCHED, CAP_BATCHED_2M, ERROR_PPN_PINNED
    from vmballoon.core.variants import FIXED
    from vmballoon.model.machine import enter, final_json, start, step
    from vmballoon.model.state import Loc

    hv = [*batched_reset(CAP_BATCHED | CAP_BATCHED_2M), ok(2048)]
    hv.append(ok(2048, [ERROR_PPN_PINNED] * 3 + [0]))
    state = enter(start(scenario(hv, ["work"]), FIXED), "work")
    allocated: list[int] = []
    while state.loc != Loc.I_END:
        nxt = step(state)
        allocated += [
            e["pfn"]
            for e in nxt.env.events()[len(state.env.events()) :]
            if e["ev"] == "alloc" and e["order"] == 9
        ]
        state = nxt
    final = final_json(state)
    assert len(allocated) == 4
    assert final["refused"] == [[], list(reversed(allocated[:3]))]
    assert final["n_refused"] == [0, 3]
    assert final["pages"] == [[], [allocated[3]]]
    assert final["size"] == 512
