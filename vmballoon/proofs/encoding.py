"""The model's transitions as Z3 formulas, over an abstraction of its states.

The abstract state (:data:`FIELDS`) keeps the driver's scalar fields at their C
widths (``BitVec(32)`` for ``unsigned int``, ``BitVec(64)`` for capabilities and
PFNs, so wrap-around is modelled), the locals of the loop in progress, ghost
counters for the page lists (how many pages each list holds), and everything
about ONE arbitrary symbolic frame ``f``: whether the allocator has it out and at
which order, which list holds it, whether it is in the batch in flight, the batch
page, ``b->page``, held by the host.  Nothing depends on the size of RAM or on a
number of ticks: a property proved for an arbitrary ``f`` holds for every frame.

Everything outside the driver is a free input of each step (:data:`INPUTS`):
the status and result of each backdoor command, how the entries of a batch come
back (counts per outcome for the other pages, the outcome and rank of ``f``'s),
whether an allocation succeeds and whether it returns ``f``, whether
``vmci_doorbell_create`` succeeds, whether the head of the list a deflate walks
is ``f``.  Facts about pages other than ``f`` that the driver's state does not
determine are inputs too (over-approximation: sound for safety).

One function per control location builds the successor (:func:`successor`),
mirroring :mod:`vmballoon.model.transitions` line by line; :func:`transition` is the
relation ``T(s, i, s')``.  The conformance tests check, on random concrete
states of the model, that the successor of the abstraction is the abstraction of
the successor.

Modelling choices:

* A crash (``Loc.CRASHED``) stops the guest: only the location is meaningful
  after it; the other fields are whatever the step computed.
* ``f`` is the first frame of an allocation; frames inside a 2 MiB block are the
  block's.  Environment assumption: PFNs are below 2**52 (a 64-bit physical
  address), so a batch entry ``pfn << 12`` reads back the same PFN (lines 179-185).
* Transition checks of :mod:`vmballoon.model.properties` become sticky ghost flags of the
  state (``bad_free``, ``freed_held``, ``proto_bad``), so every property is a
  state invariant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import z3

from vmballoon.core import assumptions as asm
from vmballoon.core.protocol import (
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BATCHED_2M,
    CAP_SIGNALLED_WAKEUP,
    CAPABILITIES,
    EIO,
    ERROR_PPN_NOTNEEDED,
    ERROR_RESET,
    MAX_REFUSED,
    PAGES_PER_2M,
    RATE_ALLOC_INC,
    RATE_ALLOC_MAX,
    RATE_ALLOC_MIN,
    SLOW_CYCLES,
    SUCCESS_WITH_CAPABILITIES,
    U32_MASK,
    UINT_MAX,
)
from vmballoon.core.variants import Variant
from vmballoon.model.state import Loc

Expr = Any  # z3.ExprRef (z3 ships no type stubs)
State = dict[str, Expr]

# f's list (f_list)
NONE, L4, L2, R4, R2 = 0, 1, 2, 3, 4
# ops
OPS_NULL, OPS_BASIC, OPS_BATCHED = 0, 1, 2
# class of a batch entry's status as the driver reads it (lines 654-681, 735-746)
CLS_OK, CLS_REFUSE, CLS_FREE, CLS_WARN = 0, 1, 2, 3
PFN_LIMIT = asm.PFN_LIMIT
"""Environment assumption ``pfn_below_2_52`` (:mod:`vmballoon.core.assumptions`)."""

B = "bool"
FIELDS: tuple[tuple[str, int | str], ...] = (
    ("loc", 8),
    # struct vmballoon (lines 274-314)
    ("size", 32),
    ("target", 32),
    ("rate_alloc", 32),
    ("slow", 32),
    ("reset", B),
    ("caps", 64),
    ("supported", 32),
    ("batch_max", 32),
    ("ops", 8),
    ("n_ref0", 32),
    ("n_ref1", 32),
    ("bpage", B),  # batch_page != NULL
    ("page_null", B),  # b->page == NULL
    ("page_hi", B),  # page_to_pfn(b->page) does not fit in 32 bits
    ("page_eq_batch", B),  # b->page is the batch page
    ("doorbell", B),  # the doorbell handle is valid
    ("warned", B),
    # locals of vmballoon_inflate / vmballoon_deflate
    ("l_rate", 32),
    ("l_alloc", 32),  # allocations
    ("l_num", 32),  # num_pages
    ("l_err", 32),  # error (int, two's complement)
    ("l_cansleep", B),
    ("l_is2m", B),
    ("l_allocated", 32),  # ghost: pages allocated by this inflate call
    # ghost counters
    ("n4", 32),  # pages on the 4 KiB balloon list (with a deflate's cursor / re-added)
    ("n2", 32),
    ("r4", 32),  # pages on the refused lists
    ("r2", 32),
    ("ncur", 32),  # pages left in the deflate cursor
    ("ram_big", B),  # totalram does not fit in 32 bits
    # the symbolic frame f
    ("f_pfn", 64),
    ("f_alloc", B),  # the allocator has f out, as the first frame of a block
    ("f_o9", B),  # ... of order 9
    ("f_list", 8),  # NONE, L4, L2, R4, R2
    ("f_cur", B),  # f is in the deflate cursor
    ("f_batch", B),  # f is in the batch in flight
    ("f_bpage", B),  # f is the batch page
    ("f_page", B),  # b->page == f
    ("f_host", B),  # the host holds f locked
    # ghost: the host
    ("neg", 64),  # capabilities granted by the last START
    ("db_ok", B),  # the last DOORBELL_SET for a real handle was answered SUCCESS
    ("target_ok", B),  # b->target came from a command answered SUCCESS
    # sticky flags for the transition properties
    ("bad_free", B),
    ("freed_held", B),
    ("proto_bad", B),
)
FIELD_NAMES: tuple[str, ...] = tuple(n for n, _ in FIELDS)

HV_SITES = (
    "START",
    "GET_TARGET",
    "LOCK",
    "UNLOCK",
    "BLOCK",
    "BUNLOCK",
    "GUEST_ID",
    "DBSET",
    "DBINV",
)
"""Backdoor commands by call site: BLOCK/BUNLOCK are the batched ones (4 KiB or 2 MiB)."""

INPUTS: tuple[tuple[str, int | str], ...] = (
    ("entry", 8),  # 0 work, 1 doorbell, 2 exit
    *((f"{s}_st", 64) for s in HV_SITES),
    *((f"{s}_res", 64) for s in HV_SITES),
    ("e_present", B),  # the response has `entries`
    ("e_ok", 32),  # entries of pages other than f, by class
    ("e_ref", 32),
    ("e_free", 32),
    ("e_warn", 32),
    ("f_cls", 8),  # class of f's entry
    ("f_rank", 32),  # refusable entries before f's
    ("a_ok", B),  # the allocation succeeds
    ("a_f", B),  # ... and returns f
    ("a_hi", B),  # ... a page (not f) whose PFN does not fit in 32 bits
    ("a_eqpage", B),  # ... the batch page is the (stale) b->page, not f
    ("v_ok", B),  # vmci_doorbell_create succeeds
    ("h_f", B),  # the head of the deflate cursor is f
    ("h_hi", B),  # ... a page (not f) whose PFN does not fit in 32 bits
)
INPUT_NAMES: tuple[str, ...] = tuple(n for n, _ in INPUTS)


def _mk(name: str, kind: int | str) -> Expr:
    return z3.Bool(name) if kind == B else z3.BitVec(name, kind)


def make_state(prefix: str) -> State:
    """Fresh constants for every field of an abstract state."""
    return {n: _mk(f"{prefix}{n}", k) for n, k in FIELDS}


def make_inputs(prefix: str) -> State:
    """Fresh constants for every input of one step."""
    return {n: _mk(f"{prefix}{n}", k) for n, k in INPUTS}


def bv32(v: int) -> Expr:
    return z3.BitVecVal(v & U32_MASK, 32)


def bv64(v: int) -> Expr:
    return z3.BitVecVal(v, 64)


def loc_val(loc: Loc) -> Expr:
    return z3.BitVecVal(int(loc), 8)


def is_loc(s: State, *locs: Loc) -> Expr:
    return z3.Or([s["loc"] == loc_val(x) for x in locs])


def low32(x: Expr) -> Expr:
    return z3.Extract(31, 0, x)


def umin(a: Expr, b: Expr) -> Expr:
    return z3.If(z3.ULE(a, b), a, b)


def umax(a: Expr, b: Expr) -> Expr:
    return z3.If(z3.UGE(a, b), a, b)


class SymTx:
    """A transition under construction: guarded updates emulate the C's branches and returns.

    ``with tx.when(c):`` guards every update inside; :meth:`goto` ends the paths that
    reach it (later updates do not apply to them); :meth:`assume` constrains the
    inputs on the paths that reach it.
    """

    def __init__(self, s: State, i: State, variant: Variant) -> None:
        self.pre = s
        self.v: State = dict(s)
        self.i = i
        self.variant = variant
        self.guards: list[Expr] = []
        self.alive: Expr = z3.BoolVal(True)
        self.cons: list[Expr] = []

    def fix(self, name: str) -> bool:
        return self.variant.has(name)

    def active(self) -> Expr:
        return z3.And(self.alive, *self.guards)

    @contextmanager
    def when(self, cond: Expr) -> Iterator[None]:
        self.guards.append(cond)
        try:
            yield
        finally:
            self.guards.pop()

    def __getitem__(self, name: str) -> Expr:
        return self.v[name]

    def set(self, name: str, value: Expr) -> None:
        if isinstance(value, bool):
            value = z3.BoolVal(value)
        self.v[name] = z3.If(self.active(), value, self.v[name])

    def flag(self, name: str, cond: Expr) -> None:
        """Raise sticky flag ``name`` where ``cond`` holds on the active paths."""
        self.v[name] = z3.Or(self.v[name], z3.And(self.active(), cond))

    def goto(self, loc: Loc | Expr) -> None:
        self.set("loc", loc_val(loc) if isinstance(loc, Loc) else loc)
        self.alive = z3.And(self.alive, z3.Not(z3.And(*self.guards)))

    def crash(self, cond: Expr) -> None:
        with self.when(cond):
            self.goto(Loc.CRASHED)

    def assume(self, cond: Expr) -> None:
        self.cons.append(z3.Implies(self.active(), cond))

    # -- the host and the frame f -----------------------------------------------------

    def hv(self, site: str) -> tuple[Expr, Expr]:
        """A backdoor command: its status and result; a RESET status makes the host forget."""
        st, res = self.i[f"{site}_st"], self.i[f"{site}_res"]
        with self.when(st == bv64(ERROR_RESET)):
            self.set("f_host", False)
        return st, res

    def protocol(self, ok: Expr) -> None:
        self.flag("proto_bad", z3.Not(ok))

    def check_status(self, st: Expr) -> Expr:
        """``vmballoon_check_status`` (lines 356-369)."""
        with self.when(st == bv64(ERROR_RESET)):
            self.set("reset", True)
        return st == bv64(0)

    def free_f(self, order9: Expr) -> None:
        """``vmballoon_free_page`` of f: a bad free unless f is out at that order."""
        self.flag("bad_free", z3.Or(z3.Not(self["f_alloc"]), self["f_o9"] != order9))
        self.flag("freed_held", self["f_host"])
        self.set("f_alloc", False)
        self.set("f_o9", False)

    def f_listed(self) -> Expr:
        return self["f_list"] != z3.BitVecVal(NONE, 8)

    def add_f_to_list(self, lst: int | Expr) -> None:
        """``list_add`` of f: ``list_corrupt`` when f is already on a list."""
        self.crash(self.f_listed())
        val = z3.BitVecVal(lst, 8) if isinstance(lst, int) else lst
        self.set("f_list", val)


def times_ps(x: Expr, is2m: Expr) -> Expr:
    """``x * vmballoon_page_size(is2m)`` with constant multipliers only (easier for Z3)."""
    return z3.If(is2m, x * bv32(PAGES_PER_2M), x)


def _empty_loop(tx: SymTx, is2m: bool = False) -> None:
    for n in ("l_rate", "l_alloc", "l_num", "l_err", "l_allocated", "ncur"):
        tx.set(n, bv32(0))
    tx.set("l_cansleep", False)
    tx.set("l_is2m", is2m)
    tx.set("f_cur", False)
    tx.set("f_batch", False)


def _set_target(tx: SymTx, st: Expr, res: Expr) -> None:
    """The macro's result into ``*target`` (457, 475-478, 505, 523-526)."""
    r32 = low32(res)
    ok = st == bv64(0)
    if tx.fix("target_on_success"):
        with tx.when(ok):
            tx.set("target", r32)
            tx.set("target_ok", True)
    else:
        with tx.when(ok):
            tx.set("target_ok", True)
        with tx.when(z3.And(z3.Not(ok), r32 != tx["target"])):
            tx.set("target_ok", False)
        tx.set("target", r32)


