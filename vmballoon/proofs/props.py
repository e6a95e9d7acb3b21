"""The properties of :mod:`vmballoon.model.properties` over the encoding's abstract state, and the
auxiliary invariants that make them inductive.

Each property is the per-frame reading of its concrete counterpart: the encoding
follows one arbitrary frame ``f``, so "for every frame" becomes "for the symbolic
frame".  ``progress`` is a liveness property under a cooperative host; its
obligations (cooperative environment, per-tick lemmas, ranking function) are in
:mod:`vmballoon.proofs.progress`, apart from the safety invariant they assume.
"""

from __future__ import annotations

from collections.abc import Callable

import z3

from vmballoon.core.protocol import (
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BATCHED_2M,
    MAX_REFUSED,
    PAGES_PER_2M,
    RATE_ALLOC_MAX,
    RATE_ALLOC_MIN,
    UINT_MAX,
)
from vmballoon.model.state import DEFLATE, INFLATE, Loc
from vmballoon.proofs.encoding import (
    L2,
    L4,
    NONE,
    OPS_BASIC,
    OPS_BATCHED,
    OPS_NULL,
    R2,
    R4,
    Expr,
    State,
    bv32,
    bv64,
    is_loc,
    loc_val,
    times_ps,
    well_formed,
)

Pred = Callable[[State], Expr]


def _b8(v: int) -> Expr:
    return z3.BitVecVal(v, 8)


def _listed(s: State, *lists: int) -> Expr:
    return z3.Or([s["f_list"] == _b8(x) for x in lists])


def _crashed(s: State) -> Expr:
    return s["loc"] == loc_val(Loc.CRASHED)


def _resting(s: State) -> Expr:
    return is_loc(s, Loc.IDLE, Loc.EXITED)


def accounting(s: State) -> Expr:
    """size == #4k + 512 * #2m (+ the deflate batch), mod 2**32 (line 281)."""
    flight = z3.If(is_loc(s, *DEFLATE), times_ps(s["l_num"], s["l_is2m"]), bv32(0))
    return z3.Or(_crashed(s), s["size"] == s["n4"] + s["n2"] * bv32(PAGES_PER_2M) + flight)


def free_order(s: State) -> Expr:
    """No free of f that the allocator rejects (double free, wrong order; 545-551)."""
    return z3.Not(s["bad_free"])


def no_leak(s: State) -> Expr:
    """Between ticks, f allocated => owned (a list or the batch page), and a 2 MiB block
    is never on a 4 KiB list nor the batch page (which would own only its first frame:
    :func:`vmballoon.model.properties.no_leak` counts the frames each owner covers)."""
    owned = z3.Or(s["f_list"] != _b8(NONE), s["f_bpage"])
    whole = z3.Not(z3.And(s["f_o9"], z3.Or(_listed(s, L4, R4), s["f_bpage"])))
    return z3.Implies(_resting(s), z3.Implies(s["f_alloc"], z3.And(owned, whole)))


def ownership(s: State) -> Expr:
    """f has at most one owner, and an owned f is allocated."""
    lst = s["f_list"] != _b8(NONE)
    one = z3.And(
        z3.Not(z3.And(lst, s["f_bpage"])),
        z3.Not(z3.And(lst, s["f_batch"])),
        z3.Not(z3.And(s["f_batch"], s["f_bpage"])),
    )
    alloc = z3.Implies(z3.Or(lst, s["f_bpage"], s["f_batch"]), s["f_alloc"])
    return z3.Or(_crashed(s), z3.And(one, alloc))


def no_crash(s: State) -> Expr:
    """No NULL ops / batch page / page used, no list_add of a listed page."""
    return z3.Not(_crashed(s))


