"""Shared fixtures: where the golden replays live (tests/golden, made by `vmballoon golden`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vmballoon.apps.drawpool import pinned_constant_pool

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
SCENARIOS = ROOT / "tests" / "scenarios"


@pytest.fixture(autouse=True, scope="session")
def _draws_independent_of_loaded_modules() -> Iterator[None]:
    """Every Hypothesis test draws as `vmballoon fuzz` does: no constants from local modules."""
    with pinned_constant_pool():
        yield


def golden_cases() -> list[Path]:
    """The golden scenarios of tests/golden (the project's first sample, replayed by the C)."""
    return sorted(GOLDEN.glob("*.scenario.json"))


@pytest.fixture
def golden_dir() -> Path:
    return GOLDEN
