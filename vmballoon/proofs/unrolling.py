"""The one unrolling of the encoding, and the one search for the least depth that answers.

Every bounded search of the proofs unrolls the transition relation of
:mod:`vmballoon.proofs.encoding` from ``Init`` and asks Z3 for a run that reaches a goal:
BMC (:func:`vmballoon.proofs.check.bmc_all`, :func:`vmballoon.proofs.check.bmc_window`,
:func:`vmballoon.proofs.check.deep_search`), the per-defect product and divergence
searches (:func:`vmballoon.proofs.defects.product_search`,
:func:`vmballoon.proofs.defects.divergence_search`) and the progress BMC
(:func:`vmballoon.proofs.progress.bmc_progress`).  They share three pieces, in the style
of pySMT's ``examples/model_checking.py`` and mypyvy's ``logic.py``:

* :class:`Unrolling`: copies of the encoding, one per variant under a name prefix
  (``s``; or ``a`` SEED, ``b`` SEED + fix, ``c`` FIXED minus fix), driven by the same
  inputs at every step; with pinned inputs (:mod:`vmballoon.proofs.pinned`), acceleration
  (:mod:`vmballoon.proofs.accel`), a given prefix trace, and a constraint of the
  environment on every step.  Step ``k`` reads the inputs ``i{k-1}_``; copy ``p``'s state
  after it is ``p{k}_`` (the names every search has always given Z3).
* :func:`query`: the query "a goal at some depth of ``lo..hi`` after the first ``hi``
  steps", as a function :func:`shortest` can ask.
* :func:`shortest`: galloping windows of depths (or one depth a query), the window that
  answers narrowed down to its least depth: a :class:`Shortest`.

Z3's answers depend on the order in which a process builds its terms, not only on the
query: every piece here builds its terms in the order the searches always did
(documented where it matters), so the same searches give the same models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import z3

from vmballoon.core.variants import Variant
from vmballoon.model.state import Loc
from vmballoon.proofs.accel import make_acc_inputs, transition_acc
from vmballoon.proofs.encoding import (
    FIELD_NAMES,
    INPUT_NAMES,
    Expr,
    State,
    initial,
    make_inputs,
    make_state,
    reachable_locs,
    transition,
)
from vmballoon.proofs.pinned import FREE, FREE_PRODUCT, RESET_TOO, pin
from vmballoon.proofs.solver import bv_solver
from vmballoon.proofs.trace import Trace
from vmballoon.proofs.zeval import equal_to, value_of


@dataclass(frozen=True)
class Pins:
    """Which inputs :func:`vmballoon.proofs.pinned.pin` leaves free, and the statuses it
    allows: a sound under-approximation of the environment."""

    free: frozenset[str]
    statuses: tuple[int, ...]

    def __call__(self, i: State) -> list[Expr]:
        """The constraints pinning the inputs ``i`` of one step."""
        return pin(i, self.free, self.statuses)


PIN_BMC = Pins(FREE, (0,))
"""The pinned environment of the accelerated BMC (:func:`vmballoon.proofs.check.deep_search`)."""
PIN_PRODUCT = Pins(FREE_PRODUCT, RESET_TOO)
"""The pinned environment of the per-defect searches (:mod:`vmballoon.proofs.defects`)."""


class Unrolling:
    """``depth`` steps of the encoding from ``Init``, one copy per entry of ``copies``.

    ``copies`` maps a name prefix to the variant that copy runs; every copy reads the
    same inputs at every step and they start from the same state (``Init`` of the first
    copy; the others equal to it field by field).  ``steps[0]`` is that start, ``steps[k]``
    the ``k``-th step of every copy: the conjunction of, in this order, the given trace's
    inputs (``given``: its first state fixes the start, its inputs the first steps), each
    copy's transition (:func:`vmballoon.proofs.encoding.transition`, or with ``accel``
    :func:`vmballoon.proofs.accel.transition_acc`), the pinned inputs (``pins``) and
    ``env(pre, inputs)`` (the first copy's pre-state); a step of one conjunct is that
    conjunct.  ``start(self)`` adds conjuncts to ``steps[0]``, after ``Init``.

    ``reach`` (default :func:`vmballoon.proofs.encoding.reachable_locs`) gives the
    locations a step may leave from.  ``pins_first`` builds the pinned inputs' terms
    before the transitions (:func:`vmballoon.proofs.defects.divergence_search`'s order; the
    constraint is the same).  ``spare`` makes one more step's inputs, for a step the
    caller writes itself.  ``after_step(self, k)`` runs once step ``k`` is built (``k = 0``
    for the start), for terms a caller builds step by step.
    """

    def __init__(
        self,
        copies: Mapping[str, Variant],
        depth: int,
        *,
        pins: Pins | None = None,
        pins_first: bool = False,
        accel: bool = False,
        given: Trace | None = None,
        reach: Sequence[frozenset[Loc]] | None = None,
        start: Callable[[Unrolling], list[Expr]] | None = None,
        env: Callable[[State, State], Expr] | None = None,
        spare: bool = False,
        after_step: Callable[[Unrolling, int], None] | None = None,
    ) -> None:
        self.copies = dict(copies)
        self.depth = depth
        self.pins = pins
        self.pins_first = pins_first
        self.accel = accel
        self.given = given
        self.reach = list(reach) if reach is not None else reachable_locs(depth)
        self.env = env
        self.states: dict[str, list[State]] = {p: [make_state(f"{p}0_")] for p in copies}
        self.inputs: list[State] = []
        self.accs: list[State] = []
        self.steps: list[Expr] = [self._start(start)]
        if after_step is not None:
            after_step(self, 0)
        for k in range(1, depth + 1):
            self.steps.append(self._step(k))
            if after_step is not None:
                after_step(self, k)
        if spare:
            self.inputs.append(make_inputs(f"i{depth}_"))

    @property
    def first(self) -> str:
        """The prefix of the first copy (the one whose run a search reports)."""
        return next(iter(self.copies))

    def state(self, k: int, copy: str | None = None) -> State:
        """Copy ``copy``'s state after ``k`` steps (the first copy's by default)."""
        return self.states[copy or self.first][k]

    def _start(self, start: Callable[[Unrolling], list[Expr]] | None) -> Expr:
        s0 = self.states[self.first][0]
        others = [self.states[p][0] for p in self.copies if p != self.first]
        same = [z3.And([s0[n] == x[n] for x in others for n in FIELD_NAMES])] if others else []
        fixed = [] if self.given is None else equal_to(s0, self.given.states[0])
        init = initial(s0)
        extra = [] if start is None else start(self)
        return z3.And(init, *same, *fixed, *extra) if same or fixed or extra else init

    def _step(self, k: int) -> Expr:
        i = make_inputs(f"i{k - 1}_")
        post = {p: make_state(f"{p}{k}_") for p in self.copies}
        a: State | None = None
        if self.accel:
            a = make_acc_inputs(f"a{k - 1}_")
            self.accs.append(a)
        known = self.given is not None and k <= len(self.given.inputs)
        given = equal_to(i, self.given.inputs[k - 1]) if self.given is not None and known else []
        early = self.pins(i) if self.pins is not None and self.pins_first else []
        moves = [
            self._move(self.states[p][-1], i, a, post[p], v, self.reach[k - 1])
            for p, v in self.copies.items()
        ]
        pins = early if self.pins_first else self.pins(i) if self.pins is not None else []
        env = [] if self.env is None else [self.env(self.states[self.first][-1], i)]
        self.inputs.append(i)
        for p, t in post.items():
            self.states[p].append(t)
        parts = [*given, *moves, *pins, *env]
        return z3.And(*parts) if len(parts) > 1 else parts[0]

    @staticmethod
    def _move(
        s: State, i: State, a: State | None, t: State, variant: Variant, locs: frozenset[Loc]
    ) -> Expr:
        if not locs:  # no location a run can be at: no step
            return z3.BoolVal(False)
        if a is None:
            return transition(s, i, t, variant, locs)
        return transition_acc(s, i, a, t, variant, locs)

    def trace(self, m: Any, k: int, copy: str | None = None, *, then: State | None = None) -> Trace:
        """The run of ``k`` steps of copy ``copy`` (the first by default) that model ``m``
        gives: its states ``0..k`` and the inputs of its steps, each step's acceleration
        inputs with them.  ``then``: a state after step ``k`` (a step the caller wrote,
        reading the inputs ``k``: :func:`vmballoon.proofs.defects.divergence_search`)."""
        run = self.states[copy or self.first][: k + 1] + ([then] if then is not None else [])
        states = [{n: value_of(m, st[n]) for n in FIELD_NAMES} for st in run]
        n_in = k + 1 if then is not None else k
        ins = [{n: value_of(m, inp[n]) for n in INPUT_NAMES} for inp in self.inputs[:n_in]]
        for inp, a in zip(ins, self.accs[:n_in], strict=False):
            inp.update({n: value_of(m, e) for n, e in a.items()})
        return Trace(states, ins)

    def release(self, *then: Callable[[], None]) -> None:
        """Let go of this unrolling's terms in the order the search that made it always
        freed them when it returned: the inputs, the steps, then each of ``then`` (the
        last query's solver, the states (:meth:`drop_states`), the model, the search's own
        terms).  Z3 reuses the ids of freed terms, so the next search in the same process
        gets the same models only if they are freed in the same order (the seed's progress
        BMC after :func:`vmballoon.proofs.check.bmc_all`; a blocked search after the first
        in :func:`vmballoon.proofs.defects.first_divergence` or a defect's product
        searches)."""
        self.inputs.clear()
        self.accs.clear()
        self.steps.clear()
        for drop in then:
            drop()

    def drop_states(self, *copies: str) -> None:
        """Let go of the states of ``copies`` (every copy by default), one copy after the
        other, each run from its last state back."""
        for p in copies or list(self.states):
            self.states[p].clear()

    def path_excluded(self, paths: Sequence[Sequence[int]], hi: int) -> list[Expr]:
        """No run of the first copy follows one of the location ``paths`` (those no longer
        than ``hi + 1`` states): the answers a search is not to give again."""
        locs = self.states[self.first]
        return [
            z3.Not(z3.And([locs[j]["loc"] == z3.BitVecVal(v, 8) for j, v in enumerate(path)]))
            for path in paths
            if len(path) - 1 <= hi
        ]


@dataclass(frozen=True)
class Answer:
    """One query's answer: ``result`` (sat, unsat, unknown), the ``model`` when sat and the
    depth: the least of the window the model reaches the goal at, else its last."""

    result: Any
    model: Any
    depth: int


class Ask:
    """A query for the goal at some depth of ``lo..hi`` (:func:`query`): what
    :func:`shortest` asks; ``close`` lets go of the solver it keeps (``keep``)."""

    def __init__(self, ask: Callable[[int, int], Answer], held: list[Any]) -> None:
        self._ask = ask
        self._held = held

    def __call__(self, lo: int, hi: int) -> Answer:
        return self._ask(lo, hi)

    def close(self) -> None:
        """Let go of the last query's solver, and with it of the terms only it holds."""
        self._held.clear()


