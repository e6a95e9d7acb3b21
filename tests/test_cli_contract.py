"""The command line's contract: arguments checked before any work, one line and exit 2
for bad input, stdin as a scenario, partial verify results refused, ``--version``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SCENARIOS
from vmballoon.apps import specgen
from vmballoon.core.variants import FIXED
from vmballoon.proofs.check import vacuity


def _run(
    *args: str, stdin: str | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmballoon", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        cwd=cwd,
    )


def _one_line_usage_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--jobs", "0"], "--jobs"),
        (["--jobs", "-3"], "--jobs"),
        (["--depth", "-1"], "--depth"),
        (["--depth", "0"], "--depth"),  # depth 0 would turn every violation into "no-cex"
        (["--timeout", "-1"], "--timeout"),
        (["--timeout", "0"], "--timeout"),
        (["--timeout", "nan"], "--timeout"),
    ],
)
def test_verify_rejects_bad_numbers_before_any_work(args: list[str], says: str) -> None:
    started = time.monotonic()
    proc = _run("verify", *args, timeout=30)
    assert says in _one_line_usage_error(proc)
    assert time.monotonic() - started < 20  # nothing was solved
    assert proc.stdout == ""


def test_verify_rejects_an_out_that_is_a_file_or_cannot_be_created(tmp_path: Path) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    line = _one_line_usage_error(_run("verify", "--out", str(afile), timeout=30))
    assert "not a directory" in line
    line = _one_line_usage_error(_run("verify", "--out", str(afile / "sub"), timeout=30))
    assert "not a directory" in line
    line = _one_line_usage_error(_run("verify", "--out", "/proc/vmballoon-out", timeout=30))
    assert "--out" in line
    assert not (tmp_path / "verify-out").exists()


def test_vacuity_that_times_out_is_unknown_never_never_enabled() -> None:
    outcome = vacuity(FIXED, timeout=0.001)
    assert outcome.status == "unknown", (outcome.status, outcome.detail)
    assert "never enabled" not in outcome.detail and "unsat" not in outcome.detail


def test_replay_dash_reads_the_scenario_from_stdin() -> None:
    path = SCENARIOS / "null_ops.json"
    from_file = _run("replay", str(path))
    from_stdin = _run("replay", "-", stdin=path.read_text())
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert json.loads(from_stdin.stdout) == json.loads(from_file.stdout)
    line = _one_line_usage_error(_run("replay", "-", stdin="{"))
    assert "<stdin>" in line


def test_version() -> None:
    proc = _run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("vmballoon ")
    assert proc.stdout.split()[1][0].isdigit()


def _partial_verify(tmp_path: Path) -> Path:
    full = json.loads((specgen.SPEC / specgen.RESULTS).read_text())
    full["results"] = [r for r in full["results"] if r["prop"] == "protocol"]
    full["necessity"] = {}
    full["schema"] = "vmballoon-verify/1"  # as verify --json writes it
    path = tmp_path / "one-property.json"
    path.write_text(json.dumps(full))
    return path


def _spec_files() -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(specgen.SPEC.rglob("*")) if p.is_file()}


def test_spec_from_a_partial_verify_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    before = _spec_files()
    partial = _partial_verify(tmp_path)
    line = _one_line_usage_error(_run("spec", "--from-verify", str(partial)))
    assert "partial" in line and "nothing written" in line
    line = _one_line_usage_error(_run("spec", "--check", "--from-verify", str(partial)))
    assert "partial" in line
    assert _spec_files() == before


def test_a_run_that_says_it_was_partial_is_refused() -> None:
    full = json.loads((specgen.SPEC / specgen.RESULTS).read_text())
    assert specgen.missing(full) == []
    assert specgen.missing({**full, "complete": False})
    with pytest.raises(specgen.PartialResult):
        specgen.require_complete({**full, "complete": False})


def test_the_readme_documents_each_commands_contract() -> None:
    from tests.conftest import ROOT
    from vmballoon.apps.verify import JSON_SCHEMA

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    contract = readme.split("## The contract of each command", 1)[1].split("\n## ", 1)[0]
    for command in ("verify", "replay", "fuzz", "simulate", "spec"):
        assert f"| `{command}` |" in contract, command
    assert "violated SEED properties are the expected findings" in contract
    assert JSON_SCHEMA in contract and "`complete`" in contract
    assert "vmballoon verify --json" in contract and "spec --from-verify" in contract
    assert "refuses a partial result" in contract and "jq" in contract


def test_spec_from_the_checked_in_results_says_what_it_expects(tmp_path: Path) -> None:
    """spec/verify-results.json is what --check compares with, not a verify output."""
    before = _spec_files()
    for args in (["--check", "--from-verify"], ["--from-verify"]):
        line = _one_line_usage_error(
            _run("spec", *args, "spec/verify-results.json", cwd=specgen.SPEC.parent)
        )
        assert "expected the output of `vmballoon verify --json`" in line
        assert "checked-in results" in line
    for text in ("[1, 2]", "{not json", '{"schema": "other/1", "results": []}'):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        line = _one_line_usage_error(_run("spec", "--check", "--from-verify", str(bad)))
        assert "verify --json" in line
    assert _spec_files() == before


def test_spec_from_a_folder_or_a_missing_file_says_which(tmp_path: Path) -> None:
    folder = _one_line_usage_error(_run("spec", "--from-verify", str(tmp_path)))
    assert "not a regular file" in folder
    missing = _one_line_usage_error(_run("spec", "--from-verify", str(tmp_path / "none.json")))
    assert "no such file" in missing


def test_patch_into_a_folder_or_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    for target, says in ((tmp_path, "is a directory"), (tmp_path / "no" / "x.c", "not exist")):
        line = _one_line_usage_error(_run("patch", "--variant", "fixed", "-o", str(target)))
        assert says in line and "-o/--output" in line
    out = tmp_path / "fixed.c"
    proc = _run("patch", "--variant", "fixed", "-o", str(out))
    assert proc.returncode == 0 and proc.stderr.strip() == f"wrote {out}"
    assert out.read_text() == _run("patch", "--variant", "fixed").stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.c"]


def test_replay_source_with_a_variant_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "d.c"
    source.write_text("int x;\n")
    line = _one_line_usage_error(
        _run(
            "replay",
            str(SCENARIOS / "null_ops.json"),
            "--impl",
            "c",
            "--source",
            str(source),
            "--variant",
            "fixed",
        )
    )
    assert "--variant would be ignored" in line
