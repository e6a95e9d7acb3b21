"""``vmballoon verify``: every property on SEED and FIXED, proved or violated, in parallel.

The contract (exit codes, the JSON schema, the statuses) is docs/verify.md.  This module
is the command: :func:`add_verify_parser` (its options), :func:`schedule` (the
obligations of :mod:`vmballoon.apps.verify_jobs`, each in a fresh worker process),
:func:`verdict` (the exit code, from the rows' :class:`~vmballoon.proofs.status.Status`
alone), :func:`to_json`; the text is :mod:`vmballoon.apps.verify_render`'s.

SIGINT and SIGTERM stop the workers (each in a process group of its own, killed with
its children), print what was found, leave ``--out`` marked ``INCOMPLETE``
(:class:`vmballoon.apps.outdir.RunDir`) and exit 130 with one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from types import FrameType
from typing import Any

from vmballoon.apps.argtypes import output_dir, positive_float, positive_int, variant_name
from vmballoon.apps.outdir import OutDirBusy, RunDir
from vmballoon.apps.verify_jobs import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Board,
    Counter,
    DeepJob,
    DefectJob,
    Job,
    Row,
    Setup,
    Verdict,
    plan,
    slots,
)
from vmballoon.core.variants import FIX_NAMES, FIXED, parse_variant
from vmballoon.proofs.check import (
    DEEP_DEPTH,
    DEEP_TIMEOUT_FACTOR,
    DEFAULT_DEPTH,
    DEFAULT_TIMEOUT,
    conjuncts,
)
from vmballoon.proofs.props import PROPERTIES
from vmballoon.proofs.status import Status

JSON_SCHEMA = "vmballoon-verify/1"
"""The ``schema`` field of ``verify --json`` (docs/verify.md); a change of the fields'
meaning bumps it."""

"""verify's exit codes (docs/verify.md)."""

CReplay = Callable[[list[dict[str, Any]], list[dict[str, Any]]], dict[str, Any]]
"""Replays the counterexamples on the C (result rows, defect rows, as JSON), adds each
row's ``c`` field and returns the summary with its ``disagreements`` (the application
layer passes :func:`vmballoon.apps.cexreplay.replay_counterexamples`)."""

BuildAhead = Callable[..., Callable[[], None]]
"""Starts building the C the replay will need while the proofs run (variants,
``necessity=``, ``per_defect=``) and returns the wait for it
(:func:`vmballoon.apps.cexreplay.build_ahead`)."""


def add_verify_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``verify`` subcommand to an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "verify", help="prove the properties (Z3): induction for fixed, BMC for seed"
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--variant",
        type=_variant_or_all,
        default="all",
        help="all (seed and fixed), seed, fixed, upstream-stable, fixed-<fix> or fix,fix,...",
    )
    p.add_argument(
        "--property",
        action="append",
        choices=sorted([*PROPERTIES, "progress"]),
        default=None,
        help="check only this property (repeatable)",
    )
    p.add_argument(
        "--jobs", type=positive_int, default=2, help="parallel processes, >= 1 (default 2)"
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds per solver query, > 0 (default {DEFAULT_TIMEOUT:g}); the accelerated "
        f"search's one query over {DEEP_DEPTH} depths gets {DEEP_TIMEOUT_FACTOR} times that",
    )
    p.add_argument(
        "--depth",
        type=positive_int,
        default=DEFAULT_DEPTH,
        help=f"BMC depth in transitions, >= 1 (default {DEFAULT_DEPTH}); depth 0 would "
        "search nothing and is refused",
    )
    p.add_argument(
        "--out",
        type=output_dir,
        default="verify-out",
        help="directory for counterexample scenarios (checked before any solving; one run "
        "at a time; the files of the previous run there are replaced; INCOMPLETE marks a "
        "partial run)",
    )
    p.add_argument(
        "--no-necessity",
        action="store_true",
        help="skip the fix-necessity table (FIXED minus one fix)",
    )
    p.set_defaults(func=cmd_verify)
    return p


def _variant_or_all(text: str) -> str:
    return text if text == "all" else parse_variant(variant_name(text)).name


