"""The abstraction function α from concrete model states to the encoding's states.

Plain Python (no z3): :func:`alpha` maps a model :class:`State` with its
:class:`vmballoon.model.properties.Ghost` and a chosen frame ``f`` to values of
:data:`vmballoon.proofs.encoding.FIELDS`; :func:`step_inputs` reads the values of
:data:`vmballoon.proofs.encoding.INPUTS` off one concrete transition (the events it logged
and the host answers it consumed).  Together they let the conformance tests check
that the encoding's successor of α(s) is α(successor of s).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable

from vmballoon.core.env import Event, Memory
from vmballoon.core.intervals import INF
from vmballoon.core.protocol import (
    ERROR_PPN_INVALID,
    ERROR_PPN_NOTNEEDED,
    ERROR_PPN_PINNED,
    ERROR_RESET,
    PAGES_PER_2M,
    U32_MASK,
    VMCI_INVALID_ID,
)
from vmballoon.core.scenario import Response
from vmballoon.model.machine import balloon_pages
from vmballoon.model.plist import to_list
from vmballoon.model.properties import (
    DEFLATE_LOCS,
    Ghost,
    _batch_statuses,
    _response,
    in_flight,
    new_events,
)
from vmballoon.model.state import OPS_BASIC, OPS_BATCHED, Driver, Loc, Loop, State

Values = dict[str, int | bool]

# f_list values and entry classes (proofs.encoding)
NONE, L4, L2, R4, R2 = 0, 1, 2, 3, 4
CLS_OK, CLS_REFUSE, CLS_FREE, CLS_WARN = 0, 1, 2, 3

SITE_OF_CMD = {
    "START": "START",
    "GET_TARGET": "GET_TARGET",
    "LOCK": "LOCK",
    "UNLOCK": "UNLOCK",
    "GUEST_ID": "GUEST_ID",
    "BATCHED_LOCK": "BLOCK",
    "BATCHED_2M_LOCK": "BLOCK",
    "BATCHED_UNLOCK": "BUNLOCK",
    "BATCHED_2M_UNLOCK": "BUNLOCK",
}


class NotRepresentable(Exception):
    """``f`` is in a configuration the abstraction does not represent (two places at once,
    a frame of a partly freed 2 MiB block): only reachable after a bad free or a corrupt list."""


def f_allocation(state: State, f: int) -> tuple[bool, bool]:
    """Whether the allocator has ``f`` out as the first frame of a block, and at order 9."""
    return allocation_in(state.env.memory)(f)


def allocation_in(mem: Memory) -> Callable[[int], tuple[bool, bool]]:
    """:func:`f_allocation` over the allocator ``mem``, for many frames: the run lookups
    (:mod:`vmballoon.core.intervals`) written out, since property conformance asks it
    about a hundred frames of each of thousands of states."""
    orphans, blocks, free, base, end = mem.orphans, mem.blocks, mem.free, mem.base, mem.end

    def of(f: int) -> tuple[bool, bool]:
        if orphans:
            i = bisect_right(orphans, (f, INF)) - 1
            if i >= 0 and orphans[i][1] > f:
                raise NotRepresentable("f is a frame of a partly freed 2 MiB block")
        b = f >> 9
        i = bisect_right(blocks, (b, INF)) - 1
        in_block = i >= 0 and blocks[i][1] > b
        o9 = in_block and f % PAGES_PER_2M == 0
        allocated = False
        if base <= f < end and (o9 or not in_block):
            i = bisect_right(free, (f, INF)) - 1
            allocated = not (i >= 0 and free[i][1] > f)
        return allocated, allocated and o9

    return of


def _f_list(f: int, p4: list[int], p2: list[int], r4: list[int], r2: list[int]) -> int:
    """The list ``f`` is on (``NONE``: none), given the two balloon lists and the two
    refused ones."""
    places = [(L4, p4.count(f)), (L2, p2.count(f)), (R4, r4.count(f)), (R2, r2.count(f))]
    listed = [(k, n) for k, n in places if n]
    if len(listed) > 1 or any(n > 1 for _, n in listed):
        raise NotRepresentable("f on two lists")
    return listed[0][0] if listed else NONE


def _driver_fields(d: Driver) -> Values:
    """The abstract fields of ``struct vmballoon`` that do not depend on ``f``."""
    ops = 0 if d.ops is None else (1 if d.ops == OPS_BASIC else 2)
    assert d.ops in (None, OPS_BASIC, OPS_BATCHED)
    return {
        "size": d.size,
        "target": d.target,
        "rate_alloc": d.rate_alloc,
        "slow": d.slow_allocation_cycles,
        "reset": d.reset_required,
        "caps": d.capabilities,
        "supported": d.supported_page_sizes,
        "batch_max": d.batch_max_pages,
        "ops": ops,
        "n_ref0": d.n_refused[0],
        "n_ref1": d.n_refused[1],
        "bpage": d.batch_page is not None,
        "page_null": d.page is None,
        "page_hi": d.page is not None and d.page > U32_MASK,
        "page_eq_batch": d.page is not None and d.page == d.batch_page,
        "doorbell": d.doorbell is not None,
        "warned": d.warned,
    }


def _loop_fields(lp: Loop) -> Values:
    """The abstract fields of the inflate or deflate loop's locals."""
    return {
        "l_rate": lp.rate,
        "l_alloc": lp.allocations,
        "l_num": lp.num_pages,
        "l_err": lp.error & U32_MASK,
        "l_cansleep": lp.cansleep,
        "l_is2m": lp.is_2m,
        "l_allocated": lp.allocated & U32_MASK,
    }


