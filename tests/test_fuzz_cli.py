"""``vmballoon fuzz`` outside pytest: seeds, workers, coverage and shared example databases."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SCENARIOS
from vmballoon.apps.fuzz import open_database, run_campaigns


def _fuzz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmballoon", "fuzz", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_fuzz_prints_its_seed_and_coverage(tmp_path: Path) -> None:
    proc = _fuzz("--examples", "20", "--seed", "11", "--database", str(tmp_path / "db"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "seed 11" in proc.stderr
    assert "seed (seed 11): " in proc.stdout and "fixed (seed 11): " in proc.stdout
    assert "coverage:" in proc.stdout and "locations never left:" in proc.stdout


PLANTED = 10**12 + 4321
"""A distinctive integer a planted local module holds (Hypothesis scrapes such constants
from local modules into its draws unless the pool is pinned)."""

_DRAWS = """
import json, sys
sys.path.insert(0, sys.argv[1])
import planted_constants  # a local module: its constants join Hypothesis's pool
from hypothesis import HealthCheck, given, seed, settings, strategies as st
from vmballoon.apps.drawpool import pinned_constant_pool

def draws():
    out = []
    @seed(5)
    @settings(max_examples=100, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def draw(data):
        out.extend(data.draw(st.integers()) for _ in range(10))
    draw()
    return out

if sys.argv[2] == "pinned":
    with pinned_constant_pool():  # as run_campaign (the CLI) and the test session draw
        print(json.dumps(draws()))
else:
    print(json.dumps(draws()))
"""


def _planted_draws(where: Path, constant: int, pinned: bool) -> list[int]:
    """``st.integers()`` drawn from seed 5 in a fresh process that imported a local module
    holding ``constant``, with the pool pinned or not."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "planted_constants.py").write_text(f"VALUE = {constant}\n")
    proc = subprocess.run(
        [sys.executable, "-c", _DRAWS, str(where), "pinned" if pinned else "unpinned"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=where,
    )
    assert proc.returncode == 0, proc.stderr
    drawn: list[int] = json.loads(proc.stdout.strip().splitlines()[-1])
    return drawn


def test_same_seed_same_campaign(tmp_path: Path) -> None:
    """A seed names one campaign whatever local modules a process loaded: pinned, two
    processes with different planted constants draw alike; unpinned, each draws its own
    constant (so this test fails if the pinning is switched off)."""
    first = run_campaigns(["seed"], 15, seed=5, workers=1, steps=6)[1]
    second = run_campaigns(["seed"], 15, seed=5, workers=1, steps=6)[1]
    assert first.transitions == second.transitions and first.steps == second.steps
    a = _planted_draws(tmp_path / "a", PLANTED, pinned=True)
    b = _planted_draws(tmp_path / "b", PLANTED + 7, pinned=True)
    assert a == b and PLANTED not in a
    ua = _planted_draws(tmp_path / "a", PLANTED, pinned=False)
    assert PLANTED in ua and ua != a


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
    proc = subprocess.Popen(
        [server, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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


def _coverage_of_campaign(seed: int) -> str:
    from vmballoon.apps.fuzz import coverage_report

    return coverage_report(run_campaigns(["seed"], 25, seed=seed, workers=1, steps=6)[1])


def test_cli_and_in_process_campaigns_draw_alike(tmp_path: Path) -> None:
    """A seed names one campaign: the CLI draws what pytest draws (no per-process constant
    pool).  A process that loaded a planted local constant draws, pinned as the CLI is,
    exactly what this (pinned) test session draws; unpinned it draws the constant."""
    proc = _fuzz("--examples", "25", "--seed", "13", "--variant", "seed", "--steps", "6")
    cli = proc.stdout[proc.stdout.index("coverage:") :].strip()
    assert cli == _coverage_of_campaign(13).strip()
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st

    here: list[int] = []

    @seed(5)
    @settings(max_examples=100, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def draw(data: st.DataObject) -> None:
        here.extend(data.draw(st.integers()) for _ in range(10))

    draw()
    assert _planted_draws(tmp_path, PLANTED, pinned=True) == here
    unpinned = _planted_draws(tmp_path, PLANTED, pinned=False)
    assert PLANTED in unpinned and unpinned != here


def test_fuzz_out_writes_each_violation_minimized_with_its_meta(tmp_path: Path) -> None:
    from vmballoon.core.scenario import load_scenario
    from vmballoon.core.variants import parse_variant
    from vmballoon.model.properties import check_trace

    out = tmp_path / "found"
    proc = _fuzz(
        "--examples", "30", "--seed", "7", "--variant", "seed", "--steps", "6", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "30/30 examples" in proc.stderr  # progress on stderr
    files = sorted(out.glob("*.scenario.json"))
    assert files, proc.stdout
    for path in files:
        meta = json.loads(path.read_text())["meta"]
        assert meta["variant"] == "seed" and meta["seed"] == 7
        scenario = load_scenario(path)  # replay accepts (and ignores) the meta object
        found = {(v.prop, v.step) for v in check_trace(scenario, parse_variant("seed"))}
        assert (meta["property"], meta["transition"]) in found
        assert path.name == f"seed.{meta['property']}.scenario.json"
        assert f"wrote {path}" in proc.stdout


def test_minimize_keeps_the_violation_and_shrinks() -> None:
    from vmballoon.apps.fuzzout import first_violation, minimize
    from vmballoon.core.scenario import load_scenario
    from vmballoon.core.variants import SEED

    big = load_scenario(SCENARIOS / "reset_mid_inflation.json")
    where = first_violation(big, SEED, "protocol")
    assert where is not None
    small, done = minimize(big, SEED, "protocol")
    assert done
    assert first_violation(small, SEED, "protocol") is not None
    assert len(json.dumps(small.to_json())) < len(json.dumps(big.to_json()))


def test_a_campaign_failure_is_one_line_never_an_exception_group() -> None:
    from vmballoon.apps.fuzz import _one_line, campaign_settings

    assert campaign_settings(5).report_multiple_bugs is False
    group = ExceptionGroup(
        "Hypothesis found 2 distinct failures.",
        [ValueError("first\nmore"), AssertionError("second")],
    )
    line = _one_line(group)
    assert "\n" not in line and "first" in line and "ExceptionGroup" not in line


def test_examples_are_split_exactly_over_the_workers() -> None:
    results, _ = run_campaigns(["fixed"], 5, seed=3, workers=2, steps=3)
    assert [r.seed for r in results] == [3, 4]
    assert sum(r.examples for r in results) >= 5
