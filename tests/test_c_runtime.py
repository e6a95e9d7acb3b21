"""The C in-process (harness.process): a forked child per module load, the environment as
callbacks, the driver's state observed at every environment call (apps.ctrace)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from vmballoon.apps.ctrace import NOT_OBSERVABLE, OBSERVABLE, check_c_trace
from vmballoon.core.env import events_since
from vmballoon.core.scenario import Scenario, load_scenario, scenario_from_json
from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.harness.build import build
from vmballoon.harness.patches import variant_source
from vmballoon.harness.process import Drawing, HarnessError
from vmballoon.harness.replay import binary_for, run
from vmballoon.model.machine import enter, run_to_idle
from vmballoon.model.machine import start as model_start
from vmballoon.model.properties import PROPERTY_NAMES, check_trace

FINDINGS = ROOT / "spec" / "findings"
SOURCE_LINES = (ROOT / "spec" / "driver" / "vmw_balloon.c").read_text().splitlines()
FIXED_TEXT = variant_source(FIXED)


def _batched(entries: list[int], target: int = 20, **extra: Any) -> Scenario:
    """One work tick of a batched host (no 2 MiB pages): START, GUEST_ID, GET_TARGET
    ``target``, then one BATCHED_LOCK of the whole target answered with ``entries``."""
    return scenario_from_json(
        {
            "format": "vmballoon-scenario/1",
            "frames": 4096,
            "steps": ["work"],
            "hv": [
                {"status": 0},
                {"status": 0x03000000, "result": 6},
                {"status": 0},
                {"status": 0, "result": target},
                {"status": 0, "result": target, "entries": entries},
            ],
            **extra,
        }
    )


def _planted(old: str, new: str) -> Path:
    """The FIXED source with ``old`` (found exactly once) replaced by ``new``, compiled."""
    assert FIXED_TEXT.count(old) == 1, old
    return build(FIXED_TEXT.replace(old, new), "planted.c")


def _props(binary: Path, scenario: Scenario) -> set[str]:
    return {v.prop for v in check_c_trace(binary, scenario, FIXED)}


def test_a_crash_names_the_line_of_the_driver() -> None:
    seed_null = run(load_scenario(ROOT / "tests" / "scenarios" / "null_ops.json"), SEED)
    assert seed_null.crash is not None and seed_null.crash.kind == "null_deref"
    assert seed_null.crash.function == "vmballoon_inflate"
    assert "b->ops->" in SOURCE_LINES[seed_null.crash.line - 1]
    assert seed_null.crash.site().startswith(f"vmw_balloon.c (seed):{seed_null.crash.line} ")
    corrupt = run(load_scenario(ROOT / "tests" / "scenarios" / "basic_2m_list_corrupt.json"))
    assert corrupt.crash is not None and corrupt.crash.kind == "list_corrupt"
    assert "list_add(" in SOURCE_LINES[corrupt.crash.line - 1]
    assert run(load_scenario(ROOT / "tests" / "scenarios" / "null_ops.json"), FIXED).crash is None


def test_a_child_that_dies_is_an_error_not_the_checkers_end() -> None:
    """A driver that kills its process (here abort()) ends the child, not the checker."""
    dying = _planted("\tSTATS_INC(b->stats.timer);", "\tSTATS_INC(b->stats.timer);\n\tabort();")
    scenario = scenario_from_json({"format": "vmballoon-scenario/1", "steps": ["work"]})
    with pytest.raises(HarnessError, match="SIGABRT"):
        run(scenario, binary=dying)
    assert run(scenario, FIXED).log["events"][0] == {"ev": "step", "name": "work"}


def test_only_the_locals_of_inflate_are_not_observable() -> None:
    assert NOT_OBSERVABLE == ("rate_counter",)
    assert set(OBSERVABLE) | set(NOT_OBSERVABLE) == set(PROPERTY_NAMES)


def test_the_refused_list_off_by_one_is_caught_inside_the_entry_point() -> None:
    """``<`` changed to ``<=`` in vmballoon_lock_batched_page: 17 refused pages are listed
    and released again before the tick returns; observed at the frees, refused_bounds."""
    old = "\t\t\tif (page_size->n_refused_pages\n\t\t\t\t\t< VMW_BALLOON_MAX_REFUSED) {"
    planted = _planted(old, old.replace("<", "<="))
    scenario = _batched([5] * 20)  # every entry PPN_PINNED
    assert check_trace(scenario, FIXED) == []
    assert _props(binary_for(FIXED), scenario) == set()
    [v] = check_c_trace(planted, scenario, FIXED)
    assert (v.prop, v.message) == ("refused_bounds", "n_refused[0] = 17 > 16")
    assert v.loc == "I_LOCK"  # inside vmballoon_inflate: the lists are empty at return


def test_accounting_broken_inside_a_lock_is_caught() -> None:
    listed = "\t\t\tlist_add(&p->lru, &page_size->pages);\n"
    planted = _planted(listed + "\t\t\tb->size += size_per_page;", listed + "\t\t\tb->size += 2;")
    scenario = _batched([0] * 20)
    assert check_trace(scenario, FIXED) == [] and _props(binary_for(FIXED), scenario) == set()
    assert "accounting" in _props(planted, scenario)


def test_rate_bounds_broken_by_a_halving_without_floor_is_caught() -> None:
    halving = "b->rate_alloc = max(b->rate_alloc / 2,\n\t\t\t\t\t\t    VMW_BALLOON_RATE_ALLOC_MIN);"
    planted = _planted(halving, "b->rate_alloc = b->rate_alloc / 8;")
    # the batch page, then a NOSLEEP and a CANSLEEP allocation fail: rate_alloc halves
    scenario = _batched([], alloc=[True, False, False])
    assert check_trace(scenario, FIXED) == [] and _props(binary_for(FIXED), scenario) == set()
    assert "rate_bounds" in _props(planted, scenario)


SEED_FINDINGS = sorted(p for p in OBSERVABLE if (FINDINGS / f"seed.{p}.scenario.json").is_file())


@pytest.mark.parametrize("prop", SEED_FINDINGS)
def test_each_seed_defect_shows_on_its_c_and_the_fixed_c_keeps_it(prop: str) -> None:
    """The seed is the fixed source with the defects planted back: on the model's shortest
    counterexample of each property, the seed's C shows it and the fixed C does not."""
    scenario = load_scenario(FINDINGS / f"seed.{prop}.scenario.json")
    assert prop in {v.prop for v in check_c_trace(binary_for(SEED), scenario, SEED)}
    assert prop not in {v.prop for v in check_c_trace(binary_for(FIXED), scenario, FIXED)}