def refused_bounds(s: State) -> Expr:
    """n_refused <= 16, the lists match the counters, and are empty between ticks."""
    cap = bv32(MAX_REFUSED)
    inv = z3.And(
        z3.ULE(s["n_ref0"], cap),
        z3.ULE(s["n_ref1"], cap),
        s["r4"] == s["n_ref0"],
        s["r2"] == s["n_ref1"],
    )
    empty = z3.And(s["n_ref0"] == bv32(0), s["n_ref1"] == bv32(0))
    return z3.Or(_crashed(s), z3.And(inv, z3.Implies(_resting(s), empty)))


def rate_bounds(s: State) -> Expr:
    """RATE_ALLOC_MIN <= rate_alloc <= RATE_ALLOC_MAX (66-68)."""
    return z3.And(
        z3.ULE(bv32(RATE_ALLOC_MIN), s["rate_alloc"]), z3.ULE(s["rate_alloc"], bv32(RATE_ALLOC_MAX))
    )


def rate_counter(s: State) -> Expr:
    """Inside inflate, allocations == pages allocated (883, 903, 916)."""
    return z3.Implies(is_loc(s, *INFLATE), s["l_alloc"] == s["l_allocated"])


def throttle(s: State) -> Expr:
    """Inside inflate with a finite rate, allocated <= rate (802-815)."""
    finite = s["l_rate"] != bv32(UINT_MAX)
    return z3.Implies(z3.And(is_loc(s, *INFLATE), finite), z3.ULE(s["l_allocated"], s["l_rate"]))


def host_agreement(s: State) -> Expr:
    """At IDLE with no reset pending, the host holds f iff f is on a balloon list; the guest
    never freed f while the host held it."""
    agree = z3.Implies(
        z3.And(s["loc"] == loc_val(Loc.IDLE), z3.Not(s["reset"])),
        s["f_host"] == _listed(s, L4, L2),
    )
    return z3.And(agree, z3.Not(s["freed_held"]))


def protocol(s: State) -> Expr:
    """No command outside what START negotiated; batched commands name the batch page."""
    return z3.Not(s["proto_bad"])


def doorbell_agreement(s: State) -> Expr:
    """A valid doorbell handle only after the host accepted it (1040-1052)."""
    return z3.Or(_crashed(s), z3.Implies(s["doorbell"], s["db_ok"]))


def target_from_host(s: State) -> Expr:
    """b->target only from responses with a SUCCESS status."""
    return s["target_ok"]


PROPERTIES: dict[str, Pred] = {
    "accounting": accounting,
    "free_order": free_order,
    "no_leak": no_leak,
    "ownership": ownership,
    "no_crash": no_crash,
    "refused_bounds": refused_bounds,
    "rate_bounds": rate_bounds,
    "rate_counter": rate_counter,
    "throttle": throttle,
    "host_agreement": host_agreement,
    "protocol": protocol,
    "doorbell_agreement": doorbell_agreement,
    "target_from_host": target_from_host,
}
"""Safety properties checked by Z3, by name (``progress``: :mod:`vmballoon.proofs.progress`)."""


# -- auxiliary invariants (strengthening for induction) ----------------------------------------


def _ops(s: State, v: int) -> Expr:
    return s["ops"] == _b8(v)


def _cap(s: State, field: str, bit: int) -> Expr:
    return (s[field] & bv64(bit)) != bv64(0)


def aux_loop_empty(s: State) -> Expr:
    """Outside inflate and deflate the loop's locals are those of EMPTY_LOOP."""
    empty = z3.And(
        *(s[n] == bv32(0) for n in ("l_rate", "l_alloc", "l_num", "l_err", "l_allocated", "ncur")),
        z3.Not(s["l_cansleep"]),
        z3.Not(s["l_is2m"]),
        z3.Not(s["f_cur"]),
        z3.Not(s["f_batch"]),
    )
    return z3.Or(is_loc(s, *INFLATE, *DEFLATE, Loc.CRASHED), empty)


