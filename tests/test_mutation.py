"""The mutation tool (benchmarks/mutation): its mutants, and three planted ones killed.

The whole campaign is a benchmark (``python -m benchmarks.mutation``); CI runs only
this sample: the mutator yields every kind of mutant on the readings, keys are
stable under line shifts, and three mutants the issue names (deflate hysteresis,
refused-page bound, a dropped fix) are killed by the project's checks in a scratch
copy, while the unmutated copy passes the same checks.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.mutation.mutator import KINDS, Mutant, all_mutants, mutants_of
from benchmarks.mutation.runner import ROOT, Worker, load_equivalent, make_tree

HYSTERESIS = (
    "model/transitions.py::work_target::relop: tx.size > target + PAGES_PER_2M & U32_MASK"
    " -> tx.size >= target + PAGES_PER_2M & U32_MASK"
)


def _find(rel: str, pred: str) -> Mutant:
    found = [m for m in mutants_of(ROOT, rel) if pred in m.key]
    assert found, pred
    return found[0]


def test_every_kind_on_the_readings() -> None:
    mutants = list(all_mutants(ROOT))
    kinds = Counter(m.kind for m in mutants)
    assert set(kinds) == set(KINDS), kinds
    files = {m.file for m in mutants}
    assert {"model/transitions.py", "reference/driver.py", "proofs/encoding.py"} <= files
    keys = [m.key for m in mutants]
    assert len(keys) == len(set(keys)), "mutant keys must be unique"


def test_mutants_are_local_and_keys_survive_line_shifts(tmp_path: Path) -> None:
    source = (ROOT / "model/transitions.py").read_text()
    m = _find("model/transitions.py", HYSTERESIS)
    mutated = m.apply(source)
    assert m.key == HYSTERESIS
    assert "tx.size >= target + PAGES_PER_2M & U32_MASK" in mutated
    diff = m.diff(source)
    changed = [x for x in diff.splitlines()[2:] if x[:1] in "+-"]
    assert len(changed) == 2, diff
    (tmp_path / "model").mkdir()
    (tmp_path / "model/transitions.py").write_text("# a new first line\n\n" + source)
    shifted = {x.key: x.line for x in mutants_of(tmp_path, "model/transitions.py")}
    assert shifted[HYSTERESIS] == m.line + 2


def test_equivalent_list_names_existing_mutants_with_reasons() -> None:
    keys = {m.key for m in all_mutants(ROOT)}
    for key, reason in load_equivalent().items():
        assert key in keys, f"equivalent.json names no current mutant: {key}"
        assert len(reason) > 20, key


@pytest.fixture(scope="module")
def worker() -> object:
    with tempfile.TemporaryDirectory(prefix="vmballoon-mutation-test-") as tmp:
        w = Worker(make_tree(Path(tmp)))
        yield w
        w.close()


PLANTED = [
    ("model/transitions.py", HYSTERESIS),
    (
        "model/ops.py",
        "model/ops.py::_lock_batched_page::relop: tx.n_refused[idx] < MAX_REFUSED -> "
        "tx.n_refused[idx] <= MAX_REFUSED",
    ),
    ("reference/driver.py", "::nofix: b.variant.has('count_allocations') -> False"),
]
STAGES = ["golden", "boundaries", "scenarios"]


@pytest.mark.parametrize(("rel", "key"), PLANTED, ids=["hysteresis", "refused", "nofix"])
def test_planted_mutant_is_killed(worker: Worker, rel: str, key: str) -> None:
    m = _find(rel, key)
    source = m.apply((ROOT / rel).read_text())
    answer = worker.run(rel, source, STAGES, {s: 300.0 for s in STAGES}, log=True)
    assert answer["outcome"] == "killed", answer


def test_unmutated_tree_passes_the_same_checks(worker: Worker) -> None:
    rel = "model/transitions.py"
    answer = worker.run(rel, (ROOT / rel).read_text(), ["boundaries"], {"boundaries": 300.0}, True)
    assert answer["outcome"] == "survived", answer.get("log")
