"""``defect_job``'s order of searches, with each search stood in for.

A defect's search (vmballoon/proofs/defects.py) asks first where SEED and SEED + fix part,
then the product searches from the bound that gives, then from the divergences, and
reports what the replay showed.  ``verify`` meets only the paths its eight defects take;
these tests drive every path with stand-ins that record what they were asked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import FIXED
from vmballoon.proofs import defects
from vmballoon.proofs.check import Outcome
from vmballoon.proofs.defects import DefectRow, _Search
from vmballoon.proofs.props import PROPERTIES
from vmballoon.proofs.status import Status
from vmballoon.proofs.trace import Trace

TRACE = Trace([{"loc": 0}], [])
ROW = DefectRow("stand-in", "", None, None, Status.NONE, 0.0, "stand-in")


def _row(what: str, run: _Search) -> DefectRow:
    return run.row("no_crash", 9, None, Status.VIOLATED, what, what)


class _Searches:
    """Stand-ins for the searches of one defect job: the divergence's answer, whether
    the product and the divergences find anything; what each was asked."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        first: tuple[int, Any, list[str]] | None,
        *,
        product: bool,
        divergences: bool,
    ) -> None:
        self.asked: list[tuple[str, Any]] = []
        self.runs: list[_Search] = []

        def divergence_for(
            fix: str, props: list[str], depth: int, timeout: float, early: Any, notes: Any
        ) -> Any:
            self.asked.append(("divergence", (fix, props, depth, timeout, early)))
            return first

        def parting(run: _Search, k0: int, trace0: Trace, shown: str) -> DefectRow:
            self.asked.append(("parting", (k0, shown)))
            return _row("parting", run)

        def product_phase(run: _Search, lower: dict[bool, int]) -> Any:
            self.runs.append(run)
            self.asked.append(("product", dict(lower)))
            return (_row("product", run), None) if product else (None, ("p", None, 7))

        def from_divergences(run: _Search, first: Any) -> DefectRow | None:
            self.asked.append(("divergences", first))
            return _row("divergences", run) if divergences else None

        def unshown(run: _Search, last: Any) -> DefectRow:
            self.asked.append(("unshown", last))
            return run.row(None, None, None, Status.NONE, "unshown", "")

        monkeypatch.setattr(defects, "_divergence_for", divergence_for)
        monkeypatch.setattr(defects, "_shown_at_parting", parting)
        monkeypatch.setattr(defects, "_product_phase", product_phase)
        monkeypatch.setattr(defects, "_from_divergences", from_divergences)
        monkeypatch.setattr(defects, "_unshown", unshown)


JOB = {"fix": "reset_needs_ops", "props": ["no_crash"], "depth": 12, "timeout": 3.0}


def test_a_parting_transition_that_shows_the_defect_is_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = _Searches(monkeypatch, (5, TRACE, ["protocol", "no_crash"]), product=True, divergences=True)
    row = defects.defect_job(JOB)
    assert row.source == "parting"
    assert s.asked == [
        ("divergence", ("reset_needs_ops", ["no_crash"], 12, 3.0, None)),
        ("parting", (5, "protocol")),
    ]


def test_a_parting_transition_that_shows_nothing_raises_the_pinned_bound_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = _Searches(monkeypatch, (5, TRACE, []), product=True, divergences=True)
    row = defects.defect_job({**JOB, "start": 3})
    assert row.source == "product"
    # before the two part they are one driver (pinned inputs); every input: no such bound
    assert s.asked[1] == ("product", {True: 6, False: 3})
    assert s.runs[0].notes[-1].endswith("; that transition shows no violation")
    s = _Searches(monkeypatch, (5, TRACE, []), product=True, divergences=True)
    defects.defect_job({**JOB, "start": 9})
    assert s.asked[1] == ("product", {True: 9, False: 9})


def test_without_a_divergence_the_product_searches_from_the_jobs_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = _Searches(monkeypatch, None, product=False, divergences=True)
    row = defects.defect_job({**JOB, "start": 4})
    # no divergence: nothing to search from; the last unconfirmed answer is reported
    assert row.source == "unshown"
    assert [a for a, _ in s.asked] == ["divergence", "product", "unshown"]
    assert s.asked[1] == ("product", {True: 4, False: 4})
    assert s.asked[2] == ("unshown", ("p", None, 7))
    s = _Searches(monkeypatch, None, product=False, divergences=True)
    defects.defect_job(JOB)
    assert s.asked[1] == ("product", {True: 0, False: 0})  # the start defaults to 0


def test_when_the_product_shows_nothing_the_divergences_are_searched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = _Searches(monkeypatch, (5, TRACE, []), product=False, divergences=True)
    row = defects.defect_job(JOB)
    assert row.source == "divergences"
    assert s.asked[2] == ("divergences", (5, TRACE))
    s = _Searches(monkeypatch, (5, TRACE, []), product=False, divergences=False)
    row = defects.defect_job(JOB)
    assert row.source == "unshown"
    assert [a for a, _ in s.asked] == ["divergence", "product", "divergences", "unshown"]


