"""verify's exit code never lies: a crash, an unknown or an unconfirmed row of ANY
obligation (FIXED minus a fix, the accelerated search, the defects and divergences
included) fails the run; the verdict is read from statuses, never from words."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vmballoon.apps import verify as vf
from vmballoon.apps.verify_jobs import (
    SECONDS,
    Board,
    ConformanceJob,
    DeepJob,
    DefectJob,
    DivergenceJob,
    Job,
    Row,
    VacuityJob,
    VariantJob,
    plan,
)
from vmballoon.core.variants import FIX_NAMES, FIXED
from vmballoon.proofs.check import ConformanceOutcome, Outcome, conjuncts
from vmballoon.proofs.defects import DefectRow, lines_of
from vmballoon.proofs.props import PROPERTIES
from vmballoon.proofs.status import Status
from vmballoon.proofs.trace import Trace

ALL = [*PROPERTIES, "progress"]


def _setup() -> vf.Setup:
    args = argparse.Namespace(
        variant="all", property=None, no_necessity=False, timeout=30.0, depth=14, jobs=2, out=None
    )
    return vf.Setup.of(args)


def _good_board() -> Board:
    """The board of a run where everything holds (statuses as a full run gives them)."""
    b = Board(per_defect=True, necessity=True, timeout=30.0, out=None)
    b.results += [
        Outcome(n, "fixed", "induction", Status.PROVED, 0.0) for n in [*conjuncts(), "progress"]
    ]
    b.results.append(Outcome("vacuity", "fixed", "vacuity", Status.PROVED, 1.0))
    b.results += [Outcome(n, "seed", "bmc", Status.VIOLATED, 1.0, depth=7) for n in ALL]
    for fix in FIX_NAMES:
        minus = FIXED.without(fix).name
        b.results += [Outcome(n, minus, "bmc", Status.NO_CEX, 1.0, depth=14) for n in PROPERTIES]
        b.defects[fix] = DefectRow(fix, lines_of(fix), "protocol", 7, Status.VIOLATED, 1.0, "seed")
    b.conformance += [ConformanceOutcome(v, True, {}) for v in ("seed", "fixed")]
    return b


def test_a_good_run_exits_0() -> None:
    v = vf.verdict(_setup(), _good_board(), {"disagreements": []})
    assert (v.code, v.reasons) == (0, [])


def _every_kind_of_job() -> list[Job]:
    """One obligation of each kind a full run has (those planned up front, and those
    planned on the way)."""
    jobs = plan(["seed", "fixed"], ALL, 30.0, 14, None, True)
    jobs += [
        DeepJob(variant="seed", timeout=30.0, props=("rate_counter", "throttle")),
        DivergenceJob(variant="seed", timeout=30.0, fix="batch_pfn", props=("protocol",)),
        DefectJob(variant="seed", timeout=30.0, fix="batch_pfn", props=("protocol",)),
    ]
    kinds = {
        (type(j), getattr(j, "bmc", None), getattr(j, "tied", None), j.variant == "seed")
        for j in jobs
    }
    assert len(kinds) >= 8  # seed, FIXED minus F, FIXED, vacuity, conformance, deep, ...
    return jobs


@pytest.mark.parametrize("job", _every_kind_of_job(), ids=lambda j: f"{j.variant}-{j.name()}")
def test_a_crash_of_any_obligation_fails_the_run(job: Job) -> None:
    """Today's main: raising inside the ``fixed-batch_pfn`` job alone gave exit 0."""
    board = _good_board()
    job.record(board, job.crashed(RuntimeError("planted")))
    board.crashes.append(f"{job.variant} {job.name()}: planted")
    v = vf.verdict(_setup(), board, {"disagreements": []})
    assert v.code == 1, v


def test_the_rows_of_a_crash_fail_the_run_even_unannounced() -> None:
    """Without the crash list, the error rows alone fail the run, job by job."""
    for job in _every_kind_of_job():
        if isinstance(job, DivergenceJob):
            continue  # a divergence has no row: the defect's search computes it again
        board = _good_board()
        job.record(board, job.crashed(RuntimeError("planted")))
        assert vf.verdict(_setup(), board, {"disagreements": []}).code == 1, job


