"""``vmballoon replay --format itf|table``: a trace of the model's transitions, written safely.

The trace goes to stdout or, with ``-o FILE``, to a temporary file renamed to FILE
when it is complete (:func:`vmballoon.apps.traceout.atomic_output`).  Before an ITF
is written its size is estimated (:func:`vmballoon.apps.traceout.estimate_itf`): over
:data:`~vmballoon.apps.traceout.ITF_LIMIT` the run is refused unless ``--force``, and
above 10 MB the estimate is shown on stderr before writing starts.  Progress goes to
stderr every few seconds once writing has run for a few seconds.

SIGINT or SIGTERM stops the write: a file target is not created (the partial file is
removed); on stdout a table ends with a line saying it is incomplete (an ITF is left
as truncated JSON, which no JSON reader accepts); one line on stderr, exit 130.

With ``--check`` (and ``--property``) the trace shows the violations of the
properties named (all by default) and the exit status is 1 when there is any.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from vmballoon.apps.nogc import cyclic_gc_paused
from vmballoon.apps.signals import EXIT_INTERRUPTED, terminate_as_interrupt
from vmballoon.apps.traceout import (
    ITF_LIMIT,
    CountingStream,
    ItfEstimate,
    Progress,
    atomic_output,
    estimate_itf,
    fmt_bytes,
)
from vmballoon.apps.traces import TraceStep, walk, write_itf, write_table
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import parse_variant

SHOW_ESTIMATE = 10_000_000
"""An ITF estimated above this many bytes has its size shown before it is written."""

INCOMPLETE_TABLE = "(interrupted after transition {index}: this table is incomplete)"


class _Seen:
    """What went through the writer: the last transition and the violations shown."""

    def __init__(self) -> None:
        self.index = -1
        self.states = 0
        self.violated = False

    def follow(
        self, steps: Iterable[TraceStep], names: frozenset[str] | None
    ) -> Iterator[TraceStep]:
        """``steps``, their violations narrowed to ``names`` (all when None), recorded."""
        for item in steps:
            if names is not None and item.violations:
                item = replace(item, violations=tuple(v for v in item.violations if v[0] in names))
            self.violated = self.violated or bool(item.violations)
            self.index = item.index
            self.states += 1
            yield item


def write_trace(scenario: Scenario, args: argparse.Namespace) -> int:
    """Write the trace ``args`` asks for; the exit status (0, 1 with ``--check``, 130)."""
    variant = parse_variant(args.variant)
    checked = not args.no_check
    names = frozenset(args.property) if args.property else None
    output = Path(args.output) if args.output is not None else None
    total: int | None = None
    if args.format == "itf":
        try:
            with terminate_as_interrupt():
                estimate = estimate_itf(scenario, variant, checked)
        except KeyboardInterrupt:
            print(
                "replay: interrupted while estimating the ITF's size; nothing written",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        total = estimate.states
        _vet_itf_size(estimate, args.force)
    seen = _Seen()
    try:
        with terminate_as_interrupt(), cyclic_gc_paused():
            if output is None:
                _write(args, scenario, sys.stdout, seen, names, total)
                sys.stdout.flush()
            else:
                with atomic_output(output) as stream:
                    _write(args, scenario, stream, seen, names, total)
                print(f"wrote {output}", file=sys.stderr)
    except KeyboardInterrupt:
        _say_interrupted(args.format, output, seen, total)
        return EXIT_INTERRUPTED
    if args.steps is not None and args.steps[0] > seen.index:
        print(
            f"replay: --steps {args.steps[0]}:{'' if args.steps[1] is None else args.steps[1]}"
            f" shows nothing: the replay has transitions 0 to {seen.index}",
            file=sys.stderr,
        )
    return 1 if args.check and seen.violated else 0


def _vet_itf_size(estimate: ItfEstimate, force: bool) -> None:
    """Refuse an ITF estimated over :data:`~vmballoon.apps.traceout.ITF_LIMIT` unless
    ``force`` (``UsageError``); above :data:`SHOW_ESTIMATE`, say its size on stderr."""
    from vmballoon.apps.argtypes import UsageError

    if estimate.bytes > ITF_LIMIT and not force:
        raise UsageError(
            f"the ITF would be about {fmt_bytes(estimate.bytes)} ({estimate.states:,} "
            f"states), over the {fmt_bytes(ITF_LIMIT)} limit: add --force to write it, "
            "or read it as --format table"
        )
    if estimate.bytes > SHOW_ESTIMATE:
        print(
            f"replay: writing an ITF of {estimate.states:,} states, about "
            f"{fmt_bytes(estimate.bytes)} (limit without --force: "
            f"{fmt_bytes(ITF_LIMIT)})",
            file=sys.stderr,
        )


def _say_interrupted(fmt: str, output: Path | None, seen: _Seen, total: int | None) -> None:
    """What a write a signal stopped leaves: a table on stdout ends with
    :data:`INCOMPLETE_TABLE`; one line on stderr says how far it got and what is left."""
    what = (
        f"after {seen.states:,} of {total:,} states"
        if total
        else (f"after transition {seen.index}" if seen.index >= 0 else "before the first state")
    )
    if output is not None:
        print(
            f"replay: interrupted {what}; {output} not written (the partial file was removed)",
            file=sys.stderr,
        )
    else:
        if fmt == "table":
            sys.stdout.write("\n" + INCOMPLETE_TABLE.format(index=seen.index) + "\n")
            sys.stdout.flush()
        print(
            f"replay: interrupted {what}; the {fmt} on stdout is incomplete",
            file=sys.stderr,
        )


def _write(
    args: argparse.Namespace,
    scenario: Scenario,
    stream: TextIO,
    seen: _Seen,
    names: frozenset[str] | None,
    total: int | None,
) -> None:
    checked = not args.no_check
    sink = CountingStream(stream)
    progress = Progress(sys.stderr, "states", total, lambda: sink.written)
    steps = progress.follow(
        seen.follow(walk(scenario, parse_variant(args.variant), check=checked), names)
    )
    if args.format == "itf":
        write_itf(steps, sink, source=str(args.scenario), checked=checked)
    else:
        first, stop = args.steps if args.steps is not None else (0, None)
        write_table(steps, sink, first, stop, args.violations)
