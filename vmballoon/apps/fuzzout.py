"""``vmballoon fuzz --out DIR``: the scenarios a campaign found, minimized, kept as files.

Every property violation the fuzzer saw (one per variant and property, the first
scenario that showed it) and every campaign failure (a disagreement of model and
reference, or a FIXED violation, already shrunk by Hypothesis) is written as a
scenario of the contract with a ``meta`` object (what it shows, on which variant,
at which transition, the campaign's seed) that replay ignores.

A violation's scenario is minimized greedily and deterministically: steps after
the violating one are dropped, then each step, each host answer (replaced by the
default answer), each batch status list, each allocation or VMCI failure is
removed in turn when the property still fails without it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from vmballoon.core.env import DEFAULT_RESPONSE
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


def _step_of_transition(scenario: Scenario, variant: Variant, index: int) -> int:
    """How many steps of the scenario run up to transition ``index``."""
    k = 0
    for t in trace(start(scenario, variant), scenario.steps):
        k += t.label.startswith("enter(")
        if t.index >= index:
            break
    return k


def minimize(scenario: Scenario, variant: Variant, prop: str) -> Scenario:
    """A smaller scenario on which ``prop`` still fails (greedy, deterministic)."""
    tries = [0]

    def fails(candidate: Scenario) -> bool:
        tries[0] += 1
        return first_violation(candidate, variant, prop) is not None

    found = first_violation(scenario, variant, prop)
    if found is None:
        return scenario
    best = replace(scenario, steps=scenario.steps[: _step_of_transition(scenario, variant,
                                                                         found[0])])  # fmt: skip
    if not fails(best):
        best = scenario

    def attempt(candidate: Scenario) -> bool:
        nonlocal best
        if tries[0] >= MAX_TRIES or candidate == best:
            return False
        if fails(candidate):
            best = candidate
            return True
        return False

    for k in reversed(range(len(best.steps))):
        if k < len(best.steps):
            attempt(replace(best, steps=best.steps[:k] + best.steps[k + 1:]))
    while best.hv and attempt(replace(best, hv=best.hv[:-1])):
        pass
    for k in reversed(range(len(best.hv))):
        r = best.hv[k]
        if r != DEFAULT_RESPONSE and not attempt(
            replace(best, hv=(*best.hv[:k], DEFAULT_RESPONSE, *best.hv[k + 1:]))
        ) and r.entries is not None:
            attempt(replace(best, hv=(*best.hv[:k], replace(r, entries=None), *best.hv[k + 1:])))
    while best.hv and best.hv[-1] == DEFAULT_RESPONSE and attempt(replace(best, hv=best.hv[:-1])):
        pass
    for field in ("alloc", "vmci"):

        def with_script(sc: Scenario, script: tuple[bool, ...], name: str = field) -> Scenario:
            return replace(sc, alloc=script) if name == "alloc" else replace(sc, vmci=script)

        for k in reversed(range(len(getattr(best, field)))):
            script: tuple[bool, ...] = getattr(best, field)
            if k < len(script) and not script[k]:
                attempt(with_script(best, (*script[:k], True, *script[k + 1:])))
        while getattr(best, field) and getattr(best, field)[-1] and attempt(
            with_script(best, getattr(best, field)[:-1])
        ):
            pass
    return best


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
