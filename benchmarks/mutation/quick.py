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
