"""Every scenario in tests/scenarios/ and spec/examples/ replays identically through both
implementations, on SEED, on FIXED and on FIXED minus each single fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, SCENARIOS
from vmballoon.apps.fuzz import describe_difference
from vmballoon.apps.replay import replay
from vmballoon.core.scenario import load_scenario
from vmballoon.core.variants import FIX_NAMES

CASES = sorted(SCENARIOS.glob("*.json")) + sorted((ROOT / "spec" / "examples").glob("*.json"))
VARIANTS = ["seed", "fixed", *(f"fixed-{name}" for name in FIX_NAMES)]
LARGE_FRAMES = 1 << 20
"""Large guests run on SEED and FIXED only, to keep CI short."""


def test_there_are_scenarios() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
@pytest.mark.parametrize("variant", VARIANTS)
def test_model_and_reference_agree(path: Path, variant: str) -> None:
    scenario = load_scenario(path)
    if scenario.frames > LARGE_FRAMES and variant not in ("seed", "fixed"):
        pytest.skip("large guest: SEED and FIXED only")
    expected = replay(scenario, impl="model", variant=variant)
    got = replay(scenario, impl="reference", variant=variant)
    assert got == expected, describe_difference(scenario, expected, got)
