"""The one unrolling and least-depth search (vmballoon/proofs/unrolling.py).

``shortest`` on toy queries (the least depth, whatever depth a window's model names;
unknown passed on, never "none"); ``query`` and ``shortest`` on a real Z3 counter; and
``Unrolling``: its copies read the same inputs, its constants keep the names every search
gives Z3, and a model's trace has the run's states and inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import z3

from vmballoon.core.variants import FIXED, SEED
from vmballoon.model.state import Loc
from vmballoon.proofs.abstract_reach import apart
from vmballoon.proofs.unrolling import Answer, Unrolling, first_true, query, shortest
from vmballoon.proofs.zeval import nodes


def _toy(
    goal_from: int, unknown_at: int | None = None
) -> tuple[Callable[[int, int], Answer], list[tuple[int, int]]]:
    """An ask whose goal holds at every depth >= ``goal_from``; a sat window names its
    LAST such depth (so the search must narrow it); a window reaching ``unknown_at`` is
    unknown.  Records the windows asked."""
    asked: list[tuple[int, int]] = []

    def ask(lo: int, hi: int) -> Answer:
        asked.append((lo, hi))
        if unknown_at is not None and lo <= unknown_at <= hi:
            return Answer(z3.unknown, None, hi)
        if hi < goal_from:
            return Answer(z3.unsat, None, hi)
        return Answer(z3.sat, f"model {lo}..{hi}", hi)

    return ask, asked


@pytest.mark.parametrize("window", [False, True])
@pytest.mark.parametrize("least", [0, 1, 5, 9, 12])
def test_shortest_finds_the_least_depth(window: bool, least: int) -> None:
    ask, asked = _toy(least)
    r = shortest(ask, 0, 12, window=window)
    assert r.found and not r.unknown
    assert r.depth == least
    if not window:  # iterative deepening: one depth a query, in order
        assert asked == [(k, k) for k in range(least + 1)]


def test_shortest_gallops_and_narrows() -> None:
    """Windows of 1, 2, 4, 8 depths; the one that answers (8..15, model at 15) is narrowed
    down to the least depth, 11."""
    ask, asked = _toy(11)
    r = shortest(ask, 0, 20, window=True)
    assert r.depth == 11 and r.found
    assert asked[:4] == [(0, 0), (1, 2), (3, 6), (7, 14)]
    assert all(hi < 14 for _, hi in asked[4:])  # the narrowing asks below the model's depth


def test_shortest_from_a_lower_bound_and_none() -> None:
    ask, asked = _toy(3)
    r = shortest(ask, 5, 9, window=False)
    assert r.found and r.depth == 5 and asked == [(5, 5)]
    never, _ = _toy(100)
    none = shortest(never, 0, 7, window=True)
    assert not none.found and not none.unknown and none.depth == 7 and none.model is None
    empty, asked_empty = _toy(0)
    assert not shortest(empty, 4, 3, window=False).found and asked_empty == []


@pytest.mark.parametrize("window", [False, True])
def test_shortest_passes_unknown_on(window: bool) -> None:
    """A window the solver gives up on ends the search as unknown, never as "none"."""
    ask, _ = _toy(8, unknown_at=4)
    r = shortest(ask, 0, 12, window=window)
    assert r.unknown and not r.found and r.model is None
    assert r.depth >= 4


def test_shortest_passes_unknown_on_while_narrowing() -> None:
    """Unknown below a window that answered: the least depth is not established."""
    asked: list[tuple[int, int]] = []

    def ask(lo: int, hi: int) -> Answer:
        asked.append((lo, hi))
        if (lo, hi) == (3, 6):
            return Answer(z3.sat, "m", 6)
        if hi < 3:
            return Answer(z3.unsat, None, hi)
        return Answer(z3.unknown, None, hi)

    r = shortest(ask, 0, 10, window=True)
    assert r.unknown and r.depth == 5 and asked[-1] == (3, 5)


def _counter(n: int) -> tuple[list[z3.BitVecRef], list[z3.BoolRef]]:
    """x counts up by 1 or 2 a step from 0: its values and ``n`` steps."""
    xs = [z3.BitVec(f"x{k}", 8) for k in range(n + 1)]
    ds = [z3.BitVec(f"d{k}", 8) for k in range(n)]
    steps = [xs[0] == 0] + [
        z3.And(xs[k] == xs[k - 1] + ds[k - 1], z3.Or(ds[k - 1] == 1, ds[k - 1] == 2))
        for k in range(1, n + 1)
    ]
    return xs, steps


def test_query_and_shortest_on_a_counter() -> None:
    """A real query: x counts up by 1 or 2 a step from 0; the least depth at which x == 7
    is 4, found by iterative deepening and by galloping windows alike."""
    xs, steps = _counter(10)

    def goal(k: int) -> z3.BoolRef:
        return xs[k] == 7

    for window in (False, True):
        ask = query(
            steps,
            lambda lo, hi: [goal(k) for k in range(lo, hi + 1)],
            timeout=10.0,
            least=first_true(goal),
        )
        r = shortest(ask, 0, 10, window=window)
        assert r.found and r.depth == 4, window
        assert r.model.eval(xs[4]).as_long() == 7
    never = query(
        steps,
        lambda lo, hi: [xs[k] == 100 for k in range(lo, hi + 1)],
        timeout=10.0,
        least=first_true(lambda k: xs[k] == 100),
    )
    assert not shortest(never, 0, 10, window=True).found


def test_a_query_keeps_to_its_deadline_skip_and_side_constraints() -> None:
    """``query``'s options: a deadline less than a second away answers unknown without a
    query, one further away lets the query run (its seconds told to ``spent``); a window
    ``skip`` excludes is unsat without a query; ``side(hi)`` constrains the window's query;
    with ``keep`` the last query's solver is held until ``close``."""
    import time

    xs, steps = _counter(6)

    def goals(lo: int, hi: int) -> list[z3.BoolRef]:
        return [xs[k] == 5 for k in range(lo, hi + 1)]

    least = first_true(lambda k: xs[k] == 5)
    spent: list[float] = []
    late = query(
        steps, goals, timeout=10.0, least=least, deadline=time.monotonic() + 0.5, spent=spent.append
    )
    a = late(0, 6)
    assert a.result == z3.unknown and a.model is None and a.depth == 6 and spent == []
    ahead = query(
        steps, goals, timeout=10.0, least=least, deadline=time.monotonic() + 5.0, spent=spent.append
    )
    b = ahead(2, 6)
    assert b.result == z3.sat and len(spent) == 1 and spent[0] >= 0
    assert 3 <= b.depth <= 5 and b.model.eval(xs[b.depth]).as_long() == 5
    skipped = query(
        steps, goals, timeout=10.0, least=least, skip=lambda lo, hi: hi < 4, spent=spent.append
    )
    assert skipped(0, 3).result == z3.unsat and len(spent) == 1
    assert skipped(0, 4).result == z3.sat and len(spent) == 2
    # the side constraint of the window's last depth: x ends at 6, so 5 is passed on the way
    sided = query(steps, goals, timeout=10.0, least=least, side=lambda hi: [xs[hi] == 2 * hi])
    assert sided(0, 3).result == z3.unsat  # x == 6 after 3 steps of 2: never 5
    kept = query(steps, goals, timeout=10.0, least=least, keep=True)
    assert kept(0, 6).result == z3.sat and len(kept._held) == 1
    kept.close()
    assert kept._held == []
    dropped = query(steps, goals, timeout=10.0, least=least)
    assert dropped(0, 6).result == z3.sat and dropped._held == []


