"""The properties on the compiled C's own trace, observed at every environment call
(``vmballoon check-c``, ``verify``'s replay of counterexamples on the C).

The C has no control locations or loop locals to look at, but the harness shows its
state between any two of its calls to the environment: :class:`CObserver` runs in the
driver's process (:class:`vmballoon.harness.process.Observer`) and, before every
backdoor command, allocation, free and VMCI call and when an entry point begins and
returns, reads ``struct vmballoon``, its page lists, its refused lists and the batch
entries from the C (:meth:`vmballoon.harness.process.Runtime.snapshot`) and builds a
model :class:`State` from them.  Consecutive observations are checked as one
transition of the model with the model's own checks
(:func:`vmballoon.model.properties.observe` and ``check_state``), so the C is judged
by the same predicates as the model at the granularity of its environment calls.

Pages the driver holds in no list between two calls (a batch being filled or locked,
pages taken off a list by deflate, a page a pop or a release is freeing) are the
harness's *pages in flight* (``vmballoon/harness/c/harness.c``): inside ``vmballoon_deflate``
(after the tick's GET_TARGET) they are the loop's batch, as in the model (``size``
still counts them); inside a pop or a release of refused pages they still count on
the list they were taken from; inside ``vmballoon_inflate`` (the tick's NOSLEEP or
CANSLEEP allocations) the allocated pages not yet listed are the batch.

``throttle`` is judged from the allocation events: the rate of the running inflate
(``UINT_MAX``, or ``b->rate_alloc`` with slow cycles or once it sleeps)
against its successful allocations.  Only ``rate_counter`` (about ``allocations``
(vmw_balloon.c:794), a local of vmballoon_inflate) cannot be observed from outside the C.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from vmballoon.apps.cstate import PageLists, state_of_c
from vmballoon.core import assumptions as asm
from vmballoon.core.env import Env
from vmballoon.core.protocol import (
    CMD_BATCHED_2M_LOCK,
    CMD_BATCHED_2M_UNLOCK,
    CMD_BATCHED_LOCK,
    CMD_BATCHED_UNLOCK,
    CMD_GET_TARGET,
    CMD_VMCI_DOORBELL_SET,
    EVENTS_FORMAT,
    PAGE_SHIFT,
    UINT_MAX,
)
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import Variant
from vmballoon.harness.process import DEFAULT_TIMEOUT, SNAP_FIELDS, CDriver, Runtime, fields_of
from vmballoon.harness.replay import start
from vmballoon.model.machine import STOPPED, enter, step
from vmballoon.model.machine import start as model_start
from vmballoon.model.plist import PList, concat, drop, from_iterable
from vmballoon.model.properties import (
    PROPERTY_NAMES,
    STATE_PROPERTIES,
    Ghost,
    Monitor,
    Violation,
    check_state,
    first_ownership_fault,
    guest_of,
    initial_ghost,
    new_events,
    observe,
    owners,
)
from vmballoon.model.state import EMPTY_LOOP, OPS_BASIC, STAT, Loc, Loop, State

NOT_OBSERVABLE = ("rate_counter",)
"""Properties about locals of the C (``allocations`` in ``vmballoon_inflate``)."""
OBSERVABLE = tuple(p for p in PROPERTY_NAMES if p not in NOT_OBSERVABLE)

BATCHED_CMD_CODES = frozenset(
    {CMD_BATCHED_LOCK, CMD_BATCHED_UNLOCK, CMD_BATCHED_2M_LOCK, CMD_BATCHED_2M_UNLOCK}
)
TWO_MB_CMD_CODES = frozenset({CMD_BATCHED_2M_LOCK, CMD_BATCHED_2M_UNLOCK})
TRANSIENT_DOORBELL = frozenset({"doorbell_agreement"})
NONE: frozenset[str] = frozenset()
GFP_NOSLEEP, GFP_CANSLEEP = 0, 1  # the gfp codes of harness.c
INFLATE_GFP = (GFP_NOSLEEP, GFP_CANSLEEP)
FL_ALLOCATED, FL_TAKEN, FL_UNREFUSED = 1, 2, 3  # enum flight of harness.c


FL_NONE = 0
Extras = tuple[list[int], list[int]]
"""Pages a pop took off the 4 KiB and the 2 MiB balloon list that the list still counts."""


class InFlight:
    """The harness's pages in flight (``in_flight[]`` of harness.c, in its order),
    followed through the C's log of their changes (:meth:`Runtime.flight_log`): an
    observation costs what changed since the last one, not the batch.

    For the allocated and the taken pages it also keeps the batch as the model's loop
    does (``pfn << PAGE_SHIFT`` entries), a persistent list that shares with its last
    version what did not change (the order of its entries is free: the properties read it
    as a set, and :meth:`CObserver._ownership_message` words a violation in the order of
    ``in_flight[]``): pages that arrive together come first, oldest first, so the pages
    a deflate frees in the order it took them leave from the head; pages that leave from
    the far end turn the rest around (:func:`_without`)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.order: list[int] = []  # in_flight[] of harness.c
        self.code: dict[int, int] = {}  # pfn -> flight << 4 | is_2m
        self.pages: dict[int, dict[int, bool]] = {FL_ALLOCATED: {}, FL_TAKEN: {}, FL_UNREFUSED: {}}
        self.fills: dict[int, PList] = {FL_ALLOCATED: None, FL_TAKEN: None}
        self._pos: dict[int, int] = {}
        rt.flight_log()  # starts the log: what came before is in_flight[] itself
        self._apply(rt.lists(4))

    def update(self) -> None:
        """Follow what changed since the last call."""
        log = self.rt.flight_log()
        if log:
            self._apply(log)

    def _apply(self, log: list[int]) -> None:
        added: dict[int, dict[int, None]] = {FL_ALLOCATED: {}, FL_TAKEN: {}}
        gone: dict[int, set[int]] = {FL_ALLOCATED: set(), FL_TAKEN: set()}
        for pfn, code in zip(log[0::2], log[1::2], strict=True):
            old = self.code.get(pfn)
            if old is not None:
                del self.pages[old >> 4][pfn]
                if old >> 4 in added:
                    if pfn in added[old >> 4]:
                        del added[old >> 4][pfn]
                    else:
                        gone[old >> 4].add(pfn)
            if code >> 4 == FL_NONE:
                self._leave(pfn)
                continue
            if pfn not in self._pos:
                self._pos[pfn] = len(self.order)
                self.order.append(pfn)
            self.code[pfn] = code
            self.pages[code >> 4][pfn] = bool(code & 1)
            if code >> 4 in added:
                added[code >> 4][pfn] = None
        for kind, new in added.items():
            if new or gone[kind]:
                rest = _without(self.fills[kind], gone[kind])
                self.fills[kind] = from_iterable([p << PAGE_SHIFT for p in new], rest)

    def _leave(self, pfn: int) -> None:
        """``set_flight(h, FL_NONE)``: the last entry takes the page's slot."""
        self.code.pop(pfn, None)
        i = self._pos.pop(pfn, None)
        if i is None:
            return
        last = self.order.pop()
        if last != pfn:
            self.order[i] = last
            self._pos[last] = i

    def batch(self, kind: int) -> tuple[int, bool, PList]:
        """The pages of ``kind`` (allocated or taken) as a batch: how many, whether the
        last in ``in_flight[]`` is a 2 MiB page (one page size per batch), the batch."""
        if not self.pages[kind]:
            return 0, False, None
        is_2m = next(
            bool(c & 1) for c in map(self.code.__getitem__, reversed(self.order)) if c >> 4 == kind
        )
        return len(self.pages[kind]), is_2m, self.fills[kind]

    def in_order(self, kind: int) -> list[tuple[int, bool]]:
        """The pages of ``kind`` as ``(pfn, is_2m)`` in the order of ``in_flight[]``."""
        return [(p, bool(self.code[p] & 1)) for p in self.order if self.code[p] >> 4 == kind]


