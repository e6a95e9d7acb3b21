"""Input-completeness of the encoding (vmballoon/proofs/completeness.py): checked by Z3, not
sampled.

From every state of the proved invariant (FIXED) or every state the concretization can
build (SEED), at every location, every input the environment contract allows (any 64-bit
status and result, any batch entries, any allocator answer) satisfies the step's
constraints; each ``tx.assume`` is its own target.  Planted stricter assumptions must be
caught, and an exclusion that is exactly a named assumption is accepted and named.
"""

from __future__ import annotations

from typing import Any

import pytest

from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.model.state import Loc
from vmballoon.proofs import completeness as cp
from vmballoon.proofs.witness import Status

from .mutate import mutant

BLOCK = '    st, res = tx.hv("BLOCK")\n'
ALLOC = '    with tx.when(z3.Not(i["a_ok"])):\n        with tx.when(is2m):\n'


@pytest.mark.parametrize("variant", [FIXED, SEED], ids=lambda v: v.name)
def test_the_encoding_admits_every_contract_input(variant: Variant) -> None:
    r = cp.check(variant)
    print(r.line())
    assert r.status == Status.PASSED, r.problems()
    assert not r.rests_on  # no exclusion needs a named assumption today
    assert len(r.sites) > 60  # every tx.assume at every location, and each location whole


def test_kills_the_low_byte_assume_of_the_issue() -> None:
    """``tx.assume(Extract(7, 0, res) != 0x39)`` after the batched lock: caught at the three
    locations that lock, by the site of that assume and by the location as a whole."""
    with mutant(
        "vmballoon.proofs.encoding", BLOCK, BLOCK + "    tx.assume(z3.Extract(7, 0, res) != 0x39)\n"
    ) as enc:
        r = cp.check(FIXED, enc=enc)
    assert r.status == Status.FAILED
    bad = [x for x in r.sites if x.status == cp.SiteStatus.EXCLUDED]
    assert {x.loc for x in bad} == {"I_LOCK", "I_FALLBACK", "I_TAIL"}
    assert all(x.excluded["i_BLOCK_res"] & 0xFF == 0x39 for x in bad if "Extract" in x.site)


STRICTER = {
    # a host status never 2**32 + 7 (a 64-bit status whose low word is RESET)
    "status": (
        '    st, res = tx.hv("GET_TARGET")\n',
        '    st, res = tx.hv("GET_TARGET")\n    tx.assume(z3.Extract(63, 32, st) == 0)\n',
        Loc.W_TARGET,
    ),
    # a batch never comes back with an unexpected status
    "entries": (
        '    tx.assume(z3.ULE(i["f_rank"], i["e_ref"]))\n',
        '    tx.assume(z3.ULE(i["f_rank"], i["e_ref"]))\n    tx.assume(i["e_warn"] == bv32(0))\n',
        Loc.D_UNLOCK,
    ),
    # the allocator never fails
    "allocator": (ALLOC, '    tx.assume(i["a_ok"])\n' + ALLOC, Loc.I_LOOP),
    # the refused list never full (an assume on the state, met by states of the invariant)
    "refused_room": (
        '    fb = tx["f_batch"]\n    fcls = i["f_cls"]\n',
        '    fb = tx["f_batch"]\n    fcls = i["f_cls"]\n'
        '    tx.assume(z3.ULT(tx["n_ref0"], bv32(MAX_REFUSED)))\n',
        Loc.I_LOCK,
    ),
}


@pytest.mark.parametrize("name", sorted(STRICTER))
def test_kills_a_stricter_assume(name: str) -> None:
    old, new, loc = STRICTER[name]
    with mutant("vmballoon.proofs.encoding", old, new) as enc:
        r = cp.check(FIXED, enc=enc, locs=[loc])
    assert r.status == Status.FAILED, r.line()


def _alloc_ok(s: dict[str, Any], i: dict[str, Any]) -> Any:
    return i["a_ok"]


def test_an_exclusion_that_is_exactly_a_named_assumption_rests_on_it() -> None:
    """``allocations_succeed`` excludes exactly the failed allocations: an assume of that
    is accepted and named; one that excludes a little more is not."""
    exact = (ALLOC, '    tx.assume(i["a_ok"])\n' + ALLOC)
    named = {"allocations_succeed": _alloc_ok}
    with mutant("vmballoon.proofs.encoding", *exact) as enc:
        ok = cp.check(FIXED, enc=enc, locs=[Loc.I_LOOP], named=named)
    assert ok.rests_on == ["allocations_succeed"]
    assert ok.status == Status.PASSED, ok.problems()
    more = (ALLOC, '    tx.assume(z3.And(i["a_ok"], z3.Not(i["a_hi"])))\n' + ALLOC)
    with mutant("vmballoon.proofs.encoding", *more) as enc:
        r = cp.check(FIXED, enc=enc, locs=[Loc.I_LOOP], named=named)
    assert r.status == Status.FAILED and not r.rests_on


def test_a_name_that_is_no_assumption_is_refused() -> None:
    with pytest.raises(ValueError, match="not assumptions"):
        cp.check(FIXED, locs=[Loc.IDLE], named={"made_up": _alloc_ok})


def test_the_contract_holds_on_concrete_steps() -> None:
    """The contract is an over-approximation of what α reads: every input read off a
    random or targeted concrete step satisfies it (with the state the step starts from)."""
    import random

    from vmballoon.proofs.conformance import samples, scenario_samples, targeted_scenarios
    from vmballoon.proofs.encoding import make_inputs, make_state
    from vmballoon.proofs.zeval import Program

    s, i = make_state("s_"), make_inputs("i_")
    for variant in (FIXED, SEED):
        prog = Program([cp.full_contract(s, i, variant, cp.default_encoding)])
        seen = list(samples(random.Random(7), variant, 1500))
        for sc in targeted_scenarios().values():
            seen += list(scenario_samples(sc, variant))
        for x in seen:
            env = {f"s_{n}": v for n, v in x.pre.items()}
            env |= {f"i_{n}": v for n, v in x.inputs.items()}
            assert prog.run(env)[0], (variant.name, x.loc, x.inputs)


def test_an_assume_true_everywhere_is_admitted() -> None:
    """No false alarm: an assume the contract implies (the entry point below 3) passes."""
    old = '    e = tx.i["entry"]\n'
    with mutant(
        "vmballoon.proofs.encoding", old, old + "    tx.assume(z3.ULT(e, z3.BitVecVal(3, 8)))\n"
    ) as enc:
        r = cp.check(FIXED, enc=enc, locs=[Loc.IDLE])
    assert r.status == Status.PASSED, r.problems()
