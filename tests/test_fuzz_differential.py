"""Hypothesis stateful testing: model, reference and the compiled C agree on SEED and FIXED.

Pinned for CI: derandomized (the seed is fixed by the test's name), no example
database, a fixed number of examples.  Longer campaigns: ``vmballoon fuzz``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from vmballoon.apps.fuzz import COVERAGE, FixedMachine, SeedMachine, coverage_report
from vmballoon.model.state import Loc
from vmballoon.model.transitions import TRANSITIONS

EXAMPLES = int(os.environ.get("VMBALLOON_CI_EXAMPLES", "300"))

PINNED = settings(
    max_examples=EXAMPLES,
    stateful_step_count=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

TestSeedDifferential = SeedMachine.TestCase
TestSeedDifferential.settings = PINNED

TestFixedDifferential = FixedMachine.TestCase
TestFixedDifferential.settings = PINNED


NOT_REACHED_BY_CI_FUZZ = {"D_UNLOCK": "tests/scenarios/memory_pressure.json"}
"""Locations the pinned CI campaigns do not reach today, each with a checked-in scenario
that does (issue 8, open: the pinned campaigns rarely deflate: Hypothesis's swarm
testing leaves many examples without ``work``, and deflating targets are seldom drawn)."""


def test_ci_fuzz_reached_every_transition() -> None:
    """Runs after the two machines above: every transition of the model was taken."""
    if COVERAGE.examples == 0:
        pytest.skip("the differential machines did not run in this session")
    left = {a for a, _ in COVERAGE.transitions} | set(NOT_REACHED_BY_CI_FUZZ)
    entered = {b for _, b in COVERAGE.transitions} | set(NOT_REACHED_BY_CI_FUZZ)
    never_left = [loc.name for loc in TRANSITIONS if loc.name not in left]
    never_entered = [loc.name for loc in Loc if loc.name not in entered and loc != Loc.IDLE]
    assert not never_left and not never_entered, coverage_report(COVERAGE)
    assert COVERAGE.examples >= 500


@pytest.mark.parametrize("loc", sorted(NOT_REACHED_BY_CI_FUZZ))
def test_locations_the_ci_fuzz_misses_are_reached_by_their_scenario(loc: str) -> None:
    """The exemption above holds only while its scenario takes the location."""
    from vmballoon.apps.traces import walk
    from vmballoon.core.scenario import load_scenario
    from vmballoon.core.variants import SEED

    scenario = load_scenario(Path(__file__).resolve().parents[1] / NOT_REACHED_BY_CI_FUZZ[loc])
    assert loc in {step.state.loc.name for step in walk(scenario, SEED)}
