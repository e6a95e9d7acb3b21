"""The property predicates at their boundaries (vmballoon/model/properties.py).

The differential tests cannot see a change to a property (model and reference share
the checker); the verdicts file (tests/test_property_verdicts.py) sees it only where a
repository scenario reaches it.  Here each predicate is asked directly, on a state
reached by a real replay with the field under test set, one below, at and one above
its boundary, with the verdict the docstring of the predicate prescribes.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from vmballoon.core.protocol import CAP_BATCHED, CAP_BATCHED_2M
from vmballoon.core.scenario import scenario_from_json
from vmballoon.core.variants import FIXED, SEED
from vmballoon.model.machine import run_scenario
from vmballoon.model.plist import from_iterable
from vmballoon.model.properties import (
    Ghost,
    check_trace,
    host_agreement,
    progress,
    refused_bounds,
)
from vmballoon.model.state import Loc, State


def _idle() -> State:
    """FIXED after one work tick with a basic host (no reset pending, nothing ballooned)."""
    sc = scenario_from_json(
        {"format": "vmballoon-scenario/1", "frames": 64, "steps": ["work"], "hv": []}
    )
    state = run_scenario(sc, FIXED)
    assert not state.drv.reset_required
    return state


def _after_tick(size: int, target: int, tick_target: int, broken: bool = False) -> str | None:
    state = _idle()
    state = state._replace(drv=state.drv._replace(size=size, target=target))
    ghost = replace(
        Ghost(),
        tick_done=True,
        tick_target=tick_target,
        tick_broken=(("host_success", "x"),) if broken else (),
    )
    return progress(state, ghost)


@pytest.mark.parametrize(
    ("size", "target", "violated"),
    [
        (0, 0, False),
        (1, 0, True),
        (512, 0, True),
        (99, 100, True),
        (100, 100, False),
        (612, 100, False),
        (613, 100, True),
    ],
)
def test_progress_size_within_target_and_target_plus_512(
    size: int, target: int, violated: bool
) -> None:
    """``T <= size <= T + 512``, and ``size == 0`` when ``T == 0``."""
    assert (_after_tick(size, target, target) is not None) == violated


def test_progress_needs_the_target_the_host_gave_and_a_kept_environment() -> None:
    assert _after_tick(100, 101, 100) is not None  # b->target is not what GET_TARGET read
    assert _after_tick(5, 0, -1) is None  # no target read in the tick: nothing claimed
    assert _after_tick(5, 0, 0, broken=True) is None  # an assumption broken: nothing claimed


@pytest.mark.parametrize("held", [(), (1,), (1, 2, 3, 4)])
def test_host_agreement_names_three_frames_each_way(held: tuple[int, ...]) -> None:
    """The balloon holds nothing: every frame the host holds is 'held but not in the
    balloon', the first three of them named."""
    message = host_agreement(_idle(), replace(Ghost(), held=frozenset(held)))
    if not held:
        assert message is None
        return
    assert message is not None and message.endswith(f"{list(held[:3])}")


def test_target_from_host_holds_again_once_a_success_writes_the_target() -> None:
    """SEED writes the target of a failed BATCHED_LOCK (result 7, status 1): violated
    from that transition on, until the next GET_TARGET answered SUCCESS writes 7 again
    (lines 425-437), and from then on kept."""
    from tests.test_boundaries import batched_reset, ok, scenario

    hv = [*batched_reset(), ok(20), {"status": 1, "result": 7}, ok(7)] + [ok(7)] * 6
    sc = scenario(hv, ["work", "work", "work"])
    found = check_trace(sc, SEED, frozenset({"target_from_host"}), first_only=False)
    steps = [v.step for v in found]
    assert steps and steps == list(range(steps[0], steps[-1] + 1))
    assert found[-1].loc == "W_TARGET"  # the step before GET_TARGET's: it clears it
    again = check_trace(sc, SEED, frozenset({"target_from_host"}), first_only=True)
    assert [v.step for v in again] == [steps[0]]


