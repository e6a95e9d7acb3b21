"""``vmw_balloon.c`` transliterated, function by function, into Python.

Each function is named like its C counterpart and cites its lines in
``seed/vmw_balloon.c``; control flow (``while``/``break``/``continue``,
switch fall-through) follows the C so the two can be read side by side.

Conventions:

* A ``struct page *`` is the page's PFN (``None`` for NULL); list membership
  lives in :class:`reference.klist.Lru` (the pages' ``lru`` fields).
* C integer types are kept with :mod:`reference.cint` on every update.
* Every ``unsigned int *target`` parameter of the C is ``&b->target`` at
  every call site (lines 848, 894-895, 910, 959-960, 970), so the functions here
  write ``b.target`` directly instead of taking a pointer.
* A fix of :mod:`vmballoon.variants` is an ``if b.variant.has(name)`` at the
  place it names; the ``else`` branch is the seed as written.
* A crash (NULL dereference, list corruption) raises
  :class:`reference.klist.Oops`; ``WARN_ON_ONCE`` logs and goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from vmballoon.core.env import Env
from vmballoon.core.protocol import (
    BATCH_MAX_PAGES,
    BATCH_PAGE_MASK,
    BATCH_STATUS_MASK,
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BATCHED_2M,
    CAP_SIGNALLED_WAKEUP,
    CAPABILITIES,
    CMD_BATCHED_2M_LOCK,
    CMD_BATCHED_2M_UNLOCK,
    CMD_BATCHED_LOCK,
    CMD_BATCHED_UNLOCK,
    CMD_GET_TARGET,
    CMD_GUEST_ID,
    CMD_LOCK,
    CMD_START,
    CMD_UNLOCK,
    CMD_VMCI_DOORBELL_SET,
    EIO,
    ERROR_PPN_INVALID,
    ERROR_PPN_NOTNEEDED,
    ERROR_PPN_PINNED,
    ERROR_RESET,
    GUEST_ID_LINUX,
    MAX_REFUSED,
    NULL_PFN,
    NUM_PAGE_SIZES,
    ORDER_2M,
    ORDER_4K,
    PAGE_SHIFT,
    RATE_ALLOC_INC,
    RATE_ALLOC_MAX,
    RATE_ALLOC_MIN,
    SHIFT_2M,
    SLOW_CYCLES,
    STATUS_SUCCESS,
    SUCCESS_WITH_CAPABILITIES,
    U64_MASK,
    UINT_MAX,
    VMCI_ERROR_NO_RESOURCES,
    VMCI_INVALID_ID,
    VMCI_SUCCESS,
)
from vmballoon.core.variants import Variant
from vmballoon.reference.cint import s32, u16, u32, u64
from vmballoon.reference.kernel import Kernel
from vmballoon.reference.klist import Oops, Page, page_to_pfn, pfn_to_page

# gfp_t values (lines 81, 90, 990), named as the allocator logs them.
VMW_PAGE_ALLOC_NOSLEEP: Final = "nosleep"
VMW_PAGE_ALLOC_CANSLEEP: Final = "cansleep"
GFP_KERNEL_ZERO: Final = "kernel"

VMCI_INVALID_HANDLE: Final = (VMCI_INVALID_ID, VMCI_INVALID_ID)

_BATCHED_CMDS: Final = frozenset(
    {CMD_BATCHED_LOCK, CMD_BATCHED_UNLOCK, CMD_BATCHED_2M_LOCK, CMD_BATCHED_2M_UNLOCK}
)
_STATUS_BITS_CLEAR: Final = ~BATCH_STATUS_MASK & U64_MASK


# --- structures (lines 178-180, 222-248, 257-314) -----------------------------------


def _pair() -> list[int]:
    return [0, 0]


@dataclass(slots=True)
class VmballoonStats:
    """``struct vmballoon_stats`` (lines 222-248); pairs are indexed by ``is_2m_pages``."""

    timer: int = 0
    doorbell: int = 0
    alloc: list[int] = field(default_factory=_pair)
    alloc_fail: list[int] = field(default_factory=_pair)
    sleep_alloc: int = 0
    sleep_alloc_fail: int = 0
    refused_alloc: list[int] = field(default_factory=_pair)
    refused_free: list[int] = field(default_factory=_pair)
    free: list[int] = field(default_factory=_pair)
    lock: list[int] = field(default_factory=_pair)
    lock_fail: list[int] = field(default_factory=_pair)
    unlock: list[int] = field(default_factory=_pair)
    unlock_fail: list[int] = field(default_factory=_pair)
    target: int = 0
    target_fail: int = 0
    start: int = 0
    start_fail: int = 0
    guest_type: int = 0
    guest_type_fail: int = 0
    doorbell_set: int = 0
    doorbell_unset: int = 0


def _inc(counters: list[int], idx: int) -> None:
    """``STATS_INC(counters[idx])`` (line 250) on an ``unsigned int`` pair."""
    counters[idx] = u32(counters[idx] + 1)


@dataclass(slots=True)
class VmballoonBatchPage:
    """``struct vmballoon_batch_page`` (lines 178-180) and the PFN of the page holding it."""

    pfn: int
    pages: list[int]


@dataclass(slots=True)
class VmballoonPageSize:
    """``struct vmballoon_page_size`` (lines 265-272); the lists are :class:`Lru` heads."""

    pages: int
    refused_pages: int
    n_refused_pages: int = 0


class VmballoonOps(NamedTuple):
    """``struct vmballoon_ops`` (lines 257-263); ``target`` is always ``&b->target``."""

    name: str
    add_page: Callable[[Balloon, int, int], None]
    lock: Callable[[Balloon, int, bool], int]
    unlock: Callable[[Balloon, int, bool], int]


@dataclass(slots=True)
class Balloon:
    """``struct vmballoon`` (lines 274-314), plus the kernel it runs in and the variant."""

    kernel: Kernel
    variant: Variant
    page_sizes: list[VmballoonPageSize]
    supported_page_sizes: int = 0
    size: int = 0
    target: int = 0
    reset_required: bool = False
    rate_alloc: int = 0
    slow_allocation_cycles: int = 0
    capabilities: int = 0
    batch_page: VmballoonBatchPage | None = None
    batch_max_pages: int = 0
    page: Page = None
    ops: VmballoonOps | None = None
    stats: VmballoonStats = field(default_factory=VmballoonStats)
    vmci_doorbell: tuple[int, int] = VMCI_INVALID_HANDLE


def _ops(b: Balloon) -> VmballoonOps:
    """``b->ops->...``: a call through a NULL ``ops`` pointer is ``null_deref``."""
    if b.ops is None:
        raise Oops("null_deref", None)
    return b.ops


# --- batch page accessors (lines 182-197) ---------------------------------------------


def _batch(batch: VmballoonBatchPage | None) -> VmballoonBatchPage:
    """Dereference ``b->batch_page``: NULL is ``null_deref``."""
    if batch is None:
        raise Oops("null_deref", None)
    return batch


def vmballoon_batch_get_pa(batch: VmballoonBatchPage | None, idx: int) -> int:
    """``vmballoon_batch_get_pa`` (lines 182-185)."""
    return _batch(batch).pages[idx] & BATCH_PAGE_MASK


def vmballoon_batch_get_status(batch: VmballoonBatchPage | None, idx: int) -> int:
    """``vmballoon_batch_get_status`` (lines 187-191): ``(int)`` of the low 5 bits."""
    return s32(_batch(batch).pages[idx] & BATCH_STATUS_MASK)


def vmballoon_batch_set_pa(batch: VmballoonBatchPage | None, idx: int, pa: int) -> None:
    """``vmballoon_batch_set_pa`` (lines 193-197)."""
    _batch(batch).pages[idx] = u64(pa)


# --- the backdoor (lines 200-219) -----------------------------------------------------


def vmware_balloon_cmd(b: Balloon, cmd: int, arg1: int, arg2: int) -> tuple[int, int]:
    """``VMWARE_BALLOON_CMD`` (lines 200-219): ``(status, result)``, both ``unsigned long``.

    ``result`` is ``%rbx``, or ``%rcx`` for START (lines 215-216); the caller
    stores it into its own ``result`` lvalue with that lvalue's C type.  For
    the batched commands the host also writes the per-page statuses of the
    batch it finds at PFN ``arg1`` (scenario-format.md, "Batched commands"):
    only when ``arg1`` is the PFN of the driver's batch page.
    """
    batch = b.batch_page
    shown = None
    if cmd in _BATCHED_CMDS and batch is not None:
        shown = tuple(batch.pages[:arg2])  # what the host can read at the batch page
    response = b.kernel.backdoor(cmd, arg1, arg2, shown)
    entries = response.entries
    if cmd in _BATCHED_CMDS and batch is not None and arg1 == batch.pfn and entries is not None:
        pages = batch.pages
        for i in range(min(arg2, len(entries), BATCH_MAX_PAGES)):
            pages[i] = (pages[i] & _STATUS_BITS_CLEAR) | (entries[i] & BATCH_STATUS_MASK)
    return u64(response.status), u64(response.result)


# --- host commands (lines 322-535) ------------------------------------------------------


def vmballoon_send_start(b: Balloon, req_caps: int) -> bool:
    """``vmballoon_send_start`` (lines 322-354)."""
    b.stats.start = u32(b.stats.start + 1)

    status, capabilities = vmware_balloon_cmd(b, CMD_START, req_caps, 0)

    if status == SUCCESS_WITH_CAPABILITIES:
        b.capabilities = capabilities
        success = True
    elif status == STATUS_SUCCESS:
        b.capabilities = CAP_BASIC
        success = True
    else:
        success = False

    if b.variant.has("no_2m_without_batching"):
        use_2m = (b.capabilities & CAP_BATCHED_2M) != 0 and (b.capabilities & CAP_BATCHED) != 0
    else:
        use_2m = (b.capabilities & CAP_BATCHED_2M) != 0
    if use_2m:
        b.supported_page_sizes = 2
    else:
        b.supported_page_sizes = 1

    if not success:
        b.stats.start_fail = u32(b.stats.start_fail + 1)
    return success


def vmballoon_check_status(b: Balloon, status: int) -> bool:
    """``vmballoon_check_status`` (lines 356-369): ERROR_RESET falls through to false."""
    if status == STATUS_SUCCESS:
        return True
    if status == ERROR_RESET:
        b.reset_required = True
        # fall through
    return False


def vmballoon_send_guest_id(b: Balloon) -> bool:
    """``vmballoon_send_guest_id`` (lines 377-392)."""
    status, _dummy = vmware_balloon_cmd(b, CMD_GUEST_ID, GUEST_ID_LINUX, 0)

    b.stats.guest_type = u32(b.stats.guest_type + 1)

    if vmballoon_check_status(b, status):
        return True

    b.stats.guest_type_fail = u32(b.stats.guest_type_fail + 1)
    return False


def vmballoon_page_size(is_2m_page: bool | int) -> int:
    """``vmballoon_page_size`` (lines 394-400): a ``u16``."""
    if is_2m_page:
        return u16(1 << SHIFT_2M)

    return 1


def vmballoon_send_get_target(b: Balloon) -> int | None:
    """``vmballoon_send_get_target`` (lines 405-438).

    Returns ``*new_target`` (a ``u32``) where the C returns true, ``None``
    where it returns false (``*new_target`` untouched).
    """
    limit = b.kernel.env.totalram  # si_meminfo(&b->sysinfo)

    # Ensure limit fits in 32-bits
    limit32 = u32(limit)
    if limit != limit32:
        return None

    b.stats.target = u32(b.stats.target + 1)

    status, target = vmware_balloon_cmd(b, CMD_GET_TARGET, limit, 0)
    if vmballoon_check_status(b, status):
        return u32(target)

    b.stats.target_fail = u32(b.stats.target_fail + 1)
    return None


def _store_target(b: Balloon, status: int, result: int) -> None:
    """The macro's ``result`` output into ``*target`` (``&b->target``, an ``unsigned int``)."""
    if b.variant.has("target_on_success"):
        if status == STATUS_SUCCESS:
            b.target = u32(result)
    else:
        b.target = u32(result)