def test_the_jobs_parameters_reach_the_search_and_a_run_ahead_counts_in_its_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    early = {"seconds": 40.0, "first": None}
    s = _Searches(monkeypatch, None, product=True, divergences=False)
    job = {**JOB, "start": 2, "window": True, "start_exact": True, "out": str(tmp_path)}
    row = defects.defect_job({**job, "divergence": early})
    run = s.runs[0]
    assert (run.fix, run.props, run.depth, run.start, run.timeout) == (
        "reset_needs_ops",
        ["no_crash"],
        12,
        2,
        3.0,
    )
    assert run.window and run.exact and run.out_dir == tmp_path
    assert s.asked[0][1][4] is early
    assert row.seconds >= 40.0  # the search began with the divergence job
    s = _Searches(monkeypatch, None, product=True, divergences=False)
    row = defects.defect_job(JOB)
    run = s.runs[0]
    assert not run.window and not run.exact and run.out_dir is None and row.seconds < 40.0


# -- plan_defect: which properties, from which bound ------------------------------------------


def _o(prop: str, variant: str, status: Status, depth: int | None, kind: str = "bmc") -> Outcome:
    return Outcome(prop, variant, kind, status, 0.0, depth=depth)


class _Plan:
    """plan_defect with SEED's counterexample search and the row stood in for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, shown: str | None = None) -> None:
        self.looked: list[list[str]] = []
        self.rows: list[tuple[Any, ...]] = []

        def seed_cex(fix: str, props: list[str], seed: dict[str, Outcome]) -> Any:
            self.looked.append(list(props))
            return (seed[shown], Scenario(steps=("work",))) if shown else None

        def row(fix: str, prop: str, depth: int, sc: Any, status: Status, *rest: Any) -> DefectRow:
            self.rows.append((prop, depth, rest[-1]))
            return ROW

        monkeypatch.setattr(defects, "_seed_counterexample", seed_cex)
        monkeypatch.setattr(defects, "defect_row", row)


FIX = "reset_needs_ops"
MINUS = FIXED.without(FIX).name


def test_the_properties_looked_at_are_those_the_fix_is_needed_for_less_those_seed_proves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = _Plan(monkeypatch)
    results = [
        _o("no_crash", MINUS, Status.VIOLATED, 9),
        _o("protocol", MINUS, Status.VIOLATED, 11),
        _o("no_leak", MINUS, Status.NO_CEX, 14),
        _o("accounting", "fixed", Status.VIOLATED, 3),  # another variant's row
        _o("protocol", "seed", Status.PROVED, None, "induction"),
        _o("no_crash", "seed", Status.VIOLATED, 10),
    ]
    row, job = defects.plan_defect(FIX, results, True, timeout=5.0, out=None)
    assert row is None and job is not None
    assert job["props"] == ["no_crash"] and p.looked == [["no_crash"]]
    assert (job["start"], job["start_exact"], job["window"], job["fix"]) == (10, True, True, FIX)
    # without necessity rows (or none violated): every property SEED does not prove
    _, job = defects.plan_defect(FIX, results, False, timeout=5.0, out=None)
    assert job is not None and "protocol" not in job["props"]
    assert job["props"] == [n for n in PROPERTIES if n != "protocol"]
    _, job = defects.plan_defect(FIX, results[3:], True, timeout=5.0, out=None)
    assert job is not None and job["props"] == [n for n in PROPERTIES if n != "protocol"]


def test_the_lower_bound_is_seeds_least_depth_over_every_property_looked_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _Plan(monkeypatch)
    need = [_o(n, MINUS, Status.VIOLATED, 9) for n in ("no_crash", "protocol", "no_leak")]

    def start(*seed: Outcome) -> tuple[int, bool]:
        _, job = defects.plan_defect(FIX, [*need, *seed], True, timeout=5.0, out=None)
        assert job is not None
        return job["start"], job["start_exact"]

    found = _o("no_crash", "seed", Status.VIOLATED, 12)
    clear = _o("protocol", "seed", Status.NO_CEX, 14)  # none up to 14: at least 15
    deep = _o("no_leak", "seed", Status.VIOLATED, 20, "accelerated")
    assert start(found, clear, deep) == (12, False)  # an accelerated depth is not exact
    assert start(found, clear, _o("no_leak", "seed", Status.NO_CEX, 11)) == (12, True)
    assert start(_o("no_crash", "seed", Status.NO_CEX, 14), clear, deep) == (15, False)
    # a property SEED's BMC did not look at bounds nothing
    assert start(found, clear) == (0, True)
    assert start(found, clear, _o("no_leak", "seed", Status.UNKNOWN, None)) == (0, True)


def test_seeds_own_counterexample_claims_every_input_only_at_the_exact_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    need = [_o(n, MINUS, Status.VIOLATED, 9) for n in ("no_crash", "protocol")]
    seed = [
        _o("no_crash", "seed", Status.VIOLATED, 10),
        _o("protocol", "seed", Status.VIOLATED, 12),
    ]
    for shown, label in (("no_crash", "every input"), ("protocol", "property")):
        p = _Plan(monkeypatch, shown)
        row, job = defects.plan_defect(FIX, [*need, *seed], True, timeout=5.0, out=None)
        assert row is ROW and job is None
        assert p.rows == [(shown, 10 if shown == "no_crash" else 12, label)]
    inexact = [seed[0], _o("protocol", "seed", Status.VIOLATED, 12, "accelerated")]
    p = _Plan(monkeypatch, "no_crash")
    defects.plan_defect(FIX, [*need, *inexact], True, timeout=5.0, out=None)
    assert p.rows == [("no_crash", 10, "property")]


# -- SEED's own counterexamples, the divergence run ahead, the rows' words ---------------------


def test_seeds_shallowest_counterexample_that_shows_the_defect_is_taken(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Shallowest first, ties in the order of the properties; a row without a file, or
    whose file does not load, or that does not show the defect, is passed over."""
    good = tmp_path / "good.json"
    good.write_text(json.dumps(Scenario(steps=("work",)).to_json()))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    shows = {"no_leak", "protocol"}
    asked: list[str] = []

    def confirm(fix: str, prop: str, sc: Scenario) -> tuple[bool, dict[str, Any]]:
        asked.append(prop)
        return prop in shows, {}

    monkeypatch.setattr(defects, "confirm_defect", confirm)

    def row(prop: str, depth: int, path: Any, status: Status = Status.VIOLATED) -> Outcome:
        o = _o(prop, "seed", status, depth)
        o.scenario = str(path) if path else None
        return o

    order = list(PROPERTIES)
    assert order.index("no_leak") > order.index("accounting")
    seed = {
        "no_leak": row("no_leak", 11, good),
        "accounting": row("accounting", 11, good),  # first of depth 11, shows nothing
        "protocol": row("protocol", 12, good),
        "free_order": row("free_order", 9, None),  # no file
        "ownership": row("ownership", 8, bad),  # a file that does not load
        "no_crash": row("no_crash", 5, good, Status.NO_CEX),  # not a counterexample
    }
    props = [*seed, "throttle"]
    found = defects._seed_counterexample(FIX, props, seed)
    assert found is not None and found[0] is seed["no_leak"]
    assert asked == ["accounting", "no_leak"]
    assert defects._seed_counterexample(FIX, ["protocol", "accounting"], seed) is not None
    assert defects._seed_counterexample(FIX, ["accounting", "free_order"], seed) is None


