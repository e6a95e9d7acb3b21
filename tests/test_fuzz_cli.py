"""``vmballoon fuzz`` outside pytest: seeds, workers, coverage and shared example databases."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmballoon.apps.fuzz import open_database, run_campaigns


def _fuzz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmballoon", "fuzz", *args],
                          capture_output=True, text=True, check=False, timeout=300)  # fmt: skip


def test_fuzz_prints_its_seed_and_coverage(tmp_path: Path) -> None:
    proc = _fuzz("--examples", "20", "--seed", "11", "--database", str(tmp_path / "db"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "seed 11" in proc.stderr
    assert "seed (seed 11): " in proc.stdout and "fixed (seed 11): " in proc.stdout
    assert "coverage:" in proc.stdout and "locations never left:" in proc.stdout


def test_same_seed_same_campaign() -> None:
    first = run_campaigns(["seed"], 15, seed=5, workers=1, steps=6)[1]
    second = run_campaigns(["seed"], 15, seed=5, workers=1, steps=6)[1]
    assert first.transitions == second.transitions and first.steps == second.steps


def test_workers_split_the_examples_and_merge_coverage() -> None:
    results, coverage = run_campaigns(["fixed"], 20, seed=3, workers=2, steps=6)
    assert [r.seed for r in results] == [3, 4]
    assert all(r.failure is None for r in results)
    assert coverage.examples >= 20 and coverage.transitions


def test_bad_worker_count_is_a_one_line_error() -> None:
    proc = _fuzz("--examples", "1", "--workers", "0")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_url() -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (.ci/run installs Debian's redis-server)")
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_redis_database_shares_examples(redis_url: str) -> None:
    db = open_database(redis_url)
    db.save(b"key", b"value")
    assert list(open_database(redis_url).fetch(b"key")) == [b"value"]
    results, _ = run_campaigns(["seed"], 10, seed=2, workers=1, steps=5, database=redis_url)
    assert results[0].failure is None


def test_unreachable_redis_is_a_one_line_error() -> None:
    proc = _fuzz("--examples", "1", "--database", f"redis://127.0.0.1:{_free_port()}/0")
    assert proc.returncode == 2
    assert "cannot reach the redis database" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