def vmballoon_send_lock_page(b: Balloon, pfn: int) -> tuple[int, int | None]:
    """``vmballoon_send_lock_page`` (lines 445-464).

    Returns the C's return value and what it stored in ``*hv_status`` (an
    ``unsigned int``), or ``None`` when it returned before storing it.
    """
    pfn32 = u32(pfn)
    if pfn32 != pfn:
        return -1, None

    _inc(b.stats.lock, False)

    status, result = vmware_balloon_cmd(b, CMD_LOCK, pfn, 0)
    _store_target(b, status, result)
    hv_status = u32(status)
    if vmballoon_check_status(b, status):
        return 0, hv_status

    _inc(b.stats.lock_fail, False)
    return 1, hv_status


def _batched_cmd_pfn(b: Balloon) -> int:
    """The PFN batched commands name (lines 470, 518); fix ``batch_pfn``."""
    if b.variant.has("batch_pfn"):
        return NULL_PFN if b.batch_page is None else b.batch_page.pfn
    return page_to_pfn(b.page)


def vmballoon_send_batched_lock(b: Balloon, num_pages: int, is_2m_pages: bool) -> int:
    """``vmballoon_send_batched_lock`` (lines 466-487)."""
    pfn = _batched_cmd_pfn(b)

    _inc(b.stats.lock, is_2m_pages)

    if is_2m_pages:
        status, result = vmware_balloon_cmd(b, CMD_BATCHED_2M_LOCK, pfn, num_pages)
    else:
        status, result = vmware_balloon_cmd(b, CMD_BATCHED_LOCK, pfn, num_pages)
    _store_target(b, status, result)

    if vmballoon_check_status(b, status):
        return 0

    _inc(b.stats.lock_fail, is_2m_pages)
    return 1