def test_a_divergence_is_run_ahead_only_where_seed_shows_no_defect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown: list[Any] = []
    monkeypatch.setattr(defects, "_seed_counterexample", lambda fix, props, seed: shown[0])
    results = [
        _o("protocol", "seed", Status.PROVED, None, "induction"),
        _o("no_crash", "seed", Status.VIOLATED, 10),
        _o("no_leak", MINUS, Status.VIOLATED, 10),
    ]
    shown.append(None)
    job = defects.plan_divergence(FIX, results, timeout=4.0)
    assert job == {
        "fix": FIX,
        "props": [n for n in PROPERTIES if n != "protocol"],
        "depth": defects.DEFECT_DEPTH,
        "timeout": 4.0,
    }
    shown[0] = (results[1], Scenario(steps=("work",)))
    assert defects.plan_divergence(FIX, results, timeout=4.0) is None
    shown[0] = None
    assert defects.plan_divergence(FIX, results[2:], timeout=4.0) is None  # no SEED results
    proved = [_o(n, "seed", Status.PROVED, None, "induction") for n in PROPERTIES]
    assert defects.plan_divergence(FIX, proved, timeout=4.0) is None  # nothing to show


def test_a_product_search_that_found_nothing_says_how_it_ended() -> None:
    import time

    from vmballoon.proofs.unrolling import Found

    later = time.monotonic() + 100
    note = defects._product_note
    assert note(Found(20), True, 6, 28, later) == "pinned inputs: no scenario from depth 6 up to 28"
    assert note(Found(20), False, 0, 28, later) == "every input: no scenario from depth 0 up to 28"
    assert (
        note(Found(17, unknown=True), False, 0, 28, later)
        == "every input: solver unknown (timeout) at depth 17"
    )
    spent = f"pinned inputs: budget of {defects.PRODUCT_BUDGET:.0f} s spent at depth 17"
    assert note(Found(17, unknown=True), True, 0, 28, time.monotonic() + 0.5) == spent
    assert note(Found(17, unknown=True), True, 0, 28, time.monotonic() + 1.5) != spent