@pytest.mark.parametrize("status", [Status.UNKNOWN, Status.UNCONFIRMED, Status.ERROR])
@pytest.mark.parametrize("variant", ["seed", "fixed", FIXED.without("batch_pfn").name])
def test_an_open_row_of_any_variant_fails_the_run(status: Status, variant: str) -> None:
    board = _good_board()
    k = next(i for i, r in enumerate(board.results) if r.variant == variant)
    board.results[k].status = status
    assert vf.verdict(_setup(), board, {"disagreements": []}).code == 1


def test_an_unknown_defect_search_is_incomplete_and_an_unconfirmed_one_fails() -> None:
    board = _good_board()
    board.defects["batch_pfn"].status = Status.UNKNOWN
    assert vf.verdict(_setup(), board, {"disagreements": []}).code == 3
    board.defects["batch_pfn"].status = Status.UNCONFIRMED
    assert vf.verdict(_setup(), board, {"disagreements": []}).code == 1
    del board.defects["batch_pfn"]
    assert vf.verdict(_setup(), board, {"disagreements": []}).code == 1


def test_a_failed_conformance_or_a_c_disagreement_fails_the_run() -> None:
    board = _good_board()
    board.conformance[0] = ConformanceOutcome("seed", False, {})
    assert vf.verdict(_setup(), board, {"disagreements": []}).code == 1
    assert vf.verdict(_setup(), _good_board(), {"disagreements": ["x"]}).code == 1


def test_fixed_minus_a_fix_proved_rows_say_they_are_not_tied_to_the_model() -> None:
    """FIXED minus a fix gets no conformance and no totality check: its "proved" rows
    are marked in the row (``tied_to_model: false``) and in the necessity table."""
    from vmballoon.apps.verify_render import necessity_cell

    minus = FIXED.without("batch_pfn").name
    [job] = [j for j in plan(["seed", "fixed"], ALL, 30.0, 14, None, True) if j.variant == minus]
    board = _good_board()
    job.record(board, [Outcome("accounting", minus, "induction", Status.PROVED, 0.0)])
    row = board.results[-1]
    assert row.tied is False and row.to_json()["tied_to_model"] is False
    assert "not tied to the model" in row.detail
    assert "1 proved, not tied to the model" in necessity_cell(board, minus)
    # FIXED's own rows are tied (conformance, totality): no such field
    fixed = next(j for j in plan(["fixed"], ALL, 30.0, 14, None, False) if j.variant == "fixed")
    fixed.record(board, [Outcome("accounting", "fixed", "induction", Status.PROVED, 0.0)])
    assert "tied_to_model" not in board.results[-1].to_json()
    assert vf.verdict(_setup(), board, {"disagreements": []}).code == 0  # counted by ok


@dataclass(frozen=True)
class _Raises(Job):
    """An obligation that raises in its worker (planted)."""

    def run(self) -> list[Row]:
        raise RuntimeError("planted in the worker")


def test_a_job_raising_in_its_worker_gives_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end through the scheduler and its worker processes."""

    def planted(*_: object) -> list[Job]:
        return [_Raises(variant=FIXED.without("batch_pfn").name, timeout=1.0)]

    monkeypatch.setattr(vf, "plan", planted)
    args = argparse.Namespace(
        variant="fixed-batch_pfn",
        property=["accounting"],
        no_necessity=True,
        timeout=1.0,
        depth=1,
        jobs=1,
        out=str(tmp_path / "out"),
        json=False,
    )
    assert vf.cmd_verify(args) == 1
    out = capsys.readouterr().out
    assert "crashed: fixed-batch_pfn _Raises: RuntimeError('planted in the worker')" in out
    assert out.rstrip().splitlines()[-1].startswith("FAILED")


def test_vacuity_is_not_planned_without_fixed() -> None:
    assert not any(isinstance(j, VacuityJob) for j in plan(["seed"], ALL, 1.0, 1, None, False))
    assert sum(
        isinstance(j, VariantJob) for j in plan(["seed", "fixed"], ALL, 1.0, 1, None, True)
    ) == 2 + len(FIX_NAMES)


def test_a_replay_exception_while_confirming_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """vmballoon/proofs/check.py's confirmation: a reference replay that raises confirms nothing."""
    from vmballoon import reference
    from vmballoon.core.scenario import load_scenario
    from vmballoon.core.variants import SEED
    from vmballoon.proofs import check

    sc = load_scenario(str(Path(__file__).parents[1] / "spec/findings/seed.no_crash.scenario.json"))
    assert check.confirm("no_crash", sc, SEED).confirmed

    def boom(*_: object, **__: object) -> object:
        raise RuntimeError("planted")

    monkeypatch.setattr(reference, "replay", boom)
    seen = check.confirm("no_crash", sc, SEED)
    assert seen.violations and not seen.confirmed
    assert seen.problem is not None and "reference replay failed" in seen.problem
    # through the reporting of a counterexample: the row is unconfirmed, never violated
    monkeypatch.setattr(check, "to_scenario", lambda trace, variant: sc)
    o = Outcome("no_crash", "seed", "bmc", Status.VIOLATED, 0.0, depth=10)
    check.report_counterexample(o, Trace([{"loc": 0}], []), SEED, None)
    assert o.status == Status.UNCONFIRMED
    assert o.replay[-1]["message"].startswith("reference replay failed")


