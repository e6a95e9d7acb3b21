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
from typing import Any, NamedTuple

import z3

from vmballoon.core.assumptions import names_for
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import Variant
from vmballoon.model.properties import check_trace
from vmballoon.model.state import Loc
from vmballoon.proofs.encoding import (
    TRANSITIONS,
    Expr,
    initial,
    loc_val,
    make_inputs,
    make_state,
    successor,
)
from vmballoon.proofs.houdini import houdini as houdini_core
from vmballoon.proofs.props import AUX, PROPERTIES
from vmballoon.proofs.solver import Unknown, invariant, solver
from vmballoon.proofs.status import Status
from vmballoon.proofs.trace import Trace, to_scenario
from vmballoon.proofs.unrolling import PIN_BMC, Unrolling, query, shortest

DEFAULT_DEPTH = 14
DEFAULT_TIMEOUT = 30.0


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
        doc = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("measured", "c", "tied")
        }
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


def candidate_pool(split: bool) -> dict[str, Any]:
    """Houdini's candidates by name: the conjuncts (:func:`conjuncts`), or with ``split``
    the properties, every conjunct of every lemma and the seed lemmas
    (:func:`vmballoon.proofs.lemmas.candidates`)."""
    from vmballoon.proofs.lemmas import candidates

    return candidates() if split else {n: _pred(n) for n in conjuncts()}


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
    t0 = time.monotonic()
    s, i = make_state("s_"), make_inputs("i_")
    pool = candidate_pool(split)
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
    from vmballoon.proofs.lemmas import SEED_LEMMAS

    pool = candidate_pool(split)
    plain = make_state("")
    kept = []
    for name in h.proved:
        base = name.split(".")[0]
        doc = (_pred(base) if base in PROPERTIES or base in AUX else SEED_LEMMAS[base]).__doc__
        origin = (
            "property"
            if name in PROPERTIES
            else "split from " + base
            if "." in name and base in AUX
            else "seed lemma (hand-written)"
            if base in SEED_LEMMAS
            else "lemma (hand-written)"
        )
        kept.append(
            {
                "name": name,
                "origin": origin,
                "words": " ".join((doc or "").split()),
                "formula": str(pool[name](plain)),
            }
        )
    return InvariantOutcome(
        "invariant",
        h.variant,
        "houdini",
        Status.UNKNOWN if h.unknown else Status.PROVED,
        h.seconds,
        h.unknown or f"Houdini kept {len(h.proved)} of {len(pool)} candidates",
        assumptions=names_for("invariant"),
        conjuncts=kept,
        dropped=dict(sorted(h.dropped.items())),
    )


DEEP_DEPTH = 22
DEEP_TIMEOUT_FACTOR = 4
"""The accelerated search asks ONE query over every depth up to :data:`DEEP_DEPTH`
(:func:`bmc_window`) where iterative deepening would ask one per depth: it gets this
many per-query timeouts (``verify --timeout``; ``deep_timeout`` in ``--json``)."""
"""Depth of the accelerated search (:mod:`proofs.accel`) for what plain BMC leaves open."""
ACCEL_PROPS = ("rate_bounds", "rate_counter", "throttle")
"""The properties over the allocation counters: those that acceleration can bring closer."""


def check_variant(
    variant: Variant,
    props: list[str],
    *,
    timeout: float,
    depth: int,
    out_dir: Path | None,
    use_bmc: bool,
) -> list[Outcome]:
    """Prove what Houdini proves; look for counterexamples (BMC) to the rest.

    For FIXED (``use_bmc`` false) a property Houdini drops is a failure.  For any other
    variant Houdini runs over split lemmas (:mod:`vmballoon.proofs.lemmas`: a defect drops
    only the conjuncts it breaks); a property over the
    allocation counters (:data:`ACCEL_PROPS`) that plain BMC does not violate up to
    ``depth`` is searched again with acceleration up to :data:`DEEP_DEPTH` by a job of
    its own (:func:`deep_job`), which ``verify`` plans when this one is done.
    The first row is the invariant Houdini kept (:func:`invariant_row`); a property it
    proves has no time of its own (its time is the invariant's).
    """
    live = "progress" in props
    props = [n for n in props if n in PROPERTIES]
    split = variant.name != "fixed"
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
            outs.append(
                Outcome(name, variant.name, "induction", Status.PROVED, 0.0, detail, measured=False)
            )
        elif not use_bmc:
            where = h.dropped.get(name, "?")
            outs.append(
                Outcome(
                    name,
                    variant.name,
                    "induction",
                    Status.FAILED,
                    0.0,
                    f"not inductive: fails at {where}",
                    measured=False,
                )
            )
    rest = [n for n in props if n not in h.proved]
    if use_bmc and rest:
        outs.extend(bmc(rest, variant, depth=depth, timeout=timeout, out_dir=out_dir))
    if live:
        outs.append(
            progress_outcome(
                variant, h, use_bmc=use_bmc, depth=depth, timeout=timeout, out_dir=out_dir
            )
        )
    return [invariant_row(h, split), *outs]


