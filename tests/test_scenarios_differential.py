"""Every scenario in tests/scenarios/ and spec/examples/ replays identically through both
implementations, on SEED, on FIXED and on FIXED minus each single fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, SCENARIOS
from vmballoon.apps.fuzz import describe_difference
from vmballoon.apps.replay import replay
from vmballoon.core.env import Env
from vmballoon.core.host import CooperativeHost
from vmballoon.core.protocol import CAP_BASIC, CAP_BATCHED, CAP_BATCHED_2M
from vmballoon.core.scenario import Scenario, load_scenario
from vmballoon.core.variants import FIX_NAMES, parse_variant
from vmballoon.model.machine import enter, event_log, run_to_idle, start
from vmballoon.reference.driver import vmballoon_init
from vmballoon.reference.replay import final_state, run_step

CASES = sorted(SCENARIOS.glob("*.json")) + sorted((ROOT / "spec" / "examples").glob("*.json"))
VARIANTS = ["seed", "fixed", *(f"fixed-{name}" for name in FIX_NAMES)]
LARGE_FRAMES = 1 << 20
"""Large guests run on SEED and FIXED only, to keep CI short."""


def test_there_are_scenarios() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
@pytest.mark.parametrize("variant", VARIANTS)
def test_model_and_reference_agree(path: Path, variant: str) -> None:
    scenario = load_scenario(path)
    if scenario.frames > LARGE_FRAMES and variant not in ("seed", "fixed"):
        pytest.skip("large guest: SEED and FIXED only")
    expected = replay(scenario, impl="model", variant=variant)
    got = replay(scenario, impl="reference", variant=variant)
    assert got == expected, describe_difference(scenario, expected, got)


def _host(env: Env) -> CooperativeHost:
    assert env.host is not None
    return env.host


@pytest.mark.parametrize("caps", [CAP_BASIC, CAP_BATCHED, CAP_BATCHED | CAP_BATCHED_2M])
@pytest.mark.parametrize("variant", ["seed", "fixed"])
def test_model_and_reference_agree_with_the_cooperative_host(caps: int, variant: str) -> None:
    """The cooperative host of ``vmballoon simulate`` (vmballoon/core/host.py) reads the
    batch the driver shows it and answers from it, where a scripted host answers from its
    script: both readings meet it for eight ticks (inflate to 3000, deflate to 100, to 0)."""
    frames, ticks = 8192, 8
    schedule = ((0, 3000), (3, 100), (6, 0))
    host = CooperativeHost.create(0, frames, schedule, caps | CAP_BASIC)
    sc = Scenario(steps=(), frames=frames)
    v = parse_variant(variant)
    state = start(sc, v)
    state = state._replace(env=state.env._replace(host=host))
    b = vmballoon_init(Env.from_scenario(sc)._replace(host=host), v)
    for tick in range(ticks):
        state = state._replace(env=state.env._replace(host=_host(state.env).at_tick(tick)))
        state = run_to_idle(enter(state, "work"))
        b.kernel.env = b.kernel.env._replace(host=_host(b.kernel.env).at_tick(tick))
        run_step(b, "work")
    expected = event_log(state)
    got = {
        "format": expected["format"],
        "events": b.kernel.env.events(),
        "final": final_state(b, False),
    }
    assert got == expected, describe_difference(sc, expected, got)
    assert state.drv.size == 0 or variant == "seed"