def _send_start(tx: SymTx, req: int) -> Expr:
    """``vmballoon_send_start`` (lines 322-354); returns success."""
    st, res = tx.hv("START")
    swc, zero = st == bv64(SUCCESS_WITH_CAPABILITIES), st == bv64(0)
    tx.set("caps", z3.If(swc, res, z3.If(zero, bv64(CAP_BASIC), tx["caps"])))
    tx.set("neg", z3.If(swc, res, z3.If(zero, bv64(CAP_BASIC), bv64(0))))
    tx.set("f_host", False)
    caps = tx["caps"]
    two_m = (caps & bv64(CAP_BATCHED_2M)) != bv64(0)
    if tx.fix("no_2m_without_batching"):
        two_m = z3.And(two_m, (caps & bv64(CAP_BATCHED)) != bv64(0))
    tx.set("supported", z3.If(two_m, bv32(2), bv32(1)))
    del req
    return z3.Or(swc, zero)


def _vmci_cleanup(tx: SymTx) -> None:
    """``vmballoon_vmci_cleanup`` (lines 1013-1025): DOORBELL_SET(INVALID, INVALID)."""
    tx.hv("DBINV")
    tx.set("db_ok", False)
    tx.set("doorbell", False)


def _pop(tx: SymTx) -> None:
    """``vmballoon_pop`` (lines 559-582): free every page, then the batch page."""
    with tx.when(tx["f_list"] == z3.BitVecVal(L4, 8)):
        tx.free_f(z3.BoolVal(False))
        tx.set("f_list", z3.BitVecVal(NONE, 8))
    with tx.when(tx["f_list"] == z3.BitVecVal(L2, 8)):
        tx.free_f(z3.BoolVal(True))
        tx.set("f_list", z3.BitVecVal(NONE, 8))
    tx.set("size", tx["size"] - tx["n4"] - tx["n2"] * bv32(PAGES_PER_2M))
    tx.set("n4", bv32(0))
    tx.set("n2", bv32(0))
    with tx.when(tx["f_bpage"]):
        tx.free_f(z3.BoolVal(False))
        tx.set("f_bpage", False)
    tx.set("bpage", False)
    tx.set("page_eq_batch", False)


