"""The encoding's transition relation and BMC's location pruning (vmballoon/proofs/encoding.py).

``transition`` folds the per-location successors into one relation for bounded
model checking, ``reachable_locs`` prunes it by depth; ``verify --variant fixed``
uses neither (Houdini steps each location), so they are checked here directly.
"""

from __future__ import annotations

import itertools

import pytest
import z3

from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.model.state import Loc
from vmballoon.proofs.encoding import (
    FIELD_NAMES,
    TRANSITIONS,
    loc_val,
    make_inputs,
    make_state,
    reachable_locs,
    successor,
    transition,
)


@pytest.mark.parametrize("depth", [None, 1, 2, 3])
@pytest.mark.parametrize("variant", [SEED, FIXED], ids=lambda v: v.name)
def test_transition_is_the_successor_of_each_location(variant: Variant, depth: int | None) -> None:
    """Also restricted, as BMC uses it, to the locations reachable at a depth."""
    s, i, t = make_state("s_"), make_inputs("i_"), make_state("t_")
    locs = None if depth is None else reachable_locs(depth)[depth]
    rel = transition(s, i, t, variant, locs)
    for loc in TRANSITIONS if locs is None else [x for x in TRANSITIONS if x in locs]:
        st = successor(loc, s, i, variant)
        differs = z3.Or([t[n] != st.post[n] for n in FIELD_NAMES])
        sol = z3.Solver()
        sol.add(rel, s["loc"] == loc_val(loc), differs)
        assert sol.check() == z3.unsat, f"{loc.name}: transition is not its successor"
        sol = z3.Solver()  # and the relation admits the location's inputs
        sol.add(s["loc"] == loc_val(loc), *st.cons)
        sol.add(z3.Not(z3.Exists([t[n] for n in FIELD_NAMES], rel)))
        assert sol.check() == z3.unsat, f"{loc.name}: transition refuses allowed inputs"
        if st.cons:  # and admits no input the location's constraints refuse
            sol = z3.Solver()
            sol.add(rel, s["loc"] == loc_val(loc), z3.Not(z3.And(*st.cons)))
            assert sol.check() == z3.unsat, f"{loc.name}: transition admits refused inputs"


def test_reachable_locations_by_depth() -> None:
    """From IDLE (module init done): a work tick resets first (W_BEGIN, R_CLEANUP, ...),
    the shortest way to a lock is IDLE, W_BEGIN, W_TARGET, I_LOOP, I_LOCK; exit takes
    E_CLEANUP, E_START0, E_POP, EXITED; a crash is first possible at R_POP (depth 3) or
    I_LOOP (depth 3), so CRASHED at depth 4.  IDLE stays put, so the sets only grow."""
    reach = reachable_locs(14)
    assert len(reach) == 15 and reach[0] == {Loc.IDLE}
    first = {loc: min(k for k, r in enumerate(reach) if loc in r) for loc in reach[-1]}
    assert set(first) == set(Loc)
    expected = {
        Loc.W_BEGIN: 1,
        Loc.E_CLEANUP: 1,
        Loc.R_CLEANUP: 2,
        Loc.W_TARGET: 2,
        Loc.I_LOOP: 3,
        Loc.D_LOOP: 3,
        Loc.I_LOCK: 4,
        Loc.D_UNLOCK: 4,
        Loc.EXITED: 4,
        Loc.CRASHED: 4,
    }
    assert {loc: first[loc] for loc in expected} == expected
    assert all(a <= b for a, b in itertools.pairwise(reach))


@pytest.mark.parametrize("depth", [None, 0, 1, 5])
def test_transition_admits_no_location_outside_its_set(depth: int | None) -> None:
    """``transition(..., locs)`` steps only from a location of ``locs`` (or of TRANSITIONS,
    every location, when None): no state elsewhere, and no value of ``loc`` that names no
    location, has a successor.  The per-location queries rely on it
    (``proofs.defects.fix_locations`` asks one location at a time)."""
    s, i, t = make_state("s_"), make_inputs("i_"), make_state("t_")
    locs = None if depth is None else reachable_locs(depth)[depth]
    rel = transition(s, i, t, FIXED, locs)
    allowed = set(TRANSITIONS) if locs is None else set(locs)
    for loc in Loc:
        sol = z3.Solver()
        sol.add(rel, s["loc"] == loc_val(loc))
        assert (sol.check() == z3.sat) == (loc in allowed), loc.name
    sol = z3.Solver()
    sol.add(rel, z3.UGT(s["loc"], z3.BitVecVal(max(int(x) for x in Loc), 8)))
    assert sol.check() == z3.unsat, "a loc value that names no location steps"
    for loc in sorted(allowed)[:3]:  # one location alone, as fix_locations asks it
        sol = z3.Solver()
        sol.add(transition(s, i, t, FIXED, frozenset({loc})), s["loc"] == loc_val(loc))
        assert sol.check() == z3.sat, loc.name


def test_well_formed_admits_every_location_and_no_other_value() -> None:
    """``well_formed`` bounds ``loc`` to the locations: each of them (CRASHED, the
    largest, included: a crashed seed state is a state of the encoding too, and Houdini
    would otherwise drop the conjunct on SEED) is admitted, the next value is not."""
    from vmballoon.proofs.encoding import well_formed

    s = make_state("s_")
    for loc in Loc:
        sol = z3.Solver()
        sol.add(well_formed(s), s["loc"] == loc_val(loc))
        assert sol.check() == z3.sat, loc.name
    sol = z3.Solver()
    sol.add(well_formed(s), s["loc"] == z3.BitVecVal(max(int(x) for x in Loc) + 1, 8))
    assert sol.check() == z3.unsat


def test_an_instance_of_the_relation_speaks_only_of_its_own_states() -> None:
    """``transition`` is built once over template constants and instantiated by
    substitution: an instance names exactly the states and inputs it was given (no
    template constant left over), and two instances differ only by their names."""
    names: set[str] = set()
    seen: set[int] = set()

    def collect(e: z3.ExprRef) -> None:  # over the DAG, each node once
        todo = [e]
        while todo:
            x = todo.pop()
            if x.get_id() in seen:
                continue
            seen.add(x.get_id())
            if z3.is_const(x) and x.decl().kind() == z3.Z3_OP_UNINTERPRETED:
                names.add(x.decl().name())
            todo.extend(x.children())

    s, i, t = make_state("a_"), make_inputs("b_"), make_state("c_")
    locs = reachable_locs(3)[3]
    collect(transition(s, i, t, SEED, locs))
    assert names and all(n[:2] in ("a_", "b_", "c_") for n in names), sorted(names)[:5]
    s2, i2, t2 = make_state("x_"), make_inputs("y_"), make_state("z_")
    pairs = [(s[n], s2[n]) for n in s] + [(i[n], i2[n]) for n in i] + [(t[n], t2[n]) for n in t]
    renamed = z3.substitute(transition(s, i, t, SEED, locs), *pairs)
    assert renamed.eq(transition(s2, i2, t2, SEED, locs))