def _without(fill: PList, gone: set[int]) -> PList:
    """``fill`` without the entries of the pages ``gone`` (all of them in it): the entries
    before the last of them copied in reverse order, the rest shared (so pages that leave
    in the order they came, from the far end, leave from the head after the first)."""
    kept: list[int] = []
    left = len(gone)
    while left:
        assert fill is not None
        entry, fill = fill
        if entry >> PAGE_SHIFT in gone:
            left -= 1
        else:
            kept.append(entry)
    kept.reverse()
    return from_iterable(kept, fill)


class CObserver:
    """The trace checker beside the driver (in its process): one model transition per
    stretch of C between two environment calls, every observable property checked by a
    :class:`vmballoon.model.properties.Monitor` (so a check costs what changed since the
    last one, not the balloon)."""

    def __init__(self, rt: Runtime, variant: Variant) -> None:
        self.rt = rt
        self.variant = variant
        self.violations: list[Violation] = []
        self.steps = 0  # entry points begun
        self.entry = ""
        self._version = -1
        rt.list_delta(-1)  # the first reading of each list is the whole list
        self._plists: list[PList] = [None, None, None, None]  # the C's lists as last read
        self.flight = InFlight(rt)
        self._popped = False  # the state counts the taken pages on their lists
        self._fill_kind: int | None = None  # the state's batch: these pages in flight
        self._seen_log = rt.env.log
        self._tick_slow = 0
        self._reset_tick()
        self.state = self._observe(Loc.IDLE)
        self.monitor = Monitor(self.state, properties=frozenset(OBSERVABLE))
        self._record(self.monitor.last)

    def _reset_tick(self) -> None:
        self.targeted = False  # GET_TARGET issued in this entry point: deflate may follow
        self.inflating = False  # an allocation of vmballoon_inflate happened
        self.sleeping = False  # a CANSLEEP allocation of vmballoon_inflate happened
        self.rate = UINT_MAX  # the running inflate's rate
        self.allocated = 0  # its successful allocations
        self.rt.lib.harness_clear_taken()  # the log of frames taken off the balloon lists
        self._unrefused: dict[int, int] = {}  # pfn -> refused list, being released
        self._released = [0, 0]  # pages a release of refused pages freed so far

    @property
    def ghost(self) -> Ghost:
        """The model's ghost after the last observation."""
        return self.monitor.ghost

    # -- Observer ----------------------------------------------------------------------------

    def begin(self, name: str) -> None:
        """Entry point ``name`` starts: the model's ``enter``."""
        self.steps += 1
        self.entry = name
        self._reset_tick()
        self._tick_slow = self.state.drv.slow_allocation_cycles
        loc = Loc.E_CLEANUP if name == "exit" else Loc.W_BEGIN
        nxt = self.state._replace(loc=loc, env=self.rt.env, entry=name)
        self._advance(nxt)

    def call(self, kind: str, args: tuple[int, ...]) -> None:
        """The driver calls its environment: one transition up to here."""
        self._account(kind, args)
        # inside one step of the model: a doorbell just created
        # `vmci_doorbell_create` (vmw_balloon.c:1035) and not yet registered, or
        # unregistered and not yet destroyed `vmci_doorbell_destroy` (vmw_balloon.c:1022)
        transient = (kind == "hv" and args[0] == CMD_VMCI_DOORBELL_SET) or kind == "vmci_destroy"
        self._advance(self._observe(None, kind, args), TRANSIENT_DOORBELL if transient else NONE)
        if kind == "hv" and args[0] == CMD_GET_TARGET:
            self.targeted = True  # what follows in this tick is inflate or deflate

    def end(self) -> None:
        """The entry point returned (or crashed)."""
        rt = self.rt
        loc = Loc.CRASHED if rt.was_crashed else Loc.EXITED if self.entry == "exit" else Loc.IDLE
        deflated = sorted(set(rt.lists(5)))
        if not self.ghost.tick_broken and deflated and self.state.drv.ops == OPS_BASIC:
            # the frames deflate took off its list (put back unseen when the basic UNLOCK
            # refuses a frame above 2**32, lines 500-501 and 698-701), as the assumptions read them
            view = asm.StepView(allocations=tuple(deflated), basic=True)
            broken = asm.broken(asm.PROGRESS, guest_of(self.state), view)
            if broken:
                self.monitor.ghost = replace(self.ghost, tick_broken=tuple(broken))
        self._advance(self._observe(loc))
        self.entry = ""

    def report(self) -> list[Violation]:
        """Every violation so far (each property once)."""
        return list(self.violations)

    # -- transitions -----------------------------------------------------------------------

    def _account(self, kind: str, args: tuple[int, ...]) -> None:
        """The running inflate's rate, from the allocation it calls: UINT_MAX, or
        ``b->rate_alloc`` with slow cycles (lines 821-826), and ``b->rate_alloc`` from its
        first CANSLEEP allocation on (lines 887-888: after a NOSLEEP failure the loop
        either stops, line 883, or goes on sleeping at that rate)."""
        if kind != "alloc" or args[1] not in INFLATE_GFP:
            return
        if not self.inflating:
            self.inflating = True
            snap = self.rt.snapshot()
            self.rate = snap[2] if snap[3] else UINT_MAX
        if args[1] == GFP_CANSLEEP and not self.sleeping:
            self.sleeping = True
            self.rate = self.rt.snapshot()[2]

    def _advance(self, nxt: State, transient: frozenset[str] = frozenset()) -> None:
        events = nxt.env.log
        stop = self.state.env.log
        while events is not None and events is not stop:
            ev = events[0]
            if (
                ev["ev"] == "alloc"
                and ev["gfp"] in ("nosleep", "cansleep")
                and ev["pfn"] is not None
            ):
                self.allocated += 1
            events = events[1]
        if self.inflating and nxt.loc in (Loc.I_LOOP, Loc.I_LOCK):
            nxt = nxt._replace(
                loop=nxt.loop._replace(
                    rate=self.rate, allocated=self.allocated, allocations=self.allocated
                )
            )
        self.monitor.observe(_with_answers(self.state, nxt.env), nxt)
        self.state = nxt
        self._record(self.monitor.check(nxt, transient))

    def _record(self, found: tuple[Violation, ...]) -> None:
        for v in found:
            message = self._ownership_message() if v.prop == "ownership" else v.message
            self.violations.append(Violation(v.prop, self.steps, v.loc, message or v.message))

    def _ownership_message(self) -> str | None:
        """:func:`vmballoon.model.properties.ownership`'s message on the state with the
        pages in flight in the order of ``in_flight[]``, the pages a pop took after their
        list's pages (the monitor's state keeps them in an order that shares with the
        last state: the same claims, so the same verdict, without copying lists; only
        which claim the message names first can differ)."""
        state = self.state
        drv, loop = state.drv, state.loop
        if self._popped:
            extras: Extras = ([], [])
            for pfn, is_2m in self.flight.in_order(FL_TAKEN):
                extras[int(is_2m)].append(pfn)
            p4, p2 = (concat(self._plists[i], from_iterable(extras[i])) for i in (0, 1))
            drv = drv._replace(pages=(p4, p2))
        if self._fill_kind is not None:
            fill: PList = None
            for pfn, _ in self.flight.in_order(self._fill_kind):
                fill = (pfn << PAGE_SHIFT, fill)
            loop = loop._replace(fill=fill)
        state = state._replace(drv=drv, loop=loop)
        return first_ownership_fault(owners(state), state.env.memory)

    # -- the C's state as a model state ---------------------------------------------------------

    def _observe(self, loc: Loc | None, kind: str = "", args: tuple[int, ...] = ()) -> State:
        """The C's state now as a model state at ``loc`` (None: inside the entry point)."""
        rt = self.rt
        snap = rt.snapshot()
        if snap[17] != self._version:  # a list changed since the last observation
            self._version = snap[17]
            self._read_lists()
        self.flight.update()
        unrefused = self._unrefused_now()
        self._count_released(unrefused, snap)
        loop = EMPTY_LOOP
        extras: Extras = ([], [])
        self._fill_kind = None
        if loc is None:
            loc, loop, extras = self._inside(kind, args)
        fields = fields_of(snap)
        fields["n_refused"] = (snap[9] - self._released[0], snap[10] - self._released[1])
        if loc == Loc.W_TARGET and kind == "hv" and args[0] == CMD_GET_TARGET:
            # the model's W_TARGET is before the decrement of slow cycles (line 1117), which
            # the assumption that the tick is not rate limited reads
            fields["slow_allocation_cycles"] = self._tick_slow
        stats = tuple(snap[SNAP_FIELDS : SNAP_FIELDS + STAT["_len"]])
        running = self.entry if loc not in (Loc.IDLE, Loc.EXITED, Loc.CRASHED) else ""
        lists = self._counted_lists(extras, unrefused)
        return state_of_c(fields, lists, stats, rt.env, self.variant, loc, loop, running)

    def _read_lists(self) -> None:
        """The four page lists as the C holds them now, each sharing with its last reading
        the tail the two have in common (the C walks the lists and says what changed)."""
        for i in range(4):
            dropped, head = self.rt.list_delta(i)
            self._plists[i] = from_iterable(head, drop(self._plists[i], dropped))

    def _unrefused_now(self) -> dict[int, int]:
        """The refused pages a release is freeing: pfn -> refused list, in the order of
        ``in_flight[]``."""
        if not self.flight.pages[FL_UNREFUSED]:
            return {}
        return {pfn: int(is_2m) for pfn, is_2m in self.flight.in_order(FL_UNREFUSED)}

    def _count_released(self, unrefused: dict[int, int], snap: list[int]) -> None:
        """vmballoon_release_refused_pages zeroes n_refused_pages after its loop (lines
        758-771): the pages it freed so far still count."""
        log, stop = self.rt.env.log, self._seen_log
        self._seen_log = log
        while log is not None and log is not stop:
            ev = log[0]
            if ev["ev"] == "free" and ev["pfn"] in self._unrefused:
                self._released[self._unrefused[ev["pfn"]]] += 1
            log = log[1]
        self._unrefused = unrefused
        for i in (0, 1):
            if snap[9 + i] == 0 or snap[9 + i] < self._released[i]:
                self._released[i] = 0

    def _inside(self, kind: str, args: tuple[int, ...]) -> tuple[Loc, Loop, Extras]:
        """Where inside the entry point the driver is at environment call ``kind``, its
        batch as the model's loop, and the pages a pop took that its list still counts."""
        deflating = self.targeted and not self.inflating and self.entry != "exit"
        batch_kind = FL_TAKEN if deflating else FL_ALLOCATED
        extras: Extras = ([], [])
        if not deflating:  # a pop frees the pages it took: size still counts them
            for pfn, is_2m in self.flight.pages[FL_TAKEN].items():
                extras[int(is_2m)].append(pfn)
        if kind == "hv" and args[0] in BATCHED_CMD_CODES:
            # what the host is shown: the batch entries as the driver wrote them
            is_2m = args[0] in TWO_MB_CMD_CODES
            entries = self.rt.batch(args[2])
            fill = from_iterable(entries[::-1])  # newest first, as the model's loop keeps it
            n = len(entries)
        else:
            n, is_2m, fill = self.flight.batch(batch_kind)
            self._fill_kind = batch_kind
        loop = Loop(0, 0, n, 0, False, is_2m, fill, None, None, 0)
        if deflating:
            loc = Loc.D_UNLOCK
        elif self.inflating or (kind == "alloc" and args[1] in INFLATE_GFP):
            loc = Loc.I_LOCK if n else Loc.I_LOOP
        elif self.entry == "exit":
            loc = Loc.E_POP
        else:
            loc = Loc.W_TARGET
        return loc, loop, extras

    def _counted_lists(self, extras: Extras, unrefused: dict[int, int]) -> PageLists:
        """The four lists as the properties count them: the pages a pop took before their
        balloon list (shared, see :meth:`_ownership_message`), the refused pages a release
        is freeing after their refused list."""
        self._popped = bool(extras[0] or extras[1])
        lists = list(self._plists)
        for i in (0, 1):
            if extras[i]:
                lists[i] = from_iterable(extras[i], lists[i])
        freeing: tuple[list[int], list[int]] = ([], [])
        for pfn, idx in unrefused.items():
            freeing[idx].append(pfn)
        for i in (0, 1):
            if freeing[i]:
                lists[2 + i] = concat(lists[2 + i], from_iterable(freeing[i]))
        return lists[0], lists[1], lists[2], lists[3]