def aux_batch(s: State) -> Expr:
    """The batch: f in it means it is not empty; its size is within the batch size;
    a 2 MiB batch only with batched ops; f in it has the batch's page size."""
    loops = is_loc(s, *INFLATE, *DEFLATE)
    num, mx = s["l_num"], s["batch_max"]
    bound = z3.And(
        z3.Implies(is_loc(s, Loc.I_LOOP, Loc.D_LOOP, Loc.I_FALLBACK), z3.ULT(num, mx)),
        z3.Implies(is_loc(s, Loc.I_LOCK, Loc.D_UNLOCK), num == mx),
        z3.Implies(is_loc(s, Loc.I_TAIL, Loc.D_TAIL), z3.ULE(num, mx)),
        z3.Implies(s["loc"] == loc_val(Loc.I_END), num == bv32(0)),
        z3.Implies(s["loc"] == loc_val(Loc.I_FALLBACK), s["l_is2m"]),
    )
    return z3.Or(
        _crashed(s),
        z3.And(
            z3.Implies(s["f_batch"], z3.And(z3.UGE(num, bv32(1)), s["f_o9"] == s["l_is2m"])),
            z3.Implies(loops, bound),
            z3.Implies(
                z3.And(loops, s["l_is2m"]), z3.And(_ops(s, OPS_BATCHED), s["supported"] == bv32(2))
            ),
            z3.Implies(
                z3.And(loops, _ops(s, OPS_BASIC), num != bv32(0)),
                z3.And(z3.Not(s["page_null"]), s["f_page"] == s["f_batch"]),
            ),
        ),
    )


def aux_ops(s: State) -> Expr:
    """The command set: negotiated by the last successful START whenever the driver works."""
    working = z3.Or(
        is_loc(s, *INFLATE, *DEFLATE, Loc.R_VMCI, Loc.R_GUEST_ID),
        z3.And(
            z3.Not(s["reset"]),
            is_loc(s, Loc.IDLE, Loc.W_BEGIN, Loc.W_TARGET, Loc.E_CLEANUP, Loc.E_START0),
        ),
    )
    resetting = is_loc(s, Loc.R_CLEANUP, Loc.R_POP, Loc.R_START, Loc.R_OPS, Loc.R_START0)
    cmd = z3.And(
        z3.Not(_ops(s, OPS_NULL)),
        _ops(s, OPS_BATCHED) == s["bpage"],
        s["batch_max"] == z3.If(_ops(s, OPS_BATCHED), bv32(512), bv32(1)),
        s["neg"] == s["caps"],
        _ops(s, OPS_BATCHED) == _cap(s, "caps", CAP_BATCHED),
        z3.Implies(_ops(s, OPS_BASIC), _cap(s, "caps", CAP_BASIC)),
        z3.Implies(
            s["supported"] == bv32(2), z3.And(_ops(s, OPS_BATCHED), _cap(s, "caps", CAP_BATCHED_2M))
        ),
    )
    two_m = z3.And(_cap(s, "caps", CAP_BATCHED_2M), _cap(s, "caps", CAP_BATCHED))
    return z3.And(
        z3.Implies(working, cmd),
        z3.Implies(resetting, s["reset"]),
        z3.Implies(s["bpage"], _ops(s, OPS_BATCHED)),
        z3.Implies(_ops(s, OPS_BASIC), z3.And(s["n2"] == bv32(0), z3.Not(_listed(s, L2, R2)))),
        z3.ULE(s["supported"], bv32(2)),
        z3.Implies(s["supported"] != bv32(0), (s["supported"] == bv32(2)) == two_m),
        z3.Implies(z3.Not(_ops(s, OPS_NULL)), s["supported"] != bv32(0)),
        z3.Implies(is_loc(s, Loc.R_OPS), z3.And(s["neg"] == s["caps"], s["supported"] != bv32(0))),
    )


