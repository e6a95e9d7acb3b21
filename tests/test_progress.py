"""The Z3 obligations of ``progress`` (vmballoon/proofs/progress.py) against the model.

* the cooperative constraint is satisfiable at every location of a tick (not vacuous);
* a cooperative host driving the model (FIXED) reaches the target in the first tick
  within the ranking function's bound, and the trace check agrees;
* the seed's batched defect makes the trace check flag ``progress``;
* the ranking function is 0 outside a tick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import z3

from vmballoon.core.protocol import (
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BATCHED_2M,
    SUCCESS_WITH_CAPABILITIES,
)
from vmballoon.core.scenario import Response, Scenario
from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.model.properties import check_trace
from vmballoon.model.state import Loc
from vmballoon.proofs import progress as pg
from vmballoon.proofs.encoding import TRANSITIONS, bv32, loc_val, make_inputs, make_state


@pytest.mark.parametrize("variant", [SEED, FIXED], ids=lambda v: v.name)
def test_cooperative_constraint_is_satisfiable_at_every_tick_location(variant: Variant) -> None:
    s, i, t = make_state("s_"), make_inputs("i_"), pg.target_const()
    for loc in pg.TICK_LOCS:
        sol = z3.Solver()
        sol.add(s["loc"] == loc_val(loc), pg.cooperative(s, i, t, variant))
        assert sol.check() == z3.sat, loc.name


@pytest.mark.parametrize(
    ("caps", "target"),
    [(CAP_BASIC, 3), (CAP_BATCHED, 700), (CAP_BATCHED | CAP_BATCHED_2M, 1500)],
)
def test_fixed_reaches_the_target_in_the_first_tick(caps: int, target: int) -> None:
    """A cooperative host: the model (FIXED) reaches the target within the bound of the
    ranking function (16 + 2T transitions from module init), and the trace check agrees."""
    from vmballoon.model.machine import enter, start, step

    # DOORBELL_SET(INVALID) of the reset's cleanup, START, GUEST_ID, then GET_TARGET/locks
    hv = [Response(0, 0, None), Response(SUCCESS_WITH_CAPABILITIES, caps, None)]
    hv += [Response(0, 0, None)] + [Response(0, target, None)] * 50
    scenario = Scenario(
        steps=("work", "work"),
        frames=1 << 14,
        pfn_base=0,
        hv=tuple(hv),
        alloc=(),
        vmci=(),
        totalram_pages=None,
    )
    state = start(scenario, FIXED)
    state = enter(state, "work")
    n = 1
    while state.loc != Loc.IDLE:
        state = step(state)
        n += 1
    assert target <= state.drv.size < target + 512
    assert n <= 16 + 2 * target
    assert not [v for v in check_trace(scenario, FIXED) if v.prop == "progress"]


def test_seed_batched_misses_the_target_and_the_trace_check_says_so() -> None:
    """The seed names b->page (NULL) instead of the batch page (lines 470, 518); a
    cooperative host refuses the batch; the tick ends below the target."""
    from vmballoon.core.protocol import ERROR_PPN_INVALID

    hv = [Response(0, 0, None), Response(SUCCESS_WITH_CAPABILITIES, CAP_BATCHED, None)]
    hv += [Response(0, 0, None), Response(0, 3, None), Response(ERROR_PPN_INVALID, 3, None)]
    scenario = Scenario(
        steps=("work",),
        frames=4096,
        pfn_base=0,
        hv=tuple(hv),
        alloc=(),
        vmci=(),
        totalram_pages=None,
    )
    assert "progress" in {v.prop for v in check_trace(scenario, SEED)}
    assert "progress" not in {v.prop for v in check_trace(scenario, FIXED)}


def test_rank_is_zero_outside_a_tick() -> None:
    s, t = make_state("s_"), pg.target_const()
    for loc in TRANSITIONS:
        if loc in pg.TICK_LOCS:
            continue
        sol = z3.Solver()
        sol.add(s["loc"] == loc_val(loc), pg.rank(s, t) != z3.BitVecVal(0, 64))
        assert sol.check() == z3.unsat, loc.name


def test_fixed_is_proved_and_the_seed_fails_at_its_recorded_depth() -> None:
    """The two obligations ``verify`` reports for ``progress``: the per-tick induction
    proof of FIXED, and the seed's shortest counterexample in the cooperative
    environment at the depth ``spec/verify-results.json`` records (a weakened
    assumption or lemma moves one of them; this is the drivers stage's quick look at
    what the verify stage sees)."""
    import json

    from tests.conftest import ROOT
    from vmballoon.proofs.check import DEFAULT_DEPTH
    from vmballoon.proofs.status import Status

    results = json.loads((ROOT / "spec" / "verify-results.json").read_text())["results"]
    (recorded,) = [r for r in results if (r["variant"], r["prop"]) == ("seed", "progress")]
    proof = pg.prove(FIXED, 120.0)
    assert proof.status == Status.PROVED, proof.detail
    seed = pg.bmc_progress(SEED, depth=DEFAULT_DEPTH, timeout=120.0, shortest=True)
    assert (seed.status, seed.depth) == (Status.VIOLATED, recorded["depth"])
    # one query over every depth (the fix-necessity rows' search): a counterexample,
    # cut at a tick end where progress fails, so no shorter than the shortest one
    window = pg.bmc_progress(SEED, depth=DEFAULT_DEPTH, timeout=120.0, shortest=False)
    assert window.status == Status.VIOLATED
    assert window.depth is not None and window.depth >= recorded["depth"]


def test_a_tick_lemma_that_constrains_a_state_outside_the_loops_fails_the_proof() -> None:
    """The tick-local lemmas are assumed only inside the loops, so T may change between
    ticks; the proof checks it of every lemma it keeps (``_tick_local``): one lemma that
    says something outside the loops fails it, whatever the others say there."""
    s, t = make_state("s_"), pg.target_const()
    kept = [pg.tick_lemma(n, s, t) for n in pg.TICK]
    pg._tick_local(s, kept, 10.0)  # the lemmas as the proof uses them: vacuous outside
    with pytest.raises(pg._Stop, match="constrains states outside the loops"):
        pg._tick_local(s, [*kept, s["n4"] == bv32(0)], 10.0)


def test_a_failed_obligation_says_which_and_where() -> None:
    """Without the invariant and the cooperative environment the ranking function does
    not decrease somewhere and some transition schedules a reset: each obligation fails
    (not unknown) and says so, naming the location."""
    from vmballoon.proofs.encoding import successor
    from vmballoon.proofs.status import Status

    s, i, t = make_state("s_"), make_inputs("i_"), pg.target_const()
    posts = {loc: successor(loc, s, i, FIXED) for loc in TRANSITIONS}
    with pytest.raises(pg._Stop) as rank:
        pg._rank_decreases([], s, t, posts, 30.0)
    status, detail = rank.value.status, rank.value.detail
    assert status == Status.FAILED and detail.endswith(": rank does not decrease"), detail
    with pytest.raises(pg._Stop) as reset:
        pg._no_reset_scheduled([], s, posts, 30.0)
    status, detail = reset.value.status, reset.value.detail
    # a START that fails leaves the reset undone: the first location that tells
    assert status == Status.FAILED, detail
    assert detail == "R_START: a tick reaches GET_TARGET with its reset undone", detail
    with pytest.raises(pg._Stop) as scheduled:  # from states with no reset pending
        pg._no_reset_scheduled([z3.Not(s["reset"])], s, posts, 30.0)
    status, detail = scheduled.value.status, scheduled.value.detail
    assert status == Status.FAILED and detail.endswith(": a reset is scheduled"), detail


def test_a_rank_that_stays_the_same_does_not_prove_a_tick_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ranking function must decrease strictly on every transition of a tick: one
    that keeps its value (here a constant) proves nothing and fails the obligation."""
    from vmballoon.proofs.encoding import bv64, successor

    s, i, t = make_state("s_"), make_inputs("i_"), pg.target_const()
    posts = {loc: successor(loc, s, i, FIXED) for loc in TRANSITIONS}
    monkeypatch.setattr(pg, "rank", lambda s, t: bv64(5))
    with pytest.raises(pg._Stop, match="rank does not decrease"):
        pg._rank_decreases([], s, t, posts, 30.0)


