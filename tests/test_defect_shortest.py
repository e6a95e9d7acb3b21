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
from vmballoon.proofs.defects import SHORTEST, product_shortest

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
