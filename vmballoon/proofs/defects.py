"""One counterexample on the seed for every defect: what the bug does, and that its fix removes it.

For a fix flag ``F`` the search looks, on SEED itself, for the shortest scenario
that violates some property ``P`` while ``SEED + F`` (the seed with that one fix
applied) does not violate ``P`` on the same inputs.  It is bounded model checking
over a *product*: two copies of the encoding (:mod:`vmballoon.proofs.encoding`), SEED and
SEED + F, driven by the same inputs at every step from the same initial state.
At depth ``k`` it asks for ``¬P(seed_k) ∧ P(fix_0) ∧ ... ∧ P(fix_k)`` for some
``P``; iterative deepening makes the first answer the shortest such scenario.
Deep paths come for free: the copies may need a long interplay (a stale basic-mode
page that happens to be the batch page, so that the host writes batch entries at
all despite the seed's NULL batch PFN) and the search follows it.

The solver's trace becomes a scenario of the contract (:func:`vmballoon.proofs.trace.to_scenario`),
is minimised (:mod:`vmballoon.core.minimize`) against the concrete replay, and is reported
only when :func:`vmballoon.model.properties.check_trace` shows ``P`` violated on SEED and not
violated on SEED + F.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import z3

from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import FIXED, FIXES_BY_NAME, SEED, Variant
from vmballoon.model.properties import check_trace
from vmballoon.model.state import Loc
from vmballoon.proofs.abstract_reach import FIELDS, Cone, apart, both_steps
from vmballoon.proofs.encoding import (
    FIELD_NAMES,
    INPUT_NAMES,
    TRANSITIONS,
    Expr,
    State,
    loc_val,
    make_inputs,
    make_state,
    transition,
)
from vmballoon.proofs.props import PROPERTIES
from vmballoon.proofs.solver import Unknown, bv_solver
from vmballoon.proofs.status import Status
from vmballoon.proofs.trace import Trace, to_scenario
from vmballoon.proofs.unrolling import (
    PIN_PRODUCT,
    Ask,
    Found,
    Shortest,
    Unrolling,
    first_true,
    query,
)
from vmballoon.proofs.unrolling import shortest as first_depth
from vmballoon.proofs.zeval import value_of

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from vmballoon.proofs.check import Outcome

DEFECT_DEPTH = 28
"""Depth of the per-defect search (the longest interplay, ``warn_status_frees``, needs 25)."""


def product_search(
    fix: str,
    *,
    depth: int,
    timeout: float,
    start: int,
    props: list[str] | None = None,
    window: bool = False,
    pinned: bool = False,
    blocked: list[list[int]] | None = None,
    attribution: bool = True,
    prefix: Trace | None = None,
    deadline: float | None = None,
) -> Found:
    """Inputs on which SEED violates a property (of ``props``) that SEED + ``fix`` keeps
    and that FIXED minus ``fix`` violates too (the three conditions of
    :func:`confirm_defect`, so the search looks for what the replay will accept).

    Three copies of the encoding driven by the same inputs at every step
    (:class:`vmballoon.proofs.unrolling.Unrolling`: ``a`` SEED, ``b`` SEED + ``fix``, ``c``
    FIXED minus ``fix``).  Iterative deepening from ``start`` (a lower bound the caller
    states, e.g. SEED's shortest violation of any of ``props``; 0 claims none) finds the
    shortest.  With ``window`` the depths are asked in windows of 1, 2, 4, ...
    (:func:`vmballoon.proofs.unrolling.shortest`: one query for a violation at any depth
    of the window, fewer deep queries for a deep interplay); the window that answers is
    narrowed down, so the depth found is still the shortest.  With ``pinned`` the inputs
    outside :data:`vmballoon.proofs.pinned.FREE_PRODUCT` are at their defaults (an
    under-approximation: what it finds is real, nothing found proves nothing).
    ``blocked`` lists SEED location paths not to answer again (their
    scenarios did not replay as the search said).  ``prefix`` (a trace from
    :func:`divergence_search`) fixes the initial state and the first inputs: the search
    then looks only for a way to go on from there.  Without ``attribution`` the third
    copy (FIXED minus ``fix``) is left out of the query (the replay still asks it,
    :func:`confirm_defect`).  No query runs past ``deadline`` (``time.monotonic()``): the
    search is then unknown.  Returns the property and SEED's trace when found.
    """
    names = props or list(PROPERTIES)
    copies = {"a": SEED, "b": Variant(frozenset({fix}))}
    if attribution:
        copies["c"] = FIXED.without(fix)
    goal = _ProductGoal(names, attribution)
    u = Unrolling(
        copies,
        depth,
        given=prefix,
        pins=PIN_PRODUCT if pinned else None,
        after_step=goal.after_step,
    )
    ask = _depth_query(u, lambda k: goal.at(u, k), blocked, timeout, deadline)
    r = first_depth(ask, start, depth, window=window)
    del ask  # the query goes where it always went: before the answer is read
    found = goal.found(u, r) if r.found else Found(r.depth, unknown=r.unknown)
    model = [r.model]
    del r
    # the terms go as they always went (Unrolling.release): the last states of b and c
    # after the properties over them
    tb, tc = u.states["b"][-1], u.states.get("c", [None])[-1]
    u.release(lambda: u.drop_states(*copies), goal.fails_c.clear, goal.holds_b.clear, model.clear)
    del tb, tc
    return found


class _ProductGoal:
    """The goal of :func:`product_search` at depth ``k``: SEED (copy ``a``) breaks one of
    ``names`` at ``k`` while SEED + fix (``b``) keeps it at every depth up to ``k`` and,
    with ``attribution``, FIXED minus fix (``c``) breaks it at some depth up to ``k``.
    The properties over ``b`` and ``c`` are made step by step (:meth:`after_step`, the
    unrolling's hook), in the order Z3 has always seen them."""

    def __init__(self, names: list[str], attribution: bool) -> None:
        self.names = names
        self.attribution = attribution
        self.holds_b: list[dict[str, Expr]] = []
        self.fails_c: list[dict[str, Expr]] = []

    def after_step(self, u: Unrolling, k: int) -> None:
        """Step ``k`` of ``u`` is built: the properties over ``b`` and ``c`` after it."""
        self.holds_b.append({n: PROPERTIES[n](u.state(k, "b")) for n in self.names})
        if self.attribution:
            self.fails_c.append({n: z3.Not(PROPERTIES[n](u.state(k, "c"))) for n in self.names})

    def at(self, u: Unrolling, k: int) -> Expr:
        """The goal at depth ``k`` of ``u``."""
        return z3.Or(
            [
                z3.And(
                    z3.Not(PROPERTIES[n](u.state(k))),
                    *(h[n] for h in self.holds_b[: k + 1]),
                    *([z3.Or([f[n] for f in self.fails_c[: k + 1]])] if self.attribution else []),
                )
                for n in self.names
            ]
        )

    def found(self, u: Unrolling, r: Shortest) -> Found:
        """The answer of :func:`product_search` at the depth ``r`` found: SEED's trace and
        the first of ``names`` SEED breaks there while SEED + fix keeps it all along."""
        m, k = r.model, r.depth
        prop = next(
            n
            for n in self.names
            if z3.is_false(m.eval(PROPERTIES[n](u.state(k)), model_completion=True))
            and all(z3.is_true(m.eval(h[n], model_completion=True)) for h in self.holds_b[: k + 1])
        )
        return Found(k, u.trace(m, k), prop)


@cache
def fix_locations(fix: str) -> frozenset[Loc]:
    """The locations whose step ``fix`` can change: from some state at the location and
    some inputs, SEED and SEED + ``fix`` take different steps (one query of one step per
    location; a location where the solver cannot tell counts as changed).  Everywhere
    else the two drivers step alike, so they can part only here."""
    fixed = Variant(frozenset({fix}))
    out = set()
    for loc in TRANSITIONS:
        s, i = make_state("s_"), make_inputs("i_")
        ts, tf = make_state("ts_"), make_state("tf_")
        sol = bv_solver(30.0)
        sol.add(
            s["loc"] == loc_val(loc),
            *both_steps(s, i, ts, tf, fixed, frozenset({loc})),
            apart(ts, tf),
        )
        if sol.check() != z3.unsat:
            out.add(loc)
    return frozenset(out)


def divergence_search(
    fix: str,
    *,
    depth: int,
    timeout: float,
    start: int = 0,
    blocked: list[list[int]] | None = None,
    cone: Cone | None = None,
    shows: list[str] | None = None,
    after: int = 0,
) -> Found:
    """The shortest run of SEED (pinned inputs, :data:`vmballoon.proofs.unrolling.PIN_PRODUCT`)
    after which SEED and SEED + ``fix`` part: the first step whose successor differs
    between the two from the same state and the same inputs.

    Until that step the two drivers are the same (same inputs, same transitions), so a
    single copy of the encoding describes both: a query of one copy and one doubled
    step, where :func:`product_search` carries every copy all the way.  That is what
    makes a deep interplay affordable (``warn_status_frees``: 24 steps of SEED, two
    ticks with a reset between them, before its fix changes anything).  One depth a
    query from ``start`` (:func:`vmballoon.proofs.unrolling.shortest`).  The doubled step
    is written only for the locations the fix changes (:func:`fix_locations`): at a
    depth where none of them is reachable the goal is false.  With ``cone`` the run of
    depth ``k`` is held to the abstract runs that may part the drivers at ``k``
    (:meth:`vmballoon.proofs.abstract_reach.Cone.constraint`): an over-approximation of
    every run that does, so no divergence is lost, and the deep queries get several
    times cheaper.  With ``shows`` the parting step must also break one of those
    properties on SEED's side and keep it on the fixed side (a violation in the parting
    transition itself); with ``after`` as well, the two drivers take ``after`` more steps
    from their parted states (the same pinned inputs) and the violation is in the last
    of them (:func:`_continuation`).  The trace found holds SEED's states ``0..k+1`` and
    the inputs ``0..k`` (those of the step that parts the drivers included), and the
    ``after`` steps beyond.
    """
    fixed = Variant(frozenset({fix}))
    reach = None if cone is None else cone.locations(start, depth)
    u = Unrolling({"a": SEED}, depth, pins=PIN_PRODUCT, pins_first=True, spare=True, reach=reach)
    changed = fix_locations(fix)
    parted: list[tuple[Expr, State]] = []
    for k in range(depth + 1):  # the doubled step after k steps (inline: Z3 sees the terms
        ts, tf = make_state(f"s{k}_"), make_state(f"f{k}_")  # live as they always did)
        where = u.reach[k] & changed
        if not where:  # no location the fix changes is reachable: no goal at k
            parted.append((z3.BoolVal(False), ts))
            continue
        step = _parting_step(u, k, ts, tf, fixed, where, None if after else shows)
        parted.append((step, ts))
    then: dict[int, Continuation] = {}
    if after and shows:
        for k in range(start, depth + 1):
            step, ts = parted[k]
            then[k] = _continuation(ts, make_state(f"f{k}_"), fixed, after, shows, k)
            parted[k] = (z3.And(step, then[k].constraint), ts)
    goals: dict[int, Expr] = {}
    goal = _divergence_goal(u, parted, cone, goals)
    r = first_depth(_depth_query(u, goal, blocked, timeout), start, depth, window=False)
    found = (
        Found(
            r.depth,
            _with_continuation(
                u.trace(r.model, r.depth, then=parted[r.depth][1]), r.model, then.get(r.depth)
            ),
        )
        if r.found
        else Found(r.depth, unknown=r.unknown)
    )  # one depth per query above: cheaper
    model = [r.model]
    del r
    u.release(lambda: u.drop_states("a"), goals.clear, model.clear, parted.clear)
    del tf, ts
    return found


@dataclass(frozen=True)
class Continuation:
    """What :func:`_continuation` builds: the constraint, each copy's states after each
    of its steps (``seed``, ``fixed``) and the inputs of those steps."""

    constraint: Expr
    seed: list[State]
    fixed: list[State]
    inputs: list[State]


def _continuation(
    ts: State, tf: State, fixed: Variant, after: int, shows: list[str], k: int
) -> Continuation:
    """``after`` steps of SEED from ``ts`` and of ``fixed`` from ``tf`` on the same pinned
    inputs, the last of which breaks one of ``shows`` on SEED's side and keeps it on the
    fixed side."""
    seed: list[State] = []
    other: list[State] = []
    ins: list[State] = []
    cons: list[Expr] = []
    s_at, f_at = ts, tf
    for m in range(after):
        i = make_inputs(f"c{k}_{m}_i_")
        a, b = make_state(f"c{k}_{m}_s_"), make_state(f"c{k}_{m}_f_")
        cons += [transition(s_at, i, a, SEED), transition(f_at, i, b, fixed), *PIN_PRODUCT(i)]
        seed.append(a)
        other.append(b)
        ins.append(i)
        s_at, f_at = a, b
    cons.append(z3.Or([z3.And(z3.Not(PROPERTIES[n](s_at)), PROPERTIES[n](f_at)) for n in shows]))
    return Continuation(z3.And(cons), seed, other, ins)


def _with_continuation(trace: Trace, m: Any, more: Continuation | None) -> Trace:
    """``trace`` followed by SEED's steps of a :func:`_continuation` that model ``m`` gives."""
    if more is None:
        return trace
    return Trace(
        trace.states + [{n: value_of(m, st[n]) for n in FIELD_NAMES} for st in more.seed],
        trace.inputs + [{n: value_of(m, i[n]) for n in INPUT_NAMES} for i in more.inputs],
    )


def _parting_step(
    u: Unrolling,
    k: int,
    ts: State,
    tf: State,
    fixed: Variant,
    where: frozenset[Loc],
    shows: list[str] | None,
) -> Expr:
    """The doubled step of :func:`divergence_search` after ``k`` steps of ``u``: from the
    same state and the same (pinned) inputs SEED steps to ``ts`` and ``fixed`` to ``tf``
    (written for the locations ``where`` only) and the two successors differ; with
    ``shows``, SEED's successor also breaks one of them and the fixed one keeps it."""
    breaks = (
        [z3.Or([z3.And(z3.Not(PROPERTIES[n](ts)), PROPERTIES[n](tf)) for n in shows])]
        if shows
        else []
    )  # made first, as it always was; its terms live on in the step
    return z3.And(
        *both_steps(u.state(k), u.inputs[k], ts, tf, fixed, where),
        *PIN_PRODUCT(u.inputs[k]),
        apart(ts, tf),
        *breaks,
    )


def _divergence_goal(
    u: Unrolling, parted: list[tuple[Expr, State]], cone: Cone | None, goals: dict[int, Expr]
) -> Callable[[int], Expr]:
    """The goal of :func:`divergence_search` at depth ``k``: the doubled step of
    ``parted[k]``, held with ``cone`` to the abstract runs of ``u``'s copy ``a`` that may
    part the drivers at ``k`` (as it is when there is no abstract cone).  Each is made
    once and kept in ``goals``, which the search lets go of with its other terms."""

    def goal(k: int) -> Expr:
        if k not in goals:
            goals[k] = parted[k][0]
            if cone is not None:
                with suppress(Unknown):  # no abstract cone: the query as it is
                    goals[k] = z3.And(parted[k][0], cone.constraint(u.states["a"], k))
        return goals[k]

    return goal


def _depth_query(
    u: Unrolling,
    goal: Callable[[int], Expr],
    blocked: list[list[int]] | None,
    timeout: float,
    deadline: float | None = None,
) -> Ask:
    """The query :func:`vmballoon.proofs.unrolling.shortest` asks for the searches here:
    ``goal`` at some depth of ``lo..hi`` after the first ``hi`` steps of ``u``, no run
    following a ``blocked`` location path of SEED, no query past ``deadline``."""
    return query(
        u.steps,
        lambda lo, hi: [goal(k) for k in range(lo, hi + 1)],
        timeout=timeout,
        least=first_true(goal),
        deadline=deadline,
        side=lambda hi: u.path_excluded(blocked or [], hi),
    )


def violates(sc: Scenario, variant: Variant, prop: str) -> list[dict[str, Any]]:
    """The violations of ``prop`` replaying ``sc`` on ``variant`` (the model)."""
    return [v.to_json() for v in check_trace(sc, variant, frozenset({prop}))]


def confirm_defect(fix: str, prop: str, sc: Scenario) -> tuple[bool, dict[str, Any]]:
    """Whether ``sc`` shows the defect of ``fix`` through ``prop``; the evidence.

    Shown: SEED violates ``prop``, SEED + ``fix`` does not, and FIXED minus ``fix``
    violates it too (so the violation is this defect's, not another one's that the
    fix happens to mask).
    """
    seed_v = violates(sc, SEED, prop)
    fix_v = violates(sc, Variant(frozenset({fix})), prop)
    minus_v = violates(sc, FIXED.without(fix), prop)
    ok = bool(seed_v) and not fix_v and bool(minus_v)
    return ok, {"seed": seed_v, "seed_plus_fix": fix_v, "fixed_minus_fix": minus_v}


def confirmed(fix: str, props: list[str], sc: Scenario) -> list[str]:
    """The properties of ``props`` (in their order) through which ``sc`` shows the
    defect of ``fix`` (:func:`confirm_defect` of each), with one replay per variant."""
    names = frozenset(props)
    on_seed = {v.prop for v in check_trace(sc, SEED, names)}
    if not on_seed:
        return []
    on_fix = {v.prop for v in check_trace(sc, Variant(frozenset({fix})), names & on_seed)}
    rest = names & on_seed - on_fix
    on_minus = {v.prop for v in check_trace(sc, FIXED.without(fix), rest)} if rest else set()
    return [p for p in props if p in on_seed and p not in on_fix and p in on_minus]


SHORTEST = {
    "property": "SEED violates the property in no fewer transitions on any input",
    "every input": "no scenario shows the defect in fewer transitions, on any input (SEED "
    "violates none of the properties looked at in fewer: its own BMC)",
    "pinned inputs": "no scenario of the pinned inputs (vmballoon/proofs/pinned.py) shows the "
    "defect in fewer transitions (before SEED and SEED + fix part they are one)",
    "pinned shared inputs": "no scenario of the pinned inputs shows the defect in fewer "
    "transitions when SEED and SEED + fix read the same inputs at "
    "every step (a product of the two: once they issue different "
    "commands a replay feeds them different answers, which it does "
    "not cover)",
    "shared inputs": "no scenario shows the defect in fewer transitions when SEED and SEED + "
    "fix read the same inputs at every step (a product: see above)",
    "not established": "a shorter scenario may show the defect",
}
"""What a defect row's ``shortest`` claims of its depth (None: no scenario)."""


@dataclass
class DefectRow:
    """The per-defect result: a row of ``verify --json``'s ``defects``.  ``shortest`` is
    what the search established of its depth (:data:`SHORTEST`); ``c`` what the compiled
    C showed replaying the scenario (:mod:`vmballoon.apps.cexreplay`), in the JSON only
    when it was replayed."""

    fix: str
    lines: str
    prop: str | None
    depth: int | None
    status: Status
    seconds: float
    source: str
    scenario: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    shortest: str | None = None
    c: dict[str, Any] | None = field(default=None, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "c"}
        if self.c is not None:
            doc["c"] = self.c
        return doc


def defect_row(
    fix: str,
    prop: str | None,
    depth: int | None,
    sc: Scenario | None,
    status: Status,
    seconds: float,
    source: str,
    out_dir: Path | None,
    detail: str = "",
    shortest: str | None = None,
) -> DefectRow:
    """The per-defect result (and its scenario file, with ``meta``, in ``out_dir``);
    ``shortest`` is what the search established of its depth (:data:`SHORTEST`)."""
    assert shortest is None or shortest in SHORTEST, shortest
    row = DefectRow(
        fix,
        lines_of(fix),
        prop,
        depth,
        status,
        seconds,
        source,
        detail=detail,
        shortest=shortest if status == Status.VIOLATED else None,
    )
    if sc is not None and prop is not None:
        ok, evidence = confirm_defect(fix, prop, sc)
        row.evidence = evidence
        if not ok:  # the replay does not show it: no claim about its depth either
            row.status, row.shortest = Status.UNCONFIRMED, None
        elif evidence["seed"]:  # the depth of the scenario kept (minimising may move it)
            depth = row.depth = min(int(v["step"]) for v in evidence["seed"])
        if out_dir is not None:
            from vmballoon.proofs.check import write_scenario

            meta = {"property": prop, "variant": "seed", "depth": depth, "defect": fix}
            path = write_scenario(out_dir / f"defect.{fix}.scenario.json", sc, meta)
            row.scenario = str(path)
    return row


class Notes(list[str]):
    """What a defect's search says of itself, in order, and whether one of its searches
    was left undecided (a solver unknown, a spent budget): then "no scenario" is not
    established and the row is ``unknown``, never ``none``."""

    undecided: bool = False

    def unsure(self, text: str) -> None:
        """Say ``text``, a search that did not decide."""
        self.append(text)
        self.undecided = True


def _note(notes: list[str], text: str, *, undecided: bool) -> None:
    """Append ``text`` to ``notes``; flag them undecided (:class:`Notes`) when so."""
    if undecided and isinstance(notes, Notes):
        notes.unsure(text)
    else:
        notes.append(text)


def _minimal(fix: str, prop: str, raw: Scenario) -> Scenario:
    """``raw`` minimised (:mod:`vmballoon.core.minimize`) while it shows the defect through
    ``prop`` no later than ``raw`` does: minimising must not trade inputs for
    transitions, so the depth found stays the depth reported."""
    from vmballoon.core.minimize import minimize

    last = _first_step(prop, raw)

    def keep(sc: Scenario) -> bool:
        ok, evidence = confirm_defect(fix, prop, sc)  # its SEED replay gives the step too
        return ok and min(int(v["step"]) for v in evidence["seed"]) <= last

    return minimize(raw, keep)


ATTEMPTS = 3
"""Answers per search whose scenario the replay does not confirm before it gives up."""

SAME_DEPTH_ATTEMPTS = 3
"""Runs parting SEED and SEED + fix at the least depth that :func:`first_divergence` asks
for (three) before it asks for one that shows the defect (:func:`_shown_after`)."""

AFTER_PARTING = 3
"""Transitions after the parting one within which :func:`_shown_after` asks for a
violation (``lock_64bit_refused`` shows three after its parting transition)."""

PRODUCT_BUDGET = 150.0
"""Seconds the three-copy product searches of one defect may take in all before the
search goes on from the divergences (:func:`defect_job`).  The two defects that need
the product (``lock_64bit_refused``, ``reset_needs_ops``) are found in 5-17 s on this
machine, a tenth of the budget, so a loaded CI machine does not cut them short; a
product that has not answered by then is too deep for three copies (``warn_status_frees``
gave no answer up to depth 27 in 280 s before its first divergence was searched first,
which now finds it without the product)."""

GAP_DEPTH = 16
"""Deepest scenario :func:`_in_the_gap` asks the product for.  Between a divergence at
transition 11 and its violation at 14 (lock_64bit_refused) the two-copy product answers
in 1.6 s; at depth 25 (warn_status_frees, parting at 25, violation at 26) it gave no
answer in 30 s, and that gap is decided by one-step queries instead."""

SUFFIX = 6
"""Steps after SEED and SEED + fix part within which the violation is looked for (six:
lock_64bit_refused shows three after)."""


def product_shortest(pinned: bool, blocked: bool, k: int | None, start: int, exact: bool) -> str:
    """What a product search's answer at depth ``k`` establishes (:data:`SHORTEST`).

    The product drives its copies with one input per step: "shared inputs".  Only when
    ``k`` is the lower bound ``start`` that SEED's own BMC gives (``exact``: single copy,
    every input, iterative deepening) does it hold over every input: no scenario of
    fewer transitions breaks any of the properties on SEED at all.  An answer after a
    blocked one is not the shortest."""
    if blocked:
        return "not established"
    if exact and k == start:
        return "every input"
    return "pinned shared inputs" if pinned else "shared inputs"


def first_divergence(
    fix: str, props: list[str], depth: int, timeout: float, notes: list[str]
) -> tuple[int, Any, list[str]] | None:
    """The shortest run of SEED (pinned inputs) after which SEED and SEED + ``fix`` part
    (:func:`divergence_search`), as ``(k, trace, shown)``: the drivers part at
    transition ``k + 1``, and ``shown`` lists the properties of ``props`` (in their
    order) whose violation that transition shows (:func:`confirm_defect`), empty when
    none.  None when they never part up to ``depth`` or the solver cannot tell (said in
    ``notes``).

    Until they part the two drivers' states are equal, so are their properties: no
    scenario of the pinned inputs shorter than ``k + 1`` transitions shows the defect.
    A violation in transition ``k + 1`` is therefore the shortest, and otherwise
    ``k + 1`` is a lower bound for the pinned product search.

    The depths below the abstract bound (:meth:`vmballoon.proofs.abstract_reach.Cone.bound`) are
    not asked: no run parts the drivers there; each deeper query is held to the abstract
    cone of its depth (:meth:`~vmballoon.proofs.abstract_reach.Cone.constraint`) and
    unrolled only over the cones' locations
    (:meth:`~vmballoon.proofs.abstract_reach.Cone.locations`).  A run that parts
    them at ``k`` but whose scenario shows nothing (it may have come through another
    defect that already broke the property on both drivers) is blocked and the same depth
    asked again, up to :data:`SAME_DEPTH_ATTEMPTS` times, so that the answer does not
    rest on the model the solver happened to give first; when none of them shows it, a
    run that does is asked of the solver (:func:`_shown_after`).  A run whose scenario shows the
    defect only some transitions after the parting one is kept unless another run shows
    it in the parting transition itself (:func:`_in_parting_step`)."""
    cone, bound = _abstract_cone(fix, depth - 1, timeout)
    if bound > depth - 1:
        notes.append(_no_divergence(Found(depth), depth) + " (abstract reachability)")
        return None
    if bound > 0:
        notes.append(
            f"no run of SEED parts them before transition {bound + 1}: abstract "
            f"reachability over {', '.join(FIELDS)} (vmballoon/proofs/abstract_reach.py)"
        )
    found = divergence_search(fix, depth=depth - 1, timeout=timeout, start=bound, cone=cone)
    if found.trace is None:
        _note(notes, _no_divergence(found, depth), undecided=found.unknown)
        return None
    k, trace = found.depth, found.trace
    first = trace  # the one reported when no run of depth k shows anything
    blocked: list[list[int]] = []
    for _ in range(SAME_DEPTH_ATTEMPTS):
        raw = to_scenario(trace, SEED)
        shown = confirmed(fix, props, raw)
        if shown:
            if _first_step(shown[0], raw) > k + 1:
                return _in_parting_step(fix, shown[0], props, k, timeout, cone, notes) or (
                    k,
                    trace,
                    shown,
                )
            return k, trace, shown
        blocked.append([int(st["loc"]) for st in trace.states[: k + 1]])
        again = divergence_search(
            fix, depth=k, timeout=timeout, start=k, blocked=blocked, cone=cone
        )
        if again.trace is None or again.depth != k:
            break
        trace = again.trace
    return _shown_after(fix, props, k, timeout, cone, notes) or (k, first, [])


def _abstract_cone(fix: str, depth: int, timeout: float) -> tuple[Cone | None, int]:
    """The abstract cone of the runs that part SEED and SEED + ``fix``
    (:class:`vmballoon.proofs.abstract_reach.Cone`) and its bound up to ``depth``: no run
    parts them at a lesser depth (``depth + 1``: none up to ``depth``).  ``(None, 0)``
    when the abstraction gives up: every depth is asked, each query as it is."""
    cone: Cone | None
    try:
        cone = Cone(fix, fix_locations(fix), timeout)
        bound = cone.bound(depth)
    except Unknown:
        cone, bound = None, 0
    return cone, bound


def _first_step(prop: str, sc: Scenario) -> int:
    """The transition at which SEED first violates ``prop`` on ``sc``."""
    return min(int(v["step"]) for v in violates(sc, SEED, prop))


def _in_parting_step(
    fix: str,
    prop: str,
    props: list[str],
    k: int,
    timeout: float,
    cone: Cone | None,
    notes: list[str],
) -> tuple[int, Any, list[str]] | None:
    """A run parting SEED and SEED + ``fix`` at depth ``k`` whose parting transition
    itself shows the defect through ``prop`` (the shortest there can be), when the first
    run found shows it only some transitions later: ``(k, trace, shown)`` as
    :func:`first_divergence` gives it, or None (said in ``notes``) when there is none."""
    if not _may_show_in_one_step(fix, prop, timeout):
        notes.append(_shows_only_after(fix, [prop]))
        return None
    found = divergence_search(fix, depth=k, timeout=timeout, start=k, cone=cone, shows=[prop])
    if found.trace is not None and found.depth == k:
        raw = to_scenario(found.trace, SEED)
        if confirm_defect(fix, prop, raw)[0] and _first_step(prop, raw) == k + 1:
            return k, found.trace, confirmed(fix, props, raw)
    _note(
        notes,
        f"no run of the pinned inputs shows {prop} in the transition that parts "
        f"them ({'solver unknown' if found.unknown else 'none'} at depth {k})",
        undecided=found.unknown,
    )
    return None


def _shown_after(
    fix: str,
    props: list[str],
    k: int,
    timeout: float,
    cone: Cone | None,
    notes: list[str],
) -> tuple[int, Any, list[str]] | None:
    """A run parting SEED and SEED + ``fix`` at depth ``k`` whose scenario shows the
    defect, asked of the solver rather than hoped of a witness, when the runs
    :func:`first_divergence` was given show nothing (whether a run of a location path
    shows it depends on its data, which the solver picks): a parting transition that
    itself breaks one of ``props`` on SEED's side alone (unless the one-step query
    excludes it), else 1, 2, ... :data:`AFTER_PARTING` more steps of both drivers on
    the same pinned inputs, the last of which does; the fewest steps that answer, as
    ``(k, trace, shown)`` (:func:`first_divergence`), or None (said in ``notes``)."""
    state_props = [p for p in props if p in PROPERTIES]  # progress is no state's
    for after in range(AFTER_PARTING + 1):
        if after == 0 and not any(_may_show_in_one_step(fix, p, timeout) for p in state_props):
            notes.append(_shows_only_after(fix, state_props))
            continue
        found = divergence_search(
            fix, depth=k, timeout=timeout, start=k, cone=cone, shows=state_props, after=after
        )
        if found.unknown:
            _note(notes, _no_divergence(found, k) + f" ({after} steps after)", undecided=True)
            return None
        if found.trace is None or found.depth != k:
            continue
        shown = confirmed(fix, props, to_scenario(found.trace, SEED))
        if shown:
            return k, found.trace, shown
    notes.append(
        f"no run parting SEED and SEED + {fix} at transition {k + 1} breaks "
        f"{', '.join(props)} on SEED's side alone within {AFTER_PARTING} transitions after it"
    )
    return None


def _shows_only_after(fix: str, props: list[str]) -> str:
    """The note that the one-step query (:func:`_may_show_in_one_step`) excludes
    every ``props`` from the transition that parts SEED and SEED + ``fix``."""
    return (
        f"no step of SEED parting it from SEED + {fix} breaks {', '.join(props)} "
        f"(one-step query): it shows only after they part"
    )


def _may_show_in_one_step(fix: str, prop: str, timeout: float) -> bool:
    """Whether from some state (reachable or not) at a location ``fix`` changes, with the
    pinned inputs, the step of SEED breaks ``prop`` while the step of SEED + ``fix``
    keeps it: one step of the encoding, a cheap over-approximation of the deep query of
    :func:`_in_parting_step` (False: that query is unsatisfiable; unknown counts as
    True)."""
    from vmballoon.proofs.pinned import FREE_PRODUCT, RESET_TOO, pin

    s, i = make_state("one_s_"), make_inputs("one_i_")
    ts, tf = make_state("one_ts_"), make_state("one_tf_")
    sol = bv_solver(timeout)
    sol.add(
        *both_steps(s, i, ts, tf, Variant(frozenset({fix})), fix_locations(fix)),
        *pin(i, FREE_PRODUCT, RESET_TOO),
        z3.Not(PROPERTIES[prop](ts)),
        PROPERTIES[prop](tf),
    )
    return bool(sol.check() != z3.unsat)


def _in_the_gap(
    fix: str, props: list[str], lo: int, hi: int, timeout: float
) -> tuple[tuple[str, Scenario, int] | None, bool, str]:
    """Whether a scenario of ``lo..hi`` transitions (pinned inputs) shows the defect, when
    the drivers part at transition ``lo`` and the first scenario found shows it at
    ``hi + 1``: the product of SEED and SEED + ``fix`` (two copies: without FIXED minus
    ``fix``, a weaker condition, so "none" holds of the defect too), iterative deepening
    from ``lo``, asked up to depth :data:`GAP_DEPTH`.  A gap that is the parting
    transition alone (``lo == hi``) needs no product when no step from a location the
    fix changes can break a property on SEED's side only (:func:`_may_show_in_one_step`):
    the scenarios of ``lo`` transitions are the runs of the drivers, one until that step.
    Returns ``(shorter, established, words)``: ``shorter`` is ``(property, scenario,
    depth)`` when one is found and the replay confirms it; ``established`` whether the
    depth reported (``shorter``'s, else ``hi + 1``) is the shortest over the pinned
    inputs; ``words`` say why."""
    if lo == hi and not any(_may_show_in_one_step(fix, p, timeout) for p in props):
        return (
            None,
            True,
            (
                f"the shortest over the pinned inputs (before transition {lo} "
                f"the drivers are one, and no step that parts them breaks "
                f"{', '.join(props)} on SEED's side alone: one-step queries)"
            ),
        )
    if hi > GAP_DEPTH:
        why = f"the product over that gap is asked up to depth {GAP_DEPTH} only"
        return None, False, _gap_undecided(lo, hi, why)
    found = product_search(
        fix, depth=hi, timeout=timeout, props=props, start=lo, pinned=True, attribution=False
    )
    prop, trace = found.prop, found.trace
    if trace is None and not found.unknown:
        return (
            None,
            True,
            (
                f"the shortest over the pinned inputs (before transition {lo} "
                f"the drivers are one, and the product of SEED and SEED + {fix} "
                f"finds no scenario of {lo} to {hi} transitions)"
            ),
        )
    if trace is not None and prop is not None:
        raw = to_scenario(trace, SEED)
        if confirm_defect(fix, prop, raw)[0]:
            sc = _minimal(fix, prop, raw)
            return (
                (prop, sc, _first_step(prop, sc)),
                True,
                (
                    f"a shorter one from the product of SEED and SEED + {fix} (iterative "
                    f"deepening from transition {lo}): the shortest over the pinned inputs"
                ),
            )
    what = "solver unknown" if found.unknown else "an answer the replay does not confirm"
    return None, False, _gap_undecided(lo, hi, f"the product over that gap gave {what}")


def _gap_undecided(lo: int, hi: int, why: str) -> str:
    """What :func:`_in_the_gap` says of a gap ``lo..hi`` it could not decide, and ``why``."""
    return (
        f"the shortest scenario over the pinned inputs has {lo} to {hi + 1} "
        f"transitions (not established: {why})"
    )


def _no_divergence(found: Found, depth: int) -> str:
    """The note for a divergence search that found nothing up to ``depth`` (or gave up)."""
    return "divergence of SEED and SEED + fix (pinned inputs): " + (
        f"solver unknown (timeout) at depth {found.depth}"
        if found.unknown
        else f"none up to depth {depth}"
    )


def _parted_at(fix: str, k: int) -> str:
    """How a divergence found at step ``k`` is told in a defect's detail."""
    return (
        f"SEED and SEED + {fix} part at transition {k + 1} (the shortest such run of "
        f"SEED, pinned inputs: vmballoon/proofs/pinned.py)"
    )


def _via_divergence(
    fix: str,
    props: list[str],
    depth: int,
    start: int,
    timeout: float,
    first: tuple[int, Any],
    notes: list[str],
) -> tuple[str, int, Scenario, str] | None:
    """A scenario showing the defect found from where SEED and SEED + ``fix`` part.

    :func:`divergence_search` finds the shortest run of SEED (pinned inputs) after which
    the two drivers take different steps; the scenario of that run is the defect's
    when the replay confirms it (:func:`confirm_defect`) for one of ``props``;
    otherwise a product search goes on from there for up to :data:`SUFFIX` steps.  A
    divergence that shows nothing is blocked and the next shortest asked, up to
    :data:`ATTEMPTS` times, starting from ``first``, the shortest divergence
    (:func:`first_divergence`: ``(k, trace)``).  Returns ``(property, depth, scenario,
    how)`` or None (what happened is appended to ``notes``).
    """
    blocked: list[list[int]] = []
    for attempt in range(ATTEMPTS):
        d = (
            Found(first[0], first[1])
            if attempt == 0
            else divergence_search(
                fix, depth=depth - 1, timeout=timeout, start=max(start - 1, 0), blocked=blocked
            )
        )
        if d.trace is None:
            _note(notes, _no_divergence(d, depth), undecided=d.unknown)
            return None
        k, trace = d.depth, d.trace
        how = _parted_at(fix, k)
        raw = to_scenario(trace, SEED)
        for prop in props:
            if confirm_defect(fix, prop, raw)[0]:
                return prop, k + 1, raw, how + "; the violation is that transition's"
        after = _after_parting(fix, props, depth, k, trace, timeout)
        if after is not None:
            return (
                *after,
                how
                + (
                    f"; the shortest violation after it (product BMC of SEED, SEED + {fix} "
                    f"and FIXED minus {fix})"
                ),
            )
        blocked.append([int(st_["loc"]) for st_ in trace.states[: k + 1]])
    notes.append(f"divergence: {ATTEMPTS} runs where SEED and SEED + {fix} part, none shows it")
    return None


def _after_parting(
    fix: str, props: list[str], depth: int, k: int, trace: Trace, timeout: float
) -> tuple[str, int, Scenario] | None:
    """The shortest violation of one of ``props`` within :data:`SUFFIX` steps (and
    ``depth``) after SEED and SEED + ``fix`` part at transition ``k + 1`` of ``trace``:
    the product search (:func:`product_search`, pinned inputs) going on from that run,
    as ``(property, depth, scenario)`` when the replay confirms it."""
    after = product_search(
        fix,
        depth=min(depth, k + 1 + SUFFIX),
        timeout=timeout,
        props=props,
        start=k + 1,
        window=True,
        pinned=True,
        prefix=trace,
    )
    if after.trace is not None and after.prop is not None:
        raw = to_scenario(after.trace, SEED)
        if confirm_defect(fix, after.prop, raw)[0]:
            return after.prop, after.depth, raw
    return None


def _in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a process of its own, its last argument (a list of notes) updated.

    Z3's answers depend on every term the process built before the query, and how far
    the product search got before its budget ran out depends on the machine's speed: a
    search run after it would answer differently from run to run.  In a fresh process
    it asks the same queries in the same order every time, so two runs write the same
    scenario.  (The same holds of the first divergence search, whichever jobs the worker
    running the defect ran before.)"""
    import multiprocessing

    *rest, notes = args
    # spawned, not forked: a forked child would inherit the terms of its parent.  A
    # process and a pipe, no pool: a pool's queues hold semaphores, which a worker
    # killed by verify's Ctrl-C could not release (reported leaked at exit)
    spawn = multiprocessing.get_context("spawn")
    answer, send = spawn.Pipe(duplex=False)
    child = spawn.Process(target=_answer_to, args=(send, fn, *rest))
    child.start()
    send.close()
    try:
        reply: tuple[bool, Any] | None = answer.recv()
    except EOFError:
        reply = None  # it died without answering
    finally:
        answer.close()
        child.join()  # its pipe may close before it is reaped: its status only after this
    if reply is None:
        raise RuntimeError(f"{fn.__name__}'s process died (exit status {child.exitcode})")
    ok, got = reply
    if not ok:
        raise got
    found, more, undecided = got
    notes.extend(more)
    if undecided:
        _note(notes, "", undecided=True)
        notes.pop()  # the flag, not the empty note
    return found


def _answer_to(send: Connection, fn: Callable[..., Any], *args: Any) -> None:
    """In the process of :func:`_in_fresh_process`: send ``(True, answer)``, or ``(False,
    the exception)`` (its text, when it does not pickle); the answer is ``fn``'s result
    with the notes it took and whether they leave it undecided."""
    notes = Notes()
    try:
        reply: tuple[bool, Any] = (True, (fn(*args, notes), list(notes), notes.undecided))
    except Exception as exc:  # raised again in the parent
        reply = (False, exc)
    try:
        send.send(reply)
    except Exception:  # an answer or exception that does not pickle
        send.send((False, RuntimeError(repr(reply[1]))))
    send.close()


def divergence_job(job: dict[str, Any]) -> dict[str, Any]:
    """The first divergence of SEED and SEED + ``job["fix"]`` (:func:`first_divergence`,
    in a fresh process) for a defect whose search is yet to be planned: ``verify`` runs
    it as soon as the seed's own counterexamples are known not to show the defect,
    before the fix-necessity results that the search's properties wait for.  ``props``
    is a superset of those (every property not proved on SEED);
    :func:`defect_job` narrows what the run shows to its own properties, or searches
    again where the run stopped at a scenario that shows only others.  Returns
    ``{"fix", "first", "notes", "undecided", "seconds"}``."""
    t0 = time.monotonic()
    notes = Notes()
    first = _in_fresh_process(
        first_divergence,
        str(job["fix"]),
        list(job["props"]),
        int(job["depth"]),
        float(job["timeout"]),
        notes,
    )
    return {
        "fix": job["fix"],
        "props": list(job["props"]),
        "first": first,
        "notes": list(notes),
        "undecided": notes.undecided,
        "seconds": time.monotonic() - t0,
    }


def _divergence_for(
    fix: str,
    props: list[str],
    depth: int,
    timeout: float,
    early: dict[str, Any] | None,
    notes: list[str],
) -> tuple[int, Any, list[str]] | None:
    """:func:`first_divergence` for ``props``: the result of the :func:`divergence_job`
    run ahead (``early``, over a superset of ``props``) where it answers for ``props``,
    else computed now in a fresh process.

    The early run asks the same queries (a fresh process each time) and stops at the
    first run of the parting depth that shows any of its properties.  When the first of
    them (in the order of :data:`PROPERTIES`, which both lists keep) is in ``props``, a
    search over ``props`` alone stops at the same run (the runs before it show none of
    the superset) and asks the same further query (:func:`_in_parting_step`, about that
    property), so its answer is the one computed now would be."""
    if early is not None and set(props) <= set(early["props"]):
        first = early["first"]
        if first is None or not first[2] or first[2][0] in props:
            notes.extend(early["notes"])
            if early.get("undecided") and isinstance(notes, Notes):
                notes.undecided = True
            if first is None:
                return None
            k, trace, shown = first
            return k, trace, [p for p in shown if p in props]
    found: tuple[int, Any, list[str]] | None = _in_fresh_process(
        first_divergence, fix, props, depth, timeout, notes
    )
    return found


@dataclass
class _Search:
    """One defect's search (:func:`defect_job`): the job's parameters, its notes and its
    start time (moved back by a :func:`divergence_job` run ahead for it)."""

    fix: str
    props: list[str]
    depth: int
    start: int
    window: bool
    exact: bool
    timeout: float
    out_dir: Path | None
    t0: float
    notes: Notes = field(default_factory=Notes)

    def row(
        self,
        prop: str | None,
        depth: int | None,
        sc: Scenario | None,
        status: Status,
        source: str,
        detail: str,
        shortest: str | None = None,
    ) -> DefectRow:
        """The defect's row (:func:`defect_row`), timed from the start of the search."""
        return defect_row(
            self.fix,
            prop,
            depth,
            sc,
            status,
            time.monotonic() - self.t0,
            source,
            self.out_dir,
            detail,
            shortest,
        )


def defect_job(job: dict[str, Any]) -> DefectRow:
    """A per-defect search (``vmballoon verify``'s obligation ``defect``).

    First where SEED and SEED + fix part (:func:`first_divergence`, in a fresh process:
    one copy of the encoding, cheap even when deep): when the transition that parts them
    shows the defect, that scenario is the shortest over the pinned inputs and no product
    is needed (:func:`_shown_at_parting`).  Otherwise the product search
    (:func:`_product_phase`) over the pinned environment (:mod:`vmballoon.proofs.pinned`),
    from the lower bound the divergence gives, then over every input; when neither shows
    the defect in :data:`PRODUCT_BUDGET`, from the divergences on (:func:`_via_divergence`).
    What is reported is always what the replay shows (:func:`_unshown`).
    """
    early = job.get("divergence")
    t0 = time.monotonic()
    if early is not None:
        t0 -= float(early["seconds"])  # the search began with the divergence job
    run = _Search(
        str(job["fix"]),
        list(job["props"]),
        int(job["depth"]),
        int(job.get("start", 0)),
        bool(job.get("window", False)),
        bool(job.get("start_exact", False)),
        float(job["timeout"]),
        Path(job["out"]) if job.get("out") else None,
        t0,
    )
    first = _divergence_for(run.fix, run.props, run.depth, run.timeout, early, run.notes)
    lower = {True: run.start, False: run.start}
    if first is not None:
        k0, trace0, shown_by = first
        if shown_by:
            return _shown_at_parting(run, k0, trace0, shown_by[0])
        run.notes.append(_parted_at(run.fix, k0) + "; that transition shows no violation")
        lower[True] = max(run.start, k0 + 1)  # a sound bound for the pinned inputs only
    done, last = _product_phase(run, lower)
    if done is not None:
        return done
    if first is not None:
        found = _from_divergences(run, first[:2])
        if found is not None:
            return found
    return _unshown(run, last)


def _from_divergences(run: _Search, first: tuple[int, Any]) -> DefectRow | None:
    """The row when the product searches have not shown the defect: a scenario found from
    where SEED and SEED + fix part (:func:`_via_divergence`, in a fresh process, from
    the first divergence ``first``), its scenario minimised; None when none shows it."""
    found = _in_fresh_process(
        _via_divergence,
        run.fix,
        run.props,
        run.depth,
        run.start,
        run.timeout,
        first,
        run.notes,
    )
    if found is None:
        return None
    d_prop, d_depth, d_raw, how = found
    sc = _minimal(run.fix, d_prop, d_raw)
    detail = "; ".join(
        [*run.notes, how, "shortest not established: the product search did not finish"]
    )
    return run.row(d_prop, d_depth, sc, Status.VIOLATED, "divergence", detail, "not established")


def _shown_at_parting(run: _Search, k0: int, trace0: Trace, shown: str) -> DefectRow:
    """The row when the run where SEED and SEED + fix part at transition ``k0 + 1`` shows
    the defect through ``shown``: that transition's violation is the shortest over the
    pinned inputs; a later one leaves a gap the product asks (:func:`_in_the_gap`)."""
    how = _parted_at(run.fix, k0)
    sc = _minimal(run.fix, shown, to_scenario(trace0, SEED))
    step = _first_step(shown, sc)
    established = True
    if step == k0 + 1:
        said = (
            f"{how}; the violation is that transition's: the shortest over the "
            f"pinned inputs (before they part the two drivers are in the same "
            f"states, so no run of fewer transitions tells them apart)"
        )
    else:
        shorter, established, words = _in_the_gap(run.fix, run.props, k0 + 1, step - 1, run.timeout)
        if shorter is not None:
            shown, sc, step = shorter
        said = f"{how}; the violation shows at transition {step}: {words}"
    # the parting transition itself: one copy before it; a gap: a product
    shortest = (
        ("pinned inputs" if step == k0 + 1 else "pinned shared inputs")
        if established
        else "not established"
    )
    return run.row(
        shown, step, sc, Status.VIOLATED, "divergence", "; ".join([*run.notes, said]), shortest
    )


def _product_phase(
    run: _Search, lower: dict[bool, int]
) -> tuple[DefectRow | None, tuple[str, Scenario, int | None] | None]:
    """The product searches (:func:`product_search`) over the pinned inputs, then over
    every input, within :data:`PRODUCT_BUDGET` in all: the row of the first answer the
    replay confirms, or None and the last answer it did not.  An answer whose scenario
    the replay does not confirm (the copies share each step's inputs, a replay consumes
    the scenario's answers in order: where the variants issue different commands they
    can part) is blocked by its location path and the search asked again, up to
    :data:`ATTEMPTS` times."""
    last: tuple[str, Scenario, int | None] | None = None
    deadline = time.monotonic() + PRODUCT_BUDGET
    for pinned in (True, False):
        blocked: list[list[int]] = []
        stopped = False  # this search ended undecided (solver unknown, budget spent)
        for _ in range(ATTEMPTS):
            found = product_search(
                run.fix,
                depth=run.depth,
                timeout=run.timeout,
                props=run.props,
                start=lower[pinned],
                window=run.window,
                pinned=pinned,
                blocked=blocked,
                deadline=deadline,
            )
            if found.trace is None or found.prop is None:
                stopped = found.unknown
                _note(
                    run.notes,
                    _product_note(found, pinned, lower[pinned], run.depth, deadline),
                    undecided=found.unknown,
                )
                break
            prop, k, raw = found.prop, found.depth, to_scenario(found.trace, SEED)
            if confirm_defect(run.fix, prop, raw)[0]:
                return _product_row(run, prop, k, raw, pinned, bool(blocked), lower[pinned]), None
            last = (prop, raw, k)
            blocked.append([int(st["loc"]) for st in found.trace.states])
        if pinned and stopped:
            break  # the pinned search timed out: the full one is harder still
    return None, last


def _product_note(found: Found, pinned: bool, lower: int, depth: int, deadline: float) -> str:
    """What a product search that found nothing says of itself."""
    how = "pinned inputs" if pinned else "every input"
    spent = time.monotonic() >= deadline - 1
    return f"{how}: " + (
        f"no scenario from depth {lower} up to {depth}"
        if not found.unknown
        else f"budget of {PRODUCT_BUDGET:.0f} s spent at depth {found.depth}"
        if spent
        else f"solver unknown (timeout) at depth {found.depth}"
    )


def _product_row(
    run: _Search, prop: str, k: int, raw: Scenario, pinned: bool, blocked: bool, lower: int
) -> DefectRow:
    """The row of a product answer the replay confirms, its scenario minimised."""
    sc = _minimal(run.fix, prop, raw)
    how = "pinned inputs (the others at their defaults)" if pinned else "every input"
    # an answer after a blocked one need not be the shortest
    shortest = product_shortest(pinned, blocked, k, run.start, run.exact)
    said = (
        f"product BMC over {how}: SEED, SEED + {run.fix} and FIXED minus {run.fix} on "
        f"the same inputs ("
        + (
            f"shortest from the lower bound {lower})"
            if not blocked
            else "after blocked answers: shortest not established)"
        )
    )
    return run.row(prop, k, sc, Status.VIOLATED, "product", "; ".join([*run.notes, said]), shortest)


def _unshown(run: _Search, last: tuple[str, Scenario, int | None] | None) -> DefectRow:
    """The row when no search showed the defect: the last answer the replay did not
    confirm (unconfirmed, never violated), else none, or unknown when a search was left
    undecided."""
    detail = "; ".join(run.notes)
    if last is not None:  # found, never confirmed: shown as such, never as violated
        prop, raw, k = last
        return run.row(
            prop,
            k,
            raw,
            Status.UNCONFIRMED,
            "product",
            detail + "; the replay did not confirm the last answer",
        )
    status = Status.UNKNOWN if run.notes.undecided else Status.NONE
    return run.row(None, None, None, status, "product", detail)


def plan_defect(
    fix: str, results: list[Outcome], necessity: bool, *, timeout: float, out: str | None
) -> tuple[DefectRow | None, dict[str, Any] | None]:
    """The defect's row from a SEED counterexample already found, or the search job's
    parameters (for :func:`defect_job`).

    The properties looked at are those FIXED minus ``fix`` violates (the fix-necessity
    results; every safety property without them), less those proved on SEED.  A SEED
    counterexample of one of them that :func:`confirm_defect` accepts is the defect's
    shortest scenario for that property (nothing shorter violates it on SEED at all);
    otherwise a product search (:func:`defect_job`) runs from the lower bound the SEED
    results give.
    """
    out_dir = Path(out) if out else None
    minus = FIXED.without(fix).name
    seed = {r.prop: r for r in results if r.variant == "seed"}
    props = [
        n
        for n in PROPERTIES
        if not necessity
        or any(r.variant == minus and r.prop == n and r.status == Status.VIOLATED for r in results)
    ] or list(PROPERTIES)
    props = [n for n in props if n not in seed or seed[n].status != Status.PROVED]
    bounds = [
        int(seed[n].depth or 0) + (1 if seed[n].status == Status.NO_CEX else 0)
        for n in props
        if n in seed and seed[n].depth is not None
    ]
    start = min(bounds) if len(bounds) == len(props) else 0
    # a bound from plain BMC (iterative deepening over every input) is exact: SEED breaks
    # none of ``props`` in fewer transitions on any input (a bound of 0 claims nothing:
    # no answer is at depth 0, Init breaks no property)
    exact = all(seed[n].kind == "bmc" for n in props if n in seed)
    shown = _seed_counterexample(fix, props, seed)
    if shown is not None:
        r, sc = shown
        # at the exact lower bound the row claims what a product answer there claims:
        # which of the two finds it first depends on the witness Z3 returns for SEED
        at_bound = exact and r.depth == start
        row = defect_row(
            fix,
            r.prop,
            r.depth,
            sc,
            Status.VIOLATED,
            0.0,
            "seed",
            out_dir,
            "SEED's shortest counterexample of the property; the fix alone clears it",
            "every input" if at_bound else "property",
        )
        return row, None
    job = {
        "fix": fix,
        "props": props,
        "start": start,
        "depth": DEFECT_DEPTH,
        "timeout": timeout,
        "out": out,
        "window": True,
        "start_exact": exact,
    }
    return None, job


def _seed_counterexample(
    fix: str, props: list[str], seed: dict[str, Outcome]
) -> tuple[Outcome, Scenario] | None:
    """SEED's shortest counterexample (row, scenario) of one of ``props`` that
    :func:`confirm_defect` accepts for ``fix``, the shallowest first; None if none."""
    from vmballoon.core.scenario import ScenarioError, load_scenario

    rows = sorted(
        (r for n, r in seed.items() if n in props and r.status == Status.VIOLATED),
        key=lambda r: (int(r.depth or 0), list(PROPERTIES).index(r.prop)),
    )
    for r in rows:
        if not r.scenario:
            continue
        try:
            sc = load_scenario(r.scenario)
        except ScenarioError:
            continue
        if confirm_defect(fix, r.prop, sc)[0]:
            return r, sc
    return None


def plan_divergence(fix: str, results: list[Outcome], *, timeout: float) -> dict[str, Any] | None:
    """The parameters of the :func:`divergence_job` to run ahead for ``fix`` once SEED's
    results are in, or None: when none of SEED's counterexamples of a property not proved
    on SEED shows the defect, its search will begin with the first divergence, which
    needs nothing else."""
    seed = {r.prop: r for r in results if r.variant == "seed"}
    if not seed:
        return None
    props = [n for n in PROPERTIES if n not in seed or seed[n].status != Status.PROVED]
    if not props or _seed_counterexample(fix, props, seed) is not None:
        return None
    return {"fix": fix, "props": props, "depth": DEFECT_DEPTH, "timeout": timeout}


def lines_of(fix: str) -> str:
    """The C lines the fix changes (:mod:`vmballoon.core.variants`)."""
    return FIXES_BY_NAME[fix].lines


__all__ = [
    "DEFECT_DEPTH",
    "DefectRow",
    "Notes",
    "confirm_defect",
    "defect_job",
    "defect_row",
    "divergence_job",
    "lines_of",
    "plan_defect",
    "plan_divergence",
    "product_search",
    "violates",
]