def _add_page(tx: SymTx, is_f: Expr, hi: Expr) -> None:
    """``b->ops->add_page`` (774-784): b->page (basic) or a batch entry (batched)."""
    tx.crash(tx["ops"] == z3.BitVecVal(OPS_NULL, 8))
    basic = tx["ops"] == z3.BitVecVal(OPS_BASIC, 8)
    with tx.when(basic):
        tx.set("page_null", False)
        tx.set("page_hi", z3.If(is_f, z3.UGT(tx["f_pfn"], bv64(U32_MASK)), hi))
        tx.set("f_page", is_f)
        tx.set("page_eq_batch", False)
        tx.set("f_batch", is_f)  # the basic "batch" is b->page, overwritten
    with tx.when(z3.Not(basic)):
        tx.crash(z3.Not(tx["bpage"]))
        tx.set("f_batch", z3.Or(tx["f_batch"], is_f))


def _batch_arg_is_batch_page(tx: SymTx) -> Expr:
    """Whether a batched command names the batch page (lines 470, 518)."""
    if tx.fix("batch_pfn"):
        return tx["bpage"]
    return z3.And(tx["bpage"], z3.Not(tx["page_null"]), tx["page_eq_batch"])


def _batch_entries(tx: SymTx, num: Expr, eqb: Expr) -> Expr:
    """Constrain the entry inputs; returns whether the host wrote statuses."""
    i = tx.i
    written = z3.And(eqb, i["e_present"])
    fb = z3.If(tx["f_batch"], bv32(1), bv32(0))
    counts = (i["e_ok"], i["e_ref"], i["e_free"], i["e_warn"])
    for c in counts:
        tx.assume(z3.ULE(c, num))
    tx.assume(i["e_ok"] + i["e_ref"] + i["e_free"] + i["e_warn"] + fb == num)
    tx.assume(z3.ULE(i["f_cls"], z3.BitVecVal(CLS_WARN, 8)))
    tx.assume(z3.Implies(z3.Not(tx["f_batch"]), i["f_cls"] == z3.BitVecVal(CLS_OK, 8)))
    tx.assume(z3.Implies(z3.Not(tx["f_batch"]), i["f_rank"] == bv32(0)))
    tx.assume(z3.ULE(i["f_rank"], i["e_ref"]))
    tx.assume(
        z3.Implies(
            z3.Not(written),
            z3.And(
                i["e_ref"] == bv32(0),
                i["e_free"] == bv32(0),
                i["e_warn"] == bv32(0),
                i["f_cls"] == z3.BitVecVal(CLS_OK, 8),
            ),
        )
    )
    return written


def _protocol_batched(tx: SymTx, is2m: Expr, eqb: Expr) -> None:
    neg = tx["neg"]
    ok = z3.And(
        (neg & bv64(CAP_BATCHED)) != bv64(0),
        z3.Implies(is2m, (neg & bv64(CAP_BATCHED_2M)) != bv64(0)),
        eqb,
    )
    tx.protocol(ok)


def _lock(tx: SymTx, num: Expr, is2m: Expr) -> Expr:
    """``b->ops->lock``: basic (589-630) or batched (632-684); returns the C's int."""
    tx.crash(tx["ops"] == z3.BitVecVal(OPS_NULL, 8))
    eio = bv32(-EIO)
    ret = bv32(0)
    basic = tx["ops"] == z3.BitVecVal(OPS_BASIC, 8)
    with tx.when(basic):
        ret = z3.If(basic, _lock_page(tx), ret)
    with tx.when(z3.Not(basic)):
        ret = z3.If(basic, ret, _lock_batched(tx, num, is2m, eio))
    return ret


