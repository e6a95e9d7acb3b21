"""The Z3 encoding agrees with the model along the boundary scenarios (issue 8).

tests/test_encoding_conformance.py samples random scenarios; boundary values are
where sampling rarely looks.  Here every transition of the scenarios of
tests/test_boundaries.py (deflate hysteresis at size = target + 512 and one
past, batches of exactly 512, the 16th and 17th refused page, the allocation
rate at its floor, raised, and kept after a failed lock) is checked the same way
on every frame the step touches: the encoding's successor of α(state) is
α(successor), and its input constraints admit the step.
"""

from __future__ import annotations

import pytest

from tests.test_boundaries import BOUNDARY_SCENARIOS
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.proofs.abstraction import candidate_frames
from vmballoon.proofs.conformance import Conformance, sample_of, transitions_of

CHECKERS: dict[str, Conformance] = {}


def _checker(variant: Variant) -> Conformance:
    if variant.name not in CHECKERS:
        CHECKERS[variant.name] = Conformance(variant)
    return CHECKERS[variant.name]


@pytest.mark.parametrize("variant", [SEED, FIXED], ids=lambda v: v.name)
@pytest.mark.parametrize("name", sorted(BOUNDARY_SCENARIOS))
def test_encoding_matches_model_at_the_boundaries(name: str, variant: Variant) -> None:
    scenario: Scenario = BOUNDARY_SCENARIOS[name]
    checker = _checker(variant)
    checked = 0
    for prev, nxt, g0, g1, found in transitions_of(scenario, variant, 10_000):
        for f in candidate_frames(prev, nxt)[:2]:
            smp = sample_of(prev, nxt, g0, g1, found, f)
            if smp is None:  # not representable
                continue
            wrong = checker.mismatches(smp.loc, smp.pre, smp.inputs, smp.post)
            assert not wrong, f"{prev.loc.name} frame {f}: {wrong[:3]}"
            checked += 1
    assert checked > 0