def test_every_observable_property_has_a_planted_violation_here() -> None:
    """The seed's findings and the plants above cover every observable property."""
    planted_here = {"refused_bounds", "accounting", "rate_bounds"}
    assert set(OBSERVABLE) == set(SEED_FINDINGS) | planted_here


SCRIPT_OF_EVENT = {"hv": 0, "alloc": 1, "vmci_create": 2}


def _reads(scenario: Scenario, variant: Variant) -> list[list[int]]:
    """For each step, the scripts (0: hv, 1: alloc, 2: vmci) its answers are read from, in
    the order the model reads them."""
    state = model_start(scenario, variant)
    out = []
    for name in scenario.steps:
        nxt = run_to_idle(enter(state, name))
        events = events_since(nxt.env.log, state.env.log)
        out.append([SCRIPT_OF_EVENT[e["ev"]] for e in events if e["ev"] in SCRIPT_OF_EVENT])
        state = nxt
    return out


def _still(given: list[tuple[Any, ...]], scripts: tuple[tuple[Any, ...], ...]) -> Drawing:
    """The scripts with answers still to hand over."""
    more = [len(g) < len(s) for g, s in zip(given, scripts, strict=True)]
    return more[0], more[1], more[2]


FED: dict[str, tuple[Callable[[], Scenario], Variant]] = {
    "seed.host_agreement": (
        lambda: load_scenario(FINDINGS / "seed.host_agreement.scenario.json"),
        SEED,
    ),
    "seed.ownership": (lambda: load_scenario(FINDINGS / "seed.ownership.scenario.json"), SEED),
    # the host refuses every page of a batch: the driver frees them again, which only a
    # ghost that read the entries of the answer sees as no frame the host holds
    "batch refused": (lambda: _batched([5] * 20), FIXED),
}


