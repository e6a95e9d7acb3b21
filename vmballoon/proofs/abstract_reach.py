"""A sound lower bound on the depth where SEED and SEED + fix can part: abstract reachability.

:func:`vmballoon.proofs.defects.divergence_search` proves "no divergence at depth ``k``" with one
BMC query per depth, and the deep ones are costly (``warn_status_frees`` parts at
transition 25; its queries at depths 13-23 took some 40 s).  Most of those depths can be
excluded far more cheaply on a finite abstraction of the encoding's state: the control
location and a few flags that gate the paths to a fix's locations (:data:`FIELDS`).

The abstract transition relation is computed from the encoding itself, one location at a
time: from every concrete state whose abstraction is ``a`` (no other constraint, so a
superset of the reachable ones) and every input the search allows (the same
:func:`vmballoon.proofs.pinned.pin` constraints), the solver enumerates every abstraction of a
successor.  Every concrete run of the unrolling therefore has an abstract run of the same
length from an abstraction of ``Init``.  A depth at which no reachable abstract state
admits the two drivers' steps differing (:func:`may_part`, again asked of every concrete
state with that abstraction) has no divergence at all.  Exploring breadth-first gives the
least such depth (:meth:`Cone.bound`): a lower bound the BMC search starts from.  For each
deeper depth ``k``, the abstract states on a run that may part the drivers at ``k``
(:meth:`Cone.at`) bound the concrete query of that depth (:meth:`Cone.constraint`).  A
solver ``unknown`` anywhere raises :class:`Unknown`: the search
(:func:`vmballoon.proofs.defects.first_divergence`) then asks every depth, each query unbounded.
"""

from __future__ import annotations

from collections.abc import Iterable

import z3

from vmballoon.core.variants import SEED, Variant
from vmballoon.model.state import Loc
from vmballoon.proofs.encoding import (
    FIELD_NAMES,
    Expr,
    State,
    initial,
    make_inputs,
    make_state,
    transition,
)
from vmballoon.proofs.pinned import FREE_PRODUCT, RESET_TOO, pin
from vmballoon.proofs.solver import Unknown, solver
from vmballoon.proofs.zeval import equal_to, value_of

FIELDS: tuple[str, ...] = ("loc", "ops", "reset", "page_null", "bpage", "page_eq_batch")
"""The abstraction: where the driver is, which ops it has, whether a reset is pending,
whether ``b->page`` and the batch page exist and whether they are the same frame (the
interplay by which a seed's batched command names its batch page at all)."""

Abstract = tuple[int | bool, ...]


def _is(s: State, a: Abstract) -> Expr:
    """The state ``s`` has the abstraction ``a``."""
    return z3.And(equal_to(s, dict(zip(FIELDS, a, strict=True))))


def both_steps(
    s: State, i: State, ts: State, tf: State, fixed: Variant, locs: frozenset[Loc]
) -> list[Expr]:
    """SEED steps from ``s`` to ``ts`` and ``fixed`` (SEED + a fix) to ``tf``, from the same
    state, with the same inputs ``i``, out of one of ``locs``."""
    return [transition(s, i, ts, SEED, locs), transition(s, i, tf, fixed, locs)]


def apart(ts: State, tf: State) -> Expr:
    """The two successors of :func:`both_steps` differ in some field."""
    return z3.Or([ts[n] != tf[n] for n in FIELD_NAMES])


def _all(sol: z3.Solver, s: State) -> set[Abstract]:
    """Every abstraction of ``s`` the constraints of ``sol`` admit (one query each, and a
    last unsatisfiable one)."""
    out: set[Abstract] = set()
    while True:
        r = sol.check()
        if r == z3.unknown:
            raise Unknown
        if r == z3.unsat:
            return out
        a = tuple(value_of(sol.model(), s[n]) for n in FIELDS)
        out.add(a)
        sol.add(z3.Not(_is(s, a)))


