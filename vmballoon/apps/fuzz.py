"""Differential fuzzing: the model and the reference driven through the same environment.

:class:`DifferentialMachine` is a Hypothesis ``RuleBasedStateMachine``.  Each rule
runs one entry point (``work``, ``doorbell``, ``exit``) on the model, with an
*adaptive* host: whenever the driver issues a command the scenario has no
answer for yet, an answer suited to that command is drawn (START gets
capability words, GET_TARGET targets, LOCK/UNLOCK statuses, targets and batch
entries, ...), appended to the scenario, and the step is run again from the
state before it.  Allocation and VMCI results are drawn the same way.  The
scenario so built is then replayed from scratch by the reference, and the two
event logs, final states included, must be equal after every step.

The same machine runs in pytest with pinned settings and as ``vmballoon fuzz``.
A :class:`Campaign` is one run of it (variant, examples, seed, ...) and holds what
the run found (:class:`Coverage`, :class:`Failure`); :func:`run_campaigns` splits
campaigns over worker processes and stops them on request (:class:`StopRequest`).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any, ClassVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    get_state_machine_test,
    initialize,
    invariant,
    rule,
)

from vmballoon import model, reference
from vmballoon.apps.drawpool import pinned_constant_pool
from vmballoon.core import assumptions as asm
from vmballoon.core.env import DEFAULT_RESPONSE, Env, Event, EventStack, events_since
from vmballoon.core.protocol import (
    CAPABILITIES,
    ERROR_PPN_INVALID,
    ERROR_PPN_NOTNEEDED,
    ERROR_PPN_PINNED,
    ERROR_RESET,
    RATE_ALLOC_INC,
    RATE_ALLOC_MAX,
    RATE_ALLOC_MIN,
    SUCCESS_WITH_CAPABILITIES,
    U32_MASK,
    UINT_MAX,
)
from vmballoon.core.scenario import Response, Scenario
from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.harness.replay import Follower, binary_for
from vmballoon.model.machine import enter, event_log, final_json, run_to_idle
from vmballoon.model.properties import Ghost, Monitor, new_events, step_view
from vmballoon.model.state import STOPPED, Loc, State

Scripts = tuple[tuple[Response, ...], tuple[bool, ...], tuple[bool, ...]]
"""A scenario's scripts: host answers, allocation results, VMCI results."""
MAX_DRAWS = 32
"""Answers drawn in one step at most, per script (host commands, allocations, VMCI
calls); the step's further answers are the scenario defaults."""

FRAME_CHOICES = (0, 1, 7, 600, 1024, 1100, 4096, 65536, 16_777_216)
PFN_BASES = (
    0,
    1,
    511,
    512,
    2**32 - 600,
    2**32 - 1,
    2**32,
    2**32 + 512,
    2**52 - 700,
    2**52 - 1,
    2**52,
    2**63,
)
TOTALRAMS: tuple[int | str, ...] = ("frames", 0, 4096, U32_MASK, 2**32, 2**40, 2**52 - 1, 2**52)
ORDINARY_GUESTS = ((1024, 0), (600, 512), (4096, 0), (1100, 2**32 - 600))
"""(frames, pfn_base) of the guests drawn in half of the examples: room for the balloon
to grow past a batch, a ``totalram`` that GET_TARGET accepts (the whole guest), every
frame within the assumptions; the last one straddles 2**32 (BASIC commands cannot
name its upper frames, lines 451-452, 499-500)."""
EDGE_PFNS = {2**32 - 1: "2**32-1", 2**32: "2**32", 2**52 - 1: "2**52-1", 2**52: "2**52"}
WRAP_TARGETS = (U32_MASK, 2**32 - 511, 2**32 - 512, 2**32 - 513, 2**32 + 5, 2**64 - 1)
SIZE_OFFSETS = (0, 1, -1, 512, -512, 513, -513)
REFUSED_RUNS = (15, 16, 17)
ENTRY_POINTS = (("work", 16), ("doorbell", 3), ("exit", 1))
"""The entry points a step takes, with their weights: mostly the timer's work."""

BOUNDARIES: tuple[str, ...] = (
    *(f"target-size={d:+d}" for d in SIZE_OFFSETS),
    "target>=2**32-513",
    "target=2**32-1",
    *(f"refused>={k} in one inflation" for k in REFUSED_RUNS),
    "rate_alloc=floor",
    "rate_alloc clamped at ceiling",
    *(f"pfn={name}" for name in EDGE_PFNS.values()),
    *(f"totalram={name}" for name in EDGE_PFNS.values()),
    "lock batch=512",
    "unlock batch=512",
)
"""The boundaries the differential machine hunts, as :func:`boundaries_of` names them.

``size`` near the 2**32 wrap is not among them: the balloon cannot hold 2**32 pages in
any guest the model can run; the wrap of ``target + 512`` (lines 946-948, 1127) is
(``target>=2**32-513``)."""

