"""``progress`` with Z3: a cooperative host and enough memory bring the balloon to its target.

The property (:func:`vmballoon.model.properties.progress` on traces; design.md, "properties")
is liveness under an environment assumption.  It is split into safety-shaped
obligations over the encoding of :mod:`vmballoon.proofs.encoding`:

* **The cooperative environment** (:func:`cooperative`): a constraint over one
  step's inputs (and a few environment facts of its pre-state), with ``T`` a fresh
  32-bit constant: every command SUCCESS (START: SUCCESS_WITH_CAPABILITIES with a
  word granting BASIC or BATCHED, lines 322-354); batched commands that name the
  batch page get every entry SUCCESS, and the host refuses a batched command that
  does not name it with ERROR_PPN_INVALID for the whole command (it cannot read a
  batch it was not shown: lines 470, 518); GET_TARGET, LOCK and UNLOCK results are
  ``T`` (lines 425-437, 457, 475-478, 505, 523-526); every allocation succeeds
  (lines 836-841); vmci_doorbell_create succeeds (1034); GUEST_ID and the
  VMCI_DOORBELL_SET that sets the doorbell may fail, but never with ERROR_RESET
  (``no_reset_request``: that answer schedules a reset, line 363, and a host giving it
  on every tick keeps GET_TARGET from ever being sent, line 1120).  Plus what "enough
  memory"
  means for a C with 32-bit counters: the guest has fewer than 2**32 frames
  (``totalram`` fits in 32 bits, line 1121; the balloon holds fewer frames than
  that), every frame below 2**32 (so the basic protocol can name it, lines 451-453),
  ``T + 512`` fits in ``b->size`` (an ``unsigned int``, line 281), and no slow
  allocation cycles force a finite rate in this tick (lines 821-828; the trace
  predicate likewise skips throttled ticks).  It is used by the progress
  obligations only; the safety proofs do not see it.

* **Per tick, by induction** (:func:`prove`, FIXED): from ANY state of the safety
  invariant (proved by :func:`vmballoon.proofs.check.houdini`, so the obligations here may
  assume it), a work tick run in the cooperative environment with target ``T``
  ends, when no reset is pending, with ``T <= size <= T + 512`` and ``size == 0``
  when ``T == 0`` (lines 1117-1130 with the loops of 833 and 945), ``size < T + 512``
  unless the tick did nothing (``size`` was already ``T + 512``: line 1127 deflates
  only above it).  Lemmas are found by Houdini in two phases: global lemmas
  (:data:`GLOBAL`) with no environment assumption, then *tick-local* lemmas
  (:data:`TICK`) that only speak of the inflate and deflate locations, where ``T``
  has been read by GET_TARGET; being vacuous elsewhere they hold at the start of
  every tick whatever the host did before, so ``T`` may change from tick to tick.
  No bound on memory, on ticks or on ``T``.

* **The bound** (:func:`rank`): a ranking function over the locations of a tick
  that decreases by at least 1 on every transition of a cooperative tick (one Z3
  query per location).  Its value at ``W_BEGIN`` is ``15 + 2 T + 2 (n4 + n2)``, so a
  tick takes at most that many transitions; from module init (``n4 = n2 = 0``) the
  first tick, which runs the reset (line 1114), reaches the target in at most
  ``16 + 2 T`` transitions: within 2 ticks of module init (the init tick and the
  first timer tick): no cooperative transition schedules a reset nor comes to
  GET_TARGET with the reset undone (two queries per location, with the lemmas of
  cooperative runs, :data:`COOPERATIVE_RUN`: the reset's START grants a command set,
  the batch page is allocated, nothing asks for another reset), so the init tick's
  reset completes and every tick reads ``T``.  With ``T`` frozen
  for a run the range is then kept strictly below ``T + 512`` for ever (the only tick
  that ends at ``T + 512`` starts there).

* **Counterexamples** (:func:`bmc_progress`): BMC from Init with the cooperative
  constraint on every step and ``T`` frozen for the run; a state at IDLE with no
  reset pending is after a complete tick (reset is set at init and cleared only in
  ``vmballoon_reset``, line 1091), so the state predicate :func:`progress_holds`
  is the property.  Counterexamples are replayed through the model and must make
  :func:`vmballoon.model.properties.check_trace` flag ``progress``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import z3

from vmballoon.core.assumptions import T_MAX
from vmballoon.core.protocol import (
    CAP_BASIC,
    CAP_BATCHED,
    ERROR_PPN_INVALID,
    ERROR_RESET,
    PAGES_PER_2M,
    SUCCESS_WITH_CAPABILITIES,
    U32_MASK,
    UINT_MAX,
)
from vmballoon.core.variants import Variant
from vmballoon.model.state import DEFLATE, INFLATE, Loc
from vmballoon.proofs.encoding import (
    CLS_OK,
    OPS_BASIC,
    TRANSITIONS,
    Expr,
    State,
    SymTx,
    _batch_arg_is_batch_page,
    bv32,
    bv64,
    is_loc,
    loc_val,
    low32,
    make_inputs,
    make_state,
    successor,
)
from vmballoon.proofs.houdini import houdini
from vmballoon.proofs.solver import Unknown, invariant, solver
from vmballoon.proofs.status import Status
from vmballoon.proofs.trace import Trace
from vmballoon.proofs.unrolling import Unrolling, query
from vmballoon.proofs.unrolling import shortest as first_depth
from vmballoon.proofs.zeval import value_of

LOOPS = (*INFLATE, *DEFLATE)
TICK_LOCS = (
    Loc.W_BEGIN,
    Loc.R_CLEANUP,
    Loc.R_POP,
    Loc.R_START,
    Loc.R_OPS,
    Loc.R_START0,
    Loc.R_VMCI,
    Loc.R_GUEST_ID,
    Loc.W_TARGET,
    *LOOPS,
)
"""Locations a work tick runs through (``vmballoon_work``, lines 1106-1131)."""
END_LOCS = (Loc.W_TARGET, Loc.I_END, Loc.D_UNLOCK, Loc.D_TAIL)
"""Locations whose transition can end a work tick (return to IDLE)."""
LIVE_ENDS = (Loc.W_TARGET, Loc.I_END, Loc.D_TAIL)
"""Those through which a cooperative tick must be able to end (vacuity check): the
nothing-to-do return (line 1130), the end of inflate (925) and of deflate (971).
``D_UNLOCK`` returns only on an unlock error (962-963), which a cooperative host
never causes."""

Lemma = Callable[[State, Expr], Expr]


def target_const(name: str = "T") -> Expr:
    """The cooperative host's target: a fresh 32-bit constant, frozen for the tick (or run)."""
    return z3.BitVec(name, 32)


