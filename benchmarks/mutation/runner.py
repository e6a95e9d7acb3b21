"""The campaign: scratch copies, workers, the baseline, every mutant, the report.

Each job owns one scratch copy of the repository (in a temporary folder, with a
link to ``../shared`` beside it when the checkout has one, for the golden
replays) and one :mod:`benchmarks.mutation.worker` process serving it.  The
unmutated tree runs every stage first: all must pass (else the checks are broken
and no mutant result would mean anything), and their times set the timeouts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.mutation.mutator import Mutant
from benchmarks.mutation.stages import STAGES, stages_for

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENT = Path(__file__).with_name("equivalent.json")
_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "*.egg-info",
    "mutation-report*.json",
)


def make_tree(parent: Path, root: Path = ROOT) -> Path:
    """A copy of ``root`` at ``parent/repo`` (links kept), with ``parent/shared`` beside it."""
    tree = parent / "repo"
    shutil.copytree(root, tree, symlinks=True, ignore=_IGNORE)
    shared = root.parent / "shared"
    if shared.is_dir():
        (parent / "shared").symlink_to(shared.resolve())
    return tree


class Worker:
    """One worker process over one scratch tree; requests are served one at a time."""

    def __init__(self, tree: Path) -> None:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(tree),
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONHASHSEED="0",
            MPLBACKEND="Agg",
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.mutation.worker"],
            cwd=tree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(
        self, rel: str, source: str, stages: list[str], timeouts: dict[str, float], log: bool
    ) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        req: dict[str, Any] = {
            "file": rel,
            "source": source,
            "stages": stages,
            "timeouts": timeouts,
        }
        if log:
            req["keep_log"] = True
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("mutation worker died")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        """Stop the worker and the stage it may be running."""
        self.proc.terminate()
        self.proc.wait(timeout=30)


@dataclass
class Result:
    mutant: Mutant
    outcome: str
    stage: str | None
    seconds: float
    stages: dict[str, float]
    diff: str = ""
    """The mutant's diff against the source it was made from (kept for survivors)."""


class Equivalent(dict[str, str]):
    """Reviewed equivalent mutants, key -> reason, and the reviewed *rules*: a key that
    matches a rule's pattern (a whole class of mutants, such as every mutant of an
    auxiliary lemma) is equivalent for the rule's reason unless killed."""

    def __init__(self, keys: dict[str, str], rules: list[dict[str, str]]) -> None:
        super().__init__(keys)
        self.rules = [(re.compile(r["pattern"]), r["reason"]) for r in rules]

    def rule(self, key: str) -> str | None:
        """The reason of the first rule ``key`` matches, None when none does."""
        return next((why for pat, why in self.rules if pat.search(key)), None)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or (isinstance(key, str) and self.rule(key) is not None)

    def __getitem__(self, key: str) -> str:
        if super().__contains__(key):
            return super().__getitem__(key)
        why = self.rule(key)
        if why is None:
            raise KeyError(key)
        return why


def load_equivalent(path: Path = EQUIVALENT) -> Equivalent:
    """Reviewed equivalent mutants (key -> reason) and rules."""
    if not path.exists():
        return Equivalent({}, [])
    data = json.loads(path.read_text())
    return Equivalent(data["equivalent"], data.get("rules", []))


def baseline(
    worker: Worker, files: Iterable[str], stage_filter: list[str] | None = None
) -> dict[str, float]:
    """Run every stage on the unmutated tree; their seconds.  Fails if any stage fails."""
    times: dict[str, float] = {}
    for rel in files:
        names = [s.name for s in stages_for(rel, stage_filter) if s.name not in times]
        if not names:
            continue
        source = (ROOT / rel).read_text()
        answer = worker.run(rel, source, names, {n: 1800.0 for n in names}, log=True)
        if answer["outcome"] != "survived":
            raise RuntimeError(
                f"stage {answer['stage']} fails on the unmutated tree:\n{answer.get('log', '')}"
            )
        times.update(answer["stages"])
    return times


def timeout_for(seconds: float) -> float:
    """A stage that takes 3x its unmutated time plus 20 s is a hanging mutant."""
    return 3.0 * seconds + 20.0