def test_a_defect_row_is_what_the_replay_confirms_at_the_depth_it_shows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    answer: list[tuple[bool, dict[str, Any]]] = []
    monkeypatch.setattr(defects, "confirm_defect", lambda fix, prop, sc: answer[0])
    sc = Scenario(steps=("work",))
    shows = {"seed": [{"step": 13}, {"step": 11}], "seed_plus_fix": [], "fixed_minus_fix": [{}]}
    answer.append((True, shows))
    row = defects.defect_row(
        FIX, "no_crash", 14, sc, Status.VIOLATED, 2.0, "product", tmp_path, "d", "every input"
    )
    assert (row.status, row.depth, row.shortest, row.evidence) == (
        Status.VIOLATED,
        11,  # minimising may move the violation: the depth is the scenario's
        "every input",
        shows,
    )
    assert row.lines == defects.lines_of(FIX) and row.detail == "d"
    doc = json.loads((tmp_path / f"defect.{FIX}.scenario.json").read_text())
    assert row.scenario == str(tmp_path / f"defect.{FIX}.scenario.json")
    assert {k: doc["meta"][k] for k in ("property", "variant", "depth", "defect")} == {
        "property": "no_crash",
        "variant": "seed",
        "depth": 11,
        "defect": FIX,
    }
    answer[0] = (False, {"seed": [{"step": 9}], "seed_plus_fix": [{"step": 9}]})
    row = defects.defect_row(
        FIX, "no_crash", 14, sc, Status.VIOLATED, 2.0, "product", None, "", "every input"
    )
    assert (row.status, row.depth, row.scenario) == (Status.UNCONFIRMED, 14, None)
    assert row.shortest is None  # the replay does not show it: no claim of its depth
    answer[0] = (True, {"seed": [], "seed_plus_fix": [], "fixed_minus_fix": []})
    assert defects.defect_row(FIX, "no_crash", 14, sc, Status.VIOLATED, 2.0, "x", None).depth == 14
    # no scenario: nothing replayed, nothing written; no "shortest" without a violation
    answer.clear()
    row = defects.defect_row(
        FIX, None, None, None, Status.NONE, 2.0, "product", tmp_path, "", "property"
    )
    assert (row.status, row.shortest, row.evidence, row.scenario) == (Status.NONE, None, {}, None)


# -- the gap between the parting transition and the violation ---------------------------------


class _Gap:
    """_in_the_gap with the product, the one-step query and the replay stood in for."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        found: Any,
        *,
        one_step: bool = True,
        confirms: bool = True,
    ) -> None:
        self.asked: list[dict[str, Any]] = []

        def product(fix: str, **kw: Any) -> Any:
            self.asked.append(kw)
            return found

        monkeypatch.setattr(defects, "product_search", product)
        monkeypatch.setattr(defects, "_may_show_in_one_step", lambda *a: one_step)
        monkeypatch.setattr(defects, "to_scenario", lambda trace, v: Scenario(steps=("work",)))
        monkeypatch.setattr(defects, "confirm_defect", lambda *a: (confirms, {}))
        monkeypatch.setattr(defects, "_minimal", lambda fix, prop, raw: raw)
        monkeypatch.setattr(defects, "_first_step", lambda prop, sc: 8)


def test_a_gap_of_the_parting_transition_alone_needs_no_product_when_no_step_can_show_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vmballoon.proofs.unrolling import Found

    g = _Gap(monkeypatch, Found(7), one_step=False)
    shorter, established, words = defects._in_the_gap(FIX, ["no_crash"], 7, 7, 1.0)
    assert (shorter, established, g.asked) == (None, True, [])
    assert "no step that parts them breaks no_crash" in words
    g = _Gap(monkeypatch, Found(7), one_step=True)
    shorter, established, words = defects._in_the_gap(FIX, ["no_crash"], 7, 7, 1.0)
    assert (shorter, established) == (None, True) and "finds no scenario of 7 to 7" in words
    assert g.asked == [
        {
            "depth": 7,
            "timeout": 1.0,
            "props": ["no_crash"],
            "start": 7,
            "pinned": True,
            "attribution": False,
        }
    ]
    g = _Gap(monkeypatch, Found(7), one_step=False)
    defects._in_the_gap(FIX, ["no_crash"], 7, 9, 1.0)  # a longer gap: always asked
    assert len(g.asked) == 1


def test_a_gap_answer_is_shorter_only_when_the_replay_confirms_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vmballoon.proofs.unrolling import Found

    answer = Found(8, TRACE, prop="protocol")
    _Gap(monkeypatch, answer)
    shorter, established, words = defects._in_the_gap(FIX, ["protocol"], 7, 9, 1.0)
    assert shorter is not None and (shorter[0], shorter[2], established) == ("protocol", 8, True)
    assert "a shorter one from the product" in words
    _Gap(monkeypatch, answer, confirms=False)
    shorter, established, words = defects._in_the_gap(FIX, ["protocol"], 7, 9, 1.0)
    assert (shorter, established) == (None, False)
    assert words == defects._gap_undecided(
        7, 9, "the product over that gap gave an answer the replay does not confirm"
    )
    assert words.startswith("the shortest scenario over the pinned inputs has 7 to 10 ")
    _Gap(monkeypatch, Found(8, unknown=True))
    shorter, established, words = defects._in_the_gap(FIX, ["protocol"], 7, 9, 1.0)
    assert (shorter, established) == (None, False) and "gave solver unknown" in words
    deep = defects.GAP_DEPTH
    g = _Gap(monkeypatch, answer)
    shorter, established, words = defects._in_the_gap(FIX, ["protocol"], 7, deep + 1, 1.0)
    assert (shorter, established, g.asked) == (None, False, [])
    assert f"asked up to depth {deep} only" in words
    defects._in_the_gap(FIX, ["protocol"], 7, deep, 1.0)
    assert len(g.asked) == 1


def test_the_row_of_a_run_that_shows_the_defect_after_parting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The violation in the parting transition itself: the shortest over the pinned
    inputs; later: the gap decides, and a shorter answer of the gap is the row."""
    import time

    run = _Search(FIX, ["no_crash", "protocol"], 20, 0, True, False, 1.0, None, time.monotonic())
    monkeypatch.setattr(defects, "_minimal", lambda fix, prop, raw: raw)
    monkeypatch.setattr(defects, "to_scenario", lambda trace, v: Scenario(steps=("work",)))
    monkeypatch.setattr(defects, "confirm_defect", lambda *a: (True, {"seed": []}))
    gaps: list[tuple[Any, ...]] = []
    gap: list[Any] = [(None, True, "nothing shorter")]

    def in_the_gap(fix: str, props: list[str], lo: int, hi: int, timeout: float) -> Any:
        gaps.append((props, lo, hi))
        return gap[0]

    monkeypatch.setattr(defects, "_in_the_gap", in_the_gap)
    step = [6]
    monkeypatch.setattr(defects, "_first_step", lambda prop, sc: step[0])
    row = defects._shown_at_parting(run, 5, TRACE, "no_crash")
    assert (row.prop, row.depth, row.shortest, gaps) == ("no_crash", 6, "pinned inputs", [])
    assert "the violation is that transition's" in row.detail
    step[0] = 9
    row = defects._shown_at_parting(run, 5, TRACE, "no_crash")
    assert (row.depth, row.shortest) == (9, "pinned shared inputs")
    assert gaps == [(["no_crash", "protocol"], 6, 8)]
    assert row.detail.endswith("the violation shows at transition 9: nothing shorter")
    gap[0] = (("protocol", Scenario(steps=("work", "work")), 7), True, "shorter")
    row = defects._shown_at_parting(run, 5, TRACE, "no_crash")
    assert (row.prop, row.depth, row.shortest) == ("protocol", 7, "pinned shared inputs")
    gap[0] = (None, False, "undecided")
    row = defects._shown_at_parting(run, 5, TRACE, "no_crash")
    assert (row.depth, row.shortest, row.source) == (9, "not established", "divergence")


