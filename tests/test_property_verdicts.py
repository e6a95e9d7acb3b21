"""The checker's verdicts on every scenario of the repository (tests/verdicts.py).

Two nets for the properties themselves (``vmballoon/model/properties.py``), which the
differential tests do not reach (model and reference share them):

* FIXED violates nothing on any scenario whose guest keeps the assumptions every result
  rests on (``GLOBAL`` of vmballoon/core/assumptions.py, e.g. frames below 2**52): a
  property that raises a false alarm fails here;
* every verdict (property, first transition, how many transitions, first and last
  message) on every scenario and variant equals ``tests/golden/verdicts.json``: a
  property weakened, strengthened or reworded shows as a difference.  After a
  reviewed change, rewrite the file with ``python -m tests.verdicts``.
"""

from __future__ import annotations

import json

import pytest

from tests.verdicts import GOLDEN, ROOT, compute
from vmballoon.core.assumptions import GLOBAL, Guest, broken
from vmballoon.core.scenario import load_scenario


@pytest.fixture(scope="module")
def now() -> dict[str, dict[str, dict[str, list[object]]]]:
    return compute()


def test_fixed_raises_no_alarm_where_the_assumptions_hold(
    now: dict[str, dict[str, dict[str, list[object]]]],
) -> None:
    for path, by_variant in now.items():
        sc = load_scenario(str(ROOT / path))
        if broken(GLOBAL, Guest(sc.frames, sc.pfn_base, sc.totalram)):
            continue  # the guest breaks an assumption of every result: nothing is claimed
        assert by_variant["fixed"] == {}, f"FIXED violates on {path}: {by_variant['fixed']}"


def test_verdicts_equal_the_reviewed_file(
    now: dict[str, dict[str, dict[str, list[object]]]],
) -> None:
    golden = json.loads(GOLDEN.read_text())
    assert sorted(now) == sorted(golden), "scenarios added or removed: python -m tests.verdicts"
    for path in golden:
        for variant, expected in golden[path].items():
            got = now[path].get(variant)
            assert got == expected, (
                f"{path} on {variant}: verdicts changed\n  file: {expected}\n  now:  {got}\n"
                "if the change is intended, rewrite with: python -m tests.verdicts"
            )