def alpha(
    state: State,
    ghost: Ghost,
    f: int,
    bad_free: bool = False,
    freed_held: bool = False,
    proto_bad: bool = False,
) -> Values:
    """α(state): the abstract state seen from frame ``f``."""
    d, lp = state.drv, state.loop
    p4, p2 = balloon_pages(state)
    r4, r2 = to_list(d.refused[0]), to_list(d.refused[1])
    f_list = _f_list(f, p4, p2, r4, r2)
    batch = in_flight(state)
    if batch.count(f) > 1:
        raise NotRepresentable("f twice in the batch")
    cursor = to_list(lp.cursor)
    f_alloc, f_o9 = f_allocation(state, f)
    return {
        "loc": int(state.loc),
        **_driver_fields(d),
        **_loop_fields(lp),
        "n4": len(p4) & U32_MASK,
        "n2": len(p2) & U32_MASK,
        "r4": len(r4) & U32_MASK,
        "r2": len(r2) & U32_MASK,
        "ncur": len(cursor) & U32_MASK,
        "ram_big": state.env.totalram > U32_MASK,
        "f_pfn": f,
        "f_alloc": f_alloc,
        "f_o9": f_o9,
        "f_list": f_list,
        "f_cur": f in cursor,
        "f_batch": f in batch,
        "f_bpage": d.batch_page == f,
        "f_page": d.page == f,
        "f_host": f in ghost.held,
        "neg": ghost.negotiated,
        "db_ok": ghost.doorbell_ok,
        "target_ok": ghost.target_ok,
        "bad_free": bad_free,
        "freed_held": freed_held,
        "proto_bad": proto_bad,
    }


def _lock_class(status: int) -> int:
    if status == 0:
        return CLS_OK
    if status in (ERROR_PPN_PINNED, ERROR_PPN_INVALID):
        return CLS_REFUSE
    if status in (ERROR_RESET, ERROR_PPN_NOTNEEDED):
        return CLS_FREE
    return CLS_WARN


def _no_inputs() -> Values:
    """The inputs of a step that issues no command, allocates nothing and creates no
    doorbell: every one at its default."""
    out: Values = {
        "entry": 0,
        "e_present": False,
        "e_ok": 0,
        "e_ref": 0,
        "e_free": 0,
        "e_warn": 0,
        "f_cls": 0,
        "f_rank": 0,
        "a_ok": False,
        "a_f": False,
        "a_hi": False,
        "a_eqpage": False,
        "v_ok": False,
        "h_f": False,
        "h_hi": False,
    }
    for site in ("START", "GET_TARGET", "LOCK", "UNLOCK", "BLOCK", "BUNLOCK", "GUEST_ID"):
        out[f"{site}_st"] = 0
        out[f"{site}_res"] = 0
    for site in ("DBSET", "DBINV"):
        out[f"{site}_st"] = 0
        out[f"{site}_res"] = 0
    return out