# -- the product phase: pinned inputs, then every input; blocked answers -----------------------


class _Products:
    """_product_phase with the product searches answering from a script per kind
    (pinned or not), the replay confirming the properties of ``confirms``."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        script: dict[bool, list[Any]],
        confirms: frozenset[str] = frozenset(),
    ) -> None:
        self.asked: list[tuple[bool, int, list[list[int]]]] = []
        self.rows: list[tuple[str, int, bool, bool, int]] = []

        def product(fix: str, **kw: Any) -> Any:
            self.asked.append((kw["pinned"], kw["start"], [list(b) for b in kw["blocked"]]))
            return script[kw["pinned"]].pop(0)

        def row(
            run: _Search, prop: str, k: int, raw: Any, pinned: bool, blocked: bool, lo: int
        ) -> DefectRow:
            self.rows.append((prop, k, pinned, blocked, lo))
            return ROW

        monkeypatch.setattr(defects, "product_search", product)
        monkeypatch.setattr(defects, "to_scenario", lambda trace, v: Scenario(steps=("work",)))
        monkeypatch.setattr(defects, "confirm_defect", lambda fix, prop, sc: (prop in confirms, {}))
        monkeypatch.setattr(defects, "_product_row", row)


def _run() -> _Search:
    import time

    return _Search(FIX, ["no_crash"], 20, 0, True, False, 1.0, None, time.monotonic())


def _at(*locs: int) -> Trace:
    return Trace([{"loc": v} for v in locs], [{}] * (len(locs) - 1))


def test_the_pinned_product_answers_first_and_unconfirmed_answers_are_blocked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vmballoon.proofs.unrolling import Found

    a, b = Found(9, _at(0, 1, 2), prop="protocol"), Found(10, _at(0, 1, 3), prop="no_crash")
    p = _Products(monkeypatch, {True: [a, b]}, frozenset({"no_crash"}))
    row, last = defects._product_phase(_run(), {True: 7, False: 2})
    assert row is ROW and last is None
    assert p.asked == [(True, 7, []), (True, 7, [[0, 1, 2]])]
    assert p.rows == [("no_crash", 10, True, True, 7)]


def test_after_three_unconfirmed_answers_the_full_product_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vmballoon.proofs.unrolling import Found

    wrong = [Found(9 + n, _at(0, n), prop="protocol") for n in range(defects.ATTEMPTS)]
    full = Found(12, _at(0, 4), prop="no_crash")
    p = _Products(monkeypatch, {True: wrong, False: [full]}, frozenset({"no_crash"}))
    row, _ = defects._product_phase(_run(), {True: 7, False: 2})
    assert row is ROW and [x[:2] for x in p.asked] == [(True, 7)] * 3 + [(False, 2)]
    assert p.asked[-1][2] == []  # each search blocks its own answers only
    assert p.rows == [("no_crash", 12, False, False, 2)]


def test_a_pinned_search_left_undecided_ends_the_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    from vmballoon.proofs.unrolling import Found

    p = _Products(monkeypatch, {True: [Found(14, unknown=True)], False: [Found(20)]})
    run = _run()
    row, last = defects._product_phase(run, {True: 7, False: 2})
    assert (row, last, [x[0] for x in p.asked]) == (None, None, [True])
    assert run.notes.undecided and run.notes[-1].startswith("pinned inputs: ")
    # one that found nothing goes on to every input; the last unconfirmed answer is kept
    wrong = Found(9, _at(0, 1), prop="protocol")
    p = _Products(monkeypatch, {True: [wrong, Found(20)], False: [Found(20)]})
    run = _run()
    row, last = defects._product_phase(run, {True: 7, False: 2})
    assert row is None and last is not None and (last[0], last[2]) == ("protocol", 9)
    assert [x[0] for x in p.asked] == [True, True, False] and not run.notes.undecided
    assert run.notes == [
        "pinned inputs: no scenario from depth 7 up to 20",
        "every input: no scenario from depth 2 up to 20",
    ]


# -- first_divergence: where SEED and SEED + fix part ------------------------------------------


class _Divergence:
    """first_divergence with the cone, the searches and the replay stood in for: the
    divergence searches answer from ``script``; ``shows`` maps a trace's last location
    to the properties its scenario shows and the step it first shows them at."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        bound: int,
        script: list[Any],
        shows: dict[int, tuple[list[str], int]],
        *,
        parting: Any = None,
        after: Any = None,
    ) -> None:
        self.asked: list[dict[str, Any]] = []
        self.later: list[tuple[str, Any]] = []
        cone = object()
        self.cone = cone

        def search(fix: str, **kw: Any) -> Any:
            # the blocked paths as they were when asked (the search adds to its list)
            self.asked.append({n: [*v] if n == "blocked" else v for n, v in kw.items()})
            return script.pop(0)

        def in_parting(fix: str, prop: str, props: list[str], k: int, *rest: Any) -> Any:
            self.later.append(("parting", (prop, k)))
            return parting

        def shown_after(fix: str, props: list[str], k: int, *rest: Any) -> Any:
            self.later.append(("after", k))
            return after

        def last(sc: Scenario) -> int:
            return int(sc.steps[0])

        def abstract_cone(fix: str, depth: int, timeout: float) -> Any:
            self.asked.append({"cone up to": depth})
            return cone, bound

        monkeypatch.setattr(defects, "_abstract_cone", abstract_cone)
        monkeypatch.setattr(defects, "divergence_search", search)
        monkeypatch.setattr(
            defects, "to_scenario", lambda trace, v: Scenario(steps=(str(trace.states[-1]["loc"]),))
        )
        monkeypatch.setattr(defects, "confirmed", lambda fix, props, sc: shows[last(sc)][0])
        monkeypatch.setattr(defects, "_first_step", lambda prop, sc: shows[last(sc)][1])
        monkeypatch.setattr(defects, "_in_parting_step", in_parting)
        monkeypatch.setattr(defects, "_shown_after", shown_after)