def query(
    steps: Sequence[Expr],
    goals: Callable[[int, int], list[Expr]],
    *,
    timeout: float,
    least: Callable[[Any, int, int], int],
    side: Callable[[int], list[Expr]] | None = None,
    deadline: float | None = None,
    spent: Callable[[float], None] | None = None,
    skip: Callable[[int, int], bool] | None = None,
    keep: bool = False,
) -> Ask:
    """The query of a window ``lo..hi``: the first ``hi`` steps of ``steps``, the
    disjunction of ``goals(lo, hi)`` and ``side(hi)``, on the bit-blasting solver
    (:func:`vmballoon.proofs.solver.bv_solver`).  A window ``skip(lo, hi)`` says has no
    goal is unsat without a query.  ``least(model, lo, hi)`` is the depth a model answers
    at.  No query runs past ``deadline`` (``time.monotonic()``: unknown); ``spent`` is
    told each query's seconds.  With ``keep`` each query's solver lives until the next one
    is made and the steps are asserted before the goal is built (BMC's order), else the
    solver goes when the query returns (the defect searches' order).  Z3's answers depend
    on that order (the same query can get another model), so each search keeps its own."""
    held: list[Any] = []

    def ask(lo: int, hi: int) -> Answer:
        left = timeout if deadline is None else min(timeout, deadline - time.monotonic())
        if deadline is not None and left < 1:
            return Answer(z3.unknown, None, hi)
        if skip is not None and skip(lo, hi):
            return Answer(z3.unsat, None, hi)
        q0 = time.monotonic()
        sol = bv_solver(left)
        if keep:  # BMC's order: the steps asserted before the goal is built
            held[:] = [sol]
            sol.add(*steps[: hi + 1])
            sol.add(z3.Or(goals(lo, hi)), *(side(hi) if side is not None else []))
        else:
            sol.add(*steps[: hi + 1], z3.Or(goals(lo, hi)), *(side(hi) if side is not None else []))
        r = sol.check()
        if spent is not None:
            spent(time.monotonic() - q0)
        if r != z3.sat:
            return Answer(r, None, hi)
        m = sol.model()
        return Answer(r, m, least(m, lo, hi))

    return Ask(ask, held)