# -- the run --------------------------------------------------------------------------------


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived: stop, keep what was found."""


def _worker_init() -> None:
    """In each worker: a process group of its own (a terminal's Ctrl-C reaches only
    verify, which stops the workers and their children by group), SIGINT ignored, and a
    watch on verify itself (:func:`_die_with`)."""
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_die_with, args=(os.getppid(),), daemon=True).start()


def _die_with(parent: int) -> None:
    """Kill this worker's process group once ``parent`` is gone.  A verify killed
    outright (SIGKILL: a CI's timeout, the OOM killer) cannot stop its workers, which
    are in groups of their own: they would solve on for nobody, a search that does not
    end (a bug, a mutant) for ever.  Z3 releases the GIL, so the watch runs during a
    query too."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os.killpg(0, signal.SIGKILL)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill every worker's process group (the worker and any process it spawned)."""
    procs = dict(getattr(pool, "_processes", None) or {})
    for pid in procs:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    pool.shutdown(wait=False, cancel_futures=True)


def _run_job(job: Job) -> list[Row]:
    """What a worker runs (module level, so that it pickles), with Python's cyclic
    garbage collector off.  The collector runs when the process has allocated enough, so
    it frees Z3 objects at moments set by everything the process did before (imports
    included), and Z3's answers depend on which of its terms are alive: with it on, the
    SEED witness check kept 501 or 509 steps as seven lists were allocated before it.
    Off, an object goes when its last reference does, so a job answers the same after
    any edit that asks Z3 the same.  Peak memory of a job with it off: at most 500 MB
    (the accelerated search; the others under 230 MB)."""
    gc.disable()
    return job.run()


def schedule(setup: Setup, board: Board, report: Callable[[Job, list[Row]], None]) -> None:
    """Run the obligations, at most ``setup.jobs`` at a time, each in a fresh process.

    A fresh process per obligation: Z3's answers depend on the terms a process built
    before, so a reused worker would make the counterexamples vary from run to run.  The
    queue is our own: the obligations planned on the way (the deep search, the defects)
    go to its front, since they are on the longest chain of the run (seed, then deep
    search, then defects).  Raises :class:`Interrupted` (the workers stopped)."""
    import multiprocessing

    queue: list[Job] = plan(
        setup.variants, setup.props, setup.timeout, setup.depth, setup.out, setup.necessity
    )
    workers = max(1, setup.jobs)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        max_tasks_per_child=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
    )
    futs: dict[Future[list[Row]], Job] = {}
    try:
        while queue or futs:
            while queue and len(futs) < workers:
                nxt = queue.pop(0)
                futs[pool.submit(_run_job, nxt)] = nxt
            finished, _ = wait(list(futs), return_when=FIRST_COMPLETED)
            for fut in finished:
                job = futs.pop(fut)
                try:
                    rows = fut.result()
                except Exception as exc:  # a crash is a failure, never "proved"
                    rows = job.crashed(exc)
                    board.crashes.append(f"{job.variant} {job.name()}: {exc!r}")
                follow = job.record(board, rows)
                report(job, rows)
                queue[:0] = follow
            defect_rows, searches = board.plan_defects()
            for row in defect_rows:
                report(DefectJob(variant="seed", timeout=setup.timeout, fix=row.fix), [row])
            queue[:0] = reversed(searches)  # each put in front, in FIX_NAMES order
    except (KeyboardInterrupt, Interrupted) as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while stopping
        _stop_workers(pool)
        raise Interrupted(str(exc) or "SIGINT") from None  # the signal's name kept
    pool.shutdown(wait=True)


# -- the verdict ----------------------------------------------------------------------------


def verdict(setup: Setup, board: Board, c_summary: dict[str, Any] | None) -> Verdict:
    """0 iff every FIXED obligation is proved (vacuity and conformance included), every
    row of every other variant is a verdict (violated, no-cex, or proved: FIXED minus a
    fix included), every counterexample is confirmed on the model and shown by the C,
    every defect has its SEED scenario, and nothing crashed; 3 when all that holds but a
    per-defect search was left unknown; 1 otherwise.  Read from the statuses only."""
    reasons = [f"crashed: {c}" for c in board.crashes]
    if c_summary is not None:
        reasons += [f"C disagrees: {d}" for d in c_summary["disagreements"]]
    by = {(r.variant, r.prop): r for r in board.results}
    if "fixed" in setup.variants:
        needed = [n for n in [*conjuncts(), "vacuity"] if n in setup.props or n not in PROPERTIES]
        needed += [n for n in setup.props if n not in PROPERTIES]  # progress
        for n in needed:
            r = by.get(("fixed", n))
            if r is None or r.status != Status.PROVED:
                reasons.append(f"fixed {n}: {r.status if r else 'not checked'}")
        if not any(c.variant == "fixed" for c in board.conformance):
            reasons.append("fixed: no conformance of the encoding with the model")
    if len(board.conformance) != len(setup.variants):
        reasons.append("conformance: not checked for every variant")
    reasons += [f"conformance ({c.variant}): failed" for c in board.conformance if not c.ok]
    for r in board.results:  # every variant: FIXED minus a fix and the deep search too
        if r.variant != "fixed" and (r.status.open or r.status == Status.FAILED):
            reasons.append(f"{r.variant} {r.prop}: {r.status}")
    open_defects = [f for f, d in board.defects.items() if d.status == Status.UNKNOWN]
    for fix, d in board.defects.items():
        if d.status not in (Status.VIOLATED, Status.UNKNOWN):
            reasons.append(f"defect {fix}: {d.status}")
    if setup.per_defect:
        reasons += [f"defect {f}: not searched" for f in FIX_NAMES if f not in board.defects]
    if reasons:
        return Verdict(EXIT_FAILED, reasons, open_defects)
    return Verdict(EXIT_INCOMPLETE if open_defects else EXIT_OK, [], open_defects)