@pytest.mark.parametrize("name", sorted(FED))
def test_a_driver_fed_its_answers_while_it_runs_does_what_it_does_given_them_all(
    name: str,
) -> None:
    """The fuzzers start the C on an entry point before its answers are drawn
    (``Follower.begin``) and hand them over one at a time (``feed``): the driver waits for
    each, so its log and the violations its trace checker reports are those of the
    replay given every answer up front, the host's answers to batched commands
    included (the ghost reads them from states observed before they were drawn)."""
    from vmballoon.apps.ctrace import CTraceChecker, c_trace
    from vmballoon.core.protocol import EVENTS_FORMAT
    from vmballoon.harness.replay import Follower

    make, variant = FED[name]
    sc = make()
    binary = binary_for(variant)
    violations, log = c_trace(binary, sc, variant)
    base = Scenario(
        steps=(), frames=sc.frames, pfn_base=sc.pfn_base, totalram_pages=sc.totalram_pages
    )
    follower = Follower(binary, base, trace=True)
    checker = CTraceChecker(follower.driver, variant)
    scripts = (sc.hv, sc.alloc, sc.vmci)
    given: list[tuple[Any, ...]] = [(), (), ()]
    for i, (step, reads) in enumerate(zip(sc.steps, _reads(sc, variant), strict=True)):
        now = dataclasses.replace(
            sc, steps=sc.steps[:i], hv=given[0], alloc=given[1], vmci=given[2]
        )
        follower.begin(now, step, _still(given, scripts))
        for k in reads:  # each answer when the model reads it, while more are to come
            if len(given[k]) < len(scripts[k]):
                given[k] = scripts[k][: len(given[k]) + 1]
                follower.feed((given[0], given[1], given[2]), _still(given, scripts))
        follower.feed((given[0], given[1], given[2]))
        follower.driver.collect_all()
    checker.after_step()
    fed = {
        "format": EVENTS_FORMAT,
        "events": follower.driver.events(),
        "final": follower.driver.state(),
    }
    follower.close()
    assert fed == log
    assert [(v.prop, v.step, v.message) for v in checker.violations] == [
        (v.prop, v.step, v.message) for v in violations
    ]
    assert bool(violations) == (variant == SEED), violations


def test_a_nosleep_failure_past_the_rate_ends_the_inflate_within_its_rate() -> None:
    """The guest runs out of frames after 4,095 NOSLEEP allocations (rate UINT_MAX):
    ``allocations >= b->rate_alloc`` (line 883 of the seed) ends the loop, the rate never
    drops to ``rate_alloc``.  The C trace checker lowered it at the failure and
    reported a false ``throttle`` (4,095 pages at rate 2,048); without that ``break`` the
    loop goes on sleeping at rate 2,048, which is a throttle violation."""
    scenario = load_scenario(ROOT / "tests" / "scenarios" / "nosleep_fail_past_rate.json")
    assert check_trace(scenario, FIXED) == []
    assert _props(binary_for(FIXED), scenario) == set()
    stop = "\t\t\tif (allocations >= b->rate_alloc)\n\t\t\t\tbreak;\n"
    assert "throttle" in _props(_planted(stop, ""), scenario)
