"""The driver's environment as an immutable value: hypervisor, page allocator, VMCI, log.

This is the environment of ``scenario-format.md`` ("The environment's rules"),
shared by the model and the reference so that the two can only differ in how
they read the C.  Every operation returns a new :class:`Env`; the event log is
a persistent stack inside it, so keeping an old environment costs nothing.

* **Host**: the scripted answers of the scenario, one per backdoor command
  (``VMWARE_BALLOON_CMD``, lines 200-219); ``{"status": 0, "result": 0}`` once
  the script is used up.
* **Allocator**: frames ``pfn_base .. pfn_base + frames - 1``; order 0 takes the
  lowest free frame, order 9 the lowest free 512-aligned block; frees detect
  double frees, order mismatches, tail frames and frames outside the pool.
* **VMCI**: the n-th successful ``vmci_doorbell_create`` returns ``(0, n)``.

Two optional parts replace the scripts for simulations (``vmballoon simulate``):

* ``host``: a :class:`vmballoon.core.host.CooperativeHost` answers every backdoor
  command instead of the ``hv`` script;
* ``alloc_fail``: an :class:`AllocFail` policy (memory pressure) decides which
  allocator calls fail when there is no ``alloc`` script.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from vmballoon.core import intervals as iv
from vmballoon.core.protocol import COMMAND_NAMES, NULL_PFN, ORDER_2M, PAGES_PER_2M
from vmballoon.core.scenario import Response, Scenario

if TYPE_CHECKING:
    from vmballoon.core.host import CooperativeHost

Event = dict[str, Any]
EventStack = tuple[Event, "EventStack"] | None
"""A persistent stack of events, newest first: ``(event, older)`` or ``None``."""

DEFAULT_RESPONSE = Response(0, 0, None)


def events_of(stack: EventStack) -> list[Event]:
    """The events of a stack, oldest first."""
    return events_since(stack, None)


def events_since(stack: EventStack, stop: EventStack) -> list[Event]:
    """The events pushed on ``stop`` to make ``stack`` (a stack that extends ``stop``),
    oldest first; the whole log when ``stop`` is None."""
    out: list[Event] = []
    while stack is not None and stack is not stop:
        out.append(stack[0])
        stack = stack[1]
    out.reverse()
    return out


def _pfn_json(pfn: int | None) -> int | None:
    return None if pfn is None or pfn == NULL_PFN else pfn


class Memory(NamedTuple):
    """The guest page allocator's state.

    ``free`` holds the free frames; ``blocks`` the indices (``pfn >> 9``) of the
    order-9 blocks handed out and not yet freed whole; ``orphans`` the frames
    of order-9 blocks that were partly freed, which no free can return validly.
    """

    base: int
    end: int
    free: iv.Runs
    blocks: iv.Runs
    orphans: iv.Runs

    def allocated(self, pfn: int) -> bool:
        """Whether ``pfn`` is a frame of the pool that is currently allocated."""
        return self.base <= pfn < self.end and not iv.contains(self.free, pfn)


def _new_memory(base: int, frames: int) -> Memory:
    return Memory(base, base + frames, ((base, base + frames),) if frames else (), (), ())


_M64 = (1 << 64) - 1


class AllocFail(NamedTuple):
    """Memory pressure: each allocator call fails with probability ``rate``, deterministically.

    Whether call number ``index`` (0-based, every call counts, the batch page too)
    fails depends only on ``(seed, index)``: a splitmix64 hash of both compared
    with ``rate * 2**64``.
    """

    rate: float
    seed: int

    def fails(self, index: int) -> bool:
        """Whether allocator call ``index`` returns NULL."""
        x = (self.seed * 0x9E3779B97F4A7C15 + (index + 1) * 0xBF58476D1CE4E5B9) & _M64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
        x ^= x >> 31
        return x < int(self.rate * (1 << 64))


class Env(NamedTuple):
    """Everything outside the driver, and the event log of what crossed the boundary."""

    hv_script: tuple[Response, ...]
    hv_pos: int
    alloc_script: tuple[bool, ...]
    alloc_pos: int
    vmci_script: tuple[bool, ...]
    vmci_pos: int
    vmci_created: int
    memory: Memory
    totalram: int
    log: EventStack
    host: CooperativeHost | None = None  # answers commands instead of hv_script
    alloc_fail: AllocFail | None = None  # used when alloc_script is empty

    # -- construction -----------------------------------------------------------------

    @staticmethod
    def from_scenario(scenario: Scenario) -> Env:
        """The environment at module load for ``scenario``."""
        return Env(
            scenario.hv,
            0,
            scenario.alloc,
            0,
            scenario.vmci,
            0,
            0,
            _new_memory(scenario.pfn_base, scenario.frames),
            scenario.totalram,
            None,
        )

    def events(self) -> list[Event]:
        """The log so far, oldest first."""
        return events_of(self.log)

    def emit(self, event: Event) -> Env:
        """Log one event."""
        return self._evolve(self.memory, (event, self.log))

    def _evolve(self, memory: Memory, log: EventStack) -> Env:
        """This environment with ``memory`` and ``log`` (the hot path: no ``_replace``)."""
        return Env(
            self.hv_script,
            self.hv_pos,
            self.alloc_script,
            self.alloc_pos,
            self.vmci_script,
            self.vmci_pos,
            self.vmci_created,
            memory,
            self.totalram,
            log,
            self.host,
            self.alloc_fail,
        )

    def step(self, name: str) -> Env:
        """Log the start of an entry point (``work``, ``doorbell``, ``exit``)."""
        return self.emit({"ev": "step", "name": name})

    def fault(self, kind: str, pfn: int | None) -> Env:
        """Log a fault: ``bad_free``, ``warn``, ``null_deref`` or ``list_corrupt``."""
        return self.emit({"ev": "fault", "kind": kind, "pfn": _pfn_json(pfn)})

    # -- hypervisor -------------------------------------------------------------------

    def next_response(self) -> Response:
        """The answer the next backdoor command will get."""
        if self.hv_pos < len(self.hv_script):
            return self.hv_script[self.hv_pos]
        return DEFAULT_RESPONSE

    def hv(
        self, cmd: int, arg1: int, arg2: int, batch: tuple[int, ...] | None = None
    ) -> tuple[Response, Env]:
        """Issue backdoor command ``cmd`` (lines 200-219) and log it.

        ``arg1`` and ``arg2`` are the zero-extended values the C passes; a PFN
        of ``NULL_PFN`` (a NULL page pointer) is logged as ``null``.  ``batch``
        holds, for a batched command, the u64 entries ``0 .. num_pages-1`` the
        driver wrote into its batch page (``None`` without a batch page); only
        a :attr:`host` reads it, and only when ``arg1`` names the batch page.
        """
        host = self.host
        if host is None:
            response = self.next_response()
        else:
            response, host = host.answer(cmd, arg1, arg2, batch)
        event = {
            "ev": "hv",
            "cmd": COMMAND_NAMES[cmd],
            "arg1": _pfn_json(arg1),
            "arg2": _pfn_json(arg2),
            "status": response.status,
            "result": response.result,
        }
        return response, Env(
            self.hv_script,
            self.hv_pos + 1,
            self.alloc_script,
            self.alloc_pos,
            self.vmci_script,
            self.vmci_pos,
            self.vmci_created,
            self.memory,
            self.totalram,
            (event, self.log),
            host,
            self.alloc_fail,
        )

    # -- page allocator ----------------------------------------------------------------

    def alloc(self, order: int, gfp: str) -> tuple[int | None, Env]:
        """One allocator call of ``order`` (0 or 9) with ``gfp`` (nosleep, cansleep, kernel).

        Returns the PFN of the first frame, or ``None`` for a NULL page.
        """
        pos = self.alloc_pos
        if pos < len(self.alloc_script):
            allowed = self.alloc_script[pos]
        else:
            allowed = self.alloc_fail is None or not self.alloc_fail.fails(pos)
        mem = self.memory
        pfn: int | None = None
        if allowed:
            if order == 0:
                if mem.free:
                    pfn = mem.free[0][0]
                    run = mem.free[0]
                    free = ((pfn + 1, run[1]), *mem.free[1:]) if run[1] > pfn + 1 else mem.free[1:]
                    mem = Memory(mem.base, mem.end, free, mem.blocks, mem.orphans)
            else:
                pfn = iv.first_aligned(mem.free, PAGES_PER_2M)
                if pfn is not None:
                    mem = Memory(
                        mem.base,
                        mem.end,
                        iv.remove(mem.free, pfn, pfn + PAGES_PER_2M),
                        iv.add(mem.blocks, pfn >> 9, (pfn >> 9) + 1),
                        mem.orphans,
                    )
        event = {"ev": "alloc", "order": order, "gfp": gfp, "pfn": pfn}
        host = self.host
        if host is not None and gfp == "kernel" and pfn is not None:
            host = host.with_batch_page(pfn)  # the batch page (vmballoon_init_batching)
        return pfn, Env(
            self.hv_script,
            self.hv_pos,
            self.alloc_script,
            pos + 1,
            self.vmci_script,
            self.vmci_pos,
            self.vmci_created,
            mem,
            self.totalram,
            (event, self.log),
            host,
            self.alloc_fail,
        )

    def free(self, pfn: int, order: int) -> Env:
        """Free the block of ``order`` at ``pfn``; a bad free also logs ``bad_free``."""
        log: EventStack = ({"ev": "free", "order": order, "pfn": _pfn_json(pfn)}, self.log)
        mem = self.memory
        if order == 0:
            if (
                mem.allocated(pfn)
                and not iv.contains(mem.blocks, pfn >> 9)
                and not iv.contains(mem.orphans, pfn)
            ):
                free = iv.add(mem.free, pfn, pfn + 1)
                return self._evolve(Memory(mem.base, mem.end, free, mem.blocks, mem.orphans), log)
            start, end = pfn, pfn + 1
        else:
            if (
                pfn % PAGES_PER_2M == 0
                and iv.contains(mem.blocks, pfn >> 9)
                and not iv.overlaps(mem.free, pfn, pfn + PAGES_PER_2M)
            ):
                mem = Memory(
                    mem.base,
                    mem.end,
                    iv.add(mem.free, pfn, pfn + PAGES_PER_2M),
                    iv.remove(mem.blocks, pfn >> 9, (pfn >> 9) + 1),
                    mem.orphans,
                )
                return self._evolve(mem, log)
            start, end = pfn, pfn + (1 << ORDER_2M)
        log = ({"ev": "fault", "kind": "bad_free", "pfn": _pfn_json(pfn)}, log)
        return self._evolve(_release_badly(mem, start, end), log)

    # -- VMCI -------------------------------------------------------------------------

    def vmci_create(self) -> tuple[tuple[int, int] | None, Env]:
        """``vmci_doorbell_create``: the new handle ``(0, n)``, or ``None`` when it fails."""
        pos = self.vmci_pos
        ok = pos >= len(self.vmci_script) or self.vmci_script[pos]
        created = self.vmci_created + 1 if ok else self.vmci_created
        env = self._replace(vmci_pos=pos + 1, vmci_created=created)
        env = env.emit({"ev": "vmci_create", "ok": ok})
        return ((0, created) if ok else None), env

    def vmci_destroy(self) -> Env:
        """``vmci_doorbell_destroy``."""
        return self.emit({"ev": "vmci_destroy"})


def _release_badly(mem: Memory, start: int, end: int) -> Memory:
    """After a bad free of ``[start, end)``: release the allocated in-pool frames.

    Order-9 blocks that the range touches are no longer whole: their frames that
    stay allocated become orphans.
    """
    start, end = max(start, mem.base), min(end, mem.end)
    if start >= end:
        return mem
    blocks, orphans, free = mem.blocks, mem.orphans, mem.free
    for b_start, b_end in iv.intersect(blocks, start >> 9, ((end - 1) >> 9) + 1):
        lo, hi = b_start << 9, b_end << 9
        orphans = iv.add(orphans, lo, hi)
        for s, e in iv.intersect(free, lo, hi):
            orphans = iv.remove(orphans, s, e)
        blocks = iv.remove(blocks, b_start, b_end)
    orphans = iv.remove(orphans, start, end)
    free = iv.add(free, start, end)
    return Memory(mem.base, mem.end, free, blocks, orphans)
