"""The compiled C's own trace, to read (``replay --impl c --format table|itf``) and to
check (``replay --impl c --check``).

The model's trace (:func:`vmballoon.apps.traces.walk`) has one state per transition;
the C has no control locations or loop locals to show, so its trace has one state
per entry point: module init, then the driver's state (read from the C,
:func:`vmballoon.apps.cview.state_from_c`) after each ``work``, ``doorbell`` or
``exit``, with the events the entry point emitted.  The properties are those of
``check-c``: :class:`vmballoon.apps.ctrace.CTraceChecker` checks them on the C's
observable trace, and each violation is shown at the entry point where the C first
breaks it.  The properties about inflate's locals
(:data:`vmballoon.apps.ctrace.NOT_OBSERVABLE`) cannot be seen on the C: the check
says so and never counts them as kept.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from vmballoon.apps.cstate import state_of_c
from vmballoon.apps.traces import TraceStep
from vmballoon.core.env import Env
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import Variant
from vmballoon.harness.process import CDriver
from vmballoon.model.plist import from_iterable
from vmballoon.model.properties import Violation
from vmballoon.model.state import STAT, Loc, State


@dataclass
class CRun:
    """What one replay on the C showed besides its states: every violation (with the
    entry point it was found after), the crash's line of C when the runtime gives one."""

    violations: list[tuple[int, str, Violation]] = field(default_factory=list)
    crash_site: str | None = None
    crashed: bool = False


def state_from_c(final: dict[str, Any], env: Env, variant: Variant, loc: Loc) -> State:
    """A model state holding what the C showed: its ``final`` object and the environment."""
    stats = [0] * STAT["_len"]
    for name, value in final["stats"].items():
        if isinstance(value, list):
            stats[STAT[name]], stats[STAT[name] + 1] = value
        else:
            stats[STAT[name]] = value
    pages, refused = final["pages"], final["refused"]
    lists = (
        from_iterable(pages[0]),
        from_iterable(pages[1]),
        from_iterable(refused[0]),
        from_iterable(refused[1]),
    )
    return state_of_c(final, lists, tuple(stats), env, variant, loc)


def c_state(drv: CDriver, variant: Variant) -> State:
    """The driver's state now, read from the C, as a model state (no locals: ``loc`` is
    IDLE, EXITED or CRASHED)."""
    final = drv.state()
    loc = Loc.CRASHED if final["crashed"] else Loc.EXITED if drv.exited else Loc.IDLE
    return state_from_c(final, drv.env, variant, loc)


def crash_site(drv: CDriver) -> str | None:
    """``file:line (function)`` where the C crashed (None: it did not)."""
    return None if drv.crash is None else drv.crash.site()


def c_walk(
    binary: Path, scenario: Scenario, variant: Variant, run: CRun | None = None
) -> Iterator[TraceStep]:
    """The C's states replaying ``scenario``: module init, then one per entry point.
    ``run`` (when given) collects the violations and the crash's site as they come."""
    from vmballoon.apps.ctrace import CTraceChecker
    from vmballoon.harness.replay import start

    run = run if run is not None else CRun()
    with start(binary, scenario, trace=True) as drv:
        checker = CTraceChecker(drv, variant)
        seen = 0

        def new_violations(index: int, label: str) -> tuple[tuple[str, str], ...]:
            nonlocal seen
            fresh = checker.violations[seen:]
            seen = len(checker.violations)
            run.violations += [(index, label, v) for v in fresh]
            return tuple((v.prop, v.message) for v in fresh)

        logged = len(drv.events())
        yield TraceStep(
            0, "init", c_state(drv, variant), tuple(drv.events()), new_violations(0, "init")
        )
        for index, name in enumerate(scenario.steps, start=1):
            if drv.exited or drv.crashed:
                break
            drv.step(name)
            checker.after_step()
            events = drv.events()
            label = f"C {name}"
            found = new_violations(index, label)
            if drv.crashed:
                run.crashed = True
                run.crash_site = crash_site(drv)
            yield TraceStep(index, label, c_state(drv, variant), tuple(events[logged:]), found)
            logged = len(events)


def write_c_check(
    binary: Path,
    scenario: Scenario,
    variant: Variant,
    names: frozenset[str] | None,
    out: TextIO = sys.stdout,
) -> int:
    """``replay --impl c --check``: every property (of ``names``) the C's trace violates,
    at which entry point, and why; exit status 1 if any."""
    from vmballoon.apps.ctrace import NOT_OBSERVABLE

    run = CRun()
    for _ in c_walk(binary, scenario, variant, run):
        pass
    found = [(i, label, v) for i, label, v in run.violations if names is None or v.prop in names]
    for index, label, v in found:
        out.write(f"{v.prop}: entry point {index} ({label}): {v.message}\n")
    if run.crash_site:
        out.write(f"the C crashed at {run.crash_site}\n")
    if not found:
        which = f" of {', '.join(sorted(names))}" if names else ""
        out.write(f"no property{which} violated on the C's trace ({variant.name})\n")
    hidden = sorted(set(NOT_OBSERVABLE) & (names or set(NOT_OBSERVABLE)))
    if hidden:
        out.write(f"not observable on the C (inflate's locals), not checked: {', '.join(hidden)}\n")
    return 1 if found else 0


C_DESCRIPTION = (
    "vmballoon-spec compiled C replay: one state per entry point (module init, then after "
    "each work, doorbell or exit), read from the C; a state's violations are the properties "
    "the C's observable trace first breaks in that entry point"
)
"""The ITF ``#meta.description`` of a C trace."""
