"""The trace monitor (:class:`vmballoon.model.properties.Monitor`) and its claims index.

The monitor decides ``ownership`` and ``accounting`` from an index it updates with what
each transition changed; these tests hold it to the whole-state predicates it replaces
(:func:`check_state` after every transition) and check that a step's cost does not
grow with the balloon.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.test_allocation_view import runs_of
from vmballoon.core.env import Memory
from vmballoon.core.scenario import Scenario, load_scenario
from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.model import properties
from vmballoon.model.claims import Claims, _newly_free, diff
from vmballoon.model.machine import balloon_pages, start, trace
from vmballoon.model.plist import from_iterable
from vmballoon.model.properties import (
    PROPERTY_NAMES,
    Ghost,
    Monitor,
    Verdict,
    Violation,
    check_state,
    check_trace,
    initial_ghost,
    monitor_trace,
    observe,
    owners,
)
from vmballoon.model.state import RESTING, Loc, State

HERE = Path(__file__).parent
SCENARIOS = sorted(
    p
    for p in [*HERE.glob("scenarios/*.json"), *HERE.glob("golden/*.scenario.json")]
    if "guest64g" not in p.name
)
BIG = HERE / "scenarios" / "guest64g_2m_to_48g_and_back.json"


def naive_trace(scenario: Scenario, variant: Variant, first_only: bool) -> list[Violation]:
    """Every property re-evaluated on the whole state after every transition."""
    state = start(scenario, variant)
    ghost = initial_ghost()
    out: list[Violation] = []
    seen: set[str] = set()

    def record(found: list[tuple[str, str]], index: int, loc: str) -> None:
        here: set[str] = set()
        for name, msg in found:
            if name in here or (first_only and name in seen):
                continue
            here.add(name)
            seen.add(name)
            out.append(Violation(name, index, loc, msg))

    record(check_state(state, ghost), 0, state.loc.name)
    for t in trace(state, scenario.steps):
        ghost, found = observe(t.prev, t.state, ghost)
        record(found + check_state(t.state, ghost), t.index, t.state.loc.name)
    return out


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_monitor_reports_what_the_whole_state_predicates_report(path: Path) -> None:
    scenario = load_scenario(str(path))
    for variant in (SEED, FIXED):
        for first_only in (True, False):
            expected = naive_trace(scenario, variant, first_only)
            assert check_trace(scenario, variant, first_only=first_only) == expected


def _multiset(claims: Claims) -> Counter[tuple[int, int]]:
    out: Counter[tuple[int, int]] = Counter()
    for frames, index in ((1, claims.singles), (512, claims.blocks)):
        for bucket in index.values():
            for pfn, k in bucket.items():
                out[(pfn, frames)] += k
    return out


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_claims_follow_owners_transition_by_transition(path: Path) -> None:
    scenario = load_scenario(str(path))
    state = start(scenario, SEED)
    claims = Claims(state)
    for t in trace(state, scenario.steps):
        claims.update(t.state)
        listed = owners(t.state)
        assert _multiset(claims) == Counter((pfn, frames) for _, pfn, frames in listed)
        p4, p2 = balloon_pages(t.state)
        assert claims.balloon_lengths() == (len(p4), len(p2))
        whole = properties.owned_once_and_allocated(listed, t.state.env.memory)
        assert claims.owned_once_and_allocated() == whole, t.index


def test_claims_of_states_the_scenarios_do_not_reach() -> None:
    """``Claims.update`` takes any state.  Each state of a batched run, and the same state
    with a fill list holding more entries than ``num_pages`` (one written after them) and
    with a 4 KiB page put back at the head of the list: the batch is the fill list's
    first ``num_pages`` entries, as ``owners`` reads it, the pages put back are on the
    balloon, and the claims go back with the state."""
    from vmballoon.core.protocol import PAGE_SHIFT
    from vmballoon.model.state import LOOP_LOCS, OPS_BATCHED

    scenario = load_scenario(str(HERE / "scenarios" / "batched_statuses.json"))
    state = start(scenario, SEED)
    claims = Claims(state)
    checked = 0
    for t in trace(state, scenario.steps):
        s = t.state
        longer = s._replace(loop=s.loop._replace(fill=(7 << PAGE_SHIFT, s.loop.fill)))
        put_back = s._replace(loop=s.loop._replace(readded=(9, s.loop.readded)))
        for st_ in (s, longer, s, put_back):
            claims.update(st_)
            listed = Counter((pfn, frames) for _, pfn, frames in owners(st_))
            assert _multiset(claims) == listed, (t.index, st_.loc)
            p4, p2 = balloon_pages(st_)
            assert claims.balloon_lengths() == (len(p4), len(p2)), (t.index, st_.loc)
        checked += s.loc in LOOP_LOCS and s.drv.ops == OPS_BATCHED and s.loop.num_pages > 0
    assert checked


def test_claims_count_overlaps_and_free_frames() -> None:
    """Two owners of a frame, and a claim on a free frame, are seen and then forgotten."""
    scenario = load_scenario(str(HERE / "scenarios" / "batched_statuses.json"))
    state = start(scenario, SEED)
    claims = Claims(state)
    claims._add(5, 1)
    claims._add(4, 512)  # covers frame 5
    assert claims.pairs == 1 and not claims.owned_once_and_allocated()
    claims._remove(5, 1)
    assert claims.pairs == 0
    assert claims.unallocated  # frame 4 is free in the initial memory
    claims._remove(4, 512)
    assert claims.owned_once_and_allocated()


_FREED_THEN_ALLOCATED = (
    ((0, 513),),
    ((0, 2049),),
    ((0, 16 * 512),),
    ((0, 5), (8, 16 * 512)),
    ((0, 5), (8, 513), (2048, 16 * 512)),
    ((2048, 16 * 512),),
    (),
)
"""The allocator's free runs, one after the other: frames freed in three runs, then
allocated again (3 frames, 1535, 510 and 5, the rest)."""

_CLAIM = st.tuples(
    st.one_of(st.integers(0, 4 * 512), st.integers(0, 4).map(lambda b: 512 * b)),
    st.sampled_from([1, 512]),
)


@settings(max_examples=300, derandomize=True)
@given(st.lists(st.tuples(st.booleans(), _CLAIM), max_size=40))
# a block whose last frame opens the next bucket, claimed after a frame there
@example([(True, (512, 1)), (True, (1, 512))])
# a block ending one bucket on, and a frame it covers claimed after it
@example([(True, (511, 512)), (True, (1022, 1))])
# a frame just past a block, in the block's last bucket, claimed before it
@example([(True, (513, 1)), (True, (1, 512))])
# claims in the first and the last bucket of a freed run that spans more buckets than hold
# claims, the run starting past a bucket's first frame and ending just past another's
@example([(True, (600, 1)), (True, (2048, 1))])
# frames 5-7 allocated again one by one (fewer than the claims on free frames), then
# 513-2047 at once, with claims on its first frame and on the free frame just past it
@example([(True, (5, 1)), (True, (7, 1)), (True, (4, 1)), (True, (513, 1)), (True, (2048, 1))])
def test_claims_count_every_overlapping_pair(edits: list[tuple[bool, tuple[int, int]]]) -> None:
    """Claims of one frame or of 512 (aligned or not, in any of five buckets) added and
    taken away in any order: ``pairs`` is the number of pairs of claims that share a
    frame, whichever of the two came first; as the frames are freed in three runs (the
    middle one from frame 513 to frame 2048, the last one to the end), then allocated
    again in runs of 3 frames and more, and in another guest's memory, the claims on
    unallocated frames are exactly those held whose first frame is free (none left
    behind by a removed claim or by an allocation, none missed in a run's first or last
    bucket)."""
    state = start(load_scenario(str(HERE / "scenarios" / "null_ops.json")), SEED)
    frames_out = Memory(0, 16 * 512, (), (), ())  # every frame allocated
    claims = Claims(state._replace(env=state.env._replace(memory=frames_out)))
    held: list[tuple[int, int]] = []
    for add, (pfn, frames) in edits:
        if add:
            claims._add(pfn, frames)
            held.append((pfn, frames))
        elif (pfn, frames) in held:
            claims._remove(pfn, frames)
            held.remove((pfn, frames))
        pairs = sum(
            1 for i, (a, n) in enumerate(held) for b, m in held[i + 1 :] if a < b + m and b < a + n
        )
        assert claims.pairs == pairs, held
    # then another guest's memory (its end moved): every claim looked at again
    other_guest = [Memory(0, 17 * 512, free, (), ()) for free in (((512, 2049),), ())]
    for memory in [frames_out._replace(free=f) for f in _FREED_THEN_ALLOCATED] + other_guest:
        claims._set_memory(memory)
        on_free = Counter(pfn for pfn, _ in held if any(s <= pfn < e for s, e in memory.free))
        assert claims.unallocated == on_free, (memory, held)


@settings(max_examples=500, derandomize=True)
@given(st.sets(st.integers(0, 40)), st.sets(st.integers(0, 40), max_size=6))
# a run grown at both ends, and one split by an allocation
@example({3, 4, 5, 10, 11}, {2, 6, 10})
# runs shared before and after the one that changed
@example({0, 1, 5, 6, 20, 21}, {7, 8})
def test_newly_free_runs_are_the_frames_freed(free: set[int], flips: set[int]) -> None:
    """The allocator's free runs before and after some frames were allocated or freed:
    ``_newly_free`` gives exactly the frames free after and not before, each once."""
    after = free ^ flips
    freed = _newly_free(runs_of(free), runs_of(after))
    assert Counter(f for s, e in freed for f in range(s, e)) == Counter(after - free), (free, after)
    assert all(s < e for s, e in freed)


def test_diff_of_persistent_lists() -> None:
    tail = from_iterable([7, 8, 9])
    assert diff(tail, (6, tail)) == ([6], [])
    assert diff((6, tail), tail) == ([], [6])
    assert diff((1, (2, tail)), (3, tail)) == ([3], [1, 2])
    assert diff(from_iterable([1, 2]), from_iterable([1, 2])) == ([1, 2], [1, 2])  # no sharing
    assert diff(None, tail) == ([7, 8, 9], [])


def test_verdicts_are_enums_per_property() -> None:
    scenario = load_scenario(str(HERE / "scenarios" / "null_ops.json"))
    result = monitor_trace(scenario, SEED, frozenset({"no_crash", "ownership"}))
    assert {v.prop for v in result.violations} <= {"no_crash", "ownership"}
    for name in PROPERTY_NAMES:
        expected = (
            Verdict.NOT_CHECKED
            if name not in ("no_crash", "ownership")
            else Verdict.VIOLATED
            if name in {v.prop for v in result.violations}
            else Verdict.HOLDS
        )
        assert result.verdict(name) is expected


def _count_listings(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """From now on, each call of the whole-balloon listings (``owners``,
    ``balloon_pages``) counted by name."""
    calls = Counter[str]()
    for name in ("owners", "balloon_pages"):
        real = getattr(properties, name)

        def counted(*args: object, _real: object = real, _name: str = name) -> object:
            calls[_name] += 1
            return _real(*args)  # type: ignore[operator]

        monkeypatch.setattr(properties, name, counted)
    return calls


def test_a_step_does_not_list_the_balloon(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the 64 GiB inflation the whole-state listings run only at rest (cached there)."""
    scenario = load_scenario(str(BIG))
    calls = _count_listings(monkeypatch)
    state = start(scenario, FIXED)
    monitor = Monitor(state)
    resting = 0
    for t in trace(state, scenario.steps):
        monitor.step(t.prev, t.state)
        resting += t.state.loc.name in ("IDLE", "EXITED")
    assert monitor.index > 40_000 and not monitor.violations
    assert calls["owners"] + calls["balloon_pages"] <= 3 * (resting + 1)  # not per step


