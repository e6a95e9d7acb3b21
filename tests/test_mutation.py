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
    "vmballoon/model/transitions.py::work_target::relop: tx.size > target + PAGES_PER_2M & U32_MASK"
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
    readings = {"model/transitions.py", "reference/driver.py", "proofs/encoding.py"}
    assert {f"vmballoon/{r}" for r in readings} <= files
    keys = [m.key for m in mutants]
    assert len(keys) == len(set(keys)), "mutant keys must be unique"


def test_mutants_are_local_and_keys_survive_line_shifts(tmp_path: Path) -> None:
    source = (ROOT / "vmballoon/model/transitions.py").read_text()
    m = _find("vmballoon/model/transitions.py", HYSTERESIS)
    mutated = m.apply(source)
    assert m.key == HYSTERESIS
    assert "tx.size >= target + PAGES_PER_2M & U32_MASK" in mutated
    diff = m.diff(source)
    changed = [x for x in diff.splitlines()[2:] if x[:1] in "+-"]
    assert len(changed) == 2, diff
    (tmp_path / "vmballoon/model").mkdir(parents=True)
    (tmp_path / "vmballoon/model/transitions.py").write_text("# a new first line\n\n" + source)
    shifted = {x.key: x.line for x in mutants_of(tmp_path, "vmballoon/model/transitions.py")}
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
    ("vmballoon/model/transitions.py", HYSTERESIS),
    (
        "vmballoon/model/ops.py",
        "vmballoon/model/ops.py::_lock_batched_page::relop: tx.n_refused[idx] < MAX_REFUSED -> "
        "tx.n_refused[idx] <= MAX_REFUSED",
    ),
    ("vmballoon/reference/driver.py", "::nofix: b.variant.has('count_allocations') -> False"),
]
STAGES = ["golden", "boundaries", "scenarios"]


@pytest.mark.parametrize(("rel", "key"), PLANTED, ids=["hysteresis", "refused", "nofix"])
def test_planted_mutant_is_killed(worker: Worker, rel: str, key: str) -> None:
    m = _find(rel, key)
    source = m.apply((ROOT / rel).read_text())
    answer = worker.run(rel, source, STAGES, {s: 300.0 for s in STAGES}, log=True)
    assert answer["outcome"] == "killed", answer


def test_unmutated_tree_passes_the_same_checks(worker: Worker) -> None:
    rel = "vmballoon/model/transitions.py"
    answer = worker.run(rel, (ROOT / rel).read_text(), ["boundaries"], {"boundaries": 300.0}, True)
    assert answer["outcome"] == "survived", answer.get("log")


def _part(results: list[tuple[str, str]], shard: str | None) -> dict[str, object]:
    """A shard's report as the runner writes it, reduced to what ``merge`` reads."""
    return {
        "shard": shard,
        "commit": "c0ffee",
        "mutants": len(results),
        "wall_seconds": 10.0,
        "results": [
            {"key": k, "outcome": o, "stage": "golden" if o == "killed" else None, "seconds": 1.0}
            for k, o in results
        ],
        "survivors": [
            {"key": k, "line": 1, "kind": "relop", "diff": f"-{k}"}
            for k, o in results
            if o == "survived"
        ],
    }


def test_merged_shards_score_every_current_mutant_once() -> None:
    from benchmarks.mutation.runner import merge

    current = ["a", "b", "c", "d", "e"]
    one = _part([("a", "killed"), ("c", "survived"), ("gone", "survived")], "1/2")
    two = _part([("b", "timeout"), ("d", "survived"), ("c", "killed")], "2/2")
    rep = merge([one, two], current, {"d": "behaviour-preserving: reason"})
    # c: the later report (it killed it) wins; d: listed equivalent; e: never run
    assert (rep["mutants"], rep["killed"], rep["timeouts"]) == (4, 3, 1)
    assert rep["equivalent"] == 1 and rep["survived"] == 0
    assert rep["score"] == 1.0
    assert rep["missing"] == ["e"]
    assert rep["stale_keys"] == ["gone"]
    assert [p["shard"] for p in rep["merged"]] == ["1/2", "2/2"]
    rep = merge([two, one], current, {})
    assert [s["key"] for s in rep["survivors"]] == ["c", "d"]
    assert rep["survivors"][0]["diff"] == "-c"
    assert rep["score"] == round(2 / 4, 4)


def test_a_merge_scores_each_file_apart_from_what_no_report_ran() -> None:
    """The report's score per mutated file: a mutant no report ran is counted in its
    file's ``not_run``, never in its score."""
    from benchmarks.mutation.runner import merge

    x1, x2, x3, y1, y2 = "x.py::f::1", "x.py::f::2", "x.py::g::1", "y.py::h::1", "y.py::h::2"
    one = _part([(x1, "killed"), (x2, "survived"), (x3, "survived"), (y1, "timeout")], None)
    rep = merge([one], [x1, x2, x3, y1, y2], {x3: "behaviour-preserving: reason"})
    assert rep["files"] == {
        "x.py": {"mutants": 3, "killed": 1, "survived": 1, "equivalent": 1, "score": 0.5},
        "y.py": {"mutants": 2, "killed": 1, "not_run": 1, "score": 1.0},
    }


