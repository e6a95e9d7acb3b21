"""``replay --check``, the ``meta`` key of scenarios, minimal counterexamples, verify's variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmballoon.apps.cli import build_parser, main
from vmballoon.core.minimize import minimize
from vmballoon.core.scenario import Response, Scenario, ScenarioError, parse_scenario
from vmballoon.core.variants import SEED, parse_variant
from vmballoon.model.properties import check_trace

SWC = 0x03000000
# basic ops (START answers BASIC | SIGNALLED_WAKEUP), one page above 2**32, target 1:
# the seed balloons the page without locking it (lines 598-600)
LOCK_64BIT = {
    "format": "vmballoon-scenario/1",
    "pfn_base": 1 << 33,
    "steps": ["work"],
    "hv": [
        {"status": 0},
        {"status": SWC, "result": 18},
        {"status": 0},
        {"status": 0},
        {"status": 0, "result": 1},
    ],
    "meta": {"property": "host_agreement", "defect": "lock_64bit_refused"},
}


def _write(tmp_path: Path, doc: object) -> str:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_replay_check_prints_each_violation_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, LOCK_64BIT)
    assert main(["replay", path, "--check"]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("host_agreement:"))
    assert "transition 14 (inflate_end -> IDLE)" in line
    assert "not held by the host [8589934592]" in line
    # the fix alone clears that property
    main(["replay", path, "--check", "--variant", "lock_64bit_refused"])
    assert "host_agreement" not in capsys.readouterr().out


def test_replay_check_passes_on_a_clean_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, {"format": "vmballoon-scenario/1", "steps": ["work"]})
    assert main(["replay", path, "--check", "--variant", "fixed"]) == 0
    assert "no property violated (fixed)" in capsys.readouterr().out


def test_meta_is_accepted_as_an_object_only() -> None:
    doc = dict(LOCK_64BIT)
    assert parse_scenario(json.dumps(doc)).steps == ("work",)
    for bad in ([1], "x", 3, None):
        doc["meta"] = bad
        with pytest.raises(ScenarioError, match="meta: expected an object"):
            parse_scenario(json.dumps(doc))


def test_minimize_keeps_only_needed_inputs() -> None:
    sc = Scenario(
        steps=("work", "work", "doorbell"),
        frames=4096,
        pfn_base=1 << 33,
        hv=(
            Response(0),
            Response(SWC, 18),
            Response(0, 77),
            Response(5, 3),
            Response(0, 1),
            Response(6, 9, (1, 2)),
        ),
        alloc=(True, True, False),
        vmci=(False,),
    )

    def keep(s: Scenario) -> bool:
        return any(v.prop == "host_agreement" for v in check_trace(s, SEED))

    small = minimize(sc, keep)
    assert keep(small)
    assert small.steps == ("work",) and small.alloc == () and small.vmci == ()
    # every input left is needed: its default loses the violation
    for k, r in enumerate(small.hv):
        if r != Response(0):
            hv = (*small.hv[:k], Response(0), *small.hv[k + 1 :])
            assert not keep(Scenario(**{**small.__dict__, "hv": hv})), k
    assert minimize(sc, keep) == small  # deterministic


def test_verify_accepts_every_variant_the_other_commands_accept() -> None:
    parser = build_parser()
    assert parser.parse_args(["verify", "--variant", "all"]).variant == "all"
    for text in ("seed", "fixed", "fixed-batch_pfn", "batch_pfn,warn_status_frees"):
        args = parser.parse_args(["verify", "--variant", text])
        assert args.variant == parse_variant(text).name
    assert main(["verify", "--variant", "no_such_fix"]) == 2


def test_each_bmc_query_s_time_is_shared_by_the_properties_it_asked_about() -> None:
    """A BMC row's ``seconds`` is its share of the solver time: each query's time divided
    among the properties still open when it was asked."""
    from vmballoon.proofs.check import Bmc, _Shares
    from vmballoon.proofs.status import Status

    shares = _Shares(["no_leak", "protocol"])
    shares(1.0)  # asked about both
    shares.todo.remove("no_leak")  # found: the next queries ask about protocol alone
    shares(0.5)
    assert shares.spent == {"no_leak": 0.5, "protocol": 1.0}
    assert shares.rows(Status.NO_CEX, 14) == {"protocol": Bmc(Status.NO_CEX, None, 14, 1.0)}
