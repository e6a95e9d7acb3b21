"""Replay a scenario through the compiled driver: the contract's event log.

``replay(scenario, variant)`` compiles the driver source of ``variant`` (the
vendored seed with the variant's patches of ``spec/fixes`` applied) or a given
``source`` file, runs module init and the scenario's steps, and returns the same
JSON value as the model and the reference.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from vmballoon.core.env import Env
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import SEED, Variant
from vmballoon.harness.build import build
from vmballoon.harness.patches import variant_source
from vmballoon.harness.process import DEFAULT_TIMEOUT, CDriver

EVENTS_FORMAT = "vmballoon-events/1"


def binary_for(variant: Variant = SEED, source: Path | None = None,
               include_dirs: tuple[Path, ...] = ()) -> Path:  # fmt: skip
    """The compiled harness for ``source`` (a file, with the kernel headers of
    ``include_dirs`` besides the harness's), else for ``variant``'s patched seed."""
    if source is not None:
        return build(source.read_text(encoding="utf-8", errors="replace"), source.name,
                     include_dirs=include_dirs)  # fmt: skip
    return _variant_binary(variant)


@cache
def _variant_binary(variant: Variant) -> Path:
    return build(variant_source(variant), f"vmw_balloon.c ({variant.name})")


def start(binary: Path, scenario: Scenario, timeout: float = DEFAULT_TIMEOUT,
          trace: bool = False, env: Env | None = None) -> CDriver:  # fmt: skip
    """Module init of the compiled driver in the environment of ``scenario``."""
    return CDriver(binary, env or Env.from_scenario(scenario), timeout, trace=trace)


def replay(
    scenario: Scenario,
    variant: Variant = SEED,
    source: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    binary: Path | None = None,
    include_dirs: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """The event log (``vmballoon-events/1``) of ``scenario`` replayed by the compiled C
    (``binary`` when given, else the build of ``source`` or of ``variant``)."""
    with start(binary or binary_for(variant, source, include_dirs), scenario, timeout) as drv:
        for name in scenario.steps:
            if drv.exited or drv.crashed:
                break
            drv.step(name)
        final = drv.state()
        return {"format": EVENTS_FORMAT, "events": drv.events(), "final": final}


class Follower:
    """The compiled driver following a scenario that grows while it runs (the fuzzer's).

    Each :meth:`step` first takes the scenario's scripts as they are now (they only
    ever grow at the end, so what was consumed stays the same), then runs the step.
    """

    def __init__(self, binary: Path, scenario: Scenario, timeout: float = DEFAULT_TIMEOUT,
                 trace: bool = False) -> None:  # fmt: skip
        self.driver = start(binary, scenario, timeout, trace)

    def step(self, scenario: Scenario, name: str) -> None:
        """Run entry point ``name`` with the answers ``scenario`` holds now."""
        drv = self.driver
        drv.env = drv.env._replace(hv_script=scenario.hv, alloc_script=scenario.alloc,
                                   vmci_script=scenario.vmci)  # fmt: skip
        drv.step(name)

    def log(self) -> dict[str, Any]:
        """The event log so far, with the driver's state now as ``final``."""
        return {"format": EVENTS_FORMAT, "events": self.driver.events(),
                "final": self.driver.state()}  # fmt: skip

    def close(self) -> None:
        """Stop the process."""
        self.driver.close()