def test_shards_partition_the_mutants(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.mutation.__main__ import main

    seen: list[str] = []
    for k in (1, 2, 3):
        assert main(["--shard", f"{k}/3", "--list"]) == 0
        seen += [line.split(None, 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert sorted(seen) == sorted(m.key for m in all_mutants(ROOT))
    for bad in ("0/3", "4/3", "3", "a/b"):
        with pytest.raises(SystemExit):
            main(["--shard", bad, "--list"])
        assert "expected K/N" in capsys.readouterr().err


def test_merge_takes_reports_in_the_order_they_finished() -> None:
    """A rerun that finished after a shard wins over it whatever the order given: a
    ``runs/*.json`` glob sorts a rerun before the shard it reran."""
    from benchmarks.mutation.runner import merge

    shard = {
        **_part([("a", "survived"), ("b", "killed")], "1/1"),
        "finished": "2026-11-29T10:00:00+00:00",
    }
    rerun = {**_part([("a", "killed")], None), "finished": "2026-11-29T11:00:00+00:00"}
    for order in ([rerun, shard], [shard, rerun]):
        rep = merge(order, ["a", "b"], {})
        assert (rep["killed"], rep["survived"]) == (2, 0)
        assert [p["finished"][11:13] for p in rep["merged"]] == ["10", "11"]
    rep = merge([{**shard, "finished": "2026-11-29T12:00:00+00:00"}, rerun], ["a", "b"], {})
    assert rep["survived"] == 1  # the shard finished last: its survivor stands


def test_a_mutant_keeps_its_shard_when_others_come_and_go() -> None:
    """Shards are chosen by key, not position: a run made in parts across commits that add
    or remove mutants still covers each mutant once."""
    from benchmarks.mutation.runner import shard_of

    keys = [m.key for m in all_mutants(ROOT)]
    before = {k: shard_of(k, 6) for k in keys}
    after = {k: shard_of(k, 6) for k in ["vmballoon/model/new.py::f::constant: 0 -> 1", *keys[1:]]}
    assert all(after[k] == before[k] for k in keys[1:])
    sizes = [sum(1 for v in before.values() if v == k) for k in range(1, 7)]
    assert min(sizes) > 0.8 * len(keys) / 6  # balanced enough to split the work


def test_keys_file_selects_mutants_and_refuses_unknown_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.mutation.__main__ import main

    keys = [m.key for m in all_mutants(ROOT)][:3]
    listed = tmp_path / "keys.txt"
    listed.write_text("# the missing of a merged report\n" + "\n".join(keys) + "\n\n")
    assert main(["--keys", str(listed), "--list"]) == 0
    assert [ln.split(None, 1)[1] for ln in capsys.readouterr().out.splitlines()] == keys
    listed.write_text("vmballoon/model/none.py::f::relop: a < b -> a <= b\n")
    assert main(["--keys", str(listed), "--list"]) == 2
    assert "name no current mutant" in capsys.readouterr().err
    assert main(["--keys", str(tmp_path / "absent.txt"), "--list"]) == 2


def test_lemma_rules_cover_lemmas_only() -> None:
    """The reviewed rules classify every mutant of an auxiliary or progress lemma, of the
    progress proof's ranking function and of totality's candidate witness
    (vacuity.default_inputs), and no mutant of an encoded property, of the progress goal,
    of the obligation that checks the rank, or of the encoding."""
    eq = load_equivalent()
    mutants = list(all_mutants(ROOT))
    by_rule = [m for m in mutants if eq.rule(m.key) is not None]
    assert any(m.scope.startswith("aux_frame") for m in by_rule)
    assert any(m.scope.startswith("t_target") for m in by_rule)
    assert any(m.scope.startswith("c_ops_granted") for m in by_rule)
    assert any(m.scope == "default_inputs" for m in by_rule)
    assert any(m.scope == "rank" for m in by_rule)
    helpers = _called_only_by_lemmas(ROOT / "vmballoon/proofs/props.py")
    assert {"_ops", "_cap"} <= helpers
    for m in by_rule:
        if m.file == "vmballoon/proofs/vacuity.py" and m.scope == "default_inputs":
            continue
        assert m.file in ("vmballoon/proofs/props.py", "vmballoon/proofs/progress.py"), m.key
        scope = m.scope.split(".")[0]
        assert scope.startswith(("aux_", "t_", "g_", "c_")) or scope in helpers | {"rank"}, m.key
    assert not any(
        eq.rule(m.key)
        for m in mutants
        if m.scope.split(".")[0]
        in ("refused_bounds", "no_leak", "progress_holds", "in_range", "prove", "_rank_decreases")
    )


def _called_only_by_lemmas(path: Path) -> set[str]:
    """The module-level functions of ``path`` that only ``aux_*`` functions read (call or
    pass on): nothing else, no table at module level."""
    import ast

    tree = ast.parse(path.read_text())
    callers: dict[str, set[str]] = {}  # name -> the functions (or "<module>") that read it
    for top in tree.body:
        where = top.name if isinstance(top, ast.FunctionDef) else "<module>"
        for node in ast.walk(top):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store):
                callers.setdefault(node.id, set()).add(where)
    names = {fn.name for fn in tree.body if isinstance(fn, ast.FunctionDef)}
    return {n for n in names if callers.get(n) and all(c.startswith("aux_") for c in callers[n])}


def test_a_drivers_own_tests_run_first_and_no_test_is_lost() -> None:
    """The drivers stage runs the tests of the mutated proof driver first (pytest stops
    at the first failure); every listed test file exists and belongs to the stage, and
    the stage runs the same tests whatever the order."""
    from benchmarks.mutation.stages import FIRST, STAGES_BY_NAME

    drivers = STAGES_BY_NAME["drivers"]
    for rel, first in FIRST.items():
        assert (ROOT / rel).exists(), rel
        assert all((ROOT / f).exists() and f in drivers.args for f in first), (rel, first)
        ordered = drivers.for_file(rel)
        assert ordered.args[: len(first)] == first
        assert sorted(ordered.args) == sorted(drivers.args)
    assert drivers.for_file("vmballoon/model/ops.py") is drivers
