"""Input-completeness of the encoding: it admits every input the environment can give.

A proof about the encoding covers a behaviour of the model only if the encoding admits
the step the model takes.  The witness check (:mod:`vmballoon.proofs.witness`) samples steps the
encoding allows; it cannot see inputs the encoding's ``tx.assume`` calls exclude, since
its witnesses are drawn from the encoding.  This check asks Z3 instead, for every
location ``L`` of the variant:

    ``Inv(s) ∧ loc = L ∧ Contract(s, i) ∧ ¬C_L(s, i)``  is unsatisfiable,

where ``Inv`` is the proved invariant (FIXED: the conjuncts of
:func:`vmballoon.proofs.solver.invariant`; another variant: every state the concretization can
build, :func:`vmballoon.proofs.concretize.representable`, more than its proofs speak of), ``C_L``
the step's input constraints (the conjunction of its ``tx.assume`` calls) and
``Contract`` (:func:`contract`) the **environment contract**:
what the abstraction of a concrete step can read as inputs when the host, the allocator
and VMCI answer anything the scenario format allows (any 64-bit status and result, any
batch entries, any allocation success or failure, any ``vmci_doorbell_create`` answer,
any of the three entry points).  The contract is written here from the scenario format
and :func:`vmballoon.proofs.abstraction.step_inputs`, not from the encoding; it constrains no
status or result at all.

Each ``tx.assume`` also gets its own target (``Inv ∧ loc = L ∧ Contract ∧ active ∧
¬cond``), so a report names the assumption that excludes an input.  An exclusion is
accepted only where the excluded inputs are **exactly** a named assumption of
:mod:`vmballoon.core.assumptions` (both directions checked by Z3 over ``Inv ∧ Contract``),
and that name is then listed with the result (:attr:`Completeness.rests_on`); today no
step of SEED or FIXED needs one.  A solver ``unknown`` is never "admitted".
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from types import ModuleType
from typing import Any

import z3

from vmballoon.core.assumptions import BY_NAME
from vmballoon.core.variants import FIXED, Variant
from vmballoon.model.state import Loc
from vmballoon.proofs import encoding as default_encoding
from vmballoon.proofs.solver import invariant, qfbv_solver
from vmballoon.proofs.witness import Status

Expr = Any
State = dict[str, Expr]
InputAssumption = Callable[[State, State], Expr]
"""A named assumption as a constraint on one step (state, inputs)."""

CLS_WARN = 3  # the last of the four classes of a batch entry's status (proofs.encoding)
PAGES_PER_2M = 512


def _b8(v: int) -> Expr:
    return z3.BitVecVal(v, 8)


def _b32(v: int) -> Expr:
    return z3.BitVecVal(v, 32)


def contract(s: State, i: State, enc: ModuleType = default_encoding) -> Expr:
    """The inputs α can read off a concrete step from a state whose abstraction is ``s``.

    Clause by clause (:func:`vmballoon.proofs.abstraction.step_inputs`):

    * ``entry``: one of the three entry points (work 0, doorbell 1, exit 2).
    * Statuses and results of every command: anything (no clause).
    * Batch entries: only a batched command of a non-empty batch at a lock or unlock
      location reads them; its ``num_pages`` entries are each of one class, so the
      counts of the other pages' classes plus f's entry sum to ``num_pages``; f's class
      is one of four and its rank counts the refusable entries before it; without f in
      the batch both are 0; where the command does not name the batch page or the host
      wrote no statuses, the driver reads back the PFNs it wrote (low 12 bits 0: every
      entry OK, lines 179-191).
    * Allocations: the pool hands out only free frames (``a_f``: f is not out), order-9
      blocks 512-aligned (``vmballoon/core/env.py``); ``a_eqpage``, ``a_hi`` name a page other
      than f, so a successful allocation; ``a_eqpage`` names the (non-NULL) b->page.
    * The deflate cursor's head: f only if f is in the cursor, and f if it is all that
      is left; ``h_hi`` names a head other than f.
    """
    is2m = s["l_is2m"]
    num = s["l_num"]
    fb = z3.If(s["f_batch"], _b32(1), _b32(0))
    batched = s["ops"] == _b8(enc.OPS_BATCHED)
    at_lock = enc.is_loc(s, Loc.I_LOCK, Loc.I_FALLBACK, Loc.I_TAIL, Loc.D_UNLOCK, Loc.D_TAIL)
    counts = (i["e_ok"], i["e_ref"], i["e_free"], i["e_warn"])
    entries = z3.And(
        i["e_ok"] + i["e_ref"] + i["e_free"] + i["e_warn"] + fb == num,
        *(z3.ULE(c, num) for c in counts),
        z3.ULE(i["f_cls"], _b8(CLS_WARN)),
        z3.Implies(z3.Not(s["f_batch"]), z3.And(i["f_cls"] == _b8(0), i["f_rank"] == _b32(0))),
        z3.ULE(i["f_rank"], i["e_ref"]),
    )
    return z3.And(
        z3.ULE(i["entry"], _b8(2)),
        z3.Implies(z3.And(at_lock, batched), entries),
        z3.Implies(i["a_f"], z3.And(i["a_ok"], z3.Not(s["f_alloc"]))),
        z3.Implies(
            z3.And(i["a_f"], is2m, s["loc"] == enc.loc_val(Loc.I_LOOP)),
            z3.Extract(8, 0, s["f_pfn"]) == z3.BitVecVal(0, 9),
        ),
        z3.Implies(
            i["a_eqpage"],
            z3.And(i["a_ok"], z3.Not(i["a_f"]), z3.Not(s["page_null"]), z3.Not(s["f_page"])),
        ),
        z3.Implies(i["a_hi"], z3.And(i["a_ok"], z3.Not(i["a_f"]))),
        z3.Implies(i["h_f"], s["f_cur"]),
        z3.Implies(z3.And(s["f_cur"], s["ncur"] == _b32(1)), i["h_f"]),
        z3.Implies(i["h_hi"], z3.Not(i["h_f"])),
    )


def not_written(s: State, i: State, variant: Variant, enc: ModuleType) -> Expr:
    """The host wrote no statuses the driver reads: the command did not name the batch page
    (what the C sends, :func:`vmballoon.proofs.encoding._batch_arg_is_batch_page`) or came back
    without entries; then every entry reads OK (lines 179-191)."""
    tx = enc.SymTx(s, i, variant)
    named = enc._batch_arg_is_batch_page(tx)
    return z3.Not(z3.And(named, i["e_present"]))


def full_contract(s: State, i: State, variant: Variant, enc: ModuleType) -> Expr:
    """:func:`contract` with the read-back of unwritten batches (which depends on the C's
    choice of the batch PFN, so on the variant)."""
    ok_only = z3.And(
        i["e_ref"] == _b32(0), i["e_free"] == _b32(0), i["e_warn"] == _b32(0), i["f_cls"] == _b8(0)
    )
    batched = s["ops"] == _b8(enc.OPS_BATCHED)
    return z3.And(
        contract(s, i, enc),
        z3.Implies(z3.And(batched, not_written(s, i, variant, enc)), ok_only),
    )


# -- named assumptions over one step (none needed today) --------------------------------------

INPUT_ASSUMED: dict[str, InputAssumption] = {}
"""Named assumptions of :mod:`vmballoon.core.assumptions` as constraints on a step, for the
exclusions the encoding is allowed to make (keys are names of ``BY_NAME``)."""


# -- the check --------------------------------------------------------------------------------


class SiteStatus(Enum):
    ADMITTED = "admitted"  # every contract input satisfies the constraint
    EXCLUDED = "excluded"  # some contract input is excluded, by no named assumption
    RESTS_ON = "rests-on"  # the excluded inputs are exactly a named assumption
    UNKNOWN = "unknown"  # the solver gave up


@dataclass
class Site:
    """One target: a ``tx.assume`` at one location, or a location's whole constraint."""

    loc: str
    where: str  # "function:line" of the ``tx.assume``, or "all" for the conjunction
    status: SiteStatus
    assumption: str | None = None
    excluded: dict[str, int | bool] = field(default_factory=dict)  # an excluded input
    cond: Expr | None = None  # the assumed condition (None for "all")

    @property
    def site(self) -> str:
        """``function:line: condition`` (the condition simplified, at most 160
        characters in all), or ``all``: written only when asked (printing a term costs
        more than deciding it)."""
        if self.cond is None:
            return self.where
        return " ".join(f"{self.where}: {z3.simplify(self.cond)}".split())[:160]


