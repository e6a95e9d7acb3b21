"""Entry points, runs to idle, replay of a scenario and the contract's ``final`` state.

* :func:`enter` starts an entry point (``work``, ``doorbell``, ``exit``) at ``IDLE``;
* :func:`step` takes one transition;
* :func:`run_to_idle` runs transitions until the driver is idle, exited or crashed;
* :func:`trace` yields every transition of a run of entry points (:class:`Transition`);
* :func:`replay` runs a whole scenario and returns the contract's event log.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from vmballoon.core.protocol import EVENTS_FORMAT, STATS_FIELDS
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import SEED, Variant
from vmballoon.model.plist import concat, to_list
from vmballoon.model.state import DEFLATE_LOCS, STAT, Loc, State, initial_state
from vmballoon.model.state import STOPPED as STOPPED  # re-exported: callers import it here
from vmballoon.model.transitions import TRANSITIONS
from vmballoon.model.tx import Tx


def enter(state: State, name: str) -> State:
    """Start entry point ``name`` from ``IDLE`` (scenario-format.md, "steps").

    ``work`` runs ``vmballoon_work``; ``doorbell`` runs ``vmballoon_doorbell``
    (lines 1001-1008, which counts ``stats.doorbell``) and then ``vmballoon_work``
    when the driver holds a valid doorbell handle, and nothing otherwise;
    ``exit`` runs ``vmballoon_exit``.  After exit or a crash nothing runs.
    """
    if state.loc in STOPPED:
        return state
    if state.loc != Loc.IDLE:
        raise ValueError(f"entry point {name!r} while the driver runs at {state.loc.name}")
    tx = Tx(state)
    tx.env = tx.env.step(name)
    if name == "work":
        return tx.commit(Loc.W_BEGIN, entry=name)
    if name == "doorbell":
        if tx.doorbell is None:
            return tx.commit(Loc.IDLE, entry="")
        tx.inc("doorbell")
        return tx.commit(Loc.W_BEGIN, entry=name)
    if name == "exit":
        return tx.commit(Loc.E_CLEANUP, entry=name)
    raise ValueError(f"unknown entry point {name!r}")


def step(state: State) -> State:
    """One transition from ``state.loc`` (which must not be IDLE, EXITED or CRASHED)."""
    return TRANSITIONS[state.loc](state)


def run_to_idle(state: State) -> State:
    """Take transitions until the entry point in progress has returned."""
    transitions = TRANSITIONS
    while state.loc in transitions:
        state = transitions[state.loc](state)
    if state.loc == Loc.IDLE:
        state = state._replace(entry="")
    return state


@dataclass(frozen=True, slots=True)
class Transition:
    """One transition ``prev -> state`` of a run: its index (module init is 0, every
    entry and every step counts one) and its label (``enter(work)`` or the name of the
    transition function of :mod:`vmballoon.model.transitions`)."""

    index: int
    label: str
    prev: State
    state: State


def trace(state: State, steps: Iterable[str]) -> Iterator[Transition]:
    """Every transition from ``state`` running the entry points ``steps`` in turn: the
    entry, then one transition at a time until the entry point returns (``IDLE``,
    ``EXITED``, ``CRASHED``); nothing runs after exit or a crash."""
    index = 0
    for name in steps:
        if state.loc in STOPPED:
            return
        nxt = enter(state, name)
        label = f"enter({name})"
        while True:
            index += 1
            yield Transition(index, label, state, nxt)
            state = nxt
            fn = TRANSITIONS.get(state.loc)
            if fn is None:
                break
            label = fn.__name__
            nxt = fn(state)


def start(scenario: Scenario, variant: Variant = SEED) -> State:
    """The state after module init (``vmballoon_init``, lines 1257-1291)."""
    return initial_state(scenario, variant)


def run_scenario(scenario: Scenario, variant: Variant = SEED) -> State:
    """Module init, then every step of the scenario; the state at the end."""
    state = start(scenario, variant)
    for name in scenario.steps:
        if state.loc in STOPPED:
            break
        state = run_to_idle(enter(state, name))
    return state


def balloon_pages(state: State) -> tuple[list[int], list[int]]:
    """The two balloon lists head to tail, including a list that deflate is iterating."""
    pages = list(state.drv.pages)
    if state.loc in DEFLATE_LOCS or (state.loc == Loc.CRASHED and state.loop.cursor is not None):
        idx = int(state.loop.is_2m)
        pages[idx] = concat(state.loop.readded, concat(pages[idx], state.loop.cursor))
    elif state.loop.readded is not None:
        idx = int(state.loop.is_2m)
        pages[idx] = concat(state.loop.readded, pages[idx])
    return to_list(pages[0]), to_list(pages[1])


def stats_json(stats: tuple[int, ...]) -> dict[str, Any]:
    """``struct vmballoon_stats`` by C name; two-element fields as ``[4k, 2m]``."""
    out: dict[str, Any] = {}
    for name, pair in STATS_FIELDS:
        i = STAT[name]
        out[name] = [stats[i], stats[i + 1]] if pair else stats[i]
    return out


def final_json(state: State) -> dict[str, Any]:
    """The contract's ``final`` object for ``state``."""
    d = state.drv
    pages = balloon_pages(state)
    return {
        "size": d.size,
        "target": d.target,
        "rate_alloc": d.rate_alloc,
        "slow_allocation_cycles": d.slow_allocation_cycles,
        "reset_required": d.reset_required,
        "capabilities": d.capabilities,
        "supported_page_sizes": d.supported_page_sizes,
        "batch_max_pages": d.batch_max_pages,
        "ops": d.ops,
        "pages": [pages[0], pages[1]],
        "refused": [to_list(d.refused[0]), to_list(d.refused[1])],
        "n_refused": [d.n_refused[0], d.n_refused[1]],
        "batch_page": d.batch_page,
        "page": d.page,
        "doorbell": list(d.doorbell) if d.doorbell is not None else None,
        "crashed": state.loc == Loc.CRASHED,
        "stats": stats_json(state.stats),
    }


def event_log(state: State) -> dict[str, Any]:
    """The contract's event log of a finished replay."""
    return {"format": EVENTS_FORMAT, "events": state.env.events(), "final": final_json(state)}


def replay(scenario: Scenario, variant: Variant = SEED) -> dict[str, Any]:
    """Replay ``scenario`` through the model; the contract's event log."""
    return event_log(run_scenario(scenario, variant))