def vmballoon_send_unlock_page(b: Balloon, pfn: int) -> bool:
    """``vmballoon_send_unlock_page`` (lines 493-512)."""
    pfn32 = u32(pfn)
    if pfn32 != pfn:
        return False

    _inc(b.stats.unlock, False)

    status, result = vmware_balloon_cmd(b, CMD_UNLOCK, pfn, 0)
    _store_target(b, status, result)
    if vmballoon_check_status(b, status):
        return True

    _inc(b.stats.unlock_fail, False)
    return False


def vmballoon_send_batched_unlock(b: Balloon, num_pages: int, is_2m_pages: bool) -> bool:
    """``vmballoon_send_batched_unlock`` (lines 514-535)."""
    pfn = _batched_cmd_pfn(b)

    _inc(b.stats.unlock, is_2m_pages)

    if is_2m_pages:
        status, result = vmware_balloon_cmd(b, CMD_BATCHED_2M_UNLOCK, pfn, num_pages)
    else:
        status, result = vmware_balloon_cmd(b, CMD_BATCHED_UNLOCK, pfn, num_pages)
    _store_target(b, status, result)

    if vmballoon_check_status(b, status):
        return True

    _inc(b.stats.unlock_fail, is_2m_pages)
    return False


# --- pages (lines 537-551, 559-582) ---------------------------------------------------