class AbstractReach:
    """The abstract transition relation of SEED under the pinned inputs of the search,
    computed on demand and cached."""

    def __init__(self, fixed: Variant, timeout: float) -> None:
        self.s, self.i = make_state("abs_s_"), make_inputs("abs_i_")
        self.t, self.tf = make_state("abs_t_"), make_state("abs_tf_")
        self.fixed = fixed
        self.timeout = timeout
        self.pins = pin(self.i, FREE_PRODUCT, RESET_TOO)
        self._succ: dict[Abstract, set[Abstract]] = {}
        self._parts: dict[Abstract, bool] = {}

    def _solver(self, *cons: Expr) -> z3.Solver:
        sol = solver(self.timeout)
        sol.add(*cons)
        return sol

    def initial(self) -> set[Abstract]:
        """The abstractions of ``Init``."""
        return _all(self._solver(initial(self.s)), self.s)

    def successors(self, a: Abstract) -> set[Abstract]:
        """Every abstraction of a successor of a state abstracted as ``a``."""
        if a not in self._succ:
            loc = frozenset({Loc(int(a[0]))})
            sol = self._solver(
                _is(self.s, a), transition(self.s, self.i, self.t, SEED, loc), *self.pins
            )
            self._succ[a] = _all(sol, self.t)
        return self._succ[a]

    def may_part(self, a: Abstract, where: frozenset[Loc]) -> bool:
        """Whether from some state abstracted as ``a`` SEED and SEED + fix step apart."""
        if a not in self._parts:
            loc = Loc(int(a[0]))
            if loc not in where:
                self._parts[a] = False
            else:
                s, i, t, tf = self.s, self.i, self.t, self.tf
                sol = self._solver(
                    _is(s, a),
                    *both_steps(s, i, t, tf, self.fixed, frozenset({loc})),
                    *self.pins,
                    apart(t, tf),
                )
                r = sol.check()
                if r == z3.unknown:
                    raise Unknown
                self._parts[a] = r == z3.sat
        return self._parts[a]


class Cone:
    """The abstract runs that may part SEED and SEED + fix, depth by depth.

    ``levels[j]`` holds every abstract state reachable in ``j`` steps (breadth-first from
    the abstractions of ``Init``, computed on demand); :attr:`bound` is the least depth
    at which one of them may part the drivers.  :meth:`at` gives, for a divergence at
    depth ``k``, the states of each depth ``j <= k`` that lie on an abstract run of
    ``k`` steps ending where the drivers may part: the *cone* of depth ``k``.  Every
    concrete run of the pinned search that parts the drivers at ``k`` has its abstract
    run inside that cone (the relation over-approximates the encoding), so constraining
    the concrete query to it (:meth:`constraint`) loses no divergence; it only spares
    the solver the runs that cannot get there.  A solver ``unknown`` raises
    :class:`Unknown`."""

    def __init__(self, fix: str, where: Iterable[Loc], timeout: float = 30.0) -> None:
        self.reach = AbstractReach(Variant(frozenset({fix})), timeout)
        self.where = frozenset(where)
        self.levels: list[set[Abstract]] = [self.reach.initial()]

    def level(self, j: int) -> set[Abstract]:
        """The abstract states reachable in ``j`` steps."""
        while len(self.levels) <= j:
            self.levels.append({b for a in self.levels[-1] for b in self.reach.successors(a)})
        return self.levels[j]

    def bound(self, depth: int) -> int:
        """The least ``k <= depth`` at which some reachable abstract state may part the
        drivers (``depth + 1`` if none)."""
        for k in range(depth + 1):
            if any(self.reach.may_part(a, self.where) for a in self.level(k)):
                return k
        return depth + 1

    def at(self, k: int) -> list[set[Abstract]]:
        """The cone of depth ``k``: per depth ``j <= k``, the states reachable in ``j``
        steps from which some abstract run reaches, at depth ``k``, a state that may
        part the drivers (all empty when none does)."""
        cone: list[set[Abstract]] = [set() for _ in range(k + 1)]
        cone[k] = {a for a in self.level(k) if self.reach.may_part(a, self.where)}
        for j in range(k - 1, -1, -1):
            cone[j] = {a for a in self.level(j) if self.reach.successors(a) & cone[j + 1]}
        return cone

    def locations(self, lo: int, hi: int) -> list[frozenset[Loc]]:
        """Per depth ``j <= hi``, the control locations of the cones of the depths
        ``lo..hi`` (:meth:`at`): where a run that parts the drivers at one of those depths
        can be after ``j`` steps, so the only locations its step ``j + 1`` may leave."""
        out: list[set[Loc]] = [set() for _ in range(hi + 1)]
        for k in range(lo, hi + 1):
            for j, level in enumerate(self.at(k)):
                out[j] |= {Loc(int(a[0])) for a in level}
        return [frozenset(x) for x in out]

    def constraint(self, states: list[State], k: int) -> Expr:
        """``states[0..k]`` follow an abstract run of the cone of depth ``k``."""
        return z3.And(
            [
                z3.Or([_is(states[j], a) for a in sorted(level, key=repr)])
                for j, level in enumerate(self.at(k))
            ]
        )


__all__ = ["FIELDS", "AbstractReach", "Cone", "Unknown", "apart", "both_steps"]
