"""Replay traces as ITF (loadable by itf-py) and as a readable table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import itf_py

from tests.conftest import ROOT, SCENARIOS
from vmballoon.apps.traces import model_trace, to_itf, to_table
from vmballoon.core.scenario import load_scenario, scenario_from_json
from vmballoon.core.variants import FIXED, SEED
from vmballoon.model.machine import final_json, run_scenario
from vmballoon.model.properties import check_trace

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
    assert first["size"] == 0  # a JSON number below 2**53; {"#bigint"} above
    assert first["batch_page"] == []
    assert doc["#meta"]["format"] == "ITF"
    raw = json.loads((SCENARIOS / "reset_mid_inflation.json").read_text())
    raw["pfn_base"] = 2**60  # frames far above 2**53: JSON numbers would be rounded
    trace = model_trace(scenario_from_json(raw), SEED)
    big = to_itf(trace, "big")
    pfns = [p for st in big["states"] for lst in st["pages"]["#tup"] for p in lst]
    assert pfns and all(set(p) == {"#bigint"} and int(p["#bigint"]) >= 2**60 for p in pfns)
    loaded = itf_py.trace_from_json(big)
    for item, state in zip(trace, loaded.states, strict=True):
        assert [list(p) for p in state.values["pages"]] == final_json(item.state)["pages"]


def test_itf_nested_fields_are_not_options_and_pairs_are_tuples() -> None:
    scenario = load_scenario(SCENARIOS / "doorbell_life_cycle.json")
    doc = to_itf(model_trace(scenario, FIXED), "doorbell")
    states = doc["states"]
    # stats.doorbell is a counter, not an optional value (only top-level keys are options)
    assert all(isinstance(st["stats"]["doorbell"], int) for st in states)
    assert any(st["stats"]["doorbell"] > 0 for st in states)
    handles = [st["doorbell"] for st in states if st["doorbell"]]
    assert handles and all(len(h) == 1 and len(h[0]["#tup"]) == 2 for h in handles)
    assert all(set(st["stats"]["lock"]) == {"#tup"} for st in states)
    assert all(len(st["pages"]["#tup"]) == 2 and len(st["n_refused"]["#tup"]) == 2 for st in states)
    loaded = itf_py.trace_from_json(doc)
    assert isinstance(loaded.states[-1].values["pages"], tuple)


CORPUS = [p for p in sorted(SCENARIOS.glob("*.json")) if not p.name.startswith("guest64g")]
CORPUS += [
    p for p in sorted((ROOT / "spec" / "findings").glob("*.json")) if "rate_counter" not in p.name
]


def test_streamed_itf_states_are_the_model_states() -> None:
    """The streaming encoder (which updates a list's text by its head) against
    final_json of every state, for every scenario of the corpus and both variants."""
    for path in CORPUS:
        scenario = load_scenario(path)
        for variant in (SEED, FIXED):
            trace = model_trace(scenario, variant)
            loaded = itf_py.trace_from_json(to_itf(trace, path.name))
            assert len(loaded.states) == len(trace)
            for item, state in zip(trace, loaded.states, strict=True):
                final, got = final_json(item.state), state.values
                where = (path.name, variant.name, item.index)
                assert [list(p) for p in got["pages"]] == final["pages"], where
                assert [list(p) for p in got["refused"]] == final["refused"], where
                assert list(got["n_refused"]) == final["n_refused"], where
                for key in ("size", "target", "rate_alloc", "reset_required", "crashed"):
                    assert got[key] == final[key], (where, key)
                assert list(got["batch_page"]) == (
                    [] if final["batch_page"] is None else [final["batch_page"]]
                )
                db = final["doorbell"]
                assert [list(h) for h in got["doorbell"]] == ([] if db is None else [db])
                assert got["stats"].alloc == tuple(final["stats"]["alloc"])
                assert len(got["events"]) == len(item.events)


def test_itf_marks_the_states_where_a_property_fails() -> None:
    path = ROOT / "spec" / "findings" / "seed.protocol.scenario.json"
    scenario = load_scenario(path)
    doc = to_itf(model_trace(scenario, SEED, check=True), path.name, checked=True)
    assert doc["#meta"]["checked"] is True
    marked = {
        (st["#meta"]["index"], v["property"])
        for st in doc["states"]
        for v in st["#meta"]["violations"]
    }
    expected = {(v.step, v.prop) for v in check_trace(scenario, SEED, first_only=False)}
    assert marked == expected and any(p == "protocol" for _, p in marked)
    clean = to_itf(model_trace(scenario, FIXED, check=True), path.name, checked=True)
    assert not any(st["#meta"]["violations"] for st in clean["states"])


def test_itf_streams_in_memory_proportional_to_what_changes(tmp_path: Path) -> None:
    """A 16 GiB guest inflating 2 MiB pages to 12 GiB and back (a quarter of
    tests/scenarios/guest64g_2m_to_48g_and_back.json): 12,336 states of up to 6,144
    pages, about 340 MB of ITF, under a 2 GiB address-space limit.  Keeping every
    state (as the ITF writer once did) needs more than that."""
    doc = json.loads((SCENARIOS / "guest64g_2m_to_48g_and_back.json").read_text())
    doc["frames"] //= 4
    doc["hv"] = (
        doc["hv"][:4] + [{"status": 0, "result": 3145728}] * 13 + [{"status": 0, "result": 0}] * 60
    )
    path = tmp_path / "guest16g.json"
    path.write_text(json.dumps(doc))
    out = tmp_path / "trace.itf.json"
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from vmballoon.apps.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
        "print(hwm[0].split()[1], file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    with out.open("w") as sink:
        proc = subprocess.run(
            [sys.executable, "-c", code, "replay", str(path), "--format", "itf", "--no-check"],
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=300,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak_kib = int(proc.stderr.strip().splitlines()[-1])
    size = out.stat().st_size
    assert size > 200_000_000  # the states are all there ...
    assert peak_kib * 1024 < min(size / 2, 256 << 20)  # ... and were never all in memory
    with out.open("rb") as f:
        f.seek(-200, 2)
        assert f.read().endswith(b"]}\n")


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
        return subprocess.run(
            [sys.executable, "-m", "vmballoon", "replay", str(RESET), *args],
            capture_output=True,
            text=True,
            check=False,
        )

    itf = run("--format", "itf")
    assert itf.returncode == 0 and json.loads(itf.stdout)["#meta"]["format"] == "ITF"
    table = run("--format", "table", "--variant", "fixed")
    assert table.returncode == 0 and "work_target" in table.stdout
    refused = run("--format", "itf", "--impl", "reference")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1


def _row_numbers(table: str) -> list[int]:
    return [int(line[:4]) for line in table.splitlines()[1:] if line[:4].strip().isdigit()]


def test_table_filters_a_window_of_transitions() -> None:
    trace = model_trace(load_scenario(RESET), SEED)
    window = to_table(trace, first=100, stop=110)
    assert _row_numbers(window) == list(range(100, 110))
    full = to_table(trace)
    # a row shows what changed since the transition before it, shown or not
    row = next(line for line in full.splitlines() if line.startswith(" 100 "))
    assert row in window.splitlines()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vmballoon",
            "replay",
            str(RESET),
            "--format",
            "table",
            "--steps",
            "100:110",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and _row_numbers(proc.stdout) == list(range(100, 110))
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "vmballoon",
            "replay",
            str(RESET),
            "--format",
            "table",
            "--steps",
            "9:3",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_table_shows_only_the_transitions_where_a_property_fails() -> None:
    path = ROOT / "spec" / "findings" / "seed.protocol.scenario.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vmballoon",
            "replay",
            str(path),
            "--format",
            "table",
            "--violations",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    expected = sorted({v.step for v in check_trace(load_scenario(path), SEED, first_only=False)})
    assert _row_numbers(proc.stdout) == expected
    assert "! protocol:" in proc.stdout
