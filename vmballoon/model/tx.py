"""A transition's scratch pad: read a :class:`State`, change fields, build the next one.

Each transition of :mod:`vmballoon.model.transitions` is a pure function ``State -> State``.
Inside, it works on a :class:`Tx`, which holds the fields of the old state and
records the changes; :meth:`Tx.commit` builds the new immutable state.  A fault
that stops the guest (``null_deref``, ``list_corrupt``) raises :class:`Crash`;
the transition then commits what happened before the fault at ``Loc.CRASHED``.

The helpers here are the kernel and backdoor primitives the C calls: list_add,
frees, WARN_ON_ONCE, the hypervisor command and the C integer conversions.
"""

from __future__ import annotations

from vmballoon.core.env import Env
from vmballoon.core.protocol import NULL_PFN, U32_MASK
from vmballoon.core.scenario import Response
from vmballoon.model import listed as ls
from vmballoon.model.plist import PList
from vmballoon.model.state import DEFLATE_LOCS, STAT, Driver, Loc, Loop, State


class Crash(Exception):
    """The guest crashed: a NULL dereference or a corrupted list."""


class Tx:
    """Mutable working copy of a state for the length of one transition."""

    __slots__ = (
        "batch_max",
        "batch_page",
        "capabilities",
        "doorbell",
        "env",
        "listed",
        "loop",
        "n_refused",
        "ops",
        "page",
        "pages",
        "rate_alloc",
        "refused",
        "reset_required",
        "size",
        "slow",
        "state",
        "stats",
        "stats_list",
        "supported",
        "target",
        "warned",
    )

    def __init__(self, state: State) -> None:
        d = state.drv
        self.state = state
        self.size = d.size
        self.target = d.target
        self.rate_alloc = d.rate_alloc
        self.slow = d.slow_allocation_cycles
        self.reset_required = d.reset_required
        self.capabilities = d.capabilities
        self.supported = d.supported_page_sizes
        self.batch_max = d.batch_max_pages
        self.ops = d.ops
        self.pages: list[PList] = list(d.pages)
        self.refused: list[PList] = list(d.refused)
        self.n_refused = list(d.n_refused)
        self.batch_page = d.batch_page
        self.page = d.page
        self.doorbell = d.doorbell
        self.warned = d.warned
        self.listed = d.listed
        self.loop: Loop = state.loop
        self.stats_list: list[int] | None = None
        self.stats = state.stats
        self.env: Env = state.env

    # -- building the next state ------------------------------------------------------

    def commit(self, loc: Loc, entry: str | None = None) -> State:
        """The next state, at control location ``loc``."""
        old = self.state
        drv = Driver(
            self.size,
            self.target,
            self.rate_alloc,
            self.slow,
            self.reset_required,
            self.capabilities,
            self.supported,
            self.batch_max,
            self.ops,
            (self.pages[0], self.pages[1]),
            (self.refused[0], self.refused[1]),
            (self.n_refused[0], self.n_refused[1]),
            self.batch_page,
            self.page,
            self.doorbell,
            self.warned,
            self.listed,
        )
        stats = tuple(self.stats_list) if self.stats_list is not None else self.stats
        return State(
            loc,
            drv,
            self.loop,
            stats,
            self.env,
            old.variant,
            old.entry if entry is None else entry,
        )

    # -- statistics (STATS_INC, line 250: unsigned int, wraps) --------------------------

    def inc(self, name: str, index: int = 0) -> None:
        """``STATS_INC(b->stats.<name>[index])``."""
        if self.stats_list is None:
            self.stats_list = list(self.stats)
        i = STAT[name] + index
        self.stats_list[i] = (self.stats_list[i] + 1) & U32_MASK

    # -- faults -----------------------------------------------------------------------

    def crash(self, kind: str, pfn: int | None) -> Crash:
        """Log a fatal fault and return the exception that stops the transition."""
        self.env = self.env.fault(kind, pfn)
        return Crash(kind)

    def warn_on_once(self) -> None:
        """``WARN_ON_ONCE(true)``: fault ``warn``, the first time per module load."""
        if not self.warned:
            self.warned = True
            self.env = self.env.fault("warn", None)

    # -- kernel lists and pages ---------------------------------------------------------

    def check_add(self, pfn: int | None) -> int:
        """The checks of ``list_add`` of page ``pfn``; marks it as listed."""
        if pfn is None:
            raise self.crash("null_deref", None)
        if ls.contains(self.listed, pfn):
            raise self.crash("list_corrupt", pfn)
        self.listed = ls.add(self.listed, pfn)
        return pfn

    def list_add_pages(self, idx: int, pfn: int | None) -> None:
        """``list_add(&page->lru, &b->page_sizes[idx].pages)``."""
        p = self.check_add(pfn)
        loop = self.loop
        if self.state.loc in DEFLATE_LOCS and int(loop.is_2m) == idx:
            # vmballoon_deflate is iterating this list: the page lands at the
            # head, before the iteration cursor, and is not visited again
            self.loop = loop.with_readded((p, loop.readded))
        else:
            self.pages[idx] = (p, self.pages[idx])

    def list_add_refused(self, idx: int, pfn: int | None) -> None:
        """``list_add(&page->lru, &b->page_sizes[idx].refused_pages)``."""
        p = self.check_add(pfn)
        self.refused[idx] = (p, self.refused[idx])

    def list_del(self, pfn: int) -> None:
        """``list_del(&page->lru)``."""
        self.listed = ls.remove(self.listed, pfn)

    def free_page(self, pfn: int | None, is_2m: bool) -> None:
        """``vmballoon_free_page`` (lines 545-551): order 9 or 0; NULL faults."""
        if pfn is None:
            raise self.crash("null_deref", None)
        self.env = self.env.free(pfn, 9 if is_2m else 0)

    # -- the backdoor (VMWARE_BALLOON_CMD, lines 200-219) ---------------------------------

    def hv(self, cmd: int, arg1: int, arg2: int, batch: tuple[int, ...] | None = None) -> Response:
        """Issue one backdoor command; returns the host's answer.

        ``batch``: the entries the driver wrote into its batch page, for a host
        that reads them (see :meth:`vmballoon.core.env.Env.hv`).
        """
        response, self.env = self.env.hv(cmd, arg1, arg2, batch)
        return response

    def check_status(self, status: int) -> bool:
        """``vmballoon_check_status`` (lines 356-369): RESET sets ``reset_required``."""
        if status == 0:
            return True
        if status == 7:
            self.reset_required = True
        return False


def pfn_arg(pfn: int | None) -> int:
    """``page_to_pfn(page)`` with ``page_to_pfn(NULL) == NULL_PFN``."""
    return NULL_PFN if pfn is None else pfn
