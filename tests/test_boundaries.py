"""The driver at its comparison boundaries, as the C decides them (issue 8: mutation score).

Each test replays a small scripted scenario through the model and the reference
(they must agree) and checks the outcome the C prescribes at one boundary, one
below and one above: the deflate hysteresis (lines 1126-1127, 945-950), the
inflate stop (834-835), a batch of exactly 512 pages (893-906), the refused-page
bound (614, 667), the allocation rate's floor, increase and ceiling (866-868,
916-921).  The expected values are worked out from the C in each docstring, not
read off either reading.
"""

from __future__ import annotations

from typing import Any

import pytest

from vmballoon.apps.fuzz import describe_difference
from vmballoon.apps.replay import replay
from vmballoon.core.protocol import (
    CAP_BATCHED,
    CAP_BATCHED_2M,
    ERROR_PPN_INVALID,
    ERROR_PPN_NOTNEEDED,
    ERROR_PPN_PINNED,
    ERROR_RESET,
    SUCCESS_WITH_CAPABILITIES,
)
from vmballoon.core.scenario import Scenario, scenario_from_json

Log = dict[str, Any]


def ok(result: int = 0, entries: list[int] | None = None) -> dict[str, Any]:
    """A SUCCESS response."""
    response: dict[str, Any] = {"status": 0, "result": result}
    if entries is not None:
        response["entries"] = entries
    return response


def batched_reset(caps: int = CAP_BATCHED) -> list[dict[str, Any]]:
    """The first work's reset with a batched host: DOORBELL_SET(INVALID), START, GUEST_ID."""
    return [ok(), {"status": SUCCESS_WITH_CAPABILITIES, "result": caps}, ok()]


def scenario(hv: list[dict[str, Any]], steps: list[str], **extra: Any) -> Scenario:
    doc = {"format": "vmballoon-scenario/1", "frames": 8192, "steps": steps, "hv": hv}
    doc.update(extra)
    return scenario_from_json(doc)


def both(sc: Scenario, variant: str = "fixed") -> Log:
    """The event log; the model's and the reference's must be equal."""
    expected = replay(sc, impl="model", variant=variant)
    got = replay(sc, impl="reference", variant=variant)
    assert got == expected, describe_difference(sc, expected, got)
    return expected


def commands(log: Log, *names: str) -> list[tuple[str, int]]:
    """(command, arg2) of every backdoor command named (arg2 is a batch's page count)."""
    return [(e["cmd"], e["arg2"]) for e in log["events"] if e["ev"] == "hv" and e["cmd"] in names]


def frees(log: Log) -> list[int]:
    return [e["pfn"] for e in log["events"] if e["ev"] == "free"]


VARIANTS = ["seed", "fixed"]