def z64(x: Expr) -> Expr:
    """A 32-bit value as a 64-bit one (no wrap-around in sums of two 32-bit values)."""
    return z3.ZeroExt(32, x)


def _ps64(s: State) -> Expr:
    return z3.If(s["l_is2m"], bv64(PAGES_PER_2M), bv64(1))


def frames_held(s: State) -> Expr:
    """Frames on the balloon lists plus the batch in flight, without wrap-around (64 bits)."""
    return z64(s["n4"]) + z64(s["n2"]) * bv64(PAGES_PER_2M) + z64(s["l_num"]) * _ps64(s)


def _b8(v: int) -> Expr:
    return z3.BitVecVal(v, 8)


def _host_success(s: State, i: State, t: Expr, eqb: Expr) -> Expr:
    start, granted = i["START_st"], i["START_res"]
    ops = granted & bv64(CAP_BASIC | CAP_BATCHED) != bv64(0)
    cs = [z3.Or(z3.And(start == bv64(SUCCESS_WITH_CAPABILITIES), ops), start == bv64(0))]
    cs += [i[f"{site}_st"] == bv64(0) for site in ("GET_TARGET", "LOCK", "UNLOCK")]
    cs += [
        i[f"{site}_st"] == z3.If(eqb, bv64(0), bv64(ERROR_PPN_INVALID))
        for site in ("BLOCK", "BUNLOCK")
    ]
    return z3.And(cs)


def _no_reset_request(s: State, i: State, t: Expr, eqb: Expr) -> Expr:
    return z3.And([i[f"{site}_st"] != bv64(ERROR_RESET) for site in ("GUEST_ID", "DBSET")])


def _entries_success(s: State, i: State, t: Expr, eqb: Expr) -> Expr:
    ok = z3.And(
        i["e_ref"] == bv32(0),
        i["e_free"] == bv32(0),
        i["e_warn"] == bv32(0),
        i["f_cls"] == _b8(CLS_OK),
    )
    return z3.Implies(eqb, ok)


def _host_target(s: State, i: State, t: Expr, eqb: Expr) -> Expr:
    sites = ("GET_TARGET", "LOCK", "UNLOCK", "BLOCK", "BUNLOCK")
    return z3.And([low32(i[f"{site}_res"]) == t for site in sites])


def _target_fits(s: State, i: State, t: Expr, eqb: Expr) -> Expr:
    return z3.ULE(t, bv32(T_MAX))


