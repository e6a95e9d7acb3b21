"""The Z3 encoding agrees with the model on random concrete steps (vmballoon/proofs/conformance.py).

For >= 10,000 (state, step, frame) samples per variant, drawn from random
scenarios, the encoding's successor of α(state) under the step's inputs is
α(successor) on every encoded field, and the encoding's input constraints admit
the step.  Every control location must be covered, or the proofs would say
nothing about the transitions left out.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.model.state import Loc
from vmballoon.proofs.conformance import (
    Conformance,
    Coverage,
    samples,
    scenario_samples,
    targeted_scenarios,
)
from vmballoon.proofs.encoding import TRANSITIONS

SAMPLES = 10_000
RUNNING = set(TRANSITIONS) - {Loc.EXITED, Loc.CRASHED}


@pytest.mark.parametrize("variant", [SEED, FIXED], ids=lambda v: v.name)
def test_encoding_matches_model(variant: Variant) -> None:
    checker = Conformance(variant)
    rng = random.Random(20240611)
    covered: Counter[Loc] = Counter()
    failures: list[str] = []
    counts = Coverage()
    for smp in samples(rng, variant, SAMPLES, counts=counts):
        covered[smp.loc] += 1
        bad = checker.mismatches(smp.loc, smp.pre, smp.inputs, smp.post)
        if bad and len(failures) < 5:
            failures.append(f"{smp.loc.name}: {bad[:3]} pre={smp.pre} inputs={smp.inputs}")
    assert not failures, "\n".join(failures)
    missing = sorted(loc.name for loc in RUNNING if covered[loc] == 0)
    assert not missing, f"transitions never exercised: {missing}"
    assert sum(covered.values()) >= SAMPLES
    if variant == FIXED:  # no abstraction failure: FIXED never frees badly or lists twice
        assert counts.skipped == 0, f"{counts.skipped} NotRepresentable states in FIXED"


@pytest.mark.parametrize("variant", [SEED, FIXED], ids=lambda v: v.name)
@pytest.mark.parametrize("name", sorted(targeted_scenarios()))
def test_targeted_scenarios_conform(name: str, variant: Variant) -> None:
    """The second net: 2 MiB balloons popped at reset and exit, full unlock batches,
    a refused list overflowing, the 2 MiB fallback's lock of 0 pages with no batch page;
    every step from the frames it touches."""
    checker = Conformance(variant)
    counts = Coverage()
    seen: Counter[str] = Counter()
    for smp in scenario_samples(targeted_scenarios()[name], variant, counts):
        bad = checker.mismatches(smp.loc, smp.pre, smp.inputs, smp.post)
        assert not bad, f"{smp.loc.name}: {bad[:3]}"
        if smp.loc in (Loc.R_POP, Loc.E_POP) and smp.pre["f_list"] == 2:
            seen[f"pop 2 MiB at {smp.loc.name}"] += 1
        if smp.loc == Loc.D_UNLOCK and smp.pre["l_num"] == 512:
            seen["unlock 512"] += 1
        if smp.pre["n_ref0"] == 0 and smp.post["n_ref0"] == 16:
            seen["16 refused"] += 1
        if smp.loc == Loc.I_FALLBACK and not smp.pre["bpage"]:
            seen["lock without batch page"] += 1
    assert counts.skipped == 0
    expect = {
        "two_mib_reset_exit": ["pop 2 MiB at R_POP", "pop 2 MiB at E_POP"],
        "full_unlock_batches": ["unlock 512"],
        "refused_overflow": ["16 refused"] if variant == FIXED else [],
        # reset_needs_ops keeps FIXED from running with the stale ops at all
        "stale_batched_ops": [] if variant == FIXED else ["lock without batch page"],
    }[name]
    assert all(seen[e] for e in expect), dict(seen)


def test_checker_detects_a_wrong_successor() -> None:
    """Mutating one field of α(successor) must be caught (the check is not vacuous)."""
    checker = Conformance(SEED)
    rng = random.Random(7)
    checked = 0
    for smp in samples(rng, SEED, 400):
        if smp.post["loc"] == int(Loc.CRASHED):
            continue
        name = rng.choice(sorted(smp.post))
        post = dict(smp.post)
        value = post[name]
        post[name] = (not value) if isinstance(value, bool) else value + 1
        assert checker.mismatches(smp.loc, smp.pre, smp.inputs, post), name
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("variant", [SEED, FIXED], ids=lambda v: v.name)
def test_control_flow_graph_covers_every_step(variant: Variant) -> None:
    """BMC prunes locations with SUCCESSORS: no step of the encoding may leave it."""
    import z3

    from vmballoon.proofs.encoding import SUCCESSORS, loc_val, make_inputs, make_state, successor

    s, i = make_state("s_"), make_inputs("i_")
    for loc in TRANSITIONS:
        st = successor(loc, s, i, variant)
        sol = z3.Solver()
        sol.add(s["loc"] == loc_val(loc), *st.cons)
        sol.add(z3.And([st.post["loc"] != loc_val(n) for n in SUCCESSORS[loc]]))
        assert sol.check() == z3.unsat, loc.name
