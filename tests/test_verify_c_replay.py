"""`vmballoon verify` replays every counterexample on the compiled C of its variant and
says whether the C shows the violation; a violation the C does not show fails the run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vmballoon.apps import verify as vf
from vmballoon.apps.cexreplay import replay_counterexamples, replayed_variants
from vmballoon.apps.cli import build_parser
from vmballoon.apps.verify import cmd_verify
from vmballoon.core.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
FINDINGS = ROOT / "spec" / "findings"
# FIXED without the doorbell fix: a counterexample at depth 7, found in about 10 s
SMALL = [
    "--variant",
    "fixed-doorbell_set_status",
    "--property",
    "doorbell_agreement",
    "--depth",
    "7",
]


def _quiet_scenario(path: Path) -> Path:
    """One work step with a host that refuses nothing: no property breaks, on any reading."""
    path.write_text(json.dumps(Scenario(steps=("work",)).to_json()), encoding="utf-8")
    return path


def test_the_json_says_the_c_shows_a_counterexample(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vmballoon",
            "verify",
            "--json",
            *SMALL,
            "--out",
            str(tmp_path / "cex"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    [row] = [r for r in doc["results"] if r["prop"] == "doorbell_agreement"]
    assert row["status"] == "violated" and row["scenario"]
    assert row["c"]["status"] == "shows" and row["c"]["shows"] is True
    assert "doorbell_agreement" in row["c"]["properties"]
    assert row["c"]["log_equal"] is True
    assert doc["c_replay"]["replayed"] == 1 and doc["c_replay"]["disagreements"] == []
    assert "counterexamples replayed on the compiled driver" in proc.stderr


def test_a_counterexample_the_c_does_not_show_fails_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The solver's counterexample is swapped for a scenario nothing violates before the C
    replays it: the row reads "C: does not show it" and the run fails (exit 1)."""
    quiet = _quiet_scenario(tmp_path / "quiet.scenario.json")

    def swap_then_replay(
        results: list[dict[str, Any]], defects: list[dict[str, Any]]
    ) -> dict[str, Any]:
        for r in results:
            if r.get("scenario"):
                r["scenario"] = str(quiet)
        return replay_counterexamples(results, defects)

    args = build_parser().parse_args(["verify", *SMALL, "--out", str(tmp_path / "cex")])
    assert cmd_verify(args, swap_then_replay) == 1
    out = capsys.readouterr().out
    assert "C: does not show it" in out
    assert "the model shows the violation, the C does not" in out
    assert out.rstrip().splitlines()[-1].startswith("FAILED")


def test_not_shown_and_not_observable_rows(tmp_path: Path) -> None:
    quiet = str(_quiet_scenario(tmp_path / "quiet.scenario.json"))
    rows: list[dict[str, Any]] = [
        {"prop": "protocol", "variant": "seed", "status": "violated", "scenario": quiet},
        {
            "prop": "rate_counter",
            "variant": "seed",
            "status": "violated",
            "scenario": str(FINDINGS / "seed.rate_counter.scenario.json"),
        },
        {
            "prop": "no_crash",
            "variant": "seed",
            "status": "violated",
            "scenario": str(FINDINGS / "seed.no_crash.scenario.json"),
        },
    ]
    summary = replay_counterexamples(rows, [])
    assert [r["c"]["status"] for r in rows] == ["not-shown", "not-observable", "shows"]
    assert rows[0]["c"]["shows"] is False and rows[2]["c"]["shows"] is True
    [problem] = summary["disagreements"]
    assert problem.startswith("seed protocol: the model shows the violation, the C does not")


# FIXED minus no_2m_without_batching, one work step: a 2 MiB block locked through the basic
# ops is freed at order 0 while still on the 4 KiB list (ownership broken at transition
# 13), then the same entry point crashes on a corrupt list (transition 15)
_CRASHING_TICK = {
    "format": "vmballoon-scenario/1",
    "frames": 65536,
    "steps": ["work"],
    "hv": [
        {"status": 0, "result": 0},
        {"status": 50331648, "result": 26},
        {"status": 2**64 - 1, "result": 0},
        {"status": 0, "result": 0},
        {"status": 0, "result": 0},
        {"status": 0, "result": 1},
        {"status": 0, "result": 2},
        {"status": 2**64 - 8589934585, "result": 0},
    ],
    "alloc": [True, False],
}