def first_true(goal: Callable[[int], Expr]) -> Callable[[Any, int, int], int]:
    """``least`` for :func:`query`: the first depth of the window whose ``goal`` the model
    makes true."""

    def least(m: Any, lo: int, hi: int) -> int:
        return next(
            k for k in range(lo, hi + 1) if z3.is_true(m.eval(goal(k), model_completion=True))
        )

    return least


@dataclass(frozen=True)
class Shortest:
    """What :func:`shortest` found: a ``model`` at the least ``depth`` that answers; or
    none up to ``depth`` (``model`` None); or, ``unknown``, the solver gave up on a window
    ending at ``depth``."""

    depth: int
    model: Any = None
    unknown: bool = False

    @property
    def found(self) -> bool:
        """A model answers at ``depth``."""
        return self.model is not None


def shortest(ask: Callable[[int, int], Answer], lo: int, hi: int, *, window: bool) -> Shortest:
    """The least depth of ``lo..hi`` at which ``ask`` answers.

    With ``window`` the depths are asked in windows of 1, 2, 4, ... (one query for a goal
    at any depth of the window: fewer deep queries), else one depth a query (iterative
    deepening).  The window that answers is narrowed down (its depths below the model's
    asked again), so the depth found is the least."""
    size = 1
    while lo <= hi:
        top = min(hi, lo + size - 1)
        a = ask(lo, top)
        if a.result == z3.unknown:
            return Shortest(top, unknown=True)
        if a.result == z3.unsat:
            lo, size = top + 1, size * 2 if window else 1
            continue
        m, k = a.model, a.depth
        while k > lo:
            b = ask(lo, k - 1)
            if b.result == z3.unknown:
                return Shortest(k - 1, unknown=True)
            if b.result == z3.unsat:
                break
            m, k = b.model, b.depth
        return Shortest(k, m)
    return Shortest(hi)


@dataclass(frozen=True)
class Found:
    """A search's answer: a ``trace`` (and the property ``prop`` it breaks, for a search
    that names one) found at ``depth``; without a trace, nothing up to ``depth``, or,
    ``unknown``, the solver gave up at ``depth``."""

    depth: int
    trace: Trace | None = None
    prop: str | None = None
    unknown: bool = False

    @property
    def found(self) -> bool:
        """A run was found (``trace`` is set)."""
        return self.trace is not None


__all__ = [
    "PIN_BMC",
    "PIN_PRODUCT",
    "Answer",
    "Ask",
    "Found",
    "Pins",
    "Shortest",
    "Unrolling",
    "first_true",
    "query",
    "shortest",
]
