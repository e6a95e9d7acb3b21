"""The per-defect search starts where SEED and SEED + fix part (vmballoon/proofs/defects.py).

``first_divergence`` is what makes the deep defect (``warn_status_frees``, 25
transitions) affordable, and its answer is also used as a *proof*: no scenario of the
pinned inputs shorter than the first divergence can show the defect, because until the
two drivers part their states, hence their properties, are equal.  These tests hold the
two pieces that argument rests on to the solver and to the model.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import z3

from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import FIX_NAMES, SEED, Variant
from vmballoon.model.machine import event_log, run_scenario
from vmballoon.model.state import Loc
from vmballoon.proofs.defects import divergence_search, fix_locations, product_search
from vmballoon.proofs.encoding import INPUTS, TRANSITIONS, B
from vmballoon.proofs.trace import to_scenario
from vmballoon.proofs.unrolling import PIN_PRODUCT, Found

FINDINGS = Path(__file__).resolve().parents[1] / "spec" / "findings"


@pytest.mark.parametrize("fix", FIX_NAMES)
def test_fix_locations_are_where_the_encoding_steps_differ(fix: str) -> None:
    """Every fix changes some step, and never the final locations'."""
    locs = fix_locations(fix)
    assert locs, f"{fix} changes no step of the encoding"
    assert locs <= set(TRANSITIONS)
    assert Loc.EXITED not in locs and Loc.CRASHED not in locs


def test_nothing_shorter_than_the_first_divergence_shows_the_defect() -> None:
    """reset_needs_ops: the drivers part at transition k + 1; the product search (three
    copies, pinned inputs) finds no scenario of k transitions or fewer, and finds one
    once k + 1 and more are allowed."""
    fix = "reset_needs_ops"
    first = divergence_search(fix, depth=12, timeout=30.0)
    k, trace = first.depth, first.trace
    assert trace is not None
    # the transition that parts them leaves from a location the fix changes
    assert Loc(int(trace.states[k]["loc"])) in fix_locations(fix)
    below = product_search(fix, depth=k, timeout=30.0, start=0, pinned=True)
    assert not below.found and not below.unknown, below
    found = product_search(fix, depth=12, timeout=30.0, start=k + 1, window=True, pinned=True)
    assert found.found and found.depth >= k + 1
    assert found.trace is not None
    for step, inputs in enumerate(found.trace.inputs[: found.depth]):
        assert _pinned(inputs), f"step {step + 1} leaves the pinned system: {inputs}"


def _pinned(inputs: dict[str, int | bool]) -> bool:
    """Whether concrete ``inputs`` are a step of the pinned system of the product search
    (:data:`vmballoon.proofs.unrolling.PIN_PRODUCT`)."""
    vals = {
        n: z3.BoolVal(bool(inputs[n])) if w == B else z3.BitVecVal(int(inputs[n]), w)
        for n, w in INPUTS
    }
    return bool(z3.is_true(z3.simplify(z3.And(PIN_PRODUCT(vals)))))


def test_the_first_divergence_is_a_real_run_where_the_model_parts() -> None:
    """The divergence trace, replayed through the model, is a run on which SEED and
    SEED + fix leave different event logs (the encoding's answer is real)."""
    fix = "doorbell_set_status"
    trace = divergence_search(fix, depth=12, timeout=30.0).trace
    assert trace is not None
    sc = to_scenario(trace, SEED)
    seed_log = event_log(run_scenario(sc, SEED))
    fix_log = event_log(run_scenario(sc, Variant(frozenset({fix}))))
    assert seed_log != fix_log, "the model runs SEED and SEED + fix alike on it"


@pytest.mark.parametrize("fix", ["reset_needs_ops", "lock_64bit_refused", "doorbell_set_status"])
def test_the_abstract_bound_is_sound_on_the_first_divergence(fix: str) -> None:
    """The abstract-reachability bound is at most the depth of the first divergence, and
    the divergence run's own abstract path is one the abstract relation allows, step by
    step (the relation over-approximates the pinned encoding it is computed from)."""
    from vmballoon.proofs.abstract_reach import FIELDS, AbstractReach, Cone

    first = divergence_search(fix, depth=12, timeout=30.0)
    k, trace = first.depth, first.trace
    assert trace is not None
    bound = Cone(fix, fix_locations(fix)).bound(12)
    assert 0 < bound <= k
    reach = AbstractReach(Variant(frozenset({fix})), 30.0)
    path = [tuple(st[n] for n in FIELDS) for st in trace.states[: k + 1]]
    assert path[0] in reach.initial()
    for a, b in pairwise(path):
        assert b in reach.successors(a), (a, b)
    assert reach.may_part(path[k], fix_locations(fix))


