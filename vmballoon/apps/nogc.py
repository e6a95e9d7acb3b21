"""Pause Python's cyclic garbage collector around long replays.

A replay builds millions of acyclic objects (persistent lists, events); the
cyclic collector would traverse all of them again and again, which makes a
1,000,000-page inflation several times slower.  Reference counting still
frees everything; nothing a replay builds is cyclic.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block, restoring its state after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