def _lock_page(tx: SymTx) -> Expr:
    """``vmballoon_lock_page`` (589-630) with ``vmballoon_send_lock_page`` (445-464)."""
    fp = tx["f_page"]
    hi = z3.Or(tx["page_null"], tx["page_hi"])
    st, res = tx.i["LOCK_st"], tx.i["LOCK_res"]
    sent = z3.Not(hi)
    with tx.when(sent):
        tx.hv("LOCK")
        tx.protocol((tx["neg"] & bv64(CAP_BASIC)) != bv64(0))
        _set_target(tx, st, res)
        ok = tx.check_status(st)
        with tx.when(z3.And(ok, fp)):
            tx.set("f_host", True)
    ok = st == bv64(0)
    # locked: -1 (not sent), 0 (SUCCESS) or 1
    hv_status = z3.If(sent, low32(st), bv32(0))
    if tx.fix("lock_64bit_refused"):
        refused = z3.Or(hi, z3.Not(ok))
    else:
        refused = z3.And(sent, z3.Not(ok))
    eio = bv32(-EIO)
    with tx.when(refused):
        drop = z3.Or(hv_status == bv32(ERROR_RESET), hv_status == bv32(ERROR_PPN_NOTNEEDED))
        room = z3.ULT(tx["n_ref0"], bv32(MAX_REFUSED))
        free_it = z3.Or(drop, z3.Not(room))
        with tx.when(free_it):
            tx.crash(tx["page_null"])
            with tx.when(fp):
                tx.free_f(z3.BoolVal(False))
        with tx.when(z3.Not(free_it)):
            tx.set("n_ref0", tx["n_ref0"] + bv32(1))
            tx.crash(tx["page_null"])
            with tx.when(fp):
                tx.add_f_to_list(R4)
            tx.set("r4", tx["r4"] + bv32(1))
    with tx.when(z3.Not(refused)):
        tx.crash(tx["page_null"])
        with tx.when(fp):
            tx.add_f_to_list(L4)
        tx.set("n4", tx["n4"] + bv32(1))
        tx.set("size", tx["size"] + bv32(1))
    tx.set("f_batch", z3.And(tx["f_batch"], z3.Not(fp)))
    return z3.If(refused, eio, bv32(0))


def _lock_batched(tx: SymTx, num: Expr, is2m: Expr, eio: Expr) -> Expr:
    """``vmballoon_lock_batched_page`` (632-684) with ``vmballoon_send_batched_lock``."""
    i = tx.i
    eqb = _batch_arg_is_batch_page(tx)
    _protocol_batched(tx, is2m, eqb)
    st, res = tx.hv("BLOCK")
    _set_target(tx, st, res)
    _batch_entries(tx, num, eqb)
    ok = tx.check_status(st)
    tx.crash(z3.And(z3.Not(tx["bpage"]), num != bv32(0)))
    fb = tx["f_batch"]
    fcls = i["f_cls"]
    with tx.when(z3.Not(ok)):
        with tx.when(fb):
            tx.free_f(is2m)
        tx.set("f_batch", False)
    with tx.when(ok):
        f_ok = z3.And(fb, fcls == z3.BitVecVal(CLS_OK, 8))
        with tx.when(z3.And(f_ok, eqb)):
            tx.set("f_host", True)
        added = i["e_ok"] + z3.If(f_ok, bv32(1), bv32(0))
        tx.set("size", tx["size"] + times_ps(added, is2m))
        tx.set("n4", z3.If(is2m, tx["n4"], tx["n4"] + added))
        tx.set("n2", z3.If(is2m, tx["n2"] + added, tx["n2"]))
        # refusable entries: the first (16 - n_refused) go to the refused list
        f_ref = z3.And(fb, fcls == z3.BitVecVal(CLS_REFUSE, 8))
        nref = z3.If(is2m, tx["n_ref1"], tx["n_ref0"])
        room = z3.If(z3.UGE(nref, bv32(MAX_REFUSED)), bv32(0), bv32(MAX_REFUSED) - nref)
        total = i["e_ref"] + z3.If(f_ref, bv32(1), bv32(0))
        nadd = umin(total, room)
        tx.set("n_ref0", z3.If(is2m, tx["n_ref0"], tx["n_ref0"] + nadd))
        tx.set("r4", z3.If(is2m, tx["r4"], tx["r4"] + nadd))
        tx.set("n_ref1", z3.If(is2m, tx["n_ref1"] + nadd, tx["n_ref1"]))
        tx.set("r2", z3.If(is2m, tx["r2"] + nadd, tx["r2"]))
        f_refused = z3.And(f_ref, z3.ULT(i["f_rank"], room))
        with tx.when(f_ok):
            tx.add_f_to_list(z3.If(is2m, z3.BitVecVal(L2, 8), z3.BitVecVal(L4, 8)))
        with tx.when(f_refused):
            tx.add_f_to_list(z3.If(is2m, z3.BitVecVal(R2, 8), z3.BitVecVal(R4, 8)))
        f_free = z3.Or(
            z3.And(f_ref, z3.Not(f_refused)),
            z3.And(fb, fcls == z3.BitVecVal(CLS_FREE, 8)),
        )
        f_warn = z3.And(fb, fcls == z3.BitVecVal(CLS_WARN, 8))
        if tx.fix("warn_status_frees"):
            f_free = z3.Or(f_free, f_warn)
        with tx.when(f_free):
            tx.free_f(is2m)
        with tx.when(z3.Or(f_warn, i["e_warn"] != bv32(0))):
            tx.set("warned", True)
        tx.set("f_batch", False)
    return z3.If(ok, bv32(0), eio)


def _unlock(tx: SymTx, num: Expr, is2m: Expr) -> Expr:
    """``b->ops->unlock``: basic (691-712) or batched (714-752); returns the C's int."""
    tx.crash(tx["ops"] == z3.BitVecVal(OPS_NULL, 8))
    basic = tx["ops"] == z3.BitVecVal(OPS_BASIC, 8)
    eio = bv32(-EIO)
    ret = bv32(0)
    with tx.when(basic):
        ret = z3.If(basic, _unlock_page(tx, is2m, eio), ret)
    with tx.when(z3.Not(basic)):
        ret = z3.If(basic, ret, _unlock_batched(tx, num, is2m, eio))
    return ret


def _readd_f(tx: SymTx, lst: int | Expr) -> None:
    tx.add_f_to_list(lst)


def _unlock_page(tx: SymTx, is2m: Expr, eio: Expr) -> Expr:
    """``vmballoon_unlock_page`` (691-712) with ``vmballoon_send_unlock_page`` (493-512)."""
    fp = tx["f_page"]
    hi = z3.Or(tx["page_null"], tx["page_hi"])
    st, res = tx.i["UNLOCK_st"], tx.i["UNLOCK_res"]
    sent = z3.Not(hi)
    with tx.when(sent):
        tx.hv("UNLOCK")
        tx.protocol((tx["neg"] & bv64(CAP_BASIC)) != bv64(0))
        _set_target(tx, st, res)
        tx.check_status(st)
        with tx.when(z3.And(st == bv64(0), fp)):
            tx.set("f_host", False)
    ok = z3.And(sent, st == bv64(0))
    with tx.when(z3.Not(ok)):
        tx.crash(tx["page_null"])
        with tx.when(fp):
            _readd_f(tx, L4)
        tx.set("n4", tx["n4"] + bv32(1))
    with tx.when(ok):
        tx.crash(tx["page_null"])
        with tx.when(fp):
            tx.free_f(z3.BoolVal(False))
        tx.set("size", tx["size"] - bv32(1))
    tx.set("f_batch", z3.And(tx["f_batch"], z3.Not(fp)))
    del is2m
    return z3.If(ok, bv32(0), eio)


