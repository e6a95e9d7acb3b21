"""The pipe between the checker and the driver's process: a caller that takes the
driver's replies late (check-c checks a step while the model runs the next) never
leaves both processes waiting to write."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from vmballoon.core.env import Env
from vmballoon.core.host import CooperativeHost
from vmballoon.core.protocol import CAP_BASIC, CAP_BATCHED
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import FIXED
from vmballoon.harness.process import CDriver
from vmballoon.harness.replay import binary_for


@contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail, not hang, when the block takes longer than ``seconds``."""

    def expired(signum: int, frame: FrameType | None) -> None:
        raise AssertionError(f"no progress within {seconds} s: parent and driver both wait")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_a_large_request_while_a_large_reply_is_not_taken_yet() -> None:
    """A work tick inflates thousands of pages (its reply is far more than a pipe holds)
    and is not collected; then a request larger than a pipe holds is posted (a script
    of 300,000 answers).  The driver is writing its reply while the parent writes the
    request: the parent reads the reply as it waits, and both finish."""
    scenario = Scenario(steps=(), frames=16384)
    host = CooperativeHost.create(0, 16384, ((0, 16000),), CAP_BASIC | CAP_BATCHED)  # 4 KiB pages
    env = Env.from_scenario(scenario)._replace(host=host)
    with _deadline(30), CDriver(binary_for(FIXED), env) as driver:
        for _ in range(8):  # each tick locks up to 2,048 pages: far more than a pipe holds
            driver.submit("work")
        driver.env = driver.env._replace(alloc_script=(True,) * 300_000)
        driver.submit("work")  # carries the long script: more than a pipe holds
        driver.collect_all()
        events = driver.events()
    allocations = [e for e in events if e["ev"] == "alloc"]
    assert len(allocations) > 8000, len(allocations)  # the replies outgrew the pipe
