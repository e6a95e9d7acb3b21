"""The obligations of ``vmballoon.proofs.check`` on answers ``verify`` never gives them.

``check_variant`` and ``progress_outcome`` decide a variant's rows from Houdini's answer
(proved, failed, a BMC search for the rest, or every row unknown when Houdini gave up);
``bmc`` and ``deep`` turn search answers into rows; ``bmc_all`` and ``bmc_window``
find synthetic properties at the depth of their first violation.  ``verify`` only shows
them runs where FIXED proves everything and the seed's defects are found, so these tests
stand in for Houdini and the searches, or use properties whose answers are known.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import z3

from tests.conftest import ROOT
from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.model.state import Loc
from vmballoon.proofs import check
from vmballoon.proofs import progress as pg
from vmballoon.proofs.check import Houdini, InvariantOutcome, Outcome
from vmballoon.proofs.encoding import Expr, State, loc_val
from vmballoon.proofs.props import AUX, PROPERTIES
from vmballoon.proofs.status import Status
from vmballoon.proofs.trace import Trace
from vmballoon.proofs.unrolling import Answer, Shortest
from vmballoon.proofs.vacuity import Totality

PROPS = ["no_leak", "host_agreement", "accounting"]


class _Calls:
    """What check_variant asked of Houdini, BMC and the progress obligation."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answer: Houdini) -> None:
        self.houdini: list[tuple[str, bool]] = []
        self.bmc: list[list[str]] = []
        self.progress: list[bool] = []

        def houdini(variant: Variant, timeout: float, split: bool = False) -> Houdini:
            self.houdini.append((variant.name, split))
            return answer

        def bmc(names: list[str], variant: Variant, **_: Any) -> list[Outcome]:
            self.bmc.append(list(names))
            return [Outcome(n, variant.name, "bmc", Status.NO_CEX, 1.0) for n in names]

        def progress_outcome(variant: Variant, h: Houdini, *, use_bmc: bool, **_: Any) -> Outcome:
            self.progress.append(use_bmc)
            return Outcome("progress", variant.name, "induction", Status.PROVED, 1.0)

        monkeypatch.setattr(check, "houdini", houdini)
        monkeypatch.setattr(check, "bmc", bmc)
        monkeypatch.setattr(check, "progress_outcome", progress_outcome)


def _run(variant: Variant, props: list[str], *, use_bmc: bool) -> list[Outcome]:
    return check.check_variant(
        variant, props, timeout=5.0, depth=3, out_dir=Path("unused"), use_bmc=use_bmc
    )


def _rows(outs: list[Outcome]) -> list[tuple[str, str, Status]]:
    return [(o.prop, o.kind, o.status) for o in outs]


def test_fixed_reports_every_conjunct_proved_or_failed_where_houdini_dropped_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aux = list(AUX)
    kept = ["no_leak", "accounting", *aux[1:]]
    calls = _Calls(
        monkeypatch,
        Houdini("fixed", kept, {"host_agreement": "I_LOCK", aux[0]: "R_OPS"}, None, 2.0),
    )
    outs = _run(FIXED, [*PROPS, "progress"], use_bmc=False)
    assert calls.houdini == [("fixed", False)]
    assert calls.bmc == [] and calls.progress == [False]
    inv = outs[0]
    assert isinstance(inv, InvariantOutcome) and inv.status is Status.PROVED
    assert [c["name"] for c in inv.conjuncts] == kept
    by_prop = {o.prop: o for o in outs[1:]}
    assert _rows(outs[1:]) == [
        ("no_leak", "induction", Status.PROVED),
        ("host_agreement", "induction", Status.FAILED),
        ("accounting", "induction", Status.PROVED),
        # the lemmas are shown too, the one Houdini dropped as failed
        (aux[0], "induction", Status.FAILED),
        *((n, "induction", Status.PROVED) for n in aux[1:]),
        ("progress", "induction", Status.PROVED),
    ]
    assert "I_LOCK" in by_prop["host_agreement"].detail
    # a proof by the invariant has no time of its own
    assert not by_prop["no_leak"].measured and by_prop["no_leak"].seconds == 0.0


