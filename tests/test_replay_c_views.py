"""``vmballoon replay --impl c`` with ``--check``, ``--format table`` and ``--format itf``:
the C's own trace (one state per entry point), checked on the C, not the model's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vmballoon.apps.ctrace import NOT_OBSERVABLE

FINDINGS = Path(__file__).resolve().parents[1] / "spec" / "findings"


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmballoon", "replay", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_on_the_c_reports_the_c_violations() -> None:
    """The seed's C shows the seed's finding on its own trace; the fixed C does not, and
    what it cannot see is said, not passed."""
    scenario = str(FINDINGS / "seed.host_agreement.scenario.json")
    model = replay(scenario, "--variant", "seed", "--check", "--property", "host_agreement")
    c = replay(scenario, "--impl", "c", "--variant", "seed", "--check")
    assert model.returncode == 1 and c.returncode == 1, c.stdout + c.stderr
    assert "host_agreement: entry point 1 (C work):" in c.stdout
    assert "not observable on the C (inflate's locals), not checked: rate_counter" in c.stdout
    clean = replay(scenario, "--impl", "c", "--variant", "fixed", "--check")
    assert clean.returncode == 0 and "no property violated on the C's trace" in clean.stdout
    hidden = ", ".join(NOT_OBSERVABLE)
    assert f"not checked: {hidden}" in clean.stdout  # never passed silently


def test_table_and_itf_show_the_c_trace() -> None:
    scenario = str(FINDINGS / "seed.host_agreement.scenario.json")
    table = replay(scenario, "--impl", "c", "--format", "table")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["#", "transition", "changes"]
    assert any(" C work " in ln for ln in lines)
    assert any("! host_agreement:" in ln for ln in lines)
    itf = replay(scenario, "--impl", "c", "--format", "itf")
    assert itf.returncode == 0, itf.stderr
    doc = json.loads(itf.stdout)
    assert "compiled C replay" in doc["#meta"]["description"]
    states = doc["states"]
    assert [s["action"] for s in states] == ["init", "C work"]
    assert "host_agreement" in {v["property"] for v in states[1]["#meta"]["violations"]}
    unchecked = json.loads(replay(scenario, "--impl", "c", "--format", "itf", "--no-check").stdout)
    assert unchecked["#meta"]["checked"] is False
    assert all("violations" not in s["#meta"] for s in unchecked["states"])


def test_what_the_c_cannot_show_is_refused_not_passed() -> None:
    scenario = str(FINDINGS / "seed.rate_counter.scenario.json")
    proc = replay(scenario, "--impl", "c", "--check", "--property", "rate_counter")
    assert proc.returncode == 2 and "not observable on the C" in proc.stderr
    assert proc.stderr.count("\n") == 1
    both = replay(scenario, "--impl", "c", "--check", "--format", "table")
    assert both.returncode == 2 and both.stderr.count("\n") == 1


def test_a_crash_names_its_line_of_c_when_the_runtime_gives_one() -> None:
    """The seed's NULL ops (reset_needs_ops): the C crashes in the first work tick."""
    from vmballoon.core.scenario import load_scenario
    from vmballoon.core.variants import SEED
    from vmballoon.harness.replay import binary_for, start

    path = FINDINGS / "seed.no_crash.scenario.json"
    sc = load_scenario(path)
    with start(binary_for(SEED), sc) as drv:
        for name in sc.steps:
            drv.step(name)
        assert drv.crashed
        if getattr(drv, "crash", None) is None:
            pytest.skip("this C runtime does not report where the driver crashed")
    proc = replay(str(path), "--impl", "c", "--check")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"the C crashed at .+:[1-9][0-9]* \(\w+\)", proc.stdout), proc.stdout
