"""``vmballoon simulate``: the cooperative host, memory pressure, the simulation, its CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NoReturn

import pytest

from vmballoon.apps.simulate import (
    add_simulate_parser,
    cmd_simulate,
    parse_capabilities,
    parse_schedule,
    parse_size,
)
from vmballoon.apps.simulation import SimConfig, SimResult, in_band, initial_state, simulate
from vmballoon.core.env import AllocFail, Env
from vmballoon.core.host import CooperativeHost
from vmballoon.core.protocol import (
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BATCHED_2M,
    CAP_SIGNALLED_WAKEUP,
    CAPABILITIES,
    CMD_BATCHED_2M_LOCK,
    CMD_BATCHED_LOCK,
    CMD_BATCHED_UNLOCK,
    CMD_GET_TARGET,
    CMD_GUEST_ID,
    CMD_LOCK,
    CMD_START,
    CMD_UNLOCK,
    CMD_VMCI_DOORBELL_SET,
    ERROR_CMD_INVALID,
    ERROR_PPN_INVALID,
    ERROR_PPN_LOCKED,
    ERROR_PPN_UNLOCKED,
    NULL_PFN,
    SUCCESS_WITH_CAPABILITIES,
)
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import SEED, parse_variant
from vmballoon.model.machine import enter, run_to_idle

MIB = 256  # pages
GIB = 1 << 18


def host(frames: int = 1 << 16, caps: int = CAPABILITIES) -> CooperativeHost:
    """A started host for a guest of ``frames`` frames, target 100 from tick 0, 50 from 5."""
    h = CooperativeHost.create(0, frames, ((0, 100), (5, 50)), caps)
    _, h = h.answer(CMD_START, CAPABILITIES, 0, None)
    return h


def entry(pfn: int) -> int:
    return pfn << 12


# -- the cooperative host -------------------------------------------------------------------


def test_start_grants_what_both_sides_have_and_forgets_held_frames() -> None:
    h = CooperativeHost.create(0, 1024, ((0, 10),), CAP_BASIC | CAP_BATCHED)
    r, h = h.answer(CMD_START, CAPABILITIES, 0, None)
    assert (r.status, r.result) == (SUCCESS_WITH_CAPABILITIES, CAP_BASIC | CAP_BATCHED)
    r, h = h.answer(CMD_LOCK, 7, 0, None)
    assert r.status == 0 and h.held == ((7, 8),)
    r, h = h.answer(CMD_START, 0, 0, None)  # START(0), as vmballoon_exit sends it
    assert (r.status, r.result) == (SUCCESS_WITH_CAPABILITIES, 0)
    assert h.held == () and h.negotiated == 0 and h.starts == 2


def test_guest_id_doorbell_and_scheduled_target() -> None:
    h = host()
    assert h.answer(CMD_GUEST_ID, 1, 0, None)[0].status == 0
    assert h.answer(CMD_VMCI_DOORBELL_SET, 0, 1, None)[0].status == 0
    assert h.answer(CMD_GET_TARGET, 1 << 16, 0, None)[0].result == 100
    assert h.at_tick(4).target() == 100
    assert h.at_tick(5).answer(CMD_GET_TARGET, 0, 0, None)[0].result == 50
    assert CooperativeHost.create(0, 10, ((3, 9),)).target() == 0  # before the schedule


def test_basic_lock_and_unlock() -> None:
    h = host(frames=1024)
    r, h = h.answer(CMD_LOCK, 10, 0, None)
    assert (r.status, r.result) == (0, 100)  # every lock answers the target
    r, h2 = h.answer(CMD_LOCK, 10, 0, None)
    assert r.status == ERROR_PPN_LOCKED and h2.refused == 1
    assert h.answer(CMD_LOCK, 1024, 0, None)[0].status == ERROR_PPN_INVALID  # not guest RAM
    assert h.answer(CMD_UNLOCK, 11, 0, None)[0].status == ERROR_PPN_UNLOCKED
    r, h = h.answer(CMD_UNLOCK, 10, 0, None)
    assert r.status == 0 and h.held == ()


def test_commands_not_negotiated_are_invalid() -> None:
    h = host(caps=CAP_BATCHED)
    assert h.answer(CMD_LOCK, 10, 0, None)[0].status == ERROR_CMD_INVALID
    h = h.with_batch_page(0)
    r, _ = h.answer(CMD_BATCHED_2M_LOCK, 0, 1, (entry(512),))
    assert r.status == ERROR_CMD_INVALID
    assert h.answer(99, 0, 0, None)[0].status == ERROR_CMD_INVALID


def test_batched_commands_need_the_batch_page() -> None:
    h = host().with_batch_page(3)
    batch = (entry(10), entry(11))
    for arg1, shown in ((NULL_PFN, batch), (4, batch), (3, None)):
        r, h2 = h.answer(CMD_BATCHED_LOCK, arg1, 2, shown)
        assert (r.status, r.result) == (ERROR_PPN_INVALID, 100)
        assert h2.held == () and h2.refused == 2
    r, h = h.answer(CMD_BATCHED_LOCK, 3, 2, batch)
    assert r.status == 0 and r.entries is None  # all locked: the batch is left as written
    assert h.held == ((10, 12),)


def test_batched_per_page_statuses() -> None:
    h = host(frames=4096).with_batch_page(0)
    _, h = h.answer(CMD_BATCHED_LOCK, 0, 1, (entry(10),))
    r, h = h.answer(CMD_BATCHED_LOCK, 0, 3, (entry(10), entry(12), entry(5000)))
    assert r.status == 0 and r.entries == (ERROR_PPN_LOCKED, 0, ERROR_PPN_INVALID)
    assert h.held == ((10, 11), (12, 13)) and h.refused == 2
    r, h = h.answer(CMD_BATCHED_UNLOCK, 0, 2, (entry(12), entry(13)))
    assert r.entries == (0, ERROR_PPN_UNLOCKED) and h.held == ((10, 11),)
    # num_pages bounds what the host reads
    r, _ = h.answer(CMD_BATCHED_UNLOCK, 0, 1, (entry(10), entry(13)))
    assert r.entries is None


def test_batched_2m_pages_are_aligned_blocks() -> None:
    h = host(frames=4096).with_batch_page(0)
    r, h = h.answer(CMD_BATCHED_2M_LOCK, 0, 3, (entry(512), entry(1024), entry(100)))
    assert r.entries == (0, 0, ERROR_PPN_INVALID)
    assert h.held == ((512, 1536),) and h.held_frames() == 1024


def test_env_routes_commands_to_the_host_and_tells_it_the_batch_page() -> None:
    env = Env.from_scenario(Scenario(steps=(), frames=64))._replace(host=host(frames=64))
    pfn, env = env.alloc(0, "kernel")
    assert pfn == 0 and env.host is not None and env.host.batch_pfn == 0
    _, env = env.alloc(0, "nosleep")
    assert env.host is not None and env.host.batch_pfn == 0  # only the "kernel" allocation
    r, env = env.hv(CMD_BATCHED_LOCK, 0, 1, (entry(1),))
    assert r.status == 0 and env.host is not None and env.host.held == ((1, 2),)
    assert env.events()[-1] == {
        "ev": "hv",
        "cmd": "BATCHED_LOCK",
        "arg1": 0,
        "arg2": 1,
        "status": 0,
        "result": 100,
    }


# -- memory pressure --------------------------------------------------------------------------


def test_alloc_fail_is_deterministic_and_near_its_rate() -> None:
    p = AllocFail(0.25, 7)
    draws = [p.fails(i) for i in range(4000)]
    assert draws == [AllocFail(0.25, 7).fails(i) for i in range(4000)]
    assert draws != [AllocFail(0.25, 8).fails(i) for i in range(4000)]
    assert 800 < sum(draws) < 1200
    assert not any(AllocFail(0.0, 1).fails(i) for i in range(100))
    assert all(AllocFail(1.0, 1).fails(i) for i in range(100))


def test_alloc_script_takes_precedence_over_pressure() -> None:
    env = Env.from_scenario(Scenario(steps=(), frames=8, alloc=(True,)))
    env = env._replace(alloc_fail=AllocFail(1.0, 0))
    first, env = env.alloc(0, "nosleep")
    second, env = env.alloc(0, "nosleep")
    assert first == 0 and second is None


# -- simulations ------------------------------------------------------------------------------


def run(ram: int, schedule: str, ticks: int, variant: str = "fixed", **kw: object) -> SimResult:
    config = SimConfig(
        ram_pages=ram,
        schedule=parse_schedule(schedule),
        ticks=ticks,
        variant=parse_variant(variant),
        **kw,  # type: ignore[arg-type]
    )
    return simulate(config)


@pytest.mark.parametrize(
    "caps", [CAPABILITIES, CAP_BASIC | CAP_BATCHED, CAP_BASIC | CAP_SIGNALLED_WAKEUP]
)
def test_fixed_reaches_its_targets_and_empties(caps: int) -> None:
    ram = 64 * MIB if caps & CAP_BATCHED else 8 * MIB
    schedule = f"0:{ram // 2},6:{ram // 8},12:{ram // 4 * 3},18:0"
    result = run(ram, schedule, 24, capabilities=caps)
    assert all(t.reached_tick is not None for t in result.targets), result.targets
    assert result.targets[0].ticks_needed == 1  # no pressure: one work tick inflates all
    assert result.violations == {}
    assert result.final["size"] == 0 and result.final["host_held_frames"] == 0
    assert result.final["free_frames"] == ram - (1 if caps & CAP_BATCHED else 0)  # batch page
    assert result.pages_refused == 0 and not result.failed_commands
    assert [r.tick for r in result.records if r.reset] == [0]
    scheduled = CooperativeHost.create(0, ram, parse_schedule(schedule))
    assert all(r.target == scheduled.at_tick(r.tick).target() for r in result.records)


def test_seed_with_batching_never_inflates_batch_pfn() -> None:
    result = run(64 * MIB, "0:32MiB,10:0", 15, "seed", capabilities=CAP_BASIC | CAP_BATCHED)
    assert result.targets[0].reached_tick is None
    assert all(r.size == 0 for r in result.records)
    # every batch named the wrong PFN, the host refused it whole; the driver freed the pages
    assert result.commands["BATCHED_LOCK"] == result.failed_commands["BATCHED_LOCK"] == 10
    assert result.pages_refused == 10 * 512
    assert result.final["host_held_frames"] == 0
    # the batch names the wrong page (protocol) and the balloon misses a target that a
    # cooperative host kept (progress: a refused unnamed batch is still cooperative)
    assert set(result.violations) == {"protocol", "progress"}
    assert result.violations["protocol"].first_tick == 0
    assert result.violations["protocol"].ticks == 10
    assert result.violations["progress"].first_tick == 0
    # the seed with only that fix reaches it; all fixes but that one do not
    caps = CAP_BASIC | CAP_BATCHED
    only_fix = run(64 * MIB, "0:32MiB,10:0", 15, "batch_pfn", capabilities=caps)
    assert only_fix.targets[0].reached_tick == 0
    all_but = run(64 * MIB, "0:32MiB,10:0", 15, "fixed-batch_pfn", capabilities=caps)
    assert all_but.targets[0].reached_tick is None


def test_seed_2m_without_batching_eats_memory_and_crashes() -> None:
    result = run(16 * MIB, "0:4MiB", 3, "seed", capabilities=CAP_BASIC | CAP_BATCHED_2M)
    assert result.crashed_at == 0 and result.final["crashed"]
    assert "no_crash" in result.violations
    assert result.final["free_frames"] == 0  # 2 MiB blocks counted as 4 KiB pages


@pytest.mark.parametrize(
    ("variant", "caps"),
    [
        ("fixed", CAP_BASIC | CAP_SIGNALLED_WAKEUP),
        ("seed", CAP_BASIC | CAP_SIGNALLED_WAKEUP),
        ("seed", CAP_BASIC | CAP_BATCHED),
        ("fixed", CAPABILITIES),
        ("seed", CAP_BASIC | CAP_BATCHED_2M),
    ],
)
def test_merged_spans_find_what_single_steps_find(variant: str, caps: int) -> None:
    config = SimConfig(
        ram_pages=4 * MIB,
        schedule=((0, 3 * MIB), (3, MIB), (5, 0)),
        ticks=7,
        variant=parse_variant(variant),
        capabilities=caps,
        pressure=0.1,
        pressure_seed=3,
    )
    fast, slow = simulate(config), simulate(config, merge_spans=False)
    assert [(r.size, r.violations) for r in fast.records] == [
        (r.size, r.violations) for r in slow.records
    ]
    assert fast.violations == slow.violations


def test_pressure_is_deterministic_and_visible() -> None:
    a = run(64 * MIB, "0:32MiB,20:0", 25, pressure=0.2, pressure_seed=5)
    b = run(64 * MIB, "0:32MiB,20:0", 25, pressure=0.2, pressure_seed=5)
    assert a.alloc_failures > 0 and a.alloc_failures == b.alloc_failures
    assert [r.size for r in a.records] == [r.size for r in b.records]
    assert a.targets[-1].reached_tick is not None  # deflating needs no allocation
    assert a.violations == {}


def test_simulation_starts_like_module_init() -> None:
    config = SimConfig(ram_pages=1024, schedule=((0, 512),), ticks=1, variant=SEED)
    state = run_to_idle(enter(initial_state(config), "work"))
    assert state.env.host is not None and state.env.host.starts == 1
    assert state.drv.target == 512


def test_in_band() -> None:
    assert in_band(0, 0) and not in_band(1, 0)
    assert in_band(100, 100) and in_band(612, 100) and not in_band(613, 100)
    assert not in_band(99, 100)


def test_plot_files(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from vmballoon.apps.simplot import plot

    result = run(16 * MIB, "0:8MiB,4:0", 6, "seed", capabilities=CAP_BASIC | CAP_BATCHED)
    for name in ("out.png", "out.svg"):
        path = tmp_path / name
        plot(result, str(path))
        assert path.stat().st_size > 1000
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "out.svg").read_bytes()[:1000]


# -- parsing and the command -------------------------------------------------------------------


def test_parse_size() -> None:
    assert parse_size("8GiB") == 8 * GIB
    assert parse_size("8G") == 8 * GIB
    assert parse_size("512 MiB") == 512 * MIB
    assert parse_size("1.5gib") == 3 * GIB // 2
    assert parse_size("4KiB") == 1
    assert parse_size("1000") == 1000
    assert parse_size("0") == 0
    for bad in ("8GB", "x", "1.5", "-1GiB", "2KiB", "1.0001GiB", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)


def test_parse_schedule() -> None:
    assert parse_schedule("0:8GiB, 30:2GiB,60:0") == ((0, 8 * GIB), (30, 2 * GIB), (60, 0))
    for bad, words in (
        ("0:8GiB,0:1GiB", "ticks must increase"),
        ("5:1GiB,3:0", "ticks must increase"),
        ("8GiB", "expected tick:size"),
        ("a:1GiB", "not an integer"),
        ("-1:0", "negative"),
        ("0:8GB", "binary"),
        ("", "empty schedule"),
        ("0:16TiB", "32-bit"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            parse_schedule(bad)


def test_parse_capabilities() -> None:
    assert parse_capabilities("0x1e") == CAPABILITIES
    assert parse_capabilities("30") == CAPABILITIES
    assert parse_capabilities("basic,batched,2m,doorbell") == CAPABILITIES
    assert parse_capabilities("Basic, signalled_wakeup") == CAP_BASIC | CAP_SIGNALLED_WAKEUP
    with pytest.raises(argparse.ArgumentTypeError, match="unknown capability 'turbo'"):
        parse_capabilities("basic,turbo")


class _Raising(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def parser() -> argparse.ArgumentParser:
    p = _Raising(prog="vmballoon")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Raising)
    add_simulate_parser(sub)
    return p


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--ram", "lots"], "bad size"),
        (["--targets", "0:1GiB,0:2GiB"], "ticks must increase"),
        (["--capabilities", "warp"], "unknown capability"),
        (["--pressure", "2"], "bad rate"),
        (["--variant", "best"], "unknown variant"),
        (["--ticks", "0"], "positive"),
        (["--plot", "out.pdf"], ".png or .svg"),
        (["--plot", "/nonexistent-folder/out.png"], "does not exist"),
    ],
)
def test_bad_arguments_are_one_line_errors(argv: list[str], words: str) -> None:
    with pytest.raises(ValueError, match=words) as info:
        parser().parse_args(["simulate", *argv])
    assert "\n" not in str(info.value)


def test_a_plot_into_a_folder_or_a_missing_folder_is_refused_before_the_run(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys
    import time

    folder = tmp_path / "pic.png"
    folder.mkdir()
    for target, words in ((folder, "is a directory"), (tmp_path / "no" / "p.png", "not exist")):
        started = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "vmballoon",
                "simulate",
                "--ram",
                "64GiB",
                "--targets",
                "0:48GiB,40:0",
                "--plot",
                str(target),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr
        assert "simulate: tick" not in proc.stderr  # refused before the first tick
        assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--ram", "1GiB", "--targets", "0:2GiB"], "exceeds the RAM"),
        (["--ram", "0"], "at least one"),
        (["--ram", "16TiB"], "at most 16 TiB"),
        (["--targets", "0:1GiB,100:0", "--ticks", "50"], "never comes into force"),
        (["--pressure-seed", "5"], "add --pressure"),
        (["--pressure", "0", "--pressure-seed", "5"], "add --pressure"),
    ],
)
def test_inconsistent_arguments_are_usage_errors(argv: list[str], words: str) -> None:
    from vmballoon.apps.argtypes import UsageError

    args = parser().parse_args(["simulate", *argv])
    with pytest.raises(UsageError, match=words) as info:
        cmd_simulate(args)
    assert "\n" not in str(info.value)


def test_command_json_and_plain_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim.png"
    args = parser().parse_args(
        [
            "simulate",
            "--ram",
            "64MiB",
            "--targets",
            "0:32MiB,8:0",
            "--ticks",
            "12",
            "--json",
            "--plot",
            str(out),
        ]
    )
    assert args.func is cmd_simulate
    assert cmd_simulate(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert [t["ticks_needed"] for t in summary["targets"]] == [1, 1]
    assert summary["violations"] == {}
    assert summary["commands"]["BATCHED_2M_LOCK"] == 1
    assert len(summary["series"]["size"]) == 12
    # stderr is not a terminal here: a few plain progress lines, no carriage returns
    lines = captured.err.splitlines()
    assert 1 <= len(lines) <= 5 and "\r" not in captured.err
    assert lines[-2].startswith("simulate: tick 12/12")
    assert lines[-1] == f"simulate: picture written to {out}"
    assert out.stat().st_size > 0
    assert len(summary["series"]["allocated"]) == len(summary["series"]["host_held"]) == 12


def test_the_default_schedule_runs_with_fewer_ticks(capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["simulate", "--ram", "64MiB", "--ticks", "3", "--json"])
    assert cmd_simulate(args) == 0  # its entry at tick 30 is not the user's: no refusal
    assert json.loads(capsys.readouterr().out)["ticks"] == 3


def test_command_text_summary(capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(
        [
            "simulate",
            "--ram",
            "64MiB",
            "--variant",
            "seed",
            "--capabilities",
            "basic,batched",
            "--targets",
            "0:32MiB,8:0",
            "--ticks",
            "10",
        ]
    )
    assert cmd_simulate(args) == 1  # a property was violated
    text = capsys.readouterr().out
    assert "not reached" in text
    assert "protocol" in text and "BATCHED_LOCK" in text


def test_records_show_what_the_guest_gave_up_and_what_the_host_holds() -> None:
    """2 MiB pages with the basic commands (the seed's no_2m_without_batching): the
    driver counts 32 pages, the guest gave up 32 * 512 frames, the host locked 32."""
    over = run(64 * MIB, "0:32MiB", 3, "seed", capabilities=CAP_BASIC | CAP_BATCHED_2M)
    first = over.records[0]
    assert first.size == 32 and first.held == 32 and first.allocated == 32 * 512
    churn = run(64 * MIB, "0:32MiB", 3, "seed")  # batched locks name a NULL page
    assert all(r.size == 0 and r.held == 0 and r.allocated <= 1 for r in churn.records)
    assert all(r.churn >= 8192 for r in churn.records)  # allocated and freed every tick
    fixed = run(64 * MIB, "0:32MiB,2:0", 4, "fixed")
    # the values of tick t are those at the end of tick t: the target of tick 0 is reached
    assert [r.size for r in fixed.records][:2] == [8192, 8192]
    assert fixed.records[0].held == fixed.records[0].allocated - 1 == 8192  # + batch page
    assert fixed.records[2].size == 0


def test_plot_draws_each_tick_at_that_tick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.axes import Axes

    from vmballoon.apps import simplot

    drawn: dict[str, tuple[list[float], list[float]]] = {}
    original = Axes.plot

    def spy(self: Axes, x: list[float], y: list[float], *args: object, **kw: object) -> object:
        drawn[str(kw.get("label"))] = (list(x), list(y))
        return original(self, x, y, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Axes, "plot", spy)
    result = run(64 * MIB, "0:32MiB,2:0", 4, "fixed")
    simplot.plot(result, str(tmp_path / "p.png"))
    size_x, size_y = drawn["b->size (driver's count)"]
    assert size_x == [0, 1, 2, 3] and size_y[0] == 8192 / simplot.GIB_PAGES
    assert drawn["target (host schedule)"][0] == size_x
    assert "frames the host holds locked" in drawn
    assert "frames the guest gave up (allocated)" in drawn