def necessity_table(setup: Setup, board: Board) -> dict[str, list[str]]:
    """For each fix, the properties FIXED minus that fix violates."""
    if not setup.necessity:
        return {}
    return {
        fix: sorted(
            r.prop
            for r in board.results
            if r.variant == FIXED.without(fix).name and r.status == Status.VIOLATED
        )
        for fix in FIX_NAMES
    }


def to_json(
    setup: Setup,
    board: Board,
    v: Verdict,
    c_summary: dict[str, Any] | None,
    seconds: float,
    *,
    interrupted: bool = False,
) -> dict[str, Any]:
    """``verify --json`` (schema :data:`JSON_SCHEMA`, docs/verify.md)."""
    import z3

    from vmballoon.proofs import defects as dft

    code = EXIT_INTERRUPTED if interrupted else v.code
    return {
        "schema": JSON_SCHEMA,
        "ok": code == EXIT_OK,
        "exit": code,
        "complete": setup.complete_run and not interrupted,
        "seconds": seconds,
        "solver": {"name": "z3", "version": z3.get_version_string()},
        "depth": setup.depth,
        "deep_depth": DEEP_DEPTH,
        "deep_timeout": setup.timeout * DEEP_TIMEOUT_FACTOR,
        "defect_depth": dft.DEFECT_DEPTH,
        "timeout": setup.timeout,
        "jobs": setup.jobs,
        "results": [r.to_json() for r in board.results],
        "necessity": necessity_table(setup, board),
        "defects": [board.defects[f].to_json() for f in FIX_NAMES if f in board.defects],
        "conformance": [c.to_json() for c in board.conformance],
        "c_replay": c_summary,
    }


def replay_on_c(board: Board, c_replay: CReplay) -> dict[str, Any]:
    """Replay the counterexamples on the C (rows as JSON), then keep each row's ``c``."""
    results = [r.to_json() for r in board.results]
    defects = [board.defects[f] for f in FIX_NAMES if f in board.defects]
    defect_docs = [d.to_json() for d in defects]
    summary = c_replay(results, defect_docs)
    for row, doc in zip(board.results, results, strict=True):
        row.c = doc.get("c")
    for d, doc in zip(defects, defect_docs, strict=True):
        d.c = doc.get("c")
    return summary


# -- the command ----------------------------------------------------------------------------


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _register_outputs(out: RunDir, board: Board, since: float) -> None:
    """Record in the folder's manifest every scenario this run wrote (those of rows, and
    any a stopped worker wrote before it could report)."""
    names = {Path(r.scenario).name for r in board.results if r.scenario}
    names |= {Path(d.scenario).name for d in board.defects.values() if d.scenario}
    for p in out.path.glob("*.scenario.json"):
        try:
            if p.stat().st_mtime >= since - 1:
                names.add(p.name)
        except OSError:
            continue
    for name in sorted(names):
        if (out.path / name).exists():
            out.file(name)


def _after_builds(
    setup: Setup, ahead: BuildAhead | None, c_replay: CReplay | None
) -> CReplay | None:
    """``c_replay`` once the builds ``ahead`` starts now for ``setup`` are done (as it
    is without either)."""
    if c_replay is None or ahead is None:
        return c_replay
    wait = ahead(setup.variants, necessity=setup.necessity, per_defect=setup.per_defect)

    def replay(results: list[dict[str, Any]], defects: list[dict[str, Any]]) -> dict[str, Any]:
        wait()
        return c_replay(results, defects)

    return replay


