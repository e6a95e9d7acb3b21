"""The ``vmballoon`` command line.

Errors in what the user gave (a malformed scenario, an unknown option, a missing
file) are reported as one line on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from vmballoon.apps.argtypes import (
    UsageError,
    nonnegative_int,
    output_dir,
    output_file,
    positive_int,
    step_range,
    variant_name,
)
from vmballoon.apps.nogc import cyclic_gc_paused
from vmballoon.apps.replay import IMPLS, replay
from vmballoon.core.scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from vmballoon.core.variants import Variant, parse_variant
from vmballoon.model.properties import PROPERTY_NAMES

EXIT_USAGE = 2
IMPL_CHOICES = {"reference": ("reference",), "c": ("c",), "both": ("reference", "c")}
"""``vmballoon fuzz --impl``: what the model is compared with."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _variant_or_both(text: str) -> str:
    return text if text in ("both", "all") else variant_name(text)


def _fuzz_variants(choice: str) -> list[str]:
    """``both``: seed and fixed; ``all``: those and every single-fix variant."""
    from vmballoon.core.variants import FIX_NAMES

    if choice == "both":
        return ["seed", "fixed"]
    if choice == "all":
        return ["seed", "fixed", *FIX_NAMES]
    return [choice]


def _load_scenario(name: str) -> Scenario:
    """The scenario in file ``name``, or on stdin when ``name`` is ``-``."""
    try:
        if name == "-":
            try:
                text = sys.stdin.read()
            except UnicodeDecodeError:
                raise ScenarioError("cannot read (not UTF-8)") from None
            return parse_scenario(text)
        return load_scenario(name)
    except ScenarioError as exc:
        raise UsageError(f"{'<stdin>' if name == '-' else name}: {exc}") from None


def _refuse_inert_replay_options(args: argparse.Namespace) -> None:
    """Options that contradict each other, or that the chosen mode would ignore: one line
    each (exit 2), before the scenario is read."""
    if args.check and args.no_check:
        raise UsageError("--check and --no-check contradict each other: give one")
    if args.property and not args.check:
        raise UsageError("--property selects what --check checks: add --check")
    if args.check and args.impl == "reference":
        raise UsageError("--check replays through the model or the C: use --impl model or c")
    if args.format != "events" and args.impl == "reference":
        raise UsageError(
            f"--format {args.format} traces the model's or the C's transitions: "
            "use --impl model or c"
        )
    if args.format != "table" and (args.steps is not None or args.violations):
        given = "--steps" if args.steps is not None else "--violations"
        raise UsageError(f"{given} filters --format table only (the format is {args.format})")
    if args.no_check and args.format == "events":
        raise UsageError(
            "--no-check applies to --format itf and table (the event log checks nothing): drop it"
        )
    if args.violations and args.no_check:
        raise UsageError("--violations needs the property checks: drop --no-check")
    if (
        args.source is not None
        and args.variant is not None
        and not (args.check or args.format != "events")
    ):  # the C's own checks and traces read the variant; its event log does not
        raise UsageError(
            "--source FILE.c is compiled as it is: --variant would be ignored, "
            "drop one (vmballoon patch --variant V -o FILE.c gives a variant's)"
        )
    args.variant = args.variant or "seed"
    if args.force and args.format != "itf":
        raise UsageError("--force lifts the size limit of --format itf only")
    if args.output is not None and args.check and args.format == "events":
        raise UsageError(
            "-o writes the event log or a trace; --check prints its report on "
            "stdout: add --format table or itf, or drop -o"
        )


