"""The README's results table is generated from spec/verify-results.json
(``python -m vmballoon.apps.verify_render``), its transitions those the replays show."""

from __future__ import annotations

import re

from vmballoon.apps import specgen
from vmballoon.apps.verify_render import main, replay_transition, results_table
from vmballoon.core.specdata import spec_dir


def test_the_table_gives_each_finding_at_the_transition_its_replay_shows() -> None:
    doc = specgen.load_results()
    table = results_table(doc)
    seed = {r["prop"]: r for r in doc["results"] if r["variant"] == "seed"}
    for line in table.splitlines()[2:]:
        name = line.split("`")[1]
        r = seed[name]
        if r["status"] != "violated":
            continue
        step = replay_transition(spec_dir() / "findings" / f"seed.{name}.scenario.json", name)
        m = re.search(r"violated at transition (\d+)", line)
        assert m is not None and int(m.group(1)) == step, line
        if r["kind"] == "bmc":  # plain BMC: the recorded depth is the replay's transition
            assert step == r["depth"], line
    assert "| `throttle` | violated at transition 2064 (accelerated search, depth 22)" in table


def test_the_command_prints_it(capsys: object) -> None:
    assert main([]) == 0
    assert main(["/nonexistent.json"]) == 2
