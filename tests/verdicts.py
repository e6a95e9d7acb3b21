"""The property verdicts of the model on every scenario of the repository, per variant.

``python -m tests.verdicts`` writes ``tests/golden/verdicts.json``; the test
(``tests/test_property_verdicts.py``) recomputes and compares.  For each scenario and
variant: every property the replay violates, with the first transition that violates
it, how many transitions do, and the first and last message
(:func:`vmballoon.model.properties.check_trace`, every transition checked).  It is a
regression net for the checker itself: a change to a property's condition or message
that changes any verdict on any scenario shows as a difference, to be reviewed and
the file rewritten.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from vmballoon.core.scenario import load_scenario
from vmballoon.core.variants import FIX_NAMES, FIXED, SEED, Variant
from vmballoon.model.properties import check_trace

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "verdicts.json"
LARGE = ("guest64g_2m_to_48g_and_back.json",)
"""Left out: 49,272 transitions, minutes of checking (the differential tests replay it)."""


def scenarios() -> list[Path]:
    """Every scenario of the repository: tests/scenarios, the golden sample, spec/."""
    found = [
        *sorted(p for p in (ROOT / "tests" / "scenarios").glob("*.json") if p.name not in LARGE),
        *sorted((ROOT / "tests" / "golden").glob("*.scenario.json")),
        *sorted((ROOT / "spec" / "examples").glob("*.scenario.json")),
        *sorted((ROOT / "spec" / "findings").glob("*.scenario.json")),
    ]
    return found


def variants() -> list[Variant]:
    """SEED, FIXED, each fix alone and FIXED without each fix."""
    singles = [Variant(frozenset({f})) for f in FIX_NAMES]
    return [SEED, FIXED, *singles, *(FIXED.without(f) for f in FIX_NAMES)]


def verdicts(path: Path, variant: Variant) -> dict[str, list[Any]]:
    """``property -> [first transition, transitions violating it, first, last message]``."""
    out: dict[str, list[Any]] = {}
    for v in check_trace(load_scenario(str(path)), variant, first_only=False):
        if v.prop in out:
            out[v.prop][1] += 1
            out[v.prop][3] = v.message
        else:
            out[v.prop] = [v.step, 1, v.message, v.message]
    return out


def compute() -> dict[str, dict[str, dict[str, list[Any]]]]:
    return {
        str(p.relative_to(ROOT)): {v.name: verdicts(p, v) for v in variants()} for p in scenarios()
    }


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN.relative_to(ROOT)}", file=sys.stderr)
