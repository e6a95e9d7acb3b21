"""`vmballoon check-c`: a reviewer's check of a driver source against a model variant."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from vmballoon.apps.checkc import regressed
from vmballoon.core.scenario import load_scenario
from vmballoon.core.variants import FIXED, SEED
from vmballoon.harness.patches import variant_source
from vmballoon.harness.replay import binary_for

UNLOCK_CHECK = "if (!hv_success || locked != VMW_BALLOON_SUCCESS) {"


def check_c(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmballoon", "check-c", *args],
                          capture_output=True, text=True, check=False)  # fmt: skip


def test_the_seed_against_the_seed_has_no_regression(tmp_path: Path) -> None:
    source = tmp_path / "vmw_balloon.c"
    source.write_text(variant_source(SEED))
    proc = check_c(str(source), "--against", "seed", "--examples", "40", "--seed", "3",
                   "--out", str(tmp_path / "out"))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no regression" in proc.stdout and "no divergence" in proc.stdout


def test_a_failed_unlock_that_frees_the_page_is_a_regression(tmp_path: Path) -> None:
    """Planted bug: the batched unlock frees pages the host refused to unlock."""
    fixed = variant_source(FIXED)
    assert fixed.count(UNLOCK_CHECK) == 1
    source = tmp_path / "planted.c"
    source.write_text(fixed.replace(UNLOCK_CHECK, "if (locked != VMW_BALLOON_SUCCESS) {"))
    out = tmp_path / "out"
    proc = check_c(str(source), "--examples", "60", "--seed", "3", "--out", str(out), "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["against"] == "fixed"
    [regression] = report["regressions"]
    assert regression["properties"] == ["host_agreement"]
    assert "freed while the host holds it" in regression["message"]
    scenario = load_scenario(regression["scenario"])
    # the written scenario shows it again: the C breaks host_agreement, FIXED does not
    assert regressed(binary_for(source=source), scenario, FIXED) == ["host_agreement"]
    assert report["divergence"] is not None


def test_strict_fails_on_a_divergence_alone(tmp_path: Path) -> None:
    """A change no property is about (the timer statistic counts twice) is a divergence:
    information by default, a failure with --strict."""
    source = tmp_path / "stats.c"
    # count timer ticks twice: visible in the state (a divergence), no property cares
    source.write_text(variant_source(FIXED).replace(
        "\tSTATS_INC(b->stats.timer);", "\tSTATS_INC(b->stats.timer);\n\tSTATS_INC(b->stats.timer);"
    ))  # fmt: skip
    args = ("--examples", "20", "--seed", "1", "--out", str(tmp_path / "o"))
    lenient = check_c(str(source), *args)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "divergence (information)" in lenient.stdout and "final.stats" in lenient.stdout
    assert check_c(str(source), *args, "--strict").returncode == 1


def test_bad_input_is_exit_2_on_one_line(tmp_path: Path) -> None:
    missing = check_c(str(tmp_path / "none.c"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    broken = tmp_path / "broken.c"
    broken.write_text(variant_source(SEED).replace("b->size++;", "b->size++"))
    bad = check_c(str(broken))
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "broken.c:" in bad.stderr and "error" in bad.stderr
    source = tmp_path / "ok.c"
    source.write_text(variant_source(SEED))
    unknown = check_c(str(source), "--against", "nofix")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
