"""The properties of the spec as named predicates over model states (design.md, "properties").

Plain Python: no z3, no hypothesis.  :class:`Monitor` checks them along a trace
(every checker of a trace uses it: :func:`check_trace`, the fuzzer, the trace
writers, ``simulate``); the predicates are also the concrete side of the Z3
encoding's conformance tests (:mod:`vmballoon.proofs.encoding` abstracts a state and a
:class:`Ghost`).

Two kinds of checks:

* **state predicates** (:data:`STATE_PROPERTIES`): ``fn(state, ghost) -> str | None``,
  a message when the property fails in that state;
* **transition checks** (:func:`observe`): what crossed the boundary during one
  transition (the new events of the log) against the :class:`Ghost`, which
  :func:`observe` also updates: frees of frames the host holds, bad frees,
  commands the host did not negotiate, targets taken from failed commands.

The ghost is what a checker maintains along a trace and the driver does not
store: the frames the host holds locked, the capabilities the host granted by
its last START, whether the host acknowledged the doorbell, whether ``b->target``
came from a successful command.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import Enum
from itertools import pairwise
from typing import Any

from vmballoon.core import assumptions as asm
from vmballoon.core import intervals as iv
from vmballoon.core.env import DEFAULT_RESPONSE, Event, Memory, events_since
from vmballoon.core.protocol import (
    BATCH_MAX_PAGES,
    BATCH_STATUS_MASK,
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BATCHED_2M,
    CAP_SIGNALLED_WAKEUP,
    ERROR_RESET,
    MAX_REFUSED,
    PAGE_SHIFT,
    PAGES_PER_2M,
    RATE_ALLOC_MAX,
    RATE_ALLOC_MIN,
    SUCCESS_WITH_CAPABILITIES,
    U32_MASK,
    U64_MASK,
    UINT_MAX,
    VMCI_INVALID_ID,
)
from vmballoon.core.scenario import Response, Scenario
from vmballoon.core.variants import Variant
from vmballoon.model.claims import Claims, list_segments
from vmballoon.model.frameset import EMPTY, FrameSet
from vmballoon.model.machine import balloon_pages, start, trace
from vmballoon.model.plist import iterate, to_list
from vmballoon.model.state import (
    DEFLATE_LOCS,
    INFLATE_LOCS,
    OPS_BASIC,
    OPS_BATCHED,
    RESTING,
    Loc,
    State,
)

LOCK_CMDS = frozenset({"LOCK", "BATCHED_LOCK", "BATCHED_2M_LOCK"})
UNLOCK_CMDS = frozenset({"UNLOCK", "BATCHED_UNLOCK", "BATCHED_2M_UNLOCK"})
BATCHED_CMDS = frozenset({"BATCHED_LOCK", "BATCHED_UNLOCK", "BATCHED_2M_LOCK", "BATCHED_2M_UNLOCK"})
TARGET_CMDS = frozenset({"GET_TARGET"}) | LOCK_CMDS | UNLOCK_CMDS
"""Commands whose result the C writes into ``b->target`` (lines 405-438, 445-535)."""


@dataclass(frozen=True)
class Ghost:
    """What a checker tracks along a trace besides the model state.

    ``held``: frames (first PFN of the page, 4 KiB or 2 MiB) the host holds
    locked: a LOCK answered SUCCESS, or a batched lock answered SUCCESS naming the
    batch page whose entry reads SUCCESS afterwards, adds the frame; the UNLOCK
    counterparts remove it; a START (any status) or any RESET status clears all.
    ``negotiated``: the capabilities granted by the last START (SUCCESS: BASIC;
    SUCCESS_WITH_CAPABILITIES: the result; anything else: none).
    ``doorbell_ok``: the last VMCI_DOORBELL_SET named a real handle and was
    answered SUCCESS (a DOORBELL_SET(INVALID, INVALID) clears it).
    ``target_ok``: ``b->target`` holds 0 from init or a value written from a
    command answered SUCCESS (a write from a failed command that changes it clears it);
    ``target_written``: the value that failed command wrote (what
    :func:`target_from_host` names, so every checker words it alike whichever state it
    shows).
    ``tick_broken`` / ``tick_target``: facts about the work tick in progress, for
    :func:`progress`: the assumptions of :data:`vmballoon.core.assumptions.PROGRESS`
    the environment broke so far in the tick (name and message of each), and the
    target GET_TARGET read.
    """

    held: AbstractSet[int] = EMPTY  # a FrameSet as observe makes it
    negotiated: int = 0
    doorbell_ok: bool = False
    target_ok: bool = True
    tick_broken: tuple[tuple[str, str], ...] = ()
    tick_target: int = -1  # the target GET_TARGET read in this tick, -1 when none
    tick_done: bool = False  # a work tick returned at the transition just observed
    target_written: int = 0  # the value the last failed command wrote into b->target


def initial_ghost() -> Ghost:
    """The ghost at module load: the host holds nothing, nothing was negotiated."""
    return Ghost()


@dataclass(frozen=True)
class Violation:
    """One property failing at one point of a trace."""

    prop: str
    step: int  # index of the transition in the trace (0 = module init)
    loc: str  # control location after the transition
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"property": self.prop, "step": self.step, "loc": self.loc, "message": self.message}


# -- helpers over states ------------------------------------------------------------------


def new_events(prev: State, nxt: State) -> list[Event]:
    """The events logged by the transition ``prev -> nxt``, oldest first."""
    return events_since(nxt.env.log, prev.env.log)


def batch_pfns(state: State, num_pages: int) -> list[int]:
    """PFNs of batch entries ``0 .. num_pages-1`` as the driver wrote them (lines 179-185)."""
    entries = list(iterate(state.loop.fill))
    entries.reverse()
    return [((e & U64_MASK) >> PAGE_SHIFT) for e in entries[:num_pages]]


def in_flight(state: State) -> list[int]:
    """Pages taken by the loop in progress and not yet on a list or freed (the batch)."""
    if state.loc not in INFLATE_LOCS and state.loc not in DEFLATE_LOCS:
        return []
    n = state.loop.num_pages
    if n == 0:
        return []
    if state.drv.ops == OPS_BASIC:
        return [] if state.drv.page is None else [state.drv.page]
    return batch_pfns(state, n)


def owners(state: State) -> list[tuple[str, int, int]]:
    """Every claim of ownership as ``(owner, first_pfn, frames)``."""
    pages = balloon_pages(state)
    out: list[tuple[str, int, int]] = []
    for idx, name in ((0, "pages4k"), (1, "pages2m")):
        out.extend((name, p, PAGES_PER_2M if idx else 1) for p in pages[idx])
    for idx, name in ((0, "refused4k"), (1, "refused2m")):
        out.extend((name, p, PAGES_PER_2M if idx else 1) for p in to_list(state.drv.refused[idx]))
    if state.drv.batch_page is not None:
        out.append(("batch_page", state.drv.batch_page, 1))
    is_2m = state.loop.is_2m and state.drv.ops == OPS_BATCHED
    out.extend(("batch", p, PAGES_PER_2M if is_2m else 1) for p in in_flight(state))
    return out


def allocated_runs(state: State) -> iv.Runs:
    """The frames of the pool the allocator has out, as runs."""
    mem = state.env.memory
    runs: iv.Runs = ((mem.base, mem.end),) if mem.end > mem.base else ()
    return iv.remove_all(runs, mem.free)


# -- state properties ----------------------------------------------------------------------

StateProperty = Callable[[State, Ghost], "str | None"]


def accounting(state: State, ghost: Ghost) -> str | None:
    """``b->size`` (line 281) counts the pages the balloon holds, mod 2**32.

    size == #pages on the 4 KiB list + 512 * #pages on the 2 MiB list, plus the
    batch a deflate has taken off a list and not yet unlocked (lines 945-971:
    ``size`` only drops after the UNLOCK).  Protects every decision the driver
    takes on ``size`` (inflate at 834, deflate at 946-948, the hysteresis at 1127).
    """
    if state.loc == Loc.CRASHED:
        return None
    p4, p2 = balloon_pages(state)
    return _accounting(state, len(p4), len(p2))


def _accounting(state: State, n4k: int, n2m: int) -> str | None:
    """:func:`accounting` with the lengths of the two balloon lists given."""
    expect = n4k + PAGES_PER_2M * n2m
    if state.loc in DEFLATE_LOCS:
        ps = PAGES_PER_2M if state.loop.is_2m else 1
        expect += state.loop.num_pages * ps
    if state.drv.size != expect & U32_MASK:
        return f"size {state.drv.size} != {expect & U32_MASK} pages held"
    return None


def no_crash(state: State, ghost: Ghost) -> str | None:
    """No call through a NULL ``b->ops`` (vmw_balloon.c:848, 892, 894, 910, 954, 959, 970),
    no NULL batch page or page used (lines 182-191, 545-551), no ``list_add`` of a page
    already listed."""
    if state.loc == Loc.CRASHED:
        return "the guest crashed (null_deref or list_corrupt)"
    return None


def refused_bounds(state: State, ghost: Ghost) -> str | None:
    """``n_refused_pages`` (vmw_balloon.c:614-615, 666-669) never exceeds
    ``VMW_BALLOON_MAX_REFUSED`` (vmw_balloon.c:93) and the counters match the refused
    lists; between ticks the refused lists are empty: ``vmballoon_release_refused_pages``
    (vmw_balloon.c:758, 924-925)."""
    if state.loc == Loc.CRASHED:
        return None
    d = state.drv
    for idx in (0, 1):
        n = d.n_refused[idx]
        if n > MAX_REFUSED:
            return f"n_refused[{idx}] = {n} > {MAX_REFUSED}"
        length = len(to_list(d.refused[idx]))
        if length != n:
            return f"refused list {idx} holds {length} pages, n_refused says {n}"
        if state.loc in RESTING and (n != 0 or length != 0):
            return f"refused list {idx} not empty between ticks"
    return None


def rate_bounds(state: State, ghost: Ghost) -> str | None:
    """``RATE_ALLOC_MIN <= rate_alloc <= RATE_ALLOC_MAX``: the bounds ``VMW_BALLOON_RATE_ALLOC``
    (vmw_balloon.c:66-67), the halving and the increase of ``b->rate_alloc``
    (vmw_balloon.c:867-868, 919-921)."""
    r = state.drv.rate_alloc
    if not RATE_ALLOC_MIN <= r <= RATE_ALLOC_MAX:
        return f"rate_alloc {r} outside [{RATE_ALLOC_MIN}, {RATE_ALLOC_MAX}]"
    return None


def rate_counter(state: State, ghost: Ghost) -> str | None:
    """Inside inflate, ``allocations`` (vmw_balloon.c:794) counts the successful allocations.

    The throttling compares ``allocations`` (vmw_balloon.c:883, 903, 916) with the rate:
    if it does not count, the rate limit of the comments at lines 802-815 never applies.
    """
    if state.loc not in INFLATE_LOCS:
        return None
    lp = state.loop
    if lp.allocations != lp.allocated & U32_MASK:
        return f"allocations = {lp.allocations} but {lp.allocated} pages were allocated"
    return None


def throttle(state: State, ghost: Ghost) -> str | None:
    """Inside inflate with a finite rate (slow cycles, or after a NOSLEEP failure, lines
    821-828, 876-888), no more than ``rate`` pages are allocated in this call."""
    if state.loc not in INFLATE_LOCS:
        return None
    lp = state.loop
    if lp.rate != UINT_MAX and lp.allocated > lp.rate:
        return f"{lp.allocated} pages allocated with rate {lp.rate}"
    return None


def no_leak(state: State, ghost: Ghost) -> str | None:
    """Between ticks and after exit, every allocated frame of the pool is owned.

    Owned: by a balloon list, a refused list (a 2 MiB page owns 512 frames, a 4 KiB
    list entry one) or is the batch page.  Protects against pages dropped on the floor
    (lines 677-679), 2 MiB blocks on the 4 KiB list (line 596), frees that do not match
    the allocation.
    """
    if state.loc not in RESTING:
        return None
    allocated = iv.remove_all(
        allocated_runs(state), ((pfn, pfn + frames) for _, pfn, frames in owners(state))
    )
    if allocated:
        s, e = allocated[0]
        return f"{iv.count(allocated)} frames allocated and owned by nothing (first {s}..{e - 1})"
    return None


def ownership(state: State, ghost: Ghost) -> str | None:
    """Every frame is in at most one place (balloon lists, refused lists, the in-flight batch,
    the batch page) and every owned frame is allocated (no use after free)."""
    if state.loc == Loc.CRASHED:
        return None
    claims, mem = owners(state), state.env.memory
    return None if owned_once_and_allocated(claims, mem) else first_ownership_fault(claims, mem)


def owned_once_and_allocated(claims: list[tuple[str, int, int]], mem: Memory) -> bool:
    """:func:`ownership` holds: the same verdict as :func:`_first_ownership_fault`, decided
    by sorting (C speed) instead of one interval insertion per claim, since the check runs
    after every transition of an inflation of thousands of pages (a fuzz campaign spent
    nine tenths of its time in the insertions)."""
    singles: list[int] = []  # claims of one frame
    blocks: list[int] = []  # claims of a 2 MiB block (PAGES_PER_2M frames)
    for _owner, pfn, frames in claims:
        (blocks if frames > 1 else singles).append(pfn)
    if len(set(singles)) != len(singles):
        return False
    singles.sort()
    blocks.sort()
    for a, b in pairwise(blocks):
        if a + PAGES_PER_2M > b:
            return False
    for b in blocks:
        i = bisect_left(singles, b)
        if i < len(singles) and singles[i] < b + PAGES_PER_2M:
            return False
    starts = sorted(singles + blocks)  # only a claim's first frame must be allocated
    if starts and (starts[0] < mem.base or starts[-1] >= mem.end):
        return False
    for s, e in mem.free:
        i = bisect_left(starts, s)
        if i < len(starts) and starts[i] < e:
            return False
    return True


def first_ownership_fault(claims: list[tuple[str, int, int]], mem: Memory) -> str | None:
    """The first claim, in :func:`owners` order, that overlaps an earlier one or names a
    free frame (the message of :func:`ownership`)."""
    seen: iv.Runs = ()
    for owner, pfn, frames in claims:
        if iv.overlaps(seen, pfn, pfn + frames):
            return f"frame {pfn} ({owner}) has two owners"
        seen = iv.add(seen, pfn, pfn + frames)
        if not mem.allocated(pfn):
            return f"frame {pfn} ({owner}) is owned but free"
    return None


def host_agreement(state: State, ghost: Ghost) -> str | None:
    """Between ticks, with no reset pending, the host holds exactly the balloon's pages.

    (The other half, that the guest never frees a frame the host holds, is a
    transition check of :func:`observe`.)  Protects against pages counted as
    ballooned the host never locked (lines 451-453, 470, 518, 598) and pages the host
    holds the guest forgot.
    """
    if state.loc != Loc.IDLE or state.drv.reset_required:
        return None
    p4, p2 = balloon_pages(state)
    listed, held = set(p4) | set(p2), set(ghost.held)
    if listed != held:
        extra = sorted(listed - held)[:3]
        missing = sorted(held - listed)[:3]
        return f"balloon pages not held by the host {extra}, held but not in the balloon {missing}"
    return None


def doorbell_agreement(state: State, ghost: Ghost) -> str | None:
    """The driver holds a valid doorbell handle (line 313) only if the host answered
    SUCCESS to the VMCI_DOORBELL_SET that registered it (lines 1040-1052)."""
    if state.loc == Loc.CRASHED:
        return None
    if state.drv.doorbell is not None and not ghost.doorbell_ok:
        return f"doorbell {state.drv.doorbell} held but the host did not accept it"
    return None


def target_from_host(state: State, ghost: Ghost) -> str | None:
    """``b->target`` only takes values the host reported with a SUCCESS status
    (GET_TARGET at 425-437 checks; LOCK/UNLOCK at 457, 475-478, 505, 523-526 do not)."""
    if not ghost.target_ok:
        return f"target {ghost.target_written} was written by a failed command"
    return None


def progress(state: State, ghost: Ghost) -> str | None:
    """After a work tick in the cooperative environment (every progress assumption of
    ``vmballoon/core/assumptions.py`` held at every step of the tick: the ones the Z3
    proof makes) that ends with no reset pending, with ``T`` the target GET_TARGET read:
    ``T <= size <= T + 512``, ``size == 0`` when ``T == 0``, and ``b->target == T``
    (lines 1117-1130 with the loops of 833 and 945)."""
    if not ghost.tick_done or state.loc != Loc.IDLE or state.drv.reset_required:
        return None
    if ghost.tick_broken:
        return None
    size, target, t = state.drv.size, state.drv.target, ghost.tick_target
    if t < 0:
        return None  # no target read (implied by the assumptions unless a reset is pending)
    if target != t:
        return f"target {target} after the tick, not the target {t} the host gave"
    if t == 0:
        if size != 0:
            return f"target 0 but size {size} after the tick"
        return None
    if not t <= size <= t + PAGES_PER_2M:
        return f"size {size} not within [target, target + 512] = [{t}, {t + 512}]"
    return None


def guest_of(state: State) -> asm.Guest:
    """The guest of ``state`` as the assumptions read it."""
    mem = state.env.memory
    return asm.Guest(mem.end - mem.base, mem.base, state.env.totalram)


STATE_PROPERTIES: dict[str, StateProperty] = {
    "accounting": accounting,
    "no_crash": no_crash,
    "refused_bounds": refused_bounds,
    "rate_bounds": rate_bounds,
    "rate_counter": rate_counter,
    "throttle": throttle,
    "no_leak": no_leak,
    "ownership": ownership,
    "host_agreement": host_agreement,
    "doorbell_agreement": doorbell_agreement,
    "target_from_host": target_from_host,
    "progress": progress,
}
"""State predicates by name."""

GHOSTLESS: frozenset[str] = frozenset(
    {
        "accounting",
        "no_crash",
        "refused_bounds",
        "rate_bounds",
        "rate_counter",
        "throttle",
        "no_leak",
        "ownership",
    }
)
"""The state predicates that read only the state (never the :class:`Ghost`): a
:class:`Monitor` asked only these does not follow the ghost."""

TRANSITION_PROPERTIES: dict[str, str] = {
    "free_order": "no bad_free fault: no double free, no free at the wrong order (545-551)",
    "host_agreement": "the guest never frees a frame the host holds locked",
    "protocol": (
        "commands only as negotiated by START (322-354): LOCK/UNLOCK need BASIC, "
        "BATCHED_* need BATCHED and name the batch page (470, 518), BATCHED_2M_* need "
        "BATCHED_2M, DOORBELL_SET with a real handle needs SIGNALLED_WAKEUP"
    ),
}
"""Properties checked on the events of each transition, by :func:`observe`."""

PROPERTY_NAMES: tuple[str, ...] = (
    "accounting",
    "free_order",
    "no_leak",
    "ownership",
    "no_crash",
    "refused_bounds",
    "rate_bounds",
    "rate_counter",
    "throttle",
    "host_agreement",
    "protocol",
    "doorbell_agreement",
    "target_from_host",
    "progress",
)
"""Every property, in report order."""


def check_state(
    state: State, ghost: Ghost, names: frozenset[str] | None = None
) -> list[tuple[str, str]]:
    """``(property, message)`` for every state property failing in ``state`` (of ``names``,
    when given: the others are not evaluated, some cost time proportional to the balloon)."""
    out: list[tuple[str, str]] = []
    for name, fn in STATE_PROPERTIES.items():
        if names is not None and name not in names:
            continue
        msg = fn(state, ghost)
        if msg is not None:
            out.append((name, msg))
    return out


# -- transition checks and the ghost ---------------------------------------------------------


def _response(prev: State, k: int) -> Response:
    env = prev.env
    i = env.hv_pos + k
    return env.hv_script[i] if i < len(env.hv_script) else DEFAULT_RESPONSE


def _protocol(ev: Event, ghost: Ghost, prev: State) -> str | None:
    cmd, neg = ev["cmd"], ghost.negotiated
    if cmd in ("LOCK", "UNLOCK") and not neg & CAP_BASIC:
        return f"{cmd} without BASIC_CMDS (negotiated {neg:#x})"
    if cmd in BATCHED_CMDS:
        if not neg & CAP_BATCHED:
            return f"{cmd} without BATCHED_CMDS (negotiated {neg:#x})"
        if cmd.startswith("BATCHED_2M") and not neg & CAP_BATCHED_2M:
            return f"{cmd} without BATCHED_2M_CMDS (negotiated {neg:#x})"
        bp = prev.drv.batch_page
        if bp is None or ev["arg1"] != bp:
            return f"{cmd} names PFN {ev['arg1']}, not the batch page {bp}"
    if cmd == "VMCI_DOORBELL_SET":
        invalid = ev["arg1"] == VMCI_INVALID_ID and ev["arg2"] == VMCI_INVALID_ID
        if not invalid and not neg & CAP_SIGNALLED_WAKEUP:
            return f"DOORBELL_SET without SIGNALLED_WAKEUP (negotiated {neg:#x})"
    return None


def _batch_statuses(prev: State, ev: Event, resp: Response) -> list[tuple[int, int]]:
    """``(pfn, status)`` of each batch entry after the host wrote (scenario-format.md)."""
    n = ev["arg2"]
    pfns = batch_pfns(prev, n)
    bp = prev.drv.batch_page
    written = bp is not None and ev["arg1"] == bp and resp.entries is not None
    out = []
    for i, pfn in enumerate(pfns):
        st = 0
        if written and resp.entries is not None and i < min(len(resp.entries), BATCH_MAX_PAGES):
            st = resp.entries[i] & BATCH_STATUS_MASK
        out.append((pfn, st))
    return out


def observe(prev: State, nxt: State, ghost: Ghost) -> tuple[Ghost, list[tuple[str, str]]]:
    """The ghost after the transition ``prev -> nxt`` and the transition checks that fail.

    Walks the events of the transition in order: commands update the ghost (and are
    checked against the negotiated capabilities), frees are checked against the frames
    the host holds, ``bad_free`` faults are ``free_order`` violations.
    """
    new, found = observe_frames(prev, nxt, ghost)
    return new, [(name, msg) for name, msg, _ in found]


def _negotiated(status: int, result: int) -> int:
    """The capabilities a START answer negotiates."""
    if status == SUCCESS_WITH_CAPABILITIES:
        return result & U64_MASK
    if status == 0:
        return CAP_BASIC
    return 0


def _update_held(held: _Held, ev: Event, resp: Response, prev: State) -> None:
    """The frames the host holds after the command ``ev`` and its answer: START and
    ERROR_RESET release them all, a successful lock or unlock (of each page a batched
    command names in the batch page) takes or releases its frame."""
    cmd, status = ev["cmd"], ev["status"]
    if cmd == "START":
        held.clear()
    if cmd in ("LOCK", "UNLOCK") and status == 0:
        (held.add if cmd == "LOCK" else held.discard)(ev["arg1"])
    elif cmd in BATCHED_CMDS:
        statuses = _batch_statuses(prev, ev, resp)
        bp = prev.drv.batch_page
        if status == 0 and bp is not None and ev["arg1"] == bp:
            for pfn, st in statuses:
                if st == 0:
                    (held.add if cmd in LOCK_CMDS else held.discard)(pfn)
    if status == ERROR_RESET:
        held.clear()


def _target_answer(
    ev: Event, nxt: State, target_ok: bool, target: int, written: int
) -> tuple[bool, int, int]:
    """``target_ok``, the target and the target written by a failed command, after a
    command that answers with a target: a success sets the driver's target; a failure
    that still changes it is remembered."""
    status, r32 = ev["status"], ev["result"] & U32_MASK
    if status == 0 and nxt.drv.target == r32:
        return True, r32, written
    if status != 0 and nxt.drv.target == r32 and r32 != target:
        return False, r32, r32
    return target_ok, target, written


def observe_frames(
    prev: State, nxt: State, ghost: Ghost
) -> tuple[Ghost, list[tuple[str, str, int | None]]]:
    """:func:`observe`, with the frame each violation is about (``None``: no frame)."""
    bad: list[tuple[str, str, int | None]] = []
    held = _Held(ghost.held)
    neg, db_ok, target_ok = ghost.negotiated, ghost.doorbell_ok, ghost.target_ok
    written = ghost.target_written
    broken, targeted = ghost.tick_broken, ghost.tick_target
    if prev.loc == Loc.IDLE:  # an entry point starts: a new tick
        broken, targeted = (), -1
    k = 0
    target = prev.drv.target
    for ev in new_events(prev, nxt):
        kind = ev["ev"]
        if kind == "hv":
            resp = _response(prev, k)
            k += 1
            cmd, status = ev["cmd"], ev["status"]
            msg = _protocol(ev, Ghost(negotiated=neg), prev)
            if msg is not None:
                bad.append(("protocol", msg, None))
            if cmd == "START":
                neg = _negotiated(status, ev["result"])
            elif cmd == "VMCI_DOORBELL_SET":
                invalid = ev["arg1"] == VMCI_INVALID_ID and ev["arg2"] == VMCI_INVALID_ID
                db_ok = (not invalid) and status == 0
            elif cmd == "GET_TARGET" and status == 0:
                targeted = ev["result"] & U32_MASK
            _update_held(held, ev, resp, prev)
            if cmd in TARGET_CMDS:
                target_ok, target, written = _target_answer(ev, nxt, target_ok, target, written)
        elif kind == "free":
            if ev["pfn"] in held:
                msg = f"frame {ev['pfn']} freed while the host holds it"
                bad.append(("host_agreement", msg, ev["pfn"]))
        elif kind == "fault" and ev["kind"] == "bad_free":
            bad.append(("free_order", f"bad free of PFN {ev['pfn']}", ev["pfn"]))
    if not broken:  # the first assumption the tick breaks is enough
        broken = tuple(asm.broken(asm.PROGRESS, guest_of(prev), step_view(prev, nxt, ghost)))
    done = prev.loc != Loc.IDLE and nxt.loc == Loc.IDLE and prev.entry in ("work", "doorbell")
    new = Ghost(
        held.frames,
        neg,
        db_ok,
        target_ok,
        broken,
        targeted,
        tick_done=done,
        target_written=written,
    )
    return new, bad


class _Held:
    """The frames the host holds as a transition changes them (a :class:`FrameSet`: a
    copy per command would cost time proportional to the balloon)."""

    __slots__ = ("frames",)

    def __init__(self, frames: AbstractSet[int]) -> None:
        self.frames = FrameSet.of(frames)

    def __contains__(self, pfn: object) -> bool:
        return pfn in self.frames

    def clear(self) -> None:
        if self.frames:
            self.frames = EMPTY

    def add(self, pfn: int) -> None:
        self.frames = self.frames.with_frame(pfn)

    def discard(self, pfn: int) -> None:
        self.frames = self.frames.without(pfn)


def step_view(prev: State, nxt: State, ghost: Ghost) -> asm.StepView:
    """The transition ``prev -> nxt`` as the assumptions of
    :mod:`vmballoon.core.assumptions` read it (``ghost``: the ghost before it)."""
    commands: list[asm.Command] = []
    allocations: list[int | None] = []
    bp = prev.drv.batch_page
    k = 0
    for ev in new_events(prev, nxt):
        if ev["ev"] == "hv":
            resp = _response(prev, k)
            k += 1
            cmd = ev["cmd"]
            named = bp is not None and ev["arg1"] == bp
            entries: tuple[int, ...] = ()
            if cmd in BATCHED_CMDS and named:
                entries = tuple(st for _, st in _batch_statuses(prev, ev, resp))
            named = named or cmd not in BATCHED_CMDS
            invalidates = cmd == "VMCI_DOORBELL_SET" and ev["arg1"] == ev["arg2"] == VMCI_INVALID_ID
            commands.append(
                asm.Command(cmd, ev["status"], ev["result"], named, entries, invalidates)
            )
        elif ev["ev"] == "alloc":
            allocations.append(ev["pfn"])
    return asm.StepView(
        commands=tuple(commands),
        allocations=tuple(allocations),
        deflating=_deflate_head(prev),
        basic=prev.drv.ops == OPS_BASIC,
        reads_target=prev.loc == Loc.W_TARGET,
        slow=prev.drv.slow_allocation_cycles,
        size=prev.drv.size,
        target=ghost.tick_target if prev.loc != Loc.IDLE else -1,
    )


def _deflate_head(prev: State) -> int | None:
    """The frame the deflate step from ``prev`` takes off its list (line 945), if any."""
    if prev.loc == Loc.D_LOOP and prev.loop.cursor is not None:
        head: int = prev.loop.cursor[0]
        return head
    return None


# -- the monitor: every property along a trace ----------------------------------------------


class Verdict(Enum):
    """What a :class:`Monitor` says of one property over the trace it saw."""

    HOLDS = "holds"  # checked after every transition, never failed
    VIOLATED = "violated"
    NOT_CHECKED = "not checked"  # not among the properties the monitor was asked for


@dataclass(frozen=True)
class MonitorResult:
    """A monitor's findings: the transitions it saw, the violations it reported (the first
    of each property, or every one), and a verdict per property of :data:`PROPERTY_NAMES`."""

    transitions: int
    violations: tuple[Violation, ...]
    verdicts: tuple[tuple[str, Verdict], ...]

    def verdict(self, prop: str) -> Verdict:
        """The verdict on ``prop``."""
        return dict(self.verdicts)[prop]


_CACHED = ("no_leak", "host_agreement")
"""State predicates that walk the balloon when they apply (at rest, at IDLE): their last
answer is kept while the lists, the memory and the host's frames are the same objects."""


