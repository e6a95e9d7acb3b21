"""Vacuity checks that mean something: totality, reachability, and Init against the model.

A proof by induction over the encoding says nothing about a behaviour the
encoding cannot take.  Three checks close the gaps a mere satisfiability check
leaves open:

* **Totality** (:func:`totality`): from every state satisfying the invariant, at every
  control location, some input satisfies the step's constraints (no dead state a
  proof could hide behind).  For each location the check first tries a default
  input chosen from the state (:func:`default_inputs`, a certificate: if the
  constraints hold for it, some input exists); where it does not fit, it asks Z3 the
  quantified question ``∃ s. Inv(s) ∧ loc = L ∧ ∀ i. ¬C_L(s, i)``.
* **Reachability** (:func:`reachability`): every location is reached from ``Init``
  in the encoding.  Certified concretely: model runs of the targeted scenarios
  start at a state whose abstraction satisfies ``Init``, and every step is checked
  to be a step of the encoding (the conformance check), so each location the
  model visits is reachable in the encoding.
* **Init** (:func:`init_agrees`): the abstraction of the model's initial state
  satisfies the encoding's ``Init``, for every frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import z3

from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import Variant
from vmballoon.model.machine import start
from vmballoon.model.properties import initial_ghost
from vmballoon.model.state import Loc
from vmballoon.proofs.abstraction import alpha
from vmballoon.proofs.encoding import (
    TRANSITIONS,
    Expr,
    initial,
    loc_val,
    make_inputs,
    make_state,
    successor,
)
from vmballoon.proofs.solver import qfbv_solver, solver

State = dict[str, Expr]


def default_inputs(s: State, i: State) -> Expr:
    """An input for state ``s`` that satisfies every step's constraints on reachable states:
    the host answers SUCCESS without writing statuses, allocations fail, the deflate
    cursor's head is ``f`` only when ``f`` is its last page."""
    fb = z3.If(s["f_batch"], z3.BitVecVal(1, 32), z3.BitVecVal(0, 32))
    zero32 = z3.BitVecVal(0, 32)
    cs = [
        i["entry"] == z3.BitVecVal(0, 8),
        z3.Not(i["e_present"]),
        i["e_ok"] == s["l_num"] - fb,
        i["e_ref"] == zero32,
        i["e_free"] == zero32,
        i["e_warn"] == zero32,
        i["f_cls"] == z3.BitVecVal(0, 8),
        i["f_rank"] == zero32,
        z3.Not(i["a_ok"]),
        z3.Not(i["a_f"]),
        z3.Not(i["a_hi"]),
        z3.Not(i["a_eqpage"]),
        z3.Not(i["v_ok"]),
        i["h_f"] == z3.And(s["f_cur"], s["ncur"] == z3.BitVecVal(1, 32)),
        z3.Not(i["h_hi"]),
    ]
    return z3.And(cs)


@dataclass
class Totality:
    variant: str
    dead: dict[str, str] = field(default_factory=dict)  # location -> how it was found
    how: dict[str, str] = field(default_factory=dict)  # location -> certificate used
    unknown: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def ok(self) -> bool:
        return not self.dead and not self.unknown


def totality(
    variant: Variant,
    inv: Any,
    timeout: float = 120.0,
    enc: Any = None,
    locs: list[Loc] | None = None,
) -> Totality:
    """For every location, every state satisfying ``inv(s)`` has an input the step admits."""
    from vmballoon.proofs import encoding as default_enc

    enc = enc or default_enc
    t0 = time.monotonic()
    s, i = enc.make_state("s_"), enc.make_inputs("i_")
    out = Totality(variant.name)
    inv_s = inv(s)
    for loc in locs or list(enc.TRANSITIONS):
        st = enc.successor(loc, s, i, variant)
        if not st.cons:
            out.how[loc.name] = "no constraints"
            continue
        cons = z3.And(*st.cons)
        sol = qfbv_solver(timeout)
        sol.add(inv_s, s["loc"] == enc.loc_val(loc), default_inputs(s, i), z3.Not(cons))
        r = sol.check()
        if r == z3.unsat:
            out.how[loc.name] = "default input"
            continue
        sol = solver(timeout)
        sol.add(inv_s, s["loc"] == enc.loc_val(loc), z3.ForAll(list(i.values()), z3.Not(cons)))
        r = sol.check()
        if r == z3.unsat:
            out.how[loc.name] = "quantified"
        elif r == z3.sat:
            out.dead[loc.name] = "a state satisfying the invariant admits no input"
        else:
            out.unknown.append(loc.name)
    out.seconds = time.monotonic() - t0
    return out


def init_agrees(scenario: Scenario, variant: Variant, frames: list[int]) -> list[str]:
    """Frames ``f`` for which α(model's initial state) does not satisfy ``Init``."""
    state = start(scenario, variant)
    s = make_state("s_")
    init = initial(s)
    bad = []
    for f in frames:
        a = alpha(state, initial_ghost(), f)
        subs = [
            (s[n], z3.BoolVal(bool(v)) if isinstance(v, bool) else z3.BitVecVal(v, s[n].size()))
            for n, v in a.items()
        ]
        if not z3.is_true(z3.simplify(z3.substitute(init, *subs))):
            bad.append(str(f))
    return bad


@dataclass
class Reachability:
    variant: str
    reached: dict[str, int] = field(default_factory=dict)  # location -> steps checked there
    mismatches: list[str] = field(default_factory=list)
    init_failures: list[str] = field(default_factory=list)
    not_representable: int = 0

    def missing(self, expected: list[Loc]) -> list[str]:
        return [loc.name for loc in expected if loc.name not in self.reached]


def reachability(variant: Variant, scenarios: list[Scenario]) -> Reachability:
    """Locations reached from Init by model runs whose every step is an encoding step."""
    from vmballoon.proofs.abstraction import candidate_frames
    from vmballoon.proofs.conformance import Conformance, sample_of, transitions_of

    checker = Conformance(variant)
    out = Reachability(variant.name)
    for sc in scenarios:
        first = True
        for prev, nxt, g0, g1, found in transitions_of(sc, variant, 100_000):
            if first:
                frames = candidate_frames(prev, nxt)[:3]
                out.init_failures += init_agrees(sc, variant, frames)
                first = False
            # one watched frame suffices for reachability of the location
            f = (candidate_frames(prev, nxt) or [0])[0]
            smp = sample_of(prev, nxt, g0, g1, found, f)
            if smp is None:  # not representable
                out.not_representable += 1
                break  # the chain of checked steps is broken: later locations do not count
            mism = checker.mismatches(smp.loc, smp.pre, smp.inputs, smp.post)
            if mism:
                out.mismatches.append(f"{prev.loc.name}: {mism[:3]}")
                break
            out.reached[prev.loc.name] = out.reached.get(prev.loc.name, 0) + 1
            out.reached.setdefault(nxt.loc.name, 0)
    return out


__all__ = [
    "Reachability",
    "Totality",
    "default_inputs",
    "init_agrees",
    "reachability",
    "totality",
]

_ = (TRANSITIONS, loc_val, make_inputs, successor)