def vmballoon_alloc_page(k: Kernel, flags: str, is_2m_page: bool) -> Page:
    """``vmballoon_alloc_page`` (lines 537-543)."""
    if is_2m_page:
        return k.alloc_pages(ORDER_2M, flags)

    return k.alloc_pages(ORDER_4K, flags)


def vmballoon_free_page(k: Kernel, page: Page, is_2m_page: bool | int) -> None:
    """``vmballoon_free_page`` (lines 545-551)."""
    if is_2m_page:
        k.free_pages(page, ORDER_2M)
    else:
        k.free_pages(page, ORDER_4K)


def vmballoon_pop(b: Balloon) -> None:
    """``vmballoon_pop`` (lines 559-582): free every ballooned page without telling the host."""
    lru = b.kernel.lru
    for is_2m_pages in range(NUM_PAGE_SIZES):
        page_size = b.page_sizes[is_2m_pages]
        size_per_page = vmballoon_page_size(is_2m_pages)

        # list_for_each_entry_safe(page, next, &page_size->pages, lru)
        head = page_size.pages
        page = lru.first(head)
        nxt = lru.next_of(page)
        while page != head:
            lru.list_del(page)
            vmballoon_free_page(b.kernel, page, is_2m_pages)
            _inc(b.stats.free, is_2m_pages)
            b.size = u32(b.size - size_per_page)
            page, nxt = nxt, lru.next_of(nxt)

    # Clearing the batch_page unconditionally has no adverse effect
    if b.batch_page is not None:  # free_page((unsigned long)NULL) does nothing
        b.kernel.free_pages(b.batch_page.pfn, ORDER_4K)
    b.batch_page = None


# --- ops (lines 589-784, 974-984) ------------------------------------------------------