def _first(notes: list[str]) -> Any:
    return defects.first_divergence(FIX, ["no_crash", "protocol"], 20, 1.0, notes)


def test_no_divergence_below_the_abstract_bound_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from vmballoon.proofs.unrolling import Found

    d = _Divergence(monkeypatch, 20, [], {})
    notes: list[str] = []
    assert _first(notes) is None and d.asked == [{"cone up to": 19}]
    assert notes == [defects._no_divergence(Found(20), 20) + " (abstract reachability)"]
    d = _Divergence(monkeypatch, 19, [Found(19)], {})
    notes = []
    assert _first(notes) is None
    assert d.asked[1:] == [{"depth": 19, "timeout": 1.0, "start": 19, "cone": d.cone}]
    assert notes[0].startswith("no run of SEED parts them before transition 20: abstract")
    assert notes[1] == "divergence of SEED and SEED + fix (pinned inputs): none up to depth 20"
    d = _Divergence(monkeypatch, 0, [Found(7, unknown=True)], {})
    notes = defects.Notes()
    assert _first(notes) is None and notes.undecided and len(notes) == 1
    d = _Divergence(monkeypatch, 1, [Found(7)], {})
    notes = []
    assert _first(notes) is None and notes[0].startswith(
        "no run of SEED parts them before transition 2"
    )


def test_a_divergence_that_shows_the_defect_in_its_parting_transition_is_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vmballoon.proofs.unrolling import Found

    run = _at(0, 1, 2, 5)
    d = _Divergence(monkeypatch, 0, [Found(3, run)], {5: (["protocol"], 4)})
    assert _first([]) == (3, run, ["protocol"]) and d.later == []
    # shown later than the parting transition: a run that shows it there is asked for
    d = _Divergence(monkeypatch, 0, [Found(3, run)], {5: (["protocol"], 5)}, parting=("p",))
    assert _first([]) == ("p",) and d.later == [("parting", ("protocol", 3))]
    d = _Divergence(monkeypatch, 0, [Found(3, run)], {5: (["protocol"], 6)})
    assert _first([]) == (3, run, ["protocol"])


