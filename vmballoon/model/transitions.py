"""The transitions of the driver: one pure function per control location.

``TRANSITIONS[loc](state)`` takes one atomic step from ``loc``: one reset
phase, one allocation attempt, one lock or unlock command with its batch.
Each function names the C it models.  Entry points (``work``, ``doorbell``,
``exit``) are in :mod:`vmballoon.model.machine`.
"""

from __future__ import annotations

from collections.abc import Callable

from vmballoon.core.protocol import (
    BATCH_MAX_PAGES,
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BATCHED_2M,
    CAP_SIGNALLED_WAKEUP,
    CAPABILITIES,
    CMD_GET_TARGET,
    CMD_GUEST_ID,
    CMD_START,
    CMD_VMCI_DOORBELL_SET,
    GUEST_ID_LINUX,
    PAGE_SHIFT,
    PAGES_PER_2M,
    RATE_ALLOC_INC,
    RATE_ALLOC_MAX,
    RATE_ALLOC_MIN,
    SLOW_CYCLES,
    SUCCESS_WITH_CAPABILITIES,
    U32_MASK,
    U64_MASK,
    UINT_MAX,
    VMCI_ERROR_NO_RESOURCES,
    VMCI_INVALID_ID,
    to_int32,
)
from vmballoon.model import listed as ls
from vmballoon.model import ops
from vmballoon.model.plist import PList, concat
from vmballoon.model.state import EMPTY_LOOP, OPS_BASIC, OPS_BATCHED, STAT, Loc, Loop, State
from vmballoon.model.tx import Crash, Tx

Transition = Callable[[State], State]


def run_tx(state: State, fn: Callable[[Tx], Loc]) -> State:
    """Run ``fn`` on a scratch pad of ``state``; a :class:`Crash` ends at ``CRASHED``."""
    tx = Tx(state)
    try:
        loc = fn(tx)
    except Crash:
        return tx.commit(Loc.CRASHED)
    return tx.commit(loc)


def _guarded(fn: Callable[[Tx], Loc]) -> Transition:
    """The transition that runs ``fn`` on a scratch pad (see :func:`run_tx`)."""

    def step(state: State) -> State:
        return run_tx(state, fn)

    step.__name__ = fn.__name__
    step.__doc__ = fn.__doc__
    return step


# -- shared pieces ----------------------------------------------------------------------


def _send_start(tx: Tx, req_caps: int) -> bool:
    """``vmballoon_send_start`` (lines 322-354)."""
    tx.inc("start")
    response = tx.hv(CMD_START, req_caps, 0)
    status = response.status
    if status == SUCCESS_WITH_CAPABILITIES:
        tx.capabilities = response.result & U64_MASK
        success = True
    elif status == 0:
        tx.capabilities = CAP_BASIC
        success = True
    else:
        success = False
    two_m = bool(tx.capabilities & CAP_BATCHED_2M)
    if tx.state.variant.has("no_2m_without_batching"):
        two_m = two_m and bool(tx.capabilities & CAP_BATCHED)
    tx.supported = 2 if two_m else 1
    if not success:
        tx.inc("start_fail")
    return success


def _vmci_cleanup(tx: Tx) -> None:
    """``vmballoon_vmci_cleanup`` (lines 1013-1025)."""
    tx.hv(CMD_VMCI_DOORBELL_SET, VMCI_INVALID_ID, VMCI_INVALID_ID)
    tx.inc("doorbell_unset")
    if tx.doorbell is not None:
        tx.env = tx.env.vmci_destroy()
        tx.doorbell = None


def _pop(tx: Tx) -> None:
    """``vmballoon_pop`` (lines 559-582): free every page without telling the host."""
    for idx in (0, 1):
        is_2m = bool(idx)
        size_per_page = ops.page_size(is_2m)
        lst = tx.pages[idx]
        while lst is not None:
            pfn, lst = lst
            tx.pages[idx] = lst
            tx.list_del(pfn)
            tx.free_page(pfn, is_2m)
            tx.inc("free", idx)
            tx.size = (tx.size - size_per_page) & U32_MASK
    if tx.batch_page is not None:  # free_page(0) is a no-op
        tx.env = tx.env.free(tx.batch_page, 0)
    tx.batch_page = None


