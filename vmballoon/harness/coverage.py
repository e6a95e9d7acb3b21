"""Which lines and branches of the driver a set of runs of the C took (gcov).

The harness library built with ``coverage=True`` (:func:`vmballoon.harness.build.build`:
``-O0 --coverage``) counts every line and branch; each forked child of
:class:`vmballoon.harness.process.CDriver` writes its counters with ``__gcov_dump``
before it ends.  :func:`collect` points those writes into a folder of its own
(``GCOV_PREFIX``) for the runs made inside it, and :meth:`Counts.result` reads them
with ``gcov --json-format``: line and branch coverage of the driver source (not of
the harness), per function.

:func:`corpus_coverage` replays scenarios and measures them; :func:`check_reachable`
compares a measure with the reviewed list of branches no run can take
(``vmballoon/harness/coverage-unreachable.json``).

A branch is one outcome of a conditional jump as gcov numbers them on a line
(``line``, ``index``); gcc at ``-O0`` gives each ``if``, loop test, ``&&``/``||``
operand and ``switch`` case its outcomes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmballoon.core.scenario import Scenario
from vmballoon.harness.process import DEFAULT_TIMEOUT, HARNESS_SOURCES

HERE = Path(__file__).resolve().parent
UNREACHABLE = HERE / "coverage-unreachable.json"
"""The reviewed list of the driver's branches no scenario can take, with the reason of each."""
UNREACHABLE_FORMAT = "vmballoon-coverage-unreachable/1"


class CoverageError(Exception):
    """gcov is missing or its output cannot be read (one line)."""


@dataclass(frozen=True)
class Branch:
    """One outcome of a conditional jump of the driver and how often it was taken."""

    function: str
    line: int
    index: int  # gcov's number of the outcome on its line (0, 1, ...)
    count: int

    @property
    def key(self) -> tuple[str, int, int]:
        """What identifies the branch across runs: function, line, index."""
        return (self.function, self.line, self.index)


@dataclass(frozen=True)
class FunctionCoverage:
    """Line and branch coverage of one function of the driver."""

    name: str
    first_line: int
    lines: int
    lines_hit: int
    branches: int
    branches_hit: int

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.name,
            "line": self.first_line,
            "lines": self.lines,
            "lines_hit": self.lines_hit,
            "branches": self.branches,
            "branches_hit": self.branches_hit,
        }


@dataclass(frozen=True)
class Coverage:
    """What a set of runs took of the driver source ``source`` (gcov's name of it)."""

    source: str
    functions: tuple[FunctionCoverage, ...]
    branches: tuple[Branch, ...]
    line_counts: tuple[tuple[str, int, int], ...]  # (function, line, count) of each line

    @property
    def lines(self) -> int:
        return len(self.line_counts)

    @property
    def lines_hit(self) -> int:
        return sum(1 for _, _, c in self.line_counts if c)

    @property
    def branches_hit(self) -> int:
        return sum(1 for b in self.branches if b.count)

    def missed(self) -> list[Branch]:
        """The branches no run took."""
        return [b for b in self.branches if not b.count]

    def union(self, other: Coverage) -> Coverage:
        """The coverage of both sets of runs (same source and build)."""
        if other.source != self.source or len(other.branches) != len(self.branches):
            raise CoverageError(f"coverage of {self.source} and of {other.source} do not add up")
        counts = {b.key: b.count for b in other.branches}
        branches = tuple(
            Branch(b.function, b.line, b.index, b.count + counts.get(b.key, 0))
            for b in self.branches
        )
        lines = {(f, n): c for f, n, c in other.line_counts}
        line_counts = tuple((f, n, c + lines.get((f, n), 0)) for f, n, c in self.line_counts)
        return _with_functions(self.source, branches, line_counts, self.functions)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "lines": self.lines,
            "lines_hit": self.lines_hit,
            "branches": len(self.branches),
            "branches_hit": self.branches_hit,
            "functions": [f.to_json() for f in self.functions],
            "missed": [
                {"function": b.function, "line": b.line, "branch": b.index} for b in self.missed()
            ],
        }


def _with_functions(
    source: str,
    branches: tuple[Branch, ...],
    line_counts: tuple[tuple[str, int, int], ...],
    functions: tuple[FunctionCoverage, ...],
) -> Coverage:
    """Per-function totals recomputed from the branch and line counts."""
    out = []
    for f in functions:
        mine = [c for name, _, c in line_counts if name == f.name]
        br = [b for b in branches if b.function == f.name]
        out.append(
            FunctionCoverage(
                f.name,
                f.first_line,
                len(mine),
                sum(1 for c in mine if c),
                len(br),
                sum(1 for b in br if b.count),
            )
        )
    return Coverage(source, tuple(out), branches, line_counts)


