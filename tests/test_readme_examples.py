"""The README's example commands run, and their printed claims hold.

Convention (the README follows it): every line of a fenced code block of README.md
that starts with ``$ vmballoon `` (after any indentation) is an example command.  It
may end with a comment ``# exit N`` giving its expected exit status (default 0).  The
lines right after it in the same block that do not start with ``$`` are fragments of
the expected output: each must occur in the command's stdout + stderr (surrounding
blanks ignored; a line ``...`` means "anything"; blank lines are ignored).

The examples run in order, in one temporary copy of the repository (so ``spec`` or
``golden`` writing into ``spec/`` or ``tests/`` change the copy only), with
``python -m vmballoon`` of that copy.  The target of ``--out``, ``-o``/``--output``,
``--plot`` and of a ``> FILE`` redirection is rewritten to a temporary folder; a path
rewritten once is rewritten the same way in later examples and in the expected
fragments (so ``verify --json --out /tmp/cex > /tmp/v.json`` then ``spec --from-verify
/tmp/v.json`` chain).  Pipes and other shell syntax are not supported: such an
example fails with a line saying so.

``docs/commands.md`` follows the same convention and its examples run too.

The property names are explained in one README table: every name of
``model.properties.PROPERTY_NAMES`` is the first cell of a row of the same table, and
that row has a cell of at least six words (what the property says, not a status).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vmballoon.model.properties import PROPERTY_NAMES

PROMPT = "$ vmballoon "
EXIT_COMMENT = re.compile(r"\s+#\s*exit\s+(\d+)\s*$")
TARGET_OPTIONS = ("--out", "-o", "--output", "--plot")
SHELL_SYNTAX = ("|", "||", "&&", ";", "<", ">>", "2>", "2>&1", "&")
EXAMPLE_TIMEOUT = 900.0
EXPLANATION_WORDS = 6
COPY_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "__pycache__",
    "*.egg-info",
    "verify-out",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
)


@dataclass(frozen=True)
class Example:
    """One ``$ vmballoon ...`` line of a README code block, and what it must print."""

    line: int  # 1-based line number in the README
    command: str  # the text after "$ " without the exit comment
    exit: int = 0
    expect: tuple[str, ...] = ()


@dataclass
class Outcome:
    """What running an example gave, and where it broke its claims (empty: it holds)."""

    example: Example
    argv: list[str]
    returncode: int | None
    output: str
    problems: list[str] = field(default_factory=list)


def examples(text: str) -> list[Example]:
    """The examples of a README (see the module doc), in order."""
    out: list[Example] = []
    fence: str | None = None
    current: tuple[int, str, int] | None = None
    expect: list[str] = []

    def close() -> None:
        nonlocal current, expect
        if current is not None:
            out.append(Example(current[0], current[1], current[2], tuple(expect)))
        current, expect = None, []

    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if fence is None:
            if stripped.startswith(("```", "~~~")):
                fence = stripped[:3]
            continue
        if stripped.startswith(fence):
            close()
            fence = None
            continue
        if stripped.startswith("$"):
            close()
            if stripped.startswith(PROMPT):
                command = stripped[2:]
                status = 0
                m = EXIT_COMMENT.search(command)
                if m:
                    status = int(m.group(1))
                    command = command[: m.start()]
                current = (number, command.strip(), status)
            continue
        if current is not None and stripped and stripped != "...":
            expect.append(stripped)
    close()
    return out


class Runner:
    """Runs examples in one copy of the repository, with targets in a temporary folder."""

    def __init__(self, repo: Path, work: Path) -> None:
        self.copy = work / "repo"
        self.targets = work / "targets"
        self.targets.mkdir(parents=True)
        shutil.copytree(repo, self.copy, symlinks=True, ignore=COPY_IGNORE)
        self.mapping: dict[str, str] = {}

    def _target(self, original: str) -> str:
        if original not in self.mapping:
            name = Path(original.rstrip("/")).name or "target"
            new = self.targets / f"{len(self.mapping)}-{name}"
            self.mapping[original] = str(new)
        return self.mapping[original]

    def argv(self, example: Example) -> tuple[list[str], str | None, list[str]]:
        """The command line to run, the file stdout goes to (or None), and problems."""
        words = shlex.split(example.command)
        assert words[0] == "vmballoon"
        problems = [
            f"shell syntax {w!r} is not supported in an example" for w in words if w in SHELL_SYNTAX
        ]
        args: list[str] = []
        stdout_to: str | None = None
        i = 1
        while i < len(words):
            word = words[i]
            option, eq, value = word.partition("=")
            if word == ">" and i + 1 < len(words):
                stdout_to = self._target(words[i + 1])
                i += 2
                continue
            if word.startswith(">") and len(word) > 1:
                stdout_to = self._target(word[1:])
                i += 1
                continue
            if eq and option in TARGET_OPTIONS:
                args.append(f"{option}={self._target(value)}")
            elif word in TARGET_OPTIONS and i + 1 < len(words):
                args += [word, self._target(words[i + 1])]
                i += 1
            else:
                args.append(self.mapping.get(word, word))
            i += 1
        return [sys.executable, "-m", "vmballoon", *args], stdout_to, problems

    def run(self, example: Example) -> Outcome:
        """Run ``example``; its outcome with every claim it breaks."""
        argv, stdout_to, problems = self.argv(example)
        if problems:
            return Outcome(example, argv, None, "", problems)
        env = {**os.environ, "PYTHONPATH": str(self.copy)}
        try:
            proc = subprocess.run(
                argv,
                cwd=self.copy,
                env=env,
                capture_output=True,
                text=True,
                timeout=EXAMPLE_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Outcome(example, argv, None, "", [f"did not end in {EXAMPLE_TIMEOUT:.0f} s"])
        output = proc.stdout + proc.stderr
        if stdout_to is not None:
            Path(stdout_to).write_text(proc.stdout, encoding="utf-8")
        outcome = Outcome(example, argv, proc.returncode, output)
        if proc.returncode != example.exit:
            outcome.problems.append(f"exit {proc.returncode}, the README says {example.exit}")
        for fragment in example.expect:
            for old, new in self.mapping.items():
                fragment = fragment.replace(old, new)
            if fragment not in output:
                outcome.problems.append(f"does not print {fragment!r}")
        return outcome


def run_all(readme: Path, work: Path, repo: Path = ROOT) -> list[Outcome]:
    """Every example of ``readme``, run in order in one copy of ``repo``."""
    runner = Runner(repo, work)
    return [runner.run(example) for example in examples(readme.read_text(encoding="utf-8"))]


def report(outcomes: list[Outcome]) -> str:
    """One paragraph per example that broke a claim."""
    lines = []
    for o in outcomes:
        if o.problems:
            lines.append(f"README line {o.example.line}: $ {o.example.command}")
            lines += [f"    {p}" for p in o.problems]
            tail = o.output.strip().splitlines()[-5:]
            lines += [f"    | {t}" for t in tail]
    return "\n".join(lines)


def _table_rows(text: str) -> list[list[list[str]]]:
    """The README's tables, each a list of rows, each a list of cells."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for raw in [*text.splitlines(), ""]:
        line = raw.strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):  # not the separator row
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def unexplained_properties(text: str, names: tuple[str, ...] = tuple(PROPERTY_NAMES)) -> list[str]:
    """The property names that no single README table explains (empty: one table does)."""
    best: list[str] = list(names)
    for table in _table_rows(text):
        explained = {
            row[0].strip("`* ")
            for row in table
            if any(len(cell.split()) >= EXPLANATION_WORDS for cell in row[1:])
        }
        lacking = [n for n in names if n not in explained]
        if len(lacking) < len(best):
            best = lacking
    return best