# -- vmballoon_work and vmballoon_reset ---------------------------------------------------


@_guarded
def work_begin(tx: Tx) -> Loc:
    """``vmballoon_work`` (1106-1115): count the timer, reset if required."""
    tx.inc("timer")
    return Loc.R_CLEANUP if tx.reset_required else Loc.W_TARGET


@_guarded
def reset_cleanup(tx: Tx) -> Loc:
    """``vmballoon_reset`` line 1066: ``vmballoon_vmci_cleanup``."""
    _vmci_cleanup(tx)
    return Loc.R_POP


@_guarded
def reset_pop(tx: Tx) -> Loc:
    """``vmballoon_reset`` line 1069: ``vmballoon_pop``."""
    _pop(tx)
    return Loc.R_START


@_guarded
def reset_start(tx: Tx) -> Loc:
    """``vmballoon_reset`` lines 1071-1072: START with all capabilities."""
    if not _send_start(tx, CAPABILITIES):
        return Loc.W_TARGET
    return Loc.R_OPS


@_guarded
def reset_ops(tx: Tx) -> Loc:
    """``vmballoon_reset`` lines 1074-1092: ops, batch size and batch page."""
    if tx.capabilities & CAP_BATCHED:
        tx.ops = OPS_BATCHED
        tx.batch_max = BATCH_MAX_PAGES
        pfn, tx.env = tx.env.alloc(0, "kernel")  # vmballoon_init_batching (986-996)
        if pfn is None:
            return Loc.R_START0
        tx.batch_page = pfn
    elif tx.capabilities & CAP_BASIC:
        tx.ops = OPS_BASIC
        tx.batch_max = 1
    elif tx.state.variant.has("reset_needs_ops"):
        return Loc.W_TARGET
    tx.reset_required = False
    return Loc.R_VMCI


@_guarded
def reset_start0(tx: Tx) -> Loc:
    """``vmballoon_reset`` line 1084: tell the host batching failed with START(0)."""
    _send_start(tx, 0)
    return Loc.W_TARGET


@_guarded
def reset_vmci(tx: Tx) -> Loc:
    """``vmballoon_vmci_init`` (lines 1030-1055)."""
    error = 0
    if tx.capabilities & CAP_SIGNALLED_WAKEUP:
        handle, tx.env = tx.env.vmci_create()
        if handle is None:
            error = VMCI_ERROR_NO_RESOURCES
        else:
            tx.doorbell = handle
            response = tx.hv(CMD_VMCI_DOORBELL_SET, handle[0], handle[1])
            if tx.state.variant.has("doorbell_set_status"):
                error = 0 if response.status == 0 else -1
            else:
                error = to_int32(response.result)
            tx.inc("doorbell_set")
    if error != 0:
        _vmci_cleanup(tx)
    return Loc.R_GUEST_ID


@_guarded
def reset_guest_id(tx: Tx) -> Loc:
    """``vmballoon_send_guest_id`` (lines 377-392)."""
    response = tx.hv(CMD_GUEST_ID, GUEST_ID_LINUX, 0)
    tx.inc("guest_type")
    if not tx.check_status(response.status):
        tx.inc("guest_type_fail")
    return Loc.W_TARGET