def test_copies_share_their_inputs() -> None:
    """Two copies of SEED driven by the same inputs from the same state cannot part; SEED
    and FIXED can (a fix changes a step).  Were the inputs not shared, both would."""
    same = Unrolling({"a": SEED, "b": SEED}, 3)
    assert len(same.inputs) == 3
    sol = z3.Solver()
    sol.add(*same.steps, z3.Or([apart(same.state(k, "a"), same.state(k, "b")) for k in range(4)]))
    assert sol.check() == z3.unsat
    both = Unrolling({"a": SEED, "b": FIXED}, 3)
    sol = z3.Solver()
    sol.add(*both.steps, z3.Or([apart(both.state(k, "a"), both.state(k, "b")) for k in range(4)]))
    assert sol.check() == z3.sat


def test_the_constants_keep_their_names_and_a_model_gives_the_run() -> None:
    u = Unrolling({"s": SEED}, 2, accel=True)
    assert str(u.state(0)["loc"]) == "s0_loc" and str(u.state(2)["loc"]) == "s2_loc"
    assert str(u.inputs[1]["entry"]) == "i1_entry"
    assert str(u.accs[0]["acc_k"]) == "a0_acc_k"
    named = {str(c) for c in _consts(u.steps[1])}
    assert {"s0_loc", "s1_loc", "i0_entry", "a0_acc"} <= named
    assert not any(n.startswith(("s2_", "i1_", "a1_")) for n in named)
    sol = z3.Solver()
    sol.add(*u.steps)
    assert sol.check() == z3.sat
    t = u.trace(sol.model(), 2)
    assert len(t.states) == 3 and len(t.inputs) == 2
    assert Loc(int(t.states[0]["loc"])) == Loc.IDLE and "acc" in t.inputs[0]


