"""``vmballoon fuzz --out DIR``: the scenarios a campaign found, minimized, kept as files.

Every property violation the fuzzer saw (one per variant and property, the first
scenario that showed it) and every campaign failure (a disagreement of model and
reference, or a FIXED violation, already shrunk by Hypothesis) is written as a
scenario of the contract with a ``meta`` object (what it shows, on which variant,
at which transition, the campaign's seed) that replay ignores.

A violation's scenario is minimized by :func:`vmballoon.core.minimize.minimize`
(deterministic: every input the violation does not need takes its default), with at
most :data:`MAX_TRIES` replays.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from vmballoon.apps.fuzz import (
    CampaignResult,
    Coverage,
    StopRequest,
    coverage_report,
    run_campaigns,
)
from vmballoon.apps.outdir import RunDir
from vmballoon.core.minimize import minimize as shared_minimize
from vmballoon.core.scenario import Scenario, scenario_from_json
from vmballoon.core.variants import Variant, parse_variant
from vmballoon.model.machine import start, trace
from vmballoon.model.properties import Monitor

MAX_TRIES = 400
"""Replays the minimizer may spend on one scenario (it stops early when nothing shrinks)."""


def first_violation(scenario: Scenario, variant: Variant, prop: str) -> tuple[int, str] | None:
    """``(transition index, message)`` where ``prop`` first fails, as ``check_trace``
    numbers them; only that property is evaluated, and the replay stops there."""
    state = start(scenario, variant)
    monitor = Monitor(state, properties=frozenset({prop}))
    if monitor.last:
        return 0, monitor.last[0].message
    for t in trace(state, scenario.steps):
        if found := monitor.step(t.prev, t.state):
            return t.index, found[0].message
    return None


def minimize(
    scenario: Scenario, variant: Variant, prop: str, *, give_up: Callable[[], bool] | None = None
) -> tuple[Scenario, bool]:
    """A smaller scenario on which ``prop`` still fails (:func:`vmballoon.core.minimize.minimize`
    with at most :data:`MAX_TRIES` replays), and whether the minimiser went to its end: when
    ``give_up()`` turns true it stops there (the scenario still fails)."""
    cut = False

    def fails(candidate: Scenario) -> bool:
        nonlocal cut
        if give_up is not None and give_up():
            cut = True
            return False
        return first_violation(candidate, variant, prop) is not None

    small = shared_minimize(scenario, fails, budget=MAX_TRIES)
    return small, not cut


def _doc(scenario: dict[str, Any], meta: dict[str, Any], minimized: bool) -> str:
    doc = dict(scenario)
    doc["meta"] = meta if minimized else {**meta, "minimized": False}
    return json.dumps(doc, indent=1) + "\n"


def write_findings(
    out: RunDir,
    coverage: Coverage,
    results: list[CampaignResult],
    *,
    give_up: Callable[[], bool] | None = None,
) -> list[Path]:
    """Write every witness and failure of a fuzz run into ``out``; the files written.

    Each witness is minimized until ``give_up()`` turns true (after an interrupt); the
    ones written as found, or minimized part of the way, say ``"minimized": false`` in
    their meta, as does a failure Hypothesis was stopped while shrinking."""
    written: list[Path] = []
    seeds = {r.variant: r.seed for r in results}
    for (vname, prop), witness in sorted(coverage.witnesses.items()):
        variant = parse_variant(vname)
        small, done = minimize(scenario_from_json(witness.scenario), variant, prop, give_up=give_up)
        where = first_violation(small, variant, prop)
        if where is None:  # never: minimize keeps the violation; say so rather than lie
            continue
        meta = {
            "found_by": "vmballoon fuzz",
            "kind": "property violation",
            "property": prop,
            "variant": vname,
            "transition": where[0],
            "message": where[1],
            "seed": seeds.get(vname),
        }
        name = f"{vname}.{prop}.scenario.json"
        written.append(out.write_text(name, _doc(small.to_json(), meta, done)))
    for r in results:
        f = r.failed
        if f is None:
            continue
        meta = {
            "found_by": "vmballoon fuzz",
            "kind": f.kind,
            "property": f.prop,
            "variant": r.variant,
            "transition": f.step,
            "message": f.message,
            "seed": r.seed,
        }
        name = f"{r.variant}.failure.seed{r.seed}.scenario.json"
        written.append(out.write_text(name, _doc(f.scenario, meta, not r.interrupted)))
    return written


# -- the command ------------------------------------------------------------------------------

MINIMIZE_AFTER_STOP = 10.0
"""Seconds the minimiser may still spend on the findings of an interrupted run."""
REPORT = "fuzz-report.txt"
"""The report's copy in ``--out``."""


