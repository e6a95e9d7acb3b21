"""check-c runs the C beside the model: a step is checked when the C's reply to it has
come, and an example's last steps while the next examples run.  What it finds must be
what a campaign finds that waits for the C at every step and checks each example
before making the next (the reference ordering, ``Campaign(in_flight=0,
wait_each_step=True)``)."""

from __future__ import annotations

from typing import Any

import pytest

from vmballoon.apps.checkc import Campaign, Finding, run_check
from vmballoon.core.variants import FIXED, SEED
from vmballoon.harness.replay import binary_for


def _seen(f: Finding | None) -> Any:
    return None if f is None else (f.kind, f.properties, f.message, f.scenario.to_json())


def _summary(campaign: Campaign) -> Any:
    return {
        "failing": _seen(campaign.failing),
        "divergence": _seen(campaign.divergence),
        "outside": _seen(campaign.outside),
        "examples": campaign.examples,
    }


@pytest.mark.parametrize(
    ("seed", "fail_on"),
    [(1, "regression"), (2, "regression"), (3, "divergence"), (4, "divergence")],
)
def test_checking_beside_the_model_finds_what_waiting_for_the_c_finds(
    seed: int, fail_on: str
) -> None:
    """The seed's C against FIXED: its regressions and divergences come within a few
    examples, each found in the same example, with the same scenario and message, and
    the same number of examples checked, whether the model waits for the C or not."""
    binary = binary_for(SEED)

    def run(**ordering: Any) -> Any:
        campaign = Campaign(**ordering)
        run_check(binary, FIXED, 60, seed, fail_on, campaign=campaign)
        assert not campaign.backlog  # every example it made was checked or dropped
        return _summary(campaign)

    beside = run()
    assert beside == run(in_flight=0, wait_each_step=True)
    assert beside["failing"] is not None  # the seed's C shows its defects in 60 examples


def test_a_campaign_with_nothing_to_find_checks_every_example() -> None:
    """FIXED's C against FIXED: every example is checked to its end, none is dropped."""
    campaign = run_check(binary_for(FIXED), FIXED, 40, 5, "divergence")
    assert (campaign.failing, campaign.divergence, campaign.examples) == (None, None, 40)
    assert not campaign.backlog