def test_the_window_search_asks_every_tick_end_in_one_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``bmc_progress(shortest=False)`` (the fix-necessity rows) asks one query over
    every depth at which a tick can end, from the first to the last: a violation at
    the first tick end is not skipped."""
    from vmballoon.proofs.check import DEFAULT_DEPTH
    from vmballoon.proofs.unrolling import query as real

    asked: list[tuple[int, int]] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        ask = real(*args, **kwargs)

        def wrapped(lo: int, hi: int) -> Any:
            asked.append((lo, hi))
            return ask(lo, hi)

        return wrapped

    monkeypatch.setattr(pg, "query", recording)
    pg.bmc_progress(FIXED, depth=DEFAULT_DEPTH, timeout=120.0, shortest=False)
    ends = pg._tick_ends(pg.reach_with_reset(DEFAULT_DEPTH))
    assert asked == [(ends[0], ends[-1])], (asked, ends)


def test_not_throttled_reads_the_same_in_z3_on_every_case_it_tells_apart() -> None:
    """``not_throttled`` is broken only by the step that reads the target (W_TARGET, the
    driver sending GET_TARGET: no reset pending, a totalram that fits 32 bits, lines
    1114-1120 and 422-424) with more than one slow cycle left and the balloon below the
    target.  The Z3 constraint says the same on every combination of the fields it
    reads, those the fuzzed ticks of tests/test_assumptions.py rarely combine included
    (a reset or a large totalram with slow cycles left)."""
    from itertools import product

    from vmballoon.core import assumptions as asm
    from vmballoon.proofs.encoding import loc_val

    s, i, t = make_state("s_"), make_inputs("i_"), z3.BitVec("T", 32)
    expr = pg.cooperative(s, i, t, FIXED, names=("not_throttled",))
    check = asm.BY_NAME["not_throttled"].check
    guest = asm.Guest(4096, 0, 4096)
    cases = product(
        (Loc.W_TARGET, Loc.I_LOOP, Loc.D_LOOP, Loc.IDLE),
        (False, True),  # reset pending
        (False, True),  # totalram above 32 bits
        (0, 1, 2, 4),  # slow cycles left
        ((5, 10), (10, 10), (20, 10)),  # size, target
    )
    for loc, reset, big, slow, (size, target) in cases:
        sends = loc == Loc.W_TARGET and not reset and not big
        view = asm.StepView(
            commands=(asm.Command("GET_TARGET", 0, target),) if sends else (),
            reads_target=sends,
            slow=slow,
            size=size,
        )
        got = z3.simplify(
            z3.substitute(
                expr,
                (s["loc"], loc_val(loc)),
                (s["reset"], z3.BoolVal(reset)),
                (s["ram_big"], z3.BoolVal(big)),
                (s["slow"], z3.BitVecVal(slow, 32)),
                (s["size"], z3.BitVecVal(size, 32)),
                (t, z3.BitVecVal(target, 32)),
            )
        )
        case = (loc.name, reset, big, slow, size, target)
        assert z3.is_true(got) == (check(guest, view) is None), case
        assert z3.is_true(got) or z3.is_false(got), case


def test_an_undecided_window_search_is_unknown_from_the_first_tick_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the one query of the window search is ``unknown``, nothing is settled from
    the first depth it asked: the answer is ``unknown`` at the first tick end."""
    from vmballoon.proofs.check import DEFAULT_DEPTH
    from vmballoon.proofs.status import Status
    from vmballoon.proofs.unrolling import Answer

    def undecided(*args: Any, **kwargs: Any) -> Any:
        return lambda lo, hi: Answer(z3.unknown, None, hi)

    monkeypatch.setattr(pg, "query", undecided)
    got = pg.bmc_progress(FIXED, depth=DEFAULT_DEPTH, timeout=1.0, shortest=False)
    ends = pg._tick_ends(pg.reach_with_reset(DEFAULT_DEPTH))
    assert (got.status, got.depth) == (Status.UNKNOWN, ends[0])