def aux_frame(s: State) -> Expr:
    """Where f can be: listed at the right page size, cursor only inside its list, refused
    only inside inflate, allocated iff owned outside a tick; lists empty after pop."""
    return z3.Or(
        _crashed(s),
        z3.And(
            z3.Implies(_listed(s, L2, R2), s["f_o9"]),
            z3.Implies(_listed(s, L4, R4), z3.Not(s["f_o9"])),
            z3.Implies(s["f_bpage"], z3.Not(s["f_o9"])),
            z3.Implies(s["f_bpage"], s["bpage"]),
            z3.Implies(s["f_o9"], s["f_alloc"]),
            z3.Implies(s["f_alloc"], z3.Or(s["f_list"] != _b8(NONE), s["f_bpage"], s["f_batch"])),
            z3.Implies(
                s["f_cur"],
                z3.And(
                    is_loc(s, *DEFLATE),
                    s["f_list"] == z3.If(s["l_is2m"], _b8(L2), _b8(L4)),
                ),
            ),
            z3.Implies(
                z3.Not(is_loc(s, *INFLATE)),
                z3.And(
                    z3.Not(_listed(s, R4, R2)),
                    s["r4"] == bv32(0),
                    s["r2"] == bv32(0),
                    s["n_ref0"] == bv32(0),
                    s["n_ref1"] == bv32(0),
                ),
            ),
            z3.Implies(
                is_loc(
                    s, Loc.R_START, Loc.R_OPS, Loc.R_START0, Loc.R_VMCI, Loc.R_GUEST_ID, Loc.EXITED
                ),
                z3.And(s["n4"] == bv32(0), s["n2"] == bv32(0), z3.Not(_listed(s, L4, L2))),
            ),
            z3.Implies(
                is_loc(s, Loc.R_START, Loc.R_OPS, Loc.R_START0, Loc.EXITED),
                z3.And(z3.Not(s["f_bpage"]), z3.Not(s["bpage"])),
            ),
            z3.Implies(s["loc"] == loc_val(Loc.EXITED), z3.Not(s["bpage"])),
        ),
    )


def aux_host(s: State) -> Expr:
    """The host holds f only while f is ballooned, never with a reset pending, and holds
    every ballooned f while the driver works."""
    in_balloon = z3.Or(_listed(s, L4, L2), z3.And(s["f_batch"], is_loc(s, *DEFLATE)))
    working = z3.And(
        z3.Not(s["reset"]),
        z3.Not(is_loc(s, Loc.E_START0, Loc.E_POP, Loc.EXITED, Loc.CRASHED)),
    )
    return z3.And(
        z3.Implies(s["f_host"], z3.And(in_balloon, s["f_alloc"])),
        z3.Implies(s["reset"], z3.Not(s["f_host"])),
        z3.Implies(is_loc(s, Loc.E_POP, Loc.EXITED), z3.Not(s["f_host"])),
        z3.Implies(working, z3.Implies(in_balloon, s["f_host"])),
        z3.Implies(z3.And(s["reset"], is_loc(s, *INFLATE, *DEFLATE)), s["l_num"] == bv32(0)),
    )


def aux_rate(s: State) -> Expr:
    """At the loop head the rate has not been reached; a finite rate is rate_alloc-sized."""
    return z3.And(
        z3.Implies(is_loc(s, Loc.I_LOOP, Loc.I_FALLBACK), z3.ULT(s["l_alloc"], s["l_rate"])),
        z3.Implies(is_loc(s, Loc.I_LOCK), z3.ULE(s["l_alloc"], s["l_rate"])),
        z3.Implies(is_loc(s, Loc.I_LOOP, Loc.I_FALLBACK, Loc.I_LOCK), s["l_err"] == bv32(0)),
    )


AUX: dict[str, Pred] = {
    "aux_loop_empty": aux_loop_empty,
    "aux_batch": aux_batch,
    "aux_ops": aux_ops,
    "aux_frame": aux_frame,
    "aux_host": aux_host,
    "aux_rate": aux_rate,
    "well_formed": well_formed,
}
"""Auxiliary invariants: lemmas that strengthen the properties until they are inductive."""