def _alloc_ok(s: State, i: State, t: Expr, eqb: Expr) -> Expr:
    return i["a_ok"]


def _basic_32(s: State, i: State, t: Expr, eqb: Expr) -> Expr:
    low_f = z3.ULE(s["f_pfn"], bv64(U32_MASK))
    return z3.Implies(
        s["ops"] == _b8(OPS_BASIC),
        z3.And(
            z3.Not(i["a_hi"]),
            z3.Not(i["h_hi"]),
            z3.Implies(z3.Or(i["a_f"], i["h_f"]), low_f),
        ),
    )


def _ram_32(s: State, i: State, t: Expr, eqb: Expr) -> Expr:
    return z3.Not(s["ram_big"])


def _guest_32(s: State, i: State, t: Expr, eqb: Expr) -> Expr:
    return z3.ULT(frames_held(s), bv64(1 << 32))


def _unthrottled(s: State, i: State, t: Expr, eqb: Expr) -> Expr:
    inflating = z3.And(
        s["loc"] == loc_val(Loc.W_TARGET),
        z3.Not(s["reset"]),
        z3.Not(s["ram_big"]),
        z3.ULT(s["size"], t),
    )
    return z3.Implies(inflating, z3.ULE(s["slow"], bv32(1)))


Constraint = Callable[[State, State, Expr, Expr], Expr]
COOPERATIVE: dict[str, Constraint] = {
    "host_success": _host_success,
    "no_reset_request": _no_reset_request,
    "batch_entries_success": _entries_success,
    "host_target_steady": _host_target,
    "target_fits": _target_fits,
    "allocations_succeed": _alloc_ok,
    "basic_frames_below_2_32": _basic_32,
    "totalram_below_2_32": _ram_32,
    "guest_below_2_32": _guest_32,
    "not_throttled": _unthrottled,
}
"""The cooperative environment, one constraint per assumption of
:data:`vmballoon.core.assumptions.PROGRESS` (same names; the text and the reason are
there).  Each takes the pre-state, the step's inputs, the tick's target ``T`` and
whether a batched command of the step names the batch page.  Where the Z3 reading
differs in form from the concrete predicate it is implied by it: ``guest_below_2_32``
(fewer than 2**32 frames in the guest) becomes "the balloon holds fewer than 2**32
frames"; ``basic_frames_below_2_32`` reads the frame the step allocates or takes off
the list (``a_hi``, ``h_hi``, or ``f`` itself)."""


def cooperative(
    s: State, i: State, t: Expr, variant: Variant, names: tuple[str, ...] | None = None
) -> Expr:
    """The cooperative environment for the step from ``s`` with inputs ``i``, target ``t``:
    the conjunction of :data:`COOPERATIVE` (or of the constraints ``names``).

    It is used by the progress obligations only; the safety proofs do not see it.
    """
    eqb = _batch_arg_is_batch_page(SymTx(s, i, variant))
    return z3.And([COOPERATIVE[n](s, i, t, eqb) for n in names or COOPERATIVE])


def in_range(size: Expr, t: Expr, strict: bool) -> Expr:
    """``t <= size <= t + 512`` (``<`` when ``strict``), and ``size == 0`` when ``t == 0``."""
    hi = z3.ULT(size, t + bv32(PAGES_PER_2M)) if strict else z3.ULE(size, t + bv32(PAGES_PER_2M))
    return z3.And(z3.ULE(t, size), hi, z3.Implies(t == bv32(0), size == bv32(0)))


def progress_holds(s: State, t: Expr) -> Expr:
    """The state predicate for runs with ``T`` frozen from Init: at IDLE with no reset
    pending (after a complete tick), ``b->target == T``, ``T <= size <= T + 512`` and 0
    when ``T == 0`` (what :func:`vmballoon.model.properties.progress` says)."""
    done = z3.And(s["loc"] == loc_val(Loc.IDLE), z3.Not(s["reset"]))
    return z3.Implies(done, z3.And(s["target"] == t, in_range(s["size"], t, strict=False)))


# -- lemmas ----------------------------------------------------------------------------------


def g_n2_needs_2m(s: State) -> Expr:
    """2 MiB pages are held only while 2 MiB pages are supported (lines 344-347, 823-827):
    after the START of ``vmballoon_exit`` (1306) only ``vmballoon_pop`` (1307) follows."""
    return z3.Implies(
        z3.And(s["loc"] != loc_val(Loc.E_POP), s["supported"] != bv32(2)), s["n2"] == bv32(0)
    )