def _replay_on_c_or_interrupted(
    board: Board, c_replay: CReplay
) -> tuple[dict[str, Any] | None, str | None]:
    """:func:`replay_on_c`, its summary line printed: the summary and None, or, when a
    signal cuts the replay short, None and the signal's name (and no row keeps a ``c``:
    a C replay cut short says nothing)."""
    from vmballoon.apps import verify_render as render

    try:
        c_summary = replay_on_c(board, c_replay)
        render.c_line(c_summary)
    except (KeyboardInterrupt, Interrupted) as exc:
        for r in board.results:
            r.c = None
        for d in board.defects.values():
            d.c = None
        return None, str(exc) or "SIGINT"
    return c_summary, None


def _say_interrupted(signal_name: str, counter: Counter, setup: Setup) -> None:
    """The line on stderr of a run a signal stopped: how far it got, and that its folder
    is marked INCOMPLETE."""
    print(
        f"interrupted ({signal_name}): {counter.done} of {counter.total} obligations "
        f"done; {setup.out} is marked INCOMPLETE",
        file=sys.stderr,
        flush=True,
    )


def _write(
    as_json: bool,
    setup: Setup,
    board: Board,
    v: Verdict,
    c_summary: dict[str, Any] | None,
    elapsed: float,
    interrupted: bool,
) -> None:
    """The results on stdout: JSON, or the text of :mod:`vmballoon.apps.verify_render`."""
    from vmballoon.apps import verify_render as render

    if as_json:
        json.dump(
            to_json(setup, board, v, c_summary, elapsed, interrupted=interrupted),
            sys.stdout,
            indent=1,
        )
        sys.stdout.write("\n")
    else:
        render.report(setup, board, v, c_summary, elapsed, interrupted=interrupted)
    sys.stdout.flush()


def cmd_verify(
    args: argparse.Namespace, c_replay: CReplay | None = None, ahead: BuildAhead | None = None
) -> int:
    """Run the obligations in parallel; print the tables; the exit code of :func:`verdict`.

    ``c_replay`` (``vmballoon verify`` passes :func:`vmballoon.apps.cexreplay.
    replay_counterexamples`) replays every counterexample on the compiled C, which
    ``ahead`` builds while the proofs run (:func:`_after_builds`); a counterexample the
    model shows and the C does not fails the run."""
    from vmballoon.apps import verify_render as render

    t0, wall0 = time.monotonic(), time.time()  # the run's duration; its files' age
    setup = Setup.of(args)
    board = Board(
        per_defect=setup.per_defect, necessity=setup.necessity, timeout=setup.timeout, out=setup.out
    )
    jobs = plan(setup.variants, setup.props, setup.timeout, setup.depth, setup.out, setup.necessity)
    counter = Counter(slots(jobs, setup.variants, setup.props, setup.per_defect))
    previous, previous_int = (
        signal.signal(signal.SIGTERM, _raise_interrupted),
        signal.getsignal(signal.SIGINT),
    )
    try:
        with RunDir(Path(setup.out or "verify-out"), command="verify") as out:
            interrupted: str | None = None
            c_replay = _after_builds(setup, ahead, c_replay)
            try:
                schedule(setup, board, lambda job, rows: render.progress(counter, board, job, rows))
            except Interrupted as exc:
                interrupted = str(exc) or "SIGINT"
            c_summary = None
            if c_replay is not None and interrupted is None:
                c_summary, interrupted = _replay_on_c_or_interrupted(board, c_replay)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # writing what was found
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _register_outputs(out, board, wall0)
            v = verdict(setup, board, c_summary)
            _write(
                args.json,
                setup,
                board,
                v,
                c_summary,
                time.monotonic() - t0,
                interrupted is not None,
            )
            out.finish(complete=interrupted is None)
    except OutDirBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (Interrupted, KeyboardInterrupt) as exc:  # before the first obligation ran
        print(f"interrupted ({str(exc) or 'SIGINT'}) before any obligation ran", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    if interrupted is not None:
        _say_interrupted(interrupted, counter, setup)
        return EXIT_INTERRUPTED
    return v.code


__all__ = [
    "EXIT_FAILED",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "JSON_SCHEMA",
    "Board",
    "DeepJob",
    "Setup",
    "Verdict",
    "add_verify_parser",
    "cmd_verify",
    "schedule",
    "to_json",
    "verdict",
]