def progress_outcome(
    variant: Variant,
    h: Houdini,
    *,
    use_bmc: bool,
    depth: int,
    timeout: float,
    out_dir: Path | None,
) -> Outcome:
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
            return Outcome(
                "progress",
                variant.name,
                "induction",
                Status.FAILED,
                0.0,
                f"the safety invariant is not inductive: {h.dropped}",
                measured=False,
            )
        p = pg.prove(variant, timeout)
        return Outcome("progress", variant.name, "induction", p.status, p.seconds, p.detail)
    r = pg.bmc_progress(variant, depth=depth, timeout=timeout, shortest=variant.name == "seed")
    o = Outcome("progress", variant.name, "bmc", r.status, r.seconds, depth=r.depth)
    if r.status == Status.NO_CEX:
        o.detail = f"no counterexample up to depth {depth} in the cooperative environment"
    if r.trace is not None:
        report_counterexample(
            o, r.trace, variant, out_dir, f" (cooperative host, target {r.target})"
        )
    return o


# -- bounded model checking ---------------------------------------------------------------------


class Bmc(NamedTuple):
    """One property's BMC answer: its status, the counterexample, the depth (of the
    counterexample; searched up to, without one) and its share of the solver time."""

    status: Status
    trace: Trace | None
    depth: int | None
    seconds: float


class _Shares:
    """Each query's seconds, divided among the properties it asked about."""

    def __init__(self, names: list[str]) -> None:
        self.todo = list(names)
        self.spent: dict[str, float] = dict.fromkeys(names, 0.0)

    def __call__(self, seconds: float) -> None:
        share = seconds / len(self.todo)
        for n in self.todo:
            self.spent[n] += share

    def rows(self, status: Status, depth: int) -> dict[str, Bmc]:
        """What is left: ``status`` up to ``depth``, for every property still open."""
        return {n: Bmc(status, None, depth, self.spent[n]) for n in self.todo}


def _bad(name: str, s: dict[str, Expr]) -> Expr:
    return z3.Not(PROPERTIES[name](s))


def bmc_all(
    names: list[str],
    variant: Variant,
    *,
    depth: int,
    timeout: float,
    accel: bool = False,
    start: int = 0,
) -> dict[str, Bmc]:
    """BMC of several properties over one unrolling (:class:`vmballoon.proofs.unrolling.Unrolling`).

    Iterative deepening (:func:`vmballoon.proofs.unrolling.shortest`, one depth a query):
    for each depth ``k`` from ``start``, ask for a state ``k`` steps from ``Init`` that
    violates one of the remaining properties; record every property the model violates
    at ``k`` and ask again, until unsat, then go one step deeper.  The depth at which a
    property is found is therefore the length of its shortest counterexample (in
    transitions of the encoding: with ``accel`` a step from ``I_LOOP`` may be ``k``
    allocations, :mod:`vmballoon.proofs.accel`; ``start`` is a depth below which nothing is
    to be found).  Properties never found are ``no-cex`` up to ``depth``; a solver
    ``unknown`` stops the search and is reported as such.  ``seconds`` is the property's
    share of the solver time: each query's time divided among the properties it asked
    about.
    """
    u = Unrolling({"s": variant}, depth, accel=accel)
    shares = _Shares(names)
    todo = shares.todo
    ask = query(
        u.steps,
        lambda lo, hi: [_bad(n, u.state(hi)) for n in todo],
        timeout=timeout,
        least=lambda m, lo, hi: lo,
        spent=shares,
        keep=True,
    )
    out: dict[str, Bmc] = {}
    last: list[Any] = []  # the last model, let go of after the solver (Unrolling.release)
    lo = start
    while todo:
        r = shortest(ask, lo, depth, window=False)
        if not r.found:
            out.update(shares.rows(Status.UNKNOWN if r.unknown else Status.NO_CEX, r.depth))
            break
        last[:], lo = [r.model], r.depth
        m = last[0]
        found = [n for n in todo if z3.is_true(m.eval(_bad(n, u.state(lo)), model_completion=True))]
        for name in found:
            out[name] = Bmc(Status.VIOLATED, u.trace(m, lo), lo, shares.spent[name])
            todo.remove(name)
        del r, m  # the model lives on in `last` only
    u.release(ask.close, last.clear, u.drop_states)
    return out


