"""Shared fixtures: where the golden replays live (tests/golden, made by `vmballoon golden`)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
SCENARIOS = ROOT / "tests" / "scenarios"


def golden_cases() -> list[Path]:
    """The golden scenarios of tests/golden (the project's first sample, replayed by the C)."""
    return sorted(GOLDEN.glob("*.scenario.json"))


@pytest.fixture
def golden_dir() -> Path:
    return GOLDEN
