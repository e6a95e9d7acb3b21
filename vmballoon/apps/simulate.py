"""``vmballoon simulate``: a cooperative host and a target schedule over a guest of a given size.

Wiring (in :mod:`vmballoon.apps.cli`)::

    from vmballoon.apps.simulate import add_simulate_parser
    add_simulate_parser(sub)        # sets func=cmd_simulate

Sizes are ``<number><unit>`` with binary units (``KiB``/``K``, ``MiB``/``M``,
``GiB``/``G``, ``TiB``/``T``; a multiple of 4 KiB) or a plain integer: a number
of 4 KiB pages.  A schedule is ``tick:size,tick:size,...`` with strictly
increasing ticks; the target before the first entry is 0.  The engine is
:mod:`vmballoon.apps.simulation`, the picture :mod:`vmballoon.apps.simplot`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO

from vmballoon.apps.argtypes import output_file, positive_int, variant_name
from vmballoon.apps.signals import EXIT_INTERRUPTED, terminate_as_interrupt
from vmballoon.apps.simulation import SimConfig, SimResult, fmt_size, simulate
from vmballoon.core.host import Schedule
from vmballoon.core.protocol import (
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BATCHED_2M,
    CAP_SIGNALLED_WAKEUP,
    CAPABILITIES,
    COMMAND_NAMES,
    U32_MASK,
    U64_MASK,
)
from vmballoon.core.variants import parse_variant

PAGE = 4096
DEFAULT_RAM = 4 << 30
SETTLE_TICKS = 30
"""Default ticks after the last entry of the schedule."""

_UNITS = {"": None, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?b)?)?\s*$", re.IGNORECASE)

CAPABILITY_NAMES: dict[str, int] = {
    "basic": CAP_BASIC,
    "batched": CAP_BATCHED,
    "2m": CAP_BATCHED_2M,
    "doorbell": CAP_SIGNALLED_WAKEUP,
}
_CAP_ALIASES = {"batched_2m": CAP_BATCHED_2M, "signalled_wakeup": CAP_SIGNALLED_WAKEUP}


# -- argument types ------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """A size in 4 KiB pages: ``8GiB``, ``512M``, ``1.5GiB``, or a plain number of pages."""
    m = _SIZE_RE.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(
            f"bad size {text!r}: use a number with KiB, MiB, GiB or TiB, or a number of 4 KiB pages"
        )
    number, letter, suffix = m.group(1), m.group(2), m.group(3)
    if suffix is not None and suffix.lower() == "b":
        raise argparse.ArgumentTypeError(
            f"bad size {text!r}: units are binary, write {letter.upper()}iB"
        )
    if letter is None:
        if "." in number:
            raise argparse.ArgumentTypeError(f"bad size {text!r}: a page count is an integer")
        return int(number)
    try:
        size = Decimal(number) * _UNITS[letter.lower()]  # type: ignore[operator]
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        raise argparse.ArgumentTypeError(f"bad size {text!r}") from None
    if size != size.to_integral_value() or int(size) % PAGE:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: not a multiple of 4 KiB")
    return int(size) // PAGE


def parse_schedule(text: str) -> Schedule:
    """``tick:size,...`` as ``((tick, pages), ...)``; ticks >= 0 and strictly increasing."""
    out: list[tuple[int, int]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        tick_text, sep, size_text = item.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"bad schedule entry {item!r}: expected tick:size")
        try:
            tick = int(tick_text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad schedule entry {item!r}: tick {tick_text.strip()!r} is not an integer"
            ) from None
        if tick < 0:
            raise argparse.ArgumentTypeError(f"bad schedule entry {item!r}: negative tick")
        if out and tick <= out[-1][0]:
            raise argparse.ArgumentTypeError(
                f"bad schedule entry {item!r}: ticks must increase (after tick {out[-1][0]})"
            )
        pages = parse_size(size_text)
        if pages > U32_MASK:
            raise argparse.ArgumentTypeError(
                f"bad schedule entry {item!r}: a target is a 32-bit page count"
            )
        out.append((tick, pages))
    if not out:
        raise argparse.ArgumentTypeError("empty schedule: expected tick:size,...")
    return tuple(out)


def parse_capabilities(text: str) -> int:
    """``0x1e``, ``30`` or names: ``basic,batched,2m,doorbell``."""
    text = text.strip()
    try:
        value = int(text, 0)
    except ValueError:
        value = 0
        for name in text.split(","):
            key = name.strip().lower()
            bit = CAPABILITY_NAMES.get(key, _CAP_ALIASES.get(key))
            if bit is None:
                raise argparse.ArgumentTypeError(
                    f"unknown capability {name.strip()!r} (known: {', '.join(CAPABILITY_NAMES)}"
                    ", or a number like 0x1e)"
                ) from None
            value |= bit
        return value
    if not 0 <= value <= U64_MASK:
        raise argparse.ArgumentTypeError(f"capabilities {text!r} do not fit in 64 bits")
    return value


def parse_rate(text: str) -> float:
    """A probability: ``0.05`` or ``5%``."""
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad rate {text!r}: expected 0..1 or a percentage"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"bad rate {text!r}: expected 0..1 or a percentage")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value <= U64_MASK:
        raise argparse.ArgumentTypeError(f"seed {value} outside 0..2**64-1")
    return value


def plot_file(text: str) -> str:
    """``--plot``: a ``.png`` or ``.svg`` file that can be written (checked before the run)."""
    if not text.lower().endswith((".png", ".svg")):
        raise argparse.ArgumentTypeError(f"{text!r} must end in .png or .svg")
    return output_file(text)


def add_simulate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``simulate`` to ``subparsers`` (from ``add_subparsers``); sets ``func``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="a cooperative host and a target schedule over a guest; size against target",
        description=(__doc__.split("\n\n")[0].replace("``", "") if __doc__ else "")
        + " Exit status: 0 no property violated, 1 a property was violated, 2 bad arguments, "
        "130 interrupted (SIGINT or SIGTERM: the summary and picture cover the ticks done "
        "and say so).",
    )
    p.add_argument(
        "--ram",
        type=parse_size,
        default=DEFAULT_RAM // PAGE,
        help="guest RAM, e.g. 64GiB (default 4GiB)",
    )
    p.add_argument(
        "--variant",
        type=variant_name,
        default="fixed",
        help="seed, fixed, upstream-stable, fixed-<fix> or fix,fix,... (default fixed)",
    )
    p.add_argument(
        "--capabilities",
        type=parse_capabilities,
        default=CAPABILITIES,
        help="what the host offers: 0x1e or basic,batched,2m,doorbell "
        "(default: all the driver asks for, 0x1e)",
    )
    _add_run_arguments(p)
    p.add_argument(
        "--plot",
        type=plot_file,
        default=None,
        metavar="FILE",
        help="write the picture to FILE.png or FILE.svg: size, target, frames the "
        "guest gave up and frames the host holds, per tick",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_simulate)
    return p


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Add what happens over the run: ``--targets`` (the host's schedule), ``--ticks``,
    ``--pressure`` and ``--pressure-seed`` (allocation failures)."""
    p.add_argument(
        "--targets",
        type=parse_schedule,
        default=None,
        help='target schedule "tick:size,...", e.g. "0:8GiB,30:2GiB,60:0" '
        "(default: half the RAM at tick 0, 0 at tick 30)",
    )
    p.add_argument(
        "--ticks",
        type=positive_int,
        default=None,
        help=f"ticks to run (default: last schedule tick + {SETTLE_TICKS})",
    )
    p.add_argument(
        "--pressure",
        type=parse_rate,
        default=0.0,
        help="probability that a page allocation fails, e.g. 0.05 or 5%%",
    )
    p.add_argument(
        "--pressure-seed",
        type=_seed,
        default=None,
        help="seed of the allocation failures of --pressure (default 0)",
    )


