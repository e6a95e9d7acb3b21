"""The properties on the compiled C's own observable trace (``vmballoon check-c``).

The C has no control locations or loop locals to look at: what it shows is its
event log and, at each backdoor command, ``b->target``, the batch page and the
batch entries (the harness reports them), and its whole state after every entry
point (:meth:`vmballoon.harness.process.CDriver.state`).  From those this module
builds model :class:`State` values and runs the model's own property checks on
them (:func:`vmballoon.model.properties.observe` and ``check_state``), so the C is
judged by the same predicates as the model:

* one *segment* per backdoor command: the events since the previous command up to
  and including this one, observed with the batch page and the batch entries the
  driver had when it issued it and ``b->target`` as the next command (or the end of
  the entry point) found it;
* after each command, ``target_from_host`` (it depends on the ghost only); after the
  entry point, every state property on the driver's state.

``rate_counter`` and ``throttle`` are about the locals of ``vmballoon_inflate``
(``allocations``, ``rate``) and cannot be observed from outside the C; they are
reported as not observable.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from vmballoon.core import assumptions as asm
from vmballoon.core.env import Env
from vmballoon.core.protocol import BATCH_MAX_PAGES, BATCH_STATUS_MASK
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import Variant
from vmballoon.harness.process import DEFAULT_TIMEOUT, CDriver, Command
from vmballoon.harness.replay import EVENTS_FORMAT, start
from vmballoon.model import listed as ls
from vmballoon.model.machine import STOPPED, enter, step
from vmballoon.model.machine import start as model_start
from vmballoon.model.plist import PList, from_iterable, iterate
from vmballoon.model.properties import (
    BATCHED_CMDS,
    PROPERTY_NAMES,
    STATE_PROPERTIES,
    Ghost,
    Violation,
    check_state,
    guest_of,
    initial_ghost,
    observe,
    target_from_host,
)
from vmballoon.model.state import EMPTY_LOOP, OPS_BASIC, STAT, Driver, Loc, State

NOT_OBSERVABLE = ("rate_counter", "throttle")
"""Properties about inflate's locals, which the C does not show."""
OBSERVABLE = tuple(p for p in PROPERTY_NAMES if p not in NOT_OBSERVABLE)


def state_from_c(final: dict[str, Any], env: Env, variant: Variant, loc: Loc) -> State:
    """A model state holding what the C showed: its ``final`` object and the environment."""
    stats = [0] * STAT["_len"]
    for name, value in final["stats"].items():
        if isinstance(value, list):
            stats[STAT[name]], stats[STAT[name] + 1] = value
        else:
            stats[STAT[name]] = value
    pages: tuple[PList, PList] = (
        from_iterable(final["pages"][0]),
        from_iterable(final["pages"][1]),
    )
    refused: tuple[PList, PList] = (
        from_iterable(final["refused"][0]),
        from_iterable(final["refused"][1]),
    )
    doorbell = final["doorbell"]
    drv = Driver(
        size=final["size"],
        target=final["target"],
        rate_alloc=final["rate_alloc"],
        slow_allocation_cycles=final["slow_allocation_cycles"],
        reset_required=final["reset_required"],
        capabilities=final["capabilities"],
        supported_page_sizes=final["supported_page_sizes"],
        batch_max_pages=final["batch_max_pages"],
        ops=final["ops"],
        pages=pages,
        refused=refused,
        n_refused=(final["n_refused"][0], final["n_refused"][1]),
        batch_page=final["batch_page"],
        page=final["page"],
        doorbell=None if doorbell is None else (doorbell[0], doorbell[1]),
        warned=False,
        listed=ls.EMPTY,
    )
    return State(loc, drv, EMPTY_LOOP, tuple(stats), env, variant, "")


class CTraceChecker:
    """Follows a compiled driver entry point by entry point and checks every property."""

    def __init__(self, driver: CDriver, variant: Variant) -> None:
        self.driver = driver
        self.variant = variant
        self.ghost: Ghost = initial_ghost()
        self.violations: list[Violation] = []
        self.steps = 0
        first = driver.state()
        self.state = state_from_c(first, driver.env, variant, Loc.IDLE)
        self._record(check_state(self.state, self.ghost))

    def _record(self, found: list[tuple[str, str]]) -> None:
        seen = {v.prop for v in self.violations}
        for name, msg in found:
            if name not in seen and name in OBSERVABLE:
                seen.add(name)
                self.violations.append(Violation(name, self.steps, self.state.loc.name, msg))

    def after_step(self, name: str, first_command: int) -> None:
        """Check the entry point ``name`` the driver just ran; its backdoor commands are
        ``driver.commands[first_command:]``."""
        drv = self.driver
        prev = self.state
        if prev.loc != Loc.IDLE:
            return  # exited or crashed before: nothing ran
        self.steps += 1
        final = drv.state()
        loc = Loc.CRASHED if final["crashed"] else Loc.EXITED if drv.exited else Loc.IDLE
        end = state_from_c(final, drv.env, self.variant, loc)
        ghost = self.ghost
        found: list[tuple[str, str]] = []
        commands = drv.commands[first_command:]
        # inside the step, after a reset if there was one: the ops it chose, the balloon
        # it popped (what the assumptions of progress read)
        reset = any(c.env.log is not None and c.env.log[0]["cmd"] == "START" for c in commands)
        drv_in = prev.drv._replace(ops=end.drv.ops, size=0 if reset else prev.drv.size)
        inside = prev._replace(loc=Loc.W_TARGET, entry=name, drv=drv_in)
        env = prev.env
        for k, cmd in enumerate(commands):
            after = commands[k + 1].target if k + 1 < len(commands) else end.drv.target
            before = _at(prev if k == 0 else inside, cmd.batch_page, cmd.batch, env, cmd.target)
            ghost, bad = observe(before, _at(inside, cmd.batch_page, None, cmd.env, after), ghost)
            found += bad
            msg = target_from_host(before, ghost)  # the one state property the ghost decides
            if msg is not None:
                found.append(("target_from_host", msg))
            env = cmd.env
        tail = _at(inside, end.drv.batch_page, None, env, end.drv.target) if commands else prev
        ghost, bad = observe(tail, end, ghost)
        found += bad
        if not ghost.tick_broken:  # the assumptions of progress over the whole tick
            broken = asm.broken(asm.PROGRESS, guest_of(prev), _tick_view(prev, end, commands))
            ghost = replace(ghost, tick_broken=tuple(broken))
        self.ghost = ghost
        self.state = end
        self._record(found + check_state(end, ghost))