def vmballoon_lock_page(b: Balloon, num_pages: int, is_2m_pages: bool) -> int:
    """``vmballoon_lock_page`` (lines 589-630), ``vmballoon_basic_ops.lock``."""
    k = b.kernel
    page = b.page
    page_size = b.page_sizes[False]

    # is_2m_pages can never happen as 2m pages support implies batching

    hv_status: int | None
    if b.variant.has("lock_64bit_refused"):
        hv_status = STATUS_SUCCESS
    else:
        hv_status = None  # uninitialised; the seed never reads it unset
    locked, stored = vmballoon_send_lock_page(b, page_to_pfn(page))
    if stored is not None:
        hv_status = s32(stored)  # int hv_status written through an unsigned int *
    if b.variant.has("lock_64bit_refused"):
        refused = locked != 0
    else:
        refused = locked > 0
    if refused:
        _inc(b.stats.refused_alloc, False)

        if hv_status in (ERROR_RESET, ERROR_PPN_NOTNEEDED):
            vmballoon_free_page(k, page, False)
            return -EIO

        # Place page on the list of non-balloonable pages and retry allocation,
        # unless we already accumulated too many of them.
        if page_size.n_refused_pages < MAX_REFUSED:
            page_size.n_refused_pages = u32(page_size.n_refused_pages + 1)
            k.lru.list_add(page, page_size.refused_pages)
        else:
            vmballoon_free_page(k, page, False)
        return -EIO

    # track allocated page
    k.lru.list_add(page, page_size.pages)

    # update balloon size
    b.size = u32(b.size + 1)

    return 0


def vmballoon_lock_batched_page(b: Balloon, num_pages: int, is_2m_pages: bool) -> int:
    """``vmballoon_lock_batched_page`` (lines 632-684), ``vmballoon_batched_ops.lock``."""
    k = b.kernel
    size_per_page = vmballoon_page_size(is_2m_pages)

    locked = vmballoon_send_batched_lock(b, num_pages, is_2m_pages)
    if locked > 0:
        for i in range(num_pages):
            pa = vmballoon_batch_get_pa(b.batch_page, i)
            p = pfn_to_page(pa >> PAGE_SHIFT)

            vmballoon_free_page(k, p, is_2m_pages)

        return -EIO

    for i in range(num_pages):
        pa = vmballoon_batch_get_pa(b.batch_page, i)
        p = pfn_to_page(pa >> PAGE_SHIFT)
        page_size = b.page_sizes[is_2m_pages]

        locked = vmballoon_batch_get_status(b.batch_page, i)

        # switch (locked)
        if locked == STATUS_SUCCESS:
            k.lru.list_add(p, page_size.pages)
            b.size = u32(b.size + size_per_page)
        elif (
            locked in (ERROR_PPN_PINNED, ERROR_PPN_INVALID)
            and page_size.n_refused_pages < MAX_REFUSED
        ):
            k.lru.list_add(p, page_size.refused_pages)
            page_size.n_refused_pages = u32(page_size.n_refused_pages + 1)
        elif locked in (ERROR_PPN_PINNED, ERROR_PPN_INVALID, ERROR_RESET, ERROR_PPN_NOTNEEDED):
            # PPN_PINNED / PPN_INVALID fall through here when the refused list is full.
            vmballoon_free_page(k, p, is_2m_pages)
        else:
            # This should never happen
            k.warn_on_once(True)
            if b.variant.has("warn_status_frees"):
                vmballoon_free_page(k, p, is_2m_pages)

    return 0


def vmballoon_unlock_page(b: Balloon, num_pages: int, is_2m_pages: bool) -> int:
    """``vmballoon_unlock_page`` (lines 691-712), ``vmballoon_basic_ops.unlock``."""
    k = b.kernel
    page = b.page
    page_size = b.page_sizes[False]

    # is_2m_pages can never happen as 2m pages support implies batching

    if not vmballoon_send_unlock_page(b, page_to_pfn(page)):
        k.lru.list_add(page, page_size.pages)
        return -EIO

    # deallocate page
    vmballoon_free_page(k, page, False)
    _inc(b.stats.free, False)

    # update balloon size
    b.size = u32(b.size - 1)

    return 0