def bmc_window(
    names: list[str],
    variant: Variant,
    *,
    depth: int,
    timeout: float,
    accel: bool = True,
    pinned: bool = False,
) -> dict[str, Bmc]:
    """One query for a violation of any of ``names`` at ANY depth up to ``depth``.

    Cheaper than iterative deepening when the violation is deep (no unsat query at
    each shallower depth), at a price: the depth found is the least one of the
    solver's model, not necessarily the shortest counterexample.  Repeated for the
    properties still open.  ``no-cex`` means none up to ``depth`` (of the pinned
    system with ``pinned``, :data:`vmballoon.proofs.unrolling.PIN_BMC`: then it proves
    nothing about the full one).
    """
    u = Unrolling({"s": variant}, depth, accel=accel, pins=PIN_BMC if pinned else None)
    shares = _Shares(names)
    todo = shares.todo

    def hit_by(m: Any, n: str, k: int) -> bool:
        return bool(z3.is_true(m.eval(_bad(n, u.state(k)), model_completion=True)))

    def hit(m: Any, k: int) -> bool:
        return any(hit_by(m, n, k) for n in todo)

    def least(m: Any, lo: int, hi: int) -> int:
        return next(k for k in range(lo, hi + 1) if hit(m, k))

    ask = query(
        u.steps,
        lambda lo, hi: [_bad(n, u.state(k)) for n in todo for k in range(lo, hi + 1)],
        timeout=timeout,
        least=least,
        spent=shares,
        keep=True,
    )
    out: dict[str, Bmc] = {}
    while todo:
        a = ask(0, depth)
        if a.model is None:
            return {
                **out,
                **shares.rows(Status.UNKNOWN if a.result == z3.unknown else Status.NO_CEX, depth),
            }
        m, k = a.model, a.depth
        for n in [n for n in todo if hit_by(m, n, k)]:
            out[n] = Bmc(Status.VIOLATED, u.trace(m, k), k, shares.spent[n])
            todo.remove(n)
    return out


def deep_search(
    names: list[str], variant: Variant, *, depth: int, timeout: float
) -> dict[str, tuple[Bmc, str]]:
    """Accelerated BMC (:mod:`vmballoon.proofs.accel`) up to ``depth`` for what plain BMC left open.

    First over the pinned environment (:mod:`vmballoon.proofs.pinned`, a sound
    under-approximation: what it finds is a real trace, and cheap to find); what it
    does not find is searched again over every input, and only that second search
    may answer ``no-cex``.  Returns ``name -> (answer, how)``, ``how`` the search that
    answered (``pinned`` or ``full``).
    """
    first = bmc_window(names, variant, depth=depth, timeout=timeout, pinned=True)
    rest = [n for n in names if first[n].status != Status.VIOLATED]
    full = bmc_window(rest, variant, depth=depth, timeout=timeout, pinned=False) if rest else {}
    return {
        n: (full[n]._replace(seconds=full[n].seconds + first[n].seconds), "full")
        if n in full
        else (first[n], "pinned")
        for n in names
    }


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
        o.scenario = str(
            write_scenario(out_dir / f"{variant.name}.{o.prop}.scenario.json", scenario, meta)
        )


def write_scenario(path: Path, scenario: Scenario, meta: dict[str, Any]) -> Path:
    """Write ``scenario`` with its ``meta`` object (which replay ignores), deterministically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = scenario.to_json()
    assumed = meta.get("assumptions") or names_for(str(meta.get("property")))
    doc["meta"] = {**meta, "assumptions": list(assumed)}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def bmc(
    names: list[str],
    variant: Variant,
    *,
    depth: int,
    timeout: float,
    out_dir: Path | None,
    window: bool = False,
) -> list[Outcome]:
    """BMC of ``names`` on ``variant``; counterexamples replayed and written to ``out_dir``.

    Iterative deepening (:func:`bmc_all`: shortest counterexamples), or with ``window``
    one query over every depth up to ``depth`` (:func:`bmc_window`: cheaper, the depth
    is the solver's, not necessarily the shortest)."""
    if window:
        res = bmc_window(names, variant, depth=depth, timeout=timeout, accel=False)
    else:
        res = bmc_all(names, variant, depth=depth, timeout=timeout)
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
    names: list[str],
    variant: Variant,
    *,
    depth: int,
    timeout: float,
    out_dir: Path | None,
    plain_depth: int,
) -> list[Outcome]:
    """The accelerated search (:func:`deep_search`) for ``names``, which plain BMC did
    not violate up to ``plain_depth``; counterexamples replayed and written as by :func:`bmc`."""
    res = deep_search(names, variant, depth=depth, timeout=timeout)
    outs = []
    for name in names:
        (status, trace, k, secs), how = res[name]
        o = Outcome(name, variant.name, "accelerated", status, secs, depth=k)
        if status == Status.NO_CEX:
            o.detail = (
                f"no counterexample up to depth {plain_depth}, nor up to depth {depth} "
                "with accelerated inflate steps"
            )
        elif status == Status.UNKNOWN:
            o.detail = (
                f"no counterexample up to depth {plain_depth}; the accelerated search "
                f"up to depth {depth} timed out"
            )
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
            "vacuity",
            variant.name,
            "vacuity",
            Status.UNKNOWN if unknown else Status.FAILED,
            time.monotonic() - t0,
            f"Init ∧ Inv: solver unknown ({sol.reason_unknown()})"
            if unknown
            else "Init ∧ Inv unsat",
        )
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
        return {"prop": "conformance", "kind": "conformance", "status": self.status, **self.data}


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
    open_ = [
        r.prop
        for r in results
        if r.variant == "seed" and r.prop in ACCEL_PROPS and r.status == Status.NO_CEX
    ]
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
