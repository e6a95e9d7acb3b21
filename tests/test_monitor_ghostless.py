"""The monitor's shortcut for the state-only predicates (``GHOSTLESS``) and the memo of
``to_list``: both must change no answer.

* Every predicate of :data:`vmballoon.model.properties.GHOSTLESS` gives the same answer
  whatever the ghost (it is given one that raises on any read), on every state of the
  example scenarios and the checked-in counterexamples, on SEED and FIXED;
* a monitor asked one such predicate (it does not follow the ghost) reports what a
  monitor asked every property reports for it;
* ``to_list`` gives a new list equal to the walk of the cells, however often asked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmballoon.core.scenario import load_scenario
from vmballoon.core.variants import FIXED, SEED
from vmballoon.model.machine import start, trace
from vmballoon.model.plist import from_iterable, push, to_list
from vmballoon.model.properties import GHOSTLESS, STATE_PROPERTIES, monitor_trace

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "tests" / "scenarios").glob("*.json"))
FINDINGS = sorted((ROOT / "spec" / "findings").glob("*.json"))
SCENARIOS = [
    p
    for p in [*EXAMPLES, *FINDINGS]
    if p.name != "guest64g_2m_to_48g_and_back.json"  # 49,000 states: covered by the rest
]


class _Unread:
    """A ghost no predicate may read."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"a GHOSTLESS predicate read the ghost's {name}")


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_ghostless_predicates_never_read_the_ghost(path: Path) -> None:
    sc = load_scenario(path)
    unread = _Unread()
    for variant in (SEED, FIXED):
        state = start(sc, variant)
        for t in [None, *trace(state, sc.steps)]:
            st_ = state if t is None else t.state
            for name in GHOSTLESS:
                STATE_PROPERTIES[name](st_, unread)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_a_monitor_of_ghostless_predicates_reports_what_the_full_one_does(path: Path) -> None:
    sc = load_scenario(path)
    for variant in (SEED, FIXED):
        full = monitor_trace(sc, variant).violations
        for name in sorted(GHOSTLESS):
            alone = monitor_trace(sc, variant, frozenset({name})).violations
            assert list(alone) == [v for v in full if v.prop == name], (name, variant.name)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(st.lists(st.integers(0, 1 << 40), max_size=40), min_size=1, max_size=20))
def test_to_list_is_a_fresh_copy_of_the_cells(lists: list[list[int]]) -> None:
    cells = [from_iterable(x) for x in lists]
    for _ in range(2):  # asked again: from the memo
        for x, c in zip(lists, cells, strict=True):
            got = to_list(c)
            assert got == x
            got.append(-1)  # the caller's list: the next answer is unchanged
    for x, c in zip(lists, cells, strict=True):
        assert to_list(push(c, 7)) == [7, *x]