def _unlock_batched(tx: SymTx, num: Expr, is2m: Expr, eio: Expr) -> Expr:
    """``vmballoon_unlock_batched_page`` (714-752) with ``vmballoon_send_batched_unlock``."""
    i = tx.i
    eqb = _batch_arg_is_batch_page(tx)
    _protocol_batched(tx, is2m, eqb)
    st, res = tx.hv("BUNLOCK")
    _set_target(tx, st, res)
    _batch_entries(tx, num, eqb)
    ok = tx.check_status(st)
    tx.crash(z3.And(z3.Not(tx["bpage"]), num != bv32(0)))
    fb = tx["f_batch"]
    f_ok = z3.And(fb, i["f_cls"] == z3.BitVecVal(CLS_OK, 8))
    with tx.when(z3.And(ok, f_ok, eqb)):
        tx.set("f_host", False)
    freed = z3.If(ok, i["e_ok"] + z3.If(f_ok, bv32(1), bv32(0)), bv32(0))
    back = num - freed
    tx.set("size", tx["size"] - times_ps(freed, is2m))
    tx.set("n4", z3.If(is2m, tx["n4"], tx["n4"] + back))
    tx.set("n2", z3.If(is2m, tx["n2"] + back, tx["n2"]))
    with tx.when(z3.And(fb, z3.Or(z3.Not(ok), z3.Not(f_ok)))):
        _readd_f(tx, z3.If(is2m, z3.BitVecVal(L2, 8), z3.BitVecVal(L4, 8)))
    with tx.when(z3.And(ok, f_ok)):
        tx.free_f(is2m)
    tx.set("f_batch", False)
    return z3.If(ok, bv32(0), eio)


# -- the transitions, one per control location (vmballoon/model/transitions.py) ----------


def t_idle(tx: SymTx) -> None:
    """Entry points (vmballoon.model.machine.enter): work, doorbell (when a handle is held),
    exit."""
    e = tx.i["entry"]
    tx.assume(z3.ULE(e, z3.BitVecVal(2, 8)))
    with tx.when(e == z3.BitVecVal(2, 8)):
        tx.goto(Loc.E_CLEANUP)
    with tx.when(z3.And(e == z3.BitVecVal(1, 8), z3.Not(tx["doorbell"]))):
        tx.goto(Loc.IDLE)
    tx.goto(Loc.W_BEGIN)


def t_stop(tx: SymTx) -> None:
    """EXITED and CRASHED: nothing runs any more."""
    tx.goto(tx["loc"])


def t_work_begin(tx: SymTx) -> None:
    """``vmballoon_work`` 1106-1115."""
    tx.goto(z3.If(tx["reset"], loc_val(Loc.R_CLEANUP), loc_val(Loc.W_TARGET)))


def t_reset_cleanup(tx: SymTx) -> None:
    """Line 1066."""
    _vmci_cleanup(tx)
    tx.goto(Loc.R_POP)


def t_reset_pop(tx: SymTx) -> None:
    """Line 1069."""
    _pop(tx)
    tx.goto(Loc.R_START)


def t_reset_start(tx: SymTx) -> None:
    """Lines 1071-1072."""
    ok = _send_start(tx, CAPABILITIES)
    tx.goto(z3.If(ok, loc_val(Loc.R_OPS), loc_val(Loc.W_TARGET)))


def t_reset_ops(tx: SymTx) -> None:
    """Lines 1074-1092, with ``vmballoon_init_batching`` (986-996)."""
    caps = tx["caps"]
    batched = (caps & bv64(CAP_BATCHED)) != bv64(0)
    basic = (caps & bv64(CAP_BASIC)) != bv64(0)
    i = tx.i
    with tx.when(batched):
        tx.set("ops", z3.BitVecVal(OPS_BATCHED, 8))
        tx.set("batch_max", bv32(512))
        tx.assume(z3.Implies(i["a_f"], z3.And(i["a_ok"], z3.Not(tx["f_alloc"]))))
        tx.assume(z3.Implies(i["a_eqpage"], z3.And(i["a_ok"], z3.Not(i["a_f"]))))
        tx.assume(z3.Implies(i["a_eqpage"], z3.And(z3.Not(tx["page_null"]), z3.Not(tx["f_page"]))))
        with tx.when(z3.Not(i["a_ok"])):
            tx.goto(Loc.R_START0)
        tx.set("bpage", True)
        with tx.when(i["a_f"]):
            tx.set("f_alloc", True)
            tx.set("f_o9", False)
            tx.set("f_bpage", True)
        tx.set("page_eq_batch", z3.If(i["a_f"], tx["f_page"], i["a_eqpage"]))
    with tx.when(z3.And(z3.Not(batched), basic)):
        tx.set("ops", z3.BitVecVal(OPS_BASIC, 8))
        tx.set("batch_max", bv32(1))
    if tx.fix("reset_needs_ops"):
        with tx.when(z3.And(z3.Not(batched), z3.Not(basic))):
            tx.goto(Loc.W_TARGET)
    tx.set("reset", False)
    tx.goto(Loc.R_VMCI)


def t_reset_start0(tx: SymTx) -> None:
    """Line 1084."""
    _send_start(tx, 0)
    tx.goto(Loc.W_TARGET)


def t_reset_vmci(tx: SymTx) -> None:
    """``vmballoon_vmci_init`` (lines 1030-1055)."""
    i = tx.i
    sw = (tx["caps"] & bv64(CAP_SIGNALLED_WAKEUP)) != bv64(0)
    error = z3.BoolVal(False)
    with tx.when(sw):
        with tx.when(i["v_ok"]):
            tx.set("doorbell", True)
            st, res = tx.hv("DBSET")
            tx.protocol((tx["neg"] & bv64(CAP_SIGNALLED_WAKEUP)) != bv64(0))
            tx.set("db_ok", st == bv64(0))
        st, res = i["DBSET_st"], i["DBSET_res"]
        err_set = st != bv64(0) if tx.fix("doorbell_set_status") else low32(res) != bv32(0)
        error = z3.And(sw, z3.Or(z3.Not(i["v_ok"]), err_set))
    with tx.when(error):
        _vmci_cleanup(tx)
    tx.goto(Loc.R_GUEST_ID)


def t_reset_guest_id(tx: SymTx) -> None:
    """``vmballoon_send_guest_id`` (lines 377-392)."""
    st, _ = tx.hv("GUEST_ID")
    tx.check_status(st)
    tx.goto(Loc.W_TARGET)