@dataclass
class Completeness:
    """Input-completeness of one variant's encoding."""

    variant: str
    sites: list[Site]
    seconds: float
    invariant: str  # which state set: "the proved invariant" or "every well-formed state"

    @property
    def status(self) -> Status:
        if any(x.status == SiteStatus.EXCLUDED for x in self.sites):
            return Status.FAILED
        if any(x.status == SiteStatus.UNKNOWN for x in self.sites):
            return Status.UNKNOWN
        return Status.PASSED

    @property
    def rests_on(self) -> list[str]:
        """The named assumptions some step's admitted inputs rest on."""
        return sorted({x.assumption for x in self.sites if x.assumption and x.site != "all"})

    def problems(self) -> list[str]:
        out = []
        for x in self.sites:
            if x.status == SiteStatus.EXCLUDED:
                shown = {k: v for k, v in x.excluded.items() if k.startswith("i_")}
                out.append(
                    f"{x.loc}: the encoding excludes inputs the environment contract "
                    f"allows: {x.site}; e.g. {shown}"
                )
            elif x.status == SiteStatus.UNKNOWN:
                out.append(f"{x.loc}: solver unknown: {x.site}")
        return out

    def line(self) -> str:
        admitted = sum(x.status != SiteStatus.EXCLUDED for x in self.sites)
        rest = f"; rests on {', '.join(self.rests_on)}" if self.rests_on else ""
        return (
            f"input-completeness ({self.variant}): from {self.invariant}, every input the "
            f"environment contract allows is admitted at {admitted}/{len(self.sites)} "
            f"assume sites and locations{rest} ({self.seconds:.1f}s): "
            f"{self.status.value}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "status": self.status.value,
            "sites": len(self.sites),
            "excluded": sum(x.status == SiteStatus.EXCLUDED for x in self.sites),
            "rests_on": self.rests_on,
            "seconds": round(self.seconds, 1),
            "problems": self.problems(),
        }