def test_the_abstract_bound_excludes_the_shallow_depths_of_warn_status_frees() -> None:
    """The deep defect: no abstract run parts SEED and SEED + warn_status_frees before
    transition 22 (they part at 25), which spares the search 21 BMC queries."""
    from vmballoon.proofs.abstract_reach import Cone

    fix = "warn_status_frees"
    assert Cone(fix, fix_locations(fix)).bound(27) == 21


@pytest.mark.parametrize("fix", ["reset_needs_ops", "doorbell_set_status"])
def test_the_abstract_bound_at_its_own_depth(fix: str) -> None:
    """``Cone.bound(depth)`` looks at depth ``depth`` itself: asked for exactly the least
    depth at which the drivers may part, it answers that depth, and one less answers
    "none below" (``depth + 1``)."""
    from vmballoon.proofs.abstract_reach import Cone

    cone = Cone(fix, fix_locations(fix))
    k = cone.bound(12)
    assert 0 < k <= 12
    assert cone.bound(k) == k
    assert cone.bound(k - 1) == k


@pytest.mark.parametrize("fix", ["reset_needs_ops", "lock_64bit_refused", "batch_pfn"])
def test_the_divergence_run_lies_in_the_abstract_cone_of_its_depth(fix: str) -> None:
    """The cone of depth k (vmballoon/proofs/abstract_reach.Cone.at) holds the abstract path of the
    divergence found without it, step by step: constraining the query to the cone loses
    no divergence.  With the cone the search answers at the same depth."""
    from vmballoon.proofs.abstract_reach import FIELDS, Cone

    first = divergence_search(fix, depth=12, timeout=30.0)
    k, trace = first.depth, first.trace
    assert trace is not None
    cone = Cone(fix, fix_locations(fix))
    path = [tuple(st[n] for n in FIELDS) for st in trace.states[: k + 1]]
    for j, (a, level) in enumerate(zip(path, cone.at(k), strict=True)):
        assert a in level, (j, a)
    again = divergence_search(fix, depth=12, timeout=30.0, cone=cone)
    assert again.found and again.depth == k


def test_a_cone_below_the_bound_is_empty_and_its_query_unsatisfiable() -> None:
    """Below the abstract bound no abstract run may part the drivers: the cone is empty
    at its last step, and the search held to it finds nothing there."""
    from vmballoon.proofs.abstract_reach import Cone

    fix = "warn_status_frees"
    cone = Cone(fix, fix_locations(fix))
    bound = cone.bound(27)
    assert bound == 21
    assert cone.at(bound - 1)[-1] == set()
    assert cone.at(bound)[-1] != set()
    none = divergence_search(fix, depth=bound - 1, timeout=30.0, start=bound - 1, cone=cone)
    assert not none.found and not none.unknown


@pytest.mark.parametrize("fix", ["batch_pfn", "warn_status_frees"])
def test_confirmed_is_confirm_defect_of_each_property(fix: str) -> None:
    """One replay per variant gives what confirm_defect gives property by property."""
    from vmballoon.core.scenario import load_scenario
    from vmballoon.proofs.defects import confirm_defect, confirmed
    from vmballoon.proofs.props import PROPERTIES

    sc = load_scenario(str(FINDINGS / f"defect.{fix}.scenario.json"))
    props = list(PROPERTIES)
    assert confirmed(fix, props, sc) == [p for p in props if confirm_defect(fix, p, sc)[0]]
    assert confirmed(fix, props, sc)


def test_a_minimised_defect_scenario_shows_it_no_later() -> None:
    """Minimising keeps every input the violation needs at its depth: the checked-in
    defect scenarios show their property at the depth the search reported."""
    import json

    from vmballoon.core.scenario import load_scenario
    from vmballoon.proofs.defects import violates

    results = json.loads((FINDINGS.parent / "verify-results.json").read_text())
    for row in results["defects"]:
        sc = load_scenario(str(FINDINGS / f"defect.{row['fix']}.scenario.json"))
        steps = [int(v["step"]) for v in violates(sc, SEED, row["prop"])]
        assert steps and min(steps) == row["depth"], row["fix"]


