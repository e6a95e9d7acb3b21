"""The two ``struct vmballoon_ops`` tables (lines 974-984) and the commands they send.

Each function here runs inside one transition on a :class:`model.tx.Tx`.  They
return the C's ``int`` result (0 or -EIO) and raise :class:`model.tx.Crash` when
the guest would crash.
"""

from __future__ import annotations

from vmballoon.core.protocol import (
    BATCH_MAX_PAGES,
    BATCH_PAGE_MASK,
    BATCH_STATUS_MASK,
    CMD_BATCHED_2M_LOCK,
    CMD_BATCHED_2M_UNLOCK,
    CMD_BATCHED_LOCK,
    CMD_BATCHED_UNLOCK,
    CMD_LOCK,
    CMD_UNLOCK,
    EIO,
    ERROR_PPN_INVALID,
    ERROR_PPN_NOTNEEDED,
    ERROR_PPN_PINNED,
    ERROR_RESET,
    MAX_REFUSED,
    PAGE_SHIFT,
    PAGES_PER_2M,
    U32_MASK,
    U64_MASK,
    to_int32,
)
from vmballoon.core.scenario import Response
from vmballoon.model.plist import iterate
from vmballoon.model.state import OPS_BASIC
from vmballoon.model.tx import Tx, pfn_arg


def page_size(is_2m: bool) -> int:
    """``vmballoon_page_size`` (lines 394-400): a ``u16``."""
    return PAGES_PER_2M if is_2m else 1


def add_page(tx: Tx, idx: int, pfn: int) -> None:
    """``b->ops->add_page(b, idx, page)``: basic (774-777) or batched (779-784)."""
    if tx.ops is None:
        raise tx.crash("null_deref", None)
    if tx.ops == OPS_BASIC:
        tx.page = pfn
        return
    if tx.batch_page is None:
        raise tx.crash("null_deref", None)
    entry = (pfn << PAGE_SHIFT) & U64_MASK  # (u64)page_to_pfn(p) << PAGE_SHIFT
    tx.loop = tx.loop.with_fill((entry, tx.loop.fill))


def lock(tx: Tx, num_pages: int, is_2m: bool) -> int:
    """``b->ops->lock(b, num_pages, is_2m_pages, &b->target)``."""
    if tx.ops is None:
        raise tx.crash("null_deref", None)
    if tx.ops == OPS_BASIC:
        return _lock_page(tx)
    return _lock_batched_page(tx, num_pages, is_2m)


def unlock(tx: Tx, num_pages: int, is_2m: bool) -> int:
    """``b->ops->unlock(b, num_pages, is_2m_pages, &b->target)``."""
    if tx.ops is None:
        raise tx.crash("null_deref", None)
    if tx.ops == OPS_BASIC:
        return _unlock_page(tx)
    return _unlock_batched_page(tx, num_pages, is_2m)


def _set_target(tx: Tx, response: Response) -> None:
    """The macro writes its result into ``*target`` (unsigned int): low 32 bits."""
    if response.status == 0 or not tx.state.variant.has("target_on_success"):
        tx.target = response.result & U32_MASK


def _lock_page(tx: Tx) -> int:
    """``vmballoon_lock_page`` (589-630) with ``vmballoon_send_lock_page`` (445-464)."""
    page = tx.page
    pfn = pfn_arg(page)
    hv_status = 0  # uninitialised in the seed; only read after it is written there
    if pfn > U32_MASK:  # pfn32 != pfn (lines 451-453)
        locked = -1
    else:
        tx.inc("lock", 0)
        response = tx.hv(CMD_LOCK, pfn, 0)
        _set_target(tx, response)
        hv_status = to_int32(response.status)  # *hv_status (unsigned int) into int
        if tx.check_status(response.status):
            locked = 0
        else:
            tx.inc("lock_fail", 0)
            locked = 1
    refused = locked != 0 if tx.state.variant.has("lock_64bit_refused") else locked > 0
    if refused:
        tx.inc("refused_alloc", 0)
        if hv_status in (ERROR_RESET, ERROR_PPN_NOTNEEDED):
            tx.free_page(page, False)
            return -EIO
        if tx.n_refused[0] < MAX_REFUSED:
            tx.n_refused[0] += 1
            tx.list_add_refused(0, page)
        else:
            tx.free_page(page, False)
        return -EIO
    tx.list_add_pages(0, page)
    tx.size = (tx.size + 1) & U32_MASK
    return 0


