"""The compiled driver (vmballoon.harness): the C itself as a reading, checked against the model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vmballoon.apps.golden import golden_cases
from vmballoon.apps.replay import replay
from vmballoon.core.scenario import load_scenario, scenario_from_json
from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.harness.build import BuildError, build, prepare_source, seed_source, warnings_of
from vmballoon.harness.process import DriverTimeout
from vmballoon.harness.replay import replay as replay_c

REPO_SCENARIOS = sorted(
    [
        *(ROOT / "tests" / "scenarios").glob("*.json"),
        *(ROOT / "tests" / "golden").glob("*.scenario.json"),
        *(ROOT / "spec" / "examples").glob("*.scenario.json"),
        *(ROOT / "spec" / "findings").glob("*.scenario.json"),
    ]
)
SEED_TEXT = seed_source().read_text(encoding="utf-8")


def test_vendored_seed_is_the_driver_version() -> None:
    assert 'MODULE_VERSION("1.5.0.0-k");' in SEED_TEXT
    assert SEED_TEXT.startswith("/*\n * VMware Balloon driver.")
    assert len(SEED_TEXT.splitlines()) == 1309


def test_only_the_backdoor_macro_changes_and_lines_keep_their_numbers() -> None:
    prepared = prepare_source(SEED_TEXT).splitlines()
    assert prepared[0] == '#line 1 "vmw_balloon.c"'
    body = prepared[1:]
    seed = SEED_TEXT.splitlines()
    assert len(body) == len(seed)
    changed = [i + 1 for i, (a, b) in enumerate(zip(seed, body, strict=True)) if a != b]
    assert changed == list(range(200, 220))
    assert "shim_backdoor" in body[199]
    assert all(line == "" for line in body[200:219])


def test_a_source_with_another_macro_block_is_refused_on_one_line() -> None:
    lines = SEED_TEXT.splitlines()
    lines[204] = lines[204].replace('"=c"', '"=d"')
    with pytest.raises(BuildError) as err:
        prepare_source("\n".join(lines), "mine.c")
    assert str(err.value).startswith("mine.c:205: the VMWARE_BALLOON_CMD block (lines 200-219)")
    assert "\n" not in str(err.value)
    with pytest.raises(BuildError, match="found 0"):
        prepare_source("int x;\n", "empty.c")


def test_compile_error_is_the_compilers_first_error_on_one_line(tmp_path: Path) -> None:
    bad = SEED_TEXT.replace("\tSTATS_INC(b->stats.timer);", "\tSTATS_INC(b->stats.timer) x;")
    with pytest.raises(BuildError) as err:
        build(bad, "patched.c")
    msg = str(err.value)
    assert msg.startswith("patched.c: does not compile: patched.c:1112:")
    assert "error" in msg and "\n" not in msg
    path = tmp_path / "patched.c"
    path.write_text(bad)
    scenario = ROOT / "tests" / "scenarios" / "null_ops.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vmballoon",
            "replay",
            str(scenario),
            "--impl",
            "c",
            "--source",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "patched.c:1112" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wall_only_the_seeds_own_warning() -> None:
    warnings = warnings_of(SEED_TEXT)
    assert len(warnings) == 1
    assert "vmw_balloon.c:598" in warnings[0] and "vmballoon_send_lock_page" in warnings[0]


@pytest.mark.parametrize("variant", [SEED, FIXED], ids=lambda v: v.name)
@pytest.mark.parametrize("path", REPO_SCENARIOS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_c_replays_like_the_model(path: Path, variant: Variant) -> None:
    scenario = load_scenario(path)
    assert replay_c(scenario, variant) == replay(scenario, "model", variant)


def test_golden_logs_are_the_compiled_seeds() -> None:
    cases = golden_cases()
    assert len(cases) >= 18
    for scenario, events in cases:
        expected = json.loads(events.read_text(encoding="utf-8"))
        assert replay_c(load_scenario(scenario), SEED) == expected, scenario.name


def test_faults_are_events_not_crashes() -> None:
    """A call through NULL ops is a SIGSEGV in the C: the log ends with null_deref."""
    log = replay_c(load_scenario(ROOT / "tests" / "scenarios" / "null_ops.json"), SEED)
    assert log["events"][-1] == {"ev": "fault", "kind": "null_deref", "pfn": None}
    assert log["final"]["crashed"] is True
    log = replay_c(load_scenario(ROOT / "tests" / "scenarios" / "basic_2m_list_corrupt.json"))
    assert log["events"][-1]["kind"] == "list_corrupt"


def test_a_driver_that_loops_is_stopped_and_reported(tmp_path: Path) -> None:
    timer = "\tSTATS_INC(b->stats.timer);"
    looping = SEED_TEXT.replace(timer, "\tfor (;;)" + timer[1:])
    path = tmp_path / "loop.c"
    path.write_text(looping)
    scenario = scenario_from_json({"format": "vmballoon-scenario/1", "steps": ["work"]})
    with pytest.raises(DriverTimeout, match=r"step 1 \(work\)"):
        replay_c(scenario, source=path, timeout=0.5)