def test_a_divergence_run_ahead_answers_as_the_defect_search_would() -> None:
    """verify runs the first divergence ahead of the defect's search, over every property
    not proved on SEED; the search then narrows it to its own properties.  Where the run
    ahead stopped at a scenario whose first property is the search's, the answer is the
    one the search computes itself; where not, the search computes it itself."""
    from vmballoon.proofs.defects import DEFECT_DEPTH, _divergence_for, divergence_job
    from vmballoon.proofs.props import PROPERTIES

    fix = "batch_pfn"
    superset = list(PROPERTIES)
    early = divergence_job({"fix": fix, "props": superset, "depth": DEFECT_DEPTH, "timeout": 30.0})
    assert early["first"] is not None and early["first"][2], early
    shown = early["first"][2]
    for props in ([shown[0]], [p for p in superset if p != shown[0]]):
        ahead = _divergence_for(fix, props, DEFECT_DEPTH, 30.0, early, [])
        now = _divergence_for(fix, props, DEFECT_DEPTH, 30.0, None, [])
        assert ahead is not None and now is not None
        assert (ahead[0], ahead[1], ahead[2]) == (now[0], now[1], now[2]), props


def test_the_progress_line_of_a_divergence_job_says_what_it_found() -> None:
    """Parted (its transition), none (the job's notes) or crashed (the error): never
    silent."""
    from vmballoon.apps.verify_jobs import Divergence
    from vmballoon.apps.verify_render import parted

    found = Divergence("batch_pfn", {"fix": "batch_pfn", "first": (10, None, []), "notes": []})
    assert parted("batch_pfn", found) == "SEED and SEED + batch_pfn part at transition 11"
    none = parted(
        "x", Divergence("x", {"fix": "x", "first": None, "notes": ["none up to depth 28"]})
    )
    assert none == "none (none up to depth 28)"
    assert (
        parted("x", Divergence("x", None, "RuntimeError('boom')"))
        == "crashed: RuntimeError('boom')"
    )


def test_the_gap_between_parting_and_violation_is_searched_or_said_not_established() -> None:
    """lock_64bit_refused: the drivers part at transition 11 and its first scenario shows
    the defect at 14; the two-copy product finds nothing of 11 to 13 transitions, so 14
    is the shortest over the pinned inputs.  Deeper than GAP_DEPTH nothing is asked."""
    from vmballoon.proofs.defects import GAP_DEPTH, _in_the_gap

    shorter, established, words = _in_the_gap(
        "lock_64bit_refused", ["host_agreement"], 11, 13, 30.0
    )
    assert shorter is None and established
    assert "finds no scenario of 11 to 13 transitions" in words
    deep = _in_the_gap("warn_status_frees", ["no_leak"], 24, GAP_DEPTH + 1, 30.0)
    assert deep[:2] == (None, False) and "not established" in deep[2]
    # warn_status_frees parts at 25 and shows at 26: the gap is the parting transition
    # alone, and no step that parts the drivers leaks (no_leak holds until a tick ends)
    one = _in_the_gap("warn_status_frees", ["no_leak"], 25, 25, 30.0)
    assert one[:2] == (None, True) and "one-step queries" in one[2]
    # ... while a step that parts SEED and SEED + batch_pfn can break protocol (its own
    # scenario shows it in the parting transition): that is not decided so
    assert _in_the_gap("batch_pfn", ["protocol"], 25, 25, 30.0)[:2] == (None, False)


def test_every_shortest_claim_has_words_in_the_findings_table() -> None:
    """What a defect row may claim of its depth (vmballoon/proofs/defects.SHORTEST) is what the
    findings table can say (apps/specgen.SHORTEST_WORDS), and the checked-in rows each
    claim something."""
    import json

    from vmballoon.apps.specgen import SHORTEST_WORDS
    from vmballoon.proofs.defects import SHORTEST

    assert set(SHORTEST_WORDS) == set(SHORTEST)
    results = json.loads((FINDINGS.parent / "verify-results.json").read_text())
    assert {d["shortest"] for d in results["defects"]} <= set(SHORTEST)


