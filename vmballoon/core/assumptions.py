"""Every assumption a result of the spec rests on, declared once.

A result (a property proved by ``vmballoon verify``, a property checked on a trace by
:func:`vmballoon.model.properties.check_trace`, the fuzzer, ``vmballoon simulate``)
is claimed only for the environments these assumptions allow.  Each
:class:`Assumption` has a name, the text of what is assumed, the reason (the C lines
or the platform fact that make it necessary), the results that rest on it, and an
executable predicate over what the concrete checks see:

* a :class:`Guest` (the scenario's pool and ``totalram``) for guest-wide assumptions;
* a :class:`StepView` (the commands, allocations and VMCI calls of one transition of
  a work tick, with the few driver facts they depend on) for the assumptions about
  the environment's answers during a tick.

The Z3 side builds its constraints per name: ``vmballoon.proofs.encoding.well_formed`` for the
guest-wide ones, ``vmballoon.proofs.progress.COOPERATIVE`` (one constraint per name of
:data:`PROGRESS`) for the progress proof, and a test checks that the two sets of
names agree.  The rule tying them: **whenever the concrete predicate of an
assumption holds on a step, the Z3 constraint of the same name holds on the
abstraction of that step** (``tests/test_assumptions.py`` checks it on fuzzed
traces).  So a trace on which every concrete predicate holds is covered by the
proof, and a property proved under these assumptions cannot be refuted by an
executable check that honours them.

Plain Python: no z3, no model imports (this is the bottom layer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from vmballoon.core.protocol import (
    CAP_BASIC,
    CAP_BATCHED,
    ERROR_PPN_INVALID,
    ERROR_RESET,
    PAGES_PER_2M,
    SUCCESS_WITH_CAPABILITIES,
    U32_MASK,
)

PFN_LIMIT = 1 << 52
"""Every PFN is below this: a batch entry is ``pfn << PAGE_SHIFT`` in 64 bits."""

T_MAX = U32_MASK - PAGES_PER_2M
"""Largest target for which ``target + 512`` fits in an ``unsigned int``: in ``b->size``
(line 281) and in the hysteresis sums of lines 946-948 and 1127."""

BATCHED_CMDS = frozenset({"BATCHED_LOCK", "BATCHED_UNLOCK", "BATCHED_2M_LOCK", "BATCHED_2M_UNLOCK"})
TARGET_CMDS = frozenset({"GET_TARGET", "LOCK", "UNLOCK"}) | BATCHED_CMDS
"""Commands whose result the C writes into ``b->target`` (lines 405-438, 445-535)."""
STATUS_CMDS = TARGET_CMDS | {"START"}
"""Commands whose status decides what a tick achieves (the others, GUEST_ID and
VMCI_DOORBELL_SET, may fail without keeping the balloon from its target, except with
ERROR_RESET: :data:`RESET_CMDS`)."""

RESET_CMDS = frozenset({"GUEST_ID", "VMCI_DOORBELL_SET"})
"""Commands outside :data:`STATUS_CMDS` whose ERROR_RESET answer still schedules a reset
(``vmballoon_check_status``, line 363) after the reset cleared it (line 1092): a host
answering GUEST_ID with ERROR_RESET on every tick keeps every tick in
``vmballoon_reset``, GET_TARGET is never sent (line 1120).  (The doorbell's clearing at
the start of a reset, before line 1092, may answer anything.)"""


@dataclass(frozen=True)
class Guest:
    """The guest as a scenario describes it: its pool of frames and ``totalram``."""

    frames: int
    pfn_base: int
    totalram: int


@dataclass(frozen=True)
class Command:
    """One backdoor command as the host answered it."""

    cmd: str
    status: int
    result: int
    named: bool = True  # a batched command names the batch page (lines 470, 518)
    entries: tuple[int, ...] = ()  # batched, named: each entry's status after the host wrote
    invalidates: bool = False  # VMCI_DOORBELL_SET clearing the doorbell (line 1017, in a reset)


@dataclass(frozen=True)
class StepView:
    """What one transition of a work tick did in the environment, and the driver facts
    the assumptions read (all taken before the transition)."""

    commands: tuple[Command, ...] = ()
    allocations: tuple[int | None, ...] = ()  # PFN handed out, None for a failed allocation
    deflating: int | None = None  # the frame a deflate step takes off its list
    basic: bool = False  # the driver runs the basic command set (ops == basic)
    reads_target: bool = False  # the transition of vmballoon_work that reads the target
    slow: int = 0  # b->slow_allocation_cycles before the transition
    size: int = 0  # b->size before the transition
    target: int = -1  # the tick's target so far (GET_TARGET's result), -1 when none


Check = Callable[[Guest, StepView], "str | None"]


@dataclass(frozen=True)
class Assumption:
    """A named assumption: what, why, which results rest on it, and its predicate."""

    name: str
    text: str
    reason: str
    results: str  # "all" (every property) or "progress"
    check: Check = field(repr=False, compare=False)


def _pfn_52(g: Guest, v: StepView) -> str | None:
    if g.pfn_base + g.frames > PFN_LIMIT:
        return f"frames up to {g.pfn_base + g.frames - 1} reach 2**52"
    return None


def _ram_32(g: Guest, v: StepView) -> str | None:
    if g.totalram > U32_MASK:
        return f"totalram {g.totalram} does not fit in 32 bits"
    return None


def _guest_32(g: Guest, v: StepView) -> str | None:
    if g.frames > U32_MASK:
        return f"{g.frames} frames: 2**32 or more"
    return None


def _host_success(g: Guest, v: StepView) -> str | None:
    for c in v.commands:
        if c.cmd not in STATUS_CMDS:
            continue
        if c.cmd == "START":
            if c.status not in (0, SUCCESS_WITH_CAPABILITIES):
                return f"START answered {c.status}"
            if c.status == SUCCESS_WITH_CAPABILITIES and not c.result & (CAP_BASIC | CAP_BATCHED):
                return f"START granted capabilities {c.result:#x}: neither command set"
        elif c.cmd in BATCHED_CMDS and not c.named:
            if c.status != ERROR_PPN_INVALID:
                return f"{c.cmd} not naming the batch page answered {c.status}"
        elif c.status != 0:
            return f"{c.cmd} answered {c.status}"
    return None


def _no_reset_request(g: Guest, v: StepView) -> str | None:
    for c in v.commands:
        if c.cmd in RESET_CMDS and not c.invalidates and c.status == ERROR_RESET:
            return f"{c.cmd} answered ERROR_RESET"
    return None


def _entries_success(g: Guest, v: StepView) -> str | None:
    for c in v.commands:
        if c.cmd in BATCHED_CMDS and c.named and any(e != 0 for e in c.entries):
            bad = next(e for e in c.entries if e != 0)
            return f"{c.cmd} entry answered {bad}"
    return None


def _host_target(g: Guest, v: StepView) -> str | None:
    target = v.target
    for c in v.commands:
        if c.cmd not in TARGET_CMDS:
            continue
        r32 = c.result & U32_MASK
        if c.cmd == "GET_TARGET" and target < 0:
            target = r32
        elif r32 != target:
            return f"{c.cmd} result {r32} is not the tick's target {target}"
    return None


def _target_fits(g: Guest, v: StepView) -> str | None:
    if v.target > T_MAX:
        return f"target {v.target} + 512 does not fit in 32 bits"
    for c in v.commands:
        if c.cmd == "GET_TARGET" and c.result & U32_MASK > T_MAX:
            return f"target {c.result & U32_MASK} + 512 does not fit in 32 bits"
    return None


def _alloc_ok(g: Guest, v: StepView) -> str | None:
    if any(p is None for p in v.allocations):
        return "an allocation failed"
    return None


def _basic_32(g: Guest, v: StepView) -> str | None:
    if v.basic:
        for p in (*v.allocations, v.deflating):
            if p is not None and p > U32_MASK:
                return f"frame {p} above 2**32 taken with the basic commands"
    return None


def _unthrottled(g: Guest, v: StepView) -> str | None:
    if not v.reads_target or v.slow <= 1:
        return None
    for c in v.commands:
        if c.cmd == "GET_TARGET" and v.size < c.result & U32_MASK:
            return f"inflating with {v.slow} slow allocation cycles left (rate limited)"
    return None


ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption(
        "pfn_below_2_52",
        "every PFN of the guest is below 2**52",
        "a batch entry is `pfn << PAGE_SHIFT` in 64 bits (lines 179-185): a larger PFN does "
        "not read back; x86-64 physical addresses have at most 52 bits",
        "all",
        _pfn_52,
    ),
    Assumption(
        "host_success",
        "START is answered SUCCESS, or SUCCESS_WITH_CAPABILITIES granting the basic or the "
        "batched command set; GET_TARGET, LOCK, UNLOCK and batched commands are answered "
        "SUCCESS, except that a batched command not naming the batch page is refused as a "
        "whole with ERROR_PPN_INVALID",
        "a cooperative host follows the protocol; it cannot read a batch it was not shown "
        "(lines 470, 518); any other status ends the tick early (lines 425-437, 893-906, "
        "959-963) or schedules a reset (line 364); a START that fails or grants neither "
        "command set leaves the reset undone (lines 1071-1072; 1074-1092 with the fix "
        "reset_needs_ops), so GET_TARGET is never sent (line 1120). GUEST_ID and "
        "VMCI_DOORBELL_SET may fail (but not with ERROR_RESET: no_reset_request)",
        "progress",
        _host_success,
    ),
    Assumption(
        "no_reset_request",
        "GUEST_ID and the VMCI_DOORBELL_SET that sets the doorbell are never answered "
        "ERROR_RESET (any other failure is allowed)",
        "ERROR_RESET schedules a reset (line 363); a host that answers GUEST_ID with it on "
        "every tick keeps every tick in vmballoon_reset (lines 1114, 1098) and GET_TARGET is "
        "never sent (line 1120): the balloon never moves",
        "progress",
        _no_reset_request,
    ),
    Assumption(
        "batch_entries_success",
        "a batched command that names the batch page comes back with every entry SUCCESS",
        "a refused, pinned or unexpected entry is kept off the balloon (lines 654-681, "
        "735-746): the balloon may then stay below its target",
        "progress",
        _entries_success,
    ),
    Assumption(
        "host_target_steady",
        "within a tick, the results of GET_TARGET, LOCK, UNLOCK and batched commands all "
        "equal the tick's target (in their low 32 bits)",
        "LOCK and UNLOCK results overwrite b->target (lines 457, 475-478, 505, 523-526): a "
        "host that moves the target mid-tick makes the loops of 833 and 945 chase it",
        "progress",
        _host_target,
    ),
    Assumption(
        "target_fits",
        "the target is at most 2**32 - 513",
        "target + 512 must fit in an unsigned int (line 281; the sums of 946-948 and 1127)",
        "progress",
        _target_fits,
    ),
    Assumption(
        "allocations_succeed",
        "every page allocation succeeds (enough free frames)",
        "a failed allocation ends the inflation (lines 836-859) below the target",
        "progress",
        _alloc_ok,
    ),
    Assumption(
        "basic_frames_below_2_32",
        "while only the basic commands are in use, every frame the driver allocates or "
        "deflates is below 2**32",
        "LOCK and UNLOCK carry a 32-bit PFN (lines 451-453, 499-501): a higher frame is "
        "refused, never ballooned",
        "progress",
        _basic_32,
    ),
    Assumption(
        "totalram_below_2_32",
        "totalram fits in 32 bits",
        "GET_TARGET is not sent when totalram_pages does not fit (lines 415-420, 1121): no "
        "target is read",
        "progress",
        _ram_32,
    ),
    Assumption(
        "guest_below_2_32",
        "the guest has fewer than 2**32 frames (so the balloon holds fewer)",
        "b->size is an unsigned int (line 281)",
        "progress",
        _guest_32,
    ),
    Assumption(
        "not_throttled",
        "a tick that inflates starts with at most one slow allocation cycle left",
        "with slow cycles left the inflation is rate limited (lines 821-828, 1117-1118) and "
        "may stop below the target by design",
        "progress",
        _unthrottled,
    ),
)
"""Every assumption, in report order."""

BY_NAME: dict[str, Assumption] = {a.name: a for a in ASSUMPTIONS}
GLOBAL: tuple[Assumption, ...] = tuple(a for a in ASSUMPTIONS if a.results == "all")
"""The assumptions every property rests on."""
PROGRESS: tuple[Assumption, ...] = tuple(a for a in ASSUMPTIONS if a.results == "progress")
"""The cooperative environment of ``progress`` (besides :data:`GLOBAL`)."""
GUEST_WIDE = frozenset({"pfn_below_2_52", "totalram_below_2_32", "guest_below_2_32"})
"""Assumptions that read only the :class:`Guest`."""


def names_for(prop: str) -> list[str]:
    """The names of the assumptions a result about ``prop`` rests on."""
    return [a.name for a in ASSUMPTIONS if a.results == "all" or a.results == prop]


def broken(
    assumptions: tuple[Assumption, ...], guest: Guest, view: StepView | None = None
) -> list[tuple[str, str]]:
    """``(name, message)`` of each assumption whose predicate fails (``view`` omitted:
    only the guest-wide ones are checked)."""
    out: list[tuple[str, str]] = []
    for a in assumptions:
        if view is None and a.name not in GUEST_WIDE:
            continue
        msg = a.check(guest, view if view is not None else StepView())
        if msg is not None:
            out.append((a.name, msg))
    return out


class GuestOf(Protocol):
    """What :func:`scenario_outside` reads of a scenario (``vmballoon.core.scenario.Scenario``
    has it)."""

    @property
    def frames(self) -> int: ...
    @property
    def pfn_base(self) -> int: ...
    @property
    def totalram(self) -> int: ...


@dataclass(frozen=True)
class Outside:
    """A declared assumption a scenario's guest does not meet, and why."""

    name: str
    message: str


def scenario_outside(
    scenario: GuestOf, assumptions: tuple[Assumption, ...] = ASSUMPTIONS
) -> list[Outside]:
    """The guest-wide assumptions among ``assumptions`` (``pfn_below_2_52``,
    ``totalram_below_2_32``, ``guest_below_2_32``) that ``scenario``'s guest violates, in
    report order.  These are decided by the scenario alone; the assumptions about the
    environment's answers in a tick need the trace (:func:`broken` with a
    :class:`StepView`).  ``scenario_outside(sc, GLOBAL)`` non-empty: no property is
    claimed for ``sc``, and a divergence on it is outside the declared assumptions."""
    guest = Guest(scenario.frames, scenario.pfn_base, scenario.totalram)
    return [Outside(name, msg) for name, msg in broken(assumptions, guest)]


__all__ = [
    "ASSUMPTIONS",
    "BY_NAME",
    "GLOBAL",
    "GUEST_WIDE",
    "PFN_LIMIT",
    "PROGRESS",
    "RESET_CMDS",
    "T_MAX",
    "Assumption",
    "Command",
    "Guest",
    "GuestOf",
    "Outside",
    "StepView",
    "broken",
    "names_for",
    "scenario_outside",
]
