"""The differential machine hunts boundaries (issue 8, item 4), and its report says which.

A pinned campaign on FIXED (seed 3, a steady host in every second example) must reach
every boundary of :data:`vmballoon.apps.fuzz.BOUNDARIES`, and ``vmballoon fuzz``
prints the boundaries reached.
"""

from __future__ import annotations

from vmballoon.apps import fuzz as fz
from vmballoon.core.variants import FIXED


def test_pinned_campaign_reaches_the_boundaries() -> None:
    campaign = fz.Campaign(FIXED, 300, seed=3, steps=12, steady_odds=2)
    result = campaign.run()
    reached = campaign.coverage.boundaries
    assert result.failure is None, result.failure
    missing = [b for b in fz.BOUNDARIES if b not in reached]
    assert not missing, f"boundaries never reached: {missing}"
    assert "boundaries reached:" in fz.coverage_report(campaign.coverage)


def test_boundary_names_are_the_hunted_ones() -> None:
    assert len(set(fz.BOUNDARIES)) == len(fz.BOUNDARIES) == 24
    assert {
        "refused>=15 in one inflation",
        "refused>=16 in one inflation",
        "refused>=17 in one inflation",
        "lock batch=512",
        "pfn=2**32-1",
        "pfn=2**52",
        "totalram=2**32",
        "target-size=+513",
        "rate_alloc=floor",
    } <= set(fz.BOUNDARIES)