def t_work_target(tx: SymTx) -> None:
    """``vmballoon_work`` 1117-1130, ``vmballoon_send_get_target`` (405-438)."""
    slow = tx["slow"]
    tx.set("slow", z3.If(slow != bv32(0), slow - bv32(1), slow))
    with tx.when(z3.Or(tx["reset"], tx["ram_big"])):
        tx.goto(Loc.IDLE)
    st, res = tx.hv("GET_TARGET")
    ok = tx.check_status(st)
    with tx.when(z3.Not(ok)):
        tx.goto(Loc.IDLE)
    target = low32(res)
    tx.set("target", target)
    tx.set("target_ok", True)
    size = tx["size"]
    with tx.when(z3.ULT(size, target)):
        slow_now = tx["slow"] != bv32(0)
        _empty_loop(tx)
        tx.set("l_rate", z3.If(slow_now, tx["rate_alloc"], bv32(UINT_MAX)))
        tx.set("l_is2m", z3.And(z3.Not(slow_now), tx["supported"] == bv32(2)))
        tx.goto(Loc.I_LOOP)
    deflate = z3.And(
        z3.Or(target == bv32(0), z3.UGT(size, target + bv32(PAGES_PER_2M))),
        z3.UGT(tx["supported"], bv32(0)),
    )
    with tx.when(deflate):
        _empty_loop(tx)
        tx.set("ncur", tx["n4"])
        tx.set("f_cur", tx["f_list"] == z3.BitVecVal(L4, 8))
        tx.goto(Loc.D_LOOP)
    tx.goto(Loc.IDLE)


def t_inflate_loop(tx: SymTx) -> None:
    """One iteration of lines 833-907 up to the lock of a full batch."""
    i = tx.i
    is2m = tx["l_is2m"]
    with tx.when(
        z3.Or(tx["reset"], z3.UGE(tx["size"] + times_ps(tx["l_num"], is2m), tx["target"]))
    ):
        tx.goto(Loc.I_TAIL)
    tx.assume(z3.Implies(i["a_f"], z3.And(i["a_ok"], z3.Not(tx["f_alloc"]))))
    tx.assume(
        z3.Implies(
            z3.And(i["a_f"], is2m),
            z3.Extract(8, 0, tx["f_pfn"]) == z3.BitVecVal(0, 9),
        )
    )
    with tx.when(z3.Not(i["a_ok"])):
        with tx.when(is2m):
            tx.goto(Loc.I_FALLBACK)
        with tx.when(tx["l_cansleep"]):
            tx.set("rate_alloc", umax(z3.UDiv(tx["rate_alloc"], bv32(2)), bv32(RATE_ALLOC_MIN)))
            tx.goto(Loc.I_TAIL)
        tx.set("slow", bv32(SLOW_CYCLES))
        with tx.when(z3.UGE(tx["l_alloc"], tx["rate_alloc"])):
            tx.goto(Loc.I_TAIL)
        tx.set("l_cansleep", True)
        tx.set("l_rate", tx["rate_alloc"])
        tx.goto(Loc.I_LOOP)
    allocations = tx["l_alloc"]
    if tx.fix("count_allocations"):
        allocations = allocations + bv32(1)
    tx.set("l_alloc", allocations)
    tx.set("l_allocated", tx["l_allocated"] + bv32(1))
    with tx.when(i["a_f"]):
        tx.set("f_alloc", True)
        tx.set("f_o9", is2m)
    _add_page(tx, i["a_f"], i["a_hi"])
    num = tx["l_num"] + bv32(1)
    tx.set("l_num", num)
    with tx.when(num == tx["batch_max"]):
        tx.goto(Loc.I_LOCK)
    tx.goto(z3.If(z3.UGE(allocations, tx["l_rate"]), loc_val(Loc.I_TAIL), loc_val(Loc.I_LOOP)))


def t_inflate_lock(tx: SymTx) -> None:
    """Lines 893-906."""
    rate_hit = z3.UGE(tx["l_alloc"], tx["l_rate"])
    err = _lock(tx, tx["l_num"], tx["l_is2m"])
    tx.set("l_num", bv32(0))
    tx.set("l_err", err)
    tx.goto(z3.If(z3.Or(err != bv32(0), rate_hit), loc_val(Loc.I_TAIL), loc_val(Loc.I_LOOP)))


def t_inflate_fallback(tx: SymTx) -> None:
    """Lines 847-859."""
    _lock(tx, tx["l_num"], z3.BoolVal(True))
    tx.set("l_num", bv32(0))
    tx.set("l_is2m", False)
    tx.goto(Loc.I_LOOP)


def t_inflate_tail(tx: SymTx) -> None:
    """Lines 909-910."""
    with tx.when(tx["l_num"] != bv32(0)):
        _lock(tx, tx["l_num"], tx["l_is2m"])
        tx.set("l_num", bv32(0))
    tx.goto(Loc.I_END)


def t_inflate_end(tx: SymTx) -> None:
    """Lines 916-925 with ``vmballoon_release_refused_pages`` (758-772)."""
    ra = tx["rate_alloc"]
    with tx.when(z3.And(tx["l_err"] == bv32(0), z3.UGE(tx["l_alloc"], ra))):
        mult = z3.UDiv(tx["l_alloc"], ra)
        tx.set("rate_alloc", umin(ra + mult * bv32(RATE_ALLOC_INC), bv32(RATE_ALLOC_MAX)))
    with tx.when(tx["f_list"] == z3.BitVecVal(R2, 8)):
        tx.free_f(z3.BoolVal(True))
        tx.set("f_list", z3.BitVecVal(NONE, 8))
    with tx.when(tx["f_list"] == z3.BitVecVal(R4, 8)):
        tx.free_f(z3.BoolVal(False))
        tx.set("f_list", z3.BitVecVal(NONE, 8))
    for n in ("r4", "r2", "n_ref0", "n_ref1"):
        tx.set(n, bv32(0))
    _empty_loop(tx)
    tx.goto(Loc.IDLE)


def t_deflate_loop(tx: SymTx) -> None:
    """One iteration of lines 945-967 up to a full batch."""
    i = tx.i
    with tx.when(tx["ncur"] == bv32(0)):
        tx.goto(Loc.D_TAIL)
    is2m = tx["l_is2m"]
    target = tx["target"]
    stop = z3.Or(
        tx["reset"],
        z3.And(
            target != bv32(0),
            z3.ULT(tx["size"] - times_ps(tx["l_num"], is2m), target + bv32(PAGES_PER_2M)),
        ),
    )
    with tx.when(stop):
        tx.goto(Loc.D_TAIL)
    tx.assume(z3.Implies(i["h_f"], tx["f_cur"]))
    tx.assume(z3.Implies(z3.And(tx["f_cur"], tx["ncur"] == bv32(1)), i["h_f"]))
    tx.set("ncur", tx["ncur"] - bv32(1))
    tx.set("n4", z3.If(is2m, tx["n4"], tx["n4"] - bv32(1)))
    tx.set("n2", z3.If(is2m, tx["n2"] - bv32(1), tx["n2"]))
    with tx.when(i["h_f"]):
        tx.set("f_cur", False)
        tx.set("f_list", z3.BitVecVal(NONE, 8))
    _add_page(tx, i["h_f"], i["h_hi"])
    num = tx["l_num"] + bv32(1)
    tx.set("l_num", num)
    tx.goto(z3.If(num == tx["batch_max"], loc_val(Loc.D_UNLOCK), loc_val(Loc.D_LOOP)))