def test_a_divergence_run_ahead_is_reused_where_it_answers_and_only_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run ahead is the answer for a search over the same or fewer properties whose
    first shown property is among them (no second search in a fresh process); otherwise
    the search runs itself."""
    from vmballoon.proofs import defects

    calls: list[list[str]] = []

    def fresh(fn: object, fix: str, props: list[str], *rest: object) -> tuple[int, str, list[str]]:
        calls.append(props)
        return (9, "computed", props)

    monkeypatch.setattr(defects, "_in_fresh_process", fresh)
    trace = object()
    early = {
        "fix": "x",
        "props": ["a", "b"],
        "first": (4, trace, ["b", "a"]),
        "notes": ["ahead"],
        "undecided": True,
    }
    notes = defects.Notes()
    assert defects._divergence_for("x", ["a", "b"], 28, 30.0, early, notes) == (
        4,
        trace,
        ["b", "a"],
    )
    assert calls == [] and notes == ["ahead"] and notes.undecided
    assert defects._divergence_for("x", ["b"], 28, 30.0, early, []) == (4, trace, ["b"])
    assert calls == []
    # the first property it shows is not searched for: the run ahead stopped too soon
    assert defects._divergence_for("x", ["a"], 28, 30.0, early, []) == (9, "computed", ["a"])
    # more properties than it searched
    more = defects._divergence_for("x", ["a", "c"], 28, 30.0, early, [])
    assert more is not None and more[1] == "computed"
    assert calls == [["a"], ["a", "c"]]
    # it found no divergence, or one that shows nothing: that is the answer
    none = {**early, "first": None}
    assert defects._divergence_for("x", ["a"], 28, 30.0, none, []) is None
    quiet = {**early, "first": (4, trace, [])}
    assert defects._divergence_for("x", ["a"], 28, 30.0, quiet, []) == (4, trace, [])
    assert len(calls) == 2


def test_a_violation_after_the_parting_transition_is_asked_of_the_parting_step() -> None:
    """lock_64bit_refused: the drivers first part at transition 11, and no step that parts
    them breaks host_agreement at once.  Whichever run the solver gives first (one that
    shows the violation some transitions later, or one that shows nothing and makes the
    search ask for a run that does), the search asks the one-step query before it looks
    past the parting transition, and says what it found."""
    from vmballoon.proofs.defects import DEFECT_DEPTH, Notes, first_divergence

    notes = Notes()
    found = first_divergence("lock_64bit_refused", ["host_agreement"], DEFECT_DEPTH, 30.0, notes)
    assert found is not None and found[0] == 10 and found[2] == ["host_agreement"]
    assert any("breaks host_agreement (one-step query)" in n for n in notes), notes


def test_the_parting_step_search_answers_none_when_no_run_shows_it_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the one-step query (forced here), the deep query for a run whose parting
    transition itself shows the violation: lock_64bit_refused has none at depth 10, and
    the search says so instead of reading a run it does not have."""
    from vmballoon.proofs import defects

    monkeypatch.setattr(defects, "_may_show_in_one_step", lambda *a: True)
    notes = defects.Notes()
    got = defects._in_parting_step(
        "lock_64bit_refused", "host_agreement", ["host_agreement"], 10, 30.0, None, notes
    )
    assert got is None
    assert notes[-1].startswith("no run of the pinned inputs shows host_agreement"), notes
    assert notes[-1].endswith("(none at depth 10)") and not notes.undecided


def test_the_product_goes_on_from_the_parting_run_to_the_violation() -> None:
    """reset_needs_ops: from a run on which SEED and SEED + the fix part (transition 6),
    the product search going on from it finds SEED's crash at transition 10 (SEED's
    shortest no_crash counterexample: none sooner), and the replay confirms it."""
    from vmballoon.proofs.defects import _after_parting, confirm_defect

    fix = "reset_needs_ops"
    first = divergence_search(fix, depth=12, timeout=30.0)
    assert first.depth == 5 and first.trace is not None
    after = _after_parting(fix, ["no_crash"], 26, 5, first.trace, 30.0)
    assert after is not None
    prop, depth, sc = after
    assert (prop, depth) == ("no_crash", 10)
    assert confirm_defect(fix, prop, sc)[0]


def test_a_parting_run_that_shows_nothing_is_not_answered_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """doorbell_set_status: the first run that parts the drivers (at transition 7) shows
    no violation; it is blocked by its location path, so no further answer at that depth
    takes the same path.  None of them showing it, the search asks the solver for a
    parting run that does: its parting transition itself breaks doorbell_agreement."""
    from vmballoon.proofs import defects

    answers: list[tuple[int, ...]] = []
    search = defects.divergence_search

    def recorded(*args: object, **kwargs: object) -> Found:
        found = search(*args, **kwargs)  # type: ignore[arg-type]
        if found.trace is not None and not kwargs.get("shows"):
            answers.append(tuple(int(st["loc"]) for st in found.trace.states[: found.depth + 1]))
        return found

    monkeypatch.setattr(defects, "divergence_search", recorded)
    found = defects.first_divergence(
        "doorbell_set_status", ["doorbell_agreement"], 12, 30.0, defects.Notes()
    )
    assert answers and len(set(answers)) == len(answers), answers
    assert found is not None and found[2] == ["doorbell_agreement"]
    k, trace, _ = found
    assert defects._first_step("doorbell_agreement", to_scenario(trace, SEED)) == k + 1