def test_a_state_at_rest_checked_again_is_not_listed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """``no_leak`` and ``host_agreement`` keep their answer for a state whose lists, memory
    and held frames are those they were computed on (the same lists; memory and frames
    the same or equal): checking such a state again does not list the balloon."""
    scenario = load_scenario(str(HERE / "scenarios" / "memory_pressure.json"))
    states = [t.state for t in trace(start(scenario, FIXED), scenario.steps)]
    rest = next(s for s in states if s.loc == Loc.IDLE and s.drv.pages[0] is not None)
    monitor = Monitor(rest, properties=frozenset({"no_leak", "host_agreement"}))
    calls = _count_listings(monkeypatch)
    monitor.check(rest)
    assert not calls, calls
    # equal memory, another object (a copy of the allocator's state): the same answer
    same = rest._replace(env=rest.env._replace(memory=type(rest.env.memory)(*rest.env.memory)))
    assert same.env.memory is not rest.env.memory
    monitor.check(same)
    assert not calls, calls


def test_replay_check_of_the_64g_scenario_takes_seconds() -> None:
    started = time.perf_counter()
    found = check_trace(load_scenario(str(BIG)), SEED, frozenset({"ownership"}))
    assert found == []
    assert time.perf_counter() - started < 60  # the whole listing after each step: > 60 s


