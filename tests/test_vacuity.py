"""Vacuity that means something (vmballoon/proofs/vacuity.py): totality, reachability, Init.

* totality: from every state of the FIXED invariant, at every location, some input
  satisfies the step's constraints; strengthening any ``tx.assume`` of the encoding to
  ``False`` is caught (by totality or by the branch-complete conformance check);
* reachability: every running location is reached from Init by model runs whose
  every step is checked to be a step of the encoding;
* Init: α of the model's initial state satisfies the encoding's ``Init``.
"""

from __future__ import annotations

import ast
import random
from typing import Any

import pytest
import z3

from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.model.state import Loc
from vmballoon.proofs.conformance import random_scenario, targeted_scenarios
from vmballoon.proofs.encoding import TRANSITIONS
from vmballoon.proofs.solver import invariant
from vmballoon.proofs.status import Status
from vmballoon.proofs.vacuity import init_agrees, reachability, totality

RUNNING: list[Loc] = [loc for loc in TRANSITIONS if loc not in (Loc.EXITED, Loc.CRASHED)]


def test_totality_under_the_fixed_invariant() -> None:
    """Every location admits an input from every state of the FIXED invariant, and one
    input does it everywhere: the default input (the host answers SUCCESS and writes no
    status, allocations fail, ``vacuity.default_inputs``), a certificate with no
    quantifier; the quantified check is the fallback for an encoding it does not fit."""
    r = totality(FIXED, invariant)
    assert r.ok(), (r.dead, r.unknown)
    assert set(r.how) == {loc.name for loc in TRANSITIONS}
    assert set(r.how.values()) == {"no constraints", "default input"}, r.how


def test_totality_fails_when_an_assume_is_false() -> None:
    """An encoding that refuses every input at a location is caught."""
    from .mutate import mutant

    old = '    e = tx.i["entry"]\n    tx.assume(z3.ULE(e, z3.BitVecVal(2, 8)))\n'
    new = '    e = tx.i["entry"]\n    tx.assume(z3.BoolVal(False))\n'
    with mutant("vmballoon.proofs.encoding", old, new) as enc:
        r = totality(FIXED, invariant, enc=enc)
    assert "IDLE" in r.dead


@pytest.mark.parametrize(
    "planted",
    [
        "z3.BoolVal(False)",
        # false exactly in the states the step leaves from: only they may be asked
        'tx["loc"] != loc_val(Loc.I_LOOP)',
    ],
)
def test_totality_asks_for_one_input_meeting_every_constraint_of_a_step(planted: str) -> None:
    """I_LOOP's step has several constraints; one made False in every state it leaves
    from leaves the others satisfiable, and the location is still dead: an input must
    meet them all, in the states at I_LOOP."""
    from .mutate import mutant

    old = '            z3.Extract(8, 0, tx["f_pfn"]) == z3.BitVecVal(0, 9),\n        )\n    )\n'
    new = old + f"    tx.assume({planted})\n"
    with mutant("vmballoon.proofs.encoding", old, new) as enc:
        s, i = enc.make_state("s_"), enc.make_inputs("i_")
        assert len(enc.successor(Loc.I_LOOP, s, i, FIXED).cons) > 1
        r = totality(FIXED, invariant, enc=enc, locs=[Loc.I_LOOP])
    assert r.dead == {"I_LOOP": "a state satisfying the invariant admits no input"}
    assert not r.ok()


def test_totality_is_ok_only_with_no_dead_and_no_unknown_location() -> None:
    from vmballoon.proofs.vacuity import Totality

    assert Totality("fixed").ok()
    assert not Totality("fixed", dead={"I_LOOP": "no input"}).ok()
    assert not Totality("fixed", unknown=["I_LOOP"]).ok()  # a timeout proves nothing


@pytest.mark.parametrize("pfn_base", [0, 7, (1 << 32) - 5, 1 << 32, (1 << 52) - 4096])
@pytest.mark.parametrize("totalram", [None, 1 << 33])
def test_init_matches_the_model(pfn_base: int, totalram: int | None) -> None:
    sc = Scenario(steps=("work",), frames=1024, pfn_base=pfn_base, totalram_pages=totalram)
    frames = [pfn_base, pfn_base + 1, pfn_base + 512, pfn_base + 1023, pfn_base + 5000, 0]
    for variant in (SEED, FIXED):
        assert not init_agrees(sc, variant, [f for f in frames if f < (1 << 52)])


def _scenarios() -> list[Scenario]:
    rng = random.Random(31)
    return [*targeted_scenarios().values(), *(random_scenario(rng) for _ in range(60))]


