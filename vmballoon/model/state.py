"""The model's state: ``struct vmballoon`` (lines 274-314), the loop in progress, the environment.

A :class:`State` is immutable.  It holds

* ``drv``: the driver's fields (:class:`Driver`), one per field of ``struct vmballoon``
  that the C reads or writes, plus the kernel-side facts the C relies on (which
  pages are on a list, whether ``WARN_ON_ONCE`` already fired);
* ``loop``: the locals of the loop in progress (:class:`Loop`): ``vmballoon_inflate``'s
  ``rate``, ``allocations``, ``num_pages``, ``error``, ``flags``, ``is_2m_pages`` and the
  batch being filled; ``vmballoon_deflate``'s page-size index, ``num_pages`` and cursor;
* ``stats``: ``struct vmballoon_stats`` (lines 222-248) as a flat tuple;
* ``env``: the environment (:class:`vmballoon.core.env.Env`), including the event log;
* ``loc``: the control location (:class:`Loc`), the label the next transition starts at.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

from vmballoon.core.env import Env
from vmballoon.core.protocol import RATE_ALLOC_MAX, STATS_FIELDS
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import Variant
from vmballoon.model import listed as ls
from vmballoon.model.plist import PList


class Loc(IntEnum):
    """Control locations: where the driver is between two atomic steps."""

    IDLE = 0  # no entry point running (between vmballoon_work runs)
    W_BEGIN = 1  # vmballoon_work entered (line 1106)
    R_CLEANUP = 2  # vmballoon_reset: vmballoon_vmci_cleanup (line 1066)
    R_POP = 3  # vmballoon_reset: vmballoon_pop (line 1069)
    R_START = 4  # vmballoon_reset: vmballoon_send_start (line 1071)
    R_OPS = 5  # vmballoon_reset: ops and batch size selection (lines 1074-1092)
    R_START0 = 6  # vmballoon_reset: START(0) after a failed batch page allocation (1084)
    R_VMCI = 7  # vmballoon_reset: vmballoon_vmci_init (line 1094)
    R_GUEST_ID = 8  # vmballoon_reset: vmballoon_send_guest_id (line 1098)
    W_TARGET = 9  # vmballoon_work: slow cycles and GET_TARGET (lines 1117-1130)
    I_LOOP = 10  # vmballoon_inflate: loop head (line 833)
    I_LOCK = 11  # vmballoon_inflate: lock a full batch (line 894)
    I_FALLBACK = 12  # vmballoon_inflate: lock the 2 MiB batch after a failed 2 MiB alloc (848)
    I_TAIL = 13  # vmballoon_inflate: lock the partial batch (line 909)
    I_END = 14  # vmballoon_inflate: rate update and refused pages (lines 916-925)
    D_LOOP = 15  # vmballoon_deflate: loop head (line 945)
    D_UNLOCK = 16  # vmballoon_deflate: unlock a full batch (line 959)
    D_TAIL = 17  # vmballoon_deflate: unlock the partial batch, next page size (969-970)
    E_CLEANUP = 18  # vmballoon_exit: vmballoon_vmci_cleanup (line 1296)
    E_START0 = 19  # vmballoon_exit: vmballoon_send_start(0) (line 1306)
    E_POP = 20  # vmballoon_exit: vmballoon_pop (line 1307)
    EXITED = 21  # module unloaded: later steps are ignored
    CRASHED = 22  # a null_deref or list_corrupt fault stopped the guest


INFLATE = (Loc.I_LOOP, Loc.I_LOCK, Loc.I_FALLBACK, Loc.I_TAIL, Loc.I_END)
"""Control locations inside ``vmballoon_inflate`` (lines 791-926), in the loop's order
(the encoding's formulas over them are built in it)."""
DEFLATE = (Loc.D_LOOP, Loc.D_UNLOCK, Loc.D_TAIL)
"""Control locations inside ``vmballoon_deflate`` (lines 931-972), in the loop's order."""
INFLATE_LOCS = frozenset(INFLATE)
"""Control locations inside ``vmballoon_inflate``, as a set."""
DEFLATE_LOCS = frozenset(DEFLATE)
"""Control locations inside ``vmballoon_deflate``, as a set."""
LOOP_LOCS = INFLATE_LOCS | DEFLATE_LOCS
"""Control locations inside either loop: a batch may be in flight."""
RESTING = frozenset({Loc.IDLE, Loc.EXITED})
"""Where no entry point runs: between two ticks, or after module exit."""
STOPPED = frozenset({Loc.EXITED, Loc.CRASHED})
"""Where nothing runs any more: the module was unloaded or the guest crashed."""
RETURNED = RESTING | STOPPED
"""Where an entry point's run of transitions ends (``IDLE``, ``EXITED``, ``CRASHED``)."""


OPS_BASIC = "basic"
OPS_BATCHED = "batched"


class Driver(NamedTuple):
    """The fields of ``struct vmballoon`` (lines 274-314) and the kernel facts they rely on."""

    size: int  # unsigned int size (line 281): balloon size in 4 KiB pages
    target: int  # unsigned int target (line 282)
    rate_alloc: int  # unsigned int rate_alloc (line 288)
    slow_allocation_cycles: int  # unsigned int (line 291)
    reset_required: bool  # bool (line 285)
    capabilities: int  # unsigned long (line 293)
    supported_page_sizes: int  # unsigned (line 278): 1 or 2
    batch_max_pages: int  # unsigned int (line 296)
    ops: str | None  # const struct vmballoon_ops * (line 299): basic, batched or NULL
    pages: tuple[PList, PList]  # page_sizes[i].pages (line 267), head first
    refused: tuple[PList, PList]  # page_sizes[i].refused_pages (line 270)
    n_refused: tuple[int, int]  # page_sizes[i].n_refused_pages (line 271)
    batch_page: int | None  # struct vmballoon_batch_page * (line 295), as the page's PFN
    page: int | None  # struct page *page (line 297), as a PFN
    doorbell: tuple[int, int] | None  # struct vmci_handle (line 313); None when invalid
    warned: bool  # WARN_ON_ONCE already fired in this module load
    listed: ls.Listed  # PFNs whose page->lru is on some list (model.listed)

    def with_page_listed(self, page: int | None, listed: ls.Listed) -> Driver:
        """With ``b->page`` and the listed pages changed (hot paths: no ``_replace``)."""
        return Driver(*self[:13], page, self.doorbell, self.warned, listed)


class Loop(NamedTuple):
    """Locals of ``vmballoon_inflate`` (lines 793-798) and ``vmballoon_deflate`` (935-942)."""

    rate: int  # unsigned rate
    allocations: int  # unsigned int allocations
    num_pages: int  # unsigned int num_pages (both loops)
    error: int  # int error
    cansleep: bool  # gfp_t flags == VMW_PAGE_ALLOC_CANSLEEP
    is_2m: bool  # bool is_2m_pages (inflate) / unsigned is_2m_pages (deflate)
    fill: PList  # batch entries written since num_pages was last 0, newest first
    cursor: PList  # deflate: the `next` of list_for_each_entry_safe (rest of the list)
    readded: PList  # deflate: pages put back at the head of the list being iterated
    allocated: int  # ghost: pages allocated by this vmballoon_inflate call

    # Positional rebuilds for the hot paths (NamedTuple._replace costs ~2 us).

    def batch_done(self, error: int) -> Loop:
        """After a lock or unlock command: ``num_pages = 0``, the batch consumed."""
        return Loop(
            self.rate,
            self.allocations,
            0,
            error,
            self.cansleep,
            self.is_2m,
            None,
            self.cursor,
            self.readded,
            self.allocated,
        )

    def with_fill(self, fill: PList) -> Loop:
        """With the batch entries ``fill``."""
        return Loop(
            self.rate,
            self.allocations,
            self.num_pages,
            self.error,
            self.cansleep,
            self.is_2m,
            fill,
            self.cursor,
            self.readded,
            self.allocated,
        )

    def with_readded(self, readded: PList) -> Loop:
        """With ``readded`` as the pages put back at the head of the iterated list."""
        return Loop(
            self.rate,
            self.allocations,
            self.num_pages,
            self.error,
            self.cansleep,
            self.is_2m,
            self.fill,
            self.cursor,
            readded,
            self.allocated,
        )

    def deflate_step(self, cursor: PList, num_pages: int, fill: PList) -> Loop:
        """One page taken off the iterated list into the batch."""
        return Loop(
            self.rate,
            self.allocations,
            num_pages,
            self.error,
            self.cansleep,
            self.is_2m,
            fill,
            cursor,
            self.readded,
            self.allocated,
        )


class State(NamedTuple):
    """One state of the labelled transition system."""

    loc: Loc
    drv: Driver
    loop: Loop
    stats: tuple[int, ...]
    env: Env
    variant: Variant
    entry: str  # the entry point running ("work", "doorbell", "exit") or ""


def _stat_offsets() -> dict[str, int]:
    out: dict[str, int] = {}
    i = 0
    for name, pair in STATS_FIELDS:
        out[name] = i
        i += 2 if pair else 1
    out["_len"] = i
    return out


STAT = _stat_offsets()
"""Offset of each statistic in :attr:`State.stats`; two-element ones take two slots."""

EMPTY_LOOP = Loop(0, 0, 0, 0, False, False, None, None, None, 0)


def initial_state(scenario: Scenario, variant: Variant) -> State:
    """After ``vmballoon_init`` (lines 1257-1291) on a VMware hypervisor."""
    drv = Driver(
        size=0,
        target=0,
        rate_alloc=RATE_ALLOC_MAX,
        slow_allocation_cycles=0,
        reset_required=True,
        capabilities=0,
        supported_page_sizes=0,
        batch_max_pages=0,
        ops=None,
        pages=(None, None),
        refused=(None, None),
        n_refused=(0, 0),
        batch_page=None,
        page=None,
        doorbell=None,
        warned=False,
        listed=ls.EMPTY,
    )
    stats = (0,) * STAT["_len"]
    return State(Loc.IDLE, drv, EMPTY_LOOP, stats, Env.from_scenario(scenario), variant, "")
