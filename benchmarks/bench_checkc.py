"""Benchmark of ``vmballoon check-c``: run ``python -m benchmarks.bench_checkc``.

Reports, on this machine, for the fixed driver source (``vmballoon patch --variant
fixed``, written to a temporary file) checked against ``fixed`` with ``--seed 1``:

1. the whole command, ``vmballoon check-c FILE.c --against fixed --examples 300 --seed S``
   for each seed of ``--seeds`` (1 to 8), run as a subprocess: wall time and CPU time
   (user + sys of the command and of every driver process it forked), then the least,
   the median and the largest wall time;
2. its two phases run in this process: the corpus (``checkc.run_corpus``) and the
   fuzzer (``checkc.run_check``), wall and CPU (this process and the driver
   processes), and the fuzzer's cost per example;
3. how the fuzzer scales with ``--examples``: 50, 100, 300 (``--scaling``).

The load average is printed before and after: the machine is shared, and the CPU
time is the figure that does not depend on it.  Not a test: nothing here asserts a
time.  The figures go in docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vmballoon.apps.checkc import corpus, run_check, run_corpus
from vmballoon.core.variants import FIXED
from vmballoon.harness.patches import variant_source
from vmballoon.harness.replay import binary_for


@dataclass
class Timing:
    """Wall and CPU seconds (user + sys of this process and its waited-for children)."""

    wall: float = 0.0
    cpu: float = 0.0

    def __str__(self) -> str:
        return f"wall {self.wall:6.1f} s, CPU {self.cpu:6.1f} s"


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def timed() -> Iterator[Timing]:
    """Time the block: its wall clock and the CPU of this process and its children."""
    out = Timing()
    wall, cpu = time.perf_counter(), _cpu()
    yield out
    out.wall, out.cpu = time.perf_counter() - wall, _cpu() - cpu


def load() -> str:
    """The load averages (1, 5, 15 minutes)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def command(source: Path, examples: int, seed: int, out: Path) -> tuple[Timing, int]:
    """``vmballoon check-c`` as the reviewer runs it; its timing and exit status."""
    argv = [
        sys.executable,
        "-m",
        "vmballoon",
        "check-c",
        str(source),
        "--against",
        "fixed",
        "--examples",
        str(examples),
        "--seed",
        str(seed),
        "--out",
        str(out),
    ]
    with timed() as t:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return t, done.returncode


def phases(source: Path, examples: int, seed: int) -> list[tuple[str, Timing, int]]:
    """The corpus and the fuzzer of one check, each timed (the build is not counted)."""
    binary = binary_for(source=source)
    scenarios = corpus().scenarios
    with timed() as t_corpus:
        found = list(run_corpus(binary, FIXED, scenarios))
    with timed() as t_fuzz:
        campaign = run_check(binary, FIXED, examples, seed, "regression")
    return [
        (f"corpus ({len(scenarios)} scenarios)", t_corpus, len(found)),
        (f"fuzzer ({campaign.examples} examples)", t_fuzz, campaign.examples),
    ]


def fuzzer(source: Path, examples: int, seed: int) -> Timing:
    """The fuzzer alone, ``examples`` examples."""
    binary = binary_for(source=source)
    with timed() as t:
        run_check(binary, FIXED, examples, seed, "regression")
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1, help="the seed of the phases and the scaling")
    ap.add_argument(
        "--seeds", default="1,2,3,4,5,6,7,8", help="seeds of the whole command (empty: none)"
    )
    ap.add_argument(
        "--scaling", default="50,100,300", help="fuzzer example counts to time alone (empty: none)"
    )
    ap.add_argument("--no-command", action="store_true", help="skip the whole command")
    args = ap.parse_args(argv)
    say: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: E731
    say(f"load average before: {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "fixed.c"
        source.write_text(variant_source(FIXED), encoding="utf-8")
        binary_for(source=source)  # compiled (or taken from the cache) before any timing
        walls: list[float] = []
        for seed in [int(x) for x in args.seeds.split(",") if x and not args.no_command]:
            t, code = command(source, args.examples, seed, Path(tmp) / f"out{seed}")
            walls.append(t.wall)
            say(
                f"vmballoon check-c fixed.c --against fixed --examples {args.examples} "
                f"--seed {seed}: {t} (exit {code}; load {load()})"
            )
        if walls:
            walls.sort()
            say(
                f"  the whole command over {len(walls)} seeds: wall min {walls[0]:.1f} s, "
                f"median {walls[len(walls) // 2]:.1f} s, max {walls[-1]:.1f} s"
            )
        for label, t, count in phases(source, args.examples, args.seed):
            say(f"  {label}: {t} (load {load()})")
            if label.startswith("fuzzer") and count:
                wall, cpu = 1000 * t.wall / count, 1000 * t.cpu / count
                say(f"  per example: wall {wall:.1f} ms, CPU {cpu:.1f} ms")
        for n in [int(x) for x in args.scaling.split(",") if x]:
            say(f"  fuzzer alone, {n} examples: {fuzzer(source, n, args.seed)} (load {load()})")
    say(f"load average after: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