def test_progress_claims_nothing_for_a_basic_deflate_of_a_frame_above_2_32() -> None:
    """Assumption ``basic_frames_below_2_32``: a tick whose basic deflate takes a frame above
    2**32 off its list (line 945) is outside what progress claims.  The guest straddles
    2**32; SEED balloons 2**32 - 2, 2**32 - 1 (LOCKed) and 2**32 (its LOCK never sent,
    lines 451-453), and at target 0 the deflate takes 2**32 first (newest first) and
    cannot unlock it: size stays 3, but the tick broke the assumption."""
    from tests.test_boundaries import ok, scenario

    hv = [ok(), ok(), ok(), ok(3), ok(3), ok(3), ok(0)] + [ok(0)] * 6
    sc = scenario(hv, ["work", "work"], pfn_base=2**32 - 2, frames=64)
    final = run_scenario(sc, SEED)
    assert final.drv.size == 3 and final.drv.target == 0
    assert check_trace(sc, SEED, frozenset({"progress"})) == []


@pytest.mark.parametrize("entries", [None, (4, 4, 4)])
def test_entries_of_a_batch_the_command_does_not_name_are_no_answer(
    entries: tuple[int, ...] | None,
) -> None:
    """SEED names b->page (NULL) instead of the batch page (lines 470, 518), so the host
    can write no entry: the entries of the scenario's answer are not the host's, and
    the assumption that every batch entry reads SUCCESS is not broken by them.  The
    cooperative host refuses the batch (ERROR_PPN_INVALID) and progress is violated,
    with or without entries in that answer."""
    from vmballoon.core.protocol import CAP_BATCHED, ERROR_PPN_INVALID, SUCCESS_WITH_CAPABILITIES
    from vmballoon.core.scenario import Response, Scenario

    hv = [Response(0, 0, None), Response(SUCCESS_WITH_CAPABILITIES, CAP_BATCHED, None)]
    hv += [Response(0, 0, None), Response(0, 3, None), Response(ERROR_PPN_INVALID, 3, entries)]
    sc = Scenario(
        steps=("work",),
        frames=4096,
        pfn_base=0,
        hv=tuple(hv),
        alloc=(),
        vmci=(),
        totalram_pages=None,
    )
    assert [v.prop for v in check_trace(sc, SEED, frozenset({"progress"}))] == ["progress"]


@pytest.mark.parametrize("idx", [0, 1])
@pytest.mark.parametrize(
    ("loc", "n", "listed", "violated"),
    [
        (Loc.I_LOOP, 16, 16, False),
        (Loc.I_LOOP, 17, 17, True),
        (Loc.I_LOOP, 3, 2, True),
        (Loc.IDLE, 0, 0, False),
        (Loc.IDLE, 1, 1, True),
        (Loc.CRASHED, 17, 17, False),
    ],
)
def test_refused_bounds_at_the_limit_of_16(
    loc: Loc, n: int, listed: int, violated: bool, idx: int
) -> None:
    """At most VMW_BALLOON_MAX_REFUSED (16) refused pages (lines 93, 614, 667), as many
    as the list holds, none between ticks; a crashed guest claims nothing.  The same for
    the 4 KiB list (``idx`` 0) and the 2 MiB one (``idx`` 1): each has its own bound."""
    state = _idle()
    pages = from_iterable([512 * k if idx else k for k in range(100, 100 + listed)])
    refused = (pages, None) if idx == 0 else (None, pages)
    counts = (n, 0) if idx == 0 else (0, n)
    drv = state.drv._replace(refused=refused, n_refused=counts)
    assert (refused_bounds(state._replace(loc=loc, drv=drv), Ghost()) is not None) == violated


@pytest.mark.parametrize(
    ("caps", "frames"), [(CAP_BATCHED, 1), (CAP_BATCHED | CAP_BATCHED_2M, 512)]
)
def test_a_page_in_flight_owns_its_frames(caps: int, frames: int) -> None:
    """A page the inflation has allocated and not yet locked (the batch in flight) owns
    one frame, or the 512 of a 2 MiB page: the same span as on a balloon list, so the
    same page also on the 4 KiB list is a frame with two owners."""
    from tests.test_boundaries import batched_reset, ok, scenario
    from vmballoon.model.machine import enter, start, step
    from vmballoon.model.properties import owners, ownership

    sc = scenario([*batched_reset(caps), ok(5000)] + [ok(5000)] * 4, ["work"])
    state = enter(start(sc, FIXED), "work")
    while not (state.loc == Loc.I_LOOP and state.loop.num_pages >= 2):
        state = step(state)
    batch = [c for c in owners(state) if c[0] == "batch"]
    assert len(batch) == 2 and {n for _, _, n in batch} == {frames}
    assert ownership(state, Ghost()) is None
    pfn = batch[0][1]
    twice = state.drv._replace(pages=((pfn, state.drv.pages[0]), state.drv.pages[1]))
    assert "two owners" in str(ownership(state._replace(drv=twice), Ghost()))