def test_parting_runs_that_show_nothing_do_not_decide_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whether a run of a given location path shows the defect depends on its data, which
    the solver picks.  lock_64bit_refused, with every run the blocked search gives read as
    showing nothing (an unlucky solver): the search still answers with a run that parts
    the drivers at transition 11 and shows host_agreement, at transition 14 as the
    recorded finding does, asked of the solver three transitions after the parting one
    for any of three properties."""
    from vmballoon.proofs import defects

    confirmed, shown_after = defects.confirmed, defects._shown_after
    asking: list[bool] = []  # set once the search asks for a run that shows it

    def unlucky(fix: str, props: list[str], sc: Scenario) -> list[str]:
        return confirmed(fix, props, sc) if asking else []

    def asks(*args: Any) -> Any:
        asking.append(True)
        return shown_after(*args)

    monkeypatch.setattr(defects, "_shown_after", asks)
    monkeypatch.setattr(defects, "confirmed", unlucky)
    notes = defects.Notes()
    props = ["no_leak", "host_agreement", "protocol"]  # the fix's own, among others
    found = defects.first_divergence("lock_64bit_refused", props, defects.DEFECT_DEPTH, 30.0, notes)
    assert found is not None and found[0] == 10 and found[2] == ["host_agreement"], notes
    assert len(found[1].states) == len(found[1].inputs) + 1  # a run: a state per step
    sc = to_scenario(found[1], SEED)
    assert defects._first_step("host_agreement", sc) == 14
    assert defects.confirm_defect("lock_64bit_refused", "host_agreement", sc)[0]


def test_a_search_that_must_show_a_property_shows_it_in_the_parting_transition() -> None:
    """``divergence_search(..., shows=[p])`` without ``after`` answers a run whose
    parting transition itself breaks ``p`` on SEED's side (doorbell_set_status at
    transition 7); with ``after=1``, one on which SEED has broken it by the transition
    after, and SEED + the fix has not."""
    from vmballoon.proofs import defects

    fix, prop = "doorbell_set_status", "doorbell_agreement"
    found = divergence_search(fix, depth=12, timeout=30.0, shows=[prop])
    assert found.trace is not None and len(found.trace.inputs) == found.depth + 1
    assert defects._first_step(prop, to_scenario(found.trace, SEED)) == found.depth + 1
    later = divergence_search(fix, depth=12, timeout=30.0, shows=[prop], after=1)
    assert later.trace is not None and len(later.trace.inputs) == later.depth + 2
    sc = to_scenario(later.trace, SEED)
    assert defects._first_step(prop, sc) <= later.depth + 2
    fixed = defects.violates(sc, Variant(frozenset({fix})), prop)
    assert all(int(v["step"]) > later.depth + 2 for v in fixed), fixed


def test_a_continuation_steps_each_copy_on_from_its_own_last_state() -> None:
    """The steps :func:`_continuation` adds after the parting one: each copy steps from
    its own previous state (SEED's from ``ts``, the fixed one's from ``tf``) on the
    same inputs, and the property is broken on SEED's side and kept on the fixed side
    in the last states; each is implied by the constraint."""
    import z3

    from vmballoon.proofs import defects
    from vmballoon.proofs.encoding import make_state, transition
    from vmballoon.proofs.props import PROPERTIES

    fixed, prop = Variant(frozenset({"lock_64bit_refused"})), PROPERTIES["host_agreement"]
    ts, tf = make_state("cont_s_"), make_state("cont_f_")
    c = defects._continuation(ts, tf, fixed, 2, ["host_agreement"], 99)
    seed, other = [ts, *c.seed], [tf, *c.fixed]
    implied = [transition(seed[m], c.inputs[m], seed[m + 1], SEED) for m in range(2)]
    implied += [transition(other[m], c.inputs[m], other[m + 1], fixed) for m in range(2)]
    implied += [z3.Not(prop(seed[-1])), prop(other[-1])]
    for fact in implied:
        sol = z3.Solver()
        sol.add(c.constraint, z3.Not(fact))
        assert sol.check() == z3.unsat, fact


def test_a_run_that_shows_the_defect_is_asked_up_to_three_steps_after_the_parting_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``_shown_after`` asks the parting transition itself (when a one-step query allows
    it), then 1, 2 and 3 more steps, and no more; with no answer it says so."""
    from vmballoon.proofs import defects

    asked: list[int] = []

    def none(*args: object, after: int = 0, **kwargs: object) -> Found:
        asked.append(after)
        return Found(10)

    monkeypatch.setattr(defects, "divergence_search", none)
    monkeypatch.setattr(defects, "_may_show_in_one_step", lambda *a: True)
    notes = defects.Notes()
    assert (
        defects._shown_after("lock_64bit_refused", ["host_agreement"], 10, 1.0, None, notes) is None
    )
    assert asked == [0, 1, 2, 3] == list(range(defects.AFTER_PARTING + 1))
    assert notes[-1].endswith("within 3 transitions after it") and not notes.undecided
    assert " at transition 11 breaks host_agreement " in notes[-1], notes
    asked.clear()
    monkeypatch.setattr(defects, "_may_show_in_one_step", lambda *a: False)
    defects._shown_after("lock_64bit_refused", ["host_agreement", "progress"], 10, 1.0, None, notes)
    assert asked == [1, 2, 3]
    assert any(
        n.endswith("breaks host_agreement (one-step query): it shows only after they part")
        for n in notes
    ), notes
    monkeypatch.setattr(defects, "divergence_search", lambda *a, **k: Found(10, unknown=True))
    undecided = defects.Notes()
    assert (
        defects._shown_after("lock_64bit_refused", ["host_agreement"], 10, 1.0, None, undecided)
        is None
    )
    assert undecided.undecided and "solver unknown" in undecided[-1], undecided