def test_a_start_that_grants_no_command_set_is_outside_the_cooperative_host() -> None:
    """``host_success`` admits a START answered SUCCESS, or SUCCESS_WITH_CAPABILITIES
    granting the basic or the batched command set, and nothing else, in Z3 as in the
    concrete predicate: FIXED leaves the reset undone after any other answer (lines
    1071-1092), and GET_TARGET is never sent."""
    from vmballoon.core import assumptions as asm
    from vmballoon.core.protocol import CAP_SIGNALLED_WAKEUP, ERROR_RESET
    from vmballoon.proofs.encoding import bv64

    s, i, t = make_state("s_"), make_inputs("i_"), z3.BitVec("T", 32)
    expr = pg.cooperative(s, i, t, FIXED, names=("host_success",))
    check = asm.BY_NAME["host_success"].check
    guest = asm.Guest(4096, 0, 4096)
    swc = SUCCESS_WITH_CAPABILITIES
    answers = [
        (0, 0, True),
        (swc, CAP_BASIC, True),
        (swc, CAP_BATCHED | CAP_BATCHED_2M, True),
        (swc, CAP_SIGNALLED_WAKEUP | CAP_BATCHED_2M, False),
        (swc, 0, False),
        (ERROR_RESET, CAP_BASIC, False),
        (1, 0, False),
    ]
    for status, granted, ok in answers:
        view = asm.StepView(commands=(asm.Command("START", status, granted),))
        assert (check(guest, view) is None) == ok, (status, granted)
        sol = z3.Solver()
        sol.add(expr, i["START_st"] == bv64(status), i["START_res"] == bv64(granted))
        assert (sol.check() == z3.sat) == ok, (status, granted)


