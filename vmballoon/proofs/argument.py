"""The checks that tie a proof about the encoding to the model, as one ``verify`` job.

``spec/encoding-argument.md`` argues link by link that a property proved of the Z3
encoding holds of the model; this job runs, for one variant, the checks that hold the
links a proof run does not already check:

* the branch- and boundary-complete witnesses (:mod:`vmballoon.proofs.witness`): the encoding
  simulates the model on every target, each met by a step that does not crash where one
  exists;
* input-completeness (:mod:`vmballoon.proofs.completeness`): the encoding admits every input the
  environment contract allows, or the excluded inputs are exactly a named assumption;
* property conformance (:mod:`vmballoon.proofs.propconf`): each encoded property says of every
  frame what the model's says, on the witness steps' states and on model runs.

:func:`outcome` returns the job's row (the witness report's fields, as ``verify``
prints them, plus one section per check); it is ``ok`` only when all three pass.
"""

from __future__ import annotations

from typing import Any

from vmballoon.core.variants import Variant
from vmballoon.proofs import completeness, propconf, witness
from vmballoon.proofs.witness import Status


def overall(*statuses: Status) -> Status:
    """FAILED if any failed, else UNKNOWN if any is unknown, else PASSED."""
    if Status.FAILED in statuses:
        return Status.FAILED
    if Status.UNKNOWN in statuses:
        return Status.UNKNOWN
    return Status.PASSED


def outcome(variant: Variant, random_runs: int = 20) -> dict[str, Any]:
    """The conformance row of ``verify`` for ``variant`` (see the module docstring)."""
    w = witness.check(variant, keep_steps=True)
    c = completeness.check(variant)
    p = propconf.check(variant, w.steps, random_runs=random_runs, boundary=False)
    status = overall(w.status, c.status, p.status)
    row = {"prop": "conformance", "kind": "conformance", **w.to_json()}
    row.update(
        {
            "ok": status == Status.PASSED,
            "status": status.value,
            "witness_status": w.status.value,
            "completeness": c.to_json(),
            "properties": p.to_json(),
            "lines": [c.line(), p.line()],
            "problems": w.problems() + c.problems() + p.problems(),
            "seconds": round(w.seconds + c.seconds + p.seconds, 1),
        }
    )
    return row


__all__ = ["outcome", "overall"]
