"""Houdini: the largest inductive subset of a set of candidate invariants.

Used by the safety proofs (:func:`vmballoon.proofs.check.houdini`) and by the per-tick
progress proof (:mod:`vmballoon.proofs.progress`), which adds assumptions on every step.
"""

from __future__ import annotations

from collections.abc import Callable

import z3

from vmballoon.model.state import Loc
from vmballoon.proofs.encoding import Expr, State, Step, initial, loc_val
from vmballoon.proofs.solver import Unknown, solver

Candidate = Callable[[State], Expr]


def _no_assumption(s: State) -> list[Expr]:
    return []


def _no_step_assumption(s: State, i: State) -> list[Expr]:
    return []


def houdini(
    cands: dict[str, Candidate],
    posts: dict[Loc, Step],
    s: State,
    i: State,
    timeout: float,
    base: Callable[[State], list[Expr]] = _no_assumption,
    extra: Callable[[State, State], list[Expr]] = _no_step_assumption,
) -> tuple[list[str], dict[str, str]]:
    """Drop every candidate that fails initiation or consecution; the survivors and drops.

    Start from every candidate ``C``; for each location ``L`` ask for a state with
    ``base ∧ ∧C ∧ loc = L ∧ T_L ∧ extra`` whose successor violates some member of
    ``C``; drop the members the model shows violated and ask again, until every
    location is unsat (a location already unsat for the current ``C`` is not asked
    again).  The survivors form an inductive invariant (``Init => ∧C`` and
    ``∧C ∧ T => ∧C'`` under the assumptions); one query per location when nothing
    fails.  ``dropped`` maps a candidate to ``"initiation"`` or the location where it
    failed.  A solver ``unknown`` raises :class:`Unknown`: nothing is claimed.
    """
    live = list(cands)
    dropped: dict[str, str] = {}
    pre = {n: c(s) for n, c in cands.items()}  # each candidate's formula built once
    sol = solver(timeout)
    sol.add(initial(s))
    for name in list(live):
        r = sol.check(z3.Not(pre[name]))
        if r == z3.unknown:
            raise Unknown(f"initiation of {name}")
        if r == z3.sat:
            live.remove(name)
            dropped[name] = "initiation"
    after: dict[Loc, dict[str, Expr]] = {}  # per location, each candidate on the successor
    holds_for: dict[Loc, int] = {}  # location -> the len(live) its consecution was unsat for
    changed = True
    while changed and live:
        changed = False
        for loc, st in posts.items():
            if holds_for.get(loc) == len(live):
                continue  # unsat for this very set already (live only shrinks)
            if loc not in after:
                after[loc] = {n: c(st.post) for n, c in cands.items()}
            post = after[loc]
            while live:
                sol = solver(timeout)
                sol.add(*base(s), *(pre[n] for n in live), s["loc"] == loc_val(loc))
                sol.add(*st.cons, *extra(s, i))
                sol.add(z3.Or([z3.Not(post[n]) for n in live]))
                r = sol.check()
                if r == z3.unsat:
                    holds_for[loc] = len(live)
                    break
                if r == z3.unknown:
                    raise Unknown(f"consecution from {loc.name}: {sol.reason_unknown()}")
                m = sol.model()
                bad = [n for n in live if z3.is_false(m.eval(post[n], model_completion=True))]
                for n in bad:
                    live.remove(n)
                    dropped[n] = loc.name
                changed = True
    return live, dropped