class Monitor:
    """Every property along a trace, one transition at a time.

    ``Monitor(state)`` checks the state predicates on ``state`` (transition 0, module
    init); :meth:`step` takes the transition ``prev -> nxt``: the transition checks of
    :func:`observe` (which keep the :class:`Ghost`) and the state predicates on ``nxt``.
    ``ownership`` and ``accounting`` are decided from :class:`vmballoon.model.claims.Claims`,
    updated with what the transition changed, so a step costs the same whatever the
    balloon holds; ``no_leak`` and ``host_agreement`` keep their last answer while the
    balloon, the memory and the host's frames are unchanged.  The messages are those
    of the predicates of :data:`STATE_PROPERTIES`.  A monitor asked only predicates of
    :data:`GHOSTLESS` does not follow the ghost (it stays the initial one): the minimiser
    replays a scenario many times over for one such property.

    ``properties``: the names to check (default all); ``first_only``: report each
    property once, at its first violation (and stop evaluating it), or at every
    transition where it fails.  :meth:`observe` and :meth:`check` are the two halves
    of :meth:`step`, for a caller that checks the state predicates less often.
    """

    def __init__(
        self,
        state: State,
        *,
        properties: frozenset[str] | None = None,
        first_only: bool = True,
    ) -> None:
        self.properties = frozenset(PROPERTY_NAMES) if properties is None else properties
        self.first_only = first_only
        self.ghost = initial_ghost()
        self.index = 0
        self.violations: list[Violation] = []
        self.violated: set[str] = set()
        self._claims: Claims | None = None
        self._cache: dict[str, tuple[tuple[object, ...], str | None]] = {}
        self._pending: list[tuple[str, str]] = []
        self._active: list[tuple[str, StateProperty]] | None = None  # the predicates asked
        self._follows = not self.properties <= GHOSTLESS  # whether the ghost is needed
        self.last = self.check(state)

    def _wanted(self, name: str) -> bool:
        return name in self.properties and not (self.first_only and name in self.violated)

    def observe(self, prev: State, nxt: State) -> None:
        """The transition ``prev -> nxt``: the ghost follows; its findings wait for
        :meth:`check`."""
        self.index += 1
        if not self._follows:
            return
        self.ghost, found = observe(prev, nxt, self.ghost)
        self._pending.extend(f for f in found if self._wanted(f[0]))

    def check(self, state: State, skip: frozenset[str] = frozenset()) -> tuple[Violation, ...]:
        """The state predicates on ``state`` (after the transitions observed since the last
        check); the violations reported now, transition checks first.  ``skip``: state
        predicates not asked of this state (a point the caller knows to be transient)."""
        found, self._pending = self._pending, []
        claims = self._claims_of(state)
        ghost = self.ghost
        if self._active is None:
            self._active = [(n, fn) for n, fn in STATE_PROPERTIES.items() if self._wanted(n)]
        for name, fn in self._active:
            if name in skip:
                continue
            if name == "ownership" and claims is not None:
                msg = None
                if state.loc != Loc.CRASHED and not claims.owned_once_and_allocated():
                    msg = first_ownership_fault(owners(state), state.env.memory)
            elif name == "accounting" and claims is not None:
                msg = (
                    None
                    if state.loc == Loc.CRASHED
                    else _accounting(state, *claims.balloon_lengths())
                )
            elif name in _CACHED:
                msg = self._cached(name, state)
            else:
                msg = fn(state, ghost)
            if msg is not None:
                found.append((name, msg))
        out: list[Violation] = []
        seen: set[str] = set()
        for name, msg in found:
            if name not in seen:
                seen.add(name)
                out.append(Violation(name, self.index, state.loc.name, msg))
        if seen - self.violated:
            self.violated |= seen
            self._active = None  # with first_only, the properties violated now are done
        self.violations.extend(out)
        self.last = tuple(out)
        return self.last

    def step(self, prev: State, nxt: State) -> tuple[Violation, ...]:
        """:meth:`observe` then :meth:`check`: the violations reported at this transition."""
        self.observe(prev, nxt)
        return self.check(nxt)

    def _claims_of(self, state: State) -> Claims | None:
        """The claims of ``state``, while ``ownership`` or ``accounting`` is still checked."""
        if not (self._wanted("ownership") or self._wanted("accounting")):
            self._claims = None
        elif self._claims is None:
            self._claims = Claims(state)
        else:
            self._claims.update(state)
        return self._claims

    def _cached(self, name: str, state: State) -> str | None:
        if name == "no_leak" and state.loc not in RESTING:
            return None
        if name == "host_agreement" and (state.loc != Loc.IDLE or state.drv.reset_required):
            return None
        d = state.drv
        key: tuple[object, ...] = (
            state.loc,
            *list_segments(state, 0),
            *list_segments(state, 1),
            *d.refused,
            d.batch_page,
            state.env.memory,
            self.ghost.held,
        )
        hit = self._cache.get(name)
        if hit is not None and all(_same(a, b) for a, b in zip(hit[0], key, strict=True)):
            return hit[1]
        msg = STATE_PROPERTIES[name](state, self.ghost)
        self._cache[name] = (key, msg)
        return msg

    def verdicts(self) -> dict[str, Verdict]:
        """Each property of :data:`PROPERTY_NAMES`: held, violated or not checked."""
        return {
            name: Verdict.NOT_CHECKED
            if name not in self.properties
            else Verdict.VIOLATED
            if name in self.violated
            else Verdict.HOLDS
            for name in PROPERTY_NAMES
        }

    def result(self) -> MonitorResult:
        """What the monitor found so far."""
        return MonitorResult(self.index, tuple(self.violations), tuple(self.verdicts().items()))