GLOBAL: dict[str, Callable[[State], Expr]] = {"g_n2_needs_2m": g_n2_needs_2m}
"""Global lemmas: no target, no environment assumption (they join the safety invariant)."""


def c_ops_granted(s: State) -> Expr:
    """In a cooperative run the reset's START grants a command set: at ``R_OPS`` the
    capabilities hold BASIC or BATCHED (lines 1074-1089), so the reset is completed
    (1092)."""
    granted = s["caps"] & bv64(CAP_BASIC | CAP_BATCHED)
    return z3.Implies(s["loc"] == loc_val(Loc.R_OPS), granted != bv64(0))


def c_batching_ready(s: State) -> Expr:
    """In a cooperative run the batch page is allocated (line 986): ``R_START0``, the
    START(0) after a failed ``vmballoon_init_batching`` (1084), is never reached."""
    return s["loc"] != loc_val(Loc.R_START0)


def c_reset_done(s: State) -> Expr:
    """In a cooperative run the rest of the reset finds it done: after line 1092 nothing
    asks for another (no ERROR_RESET from VMCI_DOORBELL_SET or GUEST_ID)."""
    return z3.Implies(is_loc(s, Loc.R_VMCI, Loc.R_GUEST_ID), z3.Not(s["reset"]))


COOPERATIVE_RUN: dict[str, Callable[[State], Expr]] = {
    "c_ops_granted": c_ops_granted,
    "c_batching_ready": c_batching_ready,
    "c_reset_done": c_reset_done,
}
"""Lemmas of cooperative runs: proved, like the tick-local ones, under the cooperative
environment; they do not read the target, so they hold between ticks too."""


def _inflate_sum(s: State) -> Expr:
    return z64(s["size"]) + z64(s["l_num"]) * _ps64(s)


def t_target(s: State, t: Expr) -> Expr:
    """In the loops ``b->target`` is the tick's target (GET_TARGET at 1120; LOCK/UNLOCK
    results, 457-526, are the same value from a cooperative host)."""
    return z3.And(s["target"] == t, z3.Not(s["reset"]))


def t_inflate_rate(s: State, t: Expr) -> Expr:
    """Inflate runs unthrottled (rate UINT_MAX, line 826), every lock so far succeeded
    (error 0, 893-906), no 2 MiB fallback (847-859: allocations succeed)."""
    return z3.Implies(
        is_loc(s, *INFLATE),
        z3.And(
            s["l_rate"] == bv32(UINT_MAX),
            s["l_err"] == bv32(0),
            s["loc"] != loc_val(Loc.I_FALLBACK),
            z3.Not(s["l_cansleep"]),
        ),
    )


def t_inflate_below(s: State, t: Expr) -> Expr:
    """Inflate: ``size + num_pages * page_size < T + page_size`` (line 834 held before the
    last allocation), so ``allocations`` (at most that many pages) never reaches UINT_MAX;
    inflate only starts below a non-zero target (line 1124)."""
    return z3.Implies(
        is_loc(s, *INFLATE),
        z3.And(
            t != bv32(0),
            z3.ULT(_inflate_sum(s), z64(t) + _ps64(s)),
            z3.ULE(z64(s["l_alloc"]), _inflate_sum(s)),
        ),
    )


def t_inflate_reached(s: State, t: Expr) -> Expr:
    """After the inflate loop (lines 909-925) ``size + num_pages * page_size >= T``."""
    return z3.Implies(is_loc(s, Loc.I_TAIL, Loc.I_END), z3.UGE(_inflate_sum(s), z64(t)))


def t_basic_page(s: State, t: Expr) -> Expr:
    """With the basic ops the page in flight has a 32-bit PFN (lines 451-453, 499-501)."""
    return z3.Implies(
        z3.And(s["ops"] == _b8(OPS_BASIC), s["l_num"] != bv32(0)), z3.Not(s["page_hi"])
    )


def t_deflate_floor(s: State, t: Expr) -> Expr:
    """Deflate never goes below the target: ``size - num_pages * page_size >= T`` (946-948)."""
    return z3.Implies(
        is_loc(s, *DEFLATE), z3.UGE(z64(s["size"]), z64(s["l_num"]) * _ps64(s) + z64(t))
    )


def t_deflate_cursor(s: State, t: Expr) -> Expr:
    """The list walked (line 945) holds exactly the cursor: nothing is put back (every
    unlock succeeds, 735-746)."""
    return z3.Implies(is_loc(s, *DEFLATE), z3.If(s["l_is2m"], s["n2"], s["n4"]) == s["ncur"])


