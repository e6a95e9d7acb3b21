"""The one place that makes Z3 solvers, and the one ``Unknown``.

Every query of the proofs goes through a solver made here, so a timeout is set the same
way everywhere (in seconds, never 0, which Z3 reads as "no limit") and a solver that
gives up is reported the same way: :class:`Unknown`, which nothing turns into "proved".

* :func:`solver`: Z3's incremental SMT solver (Houdini, the quantified totality check,
  the abstract cone);
* :func:`qfbv_solver`: Z3's incremental solver for quantifier-free bit-vectors
  (totality's default input, input-completeness, the witness check, property
  conformance's frame situations);
* :func:`bv_solver`: a non-incremental bit-blasting tactic, the fastest here for the
  bounded model checking queries over bit-vectors;
* :func:`invariant`: the conjunction of the properties and lemmas of the inductive
  invariant, as the induction, the progress proof and input-completeness assume it.
"""

from __future__ import annotations

from typing import Any

import z3

from vmballoon.proofs.encoding import Expr
from vmballoon.proofs.props import AUX, PROPERTIES


class Unknown(Exception):
    """A solver answered ``unknown`` (timeout, incompleteness): nothing is claimed."""


def _millis(timeout: float) -> int:
    return max(1, round(timeout * 1000))  # 0 would mean no limit


def solver(timeout: float) -> z3.Solver:
    """A Z3 solver with a per-query timeout in seconds."""
    sol = z3.Solver()
    sol.set("timeout", _millis(timeout))
    return sol


def qfbv_solver(timeout: float) -> z3.Solver:
    """Z3's solver for quantifier-free bit-vectors, with a per-query timeout in seconds."""
    sol = z3.SolverFor("QF_BV")
    sol.set("timeout", _millis(timeout))
    return sol


def bv_solver(timeout: float) -> Any:
    """A non-incremental bit-blasting solver: the fastest here for BMC queries."""
    tactic = z3.Then(
        "simplify", "propagate-values", "solve-eqs", "elim-uncnstr", "simplify", "bit-blast", "sat"
    )
    sol = tactic.solver()
    sol.set("timeout", _millis(timeout))
    return sol


def invariant(s: dict[str, Expr]) -> Expr:
    """Every property and lemma of the inductive invariant, over state ``s``."""
    return z3.And([p(s) for p in PROPERTIES.values()] + [a(s) for a in AUX.values()])


__all__ = ["Unknown", "bv_solver", "invariant", "qfbv_solver", "solver"]
