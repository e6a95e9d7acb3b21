"""Candidate lemmas for Houdini on variants other than FIXED (the seed above all).

The auxiliary invariants of :mod:`vmballoon.proofs.props` are written for FIXED: each is a
conjunction, and on the seed some conjuncts fail (the seed's defects break them), so
Houdini drops the whole lemma and with it the properties it supported.  Here each
lemma is *split* into its conjuncts (:func:`split`, mechanically: through ``And``,
the consequent of ``Implies`` and the disjuncts of ``Or``), so that Houdini keeps
every conjunct that still holds.  The split conjuncts are derived, not written; the
few lemmas of :data:`SEED_LEMMAS` are written by hand for what only the seed needs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import z3

from vmballoon.core.protocol import BATCH_MAX_PAGES
from vmballoon.model.state import DEFLATE, INFLATE, Loc
from vmballoon.proofs.encoding import (
    FIELD_NAMES,
    L2,
    OPS_BASIC,
    OPS_BATCHED,
    OPS_NULL,
    R2,
    Expr,
    State,
    bv32,
    is_loc,
    loc_val,
    make_state,
)
from vmballoon.proofs.props import AUX, PROPERTIES
from vmballoon.proofs.zeval import nodes

Pred = Callable[[State], Expr]
_TEMPLATE = make_state("lemma_")


def split(e: Expr) -> list[Expr]:
    """The conjuncts of ``e``: ``And`` split, ``Implies(a, b)`` and ``Or(.., b)`` split in ``b``."""
    if z3.is_and(e):
        return [x for c in e.children() for x in split(c)]
    if z3.is_implies(e):
        a, b = e.children()
        parts = split(b)
        return [z3.Implies(a, p) for p in parts] if len(parts) > 1 else [e]
    if z3.is_or(e):
        cs = e.children()
        for k, c in enumerate(cs):
            parts = split(c)
            if len(parts) > 1:
                rest = cs[:k] + cs[k + 1 :]
                return [x for p in parts for x in split(z3.Or(*rest, p))]
    return [e]


def _fields_of(e: Expr) -> list[str]:
    """The template fields ``e`` mentions, in :data:`FIELD_NAMES` order."""
    seen = {x.decl().name() for x in nodes(e, lambda x: True) if z3.is_const(x)}
    return [n for n in FIELD_NAMES if _TEMPLATE[n].decl().name() in seen]


def _as_pred(e: Expr) -> Pred:
    """``e`` over the template state as a predicate on any state: the fields it mentions
    replaced (only those: substituting every field made Houdini's candidates its
    slowest step)."""
    names = _fields_of(e)

    def pred(s: State) -> Expr:
        return z3.substitute(e, *[(_TEMPLATE[n], s[n]) for n in names])

    return pred


def seed_n2(s: State) -> Expr:
    """Without batched ops nothing is on the 2 MiB lists (only batched commands add to them;
    the seed may run 2 MiB loops with basic or no ops, line 344-347)."""
    return z3.Implies(
        s["ops"] != z3.BitVecVal(OPS_BATCHED, 8),
        z3.And(
            s["n2"] == bv32(0),
            s["f_list"] != z3.BitVecVal(L2, 8),
            s["f_list"] != z3.BitVecVal(R2, 8),
        ),
    )


def seed_deflate_2m(s: State) -> Expr:
    """A 2 MiB deflate pass without batched ops walks an empty list: no batch, no cursor."""
    return z3.Implies(
        z3.And(is_loc(s, *DEFLATE), s["l_is2m"], s["ops"] != z3.BitVecVal(OPS_BATCHED, 8)),
        z3.And(s["l_num"] == bv32(0), s["ncur"] == bv32(0), z3.Not(s["f_cur"])),
    )


def seed_batch(s: State) -> Expr:
    """The batch size follows ``ops`` (0 with no ops: the seed may run a loop with NULL
    ops, lines 1078-1092), and with ops the batch stays within the batch size."""
    ops = s["ops"]
    num, mx = s["l_num"], s["batch_max"]
    bound = z3.And(
        z3.Implies(is_loc(s, Loc.I_LOOP, Loc.D_LOOP, Loc.I_FALLBACK), z3.ULT(num, mx)),
        z3.Implies(is_loc(s, Loc.I_LOCK, Loc.D_UNLOCK), num == mx),
        z3.Implies(is_loc(s, Loc.I_TAIL, Loc.D_TAIL), z3.ULE(num, mx)),
        z3.Implies(s["loc"] == loc_val(Loc.I_END), num == bv32(0)),
    )
    return z3.Or(
        s["loc"] == loc_val(Loc.CRASHED),
        z3.And(
            z3.Implies(ops == z3.BitVecVal(OPS_BASIC, 8), mx == bv32(1)),
            z3.Implies(ops == z3.BitVecVal(OPS_BATCHED, 8), mx == bv32(BATCH_MAX_PAGES)),
            z3.Implies(ops == z3.BitVecVal(OPS_NULL, 8), mx == bv32(0)),
            z3.Implies(
                z3.And(is_loc(s, *INFLATE, *DEFLATE), ops != z3.BitVecVal(OPS_NULL, 8)), bound
            ),
        ),
    )


SEED_LEMMAS: dict[str, Pred] = {
    "seed_n2": seed_n2,
    "seed_deflate_2m": seed_deflate_2m,
    "seed_batch": seed_batch,
}
"""Hand-written candidates for the seed (Houdini keeps them only where they are inductive)."""


def candidates() -> dict[str, Pred]:
    """The properties, every conjunct of every auxiliary lemma, and the seed lemmas."""
    return dict(_candidates())


@functools.cache
def _candidates() -> dict[str, Pred]:
    """:func:`candidates`, split once per process (a copy goes out)."""
    out: dict[str, Pred] = dict(PROPERTIES)
    for name, lemma in AUX.items():
        parts = split(lemma(_TEMPLATE))
        if len(parts) == 1:
            out[name] = lemma
            continue
        for k, part in enumerate(parts):
            out[f"{name}.{k}"] = _as_pred(part)
    for name, lemma in SEED_LEMMAS.items():
        parts = split(lemma(_TEMPLATE))
        for k, part in enumerate(parts):
            out[f"{name}.{k}" if len(parts) > 1 else name] = _as_pred(part)
    return out


def formula(name: str) -> str:
    """The candidate's formula over a state whose fields are named plainly."""
    plain = make_state("")
    return str(candidates()[name](plain))


__all__ = ["SEED_LEMMAS", "candidates", "formula", "split"]