def test_a_product_answer_the_replay_does_not_confirm_is_not_the_defects_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The product's answer becomes the defect's row only when the replay confirms it;
    one it does not confirm is kept as the last answer and the search goes on."""
    import time

    from vmballoon.proofs import defects
    from vmballoon.proofs.trace import Trace

    answers = iter([Found(9, Trace([{"loc": 0}], []), prop="no_crash")])
    monkeypatch.setattr(defects, "product_search", lambda *a, **k: next(answers, Found(12)))
    monkeypatch.setattr(defects, "to_scenario", lambda *a: Scenario(steps=("work",), frames=64))
    monkeypatch.setattr(
        defects, "confirm_defect", lambda *a: (False, {"seed": [{"step": 9}], "fixed": []})
    )
    run = defects._Search(
        "reset_needs_ops", ["no_crash"], 12, 0, True, False, 1.0, None, time.monotonic()
    )
    row, last = defects._product_phase(run, {True: 0, False: 0})
    assert row is None and last is not None and last[0] == "no_crash" and last[2] == 9


@pytest.mark.parametrize("undecided", [False, True])
def test_a_defect_no_search_showed_is_none_or_unknown_as_its_searches_ended(
    undecided: bool,
) -> None:
    """No answer at all: the row is ``none`` when every search ended with "nothing",
    ``unknown`` when one was left undecided (a solver unknown, a budget spent)."""
    import time

    from vmballoon.proofs import defects
    from vmballoon.proofs.status import Status

    run = defects._Search(
        "reset_needs_ops", ["no_crash"], 12, 0, True, False, 1.0, None, time.monotonic()
    )
    run.notes.undecided = undecided
    row = defects._unshown(run, None)
    assert row.status == (Status.UNKNOWN if undecided else Status.NONE)


def test_the_cones_locations_are_one_set_per_depth_up_to_the_last_asked() -> None:
    """``Cone.locations(lo, hi)``: for each depth ``j <= hi`` (no more), the locations of
    the states at ``j`` of the cones of the depths ``lo..hi``; the divergence search
    unrolls step ``j + 1`` over them alone."""
    from vmballoon.proofs.abstract_reach import Cone

    fix = "doorbell_set_status"
    cone = Cone(fix, fix_locations(fix))
    lo = cone.bound(12)
    locs = cone.locations(lo, lo + 2)
    assert len(locs) == lo + 3
    for k in range(lo, lo + 3):
        for j, level in enumerate(cone.at(k)):
            assert {Loc(int(a[0])) for a in level} <= locs[j]
    assert locs[0] == {Loc.IDLE}
