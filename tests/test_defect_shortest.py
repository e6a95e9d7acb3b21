"""What a defect row's ``shortest`` claims is what its search established.

The product searches of vmballoon/proofs/defects.py drive SEED and SEED + fix with ONE input per
step; once the two drivers issue different commands a replay feeds them different
answers, which the product does not cover.  So a depth the product (or the two-copy
gap search) establishes is labelled "shared inputs"; "pinned inputs" is kept for a
violation in the transition where the drivers part (before it they are one driver), and
"every input" for a depth equal to the lower bound SEED's own BMC gives."""

from __future__ import annotations

import json
from pathlib import Path

from vmballoon.core.scenario import Scenario, load_scenario
from vmballoon.core.variants import SEED, Variant
from vmballoon.model.machine import enter, start, step
from vmballoon.model.properties import new_events
from vmballoon.model.state import Loc
from vmballoon.proofs.check import Outcome
from vmballoon.proofs.defects import SHORTEST, plan_defect, product_shortest
from vmballoon.proofs.status import Status

ROOT = Path(__file__).resolve().parents[1]
RESULTS = json.loads((ROOT / "spec" / "verify-results.json").read_text())


def _walk(sc: Scenario, variant: Variant) -> list[tuple[str, tuple[str, ...]]]:
    """Per transition: the location reached and the commands issued (a real replay: each
    driver consumes the scenario's answers in its own order)."""
    out = []
    state = start(sc, variant)
    for name in sc.steps:
        if state.loc in (Loc.EXITED, Loc.CRASHED):
            break
        nxt = enter(state, name)
        while True:
            cmds = tuple(str(ev["cmd"]) for ev in new_events(state, nxt) if ev["ev"] == "hv")
            out.append((nxt.loc.name, cmds))
            state = nxt
            if state.loc in (Loc.IDLE, Loc.EXITED, Loc.CRASHED):
                break
            nxt = step(state)
    return out


def _parting(sc: Scenario, fix: str) -> int | None:
    """The transition (1-based) at which SEED and SEED + fix first differ on ``sc``."""
    a, b = _walk(sc, SEED), _walk(sc, Variant(frozenset({fix})))
    return next((k + 1 for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)


def test_product_labels() -> None:
    assert product_shortest(True, False, 7, 7, True) == "every input"
    assert product_shortest(True, False, 8, 7, True) == "pinned shared inputs"
    assert product_shortest(False, False, 8, 7, True) == "shared inputs"
    assert product_shortest(False, False, 7, 7, False) == "shared inputs"
    assert product_shortest(True, True, 7, 7, True) == "not established"
    assert {"pinned shared inputs", "shared inputs"} <= set(SHORTEST)


def test_pinned_inputs_only_where_the_violation_is_the_parting_transition() -> None:
    """lock_64bit_refused: SEED and SEED + fix part at transition 11 and the violation
    shows at 14; the gap was searched by a two-copy product, so the depth holds for
    shared inputs only (the two differ: after transition 11 the drivers issue different
    commands, and a replay answers each in its own order)."""
    checked = 0
    for row in RESULTS["defects"]:
        if row["shortest"] != "pinned inputs":
            continue
        sc = load_scenario(str(ROOT / row["scenario"]))
        assert _parting(sc, row["fix"]) == row["depth"], row["fix"]
        checked += 1
    row = next(r for r in RESULTS["defects"] if r["fix"] == "lock_64bit_refused")
    sc = load_scenario(str(ROOT / row["scenario"]))
    part = _parting(sc, "lock_64bit_refused")
    assert part is not None and part < row["depth"]
    a, b = _walk(sc, SEED), _walk(sc, Variant(frozenset({"lock_64bit_refused"})))
    assert [c for _, c in a[part - 1 :]] != [c for _, c in b[part - 1 :]]  # they differ
    assert row["shortest"] in ("pinned shared inputs", "shared inputs", "not established")


def test_every_input_only_at_the_seeds_own_lower_bound() -> None:
    seed = {r["prop"]: r for r in RESULTS["results"] if r["variant"] == "seed"}
    for row in RESULTS["defects"]:
        if row["shortest"] == "every input":
            r = seed[row["prop"]]
            assert r["kind"] == "bmc" and r["status"] == "violated", row["fix"]
            assert r["depth"] <= row["depth"], row["fix"]


def _checked_in_outcomes() -> list[Outcome]:
    """The checked-in rows of SEED and of FIXED minus each fix, as ``verify`` holds them
    when it plans the defects (SEED's counterexamples at their checked-in paths)."""
    out = []
    for r in RESULTS["results"]:
        sc = r.get("scenario")
        out.append(
            Outcome(
                r["prop"],
                r["variant"],
                r["kind"],
                Status(r["status"]),
                0.0,
                depth=r.get("depth"),
                scenario=str(ROOT / sc) if sc else None,
            )
        )
    return out


def test_a_seed_counterexample_at_the_exact_lower_bound_claims_every_input() -> None:
    """A defect row taken from SEED's own counterexample claims what a product answer at
    the same depth claims: which of the two answers first depends on the witness Z3
    returns for SEED, so the label must not (it once moved doorbell_set_status's row from
    "every input" to "property" when an unrelated edit changed SEED's witness).  Above the
    bound (another property looked at breaks sooner) it claims only its property."""
    results = _checked_in_outcomes()
    labels = {}
    for fix in ("count_allocations", "no_2m_without_batching"):
        row, search = plan_defect(fix, results, True, timeout=30.0, out=None)
        assert row is not None and search is None, fix
        labels[fix] = (row.source, row.depth, row.shortest)
    # rate_counter alone is looked at, SEED breaks it first at 10 (plain BMC)
    assert labels["count_allocations"] == ("seed", 10, "every input")
    # free_order at 11, but no_crash, also looked at, breaks on SEED at 10
    assert labels["no_2m_without_batching"] == ("seed", 11, "property")


def test_the_search_starts_where_seeds_own_bmc_left_off() -> None:
    """A defect without a SEED counterexample of its own is searched from the lower bound
    SEED's BMC gives: the depth of SEED's counterexample of the property looked at, or
    one deeper than SEED's BMC looked when it found none."""
    results = _checked_in_outcomes()
    # lock_64bit_refused: FIXED minus the fix breaks host_agreement alone; SEED at 13, by
    # a run on which the fix changes nothing
    row, job = plan_defect("lock_64bit_refused", results, True, timeout=30.0, out=None)
    assert row is None and job is not None
    assert (job["props"], job["start"], job["start_exact"]) == (["host_agreement"], 13, True)
    none_found = [
        Outcome(r.prop, r.variant, r.kind, Status.NO_CEX, 0.0, depth=14)
        if (r.variant, r.prop) == ("seed", "host_agreement")
        else r
        for r in results
    ]
    row, job = plan_defect("lock_64bit_refused", none_found, True, timeout=30.0, out=None)
    assert row is None and job is not None and job["start"] == 15


def test_a_defect_takes_seeds_shallowest_counterexample_that_shows_it() -> None:
    """batch_pfn: SEED's counterexamples of host_agreement (13 transitions) and protocol
    (11) both show the defect; the row is the shallower, whichever property comes first."""
    row, job = plan_defect("batch_pfn", _checked_in_outcomes(), True, timeout=30.0, out=None)
    assert row is not None and job is None
    assert (row.source, row.prop, row.depth) == ("seed", "protocol", 11)
