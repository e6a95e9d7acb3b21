"""Argument types of the subcommands (they live in :mod:`vmballoon.core.argtypes`, below
``verify``, which is part of the proofs reading)."""

from vmballoon.core.argtypes import (
    nonnegative_int,
    output_dir,
    output_file,
    positive_float,
    positive_int,
    variant_name,
)

__all__ = [
    "nonnegative_int",
    "output_dir",
    "output_file",
    "positive_float",
    "positive_int",
    "variant_name",
]