def test_a_step_the_abstraction_cannot_represent_ends_its_scenario_and_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reachability counts a location only along an unbroken chain of checked steps: the
    first step that cannot be represented is counted once and ends its scenario."""
    from vmballoon.proofs import conformance

    real = conformance.sample_of
    seen = {"n": 0}

    def third_fails(*args: Any) -> Any:
        seen["n"] += 1
        return None if seen["n"] == 3 else real(*args)

    monkeypatch.setattr(conformance, "sample_of", third_fails)
    scenarios = _scenarios()[:2]
    r = reachability(FIXED, scenarios)
    assert r.not_representable == 1
    first, *_ = _locations_of(scenarios[0])
    assert sum(r.reached.values()) > 2  # the second scenario still counts
    assert first in r.reached


def test_reachability_checks_init_once_per_scenario_on_three_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each scenario's first transition gives the frames whose α of the initial state is
    held to ``Init`` (up to three of them), and what fails is reported."""
    from vmballoon.proofs import vacuity
    from vmballoon.proofs.abstraction import candidate_frames
    from vmballoon.proofs.conformance import transitions_of

    asked: list[list[int]] = []

    def failing(scenario: Scenario, variant: Variant, frames: list[int]) -> list[str]:
        asked.append(list(frames))
        return [str(f) for f in frames]

    monkeypatch.setattr(vacuity, "init_agrees", failing)
    scenarios = _scenarios()[:3]
    r = reachability(FIXED, scenarios)
    firsts = [next(iter(transitions_of(sc, FIXED, 10)))[:2] for sc in scenarios]
    want = [candidate_frames(prev, nxt)[:3] for prev, nxt in firsts]
    assert asked == want and any(len(w) == 3 for w in want)
    assert r.init_failures == [str(f) for w in want for f in w]


def _locations_of(scenario: Scenario) -> list[str]:
    from vmballoon.proofs.conformance import transitions_of

    return [prev.loc.name for prev, *_ in transitions_of(scenario, FIXED, 100)]


@pytest.mark.parametrize("variant", [SEED, FIXED], ids=lambda v: v.name)
def test_every_location_is_reachable_from_init(variant: Variant) -> None:
    r = reachability(variant, _scenarios())
    assert not r.init_failures
    assert not r.mismatches, r.mismatches[:3]
    assert not r.missing(RUNNING), r.missing(RUNNING)
    assert not r.missing([Loc.EXITED])
    if variant == FIXED:
        assert r.not_representable == 0
    else:  # the seed's defects crash the guest (no_crash is violated there)
        assert not r.missing([Loc.CRASHED])


def test_assume_table_lists_every_assume_of_the_encoding() -> None:
    from vmballoon.proofs.assumes import SPEC, check_table, markdown

    assert not check_table()
    assert SPEC.read_text() == markdown(), "regenerate spec/encoding-assumes.md"


LOCS_OF = {
    "_batch_entries": [Loc.I_LOCK],
    "t_idle": [Loc.IDLE],
    "t_reset_ops": [Loc.R_OPS],
    "t_inflate_loop": [Loc.I_LOOP],
    "t_deflate_loop": [Loc.D_LOOP],
}


def _assume_sites() -> list[tuple[str, int]]:
    from vmballoon.proofs.assumes import encoding_source, sites

    return [(fn, rank) for fn, rank, _, _, _ in sites(encoding_source())]


def _strengthened(text: str) -> str:
    """``tx.assume(X)`` made stricter: ``X`` and not its premise (an implication), not its
    boundary (a ``ULE``/``ULT``), or ``False`` (anything else)."""
    call = ast.parse(text.strip(), mode="eval").body
    assert isinstance(call, ast.Call)
    x = call.args[0]
    src = text.strip()

    def seg(node: ast.AST) -> str:
        return str(ast.get_source_segment(src, node))

    attr = x.func.attr if isinstance(x, ast.Call) and isinstance(x.func, ast.Attribute) else ""
    if isinstance(x, ast.Call) and attr == "Implies":
        extra = f"z3.Not({seg(x.args[0])})"
    elif isinstance(x, ast.Call) and attr in ("ULE", "ULT"):
        extra = f"{seg(x.args[0])} != {seg(x.args[1])}"
    else:
        extra = "z3.BoolVal(False)"
    return f"tx.assume(z3.And({seg(x)}, {extra}))"


