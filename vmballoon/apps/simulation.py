"""A cooperative host and a target schedule over a guest: the engine of ``vmballoon simulate``.

:func:`simulate` loads the driver (the model, :mod:`model`) into a guest of
``ram_pages`` frames whose environment has a :class:`vmballoon.core.host.CooperativeHost`
(and optionally memory pressure, :class:`vmballoon.core.env.AllocFail`), then runs
one ``vmballoon_work`` per tick.  Along the way a
:class:`vmballoon.model.properties.Monitor` checks the properties:

* the transition checks (which also keep the ghost: the frames the host holds, the
  negotiated capabilities, ...) on every transition; runs of allocation steps
  (``I_LOOP -> I_LOOP``), of deflate steps (``D_LOOP -> D_LOOP``) and, with basic
  ops, of one-page LOCK / UNLOCK cycles are observed as one span
  (:func:`_mergeable`), so that a 24,576-page inflation costs a hundred ghost
  updates, not 24,576 (a LOCK copies the set of frames the host holds);
* the state predicates on the initial state and at the end of every tick; the
  monitor follows the balloon by what changed, so a tick's check costs what the
  tick changed, not what the balloon holds.

The event log is dropped between ticks (only counters are kept), and the
cyclic GC is paused, so memory stays bounded by one tick's events.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vmballoon.apps.nogc import cyclic_gc_paused
from vmballoon.core.env import AllocFail, events_of
from vmballoon.core.host import CooperativeHost, Schedule
from vmballoon.core.protocol import CAPABILITIES, PAGES_PER_2M
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import FIXED, Variant
from vmballoon.model.machine import enter, start
from vmballoon.model.plist import length as plist_length
from vmballoon.model.properties import PROPERTY_NAMES, Monitor, Violation
from vmballoon.model.state import OPS_BASIC, Loc, State
from vmballoon.model.transitions import TRANSITIONS

Progress = Callable[[int, int, int], None]
"""``progress(ticks_done, ticks, size)``: called after each tick and during long ticks."""

PROGRESS_EVERY = 8192
"""Transitions between two progress calls inside one tick."""

_INFLATE_CYCLE = frozenset({Loc.I_LOOP, Loc.I_LOCK})
_DEFLATE_CYCLE = frozenset({Loc.D_LOOP, Loc.D_UNLOCK})


def _mergeable(prev: State, nxt: State) -> bool:
    """Whether ``prev -> nxt`` may join a span observed as one step (see the module doc).

    :func:`vmballoon.model.properties.observe` reads ``prev`` for a batched command (the
    batch it names) and ``nxt.drv.target`` for every command's result, so a span
    may hold only steps that issue no command or a basic LOCK / UNLOCK, and no
    step that changes ``b->target``: then observing the span at once gives the
    ghost and the findings that observing each step would.
    """
    loc = prev.loc
    if nxt.loc == loc and (loc == Loc.I_LOOP or loc == Loc.D_LOOP):
        return True  # allocation or list walk: no command
    if prev.drv.ops != OPS_BASIC or nxt.drv.target != prev.drv.target:
        return False
    return (loc in _INFLATE_CYCLE and nxt.loc in _INFLATE_CYCLE) or (
        loc in _DEFLATE_CYCLE and nxt.loc in _DEFLATE_CYCLE
    )


@dataclass(frozen=True)
class SimConfig:
    """What to simulate."""

    ram_pages: int  # 4 KiB frames of the guest
    schedule: Schedule  # (tick, target in pages)
    ticks: int
    variant: Variant = FIXED
    capabilities: int = CAPABILITIES  # what the host offers
    pressure: float = 0.0  # probability that an allocation fails
    pressure_seed: int = 0


@dataclass
class TickRecord:
    """The driver after one tick."""

    tick: int
    size: int  # b->size, pages
    target: int  # the host's scheduled target for this tick, pages
    reset: bool  # the driver sent START (a connection reset) during the tick
    violations: tuple[str, ...]  # properties that failed during the tick
    allocated: int = 0  # frames the guest has given up at the end of the tick (allocated)
    held: int = 0  # frames the host holds locked at the end of the tick
    churn: int = 0  # frames the driver allocated during the tick (freed again or not)
    batch_page: int = 0  # of ``allocated``: the batch page's frame (1 while it is allocated)


@dataclass
class ViolationSummary:
    """One property over the whole simulation."""

    first_tick: int  # -1: already in the initial state
    message: str
    ticks: int = 1  # ticks in which it failed


@dataclass
class TargetOutcome:
    """One entry of the schedule and when the balloon got there."""

    tick: int
    target: int
    reached_tick: int | None  # first tick at whose end size was in the band, or None

    @property
    def ticks_needed(self) -> int | None:
        """Ticks from the target coming into force to reaching it (1: in that tick)."""
        return None if self.reached_tick is None else self.reached_tick - self.tick + 1


@dataclass
class SimResult:
    """What happened."""

    config: SimConfig
    records: list[TickRecord] = field(default_factory=list)
    commands: Counter[str] = field(default_factory=Counter)
    failed_commands: Counter[str] = field(default_factory=Counter)
    alloc_calls: int = 0
    alloc_failures: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    violations: dict[str, ViolationSummary] = field(default_factory=dict)
    targets: list[TargetOutcome] = field(default_factory=list)
    transitions: int = 0
    seconds: float = 0.0
    final: dict[str, Any] = field(default_factory=dict)
    pages_refused: int = 0  # pages the host answered with a failure
    crashed_at: int | None = None  # tick at which the guest crashed
    interrupted: bool = False  # SIGINT/SIGTERM stopped the run: records cover fewer ticks

    @property
    def complete(self) -> bool:
        """Whether every tick asked for ran (a crash ends a run completely)."""
        return not self.interrupted


def in_band(size: int, target: int) -> bool:
    """Whether ``size`` has reached ``target`` within the driver's hysteresis.

    ``target <= size <= target + 512`` (line 1127 deflates only above that), and
    exactly 0 for a target of 0 (line 946 deflates everything then).
    """
    if target == 0:
        return size == 0
    return target <= size <= target + PAGES_PER_2M


def initial_state(config: SimConfig) -> State:
    """The driver after module init, in a guest with the cooperative host."""
    state = start(Scenario(steps=(), frames=config.ram_pages), config.variant)
    host = CooperativeHost.create(0, config.ram_pages, config.schedule, config.capabilities)
    pressure = AllocFail(config.pressure, config.pressure_seed) if config.pressure > 0 else None
    return state._replace(env=state.env._replace(host=host, alloc_fail=pressure))


def _report(found: tuple[Violation, ...]) -> tuple[list[str], dict[str, str]]:
    """The properties a check reported, in report order, and their first messages."""
    messages = {v.prop: v.message for v in reversed(found)}
    return [n for n in PROPERTY_NAMES if n in messages], messages


def _count_events(result: SimResult, state: State) -> bool:
    """Add the events of the tick to the counters; whether a START (a reset) was sent."""
    reset = False
    for ev in events_of(state.env.log):
        kind = ev["ev"]
        if kind == "hv":
            cmd = ev["cmd"]
            result.commands[cmd] += 1
            if ev["status"] not in (0, 0x03000000):
                result.failed_commands[cmd] += 1
            if cmd == "START" and ev["arg1"]:
                reset = True
        elif kind == "alloc":
            result.alloc_calls += 1
            if ev["pfn"] is None:
                result.alloc_failures += 1
        elif kind == "fault":
            result.faults[ev["kind"]] += 1
    return reset


def _run_tick(
    state: State, checker: Monitor, on_step: Callable[[State], None], merge: bool
) -> tuple[State, int]:
    """One ``work`` entry point, transition by transition, with the checks.

    Returns the state when the driver is idle again and the number of transitions.
    Without ``merge`` every transition is observed on its own (slow; for tests).
    """
    nxt = enter(state, "work")
    checker.observe(state, nxt)
    state = nxt
    span: State | None = None  # start of a run of command-free self-loops
    transitions = TRANSITIONS
    n = 0
    while state.loc in transitions:
        nxt = transitions[state.loc](state)
        n += 1
        if n % PROGRESS_EVERY == 0:
            on_step(nxt)
        if merge and _mergeable(state, nxt):
            if span is None:
                span = state
            state = nxt
            continue
        if span is not None:
            checker.observe(span, state)
            span = None
        checker.observe(state, nxt)
        state = nxt
    if state.loc == Loc.IDLE:
        state = state._replace(entry="")
    on_step(state)
    return state, n + 1


def _final(state: State) -> dict[str, Any]:
    """The driver and host at the end, without the page lists (a summary)."""
    d = state.drv
    host = state.env.host
    mem = state.env.memory
    free = sum(e - s for s, e in mem.free)
    pages4k = plist_length(d.pages[0])
    pages2m = plist_length(d.pages[1])
    return {
        "size": d.size,
        "target": d.target,
        "pages_4k": pages4k,
        "pages_2m": pages2m,
        "rate_alloc": d.rate_alloc,
        "reset_required": d.reset_required,
        "capabilities": d.capabilities,
        "ops": d.ops,
        "doorbell": list(d.doorbell) if d.doorbell is not None else None,
        "crashed": state.loc == Loc.CRASHED,
        "host_held_frames": host.held_frames() if host is not None else 0,
        "free_frames": free,
    }


def _outcomes(config: SimConfig, records: list[TickRecord]) -> list[TargetOutcome]:
    out = []
    sched = config.schedule
    for i, (tick, target) in enumerate(sched):
        end = sched[i + 1][0] if i + 1 < len(sched) else config.ticks
        reached = next(
            (r.tick for r in records if tick <= r.tick < end and in_band(r.size, target)), None
        )
        out.append(TargetOutcome(tick, target, reached))
    return out


def _tick(
    state: State,
    tick: int,
    checker: Monitor,
    on_step: Callable[[State], None],
    merge: bool,
    result: SimResult,
) -> State:
    """Run tick ``tick`` and record it in ``result``; the state at its end."""
    host = state.env.host
    assert host is not None
    env = state.env._replace(log=None, host=host.at_tick(tick))  # drop the log
    state, steps = _run_tick(state._replace(env=env), checker, on_step, merge)
    result.transitions += steps
    reset = _count_events(result, state)
    names, messages = _report(checker.check(state))
    for name in names:
        if name in result.violations:
            result.violations[name].ticks += 1
        else:
            result.violations[name] = ViolationSummary(tick, messages[name])
    mem, now = state.env.memory, state.env.host
    result.records.append(
        TickRecord(
            tick,
            state.drv.size,
            host.at_tick(tick).target(),
            reset,
            tuple(names),
            allocated=(mem.end - mem.base) - sum(e - b for b, e in mem.free),
            held=now.held_frames() if now is not None else 0,
            churn=sum(
                1 << ev["order"]
                for ev in events_of(state.env.log)
                if ev["ev"] == "alloc" and ev["pfn"] is not None
            ),
            batch_page=int(state.drv.batch_page is not None),
        )
    )
    return state


def simulate(
    config: SimConfig,
    progress: Progress | None = None,
    merge_spans: bool = True,
    stop_on_interrupt: bool = False,
) -> SimResult:
    """Run ``config.ticks`` work ticks against the cooperative host; what happened.

    ``merge_spans=False`` observes every transition on its own, as
    :func:`vmballoon.model.properties.check_trace` does: the same findings, much slower.
    With ``stop_on_interrupt`` a KeyboardInterrupt ends the run after the last whole
    tick: the result covers the ticks done and says ``interrupted``.
    """
    result = SimResult(config)
    t0 = time.perf_counter()
    done = 0

    def on_step(state: State) -> None:
        if progress is not None:
            progress(done, config.ticks, state.drv.size)

    with cyclic_gc_paused():
        state = initial_state(config)
        checker = Monitor(state, first_only=False)
        names, messages = _report(checker.last)
        for name in names:
            result.violations[name] = ViolationSummary(-1, messages[name])
        for tick in range(config.ticks):
            try:
                state = _tick(state, tick, checker, on_step, merge_spans, result)
                done = tick + 1
                if state.loc == Loc.CRASHED:
                    result.crashed_at = tick
                on_step(state)
                if result.crashed_at is not None:
                    break
            except KeyboardInterrupt:
                if not stop_on_interrupt:
                    raise
                result.interrupted = result.crashed_at is None  # a crash ended it anyway
                break
        host = state.env.host
        result.pages_refused = host.refused if host is not None else 0
        result.final = _final(state)
    result.targets = _outcomes(config, result.records)
    result.seconds = time.perf_counter() - t0
    return result


def fmt_size(pages: int) -> str:
    """Pages as a human size: ``48.00 GiB``, ``512.00 MiB``, ``12 KiB``, ``0``."""
    size = pages * 4096
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size >> 10} KiB" if size else "0"
