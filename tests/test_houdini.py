"""What Houdini keeps is an inductive invariant, checked here apart from the loop that
found it (one query for initiation, one per location for consecution, as mypyvy's
``check_init`` and ``check_transitions``); what it drops fails where it says.

``verify``'s "proved (inductive)" rests on :func:`vmballoon.proofs.houdini.houdini`: a
loop that stopped before checking consecution would prove every candidate that holds
initially (run 16 of the mutation benchmark: ``while changed and live`` negated
survived every stage, since on FIXED every candidate is inductive anyway)."""

from __future__ import annotations

import pytest
import z3

from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.proofs.check import candidate_pool, houdini
from vmballoon.proofs.encoding import (
    TRANSITIONS,
    Expr,
    initial,
    loc_val,
    make_inputs,
    make_state,
    successor,
)
from vmballoon.proofs.props import PROPERTIES
from vmballoon.proofs.solver import bv_solver

TIMEOUT = 120.0


def _holds(facts: list[Expr], goal: Expr) -> bool:
    sol = bv_solver(TIMEOUT)
    sol.add(*facts, z3.Not(goal))
    r = sol.check()
    assert r != z3.unknown, "the solver gave up"
    return bool(r == z3.unsat)


def not_inductive(
    variant: Variant, names: list[str], split: bool, at: list[str] | None = None
) -> list[str]:
    """Where the conjunction of ``names`` fails: "initiation" or a location's name (only
    the locations named in ``at``, when given)."""
    pool = candidate_pool(split)
    s, i = make_state("c_"), make_inputs("ci_")
    inv = z3.And([pool[n](s) for n in names])
    fails = [] if at is not None or _holds([initial(s)], inv) else ["initiation"]
    for loc in TRANSITIONS:
        if at is not None and loc.name not in at:
            continue
        st = successor(loc, s, i, variant)
        after = z3.And([pool[n](st.post) for n in names])
        if not _holds([inv, s["loc"] == loc_val(loc), *st.cons], after):
            fails.append(loc.name)
    return fails


@pytest.mark.parametrize("variant", [FIXED, SEED], ids=lambda v: v.name)
def test_what_houdini_keeps_is_inductive(variant: Variant) -> None:
    split = variant is SEED  # as verify runs it (check.check_variant)
    h = houdini(variant, TIMEOUT, split=split)
    assert h.unknown is None
    assert not_inductive(variant, h.proved, split) == []
    violated = set(PROPERTIES) - set(h.proved)
    if variant is FIXED:
        assert violated == set()
    else:  # the seed's defects: dropped at consecution, each where it fails
        assert violated and all(h.dropped[n] != "initiation" for n in violated)
        for n in violated:
            where = [h.dropped[n]]
            assert not_inductive(variant, [*h.proved, n], split, at=where) == where, n


def test_the_invariant_row_says_where_each_conjunct_comes_from() -> None:
    """The invariant row of a split pool (what SEED and FIXED minus a fix get) names each
    kept conjunct's origin and gives its lemma's words and its formula."""
    from vmballoon.proofs.check import Houdini, invariant_row
    from vmballoon.proofs.lemmas import SEED_LEMMAS
    from vmballoon.proofs.props import AUX

    seed_lemma = f"{next(iter(SEED_LEMMAS))}.0"
    kept = ["accounting", "aux_batch.1", "aux_batch.0", seed_lemma]
    row = invariant_row(Houdini("seed", kept, {"aux_ops.0": "I_LOCK"}, None, 1.0), split=True)
    by_name = {c["name"]: c for c in row.conjuncts}
    assert list(by_name) == kept
    assert by_name["accounting"]["origin"] == "property"
    assert by_name["aux_batch.1"]["origin"] == "split from aux_batch"
    assert by_name["aux_batch.1"]["words"] == " ".join((AUX["aux_batch"].__doc__ or "").split())
    assert by_name[seed_lemma]["origin"] == "seed lemma (hand-written)"
    lemma = SEED_LEMMAS[seed_lemma.split(".")[0]]
    assert by_name[seed_lemma]["words"] == " ".join((lemma.__doc__ or "").split())
    pool = candidate_pool(True)
    assert by_name["aux_batch.0"]["formula"] != by_name["aux_batch.1"]["formula"]
    assert all(by_name[n]["formula"] for n in kept) and len(pool) > len(kept)
    assert row.status == "proved" and row.dropped == {"aux_ops.0": "I_LOCK"}
    assert row.detail == f"Houdini kept 4 of {len(pool)} candidates"
    whole = invariant_row(Houdini("fixed", ["aux_ops", "no_leak"], {}, None, 1.0), split=False)
    assert [c["origin"] for c in whole.conjuncts] == ["lemma (hand-written)", "property"]


def test_a_split_candidate_reads_every_field_of_the_state_it_is_given() -> None:
    """Each split candidate is its conjunct over the template state with the state's
    fields put in: only the fields it mentions are substituted, and the result is the
    very term substituting every field gives (none left over the template)."""
    from vmballoon.proofs.encoding import FIELD_NAMES
    from vmballoon.proofs.lemmas import _TEMPLATE

    s = make_state("t_")
    pool = candidate_pool(True)
    templates = {n: pool[n](_TEMPLATE) for n in pool}
    every = [(_TEMPLATE[n], s[n]) for n in FIELD_NAMES]
    assert len(pool) > len(PROPERTIES) + 40  # the lemmas were split
    for name, pred in pool.items():
        assert pred(s).eq(z3.substitute(templates[name], *every)), name