class Counts:
    """The folder the children of :func:`collect` write their counters into."""

    def __init__(self, library: Path, folder: Path) -> None:
        self.library = library
        self.folder = folder

    def result(self) -> Coverage:
        """The coverage of the driver source by every run so far (none: nothing taken)."""
        notes = sorted(self.library.parent.glob("*.gcno"))
        if not notes:
            raise CoverageError(f"{self.library}: not a coverage build (no .gcno notes)")
        data = sorted(self.folder.rglob("*.gcda"))
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            shutil.copy(notes[0], work / notes[0].name)
            if data:
                shutil.copy(data[0], work / (notes[0].stem + ".gcda"))
            gcov = shutil.which("gcov")
            if gcov is None:
                raise CoverageError("gcov not found: install gcc (it comes with it)")
            cmd = [
                gcov,
                "--json-format",
                "--stdout",
                "--branch-probabilities",
                notes[0].stem + ".gcda",
            ]
            proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
            if proc.returncode != 0 or not proc.stdout.strip():
                first = (proc.stderr.strip().splitlines() or ["no output"])[0]
                raise CoverageError(f"gcov failed: {first}")
        return parse_gcov(json.loads(proc.stdout.splitlines()[0]))


def parse_gcov(doc: dict[str, Any]) -> Coverage:
    """The driver source's coverage from gcov's JSON (the file that is not the harness)."""
    files = [
        f
        for f in doc["files"]
        if Path(f["file"]).name not in HARNESS_SOURCES and not f["file"].endswith(".h")
    ]
    if len(files) != 1:
        raise CoverageError(f"gcov names {len(files)} driver sources, expected one")
    f = files[0]
    branches: list[Branch] = []
    line_counts: list[tuple[str, int, int]] = []
    for line in f["lines"]:
        n = line["line_number"]
        line_counts.append((line["function_name"], n, line["count"]))
        for i, br in enumerate(line["branches"]):
            if not br.get("throw"):
                branches.append(Branch(line["function_name"], n, i, br["count"]))
    functions = tuple(
        FunctionCoverage(fn["name"], fn["start_line"], 0, 0, 0, 0) for fn in f["functions"]
    )
    return _with_functions(f["file"], tuple(branches), tuple(line_counts), functions)


@contextmanager
def collect(library: Path) -> Iterator[Counts]:
    """Runs of ``library`` (a coverage build) started inside write their counters into
    a fresh folder; read them with :meth:`Counts.result` (inside or after)."""
    folder = Path(tempfile.mkdtemp(prefix="vmballoon-gcov-"))
    saved = {k: os.environ.get(k) for k in ("GCOV_PREFIX", "GCOV_PREFIX_STRIP")}
    os.environ["GCOV_PREFIX"] = str(folder)
    os.environ["GCOV_PREFIX_STRIP"] = str(len(library.parent.parts) + 8)  # every folder
    try:
        yield Counts(library, folder)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(folder, ignore_errors=True)


def corpus_coverage(
    library: Path, scenarios: Iterable[Scenario], timeout: float = DEFAULT_TIMEOUT
) -> Coverage:
    """The coverage of ``library`` (a coverage build) by replaying ``scenarios``."""
    from vmballoon.harness.replay import replay

    with collect(library) as counts:
        for scenario in scenarios:
            replay(scenario, binary=library, timeout=timeout)
        return counts.result()


# -- the reviewed unreachable branches --------------------------------------------------------


@dataclass(frozen=True)
class Unreachable:
    """A branch (or, with ``line`` 0, every branch of a function) no scenario can take."""

    function: str
    line: int
    index: int
    reason: str

    def covers(self, b: Branch) -> bool:
        if self.function != b.function:
            return False
        return self.line == 0 or (self.line == b.line and self.index == b.index)


def load_unreachable(source: str, path: Path = UNREACHABLE) -> list[Unreachable]:
    """The reviewed unreachable branches of driver source ``source`` (``seed``, ``fixed``)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("format") != UNREACHABLE_FORMAT:
        raise CoverageError(f"{path}: not {UNREACHABLE_FORMAT}")
    if source not in doc["sources"]:
        raise CoverageError(f"{path}: no list for {source!r}")
    return [
        Unreachable(e["function"], e.get("line", 0), e.get("branch", 0), e["reason"])
        for e in doc["sources"][source]
    ]


@dataclass(frozen=True)
class ReachableReport:
    """A measure against the reviewed list: what is reachable and was missed, and the
    entries of the list that are wrong (a branch taken, or none such)."""

    reachable: int
    reachable_hit: int
    missed: tuple[Branch, ...]
    taken_but_listed: tuple[Branch, ...]
    stale: tuple[Unreachable, ...]

    @property
    def complete(self) -> bool:
        return not self.missed and not self.taken_but_listed and not self.stale


def check_reachable(cov: Coverage, unreachable: list[Unreachable]) -> ReachableReport:
    """Every branch the list does not name must be taken; every branch it names must not."""
    missed, taken, used = [], [], set()
    reachable = hit = 0
    for b in cov.branches:
        listed = [u for u in unreachable if u.covers(b)]
        used.update(listed)
        if listed:
            if b.count:
                taken.append(b)
            continue
        reachable += 1
        if b.count:
            hit += 1
        else:
            missed.append(b)
    stale = tuple(u for u in unreachable if u not in used)
    return ReachableReport(reachable, hit, tuple(missed), tuple(taken), stale)