def test_progress_needs_the_reset_to_succeed(monkeypatch: pytest.MonkeyPatch) -> None:
    """With START free to fail (host_success without its START clause) the init tick's
    reset may never complete and GET_TARGET never be sent: the proof must fail, at the
    lemma that says the reset's START granted a command set."""
    from vmballoon.proofs.status import Status

    full = pg.COOPERATIVE["host_success"]

    def start_free(s: Any, i: Any, t: Any, eqb: Any) -> Any:
        return z3.And(full(s, i, t, eqb).children()[1:])

    monkeypatch.setitem(pg.COOPERATIVE, "host_success", start_free)
    proof = pg.prove(FIXED, 60.0)
    assert proof.status == Status.FAILED, proof.detail
    assert "c_ops_granted" in proof.detail, proof.detail


def test_a_tick_end_at_the_top_of_the_range_fails_unless_nothing_moved() -> None:
    """The property at a tick's end is strict: ``size`` ends below T+512 unless the tick
    changed nothing (it ended at W_TARGET, where it started).  From states already in
    the non-strict range and a cooperative step, an inflate that ends (I_END) at exactly
    T+512 is a failure; the target being T is not enough."""
    from vmballoon.proofs.encoding import successor
    from vmballoon.proofs.status import Status

    s, i, t = make_state("s_"), make_inputs("i_"), pg.target_const()
    posts = {loc: successor(loc, s, i, FIXED) for loc in TRANSITIONS}
    pre = [pg.cooperative(s, i, t, FIXED), pg.in_range(s["size"], t, strict=False)]
    with pytest.raises(pg._Stop) as end:
        pg._ticks_end_in_range(pre, s, t, posts, 30.0)
    assert end.value.status == Status.FAILED, end.value.detail
    assert end.value.detail == "a tick ending at I_END misses the target", end.value.detail
    # the exception is W_TARGET's alone: an I_END that leaves size where it was (at T+512)
    # misses the target too
    end_post = posts[Loc.I_END].post
    still = z3.And(end_post["size"] == s["size"], end_post["target"] == t)
    with pytest.raises(pg._Stop) as unchanged:
        pg._ticks_end_in_range([*pre, still], s, t, posts, 30.0)
    assert unchanged.value.detail == "a tick ending at I_END misses the target"


def test_a_tick_can_end_only_once_some_path_has_left_the_reset() -> None:
    """``reach_with_reset`` marks a depth as after a complete tick only once some path
    from IDLE has passed R_OPS (the step that clears ``reset_required``): not at the
    depth R_OPS is first reached, nor before, and from the step after it on.  The
    progress BMC asks no earlier depth, where no tick can have ended."""
    reached = pg.reach_with_reset(14)
    first_ops = min(k for k, (locs, _) in enumerate(reached) if Loc.R_OPS in locs)
    assert not any(done for _, done in reached[: first_ops + 1])
    assert all(done for _, done in reached[first_ops + 1 :])
    assert pg._tick_ends(reached)[0] > first_ops