@pytest.mark.parametrize(("fn", "rank"), _assume_sites())
def test_strengthening_an_assume_is_caught(fn: str, rank: int) -> None:
    """Each ``tx.assume`` made stricter: totality, input-completeness or the branch-complete
    conformance fails."""
    import sys
    from types import ModuleType

    from vmballoon.proofs import completeness
    from vmballoon.proofs.assumes import encoding_source, sites
    from vmballoon.proofs.witness import Status, check

    src = encoding_source()
    (a, b, text) = next((a, b, t) for f, r, t, a, b in sites(src) if (f, r) == (fn, rank))
    mutated = src[:a] + _strengthened(text) + src[b:]
    name = f"vmballoon.proofs.encoding_strengthened_{fn}_{rank}"
    mod = ModuleType(name)
    mod.__file__ = f"<{name}>"
    sys.modules[name] = mod
    try:
        exec(compile(mutated, mod.__file__, "exec"), mod.__dict__)
        r = totality(FIXED, invariant, enc=mod, locs=LOCS_OF[fn])
        complete = completeness.check(FIXED, enc=mod, locs=LOCS_OF[fn])
        witnessed = check(FIXED, enc=mod, locs=LOCS_OF[fn])
        caught = bool(r.dead) or complete.status != Status.PASSED or not witnessed.ok()
        # input-completeness catches each by itself: the contract allows what it drops
        assert complete.status == Status.FAILED, complete.line()
    finally:
        del sys.modules[name]
    assert caught, f"strengthening {fn} #{rank} went unnoticed"


def test_reachability_watches_the_frame_each_step_touches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step is checked against the encoding on the frame it acts on (the first frame its
    events name: the page it allocates, locks, unlocks or frees), so a defect in how the
    encoding treats that page is seen; other steps on the first frame worth watching."""
    from vmballoon.model.properties import new_events
    from vmballoon.proofs import conformance
    from vmballoon.proofs.abstraction import candidate_frames

    real = conformance.sample_of
    watched: list[tuple[int, int]] = []
    acting = 0

    def recording(prev: Any, nxt: Any, g0: Any, g1: Any, found: Any, f: int) -> Any:
        named = [
            ev[k]
            for ev in new_events(prev, nxt)
            if ev["ev"] != "step"
            for k in ("pfn", "arg1")
            if isinstance(ev.get(k), int)
        ]
        nonlocal acting
        acting += bool(named)
        want = named[0] if named else candidate_frames(prev, nxt)[0]
        watched.append((f, want))
        return real(prev, nxt, g0, g1, found, f)

    monkeypatch.setattr(conformance, "sample_of", recording)
    reachability(FIXED, _scenarios()[:8])
    assert acting > 20
    assert all(f == want for f, want in watched), [w for w in watched if w[0] != w[1]][:3]


def test_reachability_counts_the_steps_checked_from_each_location() -> None:
    """``Reachability.reached`` maps each location to the number of checked steps taken
    from it, and a location only entered (the last of a scenario) to 0."""
    from collections import Counter

    from vmballoon.proofs.conformance import transitions_of

    scenarios = _scenarios()[:6]
    want: Counter[str] = Counter()
    for sc in scenarios:
        for prev, nxt, *_ in transitions_of(sc, FIXED, 100_000):
            want[prev.loc.name] += 1
            want[nxt.loc.name] += 0
    r = reachability(FIXED, scenarios)
    assert (r.not_representable, r.mismatches) == (0, [])  # every step checked
    assert r.reached == dict(want)
    assert 0 in r.reached.values()  # a location only entered


def test_vacuity_of_fixed_is_proved_and_says_what_was_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``check.vacuity`` on FIXED: Init and the invariant meet, every transition is
    enabled from the invariant and it is total; the row says exactly that and names no
    location.  With every transition refused it fails and names them, and claims no
    location undecided."""
    from vmballoon.proofs import check

    ok = check.vacuity(FIXED, 60.0)
    assert ok.status == Status.PROVED
    assert ok.detail == (
        "Init ∧ Inv sat; all transitions enabled under Inv; total: from every state of Inv "
        "every location admits an input"
    )
    monkeypatch.setattr(check, "successor", lambda *a: _Refused())
    dead = check.vacuity(FIXED, 60.0)
    assert dead.status == Status.FAILED and dead.detail.startswith("never enabled: ['IDLE'")
    assert "solver unknown" not in dead.detail


class _Refused:
    """A step no state takes: its constraint is false."""

    def __init__(self) -> None:
        self.cons = [z3.BoolVal(False)]
        self.post = {"loc": z3.BitVecVal(0, 8)}
