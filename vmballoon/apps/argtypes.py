"""Argument types shared by the subcommands: each raises ``argparse.ArgumentTypeError``.

argparse turns the error into the one-line message the CLI prints.
"""

from __future__ import annotations

import argparse

from vmballoon.core.variants import parse_variant


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
