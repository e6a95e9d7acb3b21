"""One installed namespace: a non-editable install runs every subcommand, and the
layers point one way (core <- readings <- applications)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, SCENARIOS

PKG = ROOT / "vmballoon"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (function bodies too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _layer_violations(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted(folder.rglob("*.py")):
        for name in sorted(_imports(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return bad


READINGS = ("vmballoon.model", "vmballoon.reference", "vmballoon.proofs")
TOP_LEVEL = ("model", "reference", "proofs")  # the folders must not be imported by these names


def test_core_imports_nothing_above_it() -> None:
    bad = _layer_violations(PKG / "core", (*READINGS, "vmballoon.apps", *TOP_LEVEL))
    assert not bad, bad


def test_model_imports_no_solver_and_no_hypothesis() -> None:
    bad = _layer_violations(
        PKG / "model", ("z3", "hypothesis", "vmballoon.proofs", "vmballoon.apps", *TOP_LEVEL)
    )
    assert not bad, bad


def test_readings_import_no_applications() -> None:
    bad: list[str] = []
    for folder in ("model", "reference", "proofs"):
        bad += _layer_violations(PKG / folder, ("vmballoon.apps", *TOP_LEVEL))
    bad += [b for b in _layer_violations(PKG / "reference", ("z3", "hypothesis"))]
    assert not bad, bad


def test_the_spec_is_found_through_the_package() -> None:
    from vmballoon.apps import specgen
    from vmballoon.core.specdata import spec_dir

    assert (spec_dir() / "protocol.md").is_file()
    assert spec_dir() == specgen.SPEC


def test_a_non_editable_install_runs_every_subcommand(tmp_path: Path) -> None:
    """``pip install .`` of a copy of the tree (no link back to it), then each subcommand
    from another directory."""
    src = tmp_path / "src"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in listed:
        origin = ROOT / rel
        if not origin.exists() and not origin.is_symlink():
            continue
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_symlink():
            os.symlink(os.readlink(origin), dest)
        elif origin.is_file():
            shutil.copy2(origin, dest)
    site = tmp_path / "site"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(src),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert not (site / "vmballoon" / "spec_data").is_symlink()
    for name in ("model", "reference", "proofs"):  # nothing outside the one namespace
        assert not (site / name).exists()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vmballoon", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import vmballoon; print(vmballoon.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(site)), where.stdout
    assert run("--version").returncode == 0
    check = run("spec", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    shipped = site / "vmballoon" / "spec_data" / "reference.md"
    before = shipped.stat().st_mtime_ns
    outside = run("spec")  # not in a checkout: refused, the installed copy untouched
    assert outside.returncode == 2 and "--out" in outside.stderr, outside.stderr
    written = run("spec", "--out", str(work / "spec-out"))
    assert written.returncode == 0, written.stderr
    assert (work / "spec-out" / "reference.md").read_text() == shipped.read_text()
    assert shipped.stat().st_mtime_ns == before
    scenario = str(SCENARIOS / "null_ops.json")
    assert run("replay", scenario).returncode == 0
    assert run("replay", scenario, "--impl", "reference").returncode == 0
    assert run("replay", scenario, "--format", "table").returncode == 0
    sim = run(
        "simulate",
        "--ram",
        "64MiB",
        "--targets",
        "0:32MiB",
        "--ticks",
        "4",
        "--variant",
        "fixed",
        "--plot",
        str(work / "p.png"),
    )
    assert sim.returncode == 0, sim.stdout + sim.stderr
    fuzz = run("fuzz", "--examples", "2", "--seed", "1", "--steps", "2")
    assert fuzz.returncode in (0, 1) and "Traceback" not in fuzz.stderr, fuzz.stderr
    verify = run(
        "verify",
        "--json",
        "--variant",
        "seed",
        "--property",
        "doorbell_agreement",
        "--depth",
        "7",
        "--out",
        str(work / "cex"),
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    doc = json.loads(verify.stdout)  # the JSON declares its schema and that it is partial
    assert doc["schema"] == "vmballoon-verify/1" and doc["complete"] is False
    assert (work / "cex" / "seed.doorbell_agreement.scenario.json").is_file()
    for sub in ("replay", "fuzz", "spec", "verify", "simulate"):
        assert run(sub, "--help").returncode == 0