@_guarded
def work_target(tx: Tx) -> Loc:
    """``vmballoon_work`` lines 1117-1130 with ``vmballoon_send_get_target`` (405-438)."""
    if tx.slow > 0:
        tx.slow -= 1
    if tx.reset_required:
        return Loc.IDLE
    limit = tx.env.totalram
    if limit > U32_MASK:
        return Loc.IDLE
    tx.inc("target")
    response = tx.hv(CMD_GET_TARGET, limit, 0)
    if not tx.check_status(response.status):
        tx.inc("target_fail")
        return Loc.IDLE
    target = response.result & U32_MASK
    tx.target = target
    if tx.size < target:
        # vmballoon_inflate, lines 821-828
        if tx.slow:
            rate, is_2m = tx.rate_alloc, False
        else:
            rate, is_2m = UINT_MAX, tx.supported == 2
        tx.loop = EMPTY_LOOP._replace(rate=rate, is_2m=is_2m)
        return Loc.I_LOOP
    if (target == 0 or tx.size > ((target + PAGES_PER_2M) & U32_MASK)) and tx.supported > 0:
        # vmballoon_deflate, line 938: the loop over page sizes starts with 4 KiB
        tx.loop = EMPTY_LOOP._replace(cursor=tx.pages[0])
        tx.pages[0] = None
        return Loc.D_LOOP
    return Loc.IDLE


# -- vmballoon_inflate (lines 791-926) ---------------------------------------------------


def _inc(stats: tuple[int, ...], i: int) -> tuple[int, ...]:
    """``STATS_INC`` on a statistics tuple (unsigned int: wraps)."""
    return (*stats[:i], (stats[i] + 1) & U32_MASK, *stats[i + 1 :])


_ALLOC, _SLEEP_ALLOC = STAT["alloc"], STAT["sleep_alloc"]


def inflate_loop(state: State) -> State:
    """One iteration of the loop of lines 833-907, up to the lock of a full batch.

    The common case (the allocation succeeds, the page joins the batch) builds the
    next state directly; it is the hot path of every inflation.  Failed
    allocations and faults go through :class:`Tx` like every other transition.
    """
    drv, loop = state.drv, state.loop
    is_2m = loop.is_2m
    size_per_page = PAGES_PER_2M if is_2m else 1
    if drv.reset_required or ((drv.size + loop.num_pages * size_per_page) & U32_MASK) >= drv.target:
        return State(Loc.I_TAIL, drv, loop, state.stats, state.env, state.variant, state.entry)
    stats = _inc(state.stats, _SLEEP_ALLOC if loop.cansleep else _ALLOC + int(is_2m))
    pfn, env = state.env.alloc(9 if is_2m else 0, "cansleep" if loop.cansleep else "nosleep")
    mid = State(Loc.I_LOOP, drv, loop, stats, env, state.variant, state.entry)
    if pfn is None:
        return run_tx(mid, _inflate_alloc_failed)
    allocations = loop.allocations
    if state.variant.has("count_allocations"):
        allocations = (allocations + 1) & U32_MASK
    num_pages = (loop.num_pages + 1) & U32_MASK
    if drv.ops == OPS_BATCHED and drv.batch_page is not None:
        fill: PList = ((pfn << PAGE_SHIFT) & U64_MASK, loop.fill)
    elif drv.ops == OPS_BASIC:
        fill = loop.fill
        drv = drv.with_page_listed(pfn, drv.listed)
    else:  # NULL ops or NULL batch page: add_page faults

        def add(tx: Tx) -> Loc:
            ops.add_page(tx, loop.num_pages, pfn)
            raise AssertionError("add_page was expected to fault")

        return run_tx(mid, add)
    loop = Loop(
        loop.rate,
        allocations,
        num_pages,
        loop.error,
        loop.cansleep,
        is_2m,
        fill,
        loop.cursor,
        loop.readded,
        loop.allocated + 1,
    )
    if num_pages == drv.batch_max_pages:
        loc = Loc.I_LOCK
    else:
        loc = Loc.I_TAIL if allocations >= loop.rate else Loc.I_LOOP
    return State(loc, drv, loop, stats, env, state.variant, state.entry)


