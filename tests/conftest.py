"""Shared fixtures: where the shared/ folder (golden replays) lives."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GOLDEN = SHARED / "golden"
SCENARIOS = ROOT / "tests" / "scenarios"


def golden_cases() -> list[Path]:
    """The golden scenarios shipped in shared/golden (empty when shared/ is absent)."""
    return sorted(GOLDEN.glob("*.scenario.json")) if GOLDEN.is_dir() else []


@pytest.fixture
def golden_dir() -> Path:
    if not GOLDEN.is_dir():
        pytest.skip(f"no golden replays at {GOLDEN}")
    return GOLDEN