def _same(a: object, b: object) -> bool:
    """The same object, or equal values that are not persistent lists (comparing two of
    those would recurse once per entry)."""
    return a is b or (type(a) is not tuple and a == b)


def monitor_trace(
    scenario: Scenario,
    variant: Variant,
    properties: frozenset[str] | None = None,
    *,
    first_only: bool = True,
) -> MonitorResult:
    """Replay ``scenario`` through the model with a :class:`Monitor` on every transition."""
    state = start(scenario, variant)
    monitor = Monitor(state, properties=properties, first_only=first_only)
    for t in trace(state, scenario.steps):
        monitor.step(t.prev, t.state)
    return monitor.result()


def check_trace(
    scenario: Scenario,
    variant: Variant,
    properties: frozenset[str] | None = None,
    first_only: bool = True,
) -> list[Violation]:
    """Replay ``scenario`` through the model one transition at a time; every property
    after every transition.  With ``first_only`` each property is reported once."""
    return list(monitor_trace(scenario, variant, properties, first_only=first_only).violations)


__all__ = [
    "DEFLATE_LOCS",
    "GHOSTLESS",
    "INFLATE_LOCS",
    "PROPERTY_NAMES",
    "RESTING",
    "STATE_PROPERTIES",
    "TRANSITION_PROPERTIES",
    "Ghost",
    "Monitor",
    "MonitorResult",
    "Verdict",
    "Violation",
    "allocated_runs",
    "check_state",
    "check_trace",
    "initial_ghost",
    "observe",
    "observe_frames",
    "step_view",
]