def test_a_given_trace_fixes_the_start_and_every_one_of_its_inputs() -> None:
    """``given``: the trace's first state is the start and its inputs are the first
    steps' inputs, the last one included; the steps after it are free; ``after_step``
    is told each step as it is built, the start as step 0."""
    from vmballoon.proofs.zeval import equal_to

    run = Unrolling({"s": SEED}, 2)
    sol = z3.Solver()
    first, second = run.inputs
    sol.add(*run.steps, z3.Or([first[n] != second[n] for n in first]))  # told apart
    assert sol.check() == z3.sat
    prefix = run.trace(sol.model(), 2)
    assert prefix.inputs[0] != prefix.inputs[1]
    built: list[int] = []
    u = Unrolling({"s": SEED}, 3, given=prefix, after_step=lambda _, k: built.append(k))
    assert built == [0, 1, 2, 3]
    for k, inputs in enumerate(prefix.inputs):
        other = z3.Solver()
        other.add(*u.steps, z3.Not(z3.And(equal_to(u.inputs[k], inputs))))
        assert other.check() == z3.unsat, k
    free = z3.Solver()
    free.add(*u.steps, z3.Not(z3.And(equal_to(u.inputs[2], prefix.inputs[1]))))
    assert free.check() == z3.sat
    start = z3.Solver()
    start.add(*u.steps, z3.Not(z3.And(equal_to(u.state(0), prefix.states[0]))))
    assert start.check() == z3.unsat


def _consts(e: z3.ExprRef) -> set[z3.ExprRef]:
    return {
        x
        for x in nodes(e, lambda x: True)
        if z3.is_const(x) and x.decl().kind() == z3.Z3_OP_UNINTERPRETED
    }


def test_excluded_paths_are_not_followed_and_longer_ones_are_left_alone() -> None:
    """``path_excluded``: no run of the first copy follows an excluded location path (of
    at most ``hi + 1`` states); a path longer than that says nothing about the window;
    the runs that differ anywhere on the path stay."""
    u = Unrolling({"s": FIXED}, 3)
    sol = z3.Solver()
    sol.add(*u.steps)
    assert sol.check() == z3.sat
    run = [int(st["loc"]) for st in u.trace(sol.model(), 3).states]

    def admits(paths: list[list[int]], hi: int, *extra: z3.BoolRef) -> bool:
        s = z3.Solver()
        s.add(*u.steps[: hi + 1], *u.path_excluded(paths, hi), *extra)
        return bool(s.check() == z3.sat)

    follows = z3.And([u.state(k)["loc"] == v for k, v in enumerate(run)])
    assert admits([], 3, follows)
    assert not admits([run], 3, follows)
    assert not admits([run[:2]], 3, follows)  # a prefix excludes every run through it
    # a path that meets the run at its start and parts from it after excludes nothing of it
    assert admits([[run[0], run[1] ^ 0x40]], 3, follows)
    assert admits([run], 2, follows) and u.path_excluded([run], 2) == []
    assert len(u.path_excluded([run, run[:3], run[:1]], 2)) == 2
    # the start is IDLE: excluding it leaves nothing; excluding another start, everything
    assert not admits([[Loc.IDLE.value]], 0)
    assert admits([[Loc.W_BEGIN.value]], 0)


def test_a_trace_can_end_with_the_state_a_caller_built_after_it() -> None:
    """``trace(m, k, then=post)``: the ``k`` steps, then ``post`` as state ``k + 1`` with
    the inputs of step ``k + 1`` (which ``post`` read); without it, ``k`` inputs."""
    from vmballoon.proofs.encoding import successor

    u = Unrolling({"s": FIXED}, 2)
    nxt = successor(Loc.IDLE, u.state(0), u.inputs[0], FIXED)
    sol = z3.Solver()
    sol.add(u.steps[0], *nxt.cons, u.inputs[0]["entry"] == 0)
    assert sol.check() == z3.sat
    m = sol.model()
    plain = u.trace(m, 0)
    assert (len(plain.states), len(plain.inputs)) == (1, 0)
    t = u.trace(m, 0, then=nxt.post)
    assert (len(t.states), len(t.inputs)) == (2, 1)
    assert t.inputs[0]["entry"] == 0 and Loc(int(t.states[1]["loc"])) != Loc.IDLE
    assert t.states[0] == plain.states[0]


def test_dropping_states_empties_the_copies_asked_or_all() -> None:
    u = Unrolling({"a": SEED, "b": FIXED}, 2)
    u.drop_states("a")
    assert u.states["a"] == [] and len(u.states["b"]) == 3
    u.drop_states()
    assert u.states == {"a": [], "b": []}


def test_the_environment_constrains_each_step_from_its_own_pre_state() -> None:
    """``env(s, i)`` (the progress BMC's cooperative host) is asked of each step with the
    state the step leaves and the step's inputs, not of any other state."""
    seen: list[tuple[object, object]] = []

    def env(s: object, i: object) -> z3.BoolRef:
        seen.append((s, i))
        return z3.BoolVal(True)

    u = Unrolling({"a": SEED, "b": FIXED}, 3, env=env)
    assert len(seen) == 3
    for k, (s, i) in enumerate(seen):
        assert s is u.state(k, "a") and i is u.inputs[k], k