def test_the_target_bound_reads_the_same_at_its_edge() -> None:
    """``target_fits`` at its edge: a target of T_MAX (the largest whose ``+ 512`` fits
    in 32 bits) is allowed and one more is not, by the concrete assumption and by the Z3
    constraint of the cooperative environment (fuzzed ticks never reach the edge)."""
    from vmballoon.core import assumptions as asm
    from vmballoon.proofs.encoding import make_inputs, make_state

    s, i = make_state("s_"), make_inputs("i_")
    concrete = asm.BY_NAME["target_fits"]
    for t, ok in ((asm.T_MAX, True), (asm.T_MAX + 1, False)):
        z = pg.COOPERATIVE["target_fits"](s, i, z3.BitVecVal(t, 32), z3.BoolVal(True))
        assert z3.is_true(z3.simplify(z)) == ok, t
        assert (concrete.check(asm.Guest(4096, 0, 4096), asm.StepView(target=t)) is None) == ok


def test_the_bound_the_proof_states_is_the_rank_at_the_start_of_a_tick() -> None:
    """``prove`` states that a tick takes at most ``15 + 2T + 2(n4 + n2)`` transitions and
    the first one from module init at most ``16 + 2T``: the rank at W_BEGIN, which every
    transition of the tick lowers by at least 1 (:func:`_rank_decreases`), plus the one
    transition (``work``) from IDLE, where module init holds no pages.  Any rank that
    decreases proves *a* bound; this ties the one proved to the one stated, in every
    state."""
    from vmballoon.proofs.encoding import bv64, initial

    s, t = make_state("s_"), pg.target_const()
    held = pg.z64(s["n4"]) + pg.z64(s["n2"])
    stated = bv64(15) + bv64(2) * pg.z64(t) + bv64(2) * held
    sol = z3.Solver()
    sol.add(s["loc"] == loc_val(Loc.W_BEGIN), pg.rank(s, t) != stated)
    assert sol.check() == z3.unsat, sol.model()
    sol = z3.Solver()
    sol.add(initial(s), held != bv64(0))
    assert sol.check() == z3.unsat, sol.model()
    assert pg.BOUND == "a tick takes <= 15 + 2T + 2(n4+n2) transitions, <= 16 + 2T from module init"