STATUS_ODD = (1, 3, 4, 8, 9, 31, 2**31, 2**32, 2**32 + ERROR_RESET, 2**64 - 1)
CAP_WORDS = (
    CAPABILITIES,
    CAPABILITIES & ~1,
    0x1C,
    0x1E,
    0x0E,
    0x06,
    0x02,
    0x0A,
    0x08,
    0x10,
    0x12,
    0x14,
    0x16,
    0x18,
    0x04,
    0x00,
    0x01,
    0x1F,
    2**63 | 0x1E,
    2**64 - 1,
)
BATCHED_4K_WORDS = (0x06, 0x16, 0x14, 0x04)
"""Batched commands without 2 MiB pages: full 512-page batches, long refusal runs."""
ENTRY_STATUSES = (
    0,
    0,
    0,
    0,
    ERROR_PPN_PINNED,
    ERROR_PPN_INVALID,
    ERROR_RESET,
    ERROR_PPN_NOTNEEDED,
    1,
    3,
    4,
    8,
    31,
)


@dataclass(frozen=True)
class Witness:
    """The first scenario of a campaign that violated a property: where and why."""

    scenario: dict[str, Any]  # the scenario's JSON
    step: int  # the transition of the violation (check_trace's numbering)
    message: str


@dataclass(frozen=True)
class Failure:
    """What made a campaign fail: the model and the reference disagree, or FIXED violates
    a property (the last one raised: after Hypothesis shrinks, the minimal one)."""

    kind: str  # "disagreement" or "violation"
    message: str
    scenario: dict[str, Any]
    prop: str | None = None
    step: int | None = None


@dataclass
class Coverage:
    """What a campaign reached: transitions (from, to), statuses per command."""

    transitions: set[tuple[str, str]] = field(default_factory=set)
    statuses: set[tuple[str, int]] = field(default_factory=set)
    examples: int = 0
    """Examples started (the progress count)."""
    steps: int = 0
    violations: set[tuple[str, str]] = field(default_factory=set)  # (variant, property)
    witnesses: dict[tuple[str, str], Witness] = field(default_factory=dict)
    """The first scenario seen violating each (variant, property)."""
    boundaries: set[str] = field(default_factory=set)  # names of BOUNDARIES reached
    discarded: int = 0
    """Of those, the ones Hypothesis abandoned before the end (not counted as examples)."""

    def merge(self, other: Coverage) -> None:
        """Add ``other``'s coverage (a witness already seen is kept)."""
        self.transitions |= other.transitions
        self.statuses |= other.statuses
        self.violations |= other.violations
        self.boundaries |= other.boundaries
        for key, witness in other.witnesses.items():
            self.witnesses.setdefault(key, witness)
        self.examples += other.examples
        self.discarded += other.discarded
        self.steps += other.steps


class Stopped(KeyboardInterrupt):
    """Raised inside the machine when its campaign was asked to stop (a signal): Hypothesis
    lets an interrupt through untouched (no test failure, nothing saved in its database)
    and :meth:`Campaign.run` ends there."""


def _status(data: st.DataObject, usual: int, rare: tuple[int, ...], steady: bool = False) -> int:
    kind = data.draw(st.integers(0, 9))
    if kind < (9 if steady else 7):
        return usual
    if kind < 9:
        return data.draw(st.sampled_from(rare))
    return data.draw(st.sampled_from(STATUS_ODD))