def _with_answers(prev: State, env: Env) -> State:
    """``prev`` with the scripts of ``env`` (a later environment): the answers to the
    commands after ``prev``, which the ghost reads from the state before them, may have
    been drawn only since (the fuzzer draws them while the driver runs)."""
    old = prev.env
    hv, alloc, vmci = env.hv_script, env.alloc_script, env.vmci_script
    if old.hv_script is hv and old.alloc_script is alloc and old.vmci_script is vmci:
        return prev
    return prev._replace(env=old._replace(hv_script=hv, alloc_script=alloc, vmci_script=vmci))


class CTraceChecker:
    """The parent's handle on the :class:`CObserver` attached to a compiled driver."""

    def __init__(self, driver: CDriver, variant: Variant, wait: bool = True) -> None:
        """Attach the observer (``wait=False``: without waiting for the driver, its
        first report comes with :meth:`after_step`)."""
        self.driver = driver
        self.variant = variant
        self.violations: list[Violation] = list(driver.attach(CObserver, variant, wait=wait) or ())

    def after_step(self) -> None:
        """Take the violations the observer reported with the driver's last reply (up to
        the end of the last entry point collected)."""
        self.violations = list(self.driver.report)


def check_c_trace(
    binary: Path, scenario: Scenario, variant: Variant, timeout: float = DEFAULT_TIMEOUT
) -> list[Violation]:
    """Replay ``scenario`` through a compiled driver and check every observable property
    at every environment call (``variant`` only names what the states are labelled with)."""
    return c_trace(binary, scenario, variant, timeout)[0]


