"""Every defect has a checked-in SEED scenario that shows it, and its fix alone clears it.

``vmballoon verify``'s per-defect search (vmballoon/proofs/defects.py) writes, for every fix flag
of vmballoon.core.variants, a scenario on which SEED violates a property and SEED with
that one fix does not.  The checked-in results (spec/verify-results.json, "defects",
and spec/findings/) are read here and each scenario is replayed through the command a
reviewer would type: ``vmballoon replay SCENARIO --check`` must name the property
(exit 1), and ``--variant <flag> --property <property>`` must find it clear (exit 0).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from vmballoon.apps import specgen
from vmballoon.core.variants import FIX_NAMES

DEFECTS: dict[str, dict[str, Any]] = {
    d["fix"]: d for d in specgen.load_results().get("defects", [])
}


NOT_FOUND_YET: dict[str, str] = {}
"""Defects verify does not find a SEED scenario for yet: strict xfail, so the test fails
the day one is found and this entry is not removed."""


def _replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmballoon", "replay", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_every_fix_flag_has_a_defect_row() -> None:
    assert sorted(DEFECTS) == sorted(FIX_NAMES)


@pytest.mark.parametrize(
    "fix",
    [
        pytest.param(f, marks=pytest.mark.xfail(strict=True, reason=NOT_FOUND_YET[f]))
        if f in NOT_FOUND_YET
        else f
        for f in FIX_NAMES
    ],
)
def test_seed_scenario_shows_the_defect_and_the_fix_clears_it(fix: str) -> None:
    d = DEFECTS.get(fix)
    assert d is not None, f"no defect row for {fix}"
    assert d["status"] == "violated", d
    assert d["scenario"], d
    path = specgen.SPEC.parent / d["scenario"]
    assert path.is_file(), path
    prop = d["prop"]
    seed = _replay(str(path), "--check")
    assert seed.returncode == 1, seed.stdout + seed.stderr
    assert any(line.startswith(f"{prop}: transition ") for line in seed.stdout.splitlines()), (
        seed.stdout
    )
    cleared = _replay(str(path), "--check", "--variant", fix, "--property", prop)
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr
    assert f"no property of {prop} violated" in cleared.stdout
    # the property is not violated at all with the fix, not merely reported elsewhere
    fixed_all = _replay(str(path), "--check", "--variant", fix)
    assert not any(line.startswith(f"{prop}:") for line in fixed_all.stdout.splitlines())


def test_a_defect_row_is_confirmed_on_its_scenario_or_marked_unconfirmed() -> None:
    """``defect_row`` replays the scenario a search found (the seed violates the property,
    FIXED with the fix does not): the shipped scenario of ``target_on_success`` is
    confirmed, with its evidence and the depth where the seed first violates it; a
    scenario that shows nothing is ``unconfirmed``, whatever the search said."""
    import json

    from tests.conftest import ROOT
    from vmballoon.core.scenario import Scenario, load_scenario
    from vmballoon.proofs.defects import defect_row
    from vmballoon.proofs.status import Status

    results = json.loads((ROOT / "spec" / "verify-results.json").read_text())["defects"]
    (rec,) = [d for d in results if d["fix"] == "target_on_success"]
    sc = load_scenario(ROOT / rec["scenario"])
    row = defect_row("target_on_success", rec["prop"], 99, sc, Status.VIOLATED, 0.0, "t", None)
    assert row.status == Status.VIOLATED and row.evidence["seed"]
    assert row.depth == rec["depth"]
    empty = Scenario(steps=("work",), frames=64)
    row = defect_row("target_on_success", rec["prop"], 3, empty, Status.VIOLATED, 0.0, "t", None)
    assert row.status == Status.UNCONFIRMED