def vmballoon_unlock_batched_page(b: Balloon, num_pages: int, is_2m_pages: bool) -> int:
    """``vmballoon_unlock_batched_page`` (lines 714-752), ``vmballoon_batched_ops.unlock``."""
    k = b.kernel
    ret = 0
    size_per_page = vmballoon_page_size(is_2m_pages)

    hv_success = vmballoon_send_batched_unlock(b, num_pages, is_2m_pages)
    if not hv_success:
        ret = -EIO

    for i in range(num_pages):
        pa = vmballoon_batch_get_pa(b.batch_page, i)
        p = pfn_to_page(pa >> PAGE_SHIFT)
        page_size = b.page_sizes[is_2m_pages]

        locked = vmballoon_batch_get_status(b.batch_page, i)
        if not hv_success or locked != STATUS_SUCCESS:
            # That page wasn't successfully unlocked by the hypervisor, re-add it
            # to the list of pages owned by the balloon driver.
            k.lru.list_add(p, page_size.pages)
        else:
            # deallocate page
            vmballoon_free_page(k, p, is_2m_pages)
            _inc(b.stats.free, is_2m_pages)

            # update balloon size
            b.size = u32(b.size - size_per_page)

    return ret


def vmballoon_release_refused_pages(b: Balloon, is_2m_pages: bool) -> None:
    """``vmballoon_release_refused_pages`` (lines 758-772)."""
    lru = b.kernel.lru
    page_size = b.page_sizes[is_2m_pages]

    # list_for_each_entry_safe(page, next, &page_size->refused_pages, lru)
    head = page_size.refused_pages
    page = lru.first(head)
    nxt = lru.next_of(page)
    while page != head:
        lru.list_del(page)
        vmballoon_free_page(b.kernel, page, is_2m_pages)
        _inc(b.stats.refused_free, is_2m_pages)
        page, nxt = nxt, lru.next_of(nxt)

    page_size.n_refused_pages = 0


def vmballoon_add_page(b: Balloon, idx: int, p: int) -> None:
    """``vmballoon_add_page`` (lines 774-777), ``vmballoon_basic_ops.add_page``."""
    b.page = p


def vmballoon_add_batched_page(b: Balloon, idx: int, p: int) -> None:
    """``vmballoon_add_batched_page`` (lines 779-784): ``(u64)pfn << PAGE_SHIFT`` wraps."""
    vmballoon_batch_set_pa(b.batch_page, idx, u64(page_to_pfn(p) << PAGE_SHIFT))


vmballoon_basic_ops: Final = VmballoonOps(
    "basic", vmballoon_add_page, vmballoon_lock_page, vmballoon_unlock_page
)
"""``vmballoon_basic_ops`` (lines 974-978)."""

vmballoon_batched_ops: Final = VmballoonOps(
    "batched",
    vmballoon_add_batched_page,
    vmballoon_lock_batched_page,
    vmballoon_unlock_batched_page,
)
"""``vmballoon_batched_ops`` (lines 980-984)."""


# --- inflate / deflate (lines 786-972) --------------------------------------------------


