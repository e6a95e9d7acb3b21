"""The steps of the per-defect search (vmballoon/proofs/defects.py) that the recorded
defects do not take, each driven with its collaborators replaced: what each step asks of
the solver, what it accepts from the replay, and what it claims in its notes and rows.

The replay is real throughout: ``FINDING`` is the checked-in scenario of
lock_64bit_refused (SEED and SEED + the fix part at transition 11, SEED breaks
host_agreement at 14); ``NOTHING`` is a scenario on which SEED breaks nothing.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import z3

from tests.conftest import ROOT
from vmballoon.core.scenario import Scenario, load_scenario
from vmballoon.core.variants import SEED
from vmballoon.proofs import defects
from vmballoon.proofs.check import bmc_all, confirm
from vmballoon.proofs.encoding import State, make_state
from vmballoon.proofs.props import PROPERTIES
from vmballoon.proofs.solver import Unknown
from vmballoon.proofs.status import Status
from vmballoon.proofs.trace import Trace, to_scenario
from vmballoon.proofs.unrolling import Found

FIX = "lock_64bit_refused"
FINDING = load_scenario(str(ROOT / "spec" / "findings" / "defect.lock_64bit_refused.scenario.json"))
NOTHING = Scenario(steps=())
PARTED = 10  # the run of FINDING parts the drivers at transition PARTED + 1
RUN = Trace([{"loc": 0}] * (PARTED + 1), [{}] * PARTED)  # what the solver "answered"


def _replays_as(sc: Scenario) -> Any:
    return lambda trace, variant: sc


def test_the_finding_parts_at_11_and_shows_at_14() -> None:
    """What the tests below rest on."""
    assert defects._first_step("host_agreement", FINDING) == 14
    assert defects.confirm_defect(FIX, "host_agreement", FINDING)[0]
    assert not defects.confirm_defect(FIX, "host_agreement", NOTHING)[0]


def test_an_abstraction_that_gives_up_bounds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the abstract cone cannot be computed (solver unknown), every depth is asked
    from 0: no lower bound is claimed."""

    class GivesUp:
        def __init__(self, *args: object) -> None:
            raise Unknown("the abstraction gave up")

    monkeypatch.setattr(defects, "Cone", GivesUp)
    assert defects._abstract_cone(FIX, 20, 1.0) == (None, 0)


def test_a_run_is_shown_in_its_parting_step_only_if_it_breaks_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``_in_parting_step`` accepts a run only when its replay confirms the defect AND
    breaks the property in the transition that parts the drivers: FINDING parted at 11
    breaks it at 14, which is not in its parting step; read as parting at 14, it is."""
    monkeypatch.setattr(defects, "_may_show_in_one_step", lambda *a: True)
    monkeypatch.setattr(defects, "divergence_search", lambda *a, **k: Found(k["depth"], RUN))
    monkeypatch.setattr(defects, "to_scenario", _replays_as(FINDING))
    notes = defects.Notes()
    props = ["host_agreement"]
    assert defects._in_parting_step(FIX, "host_agreement", props, PARTED, 1.0, None, notes) is None
    assert "no run of the pinned inputs shows host_agreement" in notes[-1], notes
    got = defects._in_parting_step(FIX, "host_agreement", props, 13, 1.0, None, defects.Notes())
    assert got is not None and got[0] == 13 and got[2] == ["host_agreement"]
    monkeypatch.setattr(defects, "to_scenario", _replays_as(NOTHING))  # confirms nothing
    assert defects._in_parting_step(FIX, "host_agreement", props, 13, 1.0, None, notes) is None


def test_the_product_after_parting_looks_six_steps_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_after_parting`` continues the parting run with the product search for
    :data:`~vmballoon.proofs.defects.SUFFIX` (six) more steps, within the search's depth."""
    asked: dict[str, Any] = {}

    def product(fix: str, **kw: Any) -> Found:
        asked.update(kw)
        return Found(kw["depth"])

    monkeypatch.setattr(defects, "product_search", product)
    assert defects._after_parting(FIX, ["host_agreement"], 40, PARTED, RUN, 1.0) is None
    assert (asked["start"], asked["depth"], asked["prefix"]) == (PARTED + 1, PARTED + 7, RUN)
    defects._after_parting(FIX, ["host_agreement"], 14, PARTED, RUN, 1.0)
    assert asked["depth"] == 14


