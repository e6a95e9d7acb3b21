"""Replaying a scenario through the reference (scenario-format.md, "The environment's rules").

Module init runs first; then each step logs its ``step`` event and runs its
entry point.  A crash (:class:`vmballoon.reference.klist.Oops`) is logged as a fault
and ends the replay with ``crashed`` true and the state at the fault.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vmballoon.core.env import Env
from vmballoon.core.protocol import EVENTS_FORMAT, STATS_FIELDS
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import SEED, Variant
from vmballoon.reference.driver import (
    Balloon,
    vmballoon_doorbell,
    vmballoon_exit,
    vmballoon_init,
    vmballoon_work,
    vmci_handle_is_invalid,
)
from vmballoon.reference.klist import Oops


def run_step(b: Balloon, name: str) -> bool:
    """Run one step of the scenario; returns False after ``exit`` (later steps are ignored)."""
    k = b.kernel
    k.env = k.env.step(name)
    if name == "work":
        vmballoon_work(b)
    elif name == "doorbell":
        if not vmci_handle_is_invalid(b.vmci_doorbell):
            vmballoon_doorbell(b)
            vmballoon_work(b)
    elif name == "exit":
        vmballoon_exit(b)
        return False
    else:
        raise ValueError(f"unknown step {name!r}")
    return True


def final_state(b: Balloon, crashed: bool) -> dict[str, Any]:
    """The ``final`` object of the event log: the driver's state as the contract names it."""
    lru = b.kernel.lru
    stats: dict[str, Any] = {}
    for name, pair in STATS_FIELDS:
        value = getattr(b.stats, name)
        stats[name] = list(value) if pair else value
    return {
        "size": b.size,
        "target": b.target,
        "rate_alloc": b.rate_alloc,
        "slow_allocation_cycles": b.slow_allocation_cycles,
        "reset_required": b.reset_required,
        "capabilities": b.capabilities,
        "supported_page_sizes": b.supported_page_sizes,
        "batch_max_pages": b.batch_max_pages,
        "ops": None if b.ops is None else b.ops.name,
        "pages": [lru.entries(ps.pages) for ps in b.page_sizes],
        "refused": [lru.entries(ps.refused_pages) for ps in b.page_sizes],
        "n_refused": [ps.n_refused_pages for ps in b.page_sizes],
        "batch_page": None if b.batch_page is None else b.batch_page.pfn,
        "page": b.page,
        "doorbell": None if vmci_handle_is_invalid(b.vmci_doorbell) else list(b.vmci_doorbell),
        "crashed": crashed,
        "stats": stats,
    }


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while replaying.

    A large replay allocates millions of log nodes, none of them in a reference
    cycle; the collector's repeated full scans of them roughly doubled the time
    of a million-page inflation.  Reference counting still frees everything.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def replay_balloon(scenario: Scenario, variant: Variant = SEED) -> tuple[Balloon, bool]:
    """Run ``scenario``; returns the driver at the end and whether the guest crashed."""
    b = vmballoon_init(Env.from_scenario(scenario), variant)
    try:
        for name in scenario.steps:
            if not run_step(b, name):
                break
    except Oops as oops:
        b.kernel.env = b.kernel.env.fault(oops.kind, oops.pfn)
        return b, True
    return b, False


def replay(scenario: Scenario, variant: Variant = SEED) -> dict[str, Any]:
    """The event log (``vmballoon-events/1``) of ``scenario`` replayed through the reference."""
    with _gc_paused():
        b, crashed = replay_balloon(scenario, variant)
    return {
        "format": EVENTS_FORMAT,
        "events": b.kernel.env.events(),
        "final": final_state(b, crashed),
    }
