"""Quick checks that stop at the first disagreement (a mutant's first cheap death).

The project's own tests are thorough but finish their sampling before they fail;
these check the same relation and return at the first mismatch, so a broken
mutant is killed in a second or two.  A mutant that passes them still meets the
full tests in the later stages.
"""

from __future__ import annotations

import random

SAMPLES = 1500


def conformance() -> int:
    """``tests/test_encoding_conformance.py``'s relation on FIXED then SEED: 1 at the
    first sample where the encoding's successor is not the abstraction of the model's."""
    from vmballoon.core.variants import FIXED, SEED
    from vmballoon.proofs.conformance import Conformance, samples

    for variant in (FIXED, SEED):
        checker = Conformance(variant)
        for smp in samples(random.Random(20240611), variant, SAMPLES):
            if checker.mismatches(smp.loc, smp.pre, smp.inputs, smp.post):
                print(f"{variant.name}: mismatch at {smp.loc.name}")
                return 1
    return 0


def properties() -> int:
    """Property conformance alone (:mod:`vmballoon.proofs.propconf`, the witness steps left
    out) on FIXED then SEED: 1 at the first variant where an encoded property disagrees
    with the model's (on reached states, or weaker on a neighbour or boundary state)."""
    from vmballoon.core.variants import FIXED, SEED
    from vmballoon.proofs import propconf
    from vmballoon.proofs.witness import Status

    for variant in (FIXED, SEED):
        p = propconf.check(variant, [], boundary=False, random_runs=20)
        if p.status != Status.PASSED:
            print(p.line())
            return 1
    return 0


def argument() -> int:
    """The checks of :mod:`vmballoon.proofs.argument` on FIXED then SEED (input-completeness, the
    witnesses, property conformance): 1 at the first that does not pass."""
    from vmballoon.core.variants import FIXED, SEED
    from vmballoon.proofs import completeness, propconf, witness
    from vmballoon.proofs.witness import Status

    for variant in (FIXED, SEED):
        c = completeness.check(variant)
        if c.status != Status.PASSED:
            print(c.line())
            return 1
    for variant in (FIXED, SEED):
        w = witness.check(variant, keep_steps=True)
        if w.status != Status.PASSED:
            print(f"{variant.name}: witnesses {w.status.value}: {w.problems()[:1]}")
            return 1
        p = propconf.check(variant, w.steps, boundary=False, random_runs=10)
        if p.status != Status.PASSED:
            print(p.line())
            return 1
    return 0
