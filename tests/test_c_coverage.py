"""The driver's branch coverage (harness.coverage): the shipped corpus takes every branch of
the seed and of the fixed source but the reviewed unreachable ones."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vmballoon.core.scenario import load_scenario
from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.harness.build import build
from vmballoon.harness.coverage import (
    UNREACHABLE,
    Coverage,
    check_reachable,
    collect,
    corpus_coverage,
    load_unreachable,
)
from vmballoon.harness.patches import variant_source
from vmballoon.harness.replay import binary_for, replay

CORPUS = sorted(
    [
        *(ROOT / "tests" / "scenarios").glob("*.json"),
        *(ROOT / "tests" / "golden").glob("*.scenario.json"),
        *(ROOT / "spec" / "examples").glob("*.scenario.json"),
        *(ROOT / "spec" / "findings").glob("*.scenario.json"),
    ]
)


@cache
def corpus(variant: Variant) -> Coverage:
    return corpus_coverage(binary_for(variant, coverage=True), [load_scenario(p) for p in CORPUS])


@pytest.mark.parametrize("variant", [SEED, FIXED], ids=lambda v: v.name)
def test_the_corpus_takes_every_reachable_branch(variant: Variant) -> None:
    cov = corpus(variant)
    report = check_reachable(cov, load_unreachable(variant.name))
    missed = [f"{b.function}:{b.line}#{b.index}" for b in report.missed]
    assert not missed, f"reachable branches the corpus does not take: {missed}"
    assert not report.taken_but_listed and not report.stale
    assert report.reachable == report.reachable_hit > 150
    per_function = {f.name: f for f in cov.functions}
    assert per_function["vmballoon_inflate"].branches_hit == per_function[
        "vmballoon_inflate"
    ].branches - (3 if variant == SEED else 0)
    assert per_function["vmballoon_debug_show"].lines_hit == 0


def test_a_corpus_without_a_scenario_misses_its_branches() -> None:
    """The check can fail: without the scenario that fails the batch page allocation,
    the reset's fallback (START with no capability) is reported as missed."""
    without = [load_scenario(p) for p in CORPUS if p.name != "reset_failures.json"]
    cov = corpus_coverage(binary_for(SEED, coverage=True), without)
    report = check_reachable(cov, load_unreachable("seed"))
    assert {b.function for b in report.missed} >= {"vmballoon_init_batching", "vmballoon_reset"}


def test_a_listed_branch_that_is_taken_is_reported() -> None:
    """The list is checked too: a branch it names that a run takes makes it wrong."""
    wrong = [*load_unreachable("seed")]
    cov = corpus(SEED)
    taken = next(b for b in cov.branches if b.count and b.function == "vmballoon_reset")
    from vmballoon.harness.coverage import Unreachable

    wrong.append(Unreachable(taken.function, taken.line, taken.index, "wrongly listed"))
    report = check_reachable(cov, wrong)
    assert report.taken_but_listed == (taken,) and not report.complete


def test_every_listed_branch_has_a_reason() -> None:
    doc = json.loads(UNREACHABLE.read_text(encoding="utf-8"))
    for entries in doc["sources"].values():
        assert all(len(e["reason"]) > 40 for e in entries)


def test_collect_measures_only_the_runs_inside_and_adds_up(tmp_path: Path) -> None:
    """Two sets of runs measured apart add up to both measured together."""
    lib = binary_for(SEED, coverage=True)
    a, b = (
        load_scenario(ROOT / "tests" / "scenarios" / n)
        for n in ("null_ops.json", "doorbell_life_cycle.json")
    )
    with collect(lib) as counts:
        replay(a, binary=lib)
        first = counts.result()
    with collect(lib) as counts:
        replay(b, binary=lib)
        second = counts.result()
    both = corpus_coverage(lib, [a, b])
    assert first.union(second).branches == both.branches
    assert 0 < first.branches_hit < both.branches_hit


def test_a_source_as_it_is_built_with_coverage(tmp_path: Path) -> None:
    lib = build(variant_source(FIXED), "mine.c", coverage=True)
    cov = corpus_coverage(lib, [load_scenario(ROOT / "tests" / "scenarios" / "null_ops.json")])
    assert cov.source == "mine.c" and cov.branches_hit > 0
