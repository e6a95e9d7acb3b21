"""Branch- and boundary-complete conformance of the encoding with the model
(vmballoon/proofs/witness.py).

Every satisfiable branch, guarded update, comparison boundary and wrap point of
every transition gets a solver witness, which is turned into a model state and
stepped through the model; the step must agree with the encoding both ways.
Planted defects (the issue's list: the deflate hysteresis flipped in the model or
in the encoding, the RATE_ALLOC_MAX clamp removed, the refused-list bound off by
one, added ``assume``s) must each make the check fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.model import ops
from vmballoon.model.state import Loc, State
from vmballoon.proofs import witness
from vmballoon.proofs.encoding import TRANSITIONS
from vmballoon.proofs.witness import Report, check, load_rules

from .mutate import mutant

_REPORTS: dict[str, Report] = {}


def report(variant: Variant) -> Report:
    if variant.name not in _REPORTS:
        _REPORTS[variant.name] = check(variant)
    return _REPORTS[variant.name]


@pytest.mark.parametrize("variant", [FIXED, SEED], ids=lambda v: v.name)
def test_every_satisfiable_target_is_witnessed(variant: Variant) -> None:
    r = report(variant)
    print(f"\n{variant.name}: {r.seconds:.1f}s\n{r.table()}")
    assert r.ok(), "\n".join(r.problems())
    assert r.satisfiable > 700  # branches, updates, boundaries and wraps of 21 transitions
    assert r.witnessed == r.satisfiable
    assert r.not_representable == 0


def test_every_unreachability_rule_explains_a_target() -> None:
    """No stale rule: each rule of spec/conformance-unreachable.json is needed."""
    rules = load_rules()
    used = report(FIXED).rules_used | report(SEED).rules_used
    unused = [rules[k]["match"] for k in range(len(rules)) if k not in used]
    assert not unused, unused


def test_two_mib_pop_is_witnessed() -> None:
    """The issue's example: `_pop` with f on the 2 MiB list, exercised at reset and at exit."""
    r = check(FIXED, locs=[Loc.R_POP, Loc.E_POP])
    assert r.ok(), r.problems()
    assert all(x.samples > 0 and x.witnessed == x.satisfiable for x in r.locs)


# -- planted defects ----------------------------------------------------------------------------


def _model_step(mod: Any) -> Callable[[State], State]:
    def step(state: State) -> State:
        out: State = mod.TRANSITIONS[state.loc](state)
        return out

    return step


def _fails(r: Report) -> bool:
    return not r.ok()


def test_kills_model_hysteresis_flip() -> None:
    old = "tx.size > ((target + PAGES_PER_2M) & U32_MASK)"
    with mutant("vmballoon.model.transitions", old, old.replace(">", ">=", 1)) as m:
        r = check(FIXED, step=_model_step(m), locs=[Loc.W_TARGET])
    assert r.mismatches, r.problems()


def test_kills_encoding_hysteresis_flip() -> None:
    old = 'z3.UGT(size, target + bv32(PAGES_PER_2M))'
    with mutant("vmballoon.proofs.encoding", old, old.replace("UGT", "UGE")) as enc:
        r = check(FIXED, enc=enc, locs=[Loc.W_TARGET])
    assert r.mismatches, r.problems()


def test_kills_missing_rate_clamp() -> None:
    old = "min((tx.rate_alloc + mult * RATE_ALLOC_INC) & U32_MASK, RATE_ALLOC_MAX)"
    new = "(tx.rate_alloc + mult * RATE_ALLOC_INC) & U32_MASK"
    with mutant("vmballoon.model.transitions", old, new) as m:
        r = check(FIXED, step=_model_step(m), locs=[Loc.I_END])
    assert r.mismatches, r.problems()


@pytest.mark.parametrize(
    ("fn", "old"),
    [
        ("_lock_batched_page", "tx.n_refused[idx] < MAX_REFUSED"),
        ("_lock_page", "tx.n_refused[0] < MAX_REFUSED"),
    ],
)
def test_kills_refused_bound_off_by_one(
    fn: str, old: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mutant("vmballoon.model.ops", old, old.replace("<", "<=")) as m:
        monkeypatch.setattr(ops, fn, getattr(m, fn))
        r = check(FIXED, locs=[Loc.I_LOCK])
    assert r.mismatches, r.problems()


def _encoding_refused_bound_mutant() -> tuple[bool, list[str]]:
    old = 'room = z3.ULT(tx["n_ref0"], bv32(MAX_REFUSED))'
    with mutant("vmballoon.proofs.encoding", old, old.replace("ULT", "ULE")) as enc:
        r = check(FIXED, enc=enc, locs=[Loc.I_LOCK])
    return _fails(r), r.problems()


def test_kills_encoding_refused_bound_off_by_one() -> None:
    """Checked in a fresh process, as the mutation benchmark checks every mutant: after the
    rest of the suite has built its terms in this process's Z3 context, the witnesses Z3
    picks at I_LOCK all agree with this mutant (seen in CI; the cause is not known yet)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        failed, problems = pool.apply(_encoding_refused_bound_mutant)
    assert failed, problems


ADDED_ASSUMES = {
    # the example: the tracked frame is never a ballooned 2 MiB page at pop
    "pop_never_2m": (
        '    """``vmballoon_pop`` (lines 559-582): free every page, then the batch page."""\n',
        '    """``vmballoon_pop`` (lines 559-582): free every page, then the batch page."""\n'
        '    tx.assume(tx["f_list"] != z3.BitVecVal(L2, 8))\n',
        [Loc.R_POP, Loc.E_POP],
    ),
    "rate_increase": (
        '    ra = tx["rate_alloc"]\n',
        '    ra = tx["rate_alloc"]\n    tx.assume(z3.ULT(tx["l_alloc"], bv32(RATE_ALLOC_MAX)))\n',
        [Loc.I_END],
    ),
    "refused_room": (
        "    fb = tx[\"f_batch\"]\n    fcls = i[\"f_cls\"]\n",
        "    fb = tx[\"f_batch\"]\n    fcls = i[\"f_cls\"]\n"
        '    tx.assume(z3.ULT(tx["n_ref0"], bv32(MAX_REFUSED)))\n',
        [Loc.I_LOCK],
    ),
}


@pytest.mark.parametrize("name", sorted(ADDED_ASSUMES))
def test_kills_an_added_assume(name: str) -> None:
    old, new, locs = ADDED_ASSUMES[name]
    with mutant("vmballoon.proofs.encoding", old, new) as enc:
        r = check(FIXED, enc=enc, locs=locs)
    assert r.unexplained or r.mismatches, r.problems()


def test_report_json_names_every_transition() -> None:
    r = report(FIXED)
    js = r.to_json()
    assert js["ok"] and js["witnessed"] == js["satisfiable"]
    assert set(js["per_transition"]) == {
        loc.name for loc in TRANSITIONS if loc not in witness.SKIPPED
    }
