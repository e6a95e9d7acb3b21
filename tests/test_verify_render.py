"""verify's text for a reader (issue 23): NULL for a null PFN, hex next to decimal, the
assumptions once as a numbered list the cells refer to, times only where measured, the
replay command of each finding, one progress counter with N fixed up front."""

from __future__ import annotations

import argparse

import pytest

from vmballoon.apps import verify as vf
from vmballoon.apps import verify_render as render
from vmballoon.apps.verify_jobs import Board, plan, slots
from vmballoon.core.variants import FIX_NAMES
from vmballoon.proofs.check import ConformanceOutcome, Outcome
from vmballoon.proofs.props import PROPERTIES
from vmballoon.proofs.status import Status


def test_numbers_as_the_c_reads_them() -> None:
    text = render.readable("BATCHED_LOCK names PFN None, not the batch page 50331648")
    assert text == "BATCHED_LOCK names PFN NULL, not the batch page 50331648 (0x3000000)"
    assert render.readable("START answered 7") == "START answered 7 (0x7)"
    assert render.readable("capabilities 30") == "capabilities 30 (0x1e)"


def test_the_replay_command_of_a_finding() -> None:
    assert (
        render.replay_command("out/seed.x.scenario.json", "seed")
        == "vmballoon replay out/seed.x.scenario.json --format table"
    )
    assert (
        render.replay_command("a b.json", "fixed-batch_pfn")
        == "vmballoon replay 'a b.json' --variant fixed-batch_pfn --format table"
    )


def test_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(
        variant="all",
        property=["protocol", "no_leak"],
        no_necessity=True,
        timeout=30.0,
        depth=14,
        jobs=2,
        out=None,
    )
    setup = vf.Setup.of(args)
    board = Board(per_defect=False, necessity=False, timeout=30.0, out=None)
    board.results += [
        Outcome("protocol", "fixed", "induction", Status.PROVED, 0.0, measured=False),
        Outcome("no_leak", "fixed", "induction", Status.PROVED, 0.0, measured=False),
        Outcome(
            "protocol",
            "seed",
            "bmc",
            Status.VIOLATED,
            2.5,
            depth=11,
            scenario="out/seed.protocol.scenario.json",
            replay=[
                {
                    "step": 11,
                    "loc": "I_LOCK",
                    "message": "BATCHED_LOCK names PFN None, not the batch page 12",
                }
            ],
        ),
        Outcome("no_leak", "seed", "bmc", Status.NO_CEX, 1.0, depth=14),
    ]
    board.conformance += [ConformanceOutcome(v, True, {}) for v in ("seed", "fixed")]
    render.report(setup, board, vf.verdict(setup, board, None), None, 3.0)
    out = capsys.readouterr().out
    assert "PFN NULL" in out and "page 12 (0xc)" in out
    assert "    vmballoon replay out/seed.protocol.scenario.json --format table" in out
    assert out.count("pfn_below_2_52:") == 1 and "A1 pfn_below_2_52: every PFN" in out
    assert "proved [A1]" in out
    assert "(0.0s)" not in out  # a proved property has no time of its own
    assert "violated@11 (2.5s)" in out and "no-cex≤14 (1.0s)" in out


def test_the_progress_counter_is_fixed_up_front() -> None:
    """N counts every slot a full run fills: the jobs planned up front, the accelerated
    search (run or not needed) and one per defect; divergences are notes."""
    props = [*PROPERTIES, "progress"]
    jobs = plan(["seed", "fixed"], props, 30.0, 14, None, True)
    assert slots(jobs, ["seed", "fixed"], props, True) == len(jobs) + 1 + len(FIX_NAMES)
    assert slots(jobs, ["seed", "fixed"], ["protocol"], False) == len(jobs)