def test_other_variants_search_counterexamples_to_what_houdini_did_not_keep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _Calls(monkeypatch, Houdini("seed", ["accounting"], {"no_leak": "D_UNLOCK"}, None, 2.0))
    outs = _run(SEED, PROPS, use_bmc=True)
    assert calls.houdini == [("seed", True)]  # split lemmas for a variant with defects
    # no progress row unless asked; no lemma rows; no failure where BMC searches instead
    assert calls.progress == []
    assert calls.bmc == [["no_leak", "host_agreement"]]
    assert _rows(outs) == [
        ("invariant", "houdini", Status.PROVED),
        ("accounting", "induction", Status.PROVED),
        ("no_leak", "bmc", Status.NO_CEX),
        ("host_agreement", "bmc", Status.NO_CEX),
    ]


def test_nothing_left_for_bmc_asks_it_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _Calls(monkeypatch, Houdini("seed", list(PROPS), {}, None, 2.0))
    outs = _run(SEED, [*PROPS, "progress"], use_bmc=True)
    assert calls.bmc == [] and calls.progress == [True]
    assert [o.prop for o in outs] == ["invariant", *PROPS, "progress"]


@pytest.mark.parametrize("variant", [SEED, FIXED], ids=lambda v: v.name)
def test_houdini_giving_up_makes_every_asked_row_unknown(
    monkeypatch: pytest.MonkeyPatch, variant: Variant
) -> None:
    calls = _Calls(monkeypatch, Houdini(variant.name, [], {}, "timeout at I_LOCK", 7.0))
    outs = _run(variant, [*PROPS, "progress"], use_bmc=variant is SEED)
    assert calls.bmc == [] and calls.progress == []
    assert _rows(outs) == [(n, "induction", Status.UNKNOWN) for n in [*PROPS, "progress"]]
    assert all(o.detail == "timeout at I_LOCK" and o.seconds == 7.0 for o in outs)
    calls = _Calls(monkeypatch, Houdini(variant.name, [], {}, "timeout at I_LOCK", 7.0))
    assert [o.prop for o in _run(variant, PROPS, use_bmc=variant is SEED)] == PROPS


# -- the progress row -----------------------------------------------------------------------