def _inflate_alloc_failed(tx: Tx) -> Loc:
    """Lines 844-890: the allocation returned NULL."""
    loop = tx.loop
    tx.inc("alloc_fail", int(loop.is_2m))
    if loop.is_2m:
        return Loc.I_FALLBACK
    if loop.cansleep:
        tx.rate_alloc = max(tx.rate_alloc // 2, RATE_ALLOC_MIN)
        tx.inc("sleep_alloc_fail")
        return Loc.I_TAIL
    tx.slow = SLOW_CYCLES
    if loop.allocations >= tx.rate_alloc:
        return Loc.I_TAIL
    tx.loop = loop._replace(cansleep=True, rate=tx.rate_alloc)
    return Loc.I_LOOP


@_guarded
def inflate_lock(tx: Tx) -> Loc:
    """Lines 893-906: lock the full batch; stop on error or when the rate is reached."""
    loop = tx.loop
    error = ops.lock(tx, loop.num_pages, loop.is_2m)
    tx.loop = tx.loop.batch_done(error)
    if error:
        return Loc.I_TAIL
    return Loc.I_TAIL if loop.allocations >= loop.rate else Loc.I_LOOP


@_guarded
def inflate_fallback(tx: Tx) -> Loc:
    """Lines 847-859: a 2 MiB allocation failed: lock what we have, go on with 4 KiB."""
    ops.lock(tx, tx.loop.num_pages, True)
    tx.loop = tx.loop._replace(num_pages=0, fill=None, is_2m=False)
    return Loc.I_LOOP


@_guarded
def inflate_tail(tx: Tx) -> Loc:
    """Lines 909-910: lock the partial batch."""
    loop = tx.loop
    if loop.num_pages > 0:
        ops.lock(tx, loop.num_pages, loop.is_2m)
        tx.loop = tx.loop.batch_done(tx.loop.error)
    return Loc.I_END


@_guarded
def inflate_end(tx: Tx) -> Loc:
    """Lines 916-925: raise the rate after a clean run; release the refused pages."""
    loop = tx.loop
    if loop.error == 0 and loop.allocations >= tx.rate_alloc:
        mult = loop.allocations // tx.rate_alloc
        tx.rate_alloc = min((tx.rate_alloc + mult * RATE_ALLOC_INC) & U32_MASK, RATE_ALLOC_MAX)
    for idx in (1, 0):  # vmballoon_release_refused_pages (758-772), 2 MiB first
        lst = tx.refused[idx]
        while lst is not None:
            pfn, lst = lst
            tx.refused[idx] = lst
            tx.list_del(pfn)
            tx.free_page(pfn, bool(idx))
            tx.inc("refused_free", idx)
        tx.n_refused[idx] = 0
    tx.loop = EMPTY_LOOP
    return Loc.IDLE


# -- vmballoon_deflate (lines 931-972) ---------------------------------------------------


def deflate_loop(state: State) -> State:
    """One iteration of ``list_for_each_entry_safe`` (lines 945-967) up to a full batch.

    Like :func:`inflate_loop`, the common case builds the next state directly.
    """
    drv, loop = state.drv, state.loop
    size_per_page = PAGES_PER_2M if loop.is_2m else 1
    if (
        loop.cursor is None
        or drv.reset_required
        or (
            drv.target > 0
            and ((drv.size - loop.num_pages * size_per_page) & U32_MASK)
            < ((drv.target + PAGES_PER_2M) & U32_MASK)
        )
    ):
        return State(Loc.D_TAIL, drv, loop, state.stats, state.env, state.variant, state.entry)
    pfn, rest = loop.cursor
    listed = ls.remove(drv.listed, pfn)  # list_del(&page->lru)
    num_pages = (loop.num_pages + 1) & U32_MASK
    if drv.ops == OPS_BATCHED and drv.batch_page is not None:
        fill: PList = ((pfn << PAGE_SHIFT) & U64_MASK, loop.fill)
        drv = drv.with_page_listed(drv.page, listed)
    elif drv.ops == OPS_BASIC:
        fill = loop.fill
        drv = drv.with_page_listed(pfn, listed)
    else:  # NULL ops or NULL batch page: add_page faults
        mid = State(
            Loc.D_LOOP,
            drv.with_page_listed(drv.page, listed),
            loop.deflate_step(rest, loop.num_pages, loop.fill),
            state.stats,
            state.env,
            state.variant,
            state.entry,
        )

        def add(tx: Tx) -> Loc:
            ops.add_page(tx, loop.num_pages, pfn)
            raise AssertionError("add_page was expected to fault")

        return run_tx(mid, add)
    loc = Loc.D_UNLOCK if num_pages == drv.batch_max_pages else Loc.D_LOOP
    return State(
        loc,
        drv,
        loop.deflate_step(rest, num_pages, fill),
        state.stats,
        state.env,
        state.variant,
        state.entry,
    )


def _end_of_list(tx: Tx) -> None:
    """Put the list iterated by the deflate loop back together: re-added pages first."""
    loop = tx.loop
    idx = int(loop.is_2m)
    tx.pages[idx] = concat(loop.readded, concat(tx.pages[idx], loop.cursor))
    tx.loop = loop._replace(cursor=None, readded=None)


@_guarded
def deflate_unlock(tx: Tx) -> Loc:
    """Lines 956-964: unlock the full batch; return on error."""
    loop = tx.loop
    error = ops.unlock(tx, loop.num_pages, loop.is_2m)
    tx.loop = tx.loop.batch_done(tx.loop.error)
    if error:
        _end_of_list(tx)
        tx.loop = EMPTY_LOOP
        return Loc.IDLE
    return Loc.D_LOOP


@_guarded
def deflate_tail(tx: Tx) -> Loc:
    """Lines 969-971: unlock the partial batch, then the next page size (line 938)."""
    loop = tx.loop
    if loop.num_pages > 0:
        ops.unlock(tx, loop.num_pages, loop.is_2m)
    _end_of_list(tx)
    nxt = int(loop.is_2m) + 1
    if nxt >= tx.supported:
        tx.loop = EMPTY_LOOP
        return Loc.IDLE
    tx.loop = EMPTY_LOOP._replace(is_2m=True, cursor=tx.pages[nxt])
    tx.pages[nxt] = None
    return Loc.D_LOOP


# -- vmballoon_exit (lines 1294-1308) ----------------------------------------------------


@_guarded
def exit_cleanup(tx: Tx) -> Loc:
    """Line 1296: ``vmballoon_vmci_cleanup``."""
    _vmci_cleanup(tx)
    return Loc.E_START0


@_guarded
def exit_start0(tx: Tx) -> Loc:
    """Line 1306: reset the connection (START(0)) before freeing memory."""
    _send_start(tx, 0)
    return Loc.E_POP


@_guarded
def exit_pop(tx: Tx) -> Loc:
    """Line 1307: ``vmballoon_pop``."""
    _pop(tx)
    return Loc.EXITED


TRANSITIONS: dict[Loc, Transition] = {
    Loc.W_BEGIN: work_begin,
    Loc.R_CLEANUP: reset_cleanup,
    Loc.R_POP: reset_pop,
    Loc.R_START: reset_start,
    Loc.R_OPS: reset_ops,
    Loc.R_START0: reset_start0,
    Loc.R_VMCI: reset_vmci,
    Loc.R_GUEST_ID: reset_guest_id,
    Loc.W_TARGET: work_target,
    Loc.I_LOOP: inflate_loop,
    Loc.I_LOCK: inflate_lock,
    Loc.I_FALLBACK: inflate_fallback,
    Loc.I_TAIL: inflate_tail,
    Loc.I_END: inflate_end,
    Loc.D_LOOP: deflate_loop,
    Loc.D_UNLOCK: deflate_unlock,
    Loc.D_TAIL: deflate_tail,
    Loc.E_CLEANUP: exit_cleanup,
    Loc.E_START0: exit_start0,
    Loc.E_POP: exit_pop,
}
"""The transition out of each control location where the driver is running."""

__all__ = ["TRANSITIONS", "Transition"]
