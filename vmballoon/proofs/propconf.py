"""Property conformance: each encoded property says of every frame what the model's says.

The proofs are about the encoded properties ``P̂`` of :mod:`vmballoon.proofs.props` over one
symbolic frame ``f``.  Section 5 of ``spec/encoding-argument.md`` argues that for every
model state ``s``, ``P(s)`` iff ``P̂(α_f(s))`` for every frame ``f``; this module checks
it on concrete model states, for the 13 state properties and ``progress``:

* ``P(s)``: the predicate of :mod:`vmballoon.model.properties` on ``s`` and its ghost, and for
  the properties with a transition part (``free_order``, ``protocol``, the
  freed-while-held half of ``host_agreement``) no violation of it so far along the run
  (the encoding keeps those as sticky flags: ``bad_free``, ``proto_bad``,
  ``freed_held``);
* ``∀f. P̂(α_f(s))``: the encoded property evaluated on the abstraction seen from every
  frame that is in any role (allocated, listed, in the batch, the batch page,
  ``b->page``, held by the host, freed badly), a free frame and a frame outside the
  pool: every other frame has the same abstraction as the free one up to its PFN, and
  the encoded properties do not read the PFN (checked: the abstractions are compared on
  the fields the properties read, so one that read ``f_pfn`` would be evaluated for
  every frame);
* ``progress``: where the model's predicate applies (after a work tick in which every
  progress assumption held, at IDLE with no reset pending, a target read),
  ``progress_holds(α(s), T)`` of :mod:`vmballoon.proofs.progress` with ``T`` that target.

The states: every pre- and post-state of the witness check's concrete steps, the
*boundary* states (every situation of ``f`` that :func:`vmballoon.proofs.concretize.representable`
admits at IDLE, built by γ, with small lists), the targeted scenarios of
:mod:`vmballoon.proofs.conformance`, cooperative runs for ``progress``, the checked-in
counterexamples of ``spec/findings`` (reachable states where properties fail), and
random scenarios; of a run, the states at the ends of loops and ticks and after every
step with a transition violation; and the *neighbour* states, one edit of the model state
or its ghost away from the first reached state of each shape
(:mod:`vmballoon.proofs.neighbours`), where a property fails in the way of one clause (a
weakened ``P̂`` shows there and nowhere a correct driver reaches).
A state the abstraction cannot represent is counted, not checked.  For each property
the report says in how many checked states it held and failed: one never seen failing
is *blind* (a weakened ``P̂`` could not be told apart there) and is listed.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import z3

from vmballoon.core import intervals as iv
from vmballoon.core.env import Memory
from vmballoon.core.protocol import CAP_BASIC, CAP_BATCHED, MAX_REFUSED, SUCCESS_WITH_CAPABILITIES
from vmballoon.core.scenario import Response, Scenario
from vmballoon.core.variants import Variant
from vmballoon.model.machine import balloon_pages
from vmballoon.model.plist import PList, to_list
from vmballoon.model.properties import (
    STATE_PROPERTIES,
    Ghost,
    allocated_runs,
    in_flight,
    owners,
)
from vmballoon.model.state import Loc, State
from vmballoon.proofs.abstraction import NotRepresentable, allocation_in, alpha
from vmballoon.proofs.encoding import make_state
from vmballoon.proofs.neighbours import neighbours
from vmballoon.proofs.props import PROPERTIES
from vmballoon.proofs.solver import qfbv_solver
from vmballoon.proofs.witness import Concrete1, Status
from vmballoon.proofs.zeval import Program, nodes

NAMES: tuple[str, ...] = (*PROPERTIES, "progress")
FRAME_FIELDS = (
    "f_pfn",
    "f_alloc",
    "f_o9",
    "f_list",
    "f_cur",
    "f_batch",
    "f_bpage",
    "f_page",
    "f_host",
    "bad_free",
    "freed_held",
)
L4, L2, R4, R2, NONE = 1, 2, 3, 4, 0
REACHED = frozenset({"targeted", "random"})
"""Sources whose states model runs reached from the initial state."""
U32 = 0xFFFFFFFF
CHECKPOINTS = frozenset(
    {
        Loc.IDLE,
        Loc.EXITED,
        Loc.CRASHED,
        Loc.W_TARGET,
        Loc.I_TAIL,
        Loc.I_END,
        Loc.D_TAIL,
        Loc.R_OPS,
        Loc.R_GUEST_ID,
        Loc.E_POP,
    }
)
"""Where the states of a run are checked: the ends of loops and ticks, the reset, and the
steps before and after them (and every step with a transition violation)."""


@dataclass
class Mismatch:
    prop: str
    source: str  # witness / boundary / targeted / random / neighbour
    model: bool  # P(s)
    encoding: bool  # for every frame, P̂(α_f(s))
    detail: str

    @property
    def unsound(self) -> bool:
        """The encoding says the property holds of every frame where the model's fails:
        a proof of ``P̂`` would claim ``P`` where it is false."""
        return self.encoding and not self.model


@dataclass
class PropConformance:
    """The outcome on one variant."""

    variant: str
    states: Counter[str] = field(default_factory=Counter)  # checked states by source
    unrepresentable: int = 0  # states α cannot represent (not checked)
    held: Counter[str] = field(default_factory=Counter)  # property -> states where P held
    failed: Counter[str] = field(default_factory=Counter)  # property -> states where P failed
    mismatches: list[Mismatch] = field(default_factory=list)
    overlaps: int = 0  # unreached states whose claims overlap across first frames (ownership)
    seconds: float = 0.0

    @property
    def blind(self) -> list[str]:
        """Properties never seen failing: a weakened encoding of them would pass here."""
        return [n for n in NAMES if self.failed[n] == 0]

    @property
    def failing(self) -> list[Mismatch]:
        """Disagreements that fail the check: every one on a state a model run reached, and
        on the other states (witness and boundary states, built by γ and not necessarily
        reachable) every one where the encoding is weaker than the model."""
        return [m for m in self.mismatches if m.unsound or m.source in REACHED]

    @property
    def stricter(self) -> list[Mismatch]:
        """The encoding stricter than the model on a state no run was seen to reach (kept:
        proving a stricter property proves the model's)."""
        return [m for m in self.mismatches if m not in self.failing]

    @property
    def status(self) -> Status:
        return Status.FAILED if self.failing else Status.PASSED

    def problems(self) -> list[str]:
        out = []
        for m in self.failing[:10]:
            out.append(
                f"property {m.prop} ({m.source} state): the model says "
                f"{'holds' if m.model else 'fails'}, the encoding for every frame says "
                f"{'holds' if m.encoding else 'fails'}: {m.detail}"
            )
        if len(self.failing) > 10:
            out.append(f"... {len(self.failing) - 10} more property disagreements")
        return out

    def line(self) -> str:
        n = sum(self.states.values())
        by = ", ".join(f"{k} {v}" for k, v in sorted(self.states.items()))
        blind = f"; never seen failing: {', '.join(self.blind)}" if self.blind else ""
        if self.overlaps:
            blind += (
                f"; ownership not compared on {self.overlaps} unreached states whose "
                "claims overlap across first frames"
            )
        if self.stricter:
            blind += (
                f"; the encoding stricter on {len(self.stricter)} unreached states "
                f"({', '.join(sorted({m.prop for m in self.stricter}))})"
            )
        return (
            f"property conformance ({self.variant}): P(s) iff P-hat(alpha_f(s)) for every "
            f"frame, for the {len(PROPERTIES)} state properties and progress, on {n} model "
            f"states ({by}; {self.unrepresentable} not representable){blind} "
            f"({self.seconds:.1f}s): {self.status.value}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "status": self.status.value,
            "states": dict(self.states),
            "unrepresentable": self.unrepresentable,
            "held": dict(self.held),
            "failed": dict(self.failed),
            "blind": self.blind,
            "mismatches": len(self.failing),
            "stricter": len(self.stricter),
            "overlaps": self.overlaps,
            "seconds": round(self.seconds, 1),
            "problems": self.problems(),
        }


# -- the abstraction of every frame at once ------------------------------------------------


def frames_of(state: State, ghost: Ghost, flagged: Iterable[int] = (), ends: int = 16) -> list[int]:
    """The frames whose abstractions can differ from a free frame's (up to the PFN): every
    frame in a role (in the batch, the cursor, the batch page, ``b->page``, held, freed
    badly) and, of a page list longer than ``2 * ends``, its first and last ``ends`` pages
    and every page whose alignment makes its abstraction differ from its neighbours' (a
    512-aligned page on a 4 KiB list, an unaligned one on a 2 MiB list: the others of a
    list share one abstraction, allocated at the list's order); every first frame of a
    claim (:func:`vmballoon.model.properties.owners`) claimed twice or not allocated; the
    first frames of the
    allocated runs (between ticks: of the runs no owner covers) and blocks; a free frame
    and one outside the pool."""
    d = state.drv
    out: set[int] = set(ghost.held) | set(flagged) | set(in_flight(state))
    out |= set(to_list(state.loop.cursor))
    for p in (d.page, d.batch_page):
        if p is not None:
            out.add(p)
    p4, p2 = balloon_pages(state)
    lists = ((p4, False), (p2, True), (to_list(d.refused[0]), False), (to_list(d.refused[1]), True))
    for lst, two_m in lists:
        if len(lst) <= 2 * ends:
            out.update(lst)
            continue
        out.update(lst[:ends])
        out.update(lst[-ends:])
        out.update(p for p in lst if (p % 512 == 0) != two_m)
    mem = state.env.memory
    claims = owners(state)
    firsts = Counter(p for _, p, _ in claims)  # claimed twice or not allocated: seen
    out.update(p for p, c in firsts.items() if c > 1)
    out.update(_not_allocated(sorted(firsts), mem))
    runs = allocated_runs(state)
    if state.loc in (Loc.IDLE, Loc.EXITED):  # the frames allocated and owned by nothing
        runs = iv.remove_all(runs, ((pfn, pfn + n) for _, pfn, n in claims))
    for s_, e_ in runs[:64]:  # an allocated run: its first frame and first blocks' frames
        out.add(s_)
        first = s_ + (-s_) % 512
        out.update(range(first, min(e_, first + 512 * 8), 512))
    for b_s, _ in mem.blocks[:64]:
        out.add(b_s << 9)
    if mem.free:
        out.add(mem.free[0][0])
    out.add(mem.end)
    return sorted(p for p in out if 0 <= p < (1 << 52))


def _not_allocated(pfns: list[int], mem: Memory) -> list[int]:
    """Those of the sorted ``pfns`` the allocator does not have out (outside the pool or
    free): one bisection per free run, not one lookup per frame."""
    lo, hi = bisect_left(pfns, mem.base), bisect_left(pfns, mem.end)
    out = pfns[:lo] + pfns[hi:]
    for s_, e_ in mem.free:
        out.extend(pfns[bisect_left(pfns, s_) : bisect_left(pfns, e_)])
    return out


def alpha_frames(
    state: State,
    ghost: Ghost,
    frames: list[int],
    bad: set[int],
    freed_held: set[int],
    proto_bad: bool,
    read: frozenset[str] | None = None,
) -> list[dict[str, int | bool]]:
    """``alpha(state, ghost, f, ...)`` for every ``f`` of ``frames`` (the state's part
    computed once); raises :class:`NotRepresentable` as :func:`alpha` does.  With ``read``
    (the fields the caller reads), frames whose abstractions agree on those fields are
    given once."""
    if not frames:
        return []
    base, views = _frame_views(state, ghost, frames, bad, freed_held, proto_bad, read)
    return [{**base, **dict(zip(FRAME_FIELDS, vals, strict=True))} for vals in views]


def _frame_views(
    state: State,
    ghost: Ghost,
    frames: list[int],
    bad: set[int],
    freed_held: set[int],
    proto_bad: bool,
    read: frozenset[str] | None,
) -> tuple[dict[str, int | bool], list[tuple[int | bool, ...]]]:
    """:func:`alpha_frames` as the state's part (the fields of :func:`alpha` but the
    frame's) and the frame fields (:data:`FRAME_FIELDS`) of each view: what
    :meth:`Checker.state` evaluates without building a dict per view."""
    base = alpha(state, ghost, frames[0], proto_bad=proto_bad)
    d = state.drv
    p4, p2 = balloon_pages(state)
    wanted = set(frames)
    count: dict[int, list[int]] = {}
    for tag, lst in ((L4, p4), (L2, p2), (R4, to_list(d.refused[0])), (R2, to_list(d.refused[1]))):
        for p in [p for p in lst if p in wanted]:
            count.setdefault(p, []).append(tag)
    batch = Counter(in_flight(state))
    cursor = set(to_list(state.loop.cursor))
    kept = [j for j, n in enumerate(FRAME_FIELDS) if read is None or n in read]
    key_of = itemgetter(*kept) if len(kept) > 1 else (lambda v: tuple(v[j] for j in kept))
    seen: set[tuple[Any, ...]] = set()
    out: list[tuple[int | bool, ...]] = []
    held, bp, page = ghost.held, d.batch_page, d.page
    allocation = allocation_in(state.env.memory)
    for f in frames:
        tags = count.get(f, [])
        if len(tags) > 1:
            raise NotRepresentable("f on two lists")
        if batch[f] > 1:
            raise NotRepresentable("f twice in the batch")
        f_alloc, f_o9 = allocation(f)
        vals: tuple[int | bool, ...] = (
            f,
            f_alloc,
            f_o9,
            tags[0] if tags else NONE,
            f in cursor,
            batch[f] > 0,
            bp == f,
            page == f,
            f in held,
            f in bad,
            f in freed_held,
        )
        key = key_of(vals)
        if read is not None and key in seen:
            continue
        seen.add(key)
        out.append(vals)
    return {n: v for n, v in base.items() if n not in _FRAME_SET}, out


_FRAME_SET = frozenset(FRAME_FIELDS)
_PREFIXED = tuple(f"s_{n}" for n in FRAME_FIELDS)


# -- the check ------------------------------------------------------------------------------


@dataclass
class History:
    """The transition violations of a run so far (the encoding's sticky flags)."""

    bad: set[int] = field(default_factory=set)  # frames freed badly
    freed_held: set[int] = field(default_factory=set)  # frames freed while the host held them
    proto: bool = False
    unframed: set[str] = field(default_factory=set)  # violations about no frame

    def after(self, found: list[tuple[str, str, int | None]]) -> History:
        h = History(set(self.bad), set(self.freed_held), self.proto, set(self.unframed))
        for name, _, p in found:
            if name == "protocol":
                h.proto = True
            elif name == "free_order":
                (h.bad.add(p) if p is not None else h.unframed.add(name))
            elif name == "host_agreement":
                (h.freed_held.add(p) if p is not None else h.unframed.add(name))
        return h

    def violated(self, prop: str) -> bool:
        if prop == "protocol":
            return self.proto
        if prop == "free_order":
            return bool(self.bad) or prop in self.unframed
        if prop == "host_agreement":
            return bool(self.freed_held) or prop in self.unframed
        return False


class Checker:
    """Compares ``P`` and ``∀f. P̂`` on model states; accumulates a :class:`PropConformance`."""

    def __init__(
        self, variant: Variant, props: dict[str, Any] | None = None, edit: bool = True
    ) -> None:
        from vmballoon.proofs.progress import progress_holds

        props = PROPERTIES if props is None else props
        s = make_state("s_")
        self.t = z3.BitVec("p_T", 32)
        self.names = list(props)
        exprs = [props[n](s) for n in self.names] + [progress_holds(s, self.t)]
        self.prog = Program(exprs)
        read: set[str] = set()
        for e in exprs:
            read |= _consts(e)
        self.read = frozenset(n[2:] for n in read if n.startswith("s_"))
        self.out = PropConformance(variant.name)
        self.edit = edit
        self.shapes: set[tuple[object, ...]] = set()

    def model_says(self, state: State, ghost: Ghost, hist: History) -> dict[str, bool]:
        out = {}
        for n in self.names:
            fn = STATE_PROPERTIES.get(n)
            ok = fn is None or fn(state, ghost) is None
            out[n] = ok and not hist.violated(n)
        return out

    def state(self, state: State, ghost: Ghost, hist: History, source: str, ends: int = 16) -> None:
        """Check one model state (with its ghost and the run's history); of a long page
        list the first and last ``ends`` pages are among the frames looked at."""
        if state.loop.allocated > U32:  # α keeps the counter mod 2**32: not faithful here
            self.out.unrepresentable += 1
            return
        frames = frames_of(state, ghost, hist.bad | hist.freed_held, ends)
        try:
            base, views = (
                _frame_views(state, ghost, frames, hist.bad, hist.freed_held, hist.proto, self.read)
                if frames
                else ({}, [])
            )
        except NotRepresentable:
            self.out.unrepresentable += 1
            return
        shared: dict[str, int | bool] = {f"s_{n}": x for n, x in base.items()}
        shared["p_T"] = ghost.tick_target & 0xFFFFFFFF
        every = dict.fromkeys(self.names, True)
        prog_hat = True
        for view in views:
            env = dict(shared)
            env.update(zip(_PREFIXED, view, strict=True))
            vals = self.prog.run(env)
            for n, x in zip(self.names, vals, strict=False):
                every[n] = every[n] and bool(x)
            prog_hat = bool(vals[-1])
        says = self.model_says(state, ghost, hist)
        self.out.states[source] += 1
        for n in self.names:
            (self.out.held if says[n] else self.out.failed)[n] += 1
            if (
                n == "ownership"
                and source not in REACHED
                and every[n]
                and not says[n]
                and _overlap_only(state)
            ):
                # claims that overlap with different first frames (a 4 KiB page inside a
                # 2 MiB block on another list): no frame's abstraction shows two owners,
                # as none shows f in two places (section 4: such states are outside R,
                # excluded by the invariant); γ builds them, no run was seen to reach one
                self.out.overlaps += 1
                continue
            if says[n] != every[n]:
                self.out.mismatches.append(
                    Mismatch(n, source, says[n], every[n], _where(state, ghost))
                )
        self._compare_progress(state, ghost, source, prog_hat)

    def _compare_progress(self, state: State, ghost: Ghost, source: str, prog_hat: bool) -> None:
        """Compare the model's ``progress`` with ``prog_hat`` (the encoding's, on the last
        frame :meth:`state` looked at) where the model's predicate applies: a cooperative
        tick just ended."""
        t = ghost.tick_target
        applies = (
            ghost.tick_done
            and state.loc == Loc.IDLE
            and not state.drv.reset_required
            and not ghost.tick_broken
            and t >= 0
        )
        if applies:
            fn = STATE_PROPERTIES["progress"]
            model_ok = fn(state, ghost) is None
            (self.out.held if model_ok else self.out.failed)["progress"] += 1
            if model_ok != prog_hat:
                self.out.mismatches.append(
                    Mismatch("progress", source, model_ok, prog_hat, _where(state, ghost))
                )

    def neighbours(self, state: State, ghost: Ghost, hist: History) -> None:
        """The states one edit away (:mod:`vmballoon.proofs.neighbours`) of the first reached
        state of each shape (control location, which lists hold pages, the pointers, the
        ops table, a reset pending, the host holding pages)."""
        d = state.drv
        shape = (
            state.loc,
            d.ops,
            d.reset_required,
            d.batch_page is None,
            d.page is None,
            bool(ghost.held),
            *(_size_class(x) for x in (*d.pages, *d.refused)),
        )
        if shape in self.shapes:
            return
        self.shapes.add(shape)
        for _, st, g in neighbours(state, ghost):
            self.state(st, g, hist, "neighbour", ends=2)  # an edit moves a list's head

    def run(self, scenario: Scenario, variant: Variant, source: str, limit: int = 2000) -> None:
        """Every state of a replay of ``scenario`` (its first ``limit`` transitions)."""
        from vmballoon.proofs.conformance import transitions_of

        hist = History()
        first = True
        for prev, nxt, g0, g1, found in transitions_of(scenario, variant, limit):
            if first:
                self.state(prev, g0, hist, source)
                first = False
            hist = hist.after(found)
            # the ends of loops and ticks, and every step with a transition violation: the
            # states inside a loop differ from these by one page each
            if found or nxt.loc in CHECKPOINTS or prev.loc in CHECKPOINTS:
                self.state(nxt, g1, hist, source)
            if self.edit:
                self.neighbours(nxt, g1, hist)

    def witness_step(self, one: Concrete1) -> None:
        if one.prev is None or one.nxt is None:
            return
        self.state(one.prev, one.ghost, History(), "witness")
        self.state(one.nxt, one.ghost_after, History().after(one.found), "witness")


def _size_class(lst: PList) -> int:
    """Empty, shorter than ``VMW_BALLOON_MAX_REFUSED + 1`` pages, or not (a list to fill a
    refused list past its bound from)."""
    n = 0
    while lst is not None and n <= MAX_REFUSED:
        n, lst = n + 1, lst[1]
    return 0 if n == 0 else 1 if n <= MAX_REFUSED else 2


def _overlap_only(state: State) -> bool:
    """The state's ownership fault is only claims that overlap with different first frames:
    no first frame is claimed twice and every claimed first frame is allocated (either of
    those shows in the abstraction of that frame)."""
    claims = owners(state)
    firsts = Counter(p for _, p, _ in claims)
    mem = state.env.memory
    return all(c == 1 for c in firsts.values()) and all(mem.allocated(p) for p in firsts)


def _where(state: State, ghost: Ghost) -> str:
    d = state.drv
    return (
        f"at {state.loc.name}, size {d.size}, target {d.target}, lists "
        f"{[len(x) for x in balloon_pages(state)]}, reset {d.reset_required}, "
        f"held {sorted(ghost.held)[:4]}"
    )


def _consts(e: Any) -> set[str]:
    """The names of the state fields and inputs ``e`` reads."""
    return {
        str(x)
        for x in nodes(e, lambda x: True)
        if z3.is_const(x) and x.decl().kind() == z3.Z3_OP_UNINTERPRETED
    }


# -- the states -----------------------------------------------------------------------------


def cooperative_scenarios() -> dict[str, Scenario]:
    """Runs in which every progress assumption holds, so ``progress`` applies: a host
    granting the batched commands (and one granting only the basic ones) that answers
    SUCCESS with a steady target per tick."""
    r = Response
    swc = SUCCESS_WITH_CAPABILITIES
    out = {}
    for name, caps in (("batched", CAP_BASIC | CAP_BATCHED), ("basic", CAP_BASIC)):
        targets = (30, 100, 100, 0)
        hv: list[Response] = [r(0), r(swc, caps), r(0)]
        hv += [r(0, t) for t in targets for _ in range(60)]
        out[f"cooperative_{name}"] = Scenario(
            steps=("work",) * len(targets), frames=400, hv=tuple(hv)
        )
    return out


def finding_scenarios() -> dict[str, Scenario]:
    """The checked-in counterexamples (``spec/findings``): reachable SEED states where
    properties fail, each one's defect alone (replayed on any variant, they are runs)."""
    from vmballoon.core.scenario import load_scenario
    from vmballoon.core.specdata import spec_dir

    return {p.name: load_scenario(p) for p in sorted((spec_dir() / "findings").glob("*.json"))}


def boundary_states(
    variant: Variant,
    limit: int = 400,
    timeout_ms: int = 10_000,
) -> Iterator[tuple[State, Ghost]]:
    """Every situation of the frame ``f`` (its role fields) that γ can build at IDLE,
    with and without a reset pending, lists of at most 3 pages: found by Z3 one at a time,
    each blocked once found."""
    from vmballoon.proofs.concretize import NotConcretizable, concretize, representable
    from vmballoon.proofs.encoding import loc_val, make_inputs

    s, i = make_state("s_"), make_inputs("i_")
    sol = qfbv_solver(timeout_ms / 1000)
    small = [z3.ULE(s[n], z3.BitVecVal(3, 32)) for n in ("n4", "n2", "r4", "r2")]
    sol.add(representable(s), s["loc"] == loc_val(Loc.IDLE), *small)
    sol.add(i["entry"] == z3.BitVecVal(0, 8), z3.Not(i["a_ok"]), z3.Not(i["a_f"]))
    keys = [s[n] for n in (*FRAME_FIELDS[1:9], "reset", "bpage", "page_null")]
    n = 0
    while n < limit and sol.check() == z3.sat:
        m = sol.model()
        vals = [m.eval(k, model_completion=True) for k in keys]
        sol.add(z3.Or([k != v for k, v in zip(keys, vals, strict=True)]))
        a = {k: _py(m.eval(e, model_completion=True)) for k, e in s.items()}
        inp = {k: _py(m.eval(e, model_completion=True)) for k, e in i.items()}
        n += 1
        try:
            c = concretize(Loc.IDLE, a, inp, variant)
        except NotConcretizable:
            continue
        yield c.state, c.ghost


def _py(v: Any) -> int | bool:
    return bool(z3.is_true(v)) if z3.is_bool(v) else int(v.as_long())


def check(
    variant: Variant,
    steps: Iterable[Concrete1] = (),
    random_runs: int = 20,
    seed: int = 1,
    props: dict[str, Any] | None = None,
    boundary: bool = True,
    scenarios: bool = True,
    edit: bool = True,
) -> PropConformance:
    """Property conformance of ``variant`` on the witness steps ``steps`` (from
    ``vmballoon.proofs.witness.check(..., keep_steps=True)``), the boundary states, the targeted and
    cooperative scenarios and ``random_runs`` random scenarios, and with ``edit`` the states
    one edit away from the first reached state of each shape
    (:mod:`vmballoon.proofs.neighbours`).  ``props``: the encoded properties (default
    :data:`vmballoon.proofs.props.PROPERTIES`; tests pass weakened ones)."""
    from vmballoon.proofs.conformance import random_scenario, targeted_scenarios

    t0 = time.monotonic()
    ck = Checker(variant, props, edit=edit)
    for one in steps:
        ck.witness_step(one)
    if boundary:
        for st, g in boundary_states(variant):
            ck.state(st, g, History(), "boundary")
    runs = {**targeted_scenarios(), **cooperative_scenarios(), **finding_scenarios()}
    for sc in runs.values() if scenarios else ():
        ck.run(sc, variant, "targeted")
    rng = random.Random(seed)
    for _ in range(random_runs):
        ck.run(random_scenario(rng), variant, "random", limit=400)
    ck.out.seconds = time.monotonic() - t0
    return ck.out


__all__ = [
    "NAMES",
    "Checker",
    "History",
    "Mismatch",
    "PropConformance",
    "alpha_frames",
    "boundary_states",
    "check",
    "cooperative_scenarios",
    "frames_of",
]