class _Progress:
    """What progress_outcome asked of the progress proof, its BMC and the replay."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, bmc_answer: pg.ProgressBmc) -> None:
        self.proved: list[str] = []
        self.bmc: list[tuple[str, int, bool]] = []
        self.reported: list[tuple[str, str]] = []

        def prove(variant: Variant, timeout: float) -> pg.Proof:
            self.proved.append(variant.name)
            return pg.Proof(Status.PROVED, "per tick", 3.5)

        def bmc_progress(
            variant: Variant, *, depth: int, timeout: float, shortest: bool = True
        ) -> pg.ProgressBmc:
            self.bmc.append((variant.name, depth, shortest))
            return bmc_answer

        def report(o: Outcome, trace: Trace, variant: Variant, out: Any, note: str = "") -> None:
            self.reported.append((o.prop, note))

        monkeypatch.setattr(pg, "prove", prove)
        monkeypatch.setattr(pg, "bmc_progress", bmc_progress)
        monkeypatch.setattr(check, "report_counterexample", report)


def _progress(variant: Variant, h: Houdini, *, use_bmc: bool) -> Outcome:
    return check.progress_outcome(variant, h, use_bmc=use_bmc, depth=9, timeout=5.0, out_dir=None)


def test_progress_is_proved_only_over_the_whole_safety_invariant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _Progress(monkeypatch, pg.ProgressBmc(Status.NO_CEX, None, None, 9, 1.0))
    whole = Houdini("fixed", list(reversed(check.conjuncts())), {}, None, 2.0)
    o = _progress(FIXED, whole, use_bmc=False)
    assert calls.proved == ["fixed"] and calls.bmc == []
    assert (o.kind, o.status, o.seconds, o.detail) == ("induction", Status.PROVED, 3.5, "per tick")
    part = Houdini("fixed", check.conjuncts()[1:], {"accounting": "I_LOCK"}, None, 2.0)
    o = _progress(FIXED, part, use_bmc=False)
    assert calls.proved == ["fixed"]  # not asked again: it would assume what is not proved
    assert o.status is Status.FAILED and "I_LOCK" in o.detail and not o.measured


@pytest.mark.parametrize("variant", [SEED, FIXED], ids=lambda v: v.name)
def test_progress_bmc_searches_the_shortest_only_for_the_seed(
    monkeypatch: pytest.MonkeyPatch, variant: Variant
) -> None:
    h = Houdini(variant.name, [], {}, None, 2.0)
    calls = _Progress(monkeypatch, pg.ProgressBmc(Status.NO_CEX, None, None, 9, 1.5))
    o = _progress(variant, h, use_bmc=True)
    assert calls.bmc == [(variant.name, 9, variant is SEED)] and calls.proved == []
    assert (o.kind, o.status, o.depth, o.seconds) == ("bmc", Status.NO_CEX, 9, 1.5)
    assert "up to depth 9" in o.detail and calls.reported == []


def test_a_progress_counterexample_is_replayed_with_the_hosts_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trace = Trace([], [])
    calls = _Progress(monkeypatch, pg.ProgressBmc(Status.VIOLATED, trace, 77, 6, 1.0))
    o = _progress(SEED, Houdini("seed", [], {}, None, 2.0), use_bmc=True)
    assert (o.status, o.depth) == (Status.VIOLATED, 6)
    assert calls.reported == [("progress", " (cooperative host, target 77)")]
    calls = _Progress(monkeypatch, pg.ProgressBmc(Status.UNKNOWN, None, None, 4, 1.0))
    o = _progress(SEED, Houdini("seed", [], {}, None, 2.0), use_bmc=True)
    assert (o.status, o.depth, calls.reported) == (Status.UNKNOWN, 4, [])
    assert "no counterexample" not in o.detail


# -- the rows of BMC and of the accelerated search ---------------------------------------------


def test_bmc_rows_from_either_search_with_counterexamples_replayed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trace = Trace([], [])
    answers = {
        "no_leak": check.Bmc(Status.VIOLATED, trace, 5, 1.0),
        "protocol": check.Bmc(Status.NO_CEX, None, 7, 2.0),
        "accounting": check.Bmc(Status.UNKNOWN, None, 3, 3.0),
    }
    asked: list[tuple[str, bool]] = []

    def all_(names: list[str], variant: Variant, **kw: Any) -> dict[str, check.Bmc]:
        asked.append(("all", bool(kw.get("accel"))))
        return {n: answers[n] for n in names}

    def window(names: list[str], variant: Variant, **kw: Any) -> dict[str, check.Bmc]:
        asked.append(("window", bool(kw.get("accel"))))
        return {n: answers[n] for n in names}

    reported: list[tuple[str, str]] = []
    monkeypatch.setattr(check, "bmc_all", all_)
    monkeypatch.setattr(check, "bmc_window", window)
    monkeypatch.setattr(
        check,
        "report_counterexample",
        lambda o, t, v, out, note="": reported.append((o.prop, note)),
    )
    names = list(answers)
    for window_, how in ((False, "all"), (True, "window")):
        outs = check.bmc(names, SEED, depth=7, timeout=1.0, out_dir=None, window=window_)
        assert asked[-1] == (how, False)  # plain BMC: no accelerated steps either way
        assert [(o.prop, o.kind, o.status, o.depth, o.seconds) for o in outs] == [
            ("no_leak", "bmc", Status.VIOLATED, 5, 1.0),
            ("protocol", "bmc", Status.NO_CEX, 7, 2.0),
            ("accounting", "bmc", Status.UNKNOWN, 3, 3.0),
        ]
        assert outs[1].detail == "no counterexample up to depth 7" and outs[2].detail == ""
    assert reported == [("no_leak", ""), ("no_leak", "")]


def test_accelerated_rows_say_which_search_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    acc = Trace(
        [], [{"acc": True, "acc_k": 40}, {"acc": False, "acc_k": 9}, {"acc": True, "acc_k": 3}]
    )
    answers = {
        "throttle": (check.Bmc(Status.VIOLATED, acc, 20, 1.0), "pinned"),
        "rate_counter": (check.Bmc(Status.VIOLATED, Trace([], [{}]), 21, 1.0), "full"),
        "rate_bounds": (check.Bmc(Status.NO_CEX, None, 22, 2.0), "full"),
        "protocol": (check.Bmc(Status.UNKNOWN, None, 22, 3.0), "full"),
    }
    monkeypatch.setattr(check, "deep_search", lambda names, v, **kw: {n: answers[n] for n in names})
    notes: dict[str, str] = {}
    monkeypatch.setattr(
        check, "report_counterexample", lambda o, t, v, out, note="": notes.update({o.prop: note})
    )
    outs = check.deep(list(answers), SEED, depth=22, timeout=1.0, out_dir=None, plain_depth=14)
    assert [(o.prop, o.kind, o.status, o.depth) for o in outs] == [
        ("throttle", "accelerated", Status.VIOLATED, 20),
        ("rate_counter", "accelerated", Status.VIOLATED, 21),
        ("rate_bounds", "accelerated", Status.NO_CEX, 22),
        ("protocol", "accelerated", Status.UNKNOWN, 22),
    ]
    assert notes == {
        "throttle": "; accelerated steps of [40, 3] allocations"
        "; found with the inputs that do not matter at their defaults",
        "rate_counter": "",
    }
    assert "depth 14, nor up to depth 22" in outs[2].detail
    assert "depth 14;" in outs[3].detail and "timed out" in outs[3].detail


# -- BMC over synthetic properties: the depth of each first violation is known -------------

_AT = {"at_start": Loc.IDLE, "in_tick": Loc.W_BEGIN, "in_reset": Loc.R_START}
"""A property violated exactly at a location, and the first depth that reaches it from
Init: module init is IDLE (0), ``work`` enters W_BEGIN (1), the reset's cleanup and
pop come before its START (4)."""


def _not_at(loc: Loc) -> Callable[[State], Expr]:
    return lambda s: s["loc"] != loc_val(loc)


@pytest.fixture
def synthetic(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, loc in _AT.items():
        monkeypatch.setitem(PROPERTIES, name, _not_at(loc))
    monkeypatch.setitem(PROPERTIES, "never", lambda s: z3.BoolVal(True))


def _found(res: dict[str, check.Bmc]) -> dict[str, tuple[Status, int | None]]:
    for name, r in res.items():
        if r.trace is not None:  # the trace ends where the violation is, at its depth
            assert r.depth is not None and len(r.trace.states) == r.depth + 1, name
            assert r.trace.states[-1]["loc"] == _AT[name].value, name
    return {n: (r.status, r.depth) for n, r in res.items()}


@pytest.mark.usefixtures("synthetic")
def test_bmc_finds_each_property_at_the_depth_of_its_first_violation() -> None:
    got = check.bmc_all(["never", "in_reset", "in_tick", "at_start"], FIXED, depth=5, timeout=30.0)
    assert _found(got) == {
        "at_start": (Status.VIOLATED, 0),
        "in_tick": (Status.VIOLATED, 1),
        "in_reset": (Status.VIOLATED, 4),
        "never": (Status.NO_CEX, 5),
    }
    later = check.bmc_all(["in_reset", "at_start"], FIXED, depth=5, timeout=30.0, start=2)
    assert later["in_reset"].depth == 4 and later["at_start"].depth in (2, 3, 4, 5)
    # one query over every depth: a violation at some depth up to the bound, or none
    window = check.bmc_window(["never", "in_reset", "in_tick"], FIXED, depth=5, timeout=30.0)
    assert _found(window)["never"] == (Status.NO_CEX, 5)
    assert window["in_tick"].status is Status.VIOLATED and window["in_reset"].depth in (4, 5)
    # at the bound itself, and at the start
    edges = check.bmc_window(["in_reset"], FIXED, depth=4, timeout=30.0)
    assert _found(edges) == {"in_reset": (Status.VIOLATED, 4)}
    edges = check.bmc_window(["at_start"], FIXED, depth=1, timeout=30.0)
    assert _found(edges) == {"at_start": (Status.VIOLATED, 0)}


@pytest.mark.usefixtures("synthetic")
def test_a_search_the_solver_gives_up_on_is_unknown_not_clear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(check, "shortest", lambda ask, lo, hi, window: Shortest(3, None, True))
    got = check.bmc_all(["never", "in_tick"], FIXED, depth=5, timeout=30.0)
    assert _found(got) == {"never": (Status.UNKNOWN, 3), "in_tick": (Status.UNKNOWN, 3)}

    def undecided(*args: Any, **kwargs: Any) -> Any:
        return lambda lo, hi: Answer(z3.unknown, None, hi)

    monkeypatch.setattr(check, "query", undecided)
    got = check.bmc_window(["never", "in_tick"], FIXED, depth=5, timeout=30.0)
    assert _found(got) == {"never": (Status.UNKNOWN, 5), "in_tick": (Status.UNKNOWN, 5)}


# -- vacuity's verdict from each answer it can get -------------------------------------------


class Scripted:
    """A solver that gives one answer to every query (a stand-in for the solver of an
    obligation: tests/test_progress.py uses it too)."""

    def __init__(self, answer: z3.CheckSatResult) -> None:
        self.answer = answer

    def add(self, *_: Any) -> None:
        pass

    def check(self) -> z3.CheckSatResult:
        return self.answer

    def reason_unknown(self) -> str:
        return "timeout"


def _vacuity(
    monkeypatch: pytest.MonkeyPatch,
    init: z3.CheckSatResult,
    steps: dict[Loc, z3.CheckSatResult],
    total: Totality,
) -> Outcome:
    from vmballoon.proofs import vacuity as vac

    built: list[Loc] = []
    from vmballoon.proofs.encoding import successor as real

    def successor(loc: Loc, *args: Any) -> Any:
        built.append(loc)
        return real(loc, *args)

    monkeypatch.setattr(check, "successor", successor)
    monkeypatch.setattr(
        check, "_solver", lambda timeout: Scripted(steps.get(built[-1], z3.sat) if built else init)
    )
    monkeypatch.setattr(vac, "totality", lambda variant, inv, timeout: total)
    return check.vacuity(FIXED, 5.0)


def test_vacuity_tells_failed_from_undecided(monkeypatch: pytest.MonkeyPatch) -> None:
    fine = Totality("fixed")
    o = _vacuity(monkeypatch, z3.sat, {}, fine)
    assert o.status is Status.PROVED and o.detail.startswith("Init ∧ Inv sat")
    o = _vacuity(monkeypatch, z3.unknown, {}, fine)
    assert (o.status, o.detail) == (Status.UNKNOWN, "Init ∧ Inv: solver unknown (timeout)")
    o = _vacuity(monkeypatch, z3.unsat, {}, fine)
    assert (o.status, o.detail) == (Status.FAILED, "Init ∧ Inv unsat")
    # CRASHED is left out (no_crash makes it unreachable): never asked, never dead
    o = _vacuity(monkeypatch, z3.sat, {Loc.CRASHED: z3.unsat}, fine)
    assert o.status is Status.PROVED
    # a timeout says nothing about a transition: undecided, never dead
    o = _vacuity(monkeypatch, z3.sat, {Loc.I_LOCK: z3.unknown, Loc.D_LOOP: z3.unsat}, fine)
    assert (o.status, o.detail) == (
        Status.FAILED,
        "never enabled: ['D_LOOP']; solver unknown (timeout?) for: I_LOCK (timeout)",
    )
    o = _vacuity(monkeypatch, z3.sat, {Loc.I_LOCK: z3.unknown}, fine)
    assert (o.status, o.detail) == (
        Status.UNKNOWN,
        "solver unknown (timeout?) for: I_LOCK (timeout)",
    )
    # totality's dead and undecided locations join the transitions'
    partial = Totality("fixed", dead={"R_OPS": "exists"}, unknown=["D_TAIL"])
    o = _vacuity(monkeypatch, z3.sat, {}, partial)
    assert (o.status, o.detail) == (
        Status.FAILED,
        "never enabled: ['R_OPS (a state of Inv admits no input)']; "
        "solver unknown (timeout?) for: D_TAIL (totality)",
    )
    o = _vacuity(monkeypatch, z3.sat, {}, Totality("fixed", unknown=["D_TAIL"]))
    assert o.status is Status.UNKNOWN


# -- a counterexample's scenario: minimised, never later ---------------------------------------


def test_a_counterexample_is_minimised_and_still_breaks_its_property_at_the_same_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``report_counterexample`` keeps only the inputs the violation needs, and only
    reductions that break the property no later than the solver's trace did (the row's
    depth is the shortest counterexample's: minimising must not trade inputs for
    transitions).  The solver's scenario here is the checked-in no_leak finding padded
    with inputs it does not need: more ticks, host answers and allocations."""
    from dataclasses import replace

    from vmballoon.core.scenario import Response, load_scenario
    from vmballoon.model.properties import check_trace

    finding = load_scenario(str(ROOT / "spec" / "findings" / "seed.no_leak.scenario.json"))
    padded = replace(
        finding,
        steps=(*finding.steps, "work"),
        hv=(*finding.hv, *[Response(0, 1)] * 3),
        alloc=(True,) * 3,
    )

    def first(sc: Any) -> list[int]:
        return [v.step for v in check_trace(sc, SEED, frozenset({"no_leak"}))]

    assert first(padded) == first(finding) == [14]
    monkeypatch.setattr(check, "to_scenario", lambda trace, variant: padded)
    o = Outcome("no_leak", "seed", "bmc", Status.VIOLATED, 1.0, depth=14)
    check.report_counterexample(o, Trace([{"loc": 0}, {"loc": 1}], [{}]), SEED, tmp_path)
    assert o.status is Status.VIOLATED and o.detail == "trace: IDLE W_BEGIN"
    assert o.scenario == str(tmp_path / "seed.no_leak.scenario.json")
    written = load_scenario(o.scenario)
    assert first(written) == [14]
    assert len(written.steps) + len(written.hv) < len(padded.steps) + len(padded.hv)
    assert [v["step"] for v in o.replay if v["property"] == "no_leak"] == [14]