# -- the command ---------------------------------------------------------------------------


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Check the arguments together and build the simulation's configuration."""
    from vmballoon.apps.argtypes import UsageError

    ram: int = args.ram
    if ram <= 0:
        raise UsageError("--ram: the guest needs at least one 4 KiB page")
    if ram > U32_MASK:
        raise UsageError(
            "--ram: at most 16 TiB (GET_TARGET passes totalram as 32 bits; "
            "above that the driver never asks for a target)"
        )
    schedule: Schedule = args.targets or ((0, ram // 2), (30, 0))
    for tick, pages in schedule:
        if pages > ram:
            raise UsageError(
                f"--targets: target {fmt_size(pages)} at tick {tick} exceeds the RAM "
                f"({fmt_size(ram)})"
            )
    ticks: int = args.ticks if args.ticks is not None else schedule[-1][0] + SETTLE_TICKS
    if args.pressure_seed is not None and not args.pressure:
        raise UsageError(
            "--pressure-seed seeds the allocation failures of --pressure: add "
            "--pressure RATE (above 0), or drop it"
        )
    late = [tick for tick, _ in args.targets or () if tick >= ticks]
    if late:
        raise UsageError(
            f"--targets: the entry at tick {late[0]} never comes into force (--ticks {ticks} "
            f"runs ticks 0 to {ticks - 1})"
        )
    return SimConfig(
        ram_pages=ram,
        schedule=schedule,
        ticks=ticks,
        variant=parse_variant(args.variant),
        capabilities=args.capabilities,
        pressure=args.pressure,
        pressure_seed=args.pressure_seed or 0,
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    """``vmballoon simulate``: run, show progress on stderr, print the summary.

    Exit status 0 when no property was violated, 1 when one was (the summary and the
    picture say which), 2 for bad arguments.
    """
    config = config_from_args(args)
    bar = ProgressBar(sys.stderr)
    try:
        with terminate_as_interrupt():
            result = simulate(config, bar.update, stop_on_interrupt=True)
            bar.close(result)
            if result.interrupted:
                print(
                    f"simulate: interrupted after {len(result.records)} of {config.ticks} "
                    "ticks; the summary (and picture) cover those ticks and say "
                    '"interrupted"',
                    file=sys.stderr,
                )
            _write_outputs(args, result)
    except KeyboardInterrupt:  # before the first tick, or while writing what was done
        bar.stream.write("\n" if bar.tty else "")
        print("simulate: interrupted before the summary was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.interrupted:
        return EXIT_INTERRUPTED
    return 1 if result.violations else 0


def _write_outputs(args: argparse.Namespace, result: SimResult) -> None:
    """The picture (through a temporary file) and the summary on stdout."""
    if args.plot is not None:
        from vmballoon.apps.simplot import plot

        try:
            plot(result, args.plot)
        except OSError as exc:
            from vmballoon.apps.argtypes import UsageError

            raise UsageError(f"--plot: cannot write {args.plot!r}: {exc.strerror}") from None
        if not result.interrupted:
            print(f"simulate: picture written to {args.plot}", file=sys.stderr)
    if args.json:
        sys.stdout.write(json.dumps(summary_json(result)) + "\n")
    else:
        sys.stdout.write(summary_text(result))
    sys.stdout.flush()


# -- progress ------------------------------------------------------------------------------


class ProgressBar:
    """A bar redrawn in place on a terminal; a few plain lines otherwise."""

    WIDTH = 30
    INTERVAL = 0.1  # seconds between two redraws

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0
        self.quarters = 0  # plain lines printed (one per quarter of the ticks)

    def update(self, done: int, total: int, size: int) -> None:
        """Called by the simulation after each tick and during long ticks."""
        if self.tty:
            now = time.monotonic()
            if now - self.last < self.INTERVAL and done < total:
                return
            self.last = now
            filled = self.WIDTH * done // max(total, 1)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            self.stream.write(f"\r[{bar}] tick {done}/{total}  balloon {fmt_size(size):>10}")
            self.stream.flush()
            return
        quarter = 4 * done // max(total, 1)
        if done and quarter > self.quarters:
            self.quarters = quarter
            self.stream.write(
                f"simulate: tick {done}/{total} ({100 * done // total}%), "
                f"balloon {fmt_size(size)}\n"
            )
            self.stream.flush()

    def close(self, result: SimResult) -> None:
        """End the bar's line."""
        if self.tty:
            self.stream.write(f"\n{result.transitions} transitions in {result.seconds:.2f} s\n")
            self.stream.flush()


# -- summary -------------------------------------------------------------------------------


def caps_names(caps: int) -> str:
    """``basic,batched,2m,doorbell`` (and any unknown bits in hex)."""
    names = [n for n, bit in CAPABILITY_NAMES.items() if caps & bit]
    rest = caps & ~sum(CAPABILITY_NAMES.values())
    if rest:
        names.append(hex(rest))
    return ",".join(names) or "none"


def summary_json(result: SimResult) -> dict[str, Any]:
    """The summary as a JSON value."""
    c = result.config
    return {
        "ram_pages": c.ram_pages,
        "variant": c.variant.name,
        "capabilities": c.capabilities,
        "ticks": len(result.records),
        "ticks_asked": c.ticks,
        "complete": result.complete,
        "seconds": round(result.seconds, 3),
        "transitions": result.transitions,
        "targets": [
            {
                "tick": t.tick,
                "target": t.target,
                "reached_tick": t.reached_tick,
                "ticks_needed": t.ticks_needed,
            }
            for t in result.targets
        ],
        "commands": dict(sorted(result.commands.items())),
        "failed_commands": dict(sorted(result.failed_commands.items())),
        "pages_refused": result.pages_refused,
        "alloc_calls": result.alloc_calls,
        "alloc_failures": result.alloc_failures,
        "faults": dict(sorted(result.faults.items())),
        "resets": [r.tick for r in result.records if r.reset],
        "crashed_at": result.crashed_at,
        "final": result.final,
        "violations": {
            name: {"first_tick": v.first_tick, "ticks": v.ticks, "message": v.message}
            for name, v in result.violations.items()
        },
        "series": {
            "size": [r.size for r in result.records],
            "target": [r.target for r in result.records],
            "allocated": [r.allocated for r in result.records],
            "host_held": [r.held for r in result.records],
            "allocated_during_tick": [r.churn for r in result.records],
        },
    }


def summary_text(result: SimResult) -> str:
    """The summary as tables."""
    c = result.config
    lines = (
        [
            f"INTERRUPTED after {len(result.records)} of {c.ticks} ticks: this summary covers "
            "those ticks only"
        ]
        if result.interrupted
        else []
    )
    lines += [
        f"guest {fmt_size(c.ram_pages)} ({c.ram_pages} pages), variant {c.variant.name}, "
        f"host capabilities {c.capabilities:#x} ({caps_names(c.capabilities)})"
        + (f", pressure {c.pressure:g} (seed {c.pressure_seed})" if c.pressure else ""),
        f"{len(result.records)} ticks, {result.transitions} transitions in {result.seconds:.2f} s",
        "",
        f"{'from tick':>9}  {'target':>12}  reached",
    ]
    for t in result.targets:
        if t.reached_tick is None:
            got = "not reached"
        else:
            got = f"tick {t.reached_tick} ({t.ticks_needed} tick{'s' * (t.ticks_needed != 1)})"
        lines.append(f"{t.tick:>9}  {fmt_size(t.target):>12}  {got}")
    lines += ["", f"{'command':<20} {'sent':>8} {'failed':>8}"]
    for cmd in COMMAND_NAMES.values():
        if result.commands[cmd]:
            lines.append(f"{cmd:<20} {result.commands[cmd]:>8} {result.failed_commands[cmd]:>8}")
    f = result.final
    lines += [
        "",
        f"pages refused by the host: {result.pages_refused}",
        f"allocations: {result.alloc_calls} ({result.alloc_failures} failed)",
        f"resets (START): {sum(r.reset for r in result.records)}",
    ]
    if result.faults:
        lines.append("faults: " + ", ".join(f"{k} {v}" for k, v in sorted(result.faults.items())))
    lines += [
        "",
        f"final: size {fmt_size(f['size'])} ({f['size']} pages: {f['pages_4k']} x 4 KiB, "
        f"{f['pages_2m']} x 2 MiB), target {fmt_size(f['target'])}, ops {f['ops']}, "
        f"capabilities {f['capabilities']:#x}, reset_required {f['reset_required']}",
        f"       host holds {f['host_held_frames']} frames, {f['free_frames']} frames free"
        + (f", CRASHED at tick {result.crashed_at}" if f["crashed"] else ""),
        "",
    ]
    if not result.violations:
        lines.append("property violations: none")
    else:
        lines.append(f"{'property violated':<20} {'first tick':>10} {'ticks':>6}  first message")
        for name, v in result.violations.items():
            first = "init" if v.first_tick < 0 else str(v.first_tick)
            lines.append(f"{name:<20} {first:>10} {v.ticks:>6}  {v.message}")
    return "\n".join(lines) + "\n"
