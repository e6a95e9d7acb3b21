"""The verdict of one row of ``vmballoon verify``: an enum, never a word found in a message.

The values are the strings of ``verify --json`` (schema ``vmballoon-verify/1``, docs/verify.md):
a :class:`Status` is a ``str``, so it is written to JSON as its value.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """What one obligation concluded."""

    PROVED = "proved"
    """Inductive (Houdini, the progress induction) or every vacuity check passed."""
    VIOLATED = "violated"
    """A counterexample the replay through the model (and the reference) confirms."""
    UNCONFIRMED = "unconfirmed"
    """The solver answered, the replay does not show it (or the replay failed)."""
    NO_CEX = "no-cex"
    """No counterexample up to the depth searched: bounded, not proved."""
    UNKNOWN = "unknown"
    """The solver gave up (timeout, budget): nothing is claimed."""
    FAILED = "failed"
    """A proof obligation that does not hold (a property Houdini drops on FIXED)."""
    ERROR = "error"
    """The obligation crashed: its exception is the row's detail."""
    NONE = "none"
    """A per-defect search found no scenario up to its depth."""
    PASSED = "passed"
    """The conformance of the encoding with the model holds."""

    @property
    def open(self) -> bool:
        """Not a verdict: the check did not conclude (unknown, error, unconfirmed)."""
        return self in (Status.UNKNOWN, Status.ERROR, Status.UNCONFIRMED)


__all__ = ["Status"]
