"""The reviewer's reference (spec/reference.md) is what the code generates."""

from __future__ import annotations

import json

from vmballoon.apps import specgen
from vmballoon.core.scenario import load_scenario
from vmballoon.core.variants import FIX_NAMES, FIXED, SEED
from vmballoon.model.properties import check_trace


def test_checked_in_reference_matches_the_code() -> None:
    diff = specgen.check()
    assert not diff, "run `vmballoon spec` and commit:\n" + "\n".join(diff)


def test_every_fix_and_property_is_in_the_reference() -> None:
    text = (specgen.SPEC / specgen.DOCUMENT).read_text(encoding="utf-8")
    for fix in FIX_NAMES:
        assert f"`{fix}`" in text
    for name in ("accounting", "no_crash", "host_agreement", "protocol"):
        assert f"`{name}`" in text


def test_every_finding_has_a_replayable_scenario() -> None:
    results = specgen.load_results()
    findings = [
        r for r in results["results"] if r["variant"] == "seed" and r["status"] == "violated"
    ]
    assert findings, "the seed has findings"
    for r in findings:
        path = specgen.SPEC.parent / r["scenario"]
        assert path.is_file(), path
        assert json.loads(path.read_text())["format"] == "vmballoon-scenario/1"


def test_fixed_is_proved_in_the_checked_in_results() -> None:
    results = specgen.load_results()
    fixed = [r for r in results["results"] if r["variant"] == "fixed"]
    assert fixed and all(r["status"] == "proved" for r in fixed)


def test_findings_replay_to_their_violation_on_seed_and_not_on_fixed() -> None:
    results = specgen.load_results()
    for r in results["results"]:
        if r["variant"] != "seed" or r["status"] != "violated":
            continue
        scenario = load_scenario(specgen.SPEC.parent / r["scenario"])
        assert r["prop"] in {v.prop for v in check_trace(scenario, SEED)}, r["prop"]
        assert r["prop"] not in {v.prop for v in check_trace(scenario, FIXED)}, r["prop"]


def test_readme_results_table_matches_the_checked_in_results() -> None:
    readme = (specgen.SPEC.parent / "README.md").read_text(encoding="utf-8")
    results = specgen.load_results()
    by = {(r["variant"], r["prop"]): r for r in results["results"]}
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    checked = 0
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        name = cells[0].strip("`")
        if ("seed", name) not in by or len(cells) != 4:
            continue
        seed = by[("seed", name)]
        expected = {
            "violated": f"violated (shortest: {seed['depth']} steps)"
            if seed["kind"] != "accelerated"
            else f"violated ({seed['depth']} accelerated steps)",
            "no-cex": f"no counterexample up to {seed['depth']} steps",
            "proved": "proved",
        }[seed["status"]]
        assert cells[1] == expected, (name, cells[1], expected)
        assert cells[2] == by[("fixed", name)]["status"] == "proved"
        needed = sorted(f for f, props in results["necessity"].items() if name in props)
        assert sorted(c.strip("`") for c in cells[3].split(", ") if c) == needed
        checked += 1
    assert checked == len({r["prop"] for r in results["results"] if r["variant"] == "seed"})