# -- the harness, against a fixture README it must pass and ones it must fail --------------

FIXTURE = """\
# demo

Text with `$ vmballoon not-an-example` outside a block.

```
$ vmballoon patch --variant fixed -o /tmp/readme-demo/fixed.c
wrote /tmp/readme-demo/fixed.c
$ vmballoon replay tests/scenarios/null_ops.json --check   # exit 1
no_crash: transition 10
...
$ vmballoon replay tests/scenarios/null_ops.json --steps 5   # exit 2
--steps filters --format table only
```

| property | what it says |
|---|---|
| `no_crash` | the guest never stops on a NULL dereference or a corrupt list |
| `protocol` | every command the driver sends is one the host granted |
"""


def test_examples_are_read_from_code_blocks_only() -> None:
    found = examples(FIXTURE)
    assert [(e.line, e.command, e.exit) for e in found] == [
        (6, "vmballoon patch --variant fixed -o /tmp/readme-demo/fixed.c", 0),
        (8, "vmballoon replay tests/scenarios/null_ops.json --check", 1),
        (11, "vmballoon replay tests/scenarios/null_ops.json --steps 5", 2),
    ]
    assert found[0].expect == ("wrote /tmp/readme-demo/fixed.c",)
    assert found[1].expect == ("no_crash: transition 10",)  # "..." is anything