def vmballoon_inflate(b: Balloon) -> None:
    """``vmballoon_inflate`` (lines 791-926)."""
    k = b.kernel
    rate: int
    allocations = 0
    num_pages = 0
    error = 0
    flags = VMW_PAGE_ALLOC_NOSLEEP
    is_2m_pages: bool

    # Start with no sleep allocation rate which may be higher than sleeping
    # allocation rate.
    if b.slow_allocation_cycles:
        rate = b.rate_alloc
        is_2m_pages = False
    else:
        rate = UINT_MAX
        is_2m_pages = b.supported_page_sizes == NUM_PAGE_SIZES

    while not b.reset_required and (
        u32(b.size + u32(num_pages * vmballoon_page_size(is_2m_pages))) < b.target
    ):
        if flags == VMW_PAGE_ALLOC_NOSLEEP:
            _inc(b.stats.alloc, is_2m_pages)
        else:
            b.stats.sleep_alloc = u32(b.stats.sleep_alloc + 1)

        page = vmballoon_alloc_page(k, flags, is_2m_pages)
        if page is None:
            _inc(b.stats.alloc_fail, is_2m_pages)

            if is_2m_pages:
                _ops(b).lock(b, num_pages, True)

                # ignore errors from locking as we now switch to 4k pages and we
                # might get different errors.

                num_pages = 0
                is_2m_pages = False
                continue

            if flags == VMW_PAGE_ALLOC_CANSLEEP:
                # CANSLEEP page allocation failed, so guest is under severe memory
                # pressure. Quickly decrease allocation rate.
                b.rate_alloc = max(b.rate_alloc // 2, RATE_ALLOC_MIN)
                b.stats.sleep_alloc_fail = u32(b.stats.sleep_alloc_fail + 1)
                break

            # NOSLEEP page allocation failed, so the guest is under memory
            # pressure. Slow down page allocations for next few cycles; pause if we
            # already allocated b->rate_alloc pages, else switch to sleeping ones.
            b.slow_allocation_cycles = SLOW_CYCLES

            if allocations >= b.rate_alloc:
                break

            flags = VMW_PAGE_ALLOC_CANSLEEP
            # Lower rate for sleeping allocations.
            rate = b.rate_alloc
            continue

        if b.variant.has("count_allocations"):
            allocations = u32(allocations + 1)

        _ops(b).add_page(b, num_pages, page)
        num_pages = u32(num_pages + 1)
        if num_pages == b.batch_max_pages:
            error = _ops(b).lock(b, num_pages, is_2m_pages)
            num_pages = 0
            if error:
                break

        # cond_resched()

        if allocations >= rate:
            # We allocated enough pages, let's take a break.
            break

    if num_pages > 0:
        _ops(b).lock(b, num_pages, is_2m_pages)

    # We reached our goal without failures so try increasing allocation rate.
    if error == 0 and allocations >= b.rate_alloc:
        mult = allocations // b.rate_alloc

        b.rate_alloc = min(u32(b.rate_alloc + u32(mult * RATE_ALLOC_INC)), RATE_ALLOC_MAX)

    vmballoon_release_refused_pages(b, True)
    vmballoon_release_refused_pages(b, False)


def _deflate_stop(b: Balloon, num_pages: int, is_2m_pages: int) -> bool:
    """The ``break`` condition of ``vmballoon_deflate`` (lines 946-951), in ``unsigned int``."""
    if b.reset_required:
        return True
    if b.target <= 0:
        return False
    left = u32(b.size - u32(num_pages * vmballoon_page_size(is_2m_pages)))
    return left < u32(b.target + vmballoon_page_size(True))


def vmballoon_deflate(b: Balloon) -> None:
    """``vmballoon_deflate`` (lines 931-972)."""
    lru = b.kernel.lru

    # free pages to reach target
    is_2m_pages = 0
    while is_2m_pages < b.supported_page_sizes:
        num_pages = 0
        page_size = b.page_sizes[is_2m_pages]

        # list_for_each_entry_safe(page, next, &page_size->pages, lru)
        head = page_size.pages
        page = lru.first(head)
        nxt = lru.next_of(page)
        while page != head:
            if _deflate_stop(b, num_pages, is_2m_pages):
                break

            lru.list_del(page)
            _ops(b).add_page(b, num_pages, page)
            num_pages = u32(num_pages + 1)

            if num_pages == b.batch_max_pages:
                error = _ops(b).unlock(b, num_pages, bool(is_2m_pages))
                num_pages = 0
                if error:
                    return

            # cond_resched()
            page, nxt = nxt, lru.next_of(nxt)

        if num_pages > 0:
            _ops(b).unlock(b, num_pages, bool(is_2m_pages))

        is_2m_pages += 1


# --- batching, VMCI, reset, work (lines 986-1137) --------------------------------------


def vmballoon_init_batching(b: Balloon) -> bool:
    """``vmballoon_init_batching`` (lines 986-996): a zeroed batch page (GFP_KERNEL|__GFP_ZERO)."""
    page = b.kernel.alloc_pages(ORDER_4K, GFP_KERNEL_ZERO)
    if page is None:
        return False

    b.batch_page = VmballoonBatchPage(page_to_pfn(page), [0] * BATCH_MAX_PAGES)
    return True


def vmballoon_doorbell(b: Balloon) -> None:
    """``vmballoon_doorbell`` (lines 1001-1008); the work it queues is run by the caller."""
    b.stats.doorbell = u32(b.stats.doorbell + 1)


def vmci_handle_is_invalid(handle: tuple[int, int]) -> bool:
    """``vmci_handle_is_invalid``: equal to ``VMCI_INVALID_HANDLE``."""
    return handle == VMCI_INVALID_HANDLE


def vmballoon_vmci_cleanup(b: Balloon) -> None:
    """``vmballoon_vmci_cleanup`` (lines 1013-1025); the command's result is dropped."""
    vmware_balloon_cmd(b, CMD_VMCI_DOORBELL_SET, VMCI_INVALID_ID, VMCI_INVALID_ID)
    b.stats.doorbell_unset = u32(b.stats.doorbell_unset + 1)

    if not vmci_handle_is_invalid(b.vmci_doorbell):
        b.kernel.vmci_doorbell_destroy()
        b.vmci_doorbell = VMCI_INVALID_HANDLE


def vmballoon_vmci_init(b: Balloon) -> int:
    """``vmballoon_vmci_init`` (lines 1030-1055).

    ``int error`` receives the result register of VMCI_DOORBELL_SET (the
    seed's defect); fix ``doorbell_set_status`` tests the status instead.
    """
    error = 0

    if (b.capabilities & CAP_SIGNALLED_WAKEUP) != 0:
        handle = b.kernel.vmci_doorbell_create()
        if handle is not None:
            b.vmci_doorbell = handle
            error = VMCI_SUCCESS
        else:
            error = VMCI_ERROR_NO_RESOURCES  # the handle is left as it was

        if error == VMCI_SUCCESS:
            context, resource = b.vmci_doorbell
            status, result = vmware_balloon_cmd(b, CMD_VMCI_DOORBELL_SET, context, resource)
            if b.variant.has("doorbell_set_status"):
                error = 0 if status == STATUS_SUCCESS else -EIO
            else:
                error = s32(result)
            b.stats.doorbell_set = u32(b.stats.doorbell_set + 1)

    if error != 0:
        vmballoon_vmci_cleanup(b)

        return -EIO

    return 0


def vmballoon_reset(b: Balloon) -> None:
    """``vmballoon_reset`` (lines 1062-1100)."""
    vmballoon_vmci_cleanup(b)

    # free all pages, skipping monitor unlock
    vmballoon_pop(b)

    if not vmballoon_send_start(b, CAPABILITIES):
        return

    if (b.capabilities & CAP_BATCHED) != 0:
        b.ops = vmballoon_batched_ops
        b.batch_max_pages = BATCH_MAX_PAGES
        if not vmballoon_init_batching(b):
            # We failed to initialize batching, inform the monitor about it by
            # sending a null capability. The guest will retry in one second.
            vmballoon_send_start(b, 0)
            return
    elif (b.capabilities & CAP_BASIC) != 0:
        b.ops = vmballoon_basic_ops
        b.batch_max_pages = 1
    elif b.variant.has("reset_needs_ops"):
        return

    b.reset_required = False

    vmballoon_vmci_init(b)  # pr_err("failed to initialize vmci doorbell") on error

    vmballoon_send_guest_id(b)  # pr_err("failed to send guest ID to the host") on false


def vmballoon_work(b: Balloon) -> None:
    """``vmballoon_work`` (lines 1106-1137); the re-queue is the scenario's next step."""
    b.stats.timer = u32(b.stats.timer + 1)

    if b.reset_required:
        vmballoon_reset(b)

    if b.slow_allocation_cycles > 0:
        b.slow_allocation_cycles = u32(b.slow_allocation_cycles - 1)

    if not b.reset_required:
        target = vmballoon_send_get_target(b)
        if target is not None:
            # update target, adjust size
            b.target = target

            if b.size < target:
                vmballoon_inflate(b)
            elif target == 0 or b.size > u32(target + vmballoon_page_size(True)):
                vmballoon_deflate(b)


# --- module init / exit (lines 1257-1308) -----------------------------------------------


def vmballoon_init(env: Env, variant: Variant) -> Balloon:
    """``vmballoon_init`` (lines 1257-1291) on a VMware hypervisor; debugfs always succeeds.

    ``static struct vmballoon balloon`` starts zeroed; the work it queues is the
    scenario's first step.
    """
    kernel = Kernel(env)
    page_sizes = [
        VmballoonPageSize(kernel.lru.init_list_head(), kernel.lru.init_list_head())
        for _is_2m_pages in range(NUM_PAGE_SIZES)
    ]
    balloon = Balloon(kernel, variant, page_sizes)

    # initialize rates
    balloon.rate_alloc = RATE_ALLOC_MAX

    balloon.vmci_doorbell = VMCI_INVALID_HANDLE
    balloon.batch_page = None
    balloon.page = None
    balloon.reset_required = True

    return balloon


def vmballoon_exit(b: Balloon) -> None:
    """``vmballoon_exit`` (lines 1294-1308)."""
    vmballoon_vmci_cleanup(b)
    # cancel_delayed_work_sync(&balloon.dwork); vmballoon_debugfs_exit(&balloon);

    # Deallocate all reserved memory, and reset connection with monitor.
    vmballoon_send_start(b, 0)
    vmballoon_pop(b)
