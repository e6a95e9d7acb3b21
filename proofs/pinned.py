"""A sound under-approximation of the environment: inputs that do not matter at their defaults.

A counterexample search over every input of the encoding (:data:`proofs.encoding.INPUTS`)
is expensive when the trace is deep.  Most violations need only a few inputs chosen:
the capabilities START grants, the targets the host sets, which allocations fail.
:func:`pin` constrains every other input of one step to its default, the value a
cooperative, uneventful host and guest give it (the same defaults a minimised
scenario keeps, :mod:`proofs.minimize`):

* every backdoor status SUCCESS, except START's, which may also be
  SUCCESS_WITH_CAPABILITIES (the only way to negotiate batched commands);
* a batched command's response carries no ``entries`` (the batch page stays as the
  driver wrote it: every page locked or unlocked), so the class counts are 0 but
  ``e_ok``, which the encoding ties to the batch size;
* ``vmci_doorbell_create`` succeeds; the entry point is ``work``;
* no allocation returns the frame ``f``, a high PFN or the stale ``b->page``, and no
  deflate walks onto them.

Results (``*_res``) and whether an allocation succeeds (``a_ok``) stay free; a caller
may free more (:data:`FREE`).  Every trace of the pinned system is a trace of the
full one, so a counterexample found here is a real counterexample (it is still
replayed through the model before it is reported); *no* counterexample here proves
nothing, and the search must fall back to the full input space
(:func:`proofs.check.deep_search`).
"""

from __future__ import annotations

import z3

from vmballoon.core.protocol import SUCCESS_WITH_CAPABILITIES
from vmballoon.proofs.encoding import INPUTS, Expr, State, bv64

FREE: frozenset[str] = frozenset(
    {"START_st", "a_ok", "e_ok"} | {n for n, _ in INPUTS if n.endswith("_res")}
)
"""The inputs :func:`pin` leaves free by default (``START_st`` within SUCCESS or
SUCCESS_WITH_CAPABILITIES)."""

_TRUE_BY_DEFAULT = frozenset({"v_ok"})


def pin(i: State, free: frozenset[str] = FREE) -> list[Expr]:
    """Constraints fixing every input of ``i`` outside ``free`` at its default."""
    cons: list[Expr] = []
    for name, _ in INPUTS:
        e = i[name]
        if name == "START_st" and name in free:
            cons.append(z3.Or(e == bv64(0), e == bv64(SUCCESS_WITH_CAPABILITIES)))
        elif name in free:
            continue
        elif z3.is_bool(e):
            cons.append(e if name in _TRUE_BY_DEFAULT else z3.Not(e))
        else:
            cons.append(e == z3.BitVecVal(0, e.size()))
    return cons


__all__ = ["FREE", "pin"]
