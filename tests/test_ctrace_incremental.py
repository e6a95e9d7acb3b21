"""The C trace checker reads the C incrementally (``harness_list_delta``,
``harness_flight_log``); at every observation what it holds must be what the C holds
whole (``harness_list``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vmballoon.apps.checkc import corpus
from vmballoon.apps.ctrace import FL_ALLOCATED, FL_TAKEN, FL_UNREFUSED, CObserver
from vmballoon.core.protocol import PAGE_SHIFT
from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.harness.patches import variant_source
from vmballoon.harness.replay import binary_for, start
from vmballoon.model.plist import iterate, to_list
from vmballoon.model.state import Loc, State

SCENARIOS = [(name, sc) for name, sc in corpus().scenarios if sc.frames <= 1 << 16]


class CheckedObserver(CObserver):
    """The observer, asserting at each observation that its readings are the C's lists
    (an assertion in the driver's process fails the replay with a ``HarnessError``)."""

    observations = 0

    def _observe(self, loc: Loc | None, kind: str = "", args: tuple[int, ...] = ()) -> State:
        state = super()._observe(loc, kind, args)
        rt = self.rt
        for i in range(4):
            assert to_list(self._plists[i]) == rt.lists(i), f"list {i}"
        raw = rt.lists(4)
        flight = self.flight
        assert flight.order == raw[0::2], "in_flight[] order"
        assert [flight.code[p] for p in flight.order] == raw[1::2], "in_flight[] codes"
        for which in (FL_ALLOCATED, FL_TAKEN, FL_UNREFUSED):
            mine = [p for p, c in zip(raw[0::2], raw[1::2], strict=True) if c >> 4 == which]
            assert [p for p, _ in flight.in_order(which)] == mine
            if which != FL_UNREFUSED:
                n, _, fill = flight.batch(which)
                assert n == len(mine)
                assert sorted(e >> PAGE_SHIFT for e in iterate(fill)) == sorted(mine)
        type(self).observations += 1
        return state


@pytest.mark.parametrize("variant", [SEED, FIXED], ids=lambda v: v.name)
def test_incremental_readings_are_the_c_lists(variant: Variant) -> None:
    assert _observed_events(binary_for(variant), variant) > 10_000


def _observed_events(binary: Path, variant: Variant) -> int:
    """The corpus replayed on ``binary`` under :class:`CheckedObserver`: the events seen
    (the corpus's inflations and deflations observed, over 10,000 of them)."""
    seen = 0
    for _name, scenario in SCENARIOS:
        with start(binary, scenario, trace=True) as drv:
            drv.attach(CheckedObserver, variant)
            for step in scenario.steps:
                drv.step(step)
            seen += len(drv.events())
    return seen


def test_readings_of_a_driver_that_adds_pages_after_the_first_are_the_c_lists(
    tmp_path: Path,
) -> None:
    """The harness reports a list by what changed at its head (the driver's own
    list_add and list_del); a patch that adds balloon pages after the list's first
    entry instead makes it walk and report the whole list."""
    text = variant_source(FIXED)
    patched = re.sub(
        r"list_add\(&(\w+)->lru, &page_size->pages\);",
        r"list_add(&\1->lru, page_size->pages.next);",
        text,
    )
    assert patched.count("page_size->pages.next);") == 4
    source = tmp_path / "vmw_balloon.c"
    source.write_text(patched)
    assert _observed_events(binary_for(source=source), FIXED) > 10_000
