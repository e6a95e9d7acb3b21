"""``vmballoon golden``: the golden event logs, made here from the compiled seed.

Every scenario of the test suite (``tests/golden/*.scenario.json``, the sample
the project started from, and ``tests/scenarios/*.json``) is replayed through
the seed's own C (:mod:`vmballoon.harness`); the event logs are checked in
beside them (``tests/golden/<N>.events.json``, ``tests/golden/scenarios/<NAME>.events.json``).
``--check`` compares instead of writing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
SCENARIOS = ROOT / "tests" / "scenarios"


def golden_cases(root: Path = ROOT) -> list[tuple[Path, Path]]:
    """``(scenario, events)`` file pairs of the golden logs."""
    golden, scenarios = root / "tests" / "golden", root / "tests" / "scenarios"
    cases = [
        (p, p.with_name(p.name.replace(".scenario.json", ".events.json")))
        for p in sorted(golden.glob("*.scenario.json"))
    ]
    cases += [
        (p, golden / "scenarios" / f"{p.stem}.events.json")
        for p in sorted(scenarios.glob("*.json"))
    ]
    return cases


def regenerate(check: bool, root: Path = ROOT) -> list[str]:
    """Replay every case through the compiled seed; write the logs (or, with ``check``,
    return the cases whose checked-in log differs)."""
    from vmballoon.core.scenario import load_scenario
    from vmballoon.core.variants import SEED
    from vmballoon.harness.replay import replay

    problems: list[str] = []
    for scenario, events in golden_cases(root):
        log = replay(load_scenario(scenario), SEED)
        if check:
            if not events.is_file():
                problems.append(f"{events.relative_to(root)}: missing")
            elif json.loads(events.read_text(encoding="utf-8")) != log:
                problems.append(f"{events.relative_to(root)}: differs from the compiled seed")
        else:
            events.parent.mkdir(parents=True, exist_ok=True)
            events.write_text(json.dumps(log) + "\n", encoding="utf-8")
    return problems


def cmd_golden(args: argparse.Namespace) -> int:
    """``vmballoon golden [--check]``."""
    root = ROOT
    if not (root / "tests").is_dir():
        print(
            "error: vmballoon golden works in a checkout (no tests/ folder here)", file=sys.stderr
        )
        return 2
    problems = regenerate(args.check, root)
    for line in problems:
        print(line)
    n = len(golden_cases(root))
    if args.check:
        print(
            f"{n} golden logs checked: {len(problems)} differ"
            if problems
            else f"{n} golden logs equal the compiled seed's"
        )
        return 1 if problems else 0
    print(f"wrote {n} golden logs from the compiled seed")
    return 0


def add_golden_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``vmballoon golden``."""
    p = sub.add_parser("golden", help="regenerate the golden event logs from the compiled seed")
    p.add_argument("--check", action="store_true", help="compare with the checked-in logs")
    p.set_defaults(func=cmd_golden)
