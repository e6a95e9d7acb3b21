"""Proof obligations: induction for the fixed driver, BMC counterexamples for the others.

* **Induction** (:func:`houdini`): Houdini keeps the largest subset of the properties
  and auxiliary lemmas of :mod:`vmballoon.proofs.props` that is inductive *as a whole*
  (``Init => Inv`` and ``Inv ∧ T_L => Inv'`` for every location ``L``); each survivor is
  *proved*.  (A per-property check that assumed the whole conjunction without checking
  the other conjuncts was unsound and is gone.)
* **BMC** (:func:`bmc`): from ``Init``, unroll ``T`` up to a depth and ask for a
  state violating the property; the first depth that answers gives the shortest
  counterexample.  It becomes a scenario of the contract (:func:`to_scenario`),
  is replayed through the model with :func:`vmballoon.model.properties.check_trace` (and the
  reference when it exists) and is reported only if the replay shows the violation.
* **Vacuity** (:func:`vacuity`): ``Init ∧ Inv`` satisfiable, every transition
  enabled from some state satisfying ``Inv``, and totality: from *every* state
  satisfying ``Inv`` every location admits an input (:mod:`vmballoon.proofs.vacuity`).
* ``unknown`` (a timeout) is a result of its own, never "proved".
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import z3

from vmballoon.core.assumptions import names_for
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import Variant
from vmballoon.model.properties import check_trace
from vmballoon.model.state import Loc
from vmballoon.proofs.encoding import (
    FIELD_NAMES,
    INPUT_NAMES,
    TRANSITIONS,
    Expr,
    initial,
    loc_val,
    make_inputs,
    make_state,
    reachable_locs,
    successor,
    transition,
)
from vmballoon.proofs.houdini import houdini as houdini_core
from vmballoon.proofs.props import AUX, PROPERTIES
from vmballoon.proofs.solver import Unknown, bv_solver, invariant, solver
from vmballoon.proofs.status import Status
from vmballoon.proofs.trace import Trace, to_scenario
from vmballoon.proofs.zeval import value_of

DEFAULT_DEPTH = 14
DEFAULT_TIMEOUT = 30.0
RUNNING_LOCS = [loc for loc in TRANSITIONS if loc not in (Loc.EXITED, Loc.CRASHED)]


@dataclass
class Outcome:
    """The result of one obligation: a row of ``verify --json``'s ``results``.

    ``measured`` (not in the JSON) is false where ``seconds`` is not this row's own time
    (a property Houdini proves shares the invariant's time); ``c`` is what the compiled C
    showed replaying the row's counterexample (:mod:`vmballoon.apps.cexreplay`), in the
    JSON only when it was replayed.  ``tied`` false (``tied_to_model`` in the JSON) marks
    a proof for a variant whose encoding is not checked against the model (no conformance,
    no totality: FIXED minus a fix): "proved, not tied to the model"."""

    prop: str
    variant: str
    kind: str  # "induction", "bmc" or "accelerated" (the deep search, proofs.accel)
    status: Status
    seconds: float
    detail: str = ""
    depth: int | None = None
    scenario: str | None = None
    replay: list[dict[str, Any]] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)  # names, vmballoon.core.assumptions
    measured: bool = field(default=True, kw_only=True)
    c: dict[str, Any] | None = field(default=None, kw_only=True)
    tied: bool | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        self.status = Status(self.status)
        if not self.assumptions:
            self.assumptions = names_for(self.prop)

    def to_json(self) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("measured", "c", "tied")}  # fmt: skip
        if self.tied is not None:
            doc["tied_to_model"] = self.tied
        if self.c is not None:
            doc["c"] = self.c
        return doc


@dataclass
class InvariantOutcome(Outcome):
    """The invariant Houdini kept (:func:`invariant_row`): its conjuncts, what it dropped."""

    conjuncts: list[dict[str, str]] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)


_solver = solver


def conjuncts() -> list[str]:
    """Every conjunct of the inductive invariant: the properties, then the lemmas."""
    return list(PROPERTIES) + list(AUX)


def _pred(name: str) -> Any:
    return PROPERTIES[name] if name in PROPERTIES else AUX[name]


@dataclass
class Houdini:
    """The largest inductive subset of the conjuncts, as Houdini finds it."""

    variant: str
    proved: list[str]
    dropped: dict[str, str]  # conjunct -> where it failed ("initiation" or a location)
    unknown: str | None
    seconds: float


def houdini(
    variant: Variant, timeout: float, names: list[str] | None = None, split: bool = False
) -> Houdini:
    """Houdini (:func:`vmballoon.proofs.houdini.houdini`) over the conjuncts of the safety
    invariant.

    The survivors form an inductive invariant, so each is *proved* for ``variant``.
    With ``split`` the candidates are the properties, every conjunct of every lemma
    and the seed lemmas (:func:`vmballoon.proofs.lemmas.candidates`): what a variant with
    defects needs, since one failing conjunct would otherwise drop a whole lemma.
    A solver ``unknown`` ends the search: nothing is claimed.
    """
    from vmballoon.proofs.lemmas import candidates

    t0 = time.monotonic()
    s, i = make_state("s_"), make_inputs("i_")
    pool = candidates() if split else {n: _pred(n) for n in conjuncts()}
    cands = {n: pool[n] for n in names or pool}
    posts = {loc: successor(loc, s, i, variant) for loc in TRANSITIONS}
    try:
        live, dropped = houdini_core(cands, posts, s, i, timeout)
    except Unknown as exc:
        return Houdini(variant.name, [], {}, str(exc), time.monotonic() - t0)
    return Houdini(variant.name, live, dropped, None, time.monotonic() - t0)


def invariant_row(h: Houdini, split: bool) -> InvariantOutcome:
    """The inductive invariant Houdini kept, as a result row: each conjunct in words and
    as a formula, and whether it was derived mechanically (a split conjunct) or written."""
    from vmballoon.proofs.lemmas import SEED_LEMMAS, candidates

    pool = candidates() if split else {n: _pred(n) for n in conjuncts()}
    plain = make_state("")
    kept = []
    for name in h.proved:
        base = name.split(".")[0]
        doc = (_pred(base) if base in PROPERTIES or base in AUX else SEED_LEMMAS[base]).__doc__
        origin = (
            "property" if name in PROPERTIES
            else "split from " + base if "." in name and base in AUX
            else "seed lemma (hand-written)" if base in SEED_LEMMAS
            else "lemma (hand-written)"
        )  # fmt: skip
        kept.append({
            "name": name, "origin": origin, "words": " ".join((doc or "").split()),
            "formula": str(pool[name](plain)),
        })  # fmt: skip
    return InvariantOutcome(
        "invariant", h.variant, "houdini", Status.UNKNOWN if h.unknown else Status.PROVED,
        h.seconds, h.unknown or f"Houdini kept {len(h.proved)} of {len(pool)} candidates",
        assumptions=names_for("invariant"), conjuncts=kept,
        dropped=dict(sorted(h.dropped.items())),
    )  # fmt: skip


DEEP_DEPTH = 22
DEEP_TIMEOUT_FACTOR = 4
"""The accelerated search asks ONE query over every depth up to :data:`DEEP_DEPTH`
(:func:`bmc_window`) where iterative deepening would ask one per depth: it gets this
many per-query timeouts (``verify --timeout``; ``deep_timeout`` in ``--json``)."""
"""Depth of the accelerated search (:mod:`proofs.accel`) for what plain BMC leaves open."""
ACCEL_PROPS = ("rate_bounds", "rate_counter", "throttle")
"""The properties over the allocation counters: those that acceleration can bring closer."""


def check_variant(
    variant: Variant, props: list[str], timeout: float, depth: int, out_dir: Path | None,
    use_bmc: bool,
) -> list[Outcome]:  # fmt: skip
    """Prove what Houdini proves; look for counterexamples (BMC) to the rest.

    For FIXED (``use_bmc`` false) a property Houdini drops is a failure.  For the seed,
    Houdini runs over split lemmas (:mod:`vmballoon.proofs.lemmas`); a property over the
    allocation counters (:data:`ACCEL_PROPS`) that plain BMC does not violate up to
    ``depth`` is searched again with acceleration up to :data:`DEEP_DEPTH` by a job of
    its own (:func:`deep_job`), which ``verify`` plans when this one is done.
    The first row is the invariant Houdini kept (:func:`invariant_row`); a property it
    proves has no time of its own (its time is the invariant's).
    """
    live = "progress" in props
    props = [n for n in props if n in PROPERTIES]
    split = variant.name == "seed"
    h = houdini(variant, timeout, split=split)
    if h.unknown is not None:
        return [
            Outcome(n, variant.name, "induction", Status.UNKNOWN, h.seconds, h.unknown)
            for n in [*props, *(["progress"] if live else [])]
        ]
    outs: list[Outcome] = []
    shown = props if use_bmc else [*props, *(n for n in AUX if n not in props)]
    for name in shown:
        if name in h.proved:
            detail = "inductive: in the invariant Houdini kept"
            outs.append(Outcome(name, variant.name, "induction", Status.PROVED, 0.0, detail,
                                measured=False))  # fmt: skip
        elif not use_bmc:
            where = h.dropped.get(name, "?")
            outs.append(Outcome(name, variant.name, "induction", Status.FAILED, 0.0,
                                f"not inductive: fails at {where}", measured=False))  # fmt: skip
    rest = [n for n in props if n not in h.proved]
    if use_bmc and rest:
        outs.extend(bmc(rest, variant, depth, timeout, out_dir))
    if live:
        outs.append(progress_outcome(variant, h, use_bmc, depth, timeout, out_dir))
    return [invariant_row(h, split), *outs]


def progress_outcome(
    variant: Variant, h: Houdini, use_bmc: bool, depth: int, timeout: float,
    out_dir: Path | None,
) -> Outcome:  # fmt: skip
    """``progress`` (:mod:`vmballoon.proofs.progress`): the per-tick induction proof when
    ``use_bmc``
    is false (it assumes the safety invariant, so every conjunct must be in ``h.proved``),
    else BMC from Init in the cooperative environment, the counterexample replayed.

    The seed gets iterative deepening (its shortest counterexample); the other variants
    (the fix-necessity table) one query for a violation at any depth up to ``depth``.
    """
    from vmballoon.proofs import progress as pg

    if not use_bmc:
        if sorted(h.proved) != sorted(conjuncts()):
            return Outcome("progress", variant.name, "induction", Status.FAILED, 0.0,
                           f"the safety invariant is not inductive: {h.dropped}",
                           measured=False)  # fmt: skip
        r = pg.prove(variant, timeout)
        return Outcome("progress", variant.name, "induction", Status(r["status"]), r["seconds"],
                       r["detail"])  # fmt: skip
    status, raw, k, secs = pg.bmc_progress(
        variant, depth, timeout, shortest=variant.name == "seed"
    )
    o = Outcome("progress", variant.name, "bmc", Status(status), secs, depth=k)
    if status == Status.NO_CEX:
        o.detail = f"no counterexample up to depth {depth} in the cooperative environment"
    if raw is not None:
        trace = Trace(raw["states"], raw["inputs"])
        report_counterexample(o, trace, variant, out_dir,
                              f" (cooperative host, target {raw['T'][0]})")  # fmt: skip
    return o


# -- bounded model checking ---------------------------------------------------------------------


def _unroll(
    variant: Variant, depth: int, accel: bool, pinned: bool
) -> tuple[list[dict[str, Expr]], list[dict[str, Expr]], list[dict[str, Expr]], list[Expr]]:
    """``depth`` steps from ``Init``: the states, inputs, acceleration inputs and, per step,
    its constraint (``prefix[0]`` is ``Init``).  With ``pinned`` the inputs not in
    :data:`vmballoon.proofs.pinned.FREE` are at their defaults (an under-approximation)."""
    from vmballoon.proofs.accel import make_acc_inputs, transition_acc
    from vmballoon.proofs.pinned import pin

    reach = reachable_locs(depth)
    states = [make_state("s0_")]
    inputs: list[dict[str, Expr]] = []
    accs: list[dict[str, Expr]] = []
    prefix = [initial(states[0])]
    for k in range(1, depth + 1):
        i = make_inputs(f"i{k - 1}_")
        t = make_state(f"s{k}_")
        if accel:
            a = make_acc_inputs(f"a{k - 1}_")
            step_ = transition_acc(states[-1], i, a, t, variant, reach[k - 1])
            accs.append(a)
        else:
            step_ = transition(states[-1], i, t, variant, reach[k - 1])
        prefix.append(z3.And(step_, *pin(i)) if pinned else step_)
        inputs.append(i)
        states.append(t)
    return states, inputs, accs, prefix


def _trace_of(
    m: Any, k: int, states: list[dict[str, Expr]], inputs: list[dict[str, Expr]],
    accs: list[dict[str, Expr]],
) -> Trace:  # fmt: skip
    ins = [{n: value_of(m, inp[n]) for n in INPUT_NAMES} for inp in inputs[:k]]
    for inp, a in zip(ins, accs[:k], strict=False):
        inp.update({n: value_of(m, e) for n, e in a.items()})
    return Trace([{n: value_of(m, st[n]) for n in FIELD_NAMES} for st in states[: k + 1]], ins)


def bmc_all(
    names: list[str], variant: Variant, depth: int, timeout: float, accel: bool = False,
    start: int = 0,
) -> dict[str, tuple[Status, Trace | None, int | None, float]]:  # fmt: skip
    """BMC of several properties over one unrolling: ``name -> (status, trace, depth, secs)``.

    Iterative deepening: for each depth ``k`` from ``start``, ask for a state ``k``
    steps from ``Init`` that violates one of the remaining properties; record every
    property the model violates at ``k`` and ask again, until unsat, then go one
    step deeper.  The depth at which a property is found is therefore the length
    of its shortest counterexample (in transitions of the encoding: with ``accel``
    a step from ``I_LOOP`` may be ``k`` allocations, :mod:`vmballoon.proofs.accel`; ``start``
    is a depth below which nothing is to be found).  Properties never found are
    ``no-cex`` up to ``depth``; a solver ``unknown`` stops the search and is reported
    as such.  ``secs`` is the property's share of the solver time: each query's time
    divided among the properties it asked about.
    """
    states, inputs, accs, prefix = _unroll(variant, depth, accel, False)
    out: dict[str, tuple[Status, Trace | None, int | None, float]] = {}
    spent: dict[str, float] = dict.fromkeys(names, 0.0)
    todo = list(names)
    # iterative deepening: a query per depth k asks for a state k that violates some
    # remaining property; the first k that answers is that property's shortest
    # counterexample, and shallow queries are cheap
    for k in range(start, depth + 1):
        while todo:
            q0 = time.monotonic()
            sol = bv_solver(timeout)
            sol.add(*prefix[: k + 1])
            sol.add(z3.Or([z3.Not(PROPERTIES[n](states[k])) for n in todo]))
            r = sol.check()
            share = (time.monotonic() - q0) / len(todo)
            for n in todo:
                spent[n] += share
            if r == z3.unsat:
                break
            if r == z3.unknown:
                for n in todo:
                    out[n] = (Status.UNKNOWN, None, k, spent[n])
                return out
            m = sol.model()
            found = [
                n for n in todo
                if z3.is_true(m.eval(z3.Not(PROPERTIES[n](states[k])), model_completion=True))
            ]  # fmt: skip
            for name in found:
                out[name] = (Status.VIOLATED, _trace_of(m, k, states, inputs, accs), k,
                             spent[name])  # fmt: skip
                todo.remove(name)
        if not todo:
            break
    for n in todo:
        out[n] = (Status.NO_CEX, None, depth, spent[n])
    return out


def bmc_window(
    names: list[str], variant: Variant, depth: int, timeout: float, accel: bool = True,
    pinned: bool = False,
) -> dict[str, tuple[Status, Trace | None, int | None, float]]:  # fmt: skip
    """One query for a violation of any of ``names`` at ANY depth up to ``depth``.

    Cheaper than iterative deepening when the violation is deep (no unsat query at
    each shallower depth), at a price: the depth found is the least one of the
    solver's model, not necessarily the shortest counterexample.  Repeated for the
    properties still open.  ``no-cex`` means none up to ``depth`` (of the pinned
    system with ``pinned``: then it proves nothing about the full one).
    """
    states, inputs, accs, prefix = _unroll(variant, depth, accel, pinned)
    out: dict[str, tuple[Status, Trace | None, int | None, float]] = {}
    spent: dict[str, float] = dict.fromkeys(names, 0.0)
    todo = list(names)

    def bad(n: str, k: int) -> Expr:
        return z3.Not(PROPERTIES[n](states[k]))

    while todo:
        q0 = time.monotonic()
        sol = bv_solver(timeout)
        sol.add(*prefix)
        sol.add(z3.Or([bad(n, k) for n in todo for k in range(depth + 1)]))
        r = sol.check()
        share = (time.monotonic() - q0) / len(todo)
        for n in todo:
            spent[n] += share
        if r != z3.sat:
            status = Status.UNKNOWN if r == z3.unknown else Status.NO_CEX
            for n in todo:
                out[n] = (status, None, depth, spent[n])
            break
        m = sol.model()
        k = next(k for k in range(depth + 1)
                 if any(z3.is_true(m.eval(bad(n, k), model_completion=True)) for n in todo))
        for n in [n for n in todo if z3.is_true(m.eval(bad(n, k), model_completion=True))]:
            out[n] = (Status.VIOLATED, _trace_of(m, k, states, inputs, accs), k, spent[n])
            todo.remove(n)
    return out


def deep_search(
    names: list[str], variant: Variant, depth: int, timeout: float
) -> dict[str, tuple[Status, Trace | None, int | None, float, str]]:
    """Accelerated BMC (:mod:`vmballoon.proofs.accel`) up to ``depth`` for what plain BMC left open.

    First over the pinned environment (:mod:`vmballoon.proofs.pinned`, a sound
    under-approximation: what it finds is a real trace, and cheap to find); what it
    does not find is searched again over every input, and only that second search
    may answer ``no-cex``.  Returns ``name -> (status, trace, depth, secs, how)``.
    """
    out: dict[str, tuple[Status, Trace | None, int | None, float, str]] = {}
    first = bmc_window(names, variant, depth, timeout, pinned=True)
    rest = []
    for n in names:
        status, trace, k, secs = first[n]
        if status == Status.VIOLATED:
            out[n] = (status, trace, k, secs, "pinned")
        else:
            rest.append(n)
    if rest:
        full = bmc_window(rest, variant, depth, timeout, pinned=False)
        for n in rest:
            status, trace, k, secs = full[n]
            out[n] = (status, trace, k, secs + first[n][3], "full")
    return out


# -- counterexamples as scenarios -----------------------------------------------------------------

@dataclass(frozen=True)
class Confirmation:
    """What replaying a counterexample showed: the violations of its property on the model
    (``violations``), and ``problem``, why it confirms nothing although the model shows
    it (the reference disagrees with the model, or its replay raised); None when none."""

    violations: list[dict[str, Any]]
    problem: str | None = None

    @property
    def confirmed(self) -> bool:
        """The model shows the violation and nothing else speaks against it."""
        return bool(self.violations) and self.problem is None

    def rows(self, name: str) -> list[dict[str, Any]]:
        """The ``replay`` field of the result row: the violations, then the problem."""
        extra = [] if self.problem is None else [{"property": name, "message": self.problem}]
        return [*self.violations, *extra]


def confirm(name: str, scenario: Scenario, variant: Variant) -> Confirmation:
    """Replay ``scenario`` with every property checked: the violations of ``name``, and
    whether the reference agrees with the model.  A reference replay that raises is a
    failure of the confirmation, never a confirmation."""
    found = [v.to_json() for v in check_trace(scenario, variant) if v.prop == name]
    try:
        from vmballoon import model, reference

        ref = reference.replay(scenario, variant)
        mod = model.replay(scenario, variant)
    except Exception as exc:  # an exception is never a confirmation (the row is unconfirmed)
        return Confirmation(found, f"reference replay failed: {exc!r}")
    if ref != mod:
        return Confirmation(found, "model and reference disagree on replay")
    return Confirmation(found)


def report_counterexample(
    o: Outcome, trace: Trace, variant: Variant, out_dir: Path | None, note: str = ""
) -> None:
    """Turn ``trace`` into a scenario, replay it, record the outcome, write the file.

    The outcome stays *violated* only when the replay through the model shows the
    violation of ``o.prop`` and the reference replays it to the same log; otherwise
    (no violation, a disagreement, a replay that raises) it becomes *unconfirmed*.
    """
    from vmballoon.core.minimize import minimize

    raw = to_scenario(trace, variant)
    props = frozenset({o.prop})
    first = [v.step for v in check_trace(raw, variant, props)]

    def keep(sc: Scenario) -> bool:
        # still violated, and no later than in the solver's trace: the depth stays the
        # shortest counterexample's (minimising must not trade inputs for transitions)
        return any(v.step <= first[0] for v in check_trace(sc, variant, props))

    scenario = minimize(raw, keep) if first else raw
    seen = confirm(o.prop, scenario, variant)
    o.replay = seen.rows(o.prop)
    locs = " ".join(Loc(int(st["loc"])).name for st in trace.states)
    o.detail = f"trace: {locs}{note}"
    if not seen.confirmed:
        o.status = Status.UNCONFIRMED
    if out_dir is not None:
        meta = {"property": o.prop, "variant": variant.name, "depth": o.depth, "defect": None}
        o.scenario = str(write_scenario(out_dir / f"{variant.name}.{o.prop}.scenario.json",
                                        scenario, meta))  # fmt: skip


def write_scenario(path: Path, scenario: Scenario, meta: dict[str, Any]) -> Path:
    """Write ``scenario`` with its ``meta`` object (which replay ignores), deterministically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = scenario.to_json()
    assumed = meta.get("assumptions") or names_for(str(meta.get("property")))
    doc["meta"] = {**meta, "assumptions": list(assumed)}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def bmc(
    names: list[str], variant: Variant, depth: int, timeout: float, out_dir: Path | None,
    window: bool = False,
) -> list[Outcome]:  # fmt: skip
    """BMC of ``names`` on ``variant``; counterexamples replayed and written to ``out_dir``.

    Iterative deepening (:func:`bmc_all`: shortest counterexamples), or with ``window``
    one query over every depth up to ``depth`` (:func:`bmc_window`: cheaper, the depth
    is the solver's, not necessarily the shortest)."""
    if window:
        res = bmc_window(names, variant, depth, timeout, accel=False)
    else:
        res = bmc_all(names, variant, depth, timeout)
    outs = []
    for name in names:
        status, trace, k, secs = res[name]
        o = Outcome(name, variant.name, "bmc", status, secs, depth=k)
        if status == Status.NO_CEX:
            o.detail = f"no counterexample up to depth {depth}"
        if trace is not None:
            report_counterexample(o, trace, variant, out_dir)
        outs.append(o)
    return outs


def deep(
    names: list[str], variant: Variant, depth: int, timeout: float, out_dir: Path | None,
    plain_depth: int,
) -> list[Outcome]:  # fmt: skip
    """The accelerated search (:func:`deep_search`) for ``names``, which plain BMC did
    not violate up to ``plain_depth``; counterexamples replayed and written as by :func:`bmc`."""
    res = deep_search(names, variant, depth, timeout)
    outs = []
    for name in names:
        status, trace, k, secs, how = res[name]
        o = Outcome(name, variant.name, "accelerated", status, secs, depth=k)
        if status == Status.NO_CEX:
            o.detail = (f"no counterexample up to depth {plain_depth}, nor up to depth {depth} "
                        "with accelerated inflate steps")  # fmt: skip
        elif status == Status.UNKNOWN:
            o.detail = (f"no counterexample up to depth {plain_depth}; the accelerated search "
                        f"up to depth {depth} timed out")  # fmt: skip
        if trace is not None:
            bulk = [int(x["acc_k"]) for x in trace.inputs if x.get("acc")]
            note = f"; accelerated steps of {bulk} allocations" if bulk else ""
            if how == "pinned":
                note += "; found with the inputs that do not matter at their defaults"
            report_counterexample(o, trace, variant, out_dir, note)
        outs.append(o)
    return outs


def vacuity(variant: Variant, timeout: float) -> Outcome:
    """``Init ∧ Inv`` is satisfiable and every transition is enabled from ``Inv``."""
    t0 = time.monotonic()
    s, i = make_state("s_"), make_inputs("i_")
    inv = invariant(s)
    sol = _solver(timeout)
    sol.add(initial(s), inv)
    r = sol.check()
    if r != z3.sat:
        unknown = r == z3.unknown
        return Outcome(
            "vacuity", variant.name, "vacuity", Status.UNKNOWN if unknown else Status.FAILED,
            time.monotonic() - t0,
            f"Init ∧ Inv: solver unknown ({sol.reason_unknown()})" if unknown
            else "Init ∧ Inv unsat",
        )  # fmt: skip
    dead, undecided = [], []
    for loc in TRANSITIONS:
        if loc == Loc.CRASHED:
            continue  # excluded by no_crash: unreachable when the invariant holds
        st = successor(loc, s, i, variant)
        sol = _solver(timeout)
        sol.add(inv, s["loc"] == loc_val(loc), *st.cons, st.post["loc"] != loc_val(Loc.CRASHED))
        r = sol.check()
        if r == z3.unknown:  # a timeout says nothing about the transition: never "dead"
            undecided.append(f"{loc.name} ({sol.reason_unknown()})")
        elif r != z3.sat:
            dead.append(loc.name)
    # totality: from EVERY state of the invariant some input is admitted (proofs.vacuity)
    from vmballoon.proofs.vacuity import totality

    tot = totality(variant, invariant, timeout)
    if tot.dead:
        dead += [f"{loc} (a state of Inv admits no input)" for loc in tot.dead]
    undecided += [f"{loc} (totality)" for loc in tot.unknown]
    status = Status.FAILED if dead else Status.UNKNOWN if undecided else Status.PROVED
    parts = [f"never enabled: {dead}"] if dead else []
    if undecided:
        parts.append(f"solver unknown (timeout?) for: {', '.join(undecided)}")
    detail = "; ".join(parts) or (
        "Init ∧ Inv sat; all transitions enabled under Inv; total: from every state of Inv "
        "every location admits an input"
    )
    return Outcome("vacuity", variant.name, "vacuity", status, time.monotonic() - t0, detail)


@dataclass
class ConformanceOutcome:
    """The conformance of the encoding with the model for one variant: ``ok`` and the
    witness check's report (``data``, :meth:`vmballoon.proofs.witness.Report.to_json`), which is
    the row of ``verify --json``'s ``conformance``."""

    variant: str
    ok: bool
    data: dict[str, Any]

    @property
    def status(self) -> Status:
        return Status.PASSED if self.ok else Status.FAILED

    def to_json(self) -> dict[str, Any]:
        return {"prop": "conformance", "kind": "conformance", "status": self.status,
                **self.data}  # fmt: skip


def conformance_outcome(variant: Variant) -> ConformanceOutcome:
    """The branch- and boundary-complete conformance of the encoding with the model, its
    input-completeness and its properties' conformance (:mod:`vmballoon.proofs.argument`):
    what ties a proof about the encoding to the driver."""
    from vmballoon.proofs.argument import outcome

    row = outcome(variant)
    data = {k: v for k, v in row.items() if k not in ("prop", "kind", "status")}
    return ConformanceOutcome(variant.name, bool(row["ok"]), data)


def seed_open_for_acceleration(results: list[Outcome]) -> list[str]:
    """The SEED properties over the allocation counters (:data:`ACCEL_PROPS`) that plain
    BMC left without a counterexample: what the accelerated search (:func:`deep`) is for."""
    open_ = [r.prop for r in results
             if r.variant == "seed" and r.prop in ACCEL_PROPS and r.status == Status.NO_CEX]
    return sorted(open_, key=ACCEL_PROPS.index)


__all__ = [
    "DEEP_DEPTH",
    "DEEP_TIMEOUT_FACTOR",
    "DEFAULT_DEPTH",
    "DEFAULT_TIMEOUT",
    "ConformanceOutcome",
    "InvariantOutcome",
    "Outcome",
    "Status",
    "bmc",
    "check_variant",
    "conjuncts",
    "deep",
    "houdini",
    "seed_open_for_acceleration",
    "to_scenario",
    "vacuity",
]
