"""Replay each example of spec/fixes.md on seed, fixed-<flag> and fixed; print a summary.

Run from the repository root: ``python spec/examples/summarize.py``.  The scenario
``<flag>.scenario.json`` illustrates the defect that fix ``<flag>`` repairs.  These
are illustrations, not verification results (those come from ``vmballoon verify``).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import model  # noqa: E402

from vmballoon.apps.replay import replay  # noqa: E402
from vmballoon.core import intervals as iv  # noqa: E402
from vmballoon.core.scenario import load_scenario  # noqa: E402
from vmballoon.core.variants import FIX_NAMES, parse_variant  # noqa: E402
from vmballoon.model.machine import balloon_pages  # noqa: E402
from vmballoon.model.plist import to_list  # noqa: E402


def held_by_driver(state: model.State) -> int:
    """Frames the driver can account for: balloon and refused lists, batch page."""
    d = state.drv
    pages = balloon_pages(state)
    n = len(pages[0]) + 512 * len(pages[1])
    n += len(to_list(d.refused[0])) + 512 * len(to_list(d.refused[1]))
    return n + (1 if d.batch_page is not None else 0)


def main() -> None:
    names = sys.argv[1:] or list(FIX_NAMES)
    for name in names:
        path = HERE / f"{name}.scenario.json"
        scenario = load_scenario(path)
        print(f"## {name}")
        for var in ("seed", f"fixed-{name}", "fixed"):
            variant = parse_variant(var)
            state = model.run_scenario(scenario, variant)
            log = replay(scenario, impl="model", variant=variant)
            ref = replay(scenario, impl="reference", variant=variant)
            ev = log["events"]
            f = log["final"]
            faults = [(e["kind"], e["pfn"]) for e in ev if e["ev"] == "fault"]
            cmds = [e["cmd"] for e in ev if e["ev"] == "hv"]
            mem = state.env.memory
            allocated = (mem.end - mem.base) - iv.count(mem.free)
            leaked = allocated - held_by_driver(state) if not f["crashed"] else None
            print(
                f"  {var:32} size={f['size']} target={f['target']} rate_alloc={f['rate_alloc']} "
                f"ops={f['ops']} reset_required={f['reset_required']} doorbell={f['doorbell']} "
                f"crashed={f['crashed']} faults={faults} commands={len(cmds)} "
                f"frames_allocated={allocated} leaked={leaked} reference_agrees={ref == log}"
            )


if __name__ == "__main__":
    main()