def test_runs_that_show_nothing_are_blocked_and_the_same_depth_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vmballoon.proofs.unrolling import Found

    # each run ends with the state after the parting step (its last location tells it)
    a, b, c = _at(0, 1, 2, 9, 6), _at(0, 1, 3, 9, 7), _at(0, 1, 4, 9, 5)
    shows = {6: ([], 0), 7: ([], 0), 5: (["no_crash"], 4)}
    d = _Divergence(monkeypatch, 2, [Found(3, a), Found(3, b), Found(3, c)], shows)
    assert _first([]) == (3, c, ["no_crash"])
    assert d.asked[2:] == [
        {"depth": 3, "timeout": 1.0, "start": 3, "blocked": [[0, 1, 2, 9]], "cone": d.cone},
        {
            "depth": 3,
            "timeout": 1.0,
            "start": 3,
            "blocked": [[0, 1, 2, 9], [0, 1, 3, 9]],
            "cone": d.cone,
        },
    ]
    # three that show nothing: a run that shows it is asked of the solver, else the first
    runs = [Found(3, _at(0, 1, 2, 9, 6)) for _ in range(defects.SAME_DEPTH_ATTEMPTS + 1)]
    d = _Divergence(monkeypatch, 0, runs, shows, after=("after",))
    assert _first([]) == ("after",) and d.later == [("after", 3)]
    # each run that shows nothing is blocked and another asked, the last one's included
    # (its answer is not looked at: a query the search could skip, kept because the
    # solver's later answers in the same process depend on the queries made before)
    assert len(d.asked) == 1 + defects.SAME_DEPTH_ATTEMPTS + 1
    runs = [Found(3, _at(0, 1, 2, 9, 6)) for _ in range(defects.SAME_DEPTH_ATTEMPTS + 1)]
    d = _Divergence(monkeypatch, 0, list(runs), shows)
    got = _first([])
    assert got == (3, runs[0].trace, []) and got[1] is runs[0].trace  # the first run found
    d = _Divergence(monkeypatch, 0, [Found(3, a), Found(3)], shows)
    assert _first([]) == (3, a, []) and len(d.asked) == 3  # none other at that depth
    d = _Divergence(monkeypatch, 0, [Found(3, a), Found(4, c)], shows)
    assert _first([]) == (3, a, [])  # another depth is not this one


# -- from the divergences on --------------------------------------------------------------------


