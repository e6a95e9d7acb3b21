"""Replay a scenario through an implementation of the driver: the contract's event log.

``replay(scenario, impl="model", variant=SEED)`` returns the same JSON value that
``vmballoon replay`` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmballoon.apps.nogc import cyclic_gc_paused
from vmballoon.core.scenario import Scenario, load_scenario
from vmballoon.core.variants import SEED, Variant, parse_variant

IMPLS = ("model", "reference", "c")


def replay(
    scenario: Scenario | str | Path,
    impl: str = "model",
    variant: Variant | str = SEED,
    source: Path | None = None,
    include_dirs: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """The event log of ``scenario`` replayed by ``impl`` ("model", "reference" or "c").

    ``impl="c"`` compiles and runs the driver's C (:mod:`vmballoon.harness`): the
    variant's patched seed, or the file ``source`` (with the kernel headers of
    ``include_dirs`` besides the harness's).

    ``scenario`` is a :class:`Scenario` or the path of a scenario file; ``variant``
    a :class:`Variant` or its name (``seed``, ``fixed``, ``fixed-<fix>``, ``fix,fix``).
    Raises :class:`vmballoon.scenario.ScenarioError` for a malformed scenario and
    ``ValueError`` for an unknown implementation or variant.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    if isinstance(variant, str):
        variant = parse_variant(variant)
    if impl == "model":
        from vmballoon import model

        with cyclic_gc_paused():
            return model.replay(scenario, variant)
    if impl == "reference":
        from vmballoon import reference

        with cyclic_gc_paused():
            return reference.replay(scenario, variant)
    if impl == "c":
        from vmballoon.harness.replay import replay as replay_c

        return replay_c(scenario, variant, source, include_dirs=include_dirs)
    raise ValueError(f"unknown implementation {impl!r} (use model, reference or c)")