def _target(data: st.DataObject, state: State) -> int:
    drv = state.drv
    frames = state.env.memory.end - state.env.memory.base
    cap = min(frames + 1100, 6000)
    kind = data.draw(st.integers(0, 15))
    if kind >= 14:  # a deflation (lines 1124-1127: target 0, or size above target + 512)
        return data.draw(st.sampled_from((0, max(drv.size - 513, 0), max(drv.size // 2 - 513, 0))))
    if kind < 3:
        return drv.target
    if kind < 6:
        return data.draw(st.integers(0, cap))
    if kind < 8:
        # ... and past the rate limit (lines 902-905): one page more than rate_alloc
        return data.draw(
            st.sampled_from(
                (
                    0,
                    1,
                    511,
                    512,
                    513,
                    1024,
                    2048,
                    2600,
                    drv.size + 600,
                    drv.size + drv.rate_alloc + 2,
                )
            )
        )
    if kind < 11:  # the hysteresis and the loop bounds (lines 834, 946-948, 1124-1127)
        return drv.size + data.draw(st.sampled_from([d for d in SIZE_OFFSETS if d >= -drv.size]))
    if kind < 12 and frames <= 4096:
        return data.draw(st.sampled_from(WRAP_TARGETS))
    return data.draw(st.integers(0, max(drv.size * 2, 16)))


def draw_response(
    data: st.DataObject,
    cmd: str,
    state: State,
    tick_target: int | None = None,
    pages: int = 0,
    steady: bool = False,
) -> Response:
    """An answer suited to ``cmd`` in ``state`` (statuses of every kind, odd values too);
    LOCK and UNLOCK results are often ``tick_target`` (what GET_TARGET gave this tick),
    as a real host answers, so that long inflations and deflations happen.  A batched
    lock of ``pages`` >= 17 pages often comes back with a run of 15, 16 or 17 refusals,
    and a batch of ``pages`` sometimes (an unlock often) with exactly one page failed.
    A ``steady`` host (one example in eight by default) mostly answers SUCCESS, keeps its target for
    the tick and often grants batched commands without 2 MiB pages: the balloon then
    grows far enough to fill batches, raise the rate to its ceiling and deflate whole
    batches."""
    if cmd == "START":
        status = _status(data, SUCCESS_WITH_CAPABILITIES, (0, 0, ERROR_RESET), steady)
        words = BATCHED_4K_WORDS if steady and data.draw(st.booleans()) else CAP_WORDS
        return Response(status, data.draw(st.sampled_from(words)))
    if cmd == "GET_TARGET":
        status = _status(data, 0, (ERROR_RESET, 1, ERROR_PPN_INVALID), steady)
        return Response(status, _target(data, state))
    if cmd in ("GUEST_ID", "VMCI_DOORBELL_SET"):
        status = _status(data, 0, (ERROR_RESET, 1))
        result = data.draw(st.sampled_from((0, 0, 0, 1, 2**31, 2**32 - 1, 2**32)))
        return Response(status, result)
    status = _status(
        data, 0, (ERROR_RESET, ERROR_PPN_INVALID, ERROR_PPN_PINNED, ERROR_PPN_NOTNEEDED), steady
    )
    keep = tick_target is not None and data.draw(st.integers(0, 9 if steady else 2)) > 0
    result = tick_target if keep and tick_target is not None else _target(data, state)
    entries: tuple[int, ...] | None = None
    if cmd.startswith("BATCHED") and data.draw(st.integers(0, 7 if steady else 3)) in (1, 2, 3):
        kind = data.draw(st.integers(0, 5))
        if kind < 3 and pages >= max(REFUSED_RUNS) and not cmd.endswith("UNLOCK"):
            # a run of refusals filling the refused list (lines 613, 663: 16 at most)
            k = data.draw(st.sampled_from(REFUSED_RUNS))
            refusal = data.draw(st.sampled_from((ERROR_PPN_PINNED, ERROR_PPN_INVALID)))
            entries = (refusal,) * k + (0,) * data.draw(st.integers(0, 520 - k))
        elif kind < 3:
            entries = (data.draw(st.sampled_from(ENTRY_STATUSES)),) * data.draw(st.integers(0, 520))
        elif pages > 0 and (kind == 5 or (kind < 3 and cmd.endswith("UNLOCK"))):
            # one page of the batch not locked / unlocked, the rest done: the per-entry
            # check of each page (lines 657, 733) on its own
            failed = data.draw(st.sampled_from([e for e in ENTRY_STATUSES if e != 0]))
            entries = (0,) * data.draw(st.integers(0, pages - 1)) + (failed,)
        else:
            entries = tuple(data.draw(st.lists(st.sampled_from(ENTRY_STATUSES), max_size=24)))
    return Response(status, result, entries)


def draw_allocations(
    data: st.DataObject, state: State, alloc: tuple[bool, ...], drawn_before: int, steady: bool
) -> tuple[bool, ...]:
    """The allocator's next answers (``vmballoon_alloc_page``, line 842): one, or a run
    of successes up to the rate limit.

    Failures come in runs now and then: a failed NOSLEEP allocation and a failed
    sleeping one halve ``rate_alloc`` (lines 866-871), to its floor.  In an inflation
    whose rate is finite (slow cycles or after a NOSLEEP failure, lines 821-828,
    876-888) and whose target is far enough, a run of successes brings the pages
    allocated in the call to exactly ``rate`` or ``rate + 1``: the rate limit's
    boundary (lines 902-905, property ``throttle``), which one answer per draw never
    reaches.
    """
    lp, drv = state.loop, state.drv
    need = lp.rate - lp.allocated
    room = drv.target - drv.size - lp.num_pages
    rate_run = state.loc == Loc.I_LOOP and lp.rate != UINT_MAX and 0 < need < room
    if rate_run and data.draw(st.integers(0, 3)) == 0:
        return (True,) * (need + data.draw(st.integers(0, 1)))
    streak = len(alloc) > drawn_before and not alloc[-1]
    odds = 3 if streak else (29 if steady else 9)
    # success is the zero draw: Hypothesis draws zero far more often than its share
    return (data.draw(st.integers(0, odds)) != 1,)


def boundaries_of(prev: State, nxt: State) -> set[str]:
    """The boundaries of :data:`BOUNDARIES` the transition ``prev -> nxt`` reaches."""
    out: set[str] = set()
    d, n = prev.drv, nxt.drv
    events = new_events(prev, nxt)
    read = any(e["ev"] == "hv" and e["cmd"] == "GET_TARGET" and e["status"] == 0 for e in events)
    if prev.loc == Loc.W_TARGET and read:
        diff = n.target - d.size
        if diff in SIZE_OFFSETS:
            out.add(f"target-size={diff:+d}")
        if n.target >= 2**32 - 513:
            out.add("target>=2**32-513")
        if n.target == U32_MASK:
            out.add("target=2**32-1")
    if n.rate_alloc == RATE_ALLOC_MIN:
        out.add("rate_alloc=floor")
    lp = prev.loop
    raised = prev.loc == Loc.I_END and lp.error == 0 and lp.allocations >= d.rate_alloc
    if raised and d.rate_alloc + lp.allocations // d.rate_alloc * RATE_ALLOC_INC > RATE_ALLOC_MAX:
        out.add("rate_alloc clamped at ceiling")
    for ev in events:
        if ev["ev"] == "alloc" and ev["pfn"] in EDGE_PFNS:
            out.add(f"pfn={EDGE_PFNS[ev['pfn']]}")
        elif ev["ev"] == "hv" and ev["cmd"].startswith("BATCHED") and ev["arg2"] == 512:
            out.add(("unlock" if ev["cmd"].endswith("UNLOCK") else "lock") + " batch=512")
    return out


REFUSALS = (ERROR_PPN_PINNED, ERROR_PPN_INVALID)


def refusals_of(prev: State, nxt: State) -> int:
    """Pages the host refused in ``prev -> nxt`` (kept on a refused list while it has room,
    lines 596-613 and 654-668)."""
    if not any(e["ev"] == "hv" and "LOCK" in e["cmd"] for e in new_events(prev, nxt)):
        return 0
    n = 0
    for c in step_view(prev, nxt, Ghost()).commands:
        if c.cmd == "LOCK" and c.status in REFUSALS:
            n += 1
        elif c.cmd in ("BATCHED_LOCK", "BATCHED_2M_LOCK") and c.status == 0:
            n += sum(1 for e in c.entries if e in REFUSALS)
    return n


def abandoned() -> bool:
    """Whether Hypothesis is abandoning the example being torn down (its data outgrew
    the buffer: ``StopTest``); such an example does not count towards ``max_examples``."""
    return type(sys.exc_info()[1]).__name__ == "StopTest"


class LogAgreement:
    """Whether a compiled driver stepped along with the model (a :class:`Follower`) has
    the model's event log and driver state (``event_log(state) == follower.log()``),
    comparing the events from where the two logs last agreed: both only grow, so a
    step costs its own events, not the whole log."""

    def __init__(self) -> None:
        self.seen: tuple[EventStack, EventStack] = (None, None)  # the model's, the C's

    def holds(self, state: State, c_log: EventStack, c_final: dict[str, Any]) -> bool:
        """Whether the model's ``state`` agrees with the C's log ``c_log`` and state
        ``c_final`` (the ``final`` object) at the same point."""
        model_log = state.env.log
        if events_since(model_log, self.seen[0]) != events_since(c_log, self.seen[1]):
            return False
        if final_json(state) != c_final:
            return False
        self.seen = (model_log, c_log)
        return True


def _draw_answer(
    data: st.DataObject, state: State, env: Env, hv: tuple[Response, ...], first: int, steady: bool
) -> Response:
    """An answer drawn for the backdoor command ``env`` has just issued past the script
    ``hv`` (the step began at answer ``first``), with the target this tick read."""
    # the commands of this step (one event each, newest first): k-th at
    # recent[env.hv_pos - 1 - k]
    recent = _last_commands(env.log, env.hv_pos - first)
    command = recent[env.hv_pos - 1 - len(hv)]
    cmd = command["cmd"]
    read = [k for k in range(first, len(hv)) if recent[env.hv_pos - 1 - k]["cmd"] == "GET_TARGET"]
    tick_target = hv[read[-1]].result & U32_MASK if read else None
    pages = command["arg2"] if cmd.startswith("BATCHED") else 0
    return draw_response(data, cmd, state, tick_target, pages, steady)


def _last_commands(log: EventStack, n: int) -> list[Event]:
    """The last ``n`` backdoor commands of ``log``, newest first."""
    out: list[Event] = []
    while log is not None and len(out) < n:
        if log[0]["ev"] == "hv":
            out.append(log[0])
        log = log[1]
    return out


def _with_scripts(
    state: State, hv: tuple[Response, ...], alloc: tuple[bool, ...], vmci: tuple[bool, ...]
) -> State:
    env = state.env._replace(hv_script=hv, alloc_script=alloc, vmci_script=vmci)
    return state._replace(env=env)


def _record(
    coverage: Coverage,
    before: State,
    name: str,
    check: Monitor | None = None,
) -> State:
    """Run entry point ``name`` transition by transition, recording coverage (and
    checking the properties with ``check``)."""
    state = enter(before, name)
    if check is not None and before.loc not in STOPPED:
        check.step(before, state)
    coverage.transitions.add((before.loc.name, state.loc.name))
    coverage.boundaries |= boundaries_of(before, state)
    refused = refusals_of(before, state)
    while state.loc in model.transitions.TRANSITIONS:
        nxt = model.machine.step(state)
        if check is not None:
            check.step(state, nxt)
        coverage.transitions.add((state.loc.name, nxt.loc.name))
        coverage.boundaries |= boundaries_of(state, nxt)
        refused += refusals_of(state, nxt)
        state = nxt
    coverage.boundaries |= {f"refused>={k} in one inflation" for k in REFUSED_RUNS if refused >= k}
    return run_to_idle(state)


class DifferentialMachine(RuleBasedStateMachine):
    """Model and reference (and the compiled C), same scenario, equal event logs after
    every step."""

    variant: Variant = SEED
    impls: tuple[str, ...] = ("reference", "c")
    """What the model is compared with: the reference, and the compiled driver (``c``)."""
    steady_odds: int = 8
    model_checked: bool = True
    """Whether the model's own trace is checked (:meth:`properties_checked`); a subclass
    that judges something else against the model turns it off."""
    records_coverage: bool = True
    """Whether the step is taken again transition by transition for the campaign's
    coverage (transitions, boundaries, statuses); without it (and without the model's
    check) the state the drawing pass reached is kept, with the scripts as recorded."""
    fuzz_campaign: ClassVar[Campaign]
    """The campaign this machine class runs for: its coverage, failure and stop request
    (each subclass has its own; :meth:`Campaign.machine` makes one per campaign)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "fuzz_campaign" not in cls.__dict__:
            cls.fuzz_campaign = Campaign(cls.variant, impls=cls.impls, steady_odds=cls.steady_odds)

    def __init__(self) -> None:
        campaign = self.fuzz_campaign
        if campaign.stop():
            raise Stopped
        super().__init__()
        self.coverage = campaign.coverage
        self.scenario = Scenario(steps=())
        self.state: State | None = None
        self.c: Follower | None = None
        self.c_agreement = LogAgreement()
        self.check: Monitor | None = None
        self.steady = False
        self.coverage.examples += 1
        if campaign.progress is not None:
            campaign.progress(self.coverage.examples)

    def teardown(self) -> None:
        """Stop the compiled driver's process; count the example as discarded when
        Hypothesis abandons it (its data outgrew the buffer: ``StopTest``), since such
        an example does not count towards ``max_examples`` either."""
        if abandoned():
            self.coverage.discarded += 1
        if self.c is not None:
            self.c.close()

    @initialize(data=st.data())
    def boot(self, data: st.DataObject) -> None:
        """Module init over a guest: in half of the examples (Hypothesis's zero draw, so
        a shrunk scenario keeps one) one of :data:`ORDINARY_GUESTS`, in the others one
        drawn from :data:`FRAME_CHOICES`, :data:`PFN_BASES` and :data:`TOTALRAMS`, the
        edges (tiny guests starve the balloon, frames above 2**52 are outside the
        assumptions, a ``totalram`` of 2**32 or more stops every GET_TARGET, lines
        422-424), where an example rarely gets as far as a batched deflation.  The host
        is steady (see :func:`draw_response`) in one example in :attr:`steady_odds`; a
        steady host's ordinary guest is the largest (4096 frames: an inflation can pass
        the rate ceiling of 2048 pages, lines 919-921)."""
        self.steady = data.draw(st.integers(0, self.steady_odds - 1)) == 0
        totalram: int | str = "frames"
        if data.draw(st.integers(0, 1)) == 0:  # the largest for a steady host: room to grow
            frames, pfn_base = (
                ORDINARY_GUESTS[2] if self.steady else data.draw(st.sampled_from(ORDINARY_GUESTS))
            )
        else:
            frames = data.draw(st.sampled_from(FRAME_CHOICES))
            pfn_base = data.draw(st.sampled_from(PFN_BASES))
            totalram = data.draw(st.sampled_from(TOTALRAMS))
        if totalram in EDGE_PFNS:
            self.coverage.boundaries.add(f"totalram={EDGE_PFNS[int(totalram)]}")
        self.scenario = Scenario(
            steps=(),
            frames=frames,
            pfn_base=pfn_base,
            totalram_pages=None if totalram == "frames" else int(totalram),
        )
        self.state = model.machine.start(self.scenario, self.variant)
        guest = asm.Guest(frames, pfn_base, self.scenario.totalram)
        unclaimed = not self.model_checked or asm.broken(asm.GLOBAL, guest)
        self.check = None if unclaimed else Monitor(self.state)
        if "c" in self.impls:
            self.c = Follower(binary_for(self.variant), self.scenario)
            self.c_agreement = LogAgreement()

    def _run(self, name: str, data: st.DataObject) -> None:
        """Entry point ``name``, transition by transition: when a transition reads an
        answer beyond the scripts (a host command, an allocation, a VMCI call), one is
        drawn and that transition alone is taken again with it; after
        :data:`MAX_DRAWS` draws of a script in one step its further answers are the
        defaults."""
        assert self.state is not None
        before = self.state
        sc = self.scenario
        hv, alloc, vmci = sc.hv, sc.alloc, sc.vmci
        drawn = {"hv": 0, "alloc": 0, "vmci": 0}
        state = enter(before, name)
        c = self._c_beside(name)
        while state.loc in model.transitions.TRANSITIONS:
            nxt = model.machine.step(state)
            while True:
                more = self._draw_past(data, state, nxt.env, (hv, alloc, vmci), drawn)
                if more is None:
                    break
                hv, alloc, vmci = more
                if c is not None:  # the C, running the same step, waits for this answer
                    c.feed(
                        (hv, alloc, vmci),
                        (
                            drawn["hv"] < MAX_DRAWS,
                            drawn["alloc"] < MAX_DRAWS,
                            drawn["vmci"] < MAX_DRAWS,
                        ),
                    )
                nxt = model.machine.step(_with_scripts(state, hv, alloc, vmci))
            state = nxt
        after = run_to_idle(state)
        # answers the step consumed beyond the drawn ones were the defaults: record
        # them, so that later steps append after them and the scenario says it all
        env = after.env
        hv = (*hv, *([DEFAULT_RESPONSE] * (env.hv_pos - len(hv))))
        alloc = (*alloc, *([True] * (env.alloc_pos - len(alloc))))
        vmci = (*vmci, *([True] * (env.vmci_pos - len(vmci))))
        if self.records_coverage or self.check is not None:
            after = _record(self.coverage, _with_scripts(before, hv, alloc, vmci), name, self.check)
            for e in events_since(after.env.log, before.env.log):  # the earlier ones are in
                if e["ev"] == "hv":
                    self.coverage.statuses.add((e["cmd"], e["status"]))
        else:  # the same transitions with the same answers: the same state
            after = _with_scripts(after, hv, alloc, vmci)
        self.coverage.steps += 1
        self.state = after
        self.scenario = replace(sc, steps=(*sc.steps, name), hv=hv, alloc=alloc, vmci=vmci)
        if c is not None:  # every answer drawn: past them the C reads the defaults
            c.feed((hv, alloc, vmci))

    def _draw_past(
        self,
        data: st.DataObject,
        state: State,
        env: Env,
        scripts: Scripts,
        drawn: dict[str, int],
    ) -> Scripts | None:
        """``scripts`` with one answer drawn for the first of them (hv, alloc, vmci) that
        the transition from ``state`` to ``env`` read past, counted in ``drawn``; None
        when it read past none, or only past scripts drawn :data:`MAX_DRAWS` times."""
        hv, alloc, vmci = scripts
        sc = self.scenario
        if env.hv_pos > len(hv) and drawn["hv"] < MAX_DRAWS:
            drawn["hv"] += 1
            return (*hv, _draw_answer(data, state, env, hv, len(sc.hv), self.steady)), alloc, vmci
        if env.alloc_pos > len(alloc) and drawn["alloc"] < MAX_DRAWS:
            drawn["alloc"] += 1
            more = draw_allocations(data, state, alloc, len(sc.alloc), self.steady)
            return hv, (*alloc, *more), vmci
        if env.vmci_pos > len(vmci) and drawn["vmci"] < MAX_DRAWS:
            drawn["vmci"] += 1
            return hv, alloc, (*vmci, data.draw(st.integers(0, 4)) != 1)  # zero: success
        return None

    def _c_beside(self, name: str) -> Follower | None:
        """The compiled driver, started on entry point ``name`` before the model takes
        it: it runs beside the model, waiting for each answer the model draws
        (:meth:`Follower.begin`); None when no C is checked."""
        if self.c is not None:
            self.c.begin(self.scenario, name)
        return self.c

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        """One entry point, drawn with the weights of :data:`ENTRY_POINTS`: a run of
        ``vmballoon_work`` (the timer fired), the host ringing the doorbell, or
        ``vmballoon_exit`` (the module is unloaded).

        One rule rather than three: Hypothesis's swarm testing switches rules off per
        example, and with ``work`` off an example never inflates or deflates."""
        if self.fuzz_campaign.stop():
            raise Stopped
        pick = data.draw(st.integers(0, sum(w for _, w in ENTRY_POINTS) - 1))
        for name, weight in ENTRY_POINTS:
            if pick < weight:
                self._run(name, data)
                return
            pick -= weight

    @invariant()
    def reference_agrees(self) -> None:
        """The reference replays the scenario built so far to the model's event log."""
        if self.state is None or "reference" not in self.impls:
            return
        expected = event_log(self.state)
        got = reference.replay(self.scenario, self.variant)
        if got != expected:
            message = describe_difference(self.scenario, expected, got)
            first = message.splitlines()[1] if "\n" in message else message
            self.fuzz_campaign.failure = Failure("disagreement", first, self.scenario.to_json())
            raise AssertionError(message)

    @invariant()
    def c_agrees(self) -> None:
        """The compiled driver, stepped along, has the model's event log and driver state."""
        if self.state is None or self.c is None:
            return
        driver = self.c.driver
        driver.collect_all()
        if not self.c_agreement.holds(self.state, driver.env.log, driver.state()):
            expected, got = event_log(self.state), self.c.log()
            raise AssertionError(describe_difference(self.scenario, expected, got, "C"))

    @invariant()
    def properties_checked(self) -> None:
        """The property predicates on the model's trace: none may fail on FIXED.

        Other variants record what they violate.  The properties are claimed only for
        guests that meet the assumptions every result rests on
        (:data:`vmballoon.core.assumptions.GLOBAL`: frames below 2**52), as in the
        proofs; ``progress`` is checked only on ticks that meet its own (the
        predicate reads them, :func:`vmballoon.model.properties.progress`).
        """
        if self.state is None or not self.scenario.steps or self.check is None:
            return
        found = self.check.violations
        for v in found:
            key = (self.variant.name, v.prop)
            self.coverage.violations.add(key)
            if key not in self.coverage.witnesses:
                self.coverage.witnesses[key] = Witness(self.scenario.to_json(), v.step, v.message)
        if self.variant == FIXED and found:
            self.fuzz_campaign.failure = Failure(
                "violation", found[0].message, self.scenario.to_json(), found[0].prop, found[0].step
            )
            raise AssertionError(
                "FIXED violates "
                + "; ".join(f"{v.prop} at step {v.step}: {v.message}" for v in found)
                + "\nscenario: "
                + json.dumps(self.scenario.to_json())
            )


class StopRequest:
    """Whether a run was asked to stop (SIGINT or SIGTERM), polled by the machines.

    :meth:`set` is what a signal handler calls: it only sets flags (and the event
    shared with worker processes, if any).  A second request sets :attr:`hurry`: the
    minimiser then stops where it is."""

    def __init__(self, event: Any = None) -> None:
        self.requested = False
        self.hurry = False
        self.event = event  # a multiprocessing.Event shared with the workers, or None

    def set(self) -> None:
        """Ask to stop (again: hurry)."""
        self.hurry = self.requested
        self.requested = True
        if self.event is not None:
            self.event.set()

    def __call__(self) -> bool:
        return self.requested or (self.event is not None and self.event.is_set())


@dataclass
class Campaign:
    """One fuzz campaign: what it runs (a variant, how many examples from which seed,
    compared with which implementations) and what it found so far.

    :meth:`run` runs it; the machines of :meth:`machine` add to :attr:`coverage` and
    record :attr:`failure`, and stop (:class:`Stopped`) when :attr:`stop` says so, so
    an interrupted campaign still has everything it saw."""

    variant: Variant
    examples: int = 100
    seed: int = 0
    steps: int = 12
    impls: tuple[str, ...] = ("reference", "c")
    steady_odds: int = 8
    database: Any = None
    progress: Callable[[int], None] | None = None
    """Called with the number of examples started, as each one starts."""
    stop: Callable[[], bool] = field(default=lambda: False)
    coverage: Coverage = field(default_factory=Coverage)
    failure: Failure | None = None

    def machine(self) -> type[DifferentialMachine]:
        """The machine class of this campaign (Hypothesis instantiates it per example)."""
        name = f"Machine_{self.variant.name}_{'_'.join(self.impls)}"
        attrs = {
            "variant": self.variant,
            "impls": self.impls,
            "steady_odds": self.steady_odds,
            "fuzz_campaign": self,
        }
        return type(name, (DifferentialMachine,), attrs)

    def run(self) -> CampaignResult:
        """Run the campaign (to its end, a failure, or a stop request)."""
        test = get_state_machine_test(
            self.machine(), settings=campaign_settings(self.examples, self.steps, self.database)
        )
        test = hypothesis_seed(self.seed)(test)
        started = time.perf_counter()
        before, dropped = self.coverage.examples, self.coverage.discarded
        failure: str | None = None
        interrupted = False
        self.failure = None
        try:
            with pinned_constant_pool():
                test()
        except Stopped:  # a failure being shrunk when the stop came is kept, unshrunk
            interrupted = True
            if self.failure is not None:
                failure = _one_line(Stopped(), self.failure)
        except Exception as exc:  # any failure is reported in one line
            failure = _one_line(exc, self.failure)
        discarded = self.coverage.discarded - dropped
        return CampaignResult(
            self.variant.name,
            self.coverage.examples - before - discarded,
            self.seed,
            time.perf_counter() - started,
            failure,
            self.failure if failure else None,
            discarded,
            interrupted,
        )


class SeedMachine(DifferentialMachine):
    """The differential machine on the seed as written."""

    variant = SEED


class FixedMachine(DifferentialMachine):
    """The differential machine with every fix applied."""

    variant = FIXED


def describe_difference(
    scenario: Scenario, expected: dict[str, Any], got: dict[str, Any], other: str = "reference"
) -> str:
    """Where the model's and the other reading's logs first differ, and the scenario."""
    import json

    lines = [f"model and {other} disagree"]
    ev_m, ev_r = expected["events"], got["events"]
    for i, (a, b) in enumerate(zip(ev_m, ev_r, strict=False)):
        if a != b:
            lines.append(f"first different event #{i}: model {a} / {other} {b}")
            break
    else:
        if len(ev_m) != len(ev_r):
            lines.append(f"event counts differ: model {len(ev_m)} / {other} {len(ev_r)}")
    for key, value in expected["final"].items():
        if got["final"].get(key) != value:
            lines.append(f"final.{key}: model {value} / {other} {got['final'].get(key)}")
    lines.append("scenario: " + json.dumps(scenario.to_json()))
    return "\n".join(lines)


def campaign_settings(examples: int, steps: int = 12, database: Any = None) -> settings:
    """Pinned settings: no deadline, no health checks that flag slow steps."""
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=database,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        print_blob=True,
        report_multiple_bugs=False,  # one failure, never an ExceptionGroup of several
    )


@dataclass
class CampaignResult:
    """What one ``vmballoon fuzz`` campaign did."""

    variant: str
    examples: int
    seed: int
    seconds: float
    failure: str | None
    failed: Failure | None = None  # the failing scenario (shrunk by Hypothesis) and what failed
    discarded: int = 0
    """Examples Hypothesis abandoned (data beyond its buffer), not among ``examples``."""
    interrupted: bool = False
    """Stopped by a signal before its examples were done."""


def _one_line(exc: BaseException, failure: Failure | None = None) -> str:
    """What failed, in one line: a check's message, or the error's type and first line."""
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _one_line(exc.exceptions[0], failure)
    if failure is not None:
        what = failure.prop or "model and reference disagree"
        return f"{what}: {failure.message}".strip()
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def coverage_report(coverage: Coverage) -> str:
    """Reached transitions and control locations, and those never reached."""
    from vmballoon.model.state import Loc
    from vmballoon.model.transitions import TRANSITIONS

    reached_locs = {a for a, _ in coverage.transitions}
    lines = [
        f"coverage: {coverage.examples - coverage.discarded} examples"
        + (f" (and {coverage.discarded} abandoned by Hypothesis)" if coverage.discarded else "")
        + f", {coverage.steps} entry points, "
        f"{len(coverage.transitions)} transitions (from -> to) reached",
    ]
    missing = [loc.name for loc in TRANSITIONS if loc.name not in reached_locs]
    lines.append("  locations never left: " + (", ".join(missing) if missing else "none"))
    targets = {b for _, b in coverage.transitions}
    never_entered = [loc.name for loc in Loc if loc.name not in targets and loc != Loc.IDLE]
    lines.append("  locations never entered: " + (", ".join(never_entered) or "none"))
    by_cmd: dict[str, list[int]] = {}
    if coverage.violations:
        seen = ", ".join(f"{v}:{p}" for v, p in sorted(coverage.violations))
        lines.append(f"  property violations seen (variant:property): {seen}")
    missed = [b for b in BOUNDARIES if b not in coverage.boundaries]
    lines.append(
        f"  boundaries reached: {len(BOUNDARIES) - len(missed)}/{len(BOUNDARIES)}"
        + (f"; never: {', '.join(missed)}" if missed else "")
    )
    for cmd, status in sorted(coverage.statuses):
        by_cmd.setdefault(cmd, []).append(status)
    for cmd, statuses in by_cmd.items():
        lines.append(f"  {cmd}: statuses {', '.join(str(s) for s in statuses)}")
    return "\n".join(lines)


def open_database(spec: str | None) -> Any:
    """A Hypothesis example database: a directory, or ``redis://HOST:PORT/N``."""
    if spec is None:
        return None
    if spec.startswith("redis://"):
        try:
            from hypothesis.extra.redis import RedisExampleDatabase
            from redis import Redis
        except ImportError:
            raise ValueError(
                "a redis:// database needs the redis package (pip install redis)"
            ) from None
        client = Redis.from_url(spec)
        try:
            client.ping()
        except Exception as exc:  # any connection or protocol failure of the client
            raise ValueError(f"cannot reach the redis database {spec}: {exc}") from None
        return RedisExampleDatabase(client)
    from hypothesis.database import DirectoryBasedExampleDatabase

    return DirectoryBasedExampleDatabase(spec)


Job = tuple[str, int, int, int, str | None, tuple[str, ...]]
"""A campaign for a worker: variant, examples, seed, steps, database, implementations."""

_worker_stop = StopRequest()
"""In a worker process: the parent's stop event (set by :func:`_init_worker`) and the
worker's own flag, set when the signal reaches it too (Ctrl-C signals the whole group)."""


def _init_worker(event: Any) -> None:
    """A worker process: stop at the parent's event, or when a signal reaches it."""
    _worker_stop.event = event

    def handler(signum: int, frame: FrameType | None) -> None:
        _worker_stop.requested = True  # a flag only: never a lock inside a handler

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def _progress_printer(variant: str, seed: int, examples: int) -> Callable[[int], None]:
    """Prints ``fuzz: VARIANT (seed S): N/EXAMPLES examples`` on stderr every tenth."""
    every = max(1, examples // 10)

    def show(n: int) -> None:
        if n % every == 0 and n <= examples:
            print(
                f"fuzz: {variant} (seed {seed}): {n}/{examples} examples",
                file=sys.stderr,
                flush=True,
            )

    return show


def _run_job(job: Job, stop: Callable[[], bool]) -> tuple[CampaignResult, Coverage]:
    """One campaign of :func:`run_campaigns`; its result and coverage."""
    from vmballoon.core.variants import parse_variant

    variant_name, examples, seed, steps, database, impls = job
    campaign = Campaign(
        parse_variant(variant_name),
        examples,
        seed,
        steps,
        impls,
        database=open_database(database),
        progress=_progress_printer(variant_name, seed, examples),
        stop=stop,
    )
    return campaign.run(), campaign.coverage


def _worker(job: Job) -> tuple[CampaignResult, Coverage]:
    """One campaign in a worker process."""
    return _run_job(job, _worker_stop)


def run_campaigns(
    variants: list[str],
    examples: int,
    seed: int,
    workers: int = 1,
    steps: int = 12,
    database: str | None = None,
    impls: tuple[str, ...] = ("reference", "c"),
    stop: StopRequest | None = None,
) -> tuple[list[CampaignResult], Coverage]:
    """Campaigns for each variant, split over ``workers`` processes.

    Worker ``i`` runs with seed ``seed + i`` and its share of ``examples`` (the shares
    add up to ``examples``); one worker with seed ``seed + i`` reproduces its run.
    When ``stop`` is set (a signal handler), every campaign stops at its next step and
    what each found so far is returned, the results marked ``interrupted``.
    """
    stop = stop if stop is not None else StopRequest()
    shares = [examples // workers + (i < examples % workers) for i in range(workers)]
    jobs: list[Job] = [
        (v, shares[i], seed + i, steps, database, impls)
        for v in variants
        for i in range(workers)
        if shares[i] > 0
    ]
    if workers == 1:
        outcomes = [_run_job(job, stop) for job in jobs]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        event = multiprocessing.Event()
        stop.event = event
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_init_worker, initargs=(event,)
        ) as pool:
            outcomes = list(pool.map(_worker, jobs))
    merged = Coverage()
    for _, cov in outcomes:
        merged.merge(cov)
    return [r for r, _ in outcomes], merged
