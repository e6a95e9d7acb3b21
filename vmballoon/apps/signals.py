"""SIGTERM handled as Ctrl-C, so that a long command stops the same way for both.

``with terminate_as_interrupt(): ...`` makes SIGTERM raise :class:`KeyboardInterrupt`
in the main thread while the block runs (the previous handler is restored after),
so the command's own ``except KeyboardInterrupt`` marks its partial output and
exits 130 with one line, whichever of the two signals stopped it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_INTERRUPTED = 130
"""Exit status of a command stopped by SIGINT or SIGTERM (128 + SIGINT)."""


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