def _assume_sites(
    loc: Loc, variant: Variant, enc: ModuleType, s: State, i: State
) -> tuple[list[tuple[str, Expr, Expr]], Expr]:
    """Every ``tx.assume`` of the step out of ``loc``: (``function:line``, active,
    condition); and C_L."""
    found: list[tuple[str, Expr, Expr]] = []

    class Recorder(enc.SymTx):  # type: ignore[name-defined,misc]
        def assume(self, cond: Expr) -> None:
            fr = sys._getframe(1)
            found.append((f"{fr.f_code.co_name}:{fr.f_lineno}", self.active(), cond))
            super().assume(cond)

    tx = Recorder(s, i, variant)
    enc.TRANSITIONS[loc](tx)
    cons = z3.And(*tx.cons) if tx.cons else z3.BoolVal(True)
    return found, cons


def _values(m: Any, consts: dict[str, Expr], prefix: str) -> dict[str, int | bool]:
    out: dict[str, int | bool] = {}
    for n, c in consts.items():
        v = m.eval(c, model_completion=True)
        out[prefix + n] = z3.is_true(v) if z3.is_bool(c) else int(v.as_long())
    return out


def check(
    variant: Variant,
    enc: ModuleType = default_encoding,
    locs: list[Loc] | None = None,
    timeout_ms: int = 30_000,
    named: Mapping[str, InputAssumption] | None = None,
    inv: Callable[[State], Expr] | None = None,
) -> Completeness:
    """Input-completeness of ``variant``'s encoding at every location (see the module doc).

    ``named``: the named assumptions an exclusion may equal (default
    :data:`INPUT_ASSUMED`; every key must be a name of :mod:`vmballoon.core.assumptions`);
    ``inv``: the states to check from (default: the proved invariant for FIXED,
    :func:`vmballoon.proofs.concretize.representable` otherwise)."""
    named = INPUT_ASSUMED if named is None else named
    unknown_names = [n for n in named if n not in BY_NAME]
    if unknown_names:
        raise ValueError(f"not assumptions of vmballoon/core/assumptions.py: {unknown_names}")
    t0 = time.monotonic()
    if inv is None:
        if variant == FIXED:
            inv, what = invariant, "every state of the proved invariant"
        else:  # SEED's own invariant is what Houdini keeps; every state γ can build is more
            from vmballoon.proofs.concretize import representable

            inv, what = representable, "every state the concretization can build"
    else:
        what = "the given states"
    s, i = enc.make_state("s_"), enc.make_inputs("i_")
    base = z3.And(inv(s), full_contract(s, i, variant, enc))
    out: list[Site] = []
    for loc in locs or list(enc.TRANSITIONS):
        found, cons = _assume_sites(loc, variant, enc, s, i)
        sol = qfbv_solver(timeout_ms / 1000)
        sol.add(base, s["loc"] == enc.loc_val(loc))
        here: list[Site] = []
        for where, active, cond in found:
            site = _decide(sol, loc, where, active, z3.Not(cond), s, i, named)
            site.cond = cond
            here.append(site)
        # the location as a whole: no input outside the named assumptions its sites rest on
        names = sorted({x.assumption for x in here if x.assumption is not None})
        whole = z3.And(z3.Not(cons), *(named[n](s, i) for n in names))
        last = _decide(sol, loc, "all", z3.BoolVal(True), whole, s, i, {})
        if last.status == SiteStatus.ADMITTED and names:
            last = Site(loc.name, "all", SiteStatus.RESTS_ON, ", ".join(names))
        out += [*here, last]
    return Completeness(variant.name, out, time.monotonic() - t0, what)