def test_a_result_row_names_the_assumptions_of_its_property() -> None:
    """A verify row made without assumptions of its own names those its property rests
    on (every "proved" names them); assumptions given are kept."""
    from vmballoon.core.assumptions import names_for

    for prop in ("no_leak", "progress", "target_from_host"):
        row = Outcome(prop, "fixed", "induction", Status.PROVED, 0.0)
        assert row.assumptions == names_for(prop) and row.assumptions, prop
    given = Outcome("no_leak", "fixed", "induction", Status.PROVED, 0.0, assumptions=["x"])
    assert given.assumptions == ["x"]


def test_a_result_row_in_json() -> None:
    """A row of ``verify --json``'s ``results``: every field of the row (docs/verify.md),
    ``tied_to_model`` and ``c`` only where set."""
    from vmballoon.core.assumptions import names_for

    row = Outcome("no_leak", "fixed-batch_pfn", "bmc", Status.NO_CEX, 1.5, "none", depth=14)
    assert row.to_json() == {
        "prop": "no_leak",
        "variant": "fixed-batch_pfn",
        "kind": "bmc",
        "status": "no-cex",
        "seconds": 1.5,
        "detail": "none",
        "depth": 14,
        "scenario": None,
        "replay": [],
        "assumptions": names_for("no_leak"),
    }
    marked = Outcome("no_leak", "fixed-batch_pfn", "induction", Status.PROVED, 0.0, tied=False)
    marked.c = {"status": "shows"}
    doc = marked.to_json()
    assert doc["tied_to_model"] is False and doc["c"] == {"status": "shows"}


def test_only_the_seeds_open_counter_properties_go_to_the_accelerated_search() -> None:
    """The accelerated search is planned for the SEED properties over the allocation
    counters that plain BMC left without a counterexample, in ACCEL_PROPS order; not
    for another variant's, nor for a violated or proved one."""
    from vmballoon.proofs.check import Outcome, Status, seed_open_for_acceleration

    rows = [
        Outcome("throttle", "seed", "bmc", Status.NO_CEX, 1.0),
        Outcome("rate_counter", "seed", "bmc", Status.NO_CEX, 1.0),
        Outcome("rate_bounds", "seed", "bmc", Status.VIOLATED, 1.0),
        Outcome("throttle", "fixed-count_allocations", "bmc", Status.NO_CEX, 1.0),
        Outcome("no_leak", "seed", "bmc", Status.NO_CEX, 1.0),
    ]
    assert seed_open_for_acceleration(rows) == ["rate_counter", "throttle"]


def test_a_counterexample_file_names_the_assumptions_its_result_rests_on(tmp_path: Path) -> None:
    """``write_scenario`` writes ``meta.assumptions``: those given, else the assumptions
    every result about the property rests on."""
    import json

    from vmballoon.core.assumptions import names_for
    from vmballoon.core.scenario import Scenario
    from vmballoon.proofs.check import write_scenario

    sc = Scenario(steps=("work",), frames=64)
    plain = json.loads(write_scenario(tmp_path / "a.json", sc, {"property": "no_leak"}).read_text())
    assert plain["meta"]["assumptions"] == names_for("no_leak")
    given = {"property": "progress", "assumptions": ["host_success"]}
    told = json.loads(write_scenario(tmp_path / "b.json", sc, given).read_text())
    assert told["meta"]["assumptions"] == ["host_success"]


