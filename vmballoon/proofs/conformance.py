"""Conformance of the Z3 encoding with the model, on concrete states.

For a concrete transition ``s -> s'`` of the model and a frame ``f``, the
encoding's successor of α(s) under the inputs read off the transition must be
α(s') on every encoded field, and the encoding's input constraints must hold
(otherwise the encoding would exclude a behaviour of the model, and a proof would
be unsound).  The successor is a function of the state and the inputs, so
"admits α(s') and nothing else" is one check: substitute the constants and let
Z3 simplify ``constraints ∧ ⋀ post[field] == α(s')[field]`` to ``True``.

:func:`random_scenario` draws scenarios that reach every control location:
scripted hosts answering SUCCESS, RESET, refusals and random capabilities and
batch statuses; allocators that fail now and then; pools above 2**32.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import z3

from vmballoon.core.protocol import (
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BATCHED_2M,
    CAP_SIGNALLED_WAKEUP,
    ERROR_PPN_PINNED,
    ERROR_RESET,
    SUCCESS_WITH_CAPABILITIES,
)
from vmballoon.core.scenario import Response, Scenario
from vmballoon.core.variants import Variant
from vmballoon.model.machine import enter, start, step
from vmballoon.model.properties import Ghost, initial_ghost, observe_frames
from vmballoon.model.state import Loc, State
from vmballoon.proofs.abstraction import (
    NotRepresentable,
    Values,
    alpha,
    candidate_frames,
    step_inputs,
)
from vmballoon.proofs.encoding import (
    FIELDS,
    INPUTS,
    TRANSITIONS,
    B,
    Step,
    make_inputs,
    make_state,
    successor,
)

_KINDS = dict(FIELDS) | dict(INPUTS)


_CONSTS: dict[tuple[int | str, int], Any] = {}


def _const(name: str, value: int | bool) -> Any:
    kind = _KINDS[name]
    key = (kind, int(value))
    c = _CONSTS.get(key)
    if c is None:
        if kind == B:
            c = z3.BoolVal(bool(value))
        else:
            assert isinstance(kind, int)
            c = z3.BitVecVal(int(value) % (1 << kind), kind)
        if len(_CONSTS) < 100_000:
            _CONSTS[key] = c
    return c


class Conformance:
    """The encoding of one variant, ready to be compared with concrete steps."""

    def __init__(self, variant: Variant, enc: ModuleType | None = None) -> None:
        """``enc``: the encoding module (default :mod:`vmballoon.proofs.encoding`; tests pass
        mutants)."""
        self.variant = variant
        mk_state = make_state if enc is None else enc.make_state
        mk_inputs = make_inputs if enc is None else enc.make_inputs
        succ = successor if enc is None else enc.successor
        self.s = mk_state("s_")
        self.i = mk_inputs("i_")
        self.o = mk_state("o_")  # the expected successor
        self.steps: dict[Loc, Step] = {}
        self.full: dict[Loc, Any] = {}
        self.crash: dict[Loc, Any] = {}
        for loc in TRANSITIONS:
            st = succ(loc, self.s, self.i, variant)
            post = {n: z3.simplify(e) for n, e in st.post.items()}
            cons = z3.simplify(z3.And(*st.cons))
            self.steps[loc] = Step(post, [cons])
            eqs = [post[n] == self.o[n] for n in post]
            self.full[loc] = z3.simplify(z3.And(cons, *eqs))
            self.crash[loc] = z3.simplify(z3.And(cons, post["loc"] == self.o["loc"]))
        self.names = (
            [("s", n) for n in self.s] + [("i", n) for n in self.i] + [("o", n) for n in self.o]
        )
        srcs = (
            [self.s[n] for n in self.s] + [self.i[n] for n in self.i] + [self.o[n] for n in self.o]
        )
        self.n = len(srcs)
        self.src = (z3.Ast * self.n)()
        for k, e in enumerate(srcs):
            self.src[k] = e.as_ast()
        self.ctx = self.s["loc"].ctx

    def _agree(self, formula: Any, pre: Values, inputs: Values, post: Values) -> bool:
        dst = (z3.Ast * self.n)()
        vals = {"s": pre, "i": inputs, "o": post}
        for k, (where, n) in enumerate(self.names):
            dst[k] = _const(n, vals[where][n]).as_ast()
        ctx = self.ctx.ref()
        r = z3.Z3_substitute(ctx, formula.as_ast(), self.n, self.src, dst)
        z3.Z3_inc_ref(ctx, r)
        r2 = z3.Z3_simplify(ctx, r)
        z3.Z3_inc_ref(ctx, r2)
        ok: bool = z3.Z3_is_eq_ast(ctx, r2, z3.BoolVal(True).as_ast())
        z3.Z3_dec_ref(ctx, r2)
        z3.Z3_dec_ref(ctx, r)
        return ok

    def mismatches(self, loc: Loc, pre: Values, inputs: Values, post: Values) -> list[str]:
        """Fields where the encoding's successor differs from ``post`` (``"constraints"``
        when the encoding rules out these inputs); empty when they agree."""
        crashed = post["loc"] == int(Loc.CRASHED)
        formula = self.crash[loc] if crashed else self.full[loc]
        if self._agree(formula, pre, inputs, post):
            return []
        subs = [(self.s[n], _const(n, v)) for n, v in pre.items()]
        subs += [(self.i[n], _const(n, v)) for n, v in inputs.items()]
        st = self.steps[loc]
        bad = []
        if not z3.is_true(z3.simplify(z3.substitute(z3.And(*st.cons), *subs))):
            bad.append("constraints")
        for n in ["loc"] if crashed else list(post):
            got = z3.simplify(z3.substitute(st.post[n], *subs))
            if not z3.is_true(z3.simplify(got == _const(n, post[n]))):
                bad.append(f"{n}: encoding {got}, model {post[n]}")
        return bad


# -- random concrete traces ------------------------------------------------------------------

_CAPS = [
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BASIC | CAP_BATCHED,
    CAP_BASIC | CAP_BATCHED | CAP_BATCHED_2M,
    CAP_BATCHED | CAP_BATCHED_2M | CAP_SIGNALLED_WAKEUP,
    CAP_BASIC | CAP_BATCHED_2M,
    CAP_BATCHED_2M,
    CAP_BASIC | CAP_SIGNALLED_WAKEUP,
    0x1E,
    0,
]


def random_scenario(rng: random.Random) -> Scenario:
    """A scenario that exercises resets, both command sets, refusals, failures, wrap-around."""
    frames = rng.choice([40, 600, 1100, 1600, 3000])
    pfn_base = rng.choice([0, 0, 512, 7, (1 << 32) - 300, 1 << 32, (1 << 32) + 512, (1 << 40) + 3])
    totalram = rng.choice([None, None, None, 1 << 33, 5])
    steps = tuple(
        rng.choices(["work", "doorbell", "exit"], weights=[12, 3, 1], k=rng.randint(2, 8))
    )
    hv = []
    for _ in range(rng.randint(0, 90)):
        status = rng.choice(
            [0] * 10
            + [SUCCESS_WITH_CAPABILITIES] * 4
            + [7, 1, 4, 5, 6, 8, (1 << 32) + 7, 2**32 - 1]
        )
        result = rng.choice(
            [0, 0, 1, 5, 100, 513, 1100, 2500, 2**32 - 1, (1 << 32) + 5, *(_CAPS * 2)]
        )
        entries = None
        if rng.random() < 0.4:
            entries = tuple(
                rng.choice([0, 0, 0, 0, 5, 2, 7, 6, 3, 1, 0x20]) for _ in range(rng.randint(0, 12))
            )
        hv.append(Response(status, result, entries))
    alloc = tuple(rng.random() < 0.85 for _ in range(rng.randint(0, 120)))
    vmci = tuple(rng.random() < 0.7 for _ in range(rng.randint(0, 4)))
    return Scenario(
        steps=steps,
        frames=frames,
        pfn_base=pfn_base,
        totalram_pages=totalram,
        hv=tuple(hv),
        alloc=alloc,
        vmci=vmci,
    )


@dataclass
class Sample:
    """One concrete step seen from one frame: what the conformance check needs."""

    loc: Loc
    pre: Values
    inputs: Values
    post: Values


@dataclass
class Coverage:
    skipped: int = 0


def transitions_of(
    scenario: Scenario, variant: Variant, limit: int
) -> Iterator[tuple[State, State, Ghost, Ghost, list[tuple[str, str, int | None]]]]:
    """The transitions of a replay with the ghost before and after each."""
    state = start(scenario, variant)
    ghost = initial_ghost()
    n = 0
    for name in scenario.steps:
        if state.loc in (Loc.EXITED, Loc.CRASHED):
            return
        nxt = enter(state, name)
        while True:
            new_ghost, found = observe_frames(state, nxt, ghost)
            yield state, nxt, ghost, new_ghost, found
            state, ghost = nxt, new_ghost
            n += 1
            if n >= limit or state.loc in (Loc.IDLE, Loc.EXITED, Loc.CRASHED):
                break
            nxt = step(state)
        if n >= limit:
            return


def sample_of(
    prev: State,
    nxt: State,
    g0: Ghost,
    g1: Ghost,
    found: list[tuple[str, str, int | None]],
    f: int,
    counts: Coverage | None = None,
) -> Sample | None:
    """The step ``prev -> nxt`` (ghosts ``g0``, ``g1``; violations ``found``, as
    :func:`transitions_of` yields them) seen from frame ``f``; None when the abstraction
    cannot represent it (``NotRepresentable``, counted in ``counts.skipped``)."""
    proto = any(n == "protocol" for n, _, _ in found)
    bad = any(n == "free_order" and p == f for n, _, p in found)
    held = any(n == "host_agreement" and p == f for n, _, p in found)
    try:
        pre = alpha(prev, g0, f)
        post = alpha(nxt, g1, f, bad_free=bad, freed_held=held, proto_bad=proto)
    except NotRepresentable:
        if counts is not None:
            counts.skipped += 1
        return None
    return Sample(prev.loc, pre, step_inputs(prev, nxt, f), post)


def samples(
    rng: random.Random,
    variant: Variant,
    count: int,
    frames_per_step: int = 3,
    counts: Coverage | None = None,
) -> Iterator[Sample]:
    """``count`` samples from random scenarios, a few frames per concrete step (abstraction
    failures, ``NotRepresentable``, are counted in ``counts.skipped``)."""
    made = 0
    while made < count:
        scenario = random_scenario(rng)
        for prev, nxt, g0, g1, found in transitions_of(scenario, variant, 400):
            frames = candidate_frames(prev, nxt)
            rng.shuffle(frames)
            for f in frames[:frames_per_step]:
                smp = sample_of(prev, nxt, g0, g1, found, f, counts)
                if smp is None:
                    continue
                yield smp
                made += 1
                if made >= count:
                    return


# -- targeted scenarios: the situations random scenarios rarely reach ---------------------------


def targeted_scenarios() -> dict[str, Scenario]:
    """Scenarios for a 2 MiB balloon popped at reset and at exit, full unlock batches of 512
    pages, a refused list overflowing (17 refusals in one batch: 16 kept, 1 freed), and the
    2 MiB fallback locking 0 pages through batched ops whose batch page pop has freed (a
    START granting only BATCHED_2M_CMDS keeps the old ops, lines 1078-1092; line 848)."""
    return {
        "two_mib_reset_exit": _two_mib_reset_exit(),
        "full_unlock_batches": _full_unlock_batches(),
        "refused_overflow": _refused_overflow(),
        "stale_batched_ops": _stale_batched_ops(),
    }


_CAPS_2M = CAP_BASIC | CAP_BATCHED | CAP_BATCHED_2M
"""The capabilities of a host that grants the 2 MiB batched commands."""
_CAPS_4K = CAP_BASIC | CAP_BATCHED
"""The capabilities of a host that grants the batched commands, 4 KiB pages only."""


def _two_mib_reset_exit() -> Scenario:
    """A balloon of 3 x 2 MiB pages popped at a reset, inflated again, popped at exit."""
    r = Response
    swc = SUCCESS_WITH_CAPABILITIES
    return Scenario(
        steps=("work", "work", "work", "exit"),
        frames=4096,
        hv=(
            r(0),
            r(swc, _CAPS_2M),
            r(0),
            r(0, 1536),
            r(0, 1536),  # reset, inflate 3 x 2 MiB
            r(7),  # GET_TARGET answered RESET
            r(0),
            r(swc, _CAPS_2M),
            r(0),
            r(0, 1536),
            r(0, 1536),  # reset pops them, inflate
            r(0),
            r(0),  # exit: DOORBELL_SET, START(0), then pop
        ),
    )


def _full_unlock_batches() -> Scenario:
    """A balloon of 1100 pages deflated to 0 in full unlock batches of 512 pages."""
    r = Response
    swc = SUCCESS_WITH_CAPABILITIES
    return Scenario(
        steps=("work", "work"),
        frames=3000,
        hv=(
            r(0),
            r(swc, _CAPS_4K),
            r(0),
            r(0, 1100),
            r(0, 1100),
            r(0, 1100),
            r(0, 1100),
            r(0, 0),
            r(0, 0),
            r(0, 0),
            r(0, 0),  # deflate to 0: batches of 512, 512, 76
        ),
    )


def _refused_overflow() -> Scenario:
    """A refused list overflowing: 17 refusals in one batch (16 kept, 1 freed)."""
    r = Response
    swc = SUCCESS_WITH_CAPABILITIES
    return Scenario(
        steps=("work", "work"),
        frames=200,
        hv=(
            r(0),
            r(swc, _CAPS_4K),
            r(0),
            r(0, 20),
            r(0, 20, (ERROR_PPN_PINNED,) * 17 + (0, 0, 0)),  # 17 refusable statuses
            r(0, 40),
            r(0, 40, (ERROR_PPN_PINNED,) * 20),
        ),
    )


def _stale_batched_ops() -> Scenario:
    """The 2 MiB fallback (line 848) locking 0 pages through batched ops whose batch page
    pop has freed: a START granting only BATCHED_2M_CMDS keeps the old ops (lines
    1078-1092)."""
    r = Response
    swc = SUCCESS_WITH_CAPABILITIES
    return Scenario(
        steps=("work", "work"),
        frames=4096,
        hv=(
            r(0),
            r(swc, _CAPS_2M),
            r(0),
            r(ERROR_RESET),  # batched, then RESET
            r(0),
            r(swc, CAP_BATCHED_2M),
            r(0),
            r(0, 1024),  # pop frees the batch page
        ),
        alloc=(True, False),  # the batch page; the first 2 MiB page fails: lock 0 pages
    )


def scenario_samples(
    scenario: Scenario, variant: Variant, counts: Coverage | None = None, frames: int = 3
) -> Iterator[Sample]:
    """Every step of ``scenario`` seen from its first ``frames`` candidate frames (the ones
    the step touches come first); abstraction failures are counted in ``counts.skipped``."""
    for prev, nxt, g0, g1, found in transitions_of(scenario, variant, 1_000_000):
        for f in candidate_frames(prev, nxt)[:frames]:
            smp = sample_of(prev, nxt, g0, g1, found, f, counts)
            if smp is not None:
                yield smp