def _decide(
    sol: Any,
    loc: Loc,
    name: str,
    active: Expr,
    bad: Expr,
    s: State,
    i: State,
    named: Mapping[str, InputAssumption],
) -> Site:
    """Whether an input the encoding excludes (``active ∧ bad``) is possible under the
    contract; if so, whether the excluded inputs are exactly those a named assumption
    excludes on the same paths (``active ∧ ¬A``)."""
    excluded = z3.And(active, bad)
    with _pushed(sol, excluded):
        r = sol.check()
        if r == z3.unsat:
            return Site(loc.name, name, SiteStatus.ADMITTED)
        if r != z3.sat:
            return Site(loc.name, name, SiteStatus.UNKNOWN)
        example = {**_values(sol.model(), s, "s_"), **_values(sol.model(), i, "i_")}
    for aname, a in named.items():
        by_a = z3.And(active, z3.Not(a(s, i)))
        same = True
        for q in (z3.And(excluded, z3.Not(by_a)), z3.And(by_a, z3.Not(excluded))):
            with _pushed(sol, q):
                r = sol.check()
            if r == z3.unknown:
                return Site(loc.name, name, SiteStatus.UNKNOWN)
            same = same and r == z3.unsat
        if same:
            return Site(loc.name, name, SiteStatus.RESTS_ON, aname)
    return Site(loc.name, name, SiteStatus.EXCLUDED, excluded=example)


@contextmanager
def _pushed(sol: Any, e: Expr) -> Iterator[None]:
    sol.push()
    sol.add(e)
    try:
        yield
    finally:
        sol.pop()


__all__ = [
    "INPUT_ASSUMED",
    "Completeness",
    "InputAssumption",
    "Site",
    "SiteStatus",
    "check",
    "contract",
    "default_encoding",
    "full_contract",
]
