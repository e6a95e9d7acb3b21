"""verify stops on SIGINT and SIGTERM: workers stopped, no traceback, the --out folder
marked INCOMPLETE (vmballoon.apps.outdir.RunDir), exit 130 with one line, within ~2 s;
the next run into the same folder removes the files the earlier run wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _start(out: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vmballoon", "verify", "--out", str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _alive(pid: int) -> bool:
    """``pid`` is a process and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> set[int]:
    """Every live process whose parent chain reaches ``pid`` or whose group is a worker's."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat[0] != "Z" and int(stat[1]) == pid:
            found.add(int(entry))
    for child in list(found):
        found |= _children(child)
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_verify_quickly_and_marks_its_out(tmp_path: Path, sig: int) -> None:
    out = tmp_path / "cex"
    proc = _start(out, "--variant", "seed", "--json")
    time.sleep(12)  # the workers are solving by now
    workers = _children(proc.pid)
    assert workers, "verify started no worker"
    sent = time.monotonic()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == 130, stderr
    assert took < 5, took  # ~2 s on an idle machine
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert lines[-1].startswith(f"interrupted ({signal.Signals(sig).name})"), lines[-1]
    assert "INCOMPLETE" in lines[-1]
    doc = json.loads(stdout)  # what it had, as the schema says: not complete, exit 130
    assert doc["complete"] is False and doc["exit"] == 130 and doc["ok"] is False
    assert (out / "INCOMPLETE").exists() and not (out / ".vmballoon.lock").exists()
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["complete"] is False
    time.sleep(0.5)
    assert not any(_alive(p) for p in workers), "a worker outlived verify"


def test_a_second_run_removes_the_files_of_the_first(tmp_path: Path) -> None:
    """A run then a smaller run into the same folder: only the second's files stay."""
    out = tmp_path / "cex"
    small = [
        "--variant",
        "fixed-doorbell_set_status",
        "--property",
        "doorbell_agreement",
        "--depth",
        "7",
        "--json",
    ]
    out.mkdir()
    stale = out / "seed.no_leak.scenario.json"
    (out / "MANIFEST.json").write_text(
        json.dumps({"command": "verify", "complete": True, "files": [stale.name]})
    )
    stale.write_text("{}")
    mine = out / "notes.txt"
    mine.write_text("the user's own file")
    proc = subprocess.run(
        [sys.executable, "-m", "vmballoon", "verify", "--out", str(out), *small],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists() and mine.exists() and not (out / "INCOMPLETE").exists()
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["complete"] is True
    assert manifest["files"] == ["fixed-doorbell_set_status.doorbell_agreement.scenario.json"]


def test_a_second_verify_into_a_busy_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "cex"
    out.mkdir()
    (out / ".vmballoon.lock").write_text(f"{os.getpid()}\n")  # a live owner: this test
    proc = subprocess.run(
        [sys.executable, "-m", "vmballoon", "verify", "--out", str(out), "--variant", "seed"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "another vmballoon run" in proc.stderr


def test_workers_do_not_outlive_a_verify_killed_outright(tmp_path: Path) -> None:
    """SIGKILL (a CI's timeout, the OOM killer) gives verify no chance to stop its
    workers, which run in process groups of their own: each watches verify and ends
    its group when verify is gone, instead of solving on for nobody."""
    proc = subprocess.Popen(  # no pipes: the workers would hold them open
        [sys.executable, "-m", "vmballoon", "verify", "--out", str(tmp_path / "cex")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while not workers and time.monotonic() < deadline:
        time.sleep(0.5)
        workers = _children(proc.pid)  # live ones: it skips zombies
    assert workers, "verify started no worker"
    time.sleep(2)  # the workers are past their initializer
    workers = _children(proc.pid)
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 3  # verify's first jobs take 10 s and more
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers), "a worker outlived verify"


_KILLS_A_SEARCHING_WORKER = """
import multiprocessing, os, signal, time
from tests.test_verify_interrupt import _searching_worker
process = multiprocessing.get_context("spawn").Process(target=_searching_worker)
process.start()
time.sleep(4)  # the search's own process is running by now
os.killpg(process.pid, signal.SIGKILL)  # what verify does to its workers on Ctrl-C
process.join()
"""


def _searching_worker() -> None:
    """A verify worker (a process group of its own) running a defect search in a fresh
    process (:func:`vmballoon.proofs.defects._in_fresh_process`), as a divergence job does."""
    from vmballoon.proofs.defects import _in_fresh_process

    os.setpgrp()
    _in_fresh_process(_searches_for, 60.0, [])


def _searches_for(seconds: float, notes: list[str]) -> None:
    time.sleep(seconds)


def test_a_worker_killed_mid_search_leaves_nothing_to_report() -> None:
    """Ctrl-C kills a worker's group while a defect search runs in its fresh process:
    the search held no semaphore, so nothing is reported leaked when verify exits (the
    one line of an interrupted verify stays the last)."""
    proc = subprocess.run(
        [sys.executable, "-c", _KILLS_A_SEARCHING_WORKER],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr


def _raises(text: str, notes: list[str]) -> None:
    raise ValueError(text)


def _dies(status: int, notes: list[str]) -> None:
    os._exit(status)


def test_a_search_that_fails_in_its_fresh_process_fails_its_job() -> None:
    """What the search raises is raised in the job (a crash, never an answer); a search
    process that dies without answering is a crash too, with its exit status."""
    from vmballoon.proofs.defects import _in_fresh_process

    with pytest.raises(ValueError, match="the planted failure"):
        _in_fresh_process(_raises, "the planted failure", [])
    with pytest.raises(RuntimeError, match="_dies's process died \\(exit status 3\\)"):
        _in_fresh_process(_dies, 3, [])