def _tick_view(prev: State, end: State, commands: list[Command]) -> asm.StepView:
    """The whole entry point as one step of the assumptions: its commands (with the
    batch entries the host answered), allocations and the frames it deflated."""
    cmds: list[asm.Command] = []
    allocations: list[int | None] = []
    k = 0
    for ev in end.env.events()[len(prev.env.events()):]:
        if ev["ev"] == "alloc":
            allocations.append(ev["pfn"])
        elif ev["ev"] == "hv":
            c = commands[k]
            k += 1
            named = c.batch_page is not None and ev["arg1"] == c.batch_page
            entries: tuple[int, ...] = ()
            resp = c.env.hv_script[c.env.hv_pos - 1] if c.env.hv_pos <= len(c.env.hv_script) \
                else None
            if ev["cmd"] in BATCHED_CMDS and named and resp is not None and resp.entries:
                n = min(ev["arg2"], len(resp.entries), BATCH_MAX_PAGES)
                entries = tuple(e & BATCH_STATUS_MASK for e in resp.entries[:n])
            named = named or ev["cmd"] not in BATCHED_CMDS
            cmds.append(asm.Command(ev["cmd"], ev["status"], ev["result"], named, entries))
    before = set(iterate(prev.drv.pages[0])) | set(iterate(prev.drv.pages[1]))
    after = set(iterate(end.drv.pages[0])) | set(iterate(end.drv.pages[1]))
    # deflate takes frames from the heads: a refused unlock puts the head back, unseen
    heads = {lst[0] for lst in prev.drv.pages if lst is not None}
    return asm.StepView(
        commands=tuple(cmds),
        allocations=(*allocations, *sorted((before - after) | heads)),  # deflated too
        basic=end.drv.ops == OPS_BASIC,
        reads_target=True,
        slow=prev.drv.slow_allocation_cycles,
        size=prev.drv.size,
    )


def _at(base: State, batch_page: int | None, batch: tuple[int, ...] | None, env: Env,
        target: int) -> State:  # fmt: skip
    """``base`` with the batch page, the batch being sent, the environment and the target."""
    fill: PList = None
    for entry in batch or ():
        fill = (entry, fill)  # newest first, as the model's loop keeps it
    drv = base.drv._replace(batch_page=batch_page, target=target)
    return base._replace(drv=drv, env=env, loop=EMPTY_LOOP._replace(fill=fill))


def check_c_trace(binary: Path, scenario: Scenario, variant: Variant,
                  timeout: float = DEFAULT_TIMEOUT) -> list[Violation]:  # fmt: skip
    """Replay ``scenario`` through a compiled driver and check every observable property
    after every entry point (``variant`` only names what the states are labelled with)."""
    return c_trace(binary, scenario, variant, timeout)[0]


def c_trace(
    binary: Path, scenario: Scenario, variant: Variant, timeout: float = DEFAULT_TIMEOUT
) -> tuple[list[Violation], dict[str, Any]]:
    """:func:`check_c_trace`'s violations and the C's event log (``vmballoon-events/1``,
    as ``replay --impl c`` writes it) of the same run."""
    with start(binary, scenario, timeout, trace=True) as drv:
        checker = CTraceChecker(drv, variant)
        for name in scenario.steps:
            if drv.exited or drv.crashed:
                break
            first = len(drv.commands)
            drv.step(name)
            checker.after_step(name, first)
        log = {"format": EVENTS_FORMAT, "events": drv.events(), "final": drv.state()}
        return checker.violations, log


def hidden_by_crash(scenario: Scenario, variant: Variant, prop: str) -> str | None:
    """Why no run of the C can show the model's first violation of the state property
    ``prop`` on ``scenario``, or None: the violation happens inside an entry point that
    crashes before it returns.

    The C's state is observed only when an entry point returns (:class:`CTraceChecker`),
    and a crashed guest is checked for nothing but the crash.  A state property broken
    at some transition of an entry point that then crashes (the model's
    ``no_crash`` at a later transition of the same entry point) is therefore out of
    the C's sight, however faithful the C is; its event log, crash included, is still
    compared with the model's."""
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
        while True:
            i += 1
            ghost, _ = observe(state, nxt, ghost)
            state = nxt
            if broken_at is None and check_state(state, ghost, frozenset({prop})):
                broken_at = i
            if state.loc in (Loc.IDLE, Loc.EXITED, Loc.CRASHED):
                break
            nxt = step(state)
        if broken_at is not None:
            if state.loc != Loc.CRASHED:
                return None
            return (f"the model breaks it at transition {broken_at}, inside entry point "
                    f"{name!r}, which crashes at transition {i} before it returns: the C's "
                    f"state is seen only when an entry point returns")  # fmt: skip
    return None
