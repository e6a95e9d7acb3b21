"""The minimiser moved to :mod:`vmballoon.core.minimize` (shared by verify, fuzz and
check-c); this name stays for the callers in :mod:`vmballoon.proofs`."""

from vmballoon.core.minimize import minimize

__all__ = ["minimize"]