def report_lines(results: list[CampaignResult], coverage: Coverage, scenarios: bool) -> list[str]:
    """What ``vmballoon fuzz`` prints: a line per campaign, its failure, the coverage (with
    ``scenarios``, each failing scenario's JSON too)."""
    lines: list[str] = []
    for result in results:
        status = "FAILED" if result.failure else "interrupted" if result.interrupted else "ok"
        dropped = f" (and {result.discarded} abandoned by Hypothesis)" if result.discarded else ""
        lines.append(
            f"{result.variant} (seed {result.seed}): {result.examples} examples"
            f"{dropped} in {result.seconds:.1f} s: {status}"
        )
        if result.failure:
            lines.append(f"  {result.failure}")
            if result.failed and scenarios:
                lines.append("  scenario: " + json.dumps(result.failed.scenario))
    lines.append(coverage_report(coverage))
    return lines


@contextlib.contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[None]:
    """SIGINT and SIGTERM ask ``stop`` to stop (the second: hurry); a third one raises
    ``KeyboardInterrupt``.  The previous handlers come back on exit."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.hurry:
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_fuzz(
    *,
    variants: list[str],
    examples: int,
    seed: int,
    workers: int,
    steps: int,
    database: str | None,
    impls: tuple[str, ...],
    out: Path | None,
    announce: str = "",
) -> int:
    """``vmballoon fuzz``: the campaigns, the report, the findings in ``out``.

    ``out`` is owned by the run (:class:`vmballoon.apps.outdir.RunDir`: a second run into
    it is refused with :class:`vmballoon.apps.outdir.OutDirBusy` before any work, the
    files of the previous run there are removed).  On SIGINT or SIGTERM the campaigns
    stop at their next step; the report and every finding so far are written (minimized
    for at most :data:`MINIMIZE_AFTER_STOP` seconds, the rest marked), ``out`` keeps its
    ``INCOMPLETE`` mark, one line says so on stderr, and the exit status is 130.
    Otherwise: 1 if a campaign failed, else 0.  ``announce`` is printed on stderr once
    ``out`` is taken."""
    stop = StopRequest()
    with contextlib.ExitStack() as stack:
        run_dir = stack.enter_context(RunDir(out, command="fuzz")) if out is not None else None
        stack.enter_context(stop_on_signals(stop))
        if announce:
            print(announce, file=sys.stderr, flush=True)
        results, coverage = run_campaigns(
            variants, examples, seed, workers, steps, database, impls, stop=stop
        )
        interrupted = stop() or any(r.interrupted for r in results)
        lines = report_lines(results, coverage, scenarios=run_dir is None)
        print("\n".join(lines), flush=True)
        written: list[Path] = []
        if run_dir is not None:
            print(
                f"fuzz: minimizing {len(coverage.witnesses)} violation(s) into {out}",
                file=sys.stderr,
                flush=True,
            )
            deadline = time.monotonic() + MINIMIZE_AFTER_STOP

            def give_up() -> bool:
                return stop.hurry or ((interrupted or stop()) and time.monotonic() > deadline)

            written = write_findings(run_dir, coverage, results, give_up=give_up)
            for path in written:
                print(f"wrote {path}")
            run_dir.write_text(REPORT, "\n".join(lines) + "\n")
            run_dir.finish(complete=not interrupted)
    if interrupted:
        done = sum(r.examples for r in results)
        where = f"; {len(written)} finding(s) and the report in {out} (marked INCOMPLETE)"
        print(f"fuzz: interrupted after {done} examples{where if out else ''}", file=sys.stderr)
        return 130
    return 1 if any(r.failure for r in results) else 0
