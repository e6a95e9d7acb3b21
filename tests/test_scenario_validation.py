"""Malformed scenarios are rejected with one line naming the problem; nothing is replayed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmballoon.core.scenario import ScenarioError, parse_scenario

BASE: dict[str, Any] = {"format": "vmballoon-scenario/1", "steps": ["work"]}


def _with(**changes: Any) -> str:
    doc = dict(BASE)
    doc.update(changes)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_with(frames=-1), "frames"),
        (_with(frames=2**64), "frames"),
        (_with(frames=True), "frames"),
        (_with(frames=1.5), "integer"),
        (_with(pfn_base="0"), "pfn_base"),
        (_with(totalram_pages=-3), "totalram_pages"),
        (_with(steps=["work", "sleep"]), "steps[1]"),
        (_with(steps="work"), "steps"),
        (_with(hv=[{"result": 1}]), "status"),
        (_with(hv=[{"status": 0, "colour": 1}]), "colour"),
        (_with(hv=[{"status": 0, "entries": [0, -1]}]), "entries[1]"),
        (_with(hv=[{"status": False}]), "status"),
        (_with(alloc=[1, 0]), "alloc[0]"),
        (_with(vmci="yes"), "vmci"),
        (_with(extra=1), "extra"),
        (_with(format="vmballoon-scenario/2"), "format"),
        (_with(pfn_base=2**64 - 10, frames=10), "pfn_base"),
        (json.dumps({"format": "vmballoon-scenario/1"}), "steps"),
        ('{"format": "vmballoon-scenario/1", "steps": [], "steps": ["work"]}', "duplicate"),
        ('{"format": "vmballoon-scenario/1", "steps": ["work"], "frames": NaN}', "NaN"),
        ("[1, 2", "JSON"),
        ("[]", "object"),
    ],
)
def test_rejected_with_a_message_naming_the_problem(text: str, needle: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_arbitrary_json_never_crashes_the_parser(doc: Any) -> None:
    try:
        parse_scenario(json.dumps(doc))
    except ScenarioError as exc:
        assert "\n" not in str(exc)


def test_defaults_follow_the_contract() -> None:
    sc = parse_scenario(_with())
    assert (sc.frames, sc.pfn_base, sc.totalram, sc.hv, sc.alloc, sc.vmci) == (
        65536,
        0,
        65536,
        (),
        (),
        (),
    )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmballoon", *args], capture_output=True, text=True, check=False
    )


def test_cli_rejects_malformed_scenario_with_one_line_and_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(_with(hv=[{"status": -7}]))
    proc = _cli("replay", str(bad))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "hv[0].status" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("replay", "/no/such/file.json"),
        ("replay", "x.json", "--bogus"),
        ("replay", "x.json", "--impl", "rust"),
        ("replay", "x.json", "--variant", "nofix"),
        ("frobnicate",),
    ],
)
def test_cli_usage_errors_are_one_line(args: tuple[str, ...]) -> None:
    proc = _cli(*args)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_cli_replay_prints_one_json_document(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(_with(steps=["work", "exit"]))
    proc = _cli("replay", str(path))
    assert proc.returncode == 0, proc.stderr
    log = json.loads(proc.stdout)
    assert log["format"] == "vmballoon-events/1"
    assert [e["name"] for e in log["events"] if e["ev"] == "step"] == ["work", "exit"]