def inflated_to(size: int, then: list[int]) -> Scenario:
    """Inflate to ``size`` 4 KiB pages in the first work, then one work per target of ``then``.

    The host answers every LOCK / UNLOCK with the target in force (SUCCESS).
    """
    hv = [*batched_reset(), ok(size)]
    hv += [ok(size)] * -(-size // 512)
    for target in then:
        hv.append(ok(target))
        hv += [ok(target)] * 4
    return scenario(hv, ["work"] * (1 + len(then)))


@pytest.mark.parametrize(
    ("target", "size", "unlocked"),
    [
        (88, 600, []),  # 600 > 88 + 512 is false: no deflate
        (87, 600 - 2, [2]),  # 600 > 599: deflate while size - n >= 599: two pages
        (86, 600 - 3, [3]),
        (0, 0, [512, 88]),  # target 0: deflate everything (1126), no lower bound (947)
        (1, 512, [88]),  # target 1 > 0: the lower bound holds, down to 512 < 1 + 512
    ],
)
def test_deflate_hysteresis(target: int, size: int, unlocked: list[int]) -> None:
    """Lines 1126-1127 and 945-950: deflate only when size > target + 512, down to
    the first size below target + 512 (2 MiB worth of 4 KiB pages)."""
    log = both(inflated_to(600, [target]))
    assert log["final"]["size"] == size
    assert [n for _, n in commands(log, "BATCHED_UNLOCK")] == unlocked


@pytest.mark.parametrize(
    ("target", "locked"),
    [(600, []), (601, [1]), (599, [])],  # at the target, one above, one below (no deflate)
)
def test_inflate_stops_at_the_target(target: int, locked: list[int]) -> None:
    """Line 1124 (inflate iff size < target) and 833-835 (stop at size + n >= target)."""
    log = both(inflated_to(600, [target]))
    assert log["final"]["size"] == 600 + sum(locked)
    assert [n for _, n in commands(log, "BATCHED_LOCK")][2:] == locked


@pytest.mark.parametrize(
    ("target", "batches"),
    [(511, [511]), (512, [512]), (513, [512, 1]), (1024, [512, 512]), (1025, [512, 512, 1])],
)
def test_batches_of_exactly_512(target: int, batches: list[int]) -> None:
    """Lines 893-906: a batch is locked as soon as it holds batch_max_pages (512) pages;
    deflating to 0 unlocks in the same batches (956-964)."""
    log = both(inflated_to(target, [0]))
    assert [n for _, n in commands(log, "BATCHED_LOCK")] == batches
    assert [n for _, n in commands(log, "BATCHED_UNLOCK")] == batches
    assert log["final"]["size"] == 0


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    ("refused", "status"),
    [
        (15, ERROR_PPN_PINNED),
        (16, ERROR_PPN_PINNED),
        (17, ERROR_PPN_INVALID),
        (40, ERROR_PPN_PINNED),
    ],
)
def test_refused_pages_are_bounded(variant: str, refused: int, status: int) -> None:
    """Lines 660-672: a PINNED / INVALID page goes on the refused list while it holds
    fewer than VMW_BALLOON_MAX_REFUSED (16) pages, else it is freed at once; the
    refused list is freed when the inflation ends (921, 758-772)."""
    n = 40
    entries = [status] * refused + [0] * (n - refused)
    hv = [*batched_reset(), ok(n), ok(n, entries)]
    log = both(scenario(hv, ["work"]), variant)
    if variant == "seed":  # the batch names b->page, not the batch page: statuses unread
        assert log["final"]["size"] == n
        return
    kept = min(refused, 16)
    assert log["final"]["stats"]["refused_free"] == [kept, 0]
    assert log["final"]["size"] == n - refused
    assert log["final"]["n_refused"] == [0, 0]
    pfns = [e["pfn"] for e in log["events"] if e["ev"] == "alloc" and e["gfp"] != "kernel"]
    # the lock frees pages past the bound at once, then the release frees the refused list
    # (list_add: head first, the last refused page first)
    assert frees(log) == pfns[16:refused] + list(reversed(pfns[:kept]))


@pytest.mark.parametrize("status", [ERROR_PPN_NOTNEEDED, ERROR_RESET])
def test_not_needed_and_reset_pages_are_freed_not_refused(status: int) -> None:
    """Lines 660-672: NOTNEEDED and RESET statuses free the page; nothing is refused."""
    hv = [*batched_reset(), ok(20), ok(20, [status] * 3 + [0] * 17)]
    log = both(scenario(hv, ["work"]))
    assert log["final"]["stats"]["refused_free"] == [0, 0]
    assert log["final"]["size"] == 17
    assert len(frees(log)) == 3


def rate_scenario(ticks: int, target: int = 600) -> Scenario:
    """Allocations fail in the first three works (NOSLEEP, then CANSLEEP), then succeed."""
    hv = [*batched_reset()] + [ok(target)] * 3 + [ok(target)] * 3
    return scenario(hv, ["work"] * ticks, alloc=[True] + [False] * 6)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    ("ticks", "rate", "size"),
    [(1, 1024, 0), (2, 512, 0), (3, 512, 0), (4, 528, 512)],
)
def test_rate_floor_and_increase(variant: str, ticks: int, rate: int, size: int) -> None:
    """Lines 862-868: a failed CANSLEEP allocation halves rate_alloc, not below
    RATE_ALLOC_MIN (512): 2048 -> 1024 -> 512 -> 512.  Then, slow (slow_allocation_cycles
    > 0, 821-828), one inflation allocates at most rate_alloc = 512 pages, and with the
    allocations counted (fix count_allocations) raises the rate by 512 / 512 * 16
    (916-921).  The seed never counts allocations: no limit, no increase."""
    log = both(rate_scenario(ticks), variant)
    if variant == "seed" and ticks == 4:
        rate, size = 512, 600
    assert log["final"]["rate_alloc"] == rate
    assert log["final"]["size"] == size


