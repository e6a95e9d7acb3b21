"""Benchmarks of the model (and the reference): run ``python -m benchmarks.bench_model``.

Reports, on this machine:

1. the model's cost per transition as the balloon grows from 1,000 to
   10,000,000 pages (the goal: flat, within 2x), measured over a window of
   transitions at each size in one long inflation of a 64 GiB guest;
2. pages inflated per second with 4 KiB pages and with 2 MiB pages;
3. the model's speed against the reference's on the same scenarios.

Not a test: nothing here asserts a time.  The figures go in the README.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from vmballoon import model, reference
from vmballoon.apps.nogc import cyclic_gc_paused
from vmballoon.core.protocol import (
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BATCHED_2M,
    SUCCESS_WITH_CAPABILITIES,
)
from vmballoon.core.scenario import Response, Scenario
from vmballoon.model.machine import enter, start, step
from vmballoon.model.state import Loc, State

GUEST_FRAMES = 16_777_216  # 64 GiB of 4 KiB frames
CHECKPOINTS = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
WINDOW = 20_000


def inflation(goal: int, caps: int, frames: int = GUEST_FRAMES, lock_answers: int = 0) -> Scenario:
    """One work step that inflates a guest of ``frames`` frames to ``goal`` pages.

    The host answers: VMCI_DOORBELL_SET ok, START with ``caps``, GUEST_ID ok,
    GET_TARGET ``goal``, and every lock command SUCCESS with target ``goal``.
    """
    if not lock_answers:
        lock_answers = goal + 16 if not caps & CAP_BATCHED else goal // 512 + 16
    hv = (
        Response(0),
        Response(SUCCESS_WITH_CAPABILITIES, caps),
        Response(0),
        Response(0, goal),
        *([Response(0, goal)] * lock_answers),
    )
    return Scenario(steps=("work",), frames=frames, hv=hv)


def _drop_log(state: State) -> State:
    """Forget the events so far (the benchmark does not print them)."""
    return state._replace(env=state.env._replace(log=None))


def cost_per_transition(max_pages: int) -> list[dict[str, Any]]:
    """Microseconds per transition in a window starting at each checkpoint size."""
    goal = max_pages + WINDOW * 2
    scenario = inflation(goal, CAP_BASIC | CAP_BATCHED, frames=max(GUEST_FRAMES, goal + 1024))
    rows: list[dict[str, Any]] = []
    with cyclic_gc_paused():
        state = enter(start(scenario), "work")
        for checkpoint in (c for c in CHECKPOINTS if c <= max_pages):
            while state.drv.size < checkpoint:
                state = step(state)
                if state.loc == Loc.I_LOCK:
                    state = _drop_log(step(state))
            first_size = state.drv.size
            began = time.perf_counter()
            for _ in range(WINDOW):
                state = step(state)
            elapsed = time.perf_counter() - began
            state = _drop_log(state)
            rows.append(
                {
                    "balloon_pages": first_size,
                    "transitions": WINDOW,
                    "us_per_transition": round(elapsed / WINDOW * 1e6, 2),
                }
            )
    gc.collect()
    return rows


def _timed(fn: Callable[[], Any]) -> float:
    with cyclic_gc_paused():
        began = time.perf_counter()
        fn()
        return time.perf_counter() - began


def pages_per_second(pages: int) -> list[dict[str, Any]]:
    """4 KiB-page equivalents inflated per second, 4 KiB pages and 2 MiB pages, both impls."""
    rows: list[dict[str, Any]] = []
    cases = (
        ("4 KiB, batched", inflation(pages, CAP_BASIC | CAP_BATCHED)),
        ("2 MiB, batched", inflation(pages, CAP_BASIC | CAP_BATCHED | CAP_BATCHED_2M)),
        ("4 KiB, basic", inflation(pages // 10, CAP_BASIC)),
    )
    for name, scenario in cases:
        expected_pages = int(scenario.hv[3].result)
        t_model = _timed(partial(model.run_scenario, scenario))
        t_ref = _timed(partial(reference.replay, scenario))
        final = model.run_scenario(scenario).drv.size
        assert final >= expected_pages, (name, final, expected_pages)
        rows.append(
            {
                "case": name,
                "pages": final,
                "model_s": round(t_model, 2),
                "model_pages_per_s": round(final / t_model),
                "reference_s": round(t_ref, 2),
                "reference_pages_per_s": round(final / t_ref),
                "model_vs_reference": round(t_ref / t_model, 2),
            }
        )
    return rows


def main() -> None:
    """Run the benchmarks and print the figures (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-pages", type=int, default=10_000_000)
    parser.add_argument("--pages", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    scaling = cost_per_transition(args.max_pages)
    throughput = pages_per_second(args.pages)
    if args.json:
        print(json.dumps({"scaling": scaling, "throughput": throughput}, indent=2))
        return
    print("Model cost per transition as the balloon grows (4 KiB pages, batched host)")
    print(f"{'balloon pages':>14} {'us/transition':>14}")
    for row in scaling:
        print(f"{row['balloon_pages']:>14,} {row['us_per_transition']:>14.2f}")
    costs = [row["us_per_transition"] for row in scaling]
    print(f"max/min ratio: {max(costs) / min(costs):.2f} (goal: within 2x)")
    print()
    print("Inflation throughput (one work step, 64 GiB guest)")
    print(
        f"{'case':<16} {'pages':>10} {'model s':>8} {'model p/s':>10} "
        f"{'ref s':>8} {'ref p/s':>10} {'model speedup':>14}"
    )
    for row in throughput:
        print(
            f"{row['case']:<16} {row['pages']:>10,} {row['model_s']:>8.2f} "
            f"{row['model_pages_per_s']:>10,} {row['reference_s']:>8.2f} "
            f"{row['reference_pages_per_s']:>10,} {row['model_vs_reference']:>13.2f}x"
        )


if __name__ == "__main__":
    main()
