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


def test_the_checked_in_results_were_searched_to_verify_s_default_depth() -> None:
    """``spec/verify-results.json`` says "no counterexample up to 14" where plain BMC
    found none: verify's default depth must be the one those rows were searched to (a
    shallower default loses the violations found at 14, a deeper one may find new ones;
    either way the checked-in results would no longer be what ``verify`` gives)."""
    from vmballoon.proofs.check import DEFAULT_DEPTH

    rows = specgen.load_results()["results"]
    bounded = [r for r in rows if r["kind"] == "bmc" and r["status"] == "no-cex"]
    found = [r["depth"] for r in rows if r["kind"] == "bmc" and r["status"] == "violated"]
    assert bounded and {r["depth"] for r in bounded} == {DEFAULT_DEPTH}
    assert max(found) == DEFAULT_DEPTH


def test_the_accelerated_search_is_the_one_the_results_and_docs_describe() -> None:
    """The seed's ``throttle`` is found by the accelerated search at the depth it is
    asked to (22): a shallower search would lose it; docs/how-verify-searches.md gives
    that depth and the query's budget as the code has them."""
    from vmballoon.proofs.check import DEEP_DEPTH, DEEP_TIMEOUT_FACTOR

    rows = [r for r in specgen.load_results()["results"] if r["kind"] == "accelerated"]
    assert rows and max(r["depth"] for r in rows) <= DEEP_DEPTH
    doc = " ".join((spec_dir().parent / "docs" / "how-verify-searches.md").read_text().split())
    assert f"up to depth {DEEP_DEPTH}, for the seed's" in doc
    assert f"one query over every depth up to {DEEP_DEPTH} " in doc
    assert f"The query gets {DEEP_TIMEOUT_FACTOR} query timeouts" in doc
