"""The C-faithful reference against the golden replays of the real C, and C corner cases.

Golden replays live in ``tests/golden``: the scenarios the project started from,
their event logs regenerated from the compiled seed by ``vmballoon golden``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import golden_cases
from vmballoon.core.protocol import STATS_FIELDS, SUCCESS_WITH_CAPABILITIES
from vmballoon.core.scenario import load_scenario, scenario_from_json
from vmballoon.core.variants import FIX_NAMES, FIXED, SEED, Variant
from vmballoon.reference import replay

GOLDEN_SCENARIOS = golden_cases()

SWC = SUCCESS_WITH_CAPABILITIES
OK: dict[str, int] = {"status": 0}
"""A plain success; also the answer to the cleanup VMCI_DOORBELL_SET every reset starts with."""


def run(doc: dict[str, Any], variant: Variant = SEED) -> dict[str, Any]:
    """Replay a scenario given as a JSON value (format key added)."""
    return replay(scenario_from_json({"format": "vmballoon-scenario/1", **doc}), variant)


def hv_events(log: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in log["events"] if e["ev"] == "hv"]


def faults(log: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in log["events"] if e["ev"] == "fault"]


def frees(log: dict[str, Any]) -> list[int]:
    return [e["pfn"] for e in log["events"] if e["ev"] == "free"]


# --- golden -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", GOLDEN_SCENARIOS, ids=lambda p: p.name.split(".")[0])
def test_golden_replay(path: Path) -> None:
    expected = json.loads(path.with_name(path.name.replace(".scenario.", ".events.")).read_text())
    got = replay(load_scenario(path), SEED)
    assert got["events"] == expected["events"]
    assert got["final"] == expected["final"]
    assert got == expected


@pytest.mark.parametrize("variant", [FIXED, *(Variant(frozenset({n})) for n in FIX_NAMES)])
def test_golden_scenarios_under_fixes(variant: Variant) -> None:
    """Every fix replays every golden scenario to a well-formed log without crashing."""
    for path in GOLDEN_SCENARIOS:
        got = replay(load_scenario(path), variant)
        assert got["format"] == "vmballoon-events/1"
        assert got["events"][0] == {"ev": "step", "name": "work"}
        assert not got["final"]["crashed"], (path.name, variant.name)


# --- shape of the log ---------------------------------------------------------------------


def test_final_has_exactly_the_contract_keys() -> None:
    final = run({"steps": []})["final"]
    assert list(final) == [
        "size",
        "target",
        "rate_alloc",
        "slow_allocation_cycles",
        "reset_required",
        "capabilities",
        "supported_page_sizes",
        "batch_max_pages",
        "ops",
        "pages",
        "refused",
        "n_refused",
        "batch_page",
        "page",
        "doorbell",
        "crashed",
        "stats",
    ]
    assert list(final["stats"]) == [name for name, _ in STATS_FIELDS]
    assert final["stats"]["lock"] == [0, 0]
    assert final["rate_alloc"] == 2048
    assert final["reset_required"] is True
    assert final["doorbell"] is None and final["ops"] is None and final["page"] is None


# --- C integer corner cases -------------------------------------------------------------------


def test_64bit_pfn_is_ballooned_without_lock_in_seed() -> None:
    """vmballoon_send_lock_page returns -1 for a PFN above 32 bits; `locked > 0` misses it."""
    doc = {
        "frames": 4,
        "pfn_base": 2**32,
        "steps": ["work"],
        "hv": [OK, OK, OK, {"status": 0, "result": 2}],
    }
    seed = run(doc)
    assert [e["cmd"] for e in hv_events(seed)] == [
        "VMCI_DOORBELL_SET",
        "START",
        "GUEST_ID",
        "GET_TARGET",
    ]
    assert seed["final"]["pages"] == [[2**32 + 1, 2**32], []]
    assert seed["final"]["size"] == 2
    assert seed["final"]["stats"]["lock"] == [0, 0]

    fixed = run(doc, Variant(frozenset({"lock_64bit_refused"})))
    assert fixed["final"]["size"] == 0
    assert fixed["final"]["pages"] == [[], []]
    # Refused (-EIO ends the inflation, line 897), then released at its end.
    assert fixed["final"]["stats"]["refused_alloc"] == [1, 0]
    assert fixed["final"]["stats"]["refused_free"] == [1, 0]
    assert frees(fixed) == [2**32]


def test_batched_pfn_above_2_to_52_wraps_in_the_batch_entry() -> None:
    """`(u64)page_to_pfn(p) << PAGE_SHIFT` drops the top bits; pfn_to_page reads another frame."""
    doc = {
        "frames": 8,
        "pfn_base": 2**52 - 2,
        "steps": ["work"],
        "hv": [OK, {"status": SWC, "result": 0x04}, OK, {"status": 0, "result": 3}],
    }
    log = run(doc)
    final = log["final"]
    assert final["batch_page"] == 2**52 - 2
    assert hv_events(log)[-1] == {
        "ev": "hv",
        "cmd": "BATCHED_LOCK",
        "arg1": None,
        "arg2": 3,
        "status": 0,
        "result": 0,
    }
    assert final["pages"] == [[1, 0, 2**52 - 1], []]
    assert final["size"] == 3
    assert final["target"] == 0  # the BATCHED_LOCK result overwrote it


def test_lock_status_is_read_back_as_32bit_int() -> None:
    """`int hv_status` gets the low 32 bits: 2**32 + 7 is ERROR_RESET there, not in check_status."""
    base = {"frames": 16, "steps": ["work"]}
    wide = run(
        {
            **base,
            "hv": [OK, OK, OK, {"status": 0, "result": 10}, {"status": 2**32 + 7, "result": 10}],
        }
    )
    assert wide["final"]["reset_required"] is False
    assert frees(wide) == [0]  # freed at once, not put on the refused list
    assert wide["final"]["stats"]["lock_fail"] == [1, 0]
    assert wide["final"]["stats"]["refused_alloc"] == [1, 0]
    assert wide["final"]["stats"]["refused_free"] == [0, 0]

    reset = run(
        {**base, "hv": [OK, OK, OK, {"status": 0, "result": 10}, {"status": 7, "result": 10}]}
    )
    assert reset["final"]["reset_required"] is True
    assert frees(reset) == [0]


def test_target_keeps_the_low_32_bits() -> None:
    doc = {
        "frames": 16,
        "steps": ["work"],
        "hv": [OK, OK, OK, {"status": 0, "result": 2**32 + 2}, {"status": 0, "result": 2**40 + 1}],
    }
    final = run(doc)["final"]
    assert final["target"] == 1
    assert final["size"] == 1
    assert final["pages"] == [[0], []]


def test_failed_lock_still_rewrites_target_unless_fixed() -> None:
    doc = {
        "frames": 16,
        "steps": ["work"],
        "hv": [OK, OK, OK, {"status": 0, "result": 5}, {"status": 1, "result": 4000}],
    }
    assert run(doc)["final"]["target"] == 4000
    assert run(doc, Variant(frozenset({"target_on_success"})))["final"]["target"] == 5


def test_totalram_above_32_bits_sends_no_get_target() -> None:
    log = run({"frames": 16, "totalram_pages": 2**32, "steps": ["work"]})
    assert [e["cmd"] for e in hv_events(log)] == ["VMCI_DOORBELL_SET", "START", "GUEST_ID"]
    assert log["final"]["stats"]["target"] == 0


def test_doorbell_set_result_is_an_int_error() -> None:
    """vmballoon_vmci_init tests the result register as `int error`, not the status."""
    start = {"status": SWC, "result": 0x12}  # BASIC | SIGNALLED_WAKEUP

    def doorbell(dset: dict[str, int], variant: Variant = SEED) -> dict[str, Any]:
        return run({"frames": 16, "steps": ["work"], "hv": [OK, start, dset]}, variant)

    assert doorbell({"status": 0, "result": 2**32})["final"]["doorbell"] == [0, 1]
    torn = doorbell({"status": 0, "result": 0xFFFFFFFF})["final"]
    assert torn["doorbell"] is None
    assert torn["stats"]["doorbell_unset"] == 2
    assert doorbell({"status": 1})["final"]["doorbell"] == [0, 1]
    fixed = Variant(frozenset({"doorbell_set_status"}))
    assert doorbell({"status": 1}, fixed)["final"]["doorbell"] is None
    assert doorbell({"status": 0, "result": 0xFFFFFFFF}, fixed)["final"]["doorbell"] == [0, 1]


# --- faults -------------------------------------------------------------------------------------


def test_null_ops_crash_and_reset_needs_ops() -> None:
    """START succeeds with neither BASIC nor BATCHED: ops stays NULL and add_page crashes."""
    doc = {
        "frames": 16,
        "steps": ["work", "work"],
        "hv": [OK, {"status": SWC, "result": 0x10}, OK, OK, {"status": 0, "result": 5}],
    }
    seed = run(doc)
    assert seed["events"][-2:] == [
        {"ev": "alloc", "order": 0, "gfp": "nosleep", "pfn": 0},
        {"ev": "fault", "kind": "null_deref", "pfn": None},
    ]
    assert seed["final"]["crashed"] is True
    assert seed["final"]["ops"] is None
    assert seed["final"]["doorbell"] == [0, 1]
    assert seed["final"]["stats"]["timer"] == 1  # the second step never ran

    fixed = run({**doc, "steps": ["work"]}, Variant(frozenset({"reset_needs_ops"})))
    assert fixed["final"]["crashed"] is False
    assert fixed["final"]["reset_required"] is True
    assert "GET_TARGET" not in [e["cmd"] for e in hv_events(fixed)]


def test_stale_basic_page_relocked_is_list_corruption() -> None:
    """2 MiB pages with basic ops: a failed 2 MiB allocation re-locks the stale b->page."""
    lock = {"status": 0, "result": 2000}
    doc = {
        "frames": 1024,
        "steps": ["work"],
        "hv": [OK, {"status": SWC, "result": 0x0A}, OK, lock, lock, lock, lock],
    }
    seed = run(doc)
    assert seed["events"][-1] == {"ev": "fault", "kind": "list_corrupt", "pfn": 512}
    assert [e["arg1"] for e in hv_events(seed) if e["cmd"] == "LOCK"] == [0, 512, 512]
    assert seed["final"]["crashed"] is True
    assert seed["final"]["pages"] == [[512, 0], []]
    assert seed["final"]["size"] == 2  # two 2 MiB blocks counted as one 4 KiB page each

    fixed = run(doc, Variant(frozenset({"no_2m_without_batching"})))
    assert fixed["final"]["crashed"] is False
    assert fixed["final"]["supported_page_sizes"] == 1
    assert not [e for e in fixed["events"] if e["ev"] == "alloc" and e["order"] == 9]


def test_warn_on_once_warns_once_and_drops_the_pages() -> None:
    doc = {
        "frames": 16,
        "steps": ["work"],
        "hv": [
            OK,
            {"status": SWC, "result": 0x04},
            OK,
            {"status": 0, "result": 3},
            {"status": 0, "result": 3, "entries": [1, 33, 0, 1]},
        ],
    }
    batch_pfn = Variant(frozenset({"batch_pfn"}))
    log = run(doc, batch_pfn)
    assert faults(log) == [{"ev": "fault", "kind": "warn", "pfn": None}]
    assert log["final"]["crashed"] is False
    assert log["final"]["pages"] == [[3], []]
    assert log["final"]["size"] == 1
    assert frees(log) == []  # frames 1 and 2 leak

    freed = run(doc, Variant(frozenset({"batch_pfn", "warn_status_frees"})))
    assert len(faults(freed)) == 1
    assert frees(freed) == [1, 2]

    # The seed names b->page (NULL) instead of the batch page: the entries are never written.
    seed = run(doc)
    assert hv_events(seed)[-1]["arg1"] is None
    assert faults(seed) == []
    assert seed["final"]["pages"] == [[3, 2, 1], []]


def test_deflate_readds_refused_unlocks_behind_the_cursor() -> None:
    """list_for_each_entry_safe: pages re-added at the head are not walked again."""
    batch_pfn = Variant(frozenset({"batch_pfn"}))
    doc = {
        "frames": 2048,
        "steps": ["work", "work"],
        "hv": [
            OK,
            {"status": SWC, "result": 0x04},
            OK,
            {"status": 0, "result": 1000},
            {"status": 0, "result": 1000},
            {"status": 0, "result": 1000},
            {"status": 0, "result": 0},
            {"status": 0, "result": 0, "entries": [4] * 3},
        ],
    }
    log = run(doc, batch_pfn)
    final = log["final"]
    unlocks = [e for e in hv_events(log) if e["cmd"] == "BATCHED_UNLOCK"]
    # 1000 pages: one full batch of 512 (3 refused, re-added at the head), then 488 more.
    assert [e["arg2"] for e in unlocks] == [512, 488]
    # Balloon pages 1..1000 (the batch page is frame 0), walked from the head (1000);
    # the first three of the first batch are re-added, in batch order, at the head.
    assert final["pages"] == [[998, 999, 1000], []]
    assert final["size"] == 3
    assert len(frees(log)) == 997


def test_rate_alloc_halves_to_its_floor_and_grows_back_only_when_counted() -> None:
    """Lines 863-870 (halve, floor 512) and 916-921 (grow), which need `allocations`."""
    get_target = {"status": 0, "result": 10}
    starved = run(
        {
            "frames": 64,
            "steps": ["work", "work", "work"],
            "hv": [OK, OK, OK, get_target, get_target, get_target],
            "alloc": [False] * 6,  # every NOSLEEP and CANSLEEP allocation fails
        }
    )["final"]
    assert starved["rate_alloc"] == 512  # 2048 -> 1024 -> 512 -> 512
    assert starved["stats"]["sleep_alloc_fail"] == 3
    assert starved["slow_allocation_cycles"] == 4

    lock = {"status": 0, "result": 2000}
    doc = {
        "frames": 4096,
        "steps": ["work", "work"],
        "hv": [OK, {"status": SWC, "result": 0x04}, OK, lock, lock, lock, lock],
        "alloc": [True, False, False],  # the batch page, then one starved inflation
    }
    seed = run(doc)["final"]
    assert seed["rate_alloc"] == 1024
    assert seed["size"] == 1536  # no pause after rate_alloc pages: a third batch
    counted = run(doc, Variant(frozenset({"count_allocations"})))["final"]
    assert counted["rate_alloc"] == 1024 + 16
    assert counted["size"] == 1024  # paused after rate_alloc (1024) allocations