def _batch_inputs(out: Values, prev: State, ev: Event, resp: Response, f: int) -> None:
    """Into ``out``: the per-page statuses of a batched command, as counts per class, and
    ``f``'s class and how many refusable entries precede it."""
    out["e_present"] = resp.entries is not None
    counts = [0, 0, 0, 0]
    refusable_before = 0
    for pfn, st in _batch_statuses(prev, ev, resp):
        cls = _lock_class(st)  # UNLOCK reads only OK / not OK
        if pfn == f:
            out["f_cls"] = cls
            out["f_rank"] = refusable_before
        else:
            counts[cls] += 1
        if cls == CLS_REFUSE:
            refusable_before += 1
    out["e_ok"], out["e_ref"], out["e_free"], out["e_warn"] = counts


def _hv_inputs(out: Values, prev: State, ev: Event, resp: Response, f: int) -> None:
    """Into ``out``: the host's answer ``resp`` to the backdoor command ``ev``, at the
    command's input site."""
    cmd = ev["cmd"]
    if cmd == "VMCI_DOORBELL_SET":
        invalid = ev["arg1"] == VMCI_INVALID_ID and ev["arg2"] == VMCI_INVALID_ID
        site = "DBINV" if invalid else "DBSET"
    else:
        site = SITE_OF_CMD[cmd]
    out[f"{site}_st"] = ev["status"]
    out[f"{site}_res"] = ev["result"]
    if site in ("BLOCK", "BUNLOCK"):
        _batch_inputs(out, prev, ev, resp, f)


def step_inputs(prev: State, nxt: State, f: int) -> Values:
    """The encoding's inputs that make its step from α(prev) reproduce ``prev -> nxt``."""
    out = _no_inputs()
    k = 0
    for ev in new_events(prev, nxt):
        kind = ev["ev"]
        if kind == "step" and prev.loc == Loc.IDLE:
            out["entry"] = {"work": 0, "doorbell": 1, "exit": 2}[ev["name"]]
        elif kind == "hv":
            resp = _response(prev, k)
            k += 1
            _hv_inputs(out, prev, ev, resp, f)
        elif kind == "alloc":
            pfn = ev["pfn"]
            out["a_ok"] = pfn is not None
            out["a_f"] = pfn == f
            out["a_hi"] = pfn is not None and pfn != f and pfn > U32_MASK
            out["a_eqpage"] = pfn is not None and pfn != f and pfn == prev.drv.page
        elif kind == "vmci_create":
            out["v_ok"] = ev["ok"]
    if prev.loc == Loc.D_LOOP and prev.loop.cursor is not None:
        head = prev.loop.cursor[0]
        out["h_f"] = head == f
        out["h_hi"] = head != f and head > U32_MASK
    return out


def candidate_frames(prev: State, nxt: State) -> list[int]:
    """Frames worth watching across ``prev -> nxt``: the ones the step touches, the batch,
    list heads, the batch page, ``b->page``, a free frame and a frame outside the pool."""
    out: list[int] = []
    for ev in new_events(prev, nxt):
        for key in ("pfn", "arg1"):
            v = ev.get(key)
            if isinstance(v, int) and ev["ev"] != "step":
                out.append(v)
    for st in (prev, nxt):
        d = st.drv
        out.extend(in_flight(st))
        for lst in (*d.pages, *d.refused, st.loop.cursor, st.loop.readded):
            if lst is not None:
                out.append(lst[0])
        for p in (d.batch_page, d.page):
            if p is not None:
                out.append(p)
    mem = prev.env.memory
    if mem.free:
        out.append(mem.free[0][0])
        out.append(mem.free[-1][1] - 1)
    out.append(mem.end)
    seen: set[int] = set()
    uniq = []
    for p in out:
        if p not in seen and 0 <= p < (1 << 52):
            seen.add(p)
            uniq.append(p)
    return uniq


__all__ = [
    "DEFLATE_LOCS",
    "NotRepresentable",
    "allocation_in",
    "alpha",
    "candidate_frames",
    "f_allocation",
    "step_inputs",
]
