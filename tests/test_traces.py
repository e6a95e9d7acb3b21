"""Replay traces as ITF (loadable by itf-py) and as a readable table."""

from __future__ import annotations

import json
import subprocess
import sys

import itf_py

from tests.conftest import SCENARIOS
from vmballoon.apps.traces import model_trace, to_itf, to_table
from vmballoon.core.scenario import load_scenario
from vmballoon.core.variants import FIXED, SEED
from vmballoon.model.machine import final_json, run_scenario

RESET = SCENARIOS / "reset_mid_inflation.json"


def test_itf_trace_loads_with_itf_py_and_ends_in_the_replayed_state() -> None:
    scenario = load_scenario(RESET)
    trace = model_trace(scenario, SEED)
    loaded = itf_py.trace_from_json(json.loads(json.dumps(to_itf(trace, "reset"))))
    assert len(loaded.states) == len(trace)
    assert loaded.vars[0] == "action"
    last = loaded.states[-1].values
    final = final_json(run_scenario(scenario, SEED))
    assert last["size"] == final["size"]
    assert last["target"] == final["target"]
    assert list(last["pages"][0]) == final["pages"][0]
    assert last["reset_required"] is final["reset_required"]
    actions = [s.values["action"] for s in loaded.states]
    assert actions[0] == "init" and "enter(work)" in actions and "reset_pop" in actions


def test_itf_encodes_integers_as_bigints_and_absent_values_as_empty_sequences() -> None:
    doc = to_itf(model_trace(load_scenario(RESET), FIXED), "reset")
    first = doc["states"][0]
    assert first["size"] == {"#bigint": "0"}
    assert first["batch_page"] == []
    assert doc["#meta"]["format"] == "ITF"


def test_table_has_one_row_per_transition_with_only_the_changes() -> None:
    scenario = load_scenario(RESET)
    trace = model_trace(scenario, SEED)
    table = to_table(trace)
    rows = [line for line in table.splitlines()[1:] if line[:4].strip().isdigit()]
    assert len(rows) == len(trace)
    start_row = next(r for r in table.splitlines() if "reset_start " in r)
    assert "loc: R_START -> R_OPS" in start_row
    # a row lists changed fields only: the GUEST_ID step does not repeat the capabilities
    guest_block = table.split("reset_guest_id", 1)[1].split("work_target", 1)[0]
    assert "capabilities" not in guest_block


def test_cli_replay_formats() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vmballoon", "replay", str(RESET), *args],
                              capture_output=True, text=True, check=False)  # fmt: skip

    itf = run("--format", "itf")
    assert itf.returncode == 0 and json.loads(itf.stdout)["#meta"]["format"] == "ITF"
    table = run("--format", "table", "--variant", "fixed")
    assert table.returncode == 0 and "work_target" in table.stdout
    refused = run("--format", "itf", "--impl", "reference")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