def _end_of_list(tx: SymTx) -> None:
    tx.set("ncur", bv32(0))
    tx.set("f_cur", False)


def t_deflate_unlock(tx: SymTx) -> None:
    """Lines 956-964."""
    err = _unlock(tx, tx["l_num"], tx["l_is2m"])
    tx.set("l_num", bv32(0))
    with tx.when(err != bv32(0)):
        _end_of_list(tx)
        _empty_loop(tx)
        tx.goto(Loc.IDLE)
    tx.goto(Loc.D_LOOP)


def t_deflate_tail(tx: SymTx) -> None:
    """Lines 969-971, then the next page size (line 938)."""
    is2m = tx["l_is2m"]
    with tx.when(tx["l_num"] != bv32(0)):
        _unlock(tx, tx["l_num"], is2m)
    _end_of_list(tx)
    nxt = z3.If(is2m, bv32(2), bv32(1))
    with tx.when(z3.UGE(nxt, tx["supported"])):
        _empty_loop(tx)
        tx.goto(Loc.IDLE)
    _empty_loop(tx, is2m=True)
    tx.set("ncur", tx["n2"])
    tx.set("f_cur", tx["f_list"] == z3.BitVecVal(L2, 8))
    tx.goto(Loc.D_LOOP)


def t_exit_cleanup(tx: SymTx) -> None:
    """Line 1296."""
    _vmci_cleanup(tx)
    tx.goto(Loc.E_START0)


def t_exit_start0(tx: SymTx) -> None:
    """Line 1306."""
    _send_start(tx, 0)
    tx.goto(Loc.E_POP)


def t_exit_pop(tx: SymTx) -> None:
    """Line 1307."""
    _pop(tx)
    tx.goto(Loc.EXITED)


TRANSITIONS: dict[Loc, Callable[[SymTx], None]] = {
    Loc.IDLE: t_idle,
    Loc.W_BEGIN: t_work_begin,
    Loc.R_CLEANUP: t_reset_cleanup,
    Loc.R_POP: t_reset_pop,
    Loc.R_START: t_reset_start,
    Loc.R_OPS: t_reset_ops,
    Loc.R_START0: t_reset_start0,
    Loc.R_VMCI: t_reset_vmci,
    Loc.R_GUEST_ID: t_reset_guest_id,
    Loc.W_TARGET: t_work_target,
    Loc.I_LOOP: t_inflate_loop,
    Loc.I_LOCK: t_inflate_lock,
    Loc.I_FALLBACK: t_inflate_fallback,
    Loc.I_TAIL: t_inflate_tail,
    Loc.I_END: t_inflate_end,
    Loc.D_LOOP: t_deflate_loop,
    Loc.D_UNLOCK: t_deflate_unlock,
    Loc.D_TAIL: t_deflate_tail,
    Loc.E_CLEANUP: t_exit_cleanup,
    Loc.E_START0: t_exit_start0,
    Loc.E_POP: t_exit_pop,
    Loc.EXITED: t_stop,
    Loc.CRASHED: t_stop,
}
"""The transition out of every control location (IDLE: an entry point starts)."""


@dataclass
class Step:
    """The successor of ``pre`` at one location, with the constraints on the inputs."""

    post: State
    cons: list[Expr]


def successor(loc: Loc, s: State, i: State, variant: Variant) -> Step:
    """The step out of ``loc`` from ``s`` (assumed to be at ``loc``) with inputs ``i``."""
    tx = SymTx(s, i, variant)
    TRANSITIONS[loc](tx)
    return Step(tx.v, tx.cons)


def pfn_below_2_52(s: State) -> Expr:
    """Assumption ``pfn_below_2_52``: the symbolic frame, hence every frame, is below 2**52."""
    return z3.ULT(s["f_pfn"], bv64(PFN_LIMIT))


ASSUMED: dict[str, Callable[[State], Expr]] = {"pfn_below_2_52": pfn_below_2_52}
"""The assumptions of :data:`vmballoon.core.assumptions.GLOBAL` (same names), as
constraints on every abstract state (part of :func:`well_formed`, so of ``Init`` and
of the invariant every proof assumes)."""


def well_formed(s: State) -> Expr:
    """Ranges every abstract state satisfies by construction, and :data:`ASSUMED`."""
    return z3.And(
        z3.ULE(s["loc"], z3.BitVecVal(int(Loc.CRASHED), 8)),
        z3.ULE(s["ops"], z3.BitVecVal(OPS_BATCHED, 8)),
        z3.ULE(s["f_list"], z3.BitVecVal(R2, 8)),
        *(a(s) for a in ASSUMED.values()),
    )


def transition(
    s: State, i: State, t: State, variant: Variant, locs: frozenset[Loc] | None = None
) -> Expr:
    """``T(s, i, t)``: ``t`` is the successor of ``s`` under inputs ``i``.

    Written as top-level equalities ``t.x == If(loc in Ls, x_L, ...)`` (the locations
    whose successor computes the same term share one branch) plus the input
    constraints of the location taken, which Z3 handles far better than a disjunction
    of per-location conjunctions.  ``locs`` restricts ``s.loc`` to a set of locations
    (BMC passes the locations reachable at that depth).

    The relation is built once per variant and set of locations over template
    constants (:func:`_template`) and instantiated by substitution: an unrolling of
    ``k`` steps costs ``k`` substitutions, not ``k`` runs of the symbolic execution.
    """
    tmpl = _template(variant, locs)
    pairs = [(tmpl.s[n], s[n]) for n in FIELD_NAMES]
    pairs += [(tmpl.i[n], i[n]) for n in INPUT_NAMES]
    pairs += [(tmpl.t[n], t[n]) for n in FIELD_NAMES]
    return z3.substitute(tmpl.relation, *pairs)


@dataclass(frozen=True)
class _Template:
    s: State
    i: State
    t: State
    relation: Expr


_TEMPLATES: dict[tuple[Variant, frozenset[Loc] | None], _Template] = {}