def campaign(
    mutants: list[Mutant],
    jobs: int,
    progress: Callable[[int, int, Result], None],
    stage_filter: list[str] | None = None,
) -> tuple[list[Result], dict[str, float], float, bool]:
    """Run every mutant; the results, the baseline stage times, the wall time and whether
    the run was interrupted (Ctrl-C or SIGTERM once mutants ran: the results are those of
    the mutants that finished).  An interruption during the baseline raises
    ``KeyboardInterrupt``: nothing was found."""
    t0 = time.monotonic()
    interrupted = False
    files = sorted({m.file for m in mutants})
    sources = {rel: (ROOT / rel).read_text() for rel in files}
    with tempfile.TemporaryDirectory(prefix="vmballoon-mutation-") as tmp:
        workers = []
        for k in range(max(1, jobs)):
            parent = Path(tmp) / f"w{k}"
            parent.mkdir()
            workers.append(Worker(make_tree(parent)))
        try:
            base = baseline(workers[0], files, stage_filter)
            timeouts = {name: timeout_for(s) for name, s in base.items()}
            free = list(workers)
            lock = threading.Lock()
            results: list[Result] = []

            def one(m: Mutant) -> Result:
                with lock:
                    w = free.pop()
                try:
                    names = [s.name for s in stages_for(m.file, stage_filter) if s.name in base]
                    ans = w.run(m.file, m.apply(sources[m.file]), names, timeouts, log=False)
                finally:
                    with lock:
                        free.append(w)
                r = Result(m, ans["outcome"], ans["stage"], ans["seconds"], ans["stages"])
                if r.outcome == "survived":
                    r.diff = m.diff(sources[m.file])
                with lock:
                    results.append(r)
                    progress(len(results), len(mutants), r)
                return r

            pool = ThreadPoolExecutor(max_workers=len(workers))
            try:
                list(pool.map(one, mutants))
            except KeyboardInterrupt:
                interrupted = True
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
        finally:
            for w in workers:
                w.close()
    order = {m.key: k for k, m in enumerate(mutants)}
    with lock:
        done = sorted(results, key=lambda r: order[r.mutant.key])
    return done, base, time.monotonic() - t0, interrupted


@dataclass(frozen=True)
class Row:
    """One mutant's outcome as a tally sees it, from a run or from a report's JSON."""

    key: str
    outcome: str
    stage: str | None
    survivor: dict[str, Any]
    """What a report lists for it if it survived and is not listed as equivalent."""


def tally(rows: Iterable[Row], equivalent: dict[str, str]) -> dict[str, Any]:
    """Counts, kills by stage, survivors, equivalents and the score of ``rows``, with the
    reviewed ``equivalent`` mutants applied: shared by :func:`report` and :func:`merge`."""
    killed_by: Counter[str] = Counter()
    survivors: list[dict[str, Any]] = []
    equivalents: list[dict[str, str]] = []
    stale: list[str] = []
    total = timeouts = 0
    for row in rows:
        total += 1
        if row.outcome in ("killed", "timeout"):
            timeouts += row.outcome == "timeout"
            stage = str(row.stage)
            killed_by[f"{stage} (timeout)" if row.outcome == "timeout" else stage] += 1
            if row.key in equivalent:
                stale.append(row.key)
        elif row.key in equivalent:
            equivalents.append({"key": row.key, "reason": equivalent[row.key]})
        else:
            survivors.append(row.survivor)
    killed = sum(killed_by.values())
    scored = total - len(equivalents)
    return {
        "mutants": total,
        "killed": killed,
        "timeouts": timeouts,
        "equivalent": len(equivalents),
        "survived": len(survivors),
        "score": round(killed / scored, 4) if scored else 1.0,
        "killed_by": dict(killed_by.most_common()),
        "survivors": survivors,
        "equivalent_mutants": equivalents,
        "killed_but_listed_equivalent": stale,
    }


def _score(c: Counter[str]) -> float:
    """A module's score: killed over the mutants run and not listed as equivalent."""
    scored = c["mutants"] - c["not_run"] - c["equivalent"]
    return round(c["killed"] / scored, 4) if scored else 1.0


def report(
    results: list[Result], base: dict[str, float], wall: float, equivalent: dict[str, str]
) -> dict[str, Any]:
    """The JSON report: counts, score, survivors with their diffs."""
    rows = (
        Row(
            r.mutant.key,
            r.outcome,
            r.stage,
            {"key": r.mutant.key, "line": r.mutant.line, "kind": r.mutant.kind, "diff": r.diff},
        )
        for r in results
    )
    return {
        **tally(rows, equivalent),
        "wall_seconds": round(wall, 1),
        "mutant_seconds": round(sum(r.seconds for r in results), 1),
        "baseline_seconds": base,
        "stages": [s.name for s in STAGES],
        "kinds": dict(Counter(r.mutant.kind for r in results).most_common()),
        "files": per_file(((r.mutant.key, r.outcome) for r in results), equivalent),
        "results": [
            {"key": r.mutant.key, "outcome": r.outcome, "stage": r.stage, "seconds": r.seconds}
            for r in results
        ],
    }


