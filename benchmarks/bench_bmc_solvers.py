"""Which solver BMC's iterative deepening should use: ``python -m benchmarks.bench_bmc_solvers``.

The fix-necessity rows of ``verify`` are the largest part of its time: BMC of the
properties Houdini does not prove on FIXED minus one fix, one query per depth up to 14
(:func:`vmballoon.proofs.check.bmc_all`), each on a fresh non-incremental bit-blasting
solver (:func:`vmballoon.proofs.solver.bv_solver`).  This benchmark runs the same
search over all 13 properties (the same unrolling, goals and order) on one incremental solver
instead, the steps added depth by depth and each goal pushed and popped, and prints the
CPU time and the verdicts of each (they must agree).  Not a test.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import z3

from vmballoon.core.variants import Variant, parse_variant
from vmballoon.proofs.check import bmc_all
from vmballoon.proofs.props import PROPERTIES
from vmballoon.proofs.unrolling import Unrolling

Verdicts = dict[str, tuple[str, int | None]]


def fresh(names: list[str], variant: Variant, depth: int) -> Verdicts:
    """What ``verify`` does: a fresh bit-blasting solver per query."""
    res = bmc_all(list(names), variant, depth=depth, timeout=600)
    return {n: (r.status.value, r.depth) for n, r in res.items()}


def incremental(make: Callable[[], Any]) -> Callable[[list[str], Variant, int], Verdicts]:
    """The same iterative deepening on one solver ``make()`` returns."""

    def search(names: list[str], variant: Variant, depth: int) -> Verdicts:
        u = Unrolling({"s": variant}, depth)
        sol = make()
        todo, out = list(names), {}
        for k in range(depth + 1):
            sol.add(u.steps[k])
            while todo:
                bad = {n: z3.Not(PROPERTIES[n](u.state(k))) for n in todo}
                sol.push()
                sol.add(z3.Or(list(bad.values())))
                if sol.check() != z3.sat:
                    sol.pop()
                    break
                m = sol.model()
                for n in [n for n in todo if z3.is_true(m.eval(bad[n], model_completion=True))]:
                    out[n] = ("violated", k)
                    todo.remove(n)
                sol.pop()
        return {**out, **{n: ("no-cex", depth) for n in todo}}

    return search


SOLVERS: dict[str, Callable[[list[str], Variant, int], Verdicts]] = {
    "fresh bit-blasting solver per query (verify's)": fresh,
    "one incremental QF_BV solver": incremental(lambda: z3.SolverFor("QF_BV")),
}


def main() -> None:
    """Time each solver on one necessity row."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", default="fixed-no_2m_without_batching")
    parser.add_argument("--depth", type=int, default=14)
    args = parser.parse_args()
    variant = parse_variant(args.variant)
    names = sorted(PROPERTIES)
    verdicts = []
    for label, search in SOLVERS.items():
        began = time.process_time()
        found = search(names, variant, args.depth)
        print(f"{label}: {time.process_time() - began:.1f} s CPU")
        verdicts.append(found)
    print("verdicts agree" if all(v == verdicts[0] for v in verdicts) else f"DIFFER: {verdicts}")


if __name__ == "__main__":
    main()