def test_fixture_examples_run_and_hold(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(FIXTURE)
    outcomes = run_all(readme, tmp_path / "work")
    assert len(outcomes) == 3
    assert report(outcomes) == ""
    written = Path(outcomes[0].argv[-1])  # -o rewritten into the temporary folder
    assert written.is_relative_to(tmp_path) and written.read_text().startswith("/*")
    assert not Path("/tmp/readme-demo/fixed.c").exists()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("$ vmballoon replay tests/scenarios/null_ops.json --check\n", "exit 1, the README says 0"),
        (
            "$ vmballoon replay tests/scenarios/null_ops.json --check  # exit 1\n"
            "no_leak: transition",
            "does not print 'no_leak: transition'",
        ),
        (
            "$ vmballoon replay tests/scenarios/null_ops.json | head  # exit 0\n",
            "shell syntax '|' is not supported",
        ),
    ],
)
def test_an_example_whose_claim_is_false_fails(tmp_path: Path, line: str, problem: str) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"```\n{line}\n```\n")
    outcomes = run_all(readme, tmp_path / "work")
    assert problem in report(outcomes)


def test_commands_writing_into_the_repository_change_only_the_copy(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("```\n$ vmballoon spec\nwrote\n```\n")
    before = (ROOT / "spec" / "reference.md").stat().st_mtime_ns
    runner = Runner(ROOT, tmp_path / "work")
    (runner.copy / "spec" / "reference.md").write_text("stale\n")
    outcome = runner.run(examples(readme.read_text())[0])
    assert outcome.problems == [], report([outcome])
    assert (runner.copy / "spec" / "reference.md").read_text() != "stale\n"
    assert (ROOT / "spec" / "reference.md").stat().st_mtime_ns == before


def test_a_redirection_is_rewritten_and_chains_into_later_examples(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "```\n$ vmballoon patch --variant seed > /tmp/readme-demo/seed.c\n"
        "$ vmballoon replay tests/scenarios/null_ops.json --impl c --source "
        "/tmp/readme-demo/seed.c --format events -o /tmp/readme-demo/log.json\n"
        "wrote /tmp/readme-demo/log.json\n```\n"
    )
    outcomes = run_all(readme, tmp_path / "work")
    assert report(outcomes) == ""
    assert outcomes[1].argv[outcomes[1].argv.index("--source") + 1].startswith(str(tmp_path))


def test_the_property_table_check() -> None:
    assert unexplained_properties(FIXTURE, ("no_crash", "protocol")) == []
    assert unexplained_properties(FIXTURE, ("no_crash", "no_leak")) == ["no_leak"]
    status_only = "| property | seed |\n|---|---|\n| `no_crash` | violated (shortest: 10 steps) |\n"
    assert unexplained_properties(status_only, ("no_crash",)) == ["no_crash"]


# -- the real README ---------------------------------------------------------------------------

README = ROOT / "README.md"


def test_readme_has_examples() -> None:
    """FAILS until the README's examples follow the convention of this module (lead: add
    `$ vmballoon ...` lines, with `# exit N` and expected output lines, to its code blocks)."""
    assert examples(README.read_text(encoding="utf-8")), (
        "README.md has no `$ vmballoon ...` example in a code block: nothing is checked"
    )


def test_every_readme_example_runs_and_prints_what_it_claims(tmp_path: Path) -> None:
    """Every example of README.md, in order (nothing skipped; a README without examples
    fails :func:`test_readme_has_examples`)."""
    outcomes = run_all(README, tmp_path)
    assert report(outcomes) == ""


def test_readme_explains_every_property_in_one_table() -> None:
    lacking = unexplained_properties(README.read_text(encoding="utf-8"))
    assert lacking == [], f"no single README table explains: {', '.join(lacking)}"


def test_the_examples_of_docs_commands_md_hold(tmp_path: Path) -> None:
    docs = ROOT / "docs" / "commands.md"
    assert examples(docs.read_text(encoding="utf-8"))
    assert report(run_all(docs, tmp_path)) == ""
