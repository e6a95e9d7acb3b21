"""A sound under-approximation of the environment: inputs that do not matter at their defaults.

A counterexample search over every input of the encoding (:data:`vmballoon.proofs.encoding.INPUTS`)
is expensive when the trace is deep.  Most violations need only a few inputs chosen:
the capabilities START grants, the targets the host sets, which allocations fail.
:func:`pin` constrains every other input of one step to its default, the value a
cooperative, uneventful host and guest give it (the same defaults a minimised
scenario keeps, :mod:`vmballoon.core.minimize`):

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
(:func:`vmballoon.proofs.check.deep_search`).
"""

from __future__ import annotations

import z3

from vmballoon.core.protocol import ERROR_RESET, SUCCESS_WITH_CAPABILITIES
from vmballoon.proofs.encoding import INPUTS, Expr, State, bv64

FREE: frozenset[str] = frozenset({"a_ok", "e_ok"} | {n for n, _ in INPUTS if n.endswith("_res")})
"""The inputs :func:`pin` leaves free by default (statuses are pinned to a set)."""

FREE_PRODUCT: frozenset[str] = FREE | {
    "e_present",
    "e_ref",
    "e_free",
    "e_warn",
    "f_cls",
    "f_rank",
    "a_f",
    "a_hi",
    "a_eqpage",
}
"""For the per-defect search (:mod:`vmballoon.proofs.defects`): the batch entries and the frames
an allocation returns free too (defects live there), statuses SUCCESS or ERROR_RESET."""

_TRUE_BY_DEFAULT = frozenset({"v_ok"})


def pin(i: State, free: frozenset[str] = FREE, statuses: tuple[int, ...] = (0,)) -> list[Expr]:
    """Constraints fixing every input of ``i`` outside ``free`` at its default; a status
    is one of ``statuses`` (START's may also be SUCCESS_WITH_CAPABILITIES)."""
    cons: list[Expr] = []
    for name, _ in INPUTS:
        e = i[name]
        if name.endswith("_st"):
            allowed = statuses + ((SUCCESS_WITH_CAPABILITIES,) if name == "START_st" else ())
            cons.append(z3.Or([e == bv64(v) for v in allowed]))
        elif name in free:
            continue
        elif z3.is_bool(e):
            cons.append(e if name in _TRUE_BY_DEFAULT else z3.Not(e))
        else:
            cons.append(e == z3.BitVecVal(0, e.size()))
    return cons


RESET_TOO = (0, ERROR_RESET)
"""Statuses for :data:`FREE_PRODUCT`: a defect may need a reset between two ticks."""

__all__ = ["FREE", "FREE_PRODUCT", "RESET_TOO", "pin"]