def test_a_gap_answer_the_replay_does_not_confirm_decides_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The product over the gap between parting and violation answers a run: only a
    replay that confirms the defect makes it the shorter scenario."""
    monkeypatch.setattr(
        defects, "product_search", lambda *a, **k: Found(12, RUN, prop="host_agreement")
    )
    monkeypatch.setattr(defects, "to_scenario", _replays_as(NOTHING))
    shorter, established, words = defects._in_the_gap(FIX, ["host_agreement"], 11, 13, 1.0)
    assert shorter is None and not established
    assert "an answer the replay does not confirm" in words


@pytest.mark.parametrize("start", [0, 7])
def test_a_divergence_that_shows_nothing_is_blocked_and_the_next_asked(
    monkeypatch: pytest.MonkeyPatch, start: int
) -> None:
    """``_via_divergence``: the first divergence's run shows nothing and the product after
    it neither; its location path is blocked and the next divergence asked over the same
    depths (one below the defect search's depth, from one below its start, never below 0)."""
    asked: list[dict[str, Any]] = []

    def search(fix: str, **kw: Any) -> Found:
        asked.append(kw)
        return Found(kw["depth"])

    monkeypatch.setattr(defects, "to_scenario", _replays_as(NOTHING))
    monkeypatch.setattr(defects, "_after_parting", lambda *a: None)
    monkeypatch.setattr(defects, "divergence_search", search)
    notes = defects.Notes()
    got = defects._via_divergence(FIX, ["host_agreement"], 30, start, 1.0, (PARTED, RUN), notes)
    assert got is None
    assert asked == [
        {"depth": 29, "timeout": 1.0, "start": max(start - 1, 0), "blocked": [[0] * (PARTED + 1)]}
    ]
    assert notes[-1].endswith("none up to depth 30"), notes


@pytest.mark.parametrize("blocked", [False, True])
def test_a_product_row_says_whether_its_depth_is_the_shortest(
    monkeypatch: pytest.MonkeyPatch, blocked: bool
) -> None:
    """A product answer after blocked ones is not the shortest, and its row says so; one
    that is not says from which lower bound it is the shortest."""
    monkeypatch.setattr(defects, "_minimal", lambda fix, prop, raw: raw)
    run = defects._Search(FIX, ["host_agreement"], 30, 11, True, False, 1.0, None, time.monotonic())
    row = defects._product_row(run, "host_agreement", 14, FINDING, True, blocked, 11)
    assert row.status == Status.VIOLATED and row.depth == 14
    if blocked:
        assert "after blocked answers: shortest not established" in row.detail
        assert row.shortest == "not established"
    else:
        assert "shortest from the lower bound 11)" in row.detail
        assert row.shortest == "pinned shared inputs"


def test_bmc_gives_each_property_its_shortest_counterexample() -> None:
    """BMC of several properties over one unrolling: each violated one at its least depth
    (the checked-in SEED results: doorbell_agreement at 7, rate_counter at 10), with a
    run of that many steps whose replay confirms it; one SEED never breaks
    (refused_bounds, proved) is no-cex up to the depth asked."""
    names = ["doorbell_agreement", "rate_counter", "refused_bounds"]
    res = bmc_all(names, SEED, depth=10, timeout=60)
    assert {n: (r.status, r.depth) for n, r in res.items()} == {
        "doorbell_agreement": (Status.VIOLATED, 7),
        "rate_counter": (Status.VIOLATED, 10),
        "refused_bounds": (Status.NO_CEX, 10),
    }
    for name in ("doorbell_agreement", "rate_counter"):
        trace = res[name].trace
        assert trace is not None and len(trace.inputs) == res[name].depth
        assert confirm(name, to_scenario(trace, SEED), SEED).confirmed, name


def test_three_runs_of_the_least_depth_are_asked_before_one_that_shows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``first_divergence``: a parting run whose scenario shows nothing is blocked and the
    same depth asked again, three runs in all (SAME_DEPTH_ATTEMPTS), before the solver is
    asked for a run that shows the defect (``_shown_after``); with none, the first run is
    the answer, showing nothing."""
    blocked: list[int] = []  # how many location paths each search was told to avoid
    looked: list[Scenario] = []

    def search(fix: str, **kw: Any) -> Found:
        blocked.append(len(kw.get("blocked") or []))
        return Found(PARTED, RUN)

    def shows_nothing(fix: str, props: list[str], sc: Scenario) -> list[str]:
        looked.append(sc)
        return []

    monkeypatch.setattr(defects, "_abstract_cone", lambda *a: (None, 0))
    monkeypatch.setattr(defects, "divergence_search", search)
    monkeypatch.setattr(defects, "to_scenario", _replays_as(NOTHING))
    monkeypatch.setattr(defects, "confirmed", shows_nothing)
    monkeypatch.setattr(defects, "_shown_after", lambda *a: None)
    got = defects.first_divergence(FIX, ["host_agreement"], 30, 1.0, defects.Notes())
    assert got == (PARTED, RUN, [])
    assert len(looked) == 3
    assert blocked == [0, 1, 2, 3]


@pytest.mark.parametrize("attribution", [False, True])
def test_the_product_goal_at_k_asks_nothing_of_later_steps(attribution: bool) -> None:
    """``_ProductGoal.at(k)``: SEED breaks the property at ``k``, SEED + fix keeps it at
    every depth up to ``k`` and, with attribution, FIXED minus fix breaks it at some depth
    up to ``k``, never later (a later one would let the search report a depth at which
    the third copy has not shown the defect yet)."""
    names = ["no_leak", "protocol"]
    goal = defects._ProductGoal(names, attribution)
    states = [make_state(f"g{j}_") for j in range(4)]

    class Copies:
        def state(self, k: int, copy: str | None = None) -> State:
            return states[k]

    for j in range(4):  # each step's terms, as after_step would make them
        goal.holds_b.append({n: z3.Bool(f"holds_{n}_{j}") for n in names})
        goal.fails_c.append({n: z3.Bool(f"fails_{n}_{j}") for n in names})
    for k in range(3):
        want = z3.Or(
            [
                z3.And(
                    z3.Not(PROPERTIES[n](states[k])),
                    *(goal.holds_b[j][n] for j in range(k + 1)),
                    *([z3.Or([goal.fails_c[j][n] for j in range(k + 1)])] if attribution else []),
                )
                for n in names
            ]
        )
        s = z3.Solver()
        s.add(goal.at(Copies(), k) != want)  # type: ignore[arg-type]
        assert s.check() == z3.unsat, f"the goal at depth {k} is not the product's: {s.model()}"


def test_minimising_never_trades_inputs_for_transitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_minimal`` keeps only the scenarios on which the replay confirms the defect AND
    SEED shows it no later than on the raw scenario: here every smaller scenario confirms
    but shows it one transition later, so nothing can be dropped."""

    def confirm(fix: str, prop: str, sc: Scenario) -> tuple[bool, dict[str, Any]]:
        return True, {"seed": [{"step": 14 if sc == FINDING else 15}]}

    monkeypatch.setattr(defects, "confirm_defect", confirm)
    assert defects._minimal(FIX, "host_agreement", FINDING) == FINDING