def test_the_divergences_are_tried_in_turn_from_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first divergence, then up to ATTEMPTS - 1 more (blocked by their paths): each
    shows the defect in its parting transition, or a product after it does, or it is
    blocked."""
    from vmballoon.proofs.unrolling import Found

    asked: list[dict[str, Any]] = []
    script: list[Any] = []

    def search(fix: str, **kw: Any) -> Any:
        asked.append({n: [*v] if n == "blocked" else v for n, v in kw.items()})
        return script.pop(0)

    shows: dict[int, str] = {}
    after: dict[int, Any] = {}
    monkeypatch.setattr(defects, "divergence_search", search)
    monkeypatch.setattr(
        defects, "to_scenario", lambda trace, v: Scenario(steps=(str(trace.states[-1]["loc"]),))
    )
    monkeypatch.setattr(
        defects, "confirm_defect", lambda fix, prop, sc: (shows.get(int(sc.steps[0])) == prop, {})
    )
    monkeypatch.setattr(
        defects, "_after_parting", lambda fix, props, depth, k, trace, t: after.get(k)
    )

    def via(first: tuple[int, Trace], notes: list[str] | None = None) -> Any:
        return defects._via_divergence(
            FIX, ["no_crash", "protocol"], 20, 6, 1.0, first, [] if notes is None else notes
        )

    first = _at(0, 1, 2, 9, 5)
    shows[5] = "protocol"
    got = via((3, first))
    assert got[:3] == ("protocol", 4, Scenario(steps=("5",))) and asked == []
    assert got[3].endswith("; the violation is that transition's")
    shows.clear()
    after[3] = ("no_crash", 7, Scenario(steps=("x",)))
    got = via((3, first))
    assert got[:3] == after[3] and "the shortest violation after it" in got[3]
    after.clear()
    second, third = _at(0, 1, 3, 9, 6), _at(0, 4, 9, 7)
    script[:] = [Found(3, second), Found(2, third)]
    shows[7] = "no_crash"
    assert via((3, first))[:2] == ("no_crash", 3)
    common = {"depth": 19, "timeout": 1.0, "start": 5}
    assert asked == [
        {**common, "blocked": [[0, 1, 2, 9]]},
        {**common, "blocked": [[0, 1, 2, 9], [0, 1, 3, 9]]},
    ]
    shows.clear()
    script[:] = [Found(3, second), Found(2, third)]
    notes: list[str] = []
    assert via((3, first), notes) is None
    assert notes == [
        f"divergence: {defects.ATTEMPTS} runs where SEED and SEED + {FIX} part, none shows it"
    ]
    script[:] = [Found(8, unknown=True)]
    undecided = defects.Notes()
    assert via((3, first), undecided) is None and undecided.undecided
    asked.clear()
    script[:] = [Found(3)]
    defects._via_divergence(FIX, ["no_crash"], 20, 0, 1.0, (3, first), [])
    assert asked[0]["start"] == 0  # never below 0


def test_the_product_after_parting_goes_on_from_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from vmballoon.proofs.unrolling import Found

    asked: list[dict[str, Any]] = []
    answer: list[Any] = [Found(9, TRACE, prop="protocol")]

    def product(fix: str, **kw: Any) -> Any:
        asked.append(kw)
        return answer[0]

    confirms = [True]
    monkeypatch.setattr(defects, "product_search", product)
    monkeypatch.setattr(defects, "to_scenario", lambda trace, v: Scenario(steps=("work",)))
    monkeypatch.setattr(defects, "confirm_defect", lambda *a: (confirms[0], {}))
    run = _at(0, 1, 2)
    got = defects._after_parting(FIX, ["protocol"], 20, 3, run, 1.0)
    assert got == ("protocol", 9, Scenario(steps=("work",)))
    assert asked == [
        {
            "depth": 4 + defects.SUFFIX,
            "timeout": 1.0,
            "props": ["protocol"],
            "start": 4,
            "window": True,
            "pinned": True,
            "prefix": run,
        }
    ]
    defects._after_parting(FIX, ["protocol"], 6, 3, run, 1.0)
    assert asked[-1]["depth"] == 6  # never past the search's depth
    confirms[0] = False
    assert defects._after_parting(FIX, ["protocol"], 20, 3, run, 1.0) is None
    answer[0] = Found(10)
    assert defects._after_parting(FIX, ["protocol"], 20, 3, run, 1.0) is None


def test_a_run_that_shows_the_defect_in_its_parting_transition_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vmballoon.proofs.unrolling import Found

    asked: list[dict[str, Any]] = []
    answer: list[Any] = []
    one_step = [True]
    confirms = [True]
    step = [4]

    def search(fix: str, **kw: Any) -> Any:
        asked.append(kw)
        return answer[0]

    monkeypatch.setattr(defects, "divergence_search", search)
    monkeypatch.setattr(defects, "_may_show_in_one_step", lambda *a: one_step[0])
    monkeypatch.setattr(defects, "to_scenario", lambda trace, v: Scenario(steps=("work",)))
    monkeypatch.setattr(defects, "confirm_defect", lambda *a: (confirms[0], {}))
    monkeypatch.setattr(defects, "_first_step", lambda prop, sc: step[0])
    monkeypatch.setattr(defects, "confirmed", lambda fix, props, sc: ["no_crash", "protocol"])
    cone: Any = object()

    def ask(notes: list[str] | None = None) -> Any:
        return defects._in_parting_step(
            FIX, "protocol", ["no_crash", "protocol"], 3, 1.0, cone, [] if notes is None else notes
        )

    answer.append(Found(3, TRACE))
    assert ask() == (3, TRACE, ["no_crash", "protocol"])
    assert asked == [{"depth": 3, "timeout": 1.0, "start": 3, "cone": cone, "shows": ["protocol"]}]
    for bad in ("later", "unconfirmed", "deeper", "none"):
        step[0], confirms[0], answer[0] = 4, True, Found(3, TRACE)
        if bad == "later":
            step[0] = 5
        elif bad == "unconfirmed":
            confirms[0] = False
        elif bad == "deeper":
            answer[0] = Found(4, TRACE)
        else:
            answer[0] = Found(3)
        notes: list[str] = []
        assert ask(notes) is None, bad
        assert notes == [
            "no run of the pinned inputs shows protocol in the transition that parts "
            "them (none at depth 3)"
        ], bad
    answer[0] = Found(3, unknown=True)
    notes = defects.Notes()
    assert ask(notes) is None and notes.undecided and "(solver unknown at depth 3)" in notes[0]
    one_step[0] = False
    asked.clear()
    notes = []
    assert ask(notes) is None and asked == []
    assert notes == [defects._shows_only_after(FIX, ["protocol"])]


# -- a search in a fresh process: its answer and its notes come back ----------------------------


def _answers_with_notes(text: str, unsure: bool, notes: defects.Notes) -> int:
    notes.append("first")
    if unsure:
        notes.unsure(text)
    else:
        notes.append(text)
    return 7


def test_a_fresh_process_gives_back_the_answer_the_notes_and_whether_they_are_undecided() -> None:
    notes = defects.Notes(["before"])
    assert defects._in_fresh_process(_answers_with_notes, "gave up", True, notes) == 7
    assert notes == ["before", "first", "gave up"] and notes.undecided
    notes = defects.Notes()
    assert defects._in_fresh_process(_answers_with_notes, "none", False, notes) == 7
    assert notes == ["first", "none"] and not notes.undecided
    plain: list[str] = []  # a plain list takes the notes; there is no flag to set
    assert defects._in_fresh_process(_answers_with_notes, "gave up", True, plain) == 7
    assert plain == ["first", "gave up"]
