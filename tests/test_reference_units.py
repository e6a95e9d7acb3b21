"""The reference's own machinery, apart from what it transliterates."""

from __future__ import annotations

import gc

import pytest

from vmballoon.core.scenario import scenario_from_json
from vmballoon.reference.replay import replay


@pytest.mark.parametrize("enabled", [True, False])
def test_a_replay_leaves_the_garbage_collector_as_it_found_it(enabled: bool) -> None:
    """A replay pauses Python's cyclic garbage collector (a million-page inflation runs
    twice as fast) and must give it back as it was: a fuzzer or a test session that
    replays thousands of scenarios would otherwise run on with the collector off (or
    have it switched on behind its back)."""
    sc = scenario_from_json(
        {"format": "vmballoon-scenario/1", "frames": 64, "steps": ["work"], "hv": []}
    )
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        replay(sc)
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()
