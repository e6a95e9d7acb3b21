"""The model's SEED variant reproduces every golden event log of the seed's C code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import golden_cases
from vmballoon.apps.replay import replay


@pytest.mark.parametrize("case", golden_cases(), ids=lambda p: p.name.split(".")[0])
def test_model_reproduces_golden(case: Path) -> None:
    expected = json.loads(case.with_name(case.name.replace("scenario", "events")).read_text())
    assert replay(case, impl="model", variant="seed") == expected


def test_golden_replays_present() -> None:
    assert len(golden_cases()) >= 10