def _drop_head(idx: int) -> Callable[[State, Ghost], tuple[State, Ghost] | None]:
    """An edit: the first page of balloon list ``idx`` dropped (none: no edit)."""

    def edit(state: State, ghost: Ghost) -> tuple[State, Ghost] | None:
        pages = state.drv.pages[idx]
        if pages is None:
            return None
        lists = (pages[1], state.drv.pages[1]) if idx == 0 else (state.drv.pages[0], pages[1])
        return state._replace(drv=state.drv._replace(pages=lists)), ghost

    return edit


def test_monitor_answers_a_state_one_edit_away_afresh() -> None:
    """Checked right after a reached state, a state one edit away (the edits of
    vmballoon/proofs/neighbours.py: the driver's and the loop's fields, the four lists, the
    pointers, the location) gets what the whole-state predicates say of it: no answer the
    monitor keeps outlives what it was computed from.  States at rest are sampled apart:
    only there do ``no_leak`` and ``host_agreement`` apply, and keep their last answer;
    a page dropped from one balloon list (and put nowhere) is one more edit: it changes
    that list alone, where the edits that move a page change two."""
    from vmballoon.proofs.neighbours import EDITS

    edits = [
        *EDITS,
        ("pages[0] head dropped", _drop_head(0)),
        ("pages[1] head dropped", _drop_head(1)),
    ]
    checked = resting_edits = 0
    for path in SCENARIOS[::3]:
        scenario = load_scenario(str(path))
        states = [t.state for t in trace(start(scenario, SEED), scenario.steps)]
        resting = [s for s in states if s.loc in RESTING]  # where no_leak, host_agreement apply
        sample = states[:: max(1, len(states) // 12)] + resting[:: max(1, len(resting) // 6)]
        for state in sample:
            for name, edit in edits:
                got = edit(state, initial_ghost())
                if got is None or got[1] != initial_ghost():  # the monitor keeps its own ghost
                    continue
                mon = Monitor(state, first_only=False)
                mon.check(state)
                want = {n for n, _ in check_state(got[0], mon.ghost)}
                have = {v.prop for v in mon.check(got[0])}
                assert have == want, (path.name, state.loc.name, name)
                checked += 1
                resting_edits += state.loc in RESTING
    assert checked > 1000, checked
    assert resting_edits > 100, resting_edits


def test_claims_after_frames_freed_in_bulk() -> None:
    """Frames freed together (more than a few at once, as a caller that checks less often
    than every transition sees them): exactly the claims inside the freed run are on
    unallocated frames, not the claim just past its end."""
    from vmballoon.core import intervals as iv

    scenario = load_scenario(str(HERE / "scenarios" / "memory_pressure.json"))
    states = [t.state for t in trace(start(scenario, FIXED), scenario.steps)]
    state = next(s for s in states if len(balloon_pages(s)[0]) >= 40)
    pages = sorted(balloon_pages(state)[0])
    mem = state.env.memory
    cases = 0
    for end in pages[12:40]:
        if end % 512 == 0:  # the run's end inside the bucket of the claim at `end`
            continue
        freed = mem._replace(free=iv.add(mem.free, end - 10, end))
        edited = state._replace(env=state.env._replace(memory=freed))
        claims = Claims(state)
        claims.update(edited)
        whole = properties.owned_once_and_allocated(owners(edited), freed)
        assert claims.owned_once_and_allocated() == whole
        assert sorted(claims.unallocated) == [p for p in pages if end - 10 <= p < end]
        cases += 1
    assert cases > 20


@pytest.mark.parametrize("crashed", [False, True])
def test_list_segments_are_the_balloon_lists(crashed: bool) -> None:
    """``list_segments`` (what the claims and the ITF writer follow) concatenated is
    ``balloon_pages``: in every state of a deflating replay, and in the same states
    crashed where they stand (a crash inside deflate's loop keeps the part of the list
    the loop has not reached: ``balloon_pages`` counts it, so must the segments)."""
    from vmballoon.model.claims import list_segments
    from vmballoon.model.plist import to_list

    sc = load_scenario(HERE / "scenarios" / "deflate_reset_between_sizes.json")
    seen = 0
    for t in trace(start(sc, FIXED), sc.steps):
        state = t.state._replace(loc=Loc.CRASHED) if crashed else t.state
        for idx in (0, 1):
            joined = [pfn for seg in list_segments(state, idx) for pfn in to_list(seg)]
            assert joined == balloon_pages(state)[idx]
        seen += state.loop.cursor is not None
    assert seen, "the replay deflates"