@pytest.mark.parametrize("target", [2047, 2048, 2049, 2600])
def test_rate_ceiling(target: int) -> None:
    """Lines 916-921: after 2048+ allocations without error the rate is raised, but
    never above RATE_ALLOC_MAX (2048), where module init put it (1275)."""
    hv = [*batched_reset(), ok(target)] + [ok(target)] * 8
    log = both(scenario(hv, ["work"]))
    assert log["final"]["size"] == target
    assert log["final"]["rate_alloc"] == 2048


def rate_lock_fails() -> Scenario:
    """As :func:`rate_scenario` with 4 works, but the full batch's BATCHED_LOCK fails."""
    hv = [*batched_reset()] + [ok(600)] * 3 + [ok(600), {"status": 1, "result": 600}]
    return scenario(hv, ["work"] * 4, alloc=[True] + [False] * 6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_rate_not_raised_after_a_failed_lock(variant: str) -> None:
    """Line 916: the rate grows only after an inflation without error; a full batch whose
    lock fails (893-898) sets error and ends the loop, and its pages are freed (646-650)."""
    log = both(rate_lock_fails(), variant)
    assert log["final"]["rate_alloc"] == 512
    assert log["final"]["size"] == 0
    assert commands(log, "BATCHED_LOCK") == [("BATCHED_LOCK", 512)]


def refused_scenario(refused: int, status: int = ERROR_PPN_PINNED, n: int = 40) -> Scenario:
    entries = [status] * refused + [0] * (n - refused)
    return scenario([*batched_reset(), ok(n), ok(n, entries)], ["work"])


BOUNDARY_SCENARIOS: dict[str, Scenario] = {
    "hysteresis_88": inflated_to(600, [88]),
    "hysteresis_87": inflated_to(600, [87]),
    "inflate_601": inflated_to(600, [601]),
    "batches_513": inflated_to(513, [0]),
    "refused_17": refused_scenario(17),
    "rate_floor_increase": rate_scenario(4),
    "rate_lock_fails": rate_lock_fails(),
}
"""The scenarios above at their boundaries, for the encoding's conformance check."""


def two_sizes_scenario(target: int | None = None) -> tuple[Scenario, int]:
    """Works that bring ``rate_alloc`` to its floor (NOSLEEP and CANSLEEP allocations
    fail), slow works until ``slow_allocation_cycles`` runs out, then one work with 2 MiB
    pages (lines 821-828: not slow once the work has counted the cycles down to 0): 300 of
    them, a failed 2 MiB allocation, and 300 4 KiB pages to the target.
    Returns the scenario and the number of works before the last."""
    caps = CAP_BATCHED | CAP_BATCHED_2M
    hv = [*batched_reset(caps)]
    fail = [True] + [False] * 9  # the batch page, then three works of failures
    big = 10**6 if target is None else target
    for works in range(4, 12):
        prefix = scenario(hv + [ok(big)] * 400, ["work"] * works, alloc=fail, frames=200_000)
        log = both(prefix)
        if log["final"]["slow_allocation_cycles"] == 1:  # the next work decrements it to 0
            break
    calls = sum(1 for e in log["events"] if e["ev"] == "alloc")
    if target is None:  # the target the last work reaches with 300 + 300 pages
        return two_sizes_scenario(log["final"]["size"] + 300 * 512 + 300)
    alloc = fail + [True] * (calls - len(fail)) + [True] * 300 + [False]
    return scenario(
        hv + [ok(target)] * 400, ["work"] * (works + 1), alloc=alloc, frames=200_000
    ), works


@pytest.mark.parametrize("variant", VARIANTS)
def test_rate_raised_without_a_full_batch(variant: str) -> None:
    """Line 916: ``error`` starts at 0 (line 796) and only a full batch's lock sets it
    (893-898).  An inflation that locks 300 2 MiB pages when the next 2 MiB allocation
    fails (line 848, its result ignored), then 300 4 KiB pages in the tail lock (910-911),
    never fills a batch of 512: with the allocations counted (fix count_allocations),
    600 >= rate_alloc raises the rate by 600 // rate_alloc * 16 all the same."""
    sc, works = two_sizes_scenario()
    before = both(scenario_from_json({**sc.to_json(), "steps": ["work"] * works}), variant)
    log = both(sc, variant)
    last = log["events"][len(before["events"]) :]
    locks = [
        (e["cmd"], e["arg2"])
        for e in last
        if e["ev"] == "hv" and e["cmd"] in ("BATCHED_LOCK", "BATCHED_2M_LOCK")
    ]
    rate = before["final"]["rate_alloc"]
    if variant == "seed":  # no allocation is counted: no increase (and no 2 MiB pages)
        assert log["final"]["rate_alloc"] == rate
        return
    assert locks == [("BATCHED_2M_LOCK", 300), ("BATCHED_LOCK", 300)]
    assert 512 <= rate <= 600
    assert log["final"]["rate_alloc"] == rate + 600 // rate * 16


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("base", "sent"), [(2**32 - 2, True), (2**32 - 1, True), (2**32, False)])
def test_basic_commands_carry_pfns_up_to_2_32_minus_1(variant: str, base: int, sent: bool) -> None:
    """Lines 451-453 and 499-501: LOCK and UNLOCK take a 32-bit PFN; the frame 2**32 - 1
    is locked and unlocked, 2**32 is never sent.  One page inflated with a basic host,
    then deflated at target 0; the seed keeps the unsent page as ballooned (lines
    598-600: locked = -1 is not > 0), FIXED refuses it (fix lock_64bit_refused)."""
    hv = [ok(), ok(), ok(), ok(1), ok(1), ok(0), ok(0), ok(0)]
    log = both(scenario(hv, ["work", "work"], pfn_base=base, frames=4), variant)
    sent_pfns = [
        (e["cmd"], e["arg1"])
        for e in log["events"]
        if e["ev"] == "hv" and e["cmd"] in ("LOCK", "UNLOCK")
    ]
    assert sent_pfns == ([("LOCK", base), ("UNLOCK", base)] if sent else [])
    assert log["final"]["size"] == (1 if not sent and variant == "seed" else 0)