def _template(variant: Variant, locs: frozenset[Loc] | None) -> _Template:
    """:func:`transition` over the template constants ``tmpl_s_*``, ``tmpl_i_*``,
    ``tmpl_t_*`` (built on first use, then cached for the process)."""
    key = (variant, locs)
    if key not in _TEMPLATES:
        s, i, t = make_state("tmpl_s_"), make_inputs("tmpl_i_"), make_state("tmpl_t_")
        _TEMPLATES[key] = _Template(s, i, t, _relation(s, i, t, variant, locs))
    return _TEMPLATES[key]


_TEMPLATE_STEPS: dict[tuple[Variant, Loc], Step] = {}


def _template_step(loc: Loc, variant: Variant) -> Step:
    """The step out of ``loc`` over the template constants ``tmpl_s_*``, ``tmpl_i_*`` (the
    same terms :func:`_template` makes), symbolically executed once per process: a BMC
    builds one relation per set of locations reachable at a depth, each over most of the
    same locations."""
    key = (variant, loc)
    if key not in _TEMPLATE_STEPS:
        s, i = make_state("tmpl_s_"), make_inputs("tmpl_i_")
        _TEMPLATE_STEPS[key] = successor(loc, s, i, variant)
    return _TEMPLATE_STEPS[key]


def _relation(s: State, i: State, t: State, variant: Variant, locs: frozenset[Loc] | None) -> Expr:
    """The formula of :func:`transition` over the template constants of
    :func:`_template` (``s``, ``i``, ``t``), from each location's symbolic step."""
    cases = [loc for loc in TRANSITIONS if locs is None or loc in locs]
    steps = {loc: _template_step(loc, variant) for loc in cases}
    out = [z3.Or([s["loc"] == loc_val(loc) for loc in cases])]
    for loc in cases:
        cons = steps[loc].cons
        if cons:
            out.append(z3.Implies(s["loc"] == loc_val(loc), z3.And(*cons)))
    for n in FIELD_NAMES:
        groups: list[tuple[Expr, list[Loc]]] = []
        for loc in cases:
            post = steps[loc].post[n]
            for e, same in groups:
                if e.eq(post):
                    same.append(loc)
                    break
            else:
                groups.append((post, [loc]))
        # the largest group is the default branch; a stable sort keeps the order of cases
        groups.sort(key=lambda g: -len(g[1]))
        e = groups[0][0]
        for post, same in groups[1:]:
            e = z3.If(z3.Or([s["loc"] == loc_val(loc) for loc in same]), post, e)
        out.append(t[n] == e)
    return z3.And(out)


SUCCESSORS: dict[Loc, tuple[Loc, ...]] = {
    Loc.IDLE: (Loc.IDLE, Loc.W_BEGIN, Loc.E_CLEANUP),
    Loc.W_BEGIN: (Loc.R_CLEANUP, Loc.W_TARGET),
    Loc.R_CLEANUP: (Loc.R_POP,),
    Loc.R_POP: (Loc.R_START, Loc.CRASHED),
    Loc.R_START: (Loc.R_OPS, Loc.W_TARGET),
    Loc.R_OPS: (Loc.R_START0, Loc.R_VMCI, Loc.W_TARGET),
    Loc.R_START0: (Loc.W_TARGET,),
    Loc.R_VMCI: (Loc.R_GUEST_ID,),
    Loc.R_GUEST_ID: (Loc.W_TARGET,),
    Loc.W_TARGET: (Loc.IDLE, Loc.I_LOOP, Loc.D_LOOP),
    Loc.I_LOOP: (Loc.I_TAIL, Loc.I_FALLBACK, Loc.I_LOOP, Loc.I_LOCK, Loc.CRASHED),
    Loc.I_LOCK: (Loc.I_TAIL, Loc.I_LOOP, Loc.CRASHED),
    Loc.I_FALLBACK: (Loc.I_LOOP, Loc.CRASHED),
    Loc.I_TAIL: (Loc.I_END, Loc.CRASHED),
    Loc.I_END: (Loc.IDLE, Loc.CRASHED),
    Loc.D_LOOP: (Loc.D_TAIL, Loc.D_LOOP, Loc.D_UNLOCK, Loc.CRASHED),
    Loc.D_UNLOCK: (Loc.IDLE, Loc.D_LOOP, Loc.CRASHED),
    Loc.D_TAIL: (Loc.IDLE, Loc.D_LOOP, Loc.CRASHED),
    Loc.E_CLEANUP: (Loc.E_START0,),
    Loc.E_START0: (Loc.E_POP,),
    Loc.E_POP: (Loc.EXITED, Loc.CRASHED),
    Loc.EXITED: (Loc.EXITED,),
    Loc.CRASHED: (Loc.CRASHED,),
}
"""Control-flow successors of each location (an over-approximation used to prune BMC;
the conformance tests check every concrete step stays inside it)."""


def reachable_locs(depth: int) -> list[frozenset[Loc]]:
    """The locations reachable from IDLE in exactly ``k`` steps, for ``k <= depth``."""
    out = [frozenset({Loc.IDLE})]
    for _ in range(depth):
        out.append(frozenset(n for loc in out[-1] for n in SUCCESSORS[loc]))
    return out


def initial(s: State) -> Expr:
    """After ``vmballoon_init`` (lines 1257-1291): ``vmballoon.model.state.initial_state``."""
    zero32 = (
        "size",
        "target",
        "slow",
        "supported",
        "batch_max",
        "n_ref0",
        "n_ref1",
        "l_rate",
        "l_alloc",
        "l_num",
        "l_err",
        "l_allocated",
        "n4",
        "n2",
        "r4",
        "r2",
        "ncur",
    )
    false = (
        "bpage",
        "page_hi",
        "page_eq_batch",
        "doorbell",
        "warned",
        "l_cansleep",
        "l_is2m",
        "f_alloc",
        "f_o9",
        "f_cur",
        "f_batch",
        "f_bpage",
        "f_page",
        "f_host",
        "db_ok",
        "bad_free",
        "freed_held",
        "proto_bad",
    )
    cs = [s["loc"] == loc_val(Loc.IDLE), s["rate_alloc"] == bv32(RATE_ALLOC_MAX), s["reset"]]
    cs += [s[n] == bv32(0) for n in zero32]
    cs += [z3.Not(s[n]) for n in false]
    cs += [
        s["caps"] == bv64(0),
        s["neg"] == bv64(0),
        s["ops"] == z3.BitVecVal(OPS_NULL, 8),
        s["page_null"],
        s["f_list"] == z3.BitVecVal(NONE, 8),
        s["target_ok"],
        well_formed(s),
    ]
    return z3.And(cs)
