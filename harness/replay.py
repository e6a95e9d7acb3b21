"""Replay a scenario through the compiled driver: the contract's event log.

``replay(scenario, variant)`` compiles the driver source of ``variant`` (the
vendored seed with the variant's patches of ``spec/fixes`` applied) or a given
``source`` file, runs module init and the scenario's steps, and returns the same
JSON value as the model and the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmballoon.core.env import Env
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import SEED, Variant
from vmballoon.harness.build import build
from vmballoon.harness.patches import variant_source
from vmballoon.harness.process import DEFAULT_TIMEOUT, CDriver

EVENTS_FORMAT = "vmballoon-events/1"


def binary_for(variant: Variant = SEED, source: Path | None = None) -> Path:
    """The compiled harness for ``source`` (a file), else for ``variant``'s patched seed."""
    if source is not None:
        return build(source.read_text(encoding="utf-8", errors="replace"), source.name)
    return build(variant_source(variant), f"vmw_balloon.c ({variant.name})")


def start(binary: Path, scenario: Scenario, timeout: float = DEFAULT_TIMEOUT,
          with_batch: bool | None = None, env: Env | None = None) -> CDriver:  # fmt: skip
    """Module init of the compiled driver in the environment of ``scenario``."""
    return CDriver(binary, env or Env.from_scenario(scenario), timeout, with_batch)


def replay(
    scenario: Scenario,
    variant: Variant = SEED,
    source: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """The event log (``vmballoon-events/1``) of ``scenario`` replayed by the compiled C."""
    with start(binary_for(variant, source), scenario, timeout) as drv:
        for name in scenario.steps:
            if drv.exited or drv.crashed:
                break
            drv.step(name)
        final = drv.state()
        return {"format": EVENTS_FORMAT, "events": drv.events(), "final": final}