def cmd_replay(args: argparse.Namespace) -> int:
    """``vmballoon replay``: the contract's event log (or a trace) on stdout or in ``-o``."""
    from vmballoon.apps.signals import EXIT_INTERRUPTED, terminate_as_interrupt

    _refuse_inert_replay_options(args)
    scenario = _load_scenario(args.scenario)
    source = _source_file(args)
    if args.include and source is None:
        raise UsageError("--include DIR adds kernel headers for --source FILE.c: add --source")
    if args.impl == "c" and (args.check or args.format != "events"):
        return _replay_c_view(args, scenario, source)
    if args.format != "events":
        from vmballoon.apps.replaycmd import write_trace

        return write_trace(scenario, args)
    try:
        with terminate_as_interrupt():
            if args.check:
                names = frozenset(args.property) if args.property else None
                return _check(scenario, parse_variant(args.variant), names)
            with cyclic_gc_paused():  # the log holds millions of objects: no full collections
                log = _replay_checked(
                    scenario, args.impl, args.variant, source, tuple(args.include)
                )
                # json.dumps runs the C encoder; json.dump would stream through the
                # pure-Python one
                text = json.dumps(log)
    except KeyboardInterrupt:
        what = "the check reported nothing" if args.check else "no event log was written"
        print(f"replay: interrupted before the end of the replay; {what}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.output is not None:
        from vmballoon.apps.traceout import atomic_output

        with atomic_output(Path(args.output)) as out:
            out.write(text + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
        return 0
    sys.stdout.write(text)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0


def _replay_c_view(args: argparse.Namespace, scenario: Scenario, source: Path | None) -> int:
    """``replay --impl c`` with ``--check`` or ``--format table|itf``: the C's own trace
    (one state per entry point, :mod:`vmballoon.apps.cview`), checked on the C."""
    from vmballoon.apps.ctrace import NOT_OBSERVABLE
    from vmballoon.apps.cview import C_DESCRIPTION, c_walk, write_c_check
    from vmballoon.apps.traces import write_itf, write_table
    from vmballoon.harness.build import BuildError
    from vmballoon.harness.patches import PatchError
    from vmballoon.harness.replay import binary_for

    variant = parse_variant(args.variant)
    if args.check and args.format != "events":
        raise UsageError("--check prints the violations; --format shows the trace: use one")
    names = frozenset(args.property) if args.property else None
    unseen = sorted((names or frozenset()) & set(NOT_OBSERVABLE))
    if unseen and names is not None and names <= set(NOT_OBSERVABLE):
        raise UsageError(
            f"{', '.join(unseen)}: not observable on the C (inflate's locals); "
            "check it on the model (--impl model)"
        )
    try:
        binary = binary_for(variant, source, include_dirs=tuple(args.include))
    except (BuildError, PatchError) as exc:
        raise UsageError(str(exc)) from None
    if args.check:
        return write_c_check(binary, scenario, variant, names)
    steps = c_walk(binary, scenario, variant)
    if args.no_check:
        steps = (dataclasses.replace(s, violations=()) for s in steps)
    if args.format == "itf":
        write_itf(
            steps,
            sys.stdout,
            source=str(args.scenario),
            checked=not args.no_check,
            description=C_DESCRIPTION,
        )
    else:
        first, stop = args.steps if args.steps is not None else (0, None)
        write_table(steps, sys.stdout, first, stop, args.violations)
    sys.stdout.flush()
    return 0


def _check(scenario: Scenario, variant: Variant, names: frozenset[str] | None = None) -> int:
    """``replay --check``: every property (of ``names``) the replay violates, where, and
    why; exit 1 if any.  One replay, the properties checked incrementally
    (:class:`vmballoon.model.properties.Monitor`)."""
    from vmballoon.model.machine import start, trace
    from vmballoon.model.properties import Monitor

    with cyclic_gc_paused():
        state = start(scenario, variant)
        monitor = Monitor(state, properties=names)
        labels = {0: "init"}
        for t in trace(state, scenario.steps):
            if monitor.step(t.prev, t.state):
                labels[t.index] = t.label
    found = monitor.violations
    for v in found:
        print(f"{v.prop}: transition {v.step} ({labels[v.step]} -> {v.loc}): {v.message}")
    if not found:
        which = f" of {', '.join(sorted(names))}" if names else ""
        print(f"no property{which} violated ({variant.name})")
    return 1 if found else 0


def _source_file(args: argparse.Namespace) -> Path | None:
    """``--source FILE`` (only with ``--impl c``), checked to exist."""
    if args.source is None:
        return None
    if args.impl != "c":
        raise UsageError("--source FILE.c needs --impl c")
    return _regular_file(args.source)


def _regular_file(name: str) -> Path:
    """``name`` as a path, refused on one line when it is missing or not a regular file."""
    path = Path(name)
    if not path.is_file():
        raise UsageError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
    return path


def _replay_checked(
    scenario: Scenario,
    impl: str,
    variant: str,
    source: Path | None,
    include_dirs: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """:func:`replay`, with a source that does not build as a usage error (exit 2)."""
    if impl != "c":
        return replay(scenario, impl=impl, variant=variant)
    from vmballoon.harness.build import BuildError
    from vmballoon.harness.patches import PatchError

    try:
        return replay(
            scenario, impl=impl, variant=variant, source=source, include_dirs=include_dirs
        )
    except (BuildError, PatchError) as exc:
        raise UsageError(str(exc)) from None


def cmd_fuzz(args: argparse.Namespace) -> int:
    """``vmballoon fuzz``: differential campaigns, model against reference and compiled C
    (:func:`vmballoon.apps.fuzzout.run_fuzz`)."""
    import random

    from vmballoon.apps.fuzz import open_database
    from vmballoon.apps.fuzzout import run_fuzz
    from vmballoon.apps.outdir import OutDirBusy

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    try:
        open_database(args.database)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if "c" in IMPL_CHOICES[args.impl]:
        from vmballoon.harness.build import compiler_command

        compiler_command()  # a CC naming no program: one line, exit 2, before any work
    seeds = ", ".join(str(seed + i) for i in range(args.workers))
    try:
        return run_fuzz(
            variants=_fuzz_variants(args.variant),
            examples=args.examples,
            seed=seed,
            workers=args.workers,
            steps=args.steps,
            database=args.database,
            impls=IMPL_CHOICES[args.impl],
            out=Path(args.out) if args.out is not None else None,
            announce=f"fuzz: seed {seed} (worker seeds {seeds}; reproduce one with --seed S "
            "--workers 1)",
        )
    except OutDirBusy as exc:
        raise UsageError(str(exc)) from None


def _spec_out(args: argparse.Namespace) -> Path:
    """Where ``vmballoon spec`` writes: ``--out``, else the ``spec/`` of the checkout it
    runs in; never the package's own copy in an installed tree."""
    from vmballoon.core.specdata import checkout_spec_dir

    if args.out is not None:
        return Path(args.out)
    found = checkout_spec_dir()
    if found is None:
        raise UsageError("spec: not run inside a vmballoon-spec checkout: give --out DIR")
    return found


def cmd_spec(args: argparse.Namespace) -> int:
    """``vmballoon spec``: regenerate (or check) spec/reference.md."""
    from vmballoon.apps import specgen

    if args.check and args.out is not None:
        raise UsageError("spec: --check writes nothing; --out goes without it")
    if args.from_verify is not None:
        path = _regular_file(args.from_verify)
        _require_verify_output(path)
        try:
            if args.check:
                raw = json.loads(path.read_text(encoding="utf-8"))
                specgen.require_complete(raw)
                fresh = specgen.stable_results(raw)
            else:
                fresh = specgen.import_verify(path, _spec_out(args))
        except specgen.PartialResult as exc:
            raise UsageError(f"{path}: {exc}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"{path}: not a vmballoon verify --json output ({exc})") from None
        if args.check:
            problems = specgen.compare_results(fresh, specgen.load_results())
            for line in problems:
                print(line)
            if problems:
                print(
                    "verify results differ from spec/verify-results.json: run vmballoon spec "
                    "--from-verify FILE and commit",
                    file=sys.stderr,
                )
                return 1
        else:
            results = _spec_out(args) / specgen.RESULTS
            results.write_text(json.dumps(fresh, indent=1) + "\n", encoding="utf-8")
    if args.check:
        diff = specgen.check()
        for line in diff:
            print(line)
        if diff:
            print(
                "spec/reference.md differs from what the code generates: run vmballoon spec",
                file=sys.stderr,
            )
            return 1
        print("spec/reference.md is up to date")
        return 0
    out_dir = _spec_out(args)
    out = specgen.write(out_dir, out_dir / specgen.RESULTS if args.from_verify else None)
    print(f"wrote {out}")
    return 0


VERIFY_SCHEMA_PREFIX = "vmballoon-verify/"
"""What the ``schema`` field of a ``vmballoon verify --json`` output starts with."""


def _require_verify_output(path: Path) -> None:
    """Refuse, on one line, a file that is not a ``vmballoon verify --json`` output: not
    JSON, not an object, or without its ``schema`` (the checked-in
    ``spec/verify-results.json`` has none: it is what ``spec --check`` compares with)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(
            f"{path}: not a vmballoon verify --json output (not JSON: {exc})"
        ) from None
    schema = raw.get("schema") if isinstance(raw, dict) else None
    if isinstance(schema, str) and schema.startswith(VERIFY_SCHEMA_PREFIX):
        return
    looks = (
        "; it looks like the checked-in results, which `vmballoon spec --check` already "
        "compares with"
        if isinstance(raw, dict) and "invariants" in raw
        else ""
    )
    raise UsageError(
        f'{path}: expected the output of `vmballoon verify --json` ("schema": '
        f'"{VERIFY_SCHEMA_PREFIX}N"), found {"no schema" if schema is None else repr(schema)}'
        f"{looks}"
    )


def package_version() -> str:
    """The installed distribution's version (``vmballoon-spec``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vmballoon-spec")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _replay_arguments(p: argparse.ArgumentParser) -> None:
    """``replay``'s arguments: the scenario, what runs it and how its log is printed."""
    p.add_argument("scenario", help="scenario file (vmballoon-scenario/1); - reads stdin")
    p.add_argument(
        "--impl",
        choices=IMPLS,
        default="model",
        help="model (default): the executable model; reference: the line-by-line Python; "
        "c: the driver's C compiled (events only)",
    )
    p.add_argument(
        "--variant",
        type=variant_name,
        default=None,
        help="seed (default), fixed, upstream-stable, fixed-<fix> (all fixes but one) or "
        "fix,fix,...",
    )
    p.add_argument(
        "--format",
        choices=("events", "itf", "table"),
        default="events",
        help="events: the contract's event log; itf: ITF trace, streamed (one state per "
        "transition, failing properties in each state's #meta); table: readable changes",
    )
    p.add_argument(
        "--source",
        metavar="FILE.c",
        default=None,
        help="with --impl c: compile this driver source instead of the variant's",
    )
    p.add_argument(
        "--include",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="with --source: a folder of kernel headers the harness does not provide "
        "(searched after the harness's own; repeatable)",
    )


def _replay_check_and_output_arguments(p: argparse.ArgumentParser) -> None:
    """``replay``'s options: the property check along the replay, the part of the trace
    shown, and where it is written."""
    p.add_argument(
        "--check",
        action="store_true",
        help="check every property along the replay: print each violation (exit 1 if any); "
        "with --format itf or table: the trace shows the violations (of --property) and "
        "the exit status is 1 if there is any",
    )
    p.add_argument(
        "--property",
        action="append",
        default=None,
        metavar="NAME",
        choices=sorted(PROPERTY_NAMES),
        help="with --check: only this property (repeatable); exit 0 when it holds along the "
        "replay (how a reviewer sees that a fix clears a defect's finding); one of "
        + ", ".join(PROPERTY_NAMES),
    )
    p.add_argument(
        "--no-check",
        action="store_true",
        help="itf/table: do not check the properties in every state (they cost time "
        "proportional to the balloon per state; use it for long traces)",
    )
    p.add_argument(
        "--steps",
        type=step_range,
        default=None,
        metavar="A:B",
        help="table: only transitions A to B-1 (A:, :B and A work too)",
    )
    p.add_argument(
        "--violations",
        action="store_true",
        help="table: only the transitions after which a property fails",
    )
    p.add_argument(
        "-o",
        "--output",
        type=output_file,
        default=None,
        metavar="FILE",
        help="write the log or trace to FILE (through a temporary file renamed when "
        "complete: an interrupted run leaves no FILE) instead of stdout",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="itf: write even when the estimated size (shown before writing) is over "
        "the 1 GB limit",
    )


def _add_replay_parser(sub: Any) -> None:
    """``vmballoon replay``."""
    p = sub.add_parser("replay", help="replay a scenario and print its event log (JSON)")
    _replay_arguments(p)
    _replay_check_and_output_arguments(p)
    p.set_defaults(func=cmd_replay)


def _add_fuzz_parser(sub: Any) -> None:
    """``vmballoon fuzz``."""
    p = sub.add_parser("fuzz", help="differential fuzzing of the model against the reference")
    p.add_argument(
        "--examples",
        type=positive_int,
        default=500,
        help="examples per variant, split over the workers (default 500)",
    )
    p.add_argument("--seed", type=nonnegative_int, default=None, help="seed (printed when omitted)")
    p.add_argument("--steps", type=positive_int, default=12, help="entry points per example")
    p.add_argument(
        "--variant",
        type=_variant_or_both,
        default="both",
        help="seed, fixed, ..., both (seed and fixed) or all (and every single fix)",
    )
    p.add_argument(
        "--impl",
        choices=tuple(IMPL_CHOICES),
        default="both",
        help="compare the model with the reference, the compiled C, or both (default)",
    )
    p.add_argument("--workers", type=positive_int, default=1, help="processes (default 1)")
    p.add_argument(
        "--out",
        type=output_dir,
        default=None,
        metavar="DIR",
        help="write every failing or property-violating scenario found, minimized, with a "
        "meta object (property, variant, transition, message, seed)",
    )
    p.add_argument(
        "--database",
        default=None,
        help="Hypothesis example database to share: a directory or redis://HOST:PORT/N",
    )
    p.set_defaults(func=cmd_fuzz)


def _add_spec_parser(sub: Any) -> None:
    """``vmballoon spec``."""
    p = sub.add_parser("spec", help="regenerate spec/reference.md (tables from the code)")
    p.add_argument("--check", action="store_true", help="only check it is up to date")
    p.add_argument(
        "--from-verify",
        metavar="FILE",
        default=None,
        help="the output of a full `vmballoon verify --json`: record its results, findings "
        "and reference (with --check: compare); a partial run (--property, --variant, "
        "--no-necessity) is refused with exit 2 and nothing is written, never merged",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="write reference.md (and with --from-verify the results and findings) into DIR "
        "instead of the spec/ of the checkout the command runs in",
    )
    p.set_defaults(func=cmd_spec)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="vmballoon", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    _add_replay_parser(sub)
    _add_fuzz_parser(sub)
    _add_spec_parser(sub)

    from vmballoon.apps.checkc import add_check_c_parser
    from vmballoon.apps.golden import add_golden_parser
    from vmballoon.apps.patch import add_patch_parser
    from vmballoon.apps.simulate import add_simulate_parser
    from vmballoon.apps.verify import add_verify_parser

    add_verify_parser(sub).set_defaults(func=_verify)
    add_simulate_parser(sub)
    add_golden_parser(sub)
    add_patch_parser(sub)
    add_check_c_parser(sub)

    return parser


def _verify(args: argparse.Namespace) -> int:
    """``vmballoon verify``, every counterexample also replayed on the compiled C."""
    from vmballoon.apps.cexreplay import build_ahead, replay_counterexamples
    from vmballoon.apps.verify import cmd_verify

    return cmd_verify(args, replay_counterexamples, build_ahead)


def _harness_errors() -> tuple[type[Exception], ...]:
    """Failures of the compiled driver's run (a driver that loops): one line, exit 1."""
    from vmballoon.harness.process import HarnessError

    return (HarnessError,)


def _build_errors() -> tuple[type[Exception], ...]:
    """A driver source or a compiler the harness cannot build with (``CC`` naming no
    program): one line, exit 2."""
    from vmballoon.harness.build import BuildError

    return (BuildError,)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vmballoon`` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        result: int = args.func(args)
        return result
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 1
    except _build_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except _harness_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
