"""``vmballoon fuzz`` under real use: interrupted by a signal, sharing an output folder.

A SIGINT or SIGTERM stops the campaigns (and their workers) at their next step; the
run still writes every violation found so far and the report, leaves ``INCOMPLETE``
in ``--out``, prints one line and exits 130, with no traceback.  ``--out`` belongs to
one run at a time, and a run removes the files the previous run wrote there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vmballoon.apps.fuzzout import REPORT
from vmballoon.apps.outdir import INCOMPLETE, LOCK, MANIFEST
from vmballoon.core.scenario import load_scenario
from vmballoon.core.variants import parse_variant
from vmballoon.model.properties import check_trace

FUZZ = [sys.executable, "-m", "vmballoon", "fuzz", "--impl", "reference", "--steps", "8"]


def _start(out: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*FUZZ, *args, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def _seen(report: str) -> set[tuple[str, str]]:
    """The (variant, property) pairs the report says were violated."""
    for line in report.splitlines():
        if "property violations seen" in line:
            pairs = line.split("): ", 1)[1].split(", ")
            return {(p.split(":")[0], p.split(":")[1]) for p in pairs}
    return set()


@pytest.mark.parametrize(
    ("sig", "workers", "variant"),
    [(signal.SIGINT, "1", "seed"), (signal.SIGTERM, "2", "both")],
    ids=["sigint", "sigterm-2-workers"],
)
def test_an_interrupted_fuzz_writes_what_it_found(
    tmp_path: Path, sig: signal.Signals, workers: str, variant: str
) -> None:
    out = tmp_path / "found"
    proc = _start(
        out, "--examples", "5000", "--seed", "5", "--workers", workers, "--variant", variant
    )
    _wait_for(out / INCOMPLETE, proc)
    time.sleep(6)  # some examples run
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr + stdout
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("fuzz: interrupted after ") and "INCOMPLETE" in last
    assert ": interrupted" in stdout  # the campaigns say they were cut short
    # the folder is marked partial, and holds the report and every violation seen
    assert (out / INCOMPLETE).exists() and not (out / LOCK).exists()
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] is False
    report = (out / REPORT).read_text()
    assert report.strip() in stdout
    seen = _seen(report)
    files = {p.name for p in out.glob("*.scenario.json")}
    assert files == {f"{v}.{p}.scenario.json" for v, p in seen}
    assert set(manifest["files"]) == files | {REPORT}
    for name in files:
        doc = json.loads((out / name).read_text())
        meta = doc["meta"]
        found = check_trace(load_scenario(out / name), parse_variant(meta["variant"]))
        assert (meta["property"], meta["transition"]) in {(v.prop, v.step) for v in found}


def test_two_runs_cannot_share_an_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "shared"
    first = _start(out, "--examples", "5000", "--seed", "1", "--variant", "seed")
    try:
        _wait_for(out / LOCK, first)
        second = subprocess.run(
            [*FUZZ, "--examples", "2", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1 and "another vmballoon run" in second.stderr
        assert second.stdout == ""
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 130


def test_a_complete_run_replaces_the_files_of_the_previous_one(tmp_path: Path) -> None:
    out = tmp_path / "found"
    mine = out / "notes.txt"
    out.mkdir()
    mine.write_text("the user's own file\n")
    run = [*FUZZ, "--seed", "7", "--out", str(out)]
    first = subprocess.run(
        [*run, "--examples", "30", "--variant", "seed"], capture_output=True, text=True, timeout=300
    )
    assert first.returncode == 0, first.stderr
    earlier = {p.name for p in out.glob("seed.*.scenario.json")}
    assert earlier and not (out / INCOMPLETE).exists()
    second = subprocess.run(
        [*run, "--examples", "3", "--variant", "fixed"], capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr
    assert not list(out.glob("seed.*.scenario.json"))  # the first run's files are gone
    assert mine.exists()  # a file no run wrote is left alone
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] is True and REPORT in manifest["files"]
    assert not (out / INCOMPLETE).exists()
    assert os.listdir(out)