def _stopped(s: State, t: Expr) -> Expr:
    """The hysteresis stop of lines 946-948 holds (in 64 bits: no wrap-around)."""
    return z3.And(
        t != bv32(0),
        z3.ULT(z64(s["size"]) - z64(s["l_num"]) * _ps64(s), z64(t) + bv64(PAGES_PER_2M)),
    )


def t_deflate_tail(s: State, t: Expr) -> Expr:
    """At the end of a pass (969-970) the list ran out or the hysteresis stopped the loop."""
    return z3.Implies(s["loc"] == loc_val(Loc.D_TAIL), z3.Or(s["ncur"] == bv32(0), _stopped(s, t)))


def t_deflate_2m(s: State, t: Expr) -> Expr:
    """In the 2 MiB pass the 4 KiB list is empty unless the hysteresis already holds."""
    return z3.Implies(
        z3.And(is_loc(s, *DEFLATE), s["l_is2m"]), z3.Or(s["n4"] == bv32(0), _stopped(s, t))
    )


TICK: dict[str, Lemma] = {
    "t_target": t_target,
    "t_inflate_rate": t_inflate_rate,
    "t_inflate_below": t_inflate_below,
    "t_inflate_reached": t_inflate_reached,
    "t_basic_page": t_basic_page,
    "t_deflate_floor": t_deflate_floor,
    "t_deflate_cursor": t_deflate_cursor,
    "t_deflate_tail": t_deflate_tail,
    "t_deflate_2m": t_deflate_2m,
}
"""Tick-local lemmas: each is assumed only inside the loops (``loc`` in inflate/deflate)."""


def tick_lemma(name: str, s: State, t: Expr) -> Expr:
    """Lemma ``name`` as it is used: vacuous outside the inflate and deflate loops."""
    return z3.Implies(is_loc(s, *LOOPS), TICK[name](s, t))


def _tick_pred(name: str, t: Expr) -> Callable[[State], Expr]:
    def pred(s: State) -> Expr:
        return tick_lemma(name, s, t)

    return pred


# -- the ranking function ------------------------------------------------------------------------


def rank(s: State, t: Expr) -> Expr:
    """A 64-bit measure of the work left in a tick; 0 at IDLE (and outside a tick).

    Inflate: ``D = max(0, T - size - num_pages * page_size)`` pages still to allocate;
    ``I_LOOP = 3 + 2 D``, ``I_LOCK = I_FALLBACK = 4 + 2 D``, ``I_TAIL = 2``,
    ``I_END = 1``.  Deflate: ``P = 2 + 2 n2`` in the 4 KiB pass (the 2 MiB pass to
    come), 0 in the 2 MiB pass; ``D_LOOP = 3 + 2 ncur + P``, ``D_UNLOCK = 4 + 2 ncur
    + P``, ``D_TAIL = 2 + P``.  ``W_TARGET = 8 + 2 T + 2 n4 + 2 n2``; each reset phase
    one more, up to ``W_BEGIN = 15 + 2 T + 2 n4 + 2 n2``.
    """
    one = bv64(1)
    sum_ = _inflate_sum(s)
    gap = z3.If(z3.UGE(sum_, z64(t)), bv64(0), z64(t) - sum_)
    p = z3.If(s["l_is2m"], bv64(0), bv64(2) + bv64(2) * z64(s["n2"]))
    cur = bv64(2) * z64(s["ncur"])
    wt = bv64(8) + bv64(2) * z64(t) + bv64(2) * z64(s["n4"]) + bv64(2) * z64(s["n2"])
    table: list[tuple[tuple[Loc, ...], Expr]] = [
        ((Loc.I_LOOP,), bv64(3) + bv64(2) * gap),
        ((Loc.I_LOCK, Loc.I_FALLBACK), bv64(4) + bv64(2) * gap),
        ((Loc.I_TAIL,), bv64(2)),
        ((Loc.I_END,), one),
        ((Loc.D_LOOP,), bv64(3) + cur + p),
        ((Loc.D_UNLOCK,), bv64(4) + cur + p),
        ((Loc.D_TAIL,), bv64(2) + p),
        ((Loc.W_TARGET,), wt),
        ((Loc.R_GUEST_ID, Loc.R_START0), wt + bv64(1)),
        ((Loc.R_VMCI,), wt + bv64(2)),
        ((Loc.R_OPS,), wt + bv64(3)),
        ((Loc.R_START,), wt + bv64(4)),
        ((Loc.R_POP,), wt + bv64(5)),
        ((Loc.R_CLEANUP,), wt + bv64(6)),
        ((Loc.W_BEGIN,), wt + bv64(7)),
    ]
    e: Expr = bv64(0)
    for locs, val in reversed(table):
        e = z3.If(is_loc(s, *locs), val, e)
    return e