def _ballooned(caps: int) -> State:
    """FIXED after one work tick inflating to 2048 pages with host capabilities ``caps``
    (4 KiB pages with BATCHED, 2 MiB ones with BATCHED_2M too)."""
    from tests.test_boundaries import batched_reset, ok, scenario

    return run_scenario(scenario([*batched_reset(caps), ok(2048), ok(2048)], ["work"]), FIXED)


@pytest.mark.parametrize(
    ("caps", "frames"), [(CAP_BATCHED, 1), (CAP_BATCHED | CAP_BATCHED_2M, 512)]
)
def test_a_refused_page_owns_its_frames(caps: int, frames: int) -> None:
    """A page on a refused list (lines 614, 667) owns one frame, or the 512 of a 2 MiB
    page, as on a balloon list: a ballooned page also put on the refused list is a frame
    with two owners."""
    from vmballoon.model.plist import to_list
    from vmballoon.model.properties import owners, ownership

    idx = 1 if frames > 1 else 0
    state = _ballooned(caps)
    pfn = to_list(state.drv.pages[idx])[0]
    one = from_iterable([pfn])
    refused = (one, None) if idx == 0 else (None, one)
    counts = (1, 0) if idx == 0 else (0, 1)
    both = state._replace(drv=state.drv._replace(refused=refused, n_refused=counts))
    claims = [c for c in owners(both) if c[0].startswith("refused")]
    assert claims == [(("refused4k", "refused2m")[idx], pfn, frames)]
    assert ownership(state, Ghost()) is None
    assert f"frame {pfn} (refused" in str(ownership(both, Ghost()))


@pytest.mark.parametrize(
    ("caps", "per_page"), [(CAP_BATCHED, 1), (CAP_BATCHED | CAP_BATCHED_2M, 512)]
)
@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_accounting_counts_every_page_held(caps: int, per_page: int, delta: int) -> None:
    """``b->size`` (line 281) is the pages held: 4 KiB pages count 1, 2 MiB pages 512; one
    more or one less is a violation, which a crashed guest no longer reports."""
    from vmballoon.model.plist import to_list
    from vmballoon.model.properties import accounting

    state = _ballooned(caps)
    held = sum(len(to_list(state.drv.pages[k])) * (1, 512)[k] for k in (0, 1))
    assert held > 0 and len(to_list(state.drv.pages[1 if per_page > 1 else 0])) > 0
    off = state._replace(drv=state.drv._replace(size=held + delta))
    assert (accounting(off, Ghost()) is not None) == (delta != 0)
    assert accounting(off._replace(loc=Loc.CRASHED), Ghost()) is None


def test_a_ghost_keeps_the_frames_it_held_when_later_steps_change_them() -> None:
    """The ghost is a value: each step's ``held`` is an immutable set of its own (a
    FrameSet, vmballoon/model/frameset.py), which a later lock or unlock does not change;
    a checker may keep an earlier ghost (a trace's first violation, a rollback)."""
    from pathlib import Path

    from vmballoon.core.scenario import load_scenario
    from vmballoon.model.frameset import FrameSet
    from vmballoon.model.machine import start, trace
    from vmballoon.model.properties import initial_ghost, observe

    path = Path(__file__).parent / "scenarios" / "reset_mid_inflation.json"
    scenario = load_scenario(path)
    state = start(scenario, FIXED)
    ghost = initial_ghost()
    kept: list[tuple[FrameSet, frozenset[int]]] = []
    for t in trace(state, scenario.steps):
        ghost, _ = observe(t.prev, t.state, ghost)
        assert isinstance(ghost.held, FrameSet)
        kept.append((ghost.held, frozenset(set(ghost.held))))
    assert len({held for held, _ in kept}) > 10  # locks and unlocks change what it holds
    assert all(held == copy for held, copy in kept)
