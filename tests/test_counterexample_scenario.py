"""A counterexample of the encoding replays on the model wherever Z3 puts the frame f.

``vmballoon.proofs.trace.to_scenario`` places the scenario's pool at the 2 MiB block of
the ghost frame f (``f_pfn``), which Z3 chooses freely.  A trace may take its other
pages on the other side of the 32-bit PFN boundary (the encoding's ``a_hi``): a basic
LOCK is sent only for a PFN that fits in 32 bits (lines 451-457), so a pool on the
wrong side made the model skip the very command the counterexample rests on, and
``verify`` called a real violation "unconfirmed" in some processes and not in others
(which f the solver returned depended on what the process had solved before).  These
tests ask Z3 for such traces on purpose and hold the scenario to the violation.
"""

from __future__ import annotations

from collections.abc import Callable

import z3

from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import FIXED, Variant, parse_variant
from vmballoon.model.machine import start
from vmballoon.model.machine import trace as trace_of
from vmballoon.model.properties import check_trace
from vmballoon.proofs.props import PROPERTIES
from vmballoon.proofs.solver import bv_solver
from vmballoon.proofs.trace import Trace, to_scenario
from vmballoon.proofs.unrolling import Unrolling

HIGH = 1 << 32


def _trace(
    variant: Variant, depth: int, goal: Callable[[Unrolling], z3.BoolRef], *, f_high: bool
) -> Trace:
    """A run of ``depth`` steps of the encoding to ``goal`` in which f lies on the
    ``f_high`` side of 2**32, is never allocated, and every other page of ``b->page``
    lies on the other side; basic commands only (START answers SUCCESS, lines 336-337)."""
    u = Unrolling({"s": variant}, depth)
    sol = bv_solver(60.0)
    sol.add(*u.steps, goal(u))
    f = u.state(0)["f_pfn"]
    sol.add(z3.UGE(f, HIGH) if f_high else z3.ULT(f, HIGH))
    for i in u.inputs:
        sol.add(z3.Not(i["a_f"]), z3.Not(i["a_hi"]) if f_high else i["a_hi"])
        sol.add(i["START_st"] == 0)
    assert sol.check() == z3.sat
    trace = u.trace(sol.model(), depth)
    assert (int(trace.states[0]["f_pfn"]) >= HIGH) == f_high
    return trace


def _follows(trace: Trace, scenario: Scenario, variant: Variant) -> None:
    """The model's run of ``scenario`` goes through the trace's locations, sizes and
    refused 4 KiB pages, step by step."""
    run = trace_of(start(scenario, variant), scenario.steps)
    for k, tr in zip(range(1, len(trace.states)), run, strict=False):
        want = {f: int(trace.states[k][f]) for f in ("loc", "size", "n_ref0")}
        got = {
            "loc": int(tr.state.loc),
            "size": tr.state.drv.size,
            "n_ref0": tr.state.drv.n_refused[0],
        }
        assert got == want, f"step {k}: the model is at {got}, the trace at {want}"


def test_a_failed_lock_below_2_32_with_f_above_replays_to_its_violation() -> None:
    """f above 2**32, the page below: the failed LOCK writes the target (the defect
    target_on_success, line 457), as the solver's trace says."""
    v = parse_variant("fixed-target_on_success")
    depth = 11
    bad = lambda u: z3.Not(PROPERTIES["target_from_host"](u.state(depth)))  # noqa: E731
    trace = _trace(v, depth, bad, f_high=True)
    scenario = to_scenario(trace, v)
    _follows(trace, scenario, v)
    found = check_trace(scenario, v, frozenset({"target_from_host"}))
    assert found, f"the model does not show target_from_host on {scenario}"


def test_a_page_above_2_32_with_f_below_is_refused_as_in_the_trace() -> None:
    """f below 2**32, the page above: FIXED refuses it without a LOCK (lines 451-453
    with lock_64bit_refused), as the solver's trace says."""
    depth = 11

    def refused(u: Unrolling) -> z3.BoolRef:
        # every LOCK the model might send where the trace sends none is answered SUCCESS
        ok = [i["LOCK_st"] == 0 for i in u.inputs]
        return z3.And(u.state(depth)["n_ref0"] != 0, *ok)

    trace = _trace(FIXED, depth, refused, f_high=False)
    _follows(trace, to_scenario(trace, FIXED), FIXED)
