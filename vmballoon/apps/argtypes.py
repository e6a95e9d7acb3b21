"""Argument types shared by the subcommands: each raises ``argparse.ArgumentTypeError``.

argparse turns the error into the one-line message the CLI prints.
"""

from __future__ import annotations

import argparse

from vmballoon.core.variants import parse_variant


class UsageError(Exception):
    """A mistake in the command line or its inputs; the message is one line (exit 2)."""


def variant_name(text: str) -> str:
    """A variant: ``seed``, ``fixed``, ``fixed-<fix>`` or ``fix,fix,...``."""
    try:
        parse_variant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def positive_int(text: str) -> int:
    """An integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def output_dir(text: str) -> str:
    """A directory that exists and is writable, or that can be created.

    The check finds an ``--out`` that names a file or an unwritable place before
    any work is done; it creates nothing that stays (it probes the nearest existing
    directory with a temporary file, which root's permission bits would not show).
    """
    import tempfile
    from pathlib import Path

    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a directory")
    probe = path.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: cannot be created ({probe} is not a directory)")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".vmballoon-probe-"):
            pass
    except OSError as exc:
        where = (
            "directory is not writable"
            if probe == path.absolute()
            else (f"cannot be created in {probe}")
        )
        raise argparse.ArgumentTypeError(f"{text}: {where} ({exc.strerror})") from None
    return text


def step_range(text: str) -> tuple[int, int | None]:
    """``A:B`` (transitions A to B-1), ``A:`` (from A), ``:B`` (before B) or ``A`` (only A)."""
    first, sep, stop = text.partition(":")
    try:
        lo = int(first) if first.strip() else 0
        hi = (int(stop) if stop.strip() else None) if sep else lo + 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A:B, A: or :B, got {text!r}") from None
    if lo < 0 or (hi is not None and hi < lo):
        raise argparse.ArgumentTypeError(f"expected 0 <= A <= B, got {text!r}")
    return lo, hi


def output_file(text: str) -> str:
    """A file to write: not a directory, in a directory that exists and is writable.

    Checked before any work (``patch -o``, ``replay -o``, ``simulate --plot``): a
    folder, a missing parent folder or an unwritable place is one line, never a
    traceback after the work is done.  Nothing that stays is created (the parent is
    probed with a temporary file, which root's permission bits would not show).
    """
    import tempfile
    from pathlib import Path

    path = Path(text)
    if not text or text.endswith(("/", "\\")) or path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a directory, expected a file name")
    parent = path.absolute().parent
    if not parent.exists():
        raise argparse.ArgumentTypeError(f"{text}: folder {path.parent} does not exist")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {path.parent} is not a directory")
    if path.exists() and not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a regular file")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".vmballoon-probe-"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"{text}: folder {path.parent} is not writable ({exc.strerror})"
        ) from None
    return text