def _batch_command(tx: Tx, lock_cmd: bool, num_pages: int, is_2m: bool) -> tuple[bool, list[int]]:
    """``vmballoon_send_batched_lock`` (466-487) / ``_unlock`` (514-535).

    Returns whether the status was SUCCESS and the batch entries 0..num_pages-1
    as the driver reads them afterwards (the host writes status bits only when
    the command names the batch page).
    """
    if tx.state.variant.has("batch_pfn"):
        arg1 = pfn_arg(tx.batch_page)
    else:
        arg1 = pfn_arg(tx.page)  # page_to_pfn(b->page)
    name = "lock" if lock_cmd else "unlock"
    tx.inc(name, int(is_2m))
    if lock_cmd:
        cmd = CMD_BATCHED_2M_LOCK if is_2m else CMD_BATCHED_LOCK
    else:
        cmd = CMD_BATCHED_2M_UNLOCK if is_2m else CMD_BATCHED_UNLOCK
    entries = list(iterate(tx.loop.fill))
    entries.reverse()
    del entries[num_pages:]
    batch = tuple(entries) if tx.batch_page is not None else None  # what the host may read
    response = tx.hv(cmd, arg1, num_pages, batch)
    _set_target(tx, response)
    if tx.batch_page is not None and arg1 == tx.batch_page and response.entries is not None:
        for i in range(min(num_pages, len(response.entries), BATCH_MAX_PAGES, len(entries))):
            entries[i] = (entries[i] & ~BATCH_STATUS_MASK) | (
                response.entries[i] & BATCH_STATUS_MASK
            )
    ok = tx.check_status(response.status)
    if not ok:
        tx.inc(name + "_fail", int(is_2m))
    return ok, entries


def _batch_entry(tx: Tx, entries: list[int], i: int) -> tuple[int, int]:
    """``vmballoon_batch_get_pa`` (182-185) and ``_get_status`` (187-191) of entry ``i``."""
    if tx.batch_page is None:
        raise tx.crash("null_deref", None)
    entry = entries[i]
    return (entry & BATCH_PAGE_MASK) >> PAGE_SHIFT, entry & BATCH_STATUS_MASK


def _lock_batched_page(tx: Tx, num_pages: int, is_2m: bool) -> int:
    """``vmballoon_lock_batched_page`` (lines 632-684)."""
    size_per_page = page_size(is_2m)
    idx = int(is_2m)
    ok, entries = _batch_command(tx, True, num_pages, is_2m)
    if not ok:
        for i in range(num_pages):
            pfn, _ = _batch_entry(tx, entries, i)
            tx.free_page(pfn, is_2m)
        return -EIO
    for i in range(num_pages):
        pfn, status = _batch_entry(tx, entries, i)
        if status == 0:
            tx.list_add_pages(idx, pfn)
            tx.size = (tx.size + size_per_page) & U32_MASK
        elif status in (ERROR_PPN_PINNED, ERROR_PPN_INVALID, ERROR_RESET, ERROR_PPN_NOTNEEDED):
            if status in (ERROR_PPN_PINNED, ERROR_PPN_INVALID) and tx.n_refused[idx] < MAX_REFUSED:
                tx.list_add_refused(idx, pfn)
                tx.n_refused[idx] += 1
            else:
                tx.free_page(pfn, is_2m)
        else:
            tx.warn_on_once()
            if tx.state.variant.has("warn_status_frees"):
                tx.free_page(pfn, is_2m)
    return 0


def _unlock_page(tx: Tx) -> int:
    """``vmballoon_unlock_page`` (691-712) with ``vmballoon_send_unlock_page`` (493-512)."""
    page = tx.page
    pfn = pfn_arg(page)
    if pfn > U32_MASK:
        ok = False
    else:
        tx.inc("unlock", 0)
        response = tx.hv(CMD_UNLOCK, pfn, 0)
        _set_target(tx, response)
        ok = tx.check_status(response.status)
        if not ok:
            tx.inc("unlock_fail", 0)
    if not ok:
        tx.list_add_pages(0, page)
        return -EIO
    tx.free_page(page, False)
    tx.inc("free", 0)
    tx.size = (tx.size - 1) & U32_MASK
    return 0


def _unlock_batched_page(tx: Tx, num_pages: int, is_2m: bool) -> int:
    """``vmballoon_unlock_batched_page`` (lines 714-752)."""
    size_per_page = page_size(is_2m)
    idx = int(is_2m)
    ok, entries = _batch_command(tx, False, num_pages, is_2m)
    ret = 0 if ok else -EIO
    for i in range(num_pages):
        pfn, status = _batch_entry(tx, entries, i)
        if not ok or status != 0:
            tx.list_add_pages(idx, pfn)
        else:
            tx.free_page(pfn, is_2m)
            tx.inc("free", idx)
            tx.size = (tx.size - size_per_page) & U32_MASK
    return ret


__all__ = ["add_page", "lock", "page_size", "unlock"]
