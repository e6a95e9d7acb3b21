"""C-faithful reference implementation of ``vmw_balloon.c``: the C transliterated.

Written independently of ``vmballoon/model/``: it shares only the protocol constants,
the environment, the scenario format and the fix flags with it, so that a
misreading of the C in one is caught by the other.
"""

from __future__ import annotations

from vmballoon.core.protocol import EVENTS_FORMAT
from vmballoon.reference.replay import replay

__all__ = ["EVENTS_FORMAT", "replay"]