# -- the induction ----------------------------------------------------------------------------


BOUND = "a tick takes <= 15 + 2T + 2(n4+n2) transitions, <= 16 + 2T from module init"
"""The bound :func:`prove` states: :func:`rank` at ``W_BEGIN``, and one more from IDLE
after module init (no pages held)."""


class Proof(NamedTuple):
    """What :func:`prove` concluded: proved, failed (the detail says where) or unknown."""

    status: Status
    detail: str
    seconds: float


class _Stop(Exception):
    """An obligation of :func:`prove` failed or the solver gave up: the proof's verdict."""

    def __init__(self, status: Status, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def prove(variant: Variant, timeout: float) -> Proof:
    """The per-tick induction proof, the ranking function and the vacuity checks.

    Assumes the safety invariant of :mod:`vmballoon.proofs.props` (every property and
    lemma), which :func:`vmballoon.proofs.check.houdini` proves inductive for FIXED in its
    own job.  The obligations, in order: the lemmas (:func:`_lemmas`), that the tick-local
    ones say nothing outside the loops (:func:`_tick_local`), the property at every end
    of a tick and its vacuity (:func:`_ticks_end_in_range`), the ranking function
    (:func:`_rank_decreases`) and that no cooperative step schedules a reset
    (:func:`_no_reset_scheduled`); the first that fails or is unknown is the verdict.
    """
    t0 = time.monotonic()
    s, i, t = make_state("s_"), make_inputs("i_"), target_const()
    posts = {loc: successor(loc, s, i, variant) for loc in TRANSITIONS}
    inv = invariant(s)
    try:
        gl, runs, tick = _lemmas(variant, s, i, t, posts, inv, timeout)
        pre = [inv, *gl, *runs, *tick, cooperative(s, i, t, variant)]
        _tick_local(s, tick, timeout)
        _ticks_end_in_range(pre, s, t, posts, timeout)
        _rank_decreases(pre, s, t, posts, timeout)
        _no_reset_scheduled(pre, s, posts, timeout)
    except _Stop as stop:
        return Proof(stop.status, stop.detail, time.monotonic() - t0)
    detail = (
        f"per tick, inductive: {len(gl)} global + {len(runs)} cooperative-run + "
        f"{len(tick)} tick-local lemmas with the "
        "safety invariant; every cooperative tick with target T ends with "
        "T <= size <= T+512 (< unless it started at T+512; 0 when T == 0); rank decreases "
        f"on every transition: {BOUND}; no cooperative transition schedules a reset nor "
        "reaches GET_TARGET with the reset undone, so the init tick's reset completes and "
        "every tick reads T"
    )
    return Proof(Status.PROVED, detail, time.monotonic() - t0)


def _lemmas(
    variant: Variant,
    s: State,
    i: State,
    t: Expr,
    posts: dict[Loc, Any],
    inv: Expr,
    timeout: float,
) -> tuple[list[Expr], list[Expr], list[Expr]]:
    """Houdini in two phases: the global lemmas (:data:`GLOBAL`) with no environment
    assumption, then the tick-local ones (:data:`TICK`) and those of cooperative runs
    (:data:`COOPERATIVE_RUN`) under the cooperative environment; every one must survive.
    The lemmas over ``s``: global, of cooperative runs, tick-local."""
    try:
        glob, gdrop = houdini(GLOBAL, posts, s, i, timeout, base=lambda x: [inv])
        if gdrop:
            raise _Stop(Status.FAILED, f"global lemmas not inductive: {gdrop}")
        gl = [GLOBAL[n](s) for n in glob]
        cooperative_lemmas = {n: _tick_pred(n, t) for n in TICK} | COOPERATIVE_RUN
        live, dropped = houdini(
            cooperative_lemmas,
            posts,
            s,
            i,
            timeout,
            base=lambda x: [inv, *gl],
            extra=lambda x, y: [cooperative(x, y, t, variant)],
        )
    except Unknown as exc:
        raise _Stop(Status.UNKNOWN, str(exc)) from exc
    if dropped:
        raise _Stop(Status.FAILED, f"tick or cooperative-run lemmas not inductive: {dropped}")
    runs = [cooperative_lemmas[n](s) for n in live if n in COOPERATIVE_RUN]
    tick = [cooperative_lemmas[n](s) for n in live if n not in COOPERATIVE_RUN]
    return gl, runs, tick


def _tick_local(s: State, tick: list[Expr], timeout: float) -> None:
    """The tick-local lemmas say nothing outside the loops (so T may change between
    ticks)."""
    sol = solver(timeout)
    sol.add(z3.Not(is_loc(s, *LOOPS)), z3.Not(z3.And(*tick)))
    r = sol.check()
    if r == z3.unknown:
        raise _Stop(Status.UNKNOWN, f"tick lemmas outside the loops: {sol.reason_unknown()}")
    if r == z3.sat:
        raise _Stop(Status.FAILED, "a tick lemma constrains states outside the loops")


def _ticks_end_in_range(
    pre: list[Expr], s: State, t: Expr, posts: dict[Loc, Any], timeout: float
) -> None:
    """The property: every transition that ends a tick with no reset pending leaves
    ``size`` in range (:func:`in_range`); and a cooperative tick can end at each of
    :data:`LIVE_ENDS` (vacuity)."""
    for loc in END_LOCS:
        st = posts[loc]
        post = st.post
        ends = z3.And(post["loc"] == loc_val(Loc.IDLE), z3.Not(post["reset"]))
        goal = z3.And(
            in_range(post["size"], t, strict=False),
            post["target"] == t,
            z3.Or(
                in_range(post["size"], t, strict=True),
                z3.And(z3.BoolVal(loc == Loc.W_TARGET), post["size"] == s["size"]),
            ),
        )
        for check, what in ((z3.Not(goal), "property"), (z3.BoolVal(True), "vacuity")):
            sol = solver(timeout)
            sol.add(*pre, s["loc"] == loc_val(loc), *st.cons, ends, check)
            r = sol.check()
            if r == z3.unknown:
                raise _Stop(Status.UNKNOWN, f"{what} at {loc.name}: {sol.reason_unknown()}")
            if what == "property" and r == z3.sat:
                raise _Stop(Status.FAILED, f"a tick ending at {loc.name} misses the target")
            if what == "vacuity" and loc in LIVE_ENDS and r != z3.sat:
                raise _Stop(Status.FAILED, f"no cooperative tick ends at {loc.name} (vacuous)")


def _rank_decreases(
    pre: list[Expr], s: State, t: Expr, posts: dict[Loc, Any], timeout: float
) -> None:
    """The ranking function (:func:`rank`) decreases on every transition of a tick."""
    for loc in TICK_LOCS:
        st = posts[loc]
        sol = solver(timeout)
        sol.add(*pre, s["loc"] == loc_val(loc), *st.cons)
        sol.add(z3.Not(z3.ULT(rank(st.post, t), rank(s, t))))
        r = sol.check()
        if r != z3.unsat:
            why = sol.reason_unknown() if r == z3.unknown else "rank does not decrease"
            raise _Stop(Status.UNKNOWN if r == z3.unknown else Status.FAILED, f"{loc.name}: {why}")


def _no_reset_scheduled(pre: list[Expr], s: State, posts: dict[Loc, Any], timeout: float) -> None:
    """No cooperative transition schedules a reset, and none comes to GET_TARGET (line
    1120) with one still pending: the init tick's reset clears it (line 1092: START and
    the rest of the reset answered as the cooperative host answers them), and from then
    on every tick sends GET_TARGET and ends with no reset pending."""
    for loc in TRANSITIONS:
        st = posts[loc]
        post = st.post
        asks = (
            (z3.And(z3.Not(s["reset"]), post["reset"]), "a reset is scheduled"),
            (
                z3.And(post["loc"] == loc_val(Loc.W_TARGET), post["reset"]),
                "a tick reaches GET_TARGET with its reset undone",
            ),
        )
        for bad, what in asks:
            sol = solver(timeout)
            sol.add(*pre, s["loc"] == loc_val(loc), *st.cons, bad)
            r = sol.check()
            if r != z3.unsat:
                why = sol.reason_unknown() if r == z3.unknown else what
                status = Status.UNKNOWN if r == z3.unknown else Status.FAILED
                raise _Stop(status, f"{loc.name}: {why}")


# -- bounded model checking from Init -----------------------------------------------------------

NEVER_COOPERATIVE = frozenset({Loc.E_CLEANUP, Loc.CRASHED, Loc.R_START0, Loc.I_FALLBACK})
"""Locations BMC leaves out: no path through them reaches a violation of
:func:`progress_holds` in the cooperative environment.  ``E_CLEANUP`` starts
``vmballoon_exit`` and ``CRASHED`` stops the guest: neither comes back to IDLE;
``R_START0`` (line 1084) and ``I_FALLBACK`` (847-859) follow a failed allocation,
which the cooperative environment excludes."""


def reach_with_reset(depth: int) -> list[tuple[frozenset[Loc], bool]]:
    """For each ``k <= depth``: the locations reachable in ``k`` steps from IDLE through
    :data:`vmballoon.proofs.encoding.SUCCESSORS` minus :data:`NEVER_COOPERATIVE`, and whether some
    such path has passed ``R_OPS`` (the only step that clears ``reset_required``, line
    1091): before that no state is after a complete tick."""
    from vmballoon.proofs.encoding import SUCCESSORS

    frontier = {(Loc.IDLE, False)}
    out = [(frozenset({Loc.IDLE}), False)]
    for _ in range(depth):
        frontier = {
            (n, done or loc == Loc.R_OPS)
            for loc, done in frontier
            for n in SUCCESSORS[loc]
            if n not in NEVER_COOPERATIVE
        }
        out.append((frozenset(x for x, _ in frontier), any(d for _, d in frontier)))
    return out


def _tick_ends(reached: list[tuple[frozenset[Loc], bool]]) -> list[int]:
    """The depths :func:`bmc_progress` asks, given :func:`reach_with_reset`'s answer:
    those where a complete tick can have ended, IDLE reachable in ``k`` steps by a path
    that has passed ``R_OPS``."""
    return [k for k, (locs, done) in enumerate(reached) if Loc.IDLE in locs and done]


class ProgressBmc(NamedTuple):
    """What :func:`bmc_progress` found: the status, the counterexample and the target the
    cooperative host kept in it, the depth (of the counterexample, or searched up to, or
    where the solver gave up) and the seconds it took."""

    status: Status
    trace: Trace | None
    target: int | None
    depth: int | None
    seconds: float


def bmc_progress(
    variant: Variant,
    *,
    depth: int,
    timeout: float,
    shortest: bool = True,
) -> ProgressBmc:
    """BMC of :func:`progress_holds` from Init, cooperative on every step, ``T`` frozen.

    One :class:`vmballoon.proofs.unrolling.Unrolling` with :func:`cooperative` as the
    environment of every step and ``T <= T_MAX`` at the start; only the depths where a
    complete tick can have ended are asked (:func:`reach_with_reset`).  With
    ``shortest``, iterative deepening like :func:`vmballoon.proofs.check.bmc_all`
    (:func:`vmballoon.proofs.unrolling.shortest`, one depth a query): the first depth that
    answers is the shortest counterexample; otherwise one query for a violation at any
    depth up to ``depth`` (cheaper; the depth reported is the first violating state of the
    trace found).
    """
    t0 = time.monotonic()
    t = target_const()
    reached = reach_with_reset(depth)
    u = Unrolling(
        {"s": variant},
        depth,
        reach=[locs for locs, _ in reached],
        start=lambda _: [z3.ULE(t, bv32(T_MAX))],
        env=lambda s, i: cooperative(s, i, t, variant),
    )
    ks = _tick_ends(reached)

    def holds(k: int) -> Expr:
        return progress_holds(u.state(k), t)

    def least(m: Any, lo: int, hi: int) -> int:
        return next(
            k for k in ks if lo <= k <= hi and z3.is_false(m.eval(holds(k), model_completion=True))
        )

    ask = query(
        u.steps,
        lambda lo, hi: [z3.Not(holds(k)) for k in ks if lo <= k <= hi],
        timeout=timeout,
        least=least,
        keep=True,
        skip=lambda lo, hi: not any(lo <= k <= hi for k in ks),
    )
    if shortest:
        r = first_depth(ask, 0, depth, window=False)
        m, k, unknown = r.model, r.depth, r.unknown
    elif ks:
        a = ask(ks[0], ks[-1])
        m, k, unknown = a.model, a.depth if a.model is not None else ks[0], a.result == z3.unknown
    else:
        m, k, unknown = None, depth, False
    if m is None:
        status = Status.UNKNOWN if unknown else Status.NO_CEX
        return ProgressBmc(status, None, None, k if unknown else depth, time.monotonic() - t0)
    trace = u.trace(m, k)
    return ProgressBmc(Status.VIOLATED, trace, int(value_of(m, t)), k, time.monotonic() - t0)


__all__ = [
    "GLOBAL",
    "TICK",
    "T_MAX",
    "ProgressBmc",
    "Proof",
    "bmc_progress",
    "cooperative",
    "in_range",
    "progress_holds",
    "prove",
    "rank",
    "target_const",
]
