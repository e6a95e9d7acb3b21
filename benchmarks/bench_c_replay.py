"""Benchmark of ``replay --impl c`` against the model and the reference: run
``python -m benchmarks.bench_c_replay``.

Reports, on this machine:

1. the cost of compiling a variant's driver (``harness.build``: cold, into an empty
   cache, and from the cache);
2. the same scenarios of ``tests/scenarios`` (the 64 GiB guest inflating 2 MiB pages
   to 48 GiB and back, and small ones) replayed through the model, the reference and
   the compiled C, each time the best of ``--repeat`` runs, with the ratios;
3. how each scales with the length of a scenario: one inflation of 4 KiB pages with a
   batched host, from 1,000 to ``--max-pages`` pages (microseconds per page).

4. the cost of one scenario on the C, as ``check-c`` pays it per example: a fork, module
   init, the steps, the state, with and without the trace checker (``apps.ctrace``,
   the driver's state observed at every environment call), over the shipped corpus.

The C is the harness library loaded in a forked child per module load, its every
allocation, free and backdoor command a direct call into the Python environment
(``harness.process``), one request over a pipe per entry point.  Not a test:
nothing here asserts a time.  The figures go in docs/c-runtime.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.bench_model import inflation
from vmballoon import model, reference
from vmballoon.apps.nogc import cyclic_gc_paused
from vmballoon.core.protocol import CAP_BASIC, CAP_BATCHED
from vmballoon.core.scenario import Scenario, load_scenario
from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.harness import build as c_build
from vmballoon.harness.patches import variant_source
from vmballoon.harness.replay import binary_for
from vmballoon.harness.replay import replay as replay_c

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tests" / "scenarios"
CASES = (
    ("guest64g_2m_to_48g_and_back.json", FIXED),
    ("guest64g_2m_to_48g_and_back.json", SEED),
    ("memory_pressure.json", FIXED),
    ("reset_mid_inflation.json", SEED),
    ("doorbell_life_cycle.json", SEED),
    ("null_ops.json", SEED),
)
LENGTHS = (1_000, 10_000, 100_000, 1_000_000)
CORPUS = sorted(
    [
        *SCENARIOS.glob("*.json"),
        *(ROOT / "tests" / "golden").glob("*.scenario.json"),
        *(ROOT / "spec" / "examples").glob("*.scenario.json"),
        *(ROOT / "spec" / "findings").glob("*.scenario.json"),
    ]
)


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The shortest of ``repeat`` runs of ``fn`` (seconds) and its last value."""
    best, value = float("inf"), None
    for _ in range(repeat):
        with cyclic_gc_paused():
            began = time.perf_counter()
            value = fn()
            best = min(best, time.perf_counter() - began)
    return best, value


def compile_cost() -> dict[str, float]:
    """Seconds to build the FIXED driver into an empty cache, then to find it cached."""
    source = variant_source(FIXED)
    saved = os.environ.get("XDG_CACHE_HOME")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        try:
            began = time.perf_counter()
            c_build.build(source, "fixed")
            cold = time.perf_counter() - began
            began = time.perf_counter()
            c_build.build(source, "fixed")
            cached = time.perf_counter() - began
        finally:
            if saved is None:
                del os.environ["XDG_CACHE_HOME"]
            else:
                os.environ["XDG_CACHE_HOME"] = saved
    return {"cold_s": round(cold, 3), "cached_s": round(cached, 4)}


def three_ways(scenario: Scenario, variant: Variant, repeat: int) -> dict[str, Any]:
    """Model, reference and C on one scenario: times, ratios, and that the logs agree."""
    binary = binary_for(variant)
    t_model, log_model = _best(lambda: model.replay(scenario, variant), repeat)
    t_ref, log_ref = _best(lambda: reference.replay(scenario, variant), repeat)
    t_c, log_c = _best(lambda: replay_c(scenario, variant, binary=binary), repeat)
    assert log_c == log_model == log_ref, "the three readings disagree"
    return {
        "variant": variant.name,
        "steps": len(scenario.steps),
        "events": len(log_model["events"]),
        "model_s": round(t_model, 4),
        "reference_s": round(t_ref, 4),
        "c_s": round(t_c, 4),
        "c_vs_model": round(t_model / t_c, 2),  # > 1: the C is faster
        "c_vs_reference": round(t_ref / t_c, 2),
    }


