"""How the property checkers scale with the balloon: run ``python -m benchmarks.bench_checkers``.

One inflation of ``n`` 4 KiB pages (FIXED), with a basic host (one LOCK per page) and
with a batched host (one command per 512 pages), checked

- on the model: ``vmballoon.model.properties.check_trace`` (every property after every
  transition), beside the plain replay (``vmballoon.model.machine.run_scenario``);
- on the C: ``vmballoon.apps.ctrace.check_c_trace`` (the driver's state read and every
  observable property checked at every environment call).

Prints microseconds per page for each ``n`` and, per column, the ratio of the largest
to the smallest: about 1 when the cost per page does not grow with the balloon.  Not
a test: nothing here asserts a time.  The figures go in docs/performance.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from benchmarks.bench_model import inflation
from vmballoon.apps.ctrace import check_c_trace
from vmballoon.core.protocol import CAP_BASIC, CAP_BATCHED
from vmballoon.core.variants import FIXED
from vmballoon.harness.replay import binary_for
from vmballoon.model.machine import run_scenario
from vmballoon.model.properties import check_trace

HOSTS = {"basic": CAP_BASIC, "batched": CAP_BASIC | CAP_BATCHED}


def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def row(pages: int, caps: int) -> dict[str, float]:
    """Microseconds per page of the replay and the two checkers on one inflation."""
    scenario = inflation(pages, caps, frames=max(1 << 20, 2 * pages))
    binary = binary_for(FIXED)
    times = {
        "replay": _seconds(lambda: run_scenario(scenario, FIXED)),
        "model check": _seconds(lambda: check_trace(scenario, FIXED)),
        "C check": _seconds(lambda: check_c_trace(binary, scenario, FIXED, timeout=3600)),
    }
    return {k: v / pages * 1e6 for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", default="5000,10000,20000,40000", help="inflation sizes")
    args = ap.parse_args()
    sizes = [int(x) for x in args.pages.split(",")]
    for host, caps in HOSTS.items():
        rows = [row(n, caps) for n in sizes]
        cols = list(rows[0])
        print(f"{host} host, FIXED, microseconds per page")
        print(f"{'pages':>8} " + " ".join(f"{c:>12}" for c in cols))
        for n, r in zip(sizes, rows, strict=True):
            print(f"{n:>8,} " + " ".join(f"{r[c]:>12.1f}" for c in cols))
        spread = {c: max(r[c] for r in rows) / min(r[c] for r in rows) for c in cols}
        print(f"{'max/min':>8} " + " ".join(f"{spread[c]:>12.2f}" for c in cols))
        print()


if __name__ == "__main__":
    main()