def per_file(
    outcomes: Iterable[tuple[str, str | None]], equivalent: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """The score of each mutated file: ``outcomes`` are ``(key, outcome)``, the outcome
    None for a mutant no run covered (``not_run``, left out of the score)."""
    counts: dict[str, Counter[str]] = {}
    for key, outcome in outcomes:
        c = counts.setdefault(key.split("::", 1)[0], Counter())
        c["mutants"] += 1
        if outcome is None:
            c["not_run"] += 1
        elif outcome in ("killed", "timeout"):
            c["killed"] += 1
        elif key in equivalent:
            c["equivalent"] += 1
        else:
            c["survived"] += 1
    return {f: {**c, "score": _score(c)} for f, c in sorted(counts.items())}


def _index(reports: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each key's ``results`` and ``survivors`` entries over ``reports`` (a later report's
    entry replaces an earlier one's)."""
    outcome: dict[str, dict[str, Any]] = {}
    diffs: dict[str, dict[str, Any]] = {}
    for rep in reports:
        outcome.update((r["key"], r) for r in rep["results"])
        diffs.update((s["key"], s) for s in rep["survivors"])
    return outcome, diffs


def _rows(
    outcome: dict[str, dict[str, Any]], diffs: dict[str, dict[str, Any]], keys: Iterable[str]
) -> Iterator[Row]:
    """Rows from reports' JSON: ``outcome`` and ``diffs`` map a key to its ``results`` and
    ``survivors`` entries."""
    for k in keys:
        blank = {"key": k, "line": None, "kind": None, "diff": None}
        yield Row(k, outcome[k]["outcome"], outcome[k]["stage"], diffs.get(k, blank))


def rescore(rep: dict[str, Any], equivalent: dict[str, str]) -> dict[str, Any]:
    """``rep`` with the current list of equivalent mutants applied (no mutant is rerun)."""
    outcome, diffs = _index([rep])
    return {**rep, **tally(_rows(outcome, diffs, outcome), equivalent)}


def commit() -> str | None:
    """The commit the checks ran at (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def shard_of(key: str, n: int) -> int:
    """The part (1..n) of ``--shard K/N`` a mutant belongs to: by a hash of its key, not its
    position, so that adding or removing a mutant moves no other one to another part."""
    return zlib.crc32(key.encode()) % n + 1


def keys_from(text: str) -> set[str]:
    """The mutant keys of a ``--keys`` file: one a line, blank lines and ``#`` lines skipped."""
    lines = (ln.strip() for ln in text.splitlines())
    return {ln for ln in lines if ln and not ln.startswith("#")}


def dirty() -> bool | None:
    """Whether tracked files differ from the commit (None outside a git checkout): a run on
    a dirty tree checked more (or less) than its ``commit`` holds."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return bool(out.stdout.strip())


def _part(rep: dict[str, Any]) -> dict[str, Any]:
    """What a merged report says of one of its parts."""
    keys = ("shard", "commit", "dirty", "finished", "mutants", "wall_seconds")
    return {k: rep.get(k) for k in keys}


def merge(
    parts: list[dict[str, Any]], current: list[str], equivalent: dict[str, str]
) -> dict[str, Any]:
    """One report from the reports of several runs (``--shard``): every current mutant
    counted once (the last report that ran it wins), scored against the current
    ``equivalent.json``; mutants no report ran are listed as ``missing``, those of a
    report that are no longer generated are dropped (``stale_keys``).

    Reports are taken in the order they finished (their ``finished`` time); reports
    without one (older runs) come first, in the order given."""
    parts = sorted(parts, key=lambda p: str(p.get("finished", "")))
    outcome, diffs = _index(parts)
    ran = [key for key in current if key in outcome]
    return {
        **tally(_rows(outcome, diffs, ran), equivalent),
        "wall_seconds": round(sum(float(p.get("wall_seconds", 0.0)) for p in parts), 1),
        "mutant_seconds": round(sum(float(outcome[k]["seconds"]) for k in ran), 1),
        "files": per_file(
            ((k, outcome[k]["outcome"] if k in outcome else None) for k in current), equivalent
        ),
        "missing": [k for k in current if k not in outcome],
        "stale_keys": sorted(set(outcome) - set(current)),
        "merged": [_part(p) for p in parts],
        "results": [outcome[k] for k in ran],
    }