@pytest.mark.parametrize("variant", ["seed", "fixed"])
@pytest.mark.parametrize(("successes", "size"), [(2047, 2048), (2048, 2048), (2049, 2049)])
def test_nosleep_failure_pauses_once_rate_alloc_pages_are_allocated(
    variant: str, successes: int, size: int
) -> None:
    """Lines 881-889: a NOSLEEP allocation fails after ``successes`` pages; the inflation
    pauses there when ``allocations >= b->rate_alloc`` (2048, line 883), else it goes on
    with CANSLEEP pages at rate 2048 (lines 886-888), and stops once 2048 are allocated
    (line 903).  So 2047 -> 2048 pages (one CANSLEEP page), 2048 -> 2048 (paused
    exactly at the rate), 2049 -> 2049.  The seed never counts allocations: it never
    pauses and inflates to the target, 3000."""
    alloc = [True] + [True] * successes + [False]  # the batch page, the pages, the failure
    hv = [*batched_reset(), ok(3000)] + [ok(3000)] * 12
    log = both(scenario(hv, ["work"], alloc=alloc), variant)
    assert log["final"]["size"] == (3000 if variant == "seed" else size)


@pytest.mark.parametrize("variant", ["seed", "fixed"])
@pytest.mark.parametrize(
    ("totalram", "sent"), [(2**32 - 2, True), (2**32 - 1, True), (2**32, False)]
)
def test_get_target_needs_totalram_to_fit_in_32_bits(
    variant: str, totalram: int, sent: bool
) -> None:
    """Lines 418-424: GET_TARGET sends ``totalram_pages`` as its argument only when it fits
    in 32 bits (``limit != (u32)limit`` returns false, no command): 2**32 - 1 is sent,
    2**32 is not, and then the tick ends with no target read."""
    sc = scenario([*batched_reset(), ok(10)], ["work"], totalram_pages=totalram)
    log = both(sc, variant)
    limits = [e["arg1"] for e in log["events"] if e["ev"] == "hv" and e["cmd"] == "GET_TARGET"]
    assert limits == ([totalram] if sent else [])