def test_a_conformance_row_keeps_what_the_argument_reported_under_its_own_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vmballoon.proofs import argument

    report = {"prop": "x", "kind": "y", "status": "z", "ok": False, "witness": {"targets": 3}}
    monkeypatch.setattr(argument, "outcome", lambda variant: report)
    row = check.conformance_outcome(SEED)
    assert (row.variant, row.ok, row.status) == ("seed", False, Status.FAILED)
    assert row.data == {"ok": False, "witness": {"targets": 3}}
    assert row.to_json() == {
        "prop": "conformance",
        "kind": "conformance",
        "status": Status.FAILED,
        "ok": False,
        "witness": {"targets": 3},
    }
    monkeypatch.setattr(argument, "outcome", lambda variant: {**report, "ok": True})
    assert check.conformance_outcome(FIXED).status is Status.PASSED


def test_a_transition_is_enabled_only_from_its_own_location(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Vacuity asks each transition from a state of the invariant AT its location: a step
    of I_LOCK whose constraint holds only elsewhere is never enabled, however enabled it
    would be from other locations."""
    from vmballoon.proofs import vacuity as vac
    from vmballoon.proofs.encoding import successor as real

    def successor(loc: Loc, s: State, *args: Any) -> Any:
        st = real(loc, s, *args)
        if loc == Loc.I_LOCK:
            st.cons = [*st.cons, s["loc"] != loc_val(Loc.I_LOCK)]
        return st

    monkeypatch.setattr(check, "successor", successor)
    monkeypatch.setattr(vac, "totality", lambda variant, inv, timeout: Totality("fixed"))
    o = check.vacuity(FIXED, 60.0)
    assert (o.status, o.detail) == (Status.FAILED, "never enabled: ['I_LOCK']")
