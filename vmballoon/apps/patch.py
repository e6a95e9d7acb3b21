"""``vmballoon patch --variant V [-o FILE.c]``: the driver source of a variant.

The vendored seed (``spec/driver/vmw_balloon.c``) with the kernel patches of the
variant's fixes (``spec/fixes/<flag>.patch``) applied in the fixed order of
``FIX_NAMES``; ``--impl c --variant V`` compiles exactly this source.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vmballoon.apps.argtypes import output_file, variant_name


def cmd_patch(args: argparse.Namespace) -> int:
    """Write the patched source to ``-o`` (or stdout)."""
    from vmballoon.core.variants import parse_variant
    from vmballoon.harness.patches import PatchError, variant_source

    try:
        text = variant_source(parse_variant(args.variant))
    except PatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.write(text)
        return 0
    from vmballoon.apps.traceout import atomic_output

    out = Path(args.output)
    with atomic_output(out) as stream:
        stream.write(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def add_patch_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``vmballoon patch``."""
    p = sub.add_parser("patch", help="write the driver source of a variant (seed + fix patches)")
    p.add_argument(
        "--variant",
        type=variant_name,
        default="fixed",
        help="seed, fixed, upstream-stable, fixed-<fix> (all fixes but one) or fix,fix,... "
        "(default fixed)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=output_file,
        metavar="FILE.c",
        default=None,
        help="write the source to FILE.c (default: stdout); a folder, or a file in a folder "
        "that does not exist, is refused before anything is done",
    )
    p.set_defaults(func=cmd_patch)
