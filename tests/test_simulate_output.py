"""``vmballoon simulate``'s picture and its behaviour when stopped: a crashed run drawn
over the ticks it ran, coinciding series told apart, the batch page labelled, a small
balloon zoomed, and SIGINT / SIGTERM ending in a summary marked partial and exit 130."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vmballoon.apps.simulate import parse_capabilities, parse_schedule, summary_json, summary_text
from vmballoon.apps.simulation import SimConfig, SimResult, simulate
from vmballoon.core.variants import parse_variant

MIB = 256
GIB = 1 << 18

matplotlib = pytest.importorskip("matplotlib")


def _run(
    ram: int,
    schedule: str,
    ticks: int,
    variant: str = "fixed",
    caps: str = "0x1e",
    pressure: float = 0.0,
) -> SimResult:
    return simulate(
        SimConfig(
            ram,
            parse_schedule(schedule),
            ticks,
            parse_variant(variant),
            parse_capabilities(caps),
            pressure,
        )
    )


def _texts(fig: object) -> list[str]:
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text)]  # type: ignore[attr-defined]


@pytest.fixture
def drawn() -> Iterator[list[object]]:
    import matplotlib.pyplot as plt

    figs: list[object] = []
    yield figs
    for fig in figs:
        plt.close(fig)  # type: ignore[arg-type]


def test_a_run_that_crashes_in_its_first_tick_is_drawn_over_that_tick(
    drawn: list[object],
) -> None:
    from vmballoon.apps.simplot import draw

    result = _run(GIB, "0:512MiB", 40, "seed", "basic,2m")  # 2 MiB pages, basic ops
    assert result.crashed_at == 0 and len(result.records) == 1
    fig = draw(result)
    drawn.append(fig)
    low = fig.axes[-1]
    assert low.get_xlim()[1] < 5  # not the 40 ticks asked for
    texts = _texts(fig)
    assert any("CRASHED in tick 0 (list_corrupt): 1 of 40 ticks ran" in t for t in texts)
    # each value written beside its point; equal values share a label
    assert "given up: 1.00 GiB" in texts and "target: 512.00 MiB" in texts
    assert "b->size = held: 2.00 MiB" in texts
    assert "given up: 262,144 frames" in texts and "held: 512 frames" in texts


def test_coinciding_series_are_told_apart(drawn: list[object]) -> None:
    from vmballoon.apps.simplot import draw

    result = _run(64 * MIB, "0:32MiB,12:0", 24)
    fig = draw(result)
    drawn.append(fig)
    top = fig.axes[0]
    legend = top.get_legend()
    assert legend is not None
    title = legend.get_title().get_text()
    assert "coincide" in title and "markers alternate" in title
    lines = {line.get_label(): line for line in top.get_lines()}
    size, given, held = (
        lines["b->size (driver's count)"],
        lines["frames the guest gave up (allocated)"],
        lines["frames the host holds locked"],
    )
    assert len({size.get_marker(), given.get_marker(), held.get_marker()}) == 3
    assert len({size.get_linestyle(), given.get_linestyle(), held.get_linestyle()}) == 3
    assert [x.get_markevery() for x in (size, given, held)] == [(0, 3), (1, 3), (2, 3)]


def test_the_batch_page_left_after_deflation_is_labelled(drawn: list[object]) -> None:
    from vmballoon.apps.simplot import draw

    result = _run(64 * MIB, "0:32MiB,12:0", 24)
    assert result.records[-1].allocated == result.records[-1].batch_page == 1
    fig = draw(result)
    drawn.append(fig)
    texts = _texts(fig)
    assert any(t.startswith("1 frame: the batch page") for t in texts)
    assert "frames given up (end), the batch page included" in texts
    basic = _run(64 * MIB, "0:32MiB,12:0", 24, caps="basic")  # no batch page
    assert basic.records[-1].allocated == 0
    other = draw(basic)
    drawn.append(other)
    assert not any("batch page" in t for t in _texts(other))


def test_a_small_balloon_under_pressure_gets_a_linear_zoom(drawn: list[object]) -> None:
    from vmballoon.apps.simplot import draw

    result = _run(8 * GIB, "0:6GiB,20:0", 30, pressure=0.05)
    peak = max(r.size for r in result.records)
    assert MIB <= peak < 0.1 * 6 * GIB  # held small: failed allocations end each inflation
    fig = draw(result)
    drawn.append(fig)
    assert len(fig.axes) == 3
    zoom = fig.axes[1]
    assert zoom.get_ylabel() == "MiB (zoom)"
    assert zoom.get_ylim()[1] >= peak / MIB  # the balloon is within the zoom panel
    plain = draw(_run(64 * MIB, "0:32MiB,12:0", 24))
    drawn.append(plain)
    assert len(plain.axes) == 2  # no zoom when the balloon fills the top panel


def test_an_interrupted_simulation_keeps_its_whole_ticks_and_says_so() -> None:
    config = SimConfig(64 * MIB, parse_schedule("0:32MiB,12:0"), 24)
    seen: list[int] = []

    def progress(done: int, total: int, size: int) -> None:
        seen.append(done)
        if done == 5:
            raise KeyboardInterrupt

    result = simulate(config, progress, stop_on_interrupt=True)
    assert result.interrupted and not result.complete
    assert [r.tick for r in result.records] == [0, 1, 2, 3, 4]
    assert summary_text(result).startswith("INTERRUPTED after 5 of 24 ticks")
    doc = summary_json(result)
    assert doc["complete"] is False and doc["ticks"] == 5 and doc["ticks_asked"] == 24
    with pytest.raises(KeyboardInterrupt):
        simulate(config, progress)  # without stop_on_interrupt it propagates
    assert summary_json(simulate(config))["complete"] is True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_command_with_a_partial_summary_and_exit_130(
    tmp_path: Path, sig: int
) -> None:
    picture = tmp_path / "sim.png"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vmballoon",
            "simulate",
            "--ram",
            "64GiB",
            "--variant",
            "seed",
            "--targets",
            "0:48GiB",
            "--ticks",
            "20000",
            "--json",
            "--plot",
            str(picture),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    time.sleep(6)  # imports, module init, a few ticks (each allocates 262,144 frames)
    assert proc.poll() is None
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("simulate: interrupted after ") and "of 20000 ticks" in last
    doc = json.loads(stdout)
    assert doc["complete"] is False and doc["ticks_asked"] == 20000 and doc["ticks"] < 20000
    assert picture.exists() and not [p for p in tmp_path.iterdir() if p.suffix == ".partial"]
