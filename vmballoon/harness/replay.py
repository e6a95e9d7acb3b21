"""Replay a scenario through the compiled driver: the contract's event log.

``replay(scenario, variant)`` compiles the driver source of ``variant`` (the
vendored seed with the variant's patches of ``spec/fixes`` applied) or a given
``source`` file into the harness library, runs module init and the scenario's steps
in a forked child (:class:`vmballoon.harness.process.CDriver`), and returns the
same JSON value as the model and the reference.  :func:`run` also says where the
C crashed, if it did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ParamSpec

from vmballoon.core.env import Env
from vmballoon.core.protocol import EVENTS_FORMAT
from vmballoon.core.scenario import Response, Scenario
from vmballoon.core.variants import SEED, Variant
from vmballoon.harness.build import build
from vmballoon.harness.patches import variant_source
from vmballoon.harness.process import (
    DEFAULT_TIMEOUT,
    DRAWING,
    NOT_DRAWING,
    CDriver,
    Crash,
    Drawing,
)

P = ParamSpec("P")


def binary_for(
    variant: Variant = SEED,
    source: Path | None = None,
    coverage: bool = False,
    include_dirs: tuple[Path, ...] = (),
) -> Path:
    """The harness library for ``source`` (a file, with the kernel headers of
    ``include_dirs`` besides the harness's), else for ``variant``'s patched seed;
    ``coverage``: the build with gcov counters (:mod:`vmballoon.harness.coverage`)."""
    if source is not None:
        text = source.read_text(encoding="utf-8", errors="replace")
        return build(text, source.name, coverage=coverage, include_dirs=include_dirs)
    return _variant_binary(variant, coverage)


@cache
def _variant_binary(variant: Variant, coverage: bool = False) -> Path:
    return build(variant_source(variant), f"vmw_balloon.c ({variant.name})", coverage=coverage)


def start(
    binary: Path,
    scenario: Scenario,
    timeout: float = DEFAULT_TIMEOUT,
    trace: bool = False,
    env: Env | None = None,
    wait: bool = True,
) -> CDriver:
    """Module init of the compiled driver in the environment of ``scenario`` (``wait=False``:
    return while it runs, see :class:`CDriver`)."""
    return CDriver(binary, env or Env.from_scenario(scenario), timeout, trace=trace, wait=wait)


@dataclass(frozen=True)
class CRun:
    """A scenario replayed by the C: its event log, and where it crashed (None: it did not)."""

    log: dict[str, Any]
    crash: Crash | None


def run(
    scenario: Scenario,
    variant: Variant = SEED,
    source: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    binary: Path | None = None,
    include_dirs: tuple[Path, ...] = (),
) -> CRun:
    """``scenario`` replayed by the compiled C (``binary`` when given, else the build of
    ``source`` (with the kernel headers of ``include_dirs``) or of ``variant``): its event
    log (``vmballoon-events/1``) and the C line of a crash."""
    built = binary or binary_for(variant, source, include_dirs=include_dirs)
    with start(built, scenario, timeout) as drv:
        drv.run(scenario.steps)
        final = drv.state()
        log = {"format": EVENTS_FORMAT, "events": drv.events(), "final": final}
        return CRun(log, drv.crash)


def _log_of(fn: Callable[P, CRun]) -> Callable[P, dict[str, Any]]:
    """``fn`` with the same parameters, returning only the event log."""

    def replay(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        return fn(*args, **kwargs).log

    return replay


replay = _log_of(run)
replay.__doc__ = """The event log (``vmballoon-events/1``) of :func:`run`: the same JSON value
as the model's and the reference's replay."""


class Follower:
    """The compiled driver following a scenario that grows while it runs (the fuzzer's).

    Each :meth:`step` first takes the scenario's scripts as they are now (they only
    ever grow at the end, so what was consumed stays the same), then runs the step.
    """

    def __init__(
        self,
        binary: Path,
        scenario: Scenario,
        timeout: float = DEFAULT_TIMEOUT,
        trace: bool = False,
        wait: bool = True,
    ) -> None:
        self.driver = start(binary, scenario, timeout, trace, wait=wait)

    def begin(self, scenario: Scenario, name: str, drawing: Drawing = DRAWING) -> None:
        """Start entry point ``name`` with the answers ``scenario`` holds now and return
        while the driver runs, the scripts of ``drawing`` still being drawn: the driver
        waits for their answers (:meth:`feed`) where it has none (:meth:`CDriver.submit`;
        ``driver.collect_all`` ends the drawing and takes the reply)."""
        self._scripts(scenario.hv, scenario.alloc, scenario.vmci)
        self.driver.submit(name, drawing=drawing)

    def feed(
        self,
        scripts: tuple[tuple[Response, ...], tuple[bool, ...], tuple[bool, ...]],
        drawing: Drawing = NOT_DRAWING,
    ) -> None:
        """The scripts (hv, alloc, vmci) as drawn so far, for the running entry point;
        those still being drawn after them (none: past them the defaults)."""
        self._scripts(*scripts)
        self.driver.feed(drawing)

    def _scripts(
        self, hv: tuple[Response, ...], alloc: tuple[bool, ...], vmci: tuple[bool, ...]
    ) -> None:
        drv = self.driver
        drv.env = drv.env._replace(hv_script=hv, alloc_script=alloc, vmci_script=vmci)

    def log(self) -> dict[str, Any]:
        """The event log so far, with the driver's state now as ``final``."""
        return {
            "format": EVENTS_FORMAT,
            "events": self.driver.events(),
            "final": self.driver.state(),
        }

    def close(self) -> None:
        """Stop the child process."""
        self.driver.close()
