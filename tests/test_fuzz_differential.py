"""Hypothesis stateful testing: model, reference and the compiled C agree on SEED and FIXED.

Pinned for CI: derandomized (the seed is fixed by the test's name), no example
database, a fixed number of examples.  Longer campaigns: ``vmballoon fuzz``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from vmballoon.apps.fuzz import Coverage, FixedMachine, SeedMachine, coverage_report
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


def test_ci_fuzz_reached_every_transition() -> None:
    """Runs after the two machines above: every transition of the model was taken."""
    coverage = Coverage()
    for machine in (SeedMachine, FixedMachine):
        coverage.merge(machine.fuzz_campaign.coverage)
    if coverage.examples == 0:
        pytest.skip("the differential machines did not run in this session")
    left = {a for a, _ in coverage.transitions}
    entered = {b for _, b in coverage.transitions}
    never_left = [loc.name for loc in TRANSITIONS if loc.name not in left]
    never_entered = [loc.name for loc in Loc if loc.name not in entered and loc != Loc.IDLE]
    assert not never_left and not never_entered, coverage_report(coverage)
    assert coverage.examples >= 500