def test_each_obligation_the_solver_gives_up_on_is_unknown_and_says_where(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An obligation whose query is unknown makes the proof unknown (never failed, never
    proved), naming the obligation and the location it gave up at."""
    from vmballoon.proofs.encoding import successor
    from vmballoon.proofs.status import Status

    s, i, t = make_state("s_"), make_inputs("i_"), pg.target_const()
    posts = {loc: successor(loc, s, i, FIXED) for loc in TRANSITIONS}
    from tests.test_check_obligations import Scripted

    monkeypatch.setattr(pg, "solver", lambda timeout: Scripted(z3.unknown))
    asked: list[tuple[Callable[[], None], str]] = [
        (lambda: pg._tick_local(s, [], 1.0), "tick lemmas outside the loops: timeout"),
        (lambda: pg._ticks_end_in_range([], s, t, posts, 1.0), "property at W_TARGET: timeout"),
        (lambda: pg._rank_decreases([], s, t, posts, 1.0), "W_BEGIN: timeout"),
        (lambda: pg._no_reset_scheduled([], s, posts, 1.0), "IDLE: timeout"),
    ]
    for obligation, detail in asked:
        with pytest.raises(pg._Stop) as stop:
            obligation()
        assert (stop.value.status, stop.value.detail) == (Status.UNKNOWN, detail)


def test_a_tick_end_no_cooperative_tick_reaches_makes_the_proof_vacuous() -> None:
    """The property at a tick's end is asked with its vacuity: from no state at all (a
    false precondition) the property holds everywhere, and the first end a cooperative
    tick must be able to take (W_TARGET, of :data:`LIVE_ENDS`) fails the proof as
    vacuous (D_UNLOCK, which only an unlock error ends, is not asked to be live)."""
    from vmballoon.proofs.encoding import successor
    from vmballoon.proofs.status import Status

    s, i, t = make_state("s_"), make_inputs("i_"), pg.target_const()
    posts = {loc: successor(loc, s, i, FIXED) for loc in TRANSITIONS}
    with pytest.raises(pg._Stop) as nothing:
        pg._ticks_end_in_range([z3.BoolVal(False)], s, t, posts, 30.0)
    assert (nothing.value.status, nothing.value.detail) == (
        Status.FAILED,
        "no cooperative tick ends at W_TARGET (vacuous)",
    )
    assert Loc.D_UNLOCK in pg.END_LOCS and Loc.D_UNLOCK not in pg.LIVE_ENDS


def test_the_guest_size_bound_reads_the_same_at_its_edge() -> None:
    """``guest_below_2_32``: the concrete predicate allows a guest of 2**32 - 1 frames and
    not one more; the Z3 reading bounds the frames the balloon holds, which in such a
    guest can be every one of them: a balloon of 2**32 - 1 frames is cooperative, one of
    2**32 is not (fuzzed ticks come nowhere near either)."""
    from vmballoon.core import assumptions as asm
    from vmballoon.core.protocol import PAGES_PER_2M, U32_MASK

    s, i, t = make_state("s_"), make_inputs("i_"), pg.target_const()
    concrete = asm.BY_NAME["guest_below_2_32"]
    view = asm.StepView()
    assert concrete.check(asm.Guest(U32_MASK, 0, 4096), view) is None
    assert concrete.check(asm.Guest(U32_MASK + 1, 0, 4096), view) is not None
    expr = pg.COOPERATIVE["guest_below_2_32"](s, i, t, z3.BoolVal(True))
    for n4, n2, held in ((U32_MASK, 0, True), (U32_MASK + 1 - PAGES_PER_2M, 1, False)):
        sol = z3.Solver()
        sol.add(expr, s["n4"] == bv32(n4), s["n2"] == bv32(n2), s["l_num"] == bv32(0))
        assert (sol.check() == z3.sat) == held, (n4, n2)


def test_a_target_of_zero_means_an_empty_balloon() -> None:
    """``in_range`` (the property at a tick's end and of :func:`progress_holds`): for a
    target of 0 the balloon must be empty, though 0 <= size <= 512 would allow more
    (a target of 0 deflates everything); above 0 the range is
    ``T..T+512`` (the top excluded when strict)."""

    def holds(size: int, t: int, strict: bool = False) -> bool:
        e = z3.simplify(pg.in_range(bv32(size), bv32(t), strict))
        assert z3.is_true(e) or z3.is_false(e)
        return bool(z3.is_true(e))

    assert holds(0, 0) and not holds(1, 0) and not holds(512, 0)
    assert holds(7, 7) and holds(519, 7) and not holds(520, 7) and not holds(6, 7)
    assert holds(518, 7, strict=True) and not holds(519, 7, strict=True)


class _Ends:
    """A step that ends a tick at IDLE with no reset pending, ``size`` and target given."""

    def __init__(self, size: z3.BitVecRef, target: z3.BitVecRef) -> None:
        self.cons: list[z3.BoolRef] = []
        self.post = {
            "loc": loc_val(Loc.IDLE),
            "reset": z3.BoolVal(False),
            "size": size,
            "target": target,
        }


def test_a_tick_that_ends_where_it_started_must_still_end_in_range() -> None:
    """The exception for a tick that ends at W_TARGET with ``size`` unchanged is to the
    strict top of the range only: such a tick must still end with ``T <= size <= T+512``.
    With every other end in range, a W_TARGET end that keeps any size fails the
    property there."""
    from vmballoon.proofs.status import Status

    s, t = make_state("s_"), pg.target_const()
    posts: dict[Loc, Any] = {loc: _Ends(t, t) for loc in pg.END_LOCS}
    fits = [z3.ULE(t, bv32(pg.T_MAX))]  # T + 512 does not wrap
    pg._ticks_end_in_range(fits, s, t, posts, 30.0)  # every end at T: in range
    posts[Loc.W_TARGET] = _Ends(s["size"], t)
    with pytest.raises(pg._Stop) as stop:
        pg._ticks_end_in_range(fits, s, t, posts, 30.0)
    assert (stop.value.status, stop.value.detail) == (
        Status.FAILED,
        "a tick ending at W_TARGET misses the target",
    )
    # at the top of the range and unchanged: allowed at W_TARGET alone
    posts[Loc.W_TARGET] = _Ends(s["size"], t)
    top = [*fits, s["size"] == t + bv32(512), t != bv32(0)]
    pg._ticks_end_in_range(top, s, t, posts, 30.0)
    posts[Loc.I_END] = _Ends(s["size"], t)
    with pytest.raises(pg._Stop, match="at I_END misses"):
        pg._ticks_end_in_range(top, s, t, posts, 30.0)
