"""Acceleration: ``k`` successful allocations of the inflate loop in one transition.

Violations that need hundreds of allocations in one ``vmballoon_inflate`` call (the
seed's throttle defect needs more than ``rate_alloc >= 512`` of them) are far beyond
a bounded model checker that takes one allocation per step.  :func:`accelerated`
summarises ``k`` iterations of ``t_inflate_loop`` (lines 833-907), ``k`` symbolic,
each a successful allocation of a page other than the frame ``f``, in one
transition of the encoding: exactly the effect of the ``k`` model steps, under the
condition that none of the first ``k - 1`` leaves the loop (the batch is not full,
the target is not reached, the rate is not hit).  It applies to the batched ops
(with basic ops the batch holds one page, so every allocation is followed by a
lock anyway).  BMC (:func:`proofs.check.bmc_all` with ``accel=True``) may take it
from ``I_LOOP`` instead of the ordinary step; a conformance test compares it with
``k`` model steps on concrete states.
"""

from __future__ import annotations

import z3

from vmballoon.core.variants import Variant
from vmballoon.model.state import Loc
from vmballoon.proofs.encoding import (
    OPS_BATCHED,
    B,
    Expr,
    State,
    Step,
    bv32,
    loc_val,
    transition,
)

ACC_INPUTS: tuple[tuple[str, int | str], ...] = (("acc", B), ("acc_k", 32))
"""Per step: whether the accelerated transition is taken, and its number of allocations."""


def make_acc_inputs(prefix: str) -> State:
    """Fresh constants for the acceleration inputs of one step."""
    return {n: z3.Bool(prefix + n) if k == B else z3.BitVec(prefix + n, k) for n, k in ACC_INPUTS}


def _z64(x: Expr) -> Expr:
    return z3.ZeroExt(32, x)


def _times_ps(x: Expr, is2m: Expr) -> Expr:
    """``x * vmballoon_page_size(is2m)`` as a shift, not a multiplier (cheaper to bit-blast)."""
    return z3.If(is2m, x << 9, x)


def accelerated(s: State, a: State, variant: Variant) -> Step:
    """``k = a["acc_k"]`` iterations of ``t_inflate_loop`` from ``s`` (at ``I_LOOP``)."""
    k = a["acc_k"]
    k64 = _z64(k)
    counts = variant.has("count_allocations")
    num64 = _z64(s["l_num"])
    # allocations after the (k-1)-th iteration: below the rate, or no exit at all
    before_last = _z64(s["l_alloc"]) + (k64 - 1 if counts else z3.BitVecVal(0, 64))
    cons = [
        z3.UGE(k, bv32(1)),
        z3.ULE(k, bv32(512)),
        z3.Not(s["reset"]),
        s["ops"] == z3.BitVecVal(OPS_BATCHED, 8),
        s["bpage"],
        # the batch fills up at the k-th allocation at the latest (num + k <= batch_max)
        z3.ULE(num64 + k64, _z64(s["batch_max"])),
        # the target is not reached before any of the k allocations (no wrap-around)
        z3.ULT(_z64(s["size"]) + _times_ps(num64 + k64 - 1, s["l_is2m"]), _z64(s["target"])),
        # the rate does not stop the loop before the k-th allocation
        z3.Or(k == bv32(1), z3.ULT(before_last, _z64(s["l_rate"]))),
    ]
    post = dict(s)
    alloc = s["l_alloc"] + (k if counts else bv32(0))
    num = s["l_num"] + k
    post["l_alloc"] = alloc
    post["l_allocated"] = s["l_allocated"] + k
    post["l_num"] = num
    post["loc"] = z3.If(
        num == s["batch_max"],
        loc_val(Loc.I_LOCK),
        z3.If(z3.UGE(alloc, s["l_rate"]), loc_val(Loc.I_TAIL), loc_val(Loc.I_LOOP)),
    )
    return Step(post, cons)


def transition_acc(
    s: State, i: State, a: State, t: State, variant: Variant, locs: frozenset[Loc] | None = None
) -> Expr:
    """``T`` of :func:`proofs.encoding.transition`, or from ``I_LOOP`` the accelerated step."""
    normal = transition(s, i, t, variant, locs)
    if locs is not None and Loc.I_LOOP not in locs:
        return z3.And(z3.Not(a["acc"]), normal)
    st = accelerated(s, a, variant)
    take = z3.And(a["acc"], s["loc"] == loc_val(Loc.I_LOOP))
    fast = z3.And(*st.cons, *(t[n] == e for n, e in st.post.items()))
    return z3.And(
        z3.Implies(a["acc"], s["loc"] == loc_val(Loc.I_LOOP)),
        z3.If(take, fast, normal),
    )


__all__ = ["ACC_INPUTS", "accelerated", "make_acc_inputs", "transition_acc"]
