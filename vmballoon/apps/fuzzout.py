"""``vmballoon fuzz --out DIR``: the scenarios a campaign found, minimized, kept as files.

Every property violation the fuzzer saw (one per variant and property, the first
scenario that showed it) and every campaign failure (a disagreement of model and
reference, or a FIXED violation, already shrunk by Hypothesis) is written as a
scenario of the contract with a ``meta`` object (what it shows, on which variant,
at which transition, the campaign's seed) that replay ignores.

A violation's scenario is minimized by :func:`vmballoon.core.minimize.minimize`
(deterministic: every input the violation does not need takes its default), with at
most :data:`MAX_TRIES` replays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vmballoon.core.minimize import minimize as shared_minimize
from vmballoon.core.scenario import Scenario, scenario_from_json
from vmballoon.core.variants import Variant, parse_variant
from vmballoon.model.machine import start, trace
from vmballoon.model.properties import Monitor

MAX_TRIES = 400
"""Replays the minimizer may spend on one scenario (it stops early when nothing shrinks)."""


def first_violation(scenario: Scenario, variant: Variant, prop: str) -> tuple[int, str] | None:
    """``(transition index, message)`` where ``prop`` first fails, as ``check_trace``
    numbers them; only that property is evaluated, and the replay stops there."""
    state = start(scenario, variant)
    monitor = Monitor(state, properties=frozenset({prop}))
    if monitor.last:
        return 0, monitor.last[0].message
    for t in trace(state, scenario.steps):
        if found := monitor.step(t.prev, t.state):
            return t.index, found[0].message
    return None


def minimize(scenario: Scenario, variant: Variant, prop: str) -> Scenario:
    """A smaller scenario on which ``prop`` still fails (:func:`vmballoon.core.minimize.minimize`
    with at most :data:`MAX_TRIES` replays)."""

    def fails(candidate: Scenario) -> bool:
        return first_violation(candidate, variant, prop) is not None

    return shared_minimize(scenario, fails, budget=MAX_TRIES)


def write_findings(out_dir: Path, coverage: Any, results: list[Any]) -> list[Path]:
    """Write every witness and failure of a fuzz run into ``out_dir``; the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    seeds = {r.variant: r.seed for r in results}
    for (vname, prop), witness in sorted(coverage.witnesses.items()):
        variant = parse_variant(vname)
        small = minimize(scenario_from_json(witness["scenario"]), variant, prop)
        where = first_violation(small, variant, prop)
        if where is None:  # never: minimize keeps the violation; say so rather than lie
            continue
        doc = small.to_json()
        doc["meta"] = {"found_by": "vmballoon fuzz", "kind": "property violation",
                       "property": prop, "variant": vname, "transition": where[0],
                       "message": where[1], "seed": seeds.get(vname)}  # fmt: skip
        path = out_dir / f"{vname}.{prop}.scenario.json"
        path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        written.append(path)
    for r in results:
        if not r.failed:
            continue
        doc = dict(r.failed["scenario"])
        doc["meta"] = {"found_by": "vmballoon fuzz", "kind": r.failed.get("kind"),
                       "property": r.failed.get("property"), "variant": r.variant,
                       "transition": r.failed.get("step"), "message": r.failed.get("message"),
                       "seed": r.seed}  # fmt: skip
        path = out_dir / f"{r.variant}.failure.seed{r.seed}.scenario.json"
        path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        written.append(path)
    return written