def corpus(repeat: int) -> list[dict[str, Any]]:
    """:func:`three_ways` on the scenarios of ``CASES``."""
    rows = []
    for name, variant in CASES:
        row = three_ways(load_scenario(SCENARIOS / name), variant, repeat)
        rows.append({"scenario": name, **row})
    return rows


def scaling(max_pages: int) -> list[dict[str, Any]]:
    """One inflation of ``n`` 4 KiB pages (batched host, FIXED), for growing ``n``."""
    rows = []
    for pages in (n for n in LENGTHS if n <= max_pages):
        scenario = inflation(pages, CAP_BASIC | CAP_BATCHED, frames=max(16_777_216, 2 * pages))
        row = three_ways(scenario, FIXED, 1)
        for impl in ("model", "reference", "c"):
            row[f"{impl}_us_per_page"] = round(row[f"{impl}_s"] / pages * 1e6, 2)
        rows.append({"pages": pages, **row})
    return rows


def per_scenario(repeat: int) -> dict[str, Any]:
    """Milliseconds per scenario of the shipped corpus on the FIXED C (median), replayed
    alone and replayed under the trace checker; the corpus's few long scenarios (an
    inflation of thousands of pages) are left out: a fuzzer's example is short."""
    from vmballoon.apps.ctrace import check_c_trace

    binary = binary_for(FIXED)
    short = [sc for sc in (load_scenario(p) for p in CORPUS) if sc.frames <= 4096]
    plain, checked = [], []
    for sc in short:
        plain.append(_best(partial(replay_c, sc, FIXED, binary=binary), repeat)[0])
        checked.append(_best(partial(check_c_trace, binary, sc, FIXED), repeat)[0])
    plain.sort()
    checked.sort()
    return {
        "scenarios": len(short),
        "replay_ms_median": round(plain[len(plain) // 2] * 1000, 2),
        "checked_ms_median": round(checked[len(checked) // 2] * 1000, 2),
        "replay_ms_max": round(plain[-1] * 1000, 1),
        "checked_ms_max": round(checked[-1] * 1000, 1),
    }


def main() -> None:
    """Run the benchmarks and print the figures (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (best kept)")
    parser.add_argument(
        "--max-pages",
        type=int,
        default=100_000,
        help="longest inflation of the scaling table (default 100,000)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    build = compile_cost()
    rows = corpus(args.repeat)
    grow = scaling(args.max_pages)
    each = per_scenario(args.repeat)
    if args.json:
        print(
            json.dumps(
                {"compile": build, "corpus": rows, "scaling": grow, "per_scenario": each}, indent=2
            )
        )
        return
    print(
        f"compile the FIXED driver: {build['cold_s']:.2f} s cold, "
        f"{build['cached_s'] * 1000:.1f} ms from the cache"
    )
    print()
    print(
        f"{'scenario':<36} {'variant':<7} {'events':>7} {'model s':>8} {'ref s':>8} "
        f"{'C s':>8} {'C vs model':>10} {'C vs ref':>9}"
    )
    for r in rows:
        print(
            f"{r['scenario']:<36} {r['variant']:<7} {r['events']:>7,} {r['model_s']:>8.3f} "
            f"{r['reference_s']:>8.3f} {r['c_s']:>8.3f} {r['c_vs_model']:>9.2f}x "
            f"{r['c_vs_reference']:>8.2f}x"
        )
    print()
    print("one inflation of 4 KiB pages, batched host, FIXED (microseconds per page)")
    print(f"{'pages':>10} {'events':>9} {'model':>8} {'ref':>8} {'C':>8} {'C vs model':>10}")
    for r in grow:
        print(
            f"{r['pages']:>10,} {r['events']:>9,} {r['model_us_per_page']:>8.2f} "
            f"{r['reference_us_per_page']:>8.2f} {r['c_us_per_page']:>8.2f} "
            f"{r['c_vs_model']:>9.2f}x"
        )
    print()
    print(
        f"one scenario of the corpus on the C ({each['scenarios']} scenarios of at most "
        f"4096 frames, median): replay {each['replay_ms_median']:.1f} ms, with the trace "
        f"checker {each['checked_ms_median']:.1f} ms (slowest {each['replay_ms_max']:.0f} "
        f"/ {each['checked_ms_max']:.0f} ms)"
    )


if __name__ == "__main__":
    main()