def c_trace(
    binary: Path, scenario: Scenario, variant: Variant, timeout: float = DEFAULT_TIMEOUT
) -> tuple[list[Violation], dict[str, Any]]:
    """:func:`check_c_trace`'s violations and the C's event log (``vmballoon-events/1``,
    as ``replay --impl c`` writes it) of the same run."""
    with start(binary, scenario, timeout, trace=True) as drv:
        checker = CTraceChecker(drv, variant)
        drv.run(scenario.steps)
        checker.after_step()
        log = {"format": EVENTS_FORMAT, "events": drv.events(), "final": drv.state()}
        return checker.violations, log


ENV_CALL_EVENTS = frozenset({"hv", "alloc", "free", "vmci_create", "vmci_destroy"})
"""Events of an environment call, before which the C's state is observed (a ``warn``
fault is one too)."""


def hidden_by_crash(scenario: Scenario, variant: Variant, prop: str) -> str | None:
    """Why no run of the C can show the model's first violation of the state property
    ``prop`` on ``scenario``, or None: the violation happens inside an entry point that
    crashes before the driver calls its environment again.

    The C's state is observed before each environment call and when an entry point
    returns (:class:`CObserver`), and a crashed guest is checked for nothing but the
    crash.  A state property broken at some transition of an entry point that then
    crashes with no environment call in the transitions between (the model's
    ``no_crash``) is therefore out of the C's sight, however faithful the C is; its
    event log, crash included, is still compared with the model's."""
    if prop not in STATE_PROPERTIES:
        return None
    state = model_start(scenario, variant)
    ghost = initial_ghost()
    i = 0
    for name in scenario.steps:
        if state.loc in STOPPED:
            break
        nxt = enter(state, name)
        broken_at = None
        seen_after = False  # an environment call after the breaking transition
        while True:
            i += 1
            if broken_at is not None and not seen_after:
                seen_after = any(
                    ev["ev"] in ENV_CALL_EVENTS or ev.get("kind") == "warn"
                    for ev in new_events(state, nxt)
                )
            ghost, _ = observe(state, nxt, ghost)
            state = nxt
            if broken_at is None and check_state(state, ghost, frozenset({prop})):
                broken_at = i
            if state.loc in (Loc.IDLE, Loc.EXITED, Loc.CRASHED):
                break
            nxt = step(state)
        if broken_at is not None:
            if state.loc != Loc.CRASHED or seen_after:
                return None
            return (
                f"the model breaks it at transition {broken_at}, inside entry point "
                f"{name!r}, which crashes at transition {i} before the driver calls its "
                f"environment again: the C's state is seen at those calls"
            )
    return None