def test_a_state_violation_inside_a_crashing_entry_point_is_seen_at_an_environment_call(
    tmp_path: Path,
) -> None:
    """The C's state is seen at every environment call: ownership, broken at transition 13
    of an entry point that crashes at transition 15, is seen on the C at the free between
    (not hidden by the crash), as are the transition properties of the same run."""
    from vmballoon.apps.ctrace import hidden_by_crash
    from vmballoon.core.scenario import load_scenario
    from vmballoon.core.variants import FIXED

    path = tmp_path / "crashing.scenario.json"
    path.write_text(json.dumps(_CRASHING_TICK), encoding="utf-8")
    minus = FIXED.without("no_2m_without_batching")
    assert hidden_by_crash(load_scenario(str(path)), minus, "ownership") is None
    assert hidden_by_crash(load_scenario(str(path)), minus, "free_order") is None  # a transition's
    rows: list[dict[str, Any]] = [
        {"prop": p, "variant": minus.name, "status": "violated", "scenario": str(path)}
        for p in ("ownership", "free_order")
    ]
    summary = replay_counterexamples(rows, [])
    assert [r["c"]["status"] for r in rows] == ["shows", "shows"]
    assert rows[0]["c"]["log_equal"] is True and summary["disagreements"] == []


def test_a_state_violation_the_entry_point_returns_with_is_not_hidden() -> None:
    """Where the entry point returns, the C's state after it is checked: nothing hidden."""
    from vmballoon.apps.ctrace import hidden_by_crash
    from vmballoon.core.scenario import load_scenario
    from vmballoon.core.variants import SEED

    sc = load_scenario(str(FINDINGS / "seed.ownership.scenario.json"))
    assert hidden_by_crash(sc, SEED, "ownership") is None


def test_a_defect_row_is_checked_on_three_variants_of_the_c() -> None:
    defect: dict[str, Any] = {
        "fix": "reset_needs_ops",
        "prop": "no_crash",
        "status": "violated",
        "scenario": str(FINDINGS / "defect.reset_needs_ops.scenario.json"),
    }
    summary = replay_counterexamples([], [defect])
    c = defect["c"]
    assert (c["shows"], c["seed_plus_fix"], c["fixed_minus_fix"]) == (True, False, True)
    assert summary["disagreements"] == []


def test_without_a_compiler_nothing_is_replayed_and_nothing_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", "")
    row: dict[str, Any] = {
        "prop": "no_crash",
        "variant": "seed",
        "status": "violated",
        "scenario": str(FINDINGS / "seed.no_crash.scenario.json"),
    }
    summary = replay_counterexamples([row], [])
    assert row["c"]["status"] == "no-compiler" and row["c"]["shows"] is None
    assert summary["compiler"] is None and summary["disagreements"] == []


def test_the_checked_in_findings_record_what_the_c_shows() -> None:
    """spec/verify-results.json records, for every SEED finding and defect, what the C
    showed when it was generated; replaying them on the C now gives the same."""
    from vmballoon.apps import specgen

    results = specgen.load_results()
    rows = [r for r in results["results"] if r["variant"] == "seed" and r.get("scenario")]
    defects = [d for d in results["defects"] if d.get("scenario")]
    assert rows and defects
    recorded = [r.get("c") for r in [*rows, *defects]]
    assert set(recorded) <= {"shows", "not-observable"}, recorded
    fresh = [{**r, "scenario": str(ROOT / r["scenario"])} for r in [*rows, *defects]]
    summary = replay_counterexamples(
        [f for f in fresh if "fix" not in f], [f for f in fresh if "fix" in f]
    )
    assert summary["disagreements"] == []
    assert [f["c"]["status"] for f in fresh] == recorded
    for d in defects:
        assert (d.get("c_seed_plus_fix"), d.get("c_fixed_minus_fix")) in (
            (False, True),
            (None, None),
        )


def test_the_c_is_built_while_the_proofs_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify starts building the C of the variants it may replay on before its first
    obligation, and replays only once those builds are done."""
    events: list[str] = []

    def ahead(variants: list[str], *, necessity: bool, per_defect: bool) -> Any:
        names = replayed_variants(variants, necessity=necessity, per_defect=per_defect)
        events.append(f"build {names}")
        return lambda: events.append("built")

    def replay(results: list[dict[str, Any]], defects: list[dict[str, Any]]) -> dict[str, Any]:
        events.append("replay")
        return replay_counterexamples(results, defects)

    real_schedule = vf.schedule

    def schedule(*a: Any) -> None:
        events.append("proofs")
        real_schedule(*a)

    args = build_parser().parse_args(["verify", *SMALL, "--out", str(tmp_path / "cex")])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vf, "schedule", schedule)
        assert cmd_verify(args, replay, ahead) == 0
    capsys.readouterr()
    assert events == ["build ['fixed-doorbell_set_status']", "proofs", "built", "replay"]


def test_the_variants_a_run_may_replay_on() -> None:
    from vmballoon.core.variants import FIX_NAMES

    full = replayed_variants(["seed", "fixed"], necessity=True, per_defect=True)
    assert full[0] == "seed" and len(full) == 1 + 2 * len(FIX_NAMES) == len(set(full))
    assert replayed_variants(["fixed"], necessity=False, per_defect=False) == []
    assert replayed_variants(["fixed"], necessity=True, per_defect=False) == [
        f"fixed-{f}" for f in FIX_NAMES
    ]