def test_the_accelerated_search_answers_from_the_full_system_what_the_pinned_left_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``deep_search`` asks the pinned system first; a property it does not violate is
    asked again of the full system, whose answer (with both searches' time) is the
    property's, marked ``full``; one the pinned system violates keeps that answer."""
    from vmballoon.core.variants import SEED
    from vmballoon.proofs import check
    from vmballoon.proofs.check import Bmc, Status

    calls: list[tuple[list[str], bool]] = []

    def window(names: list[str], variant: object, **kw: object) -> dict[str, Bmc]:
        calls.append((list(names), bool(kw["pinned"])))
        if kw["pinned"]:
            return {
                "throttle": Bmc(Status.VIOLATED, None, 20, 1.0),
                "rate_bounds": Bmc(Status.NO_CEX, None, 22, 2.0),
            }
        return {"rate_bounds": Bmc(Status.VIOLATED, None, 21, 3.0)}

    monkeypatch.setattr(check, "bmc_window", window)
    got = check.deep_search(["throttle", "rate_bounds"], SEED, depth=22, timeout=1.0)
    assert calls == [(["throttle", "rate_bounds"], True), (["rate_bounds"], False)]
    assert got["throttle"] == (Bmc(Status.VIOLATED, None, 20, 1.0), "pinned")
    assert got["rate_bounds"] == (Bmc(Status.VIOLATED, None, 21, 5.0), "full")


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (ROOT / "spec" / "findings").glob("*.scenario.json"))
)
def test_a_counterexample_file_is_written_as_the_checked_in_findings_are(
    name: str, tmp_path: Path
) -> None:
    """``write_scenario`` writes a finding's scenario and meta back byte for byte as
    ``spec/findings`` holds them: the counterexample files verify writes are what
    ``spec --from-verify`` records and CI compares."""
    import json

    from vmballoon.core.scenario import load_scenario
    from vmballoon.proofs.check import write_scenario

    path = ROOT / "spec" / "findings" / name
    meta = json.loads(path.read_text())["meta"]
    out = write_scenario(tmp_path / name, load_scenario(path), meta)
    assert out.read_bytes() == path.read_bytes()


def test_the_pinned_search_answers_with_the_inputs_that_do_not_matter_at_their_defaults() -> None:
    """``bmc_window(..., pinned=True)``, the accelerated search's first and cheap pass,
    searches the pinned environment (:mod:`vmballoon.proofs.pinned`): its counterexample
    (SEED's rate_counter) leaves every status SUCCESS (START's may grant capabilities)
    and every input outside ``FREE`` at its default, which is what lets ``deep`` say it
    was found "with the inputs that do not matter at their defaults"."""
    from vmballoon.core.protocol import SUCCESS_WITH_CAPABILITIES
    from vmballoon.core.variants import SEED
    from vmballoon.proofs.check import bmc_window
    from vmballoon.proofs.pinned import FREE
    from vmballoon.proofs.status import Status

    found = bmc_window(["rate_counter"], SEED, depth=12, timeout=30.0, accel=False, pinned=True)
    row = found["rate_counter"]
    assert row.status == Status.VIOLATED and row.trace is not None
    for inputs in row.trace.inputs:
        for name, value in inputs.items():
            if name.endswith("_st"):
                allowed = {0, SUCCESS_WITH_CAPABILITIES} if name == "START_st" else {0}
                assert value in allowed, (name, value)
            elif name not in FREE:
                assert value == (name == "v_ok"), (name, value)


def test_plan_puts_the_longest_obligations_first() -> None:
    """The seed first (its follow-ups are the longest chain), then the conformance checks,
    then every other obligation by its expected seconds, the longest first, so that the
    two workers end close together; every expected time names an obligation of the plan."""
    jobs = plan(["seed", "fixed"], ALL, 30.0, 14, None, True)
    assert isinstance(jobs[0], VariantJob) and jobs[0].variant == "seed"
    assert [type(j) for j in jobs[1:3]] == [ConformanceJob, ConformanceJob]
    rest = jobs[3:]
    names = ["vacuity" if isinstance(j, VacuityJob) else j.variant for j in rest]
    assert sorted(names) == sorted(SECONDS)  # each obligation has its time, and no other
    costs = [SECONDS[n] for n in names]
    assert costs == sorted(costs, reverse=True)
    assert names[-2:] == [FIXED.without("doorbell_set_status").name, "vacuity"]
