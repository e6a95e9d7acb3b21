"""A cooperative hypervisor: follows the balloon protocol and keeps its promises.

design.md ("Environment") names three hosts: scripted, adversarial and
cooperative.  This is the cooperative one, as an immutable value inside
:class:`vmballoon.core.env.Env` (its ``host`` field); every answer returns the host
to use next.  It

* answers ``START`` with ``SUCCESS_WITH_CAPABILITIES`` and the capabilities it
  offers that the guest asked for (the negotiated set), and forgets every frame
  it held (a START is a reset of the connection);
* answers ``GUEST_ID`` and ``VMCI_DOORBELL_SET`` with ``SUCCESS``;
* answers ``GET_TARGET`` with the target its schedule has in force at the
  current tick (:meth:`CooperativeHost.at_tick` advances the clock);
* locks and unlocks frames: ``LOCK`` / ``UNLOCK`` (basic) name one 4 KiB frame;
  the batched commands name the guest's batch page and the host reads the batch
  entries there.  A frame it can lock (in the guest's RAM, not held; for 2 MiB
  pages 512-aligned and all 512 frames so) is locked; a frame it can unlock (all
  its frames held) is unlocked;
* answers a batched command whose first argument is not the PFN of the batch
  page with ``ERROR_PPN_INVALID`` for the whole command: it cannot read a batch
  it was not shown (this is what makes the seed's ``batch_pfn`` defect visible);
* answers commands that START did not negotiate with ``ERROR_CMD_INVALID``;
* puts the current target in the result of every lock and unlock.

It learns where the batch page is from the environment's allocator (the
allocation made with gfp ``kernel``, :meth:`CooperativeHost.with_batch_page`).
Per-page statuses come back as ``entries`` only when some page failed; when
all succeed the batch is left as the driver wrote it (status bits 0), which the
driver reads as SUCCESS for every page.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import NamedTuple

from vmballoon.core import intervals as iv
from vmballoon.core.protocol import (
    BATCH_MAX_PAGES,
    BATCH_PAGE_MASK,
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BATCHED_2M,
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
    ERROR_CMD_INVALID,
    ERROR_PPN_INVALID,
    ERROR_PPN_LOCKED,
    ERROR_PPN_UNLOCKED,
    PAGE_SHIFT,
    PAGES_PER_2M,
    STATUS_SUCCESS,
    SUCCESS_WITH_CAPABILITIES,
)
from vmballoon.core.scenario import Response

Schedule = tuple[tuple[int, int], ...]
"""``(tick, target in 4 KiB pages)``, ticks strictly increasing; the target before
the first entry is 0."""

_BATCHED = {
    CMD_BATCHED_LOCK: (True, False),
    CMD_BATCHED_UNLOCK: (False, False),
    CMD_BATCHED_2M_LOCK: (True, True),
    CMD_BATCHED_2M_UNLOCK: (False, True),
}
"""Batched commands: ``(lock, is_2m)``."""


class CooperativeHost(NamedTuple):
    """The host's state: configuration, clock, negotiated capabilities, frames held."""

    capabilities: int  # what this host offers (START answers with what was also asked)
    schedule: Schedule  # the target over time
    ram_start: int  # the guest's frames: [ram_start, ram_end)
    ram_end: int
    tick: int = 0  # the current tick, for the schedule
    batch_pfn: int | None = None  # PFN of the guest's batch page (last "kernel" allocation)
    negotiated: int = 0  # capabilities granted by the last START
    held: iv.Runs = ()  # frames locked in the balloon
    refused: int = 0  # pages answered with a failure so far (per page or whole command)
    starts: int = 0  # START commands answered so far (connection resets)

    @staticmethod
    def create(
        ram_start: int, frames: int, schedule: Schedule, capabilities: int = CAPABILITIES
    ) -> CooperativeHost:
        """A host for a guest of ``frames`` frames from ``ram_start``, nothing held."""
        return CooperativeHost(capabilities, schedule, ram_start, ram_start + frames)

    # -- clock and target ----------------------------------------------------------------

    def target(self) -> int:
        """The target (4 KiB pages) the schedule has in force at :attr:`tick`."""
        i = bisect_right(self.schedule, (self.tick, 1 << 64)) - 1
        return self.schedule[i][1] if i >= 0 else 0

    def at_tick(self, tick: int) -> CooperativeHost:
        """This host with its clock at ``tick``."""
        return self._replace(tick=tick)

    def with_batch_page(self, pfn: int) -> CooperativeHost:
        """This host knowing that the guest's batch page is frame ``pfn``."""
        return self._replace(batch_pfn=pfn)

    def held_frames(self) -> int:
        """Number of 4 KiB frames the host holds locked."""
        return iv.count(self.held)

    # -- answers -------------------------------------------------------------------------

    def answer(
        self, cmd: int, arg1: int, arg2: int, batch: tuple[int, ...] | None
    ) -> tuple[Response, CooperativeHost]:
        """The answer to backdoor command ``cmd`` and the host afterwards."""
        if cmd == CMD_START:
            granted = self.capabilities & arg1
            host = self._replace(negotiated=granted, held=(), starts=self.starts + 1)
            return Response(SUCCESS_WITH_CAPABILITIES, granted), host
        if cmd in (CMD_GUEST_ID, CMD_VMCI_DOORBELL_SET):
            return Response(STATUS_SUCCESS), self
        if cmd == CMD_GET_TARGET:
            return Response(STATUS_SUCCESS, self.target()), self
        if cmd in (CMD_LOCK, CMD_UNLOCK):
            return self._basic(cmd == CMD_LOCK, arg1)
        if cmd in _BATCHED:
            lock, is_2m = _BATCHED[cmd]
            return self._batched(lock, is_2m, arg1, arg2, batch)
        return Response(ERROR_CMD_INVALID), self

    def _basic(self, lock: bool, pfn: int) -> tuple[Response, CooperativeHost]:
        """``LOCK`` / ``UNLOCK`` of the 4 KiB frame ``pfn``."""
        if not self.negotiated & CAP_BASIC:
            return Response(ERROR_CMD_INVALID, self.target()), self._refuse(1)
        status, held = self._one(lock, False, pfn, self.held)
        host = self._replace(held=held) if status == STATUS_SUCCESS else self._refuse(1)
        return Response(status, self.target()), host

    def _batched(
        self, lock: bool, is_2m: bool, pfn: int, num_pages: int, batch: tuple[int, ...] | None
    ) -> tuple[Response, CooperativeHost]:
        """A batched lock or unlock of ``num_pages`` entries of the batch page at ``pfn``."""
        target = self.target()
        n = min(num_pages, BATCH_MAX_PAGES)
        needed = CAP_BATCHED | (CAP_BATCHED_2M if is_2m else 0)
        if self.negotiated & needed != needed:
            return Response(ERROR_CMD_INVALID, target), self._refuse(n)
        if batch is None or self.batch_pfn is None or pfn != self.batch_pfn:
            return Response(ERROR_PPN_INVALID, target), self._refuse(n)
        held = self.held
        statuses: list[int] = []
        failed = 0
        for entry in batch[:n]:
            status, held = self._one(lock, is_2m, (entry & BATCH_PAGE_MASK) >> PAGE_SHIFT, held)
            statuses.append(status)
            failed += status != STATUS_SUCCESS
        entries = tuple(statuses) if failed else None
        host = self._replace(held=held, refused=self.refused + failed)
        return Response(STATUS_SUCCESS, target, entries), host

    def _one(self, lock: bool, is_2m: bool, pfn: int, held: iv.Runs) -> tuple[int, iv.Runs]:
        """Lock or unlock one page (512 frames for 2 MiB): its status and the held frames."""
        frames = PAGES_PER_2M if is_2m else 1
        end = pfn + frames
        if (is_2m and pfn % PAGES_PER_2M) or pfn < self.ram_start or end > self.ram_end:
            return ERROR_PPN_INVALID, held
        if lock:
            if iv.overlaps(held, pfn, end):
                return ERROR_PPN_LOCKED, held
            return STATUS_SUCCESS, iv.add(held, pfn, end)
        if not iv.covers(held, pfn, end):
            return ERROR_PPN_UNLOCKED, held
        return STATUS_SUCCESS, iv.remove(held, pfn, end)

    def _refuse(self, pages: int) -> CooperativeHost:
        return self._replace(refused=self.refused + pages)
