"""``vmballoon replay`` under real use: options checked together before any work, output
files written whole or not at all, an ITF's size known (and limited) before it is
written, progress on stderr, and SIGINT / SIGTERM ending in one line and exit 130."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SCENARIOS
from vmballoon.apps.traceout import CountingStream, Progress, estimate_itf
from vmballoon.apps.traces import walk, write_itf
from vmballoon.core.scenario import load_scenario, scenario_from_json
from vmballoon.core.variants import FIXED, SEED

RESET = SCENARIOS / "reset_mid_inflation.json"
BIG = SCENARIOS / "guest64g_2m_to_48g_and_back.json"
HOST_AGREEMENT = ROOT / "spec" / "findings" / "seed.host_agreement.scenario.json"


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmballoon", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        cwd=ROOT,
    )


def _one_line_usage_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--check", "--no-check"], "contradict"),
        (["--steps", "5"], "--steps filters --format table only"),
        (["--violations"], "--violations filters --format table only"),
        (["--format", "itf", "--steps", "1:3"], "--steps filters --format table only"),
        (["--format", "itf", "--violations"], "--violations filters --format table only"),
        (["--no-check"], "--no-check applies to --format itf and table"),
        (["--format", "table", "--force"], "--force lifts the size limit of --format itf"),
        (["--check", "-o", "out.json"], "--check prints its report on stdout"),
        (["--format", "table", "--violations", "--no-check"], "--violations needs"),
        (["--property", "no_leak"], "add --check"),
    ],
)
def test_contradictory_or_inert_options_are_refused(args: list[str], says: str) -> None:
    assert says in _one_line_usage_error(_run("replay", str(RESET), *args))


@pytest.mark.parametrize("where", ["folder", "missing-parent", "parent-is-a-file"])
def test_an_output_that_cannot_be_a_file_is_refused_before_work(tmp_path: Path, where: str) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    target = {
        "folder": tmp_path,
        "missing-parent": tmp_path / "no" / "t.json",
        "parent-is-a-file": afile / "t.json",
    }[where]
    line = _one_line_usage_error(_run("replay", str(RESET), "-o", str(target)))
    assert "-o/--output" in line and str(target) in line


def test_table_with_check_and_property_prints_the_table_and_the_verdict() -> None:
    table = _run(
        "replay",
        str(HOST_AGREEMENT),
        "--format",
        "table",
        "--check",
        "--property",
        "host_agreement",
    )
    assert table.returncode == 1, table.stderr  # the property fails along the replay
    assert table.stdout.startswith("   #  transition")
    assert "! host_agreement:" in table.stdout
    marks = {
        line.split("!")[1].split(":")[0].strip()
        for line in table.stdout.splitlines()
        if "  ! " in line
    }
    assert marks == {"host_agreement"}  # only the property asked for
    fixed = _run(
        "replay",
        str(HOST_AGREEMENT),
        "--variant",
        "fixed",
        "--format",
        "table",
        "--check",
        "--property",
        "host_agreement",
    )
    assert fixed.returncode == 0 and "! " not in fixed.stdout and "#  transition" in fixed.stdout


def test_a_window_past_the_end_says_so() -> None:
    proc = _run(
        "replay", str(SCENARIOS / "null_ops.json"), "--format", "table", "--steps", "100:200"
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "#  transition         changes"
    assert proc.stderr.strip() == (
        "replay: --steps 100:200 shows nothing: the replay has transitions 0 to 10"
    )


@pytest.mark.parametrize("fmt", ["events", "itf", "table"])
def test_output_file_holds_what_stdout_would(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"r.{fmt}"
    to_file = _run("replay", str(RESET), "--format", fmt, "-o", str(out))
    assert to_file.returncode == 0 and to_file.stdout == "", to_file.stderr
    assert to_file.stderr.strip() == f"wrote {out}"
    assert out.read_text() == _run("replay", str(RESET), "--format", fmt).stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no partial file left


def test_a_too_large_itf_is_refused_up_front_with_its_estimate(tmp_path: Path) -> None:
    started = time.monotonic()
    out = tmp_path / "big.itf.json"
    line = _one_line_usage_error(
        _run("replay", str(BIG), "--format", "itf", "--no-check", "-o", str(out), timeout=60)
    )
    assert "5.3" in line and "GB" in line and "--force" in line and "49,272 states" in line
    assert time.monotonic() - started < 30 and not any(tmp_path.iterdir())


def test_the_itf_estimate_is_within_five_percent() -> None:
    doc = json.loads(BIG.read_text())
    doc["frames"] //= 16  # a 4 GiB guest inflating 2 MiB pages to 3 GiB and back
    doc["hv"] = (
        doc["hv"][:4] + [{"status": 0, "result": 786432}] * 13 + [{"status": 0, "result": 0}] * 60
    )
    for scenario, variant, checked in (
        (scenario_from_json(doc), FIXED, False),
        (load_scenario(RESET), SEED, True),
    ):
        estimate = estimate_itf(scenario, variant, checked)
        sink = CountingStream(io.StringIO())
        states = write_itf(walk(scenario, variant, check=checked), sink, "x", checked)
        assert estimate.states == states
        assert abs(estimate.bytes - sink.written) <= 0.05 * sink.written, (estimate, sink.written)


def test_progress_lines_start_after_a_few_seconds_then_every_few() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress(
        out, "states", 1000, lambda: 2_500_000, first=3, every=5, clock=lambda: now[0]
    )
    for done, t in ((10, 1.0), (20, 2.9), (300, 3.0), (310, 7.9), (600, 8.0)):
        now[0] = t
        progress.update(done)
    assert out.getvalue().splitlines() == [
        "replay: 300/1,000 states (30%), 2.5 MB written, 3 s",
        "replay: 600/1,000 states (60%), 2.5 MB written, 8 s",
    ]


def _wait_for(predicate: object, proc: subprocess.Popen[str], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not predicate():  # type: ignore[operator]
        assert proc.poll() is None, "the replay ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_an_itf_into_a_file_leaves_no_file(tmp_path: Path, sig: int) -> None:
    out = tmp_path / "big.itf.json"
    err = tmp_path / "err.txt"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vmballoon",
                "replay",
                str(BIG),
                "--format",
                "itf",
                "--no-check",
                "--force",
                "-o",
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=ROOT,
        )

        def writing() -> bool:
            partial = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
            return bool(partial) and partial[0].stat().st_size > 1_000_000

        _wait_for(writing, proc)
        proc.send_signal(sig)
        stdout, _ = proc.communicate(timeout=60)
    text = err.read_text()
    assert proc.returncode == 130, text
    assert "Traceback" not in text and stdout == ""
    assert text.splitlines()[0].startswith("replay: writing an ITF of 49,272 states, about")
    last = text.strip().splitlines()[-1]
    assert last.startswith("replay: interrupted after ") and "not written" in last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["err.txt"]


def test_interrupting_a_table_on_stdout_marks_it_incomplete(tmp_path: Path) -> None:
    out = tmp_path / "table.txt"
    with out.open("w") as stdout:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vmballoon",
                "replay",
                str(BIG),
                "--format",
                "table",
                "--no-check",
            ],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        _wait_for(lambda: out.stat().st_size > 20_000, proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("replay: interrupted after transition ")
    assert "the table on stdout is incomplete" in stderr
    last = out.read_text().strip().splitlines()[-1]
    assert last.startswith("(interrupted after transition ") and "incomplete" in last


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_a_check_is_one_line_and_exit_130(tmp_path: Path, sig: int) -> None:
    import json

    from benchmarks.bench_model import inflation
    from vmballoon.core.protocol import CAP_BASIC, CAP_BATCHED

    # one inflation of 1,000,000 4 KiB pages: the check takes tens of seconds
    long = tmp_path / "long.json"
    long.write_text(json.dumps(inflation(1_000_000, CAP_BASIC | CAP_BATCHED).to_json()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmballoon", "replay", str(long), "--check"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    time.sleep(4)  # imports done, the check under way (it takes far longer)
    assert proc.poll() is None
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stdout == "" and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "replay: interrupted before the end of the replay; the check reported nothing"
    )


def test_an_interrupt_while_estimating_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vmballoon.apps import replaycmd
    from vmballoon.apps.cli import build_parser

    def interrupted(*args: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(replaycmd, "estimate_itf", interrupted)
    out = tmp_path / "t.json"
    args = build_parser().parse_args(["replay", str(RESET), "--format", "itf", "-o", str(out)])
    assert args.func(args) == 130
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "replay: interrupted while estimating the ITF's size; nothing written\n"
    assert not any(tmp_path.iterdir())
