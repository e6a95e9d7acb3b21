"""The picture of a simulation, per tick: what the driver says and what really happened.

Top panel (GiB, linear): the host's target and ``b->size`` as the driver counts it,
beside the frames the guest has given up (allocated from its page allocator and
not returned) and the frames the host holds locked.  Where these three agree (the
fixed driver: they differ by the batch page at most) their lines coincide: each
series has its own marker and line style, the markers are staggered over the ticks
(one series in three at each tick) and the legend's title says that they coincide.

Middle panel, only when a series stays below a tenth of the top panel's scale but
reaches 1 MiB (a
balloon held small by memory pressure, the 4 KiB pages of a run that crashed in its
first tick): those series again, in MiB or GiB, linear, so that they are read off
an axis and not only off the log panel.

Bottom panel (frames, log scale, so that 1 and 12 million show together): the same
two, and the frames the driver allocated during the tick (the seed's
allocate-and-free churn, which ends each tick back near 0).  When the balloon is
empty and one frame is still given up, that frame is the batch page (the driver
keeps it while batched commands are in use): it is labelled.

Each tick's values are drawn at that tick: the target in force during tick t and the
state at the end of tick t share the abscissa t.  The x axis covers the ticks that
ran: a run that crashed or was interrupted is drawn over its own ticks (the title
says crashed in which tick and why, or interrupted after how many of how many),
with each value written beside its point when there are at most three ticks.

Resets (ticks in which the driver sent START) are dotted vertical lines; ticks in
which a property of :mod:`vmballoon.model.properties` failed are red crosses, with the
properties named in the legend.  Uses matplotlib's Agg backend (no display
needed); the format follows the file's extension, and the file is written through
a temporary file renamed into place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmballoon.apps.simulation import SimResult, TickRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure

GIB_PAGES = 1 << 18
MIB_PAGES = 1 << 8
ZOOM_BELOW = 0.1
"""A series whose maximum is below this fraction of the top panel's (and at least 1 MiB:
a few frames are read off the log panel) gets the zoom panel."""
LABEL_TICKS = 3
"""Runs of at most this many ticks have their values written beside the points."""
COINCIDE = 0.001
"""Series that differ by at most this fraction of the RAM (or one frame) coincide."""

SIZE_STYLE: dict[str, Any] = {
    "color": "tab:blue",
    "linewidth": 2.4,
    "marker": "o",
    "markersize": 4,
    "label": "b->size (driver's count)",
}
GIVEN_STYLE: dict[str, Any] = {
    "color": "tab:purple",
    "linewidth": 1.4,
    "linestyle": "--",
    "marker": "^",
    "markersize": 5,
    "label": "frames the guest gave up (allocated)",
}
HELD_STYLE: dict[str, Any] = {
    "color": "tab:brown",
    "linewidth": 1.0,
    "linestyle": "-.",
    "marker": "s",
    "markersize": 4,
    "label": "frames the host holds locked",
}


def _coincide(records: list[TickRecord], ram: int) -> bool:
    """Whether size, frames given up and frames held agree at every tick (and are not all 0)."""
    slack = max(1.0, COINCIDE * ram)
    return any(r.size for r in records) and all(
        abs(r.size - r.allocated) <= slack and abs(r.size - r.held) <= slack for r in records
    )


def _batch_page_tick(records: list[TickRecord]) -> TickRecord | None:
    """The first tick whose one frame given up is the batch page alone (the balloon
    empty, nothing held)."""
    for r in records:
        if r.size == 0 and r.held == 0 and r.allocated == r.batch_page == 1:
            return r
    return None


LABELS = (("target", "target"), ("size", "b->size"), ("allocated", "given up"), ("held", "held"))


def _label_values(
    axis: Any,
    records: list[TickRecord],
    keys: set[str],
    scale: int,
    fmt: Any,
    only: bool = False,
) -> None:
    """Write each value beside its point (runs of a few ticks): on the zoom panel the
    series of ``keys`` (``only``), elsewhere the others; equal values share one label."""
    for r in records:
        groups: dict[int, list[str]] = {}
        for key, name in LABELS:
            if (key in keys) == only:
                groups.setdefault(getattr(r, key), []).append(name)
        for value, names in groups.items():
            axis.annotate(
                f"{' = '.join(names)}: {fmt(value)}",
                (r.tick, value / scale),
                xytext=(14, 0),
                textcoords="offset points",
                fontsize=7,
                va="center",
            )


def _short_title(result: SimResult) -> str:
    c = result.config
    title = f"{c.variant.name}: {c.ram_pages / GIB_PAGES:g} GiB guest, host capabilities "
    title += f"{c.capabilities:#x}" + (f", pressure {c.pressure:g}" if c.pressure else "")
    ran = len(result.records)
    if result.crashed_at is not None:
        why = ", ".join(sorted(result.faults)) or "fault"
        title += f"\nguest CRASHED in tick {result.crashed_at} ({why}): "
        title += f"{ran} of {c.ticks} ticks ran"
    elif result.interrupted:
        title += f"\nINTERRUPTED after {ran} of {c.ticks} ticks (partial run)"
    return title


def plot(result: SimResult, path: str) -> None:
    """Write the picture of ``result`` to ``path`` (``.png`` or ``.svg``), through a
    temporary file renamed into place."""
    import matplotlib.pyplot as plt

    fig = draw(result)
    try:
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            fig.savefig(tmp, format=target.suffix[1:].lower())
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        plt.close(fig)


@dataclass
class _Plot:
    """What the panels of one picture share: the run, its series per tick (in frames
    and in GiB), the top panel's scale, the series the zoom panel shows, and how
    markers are drawn (staggered over many ticks, large over a few)."""

    result: SimResult
    ticks: list[int]
    series: dict[str, list[int]]
    gib: dict[str, list[float]]
    top: float
    zoomed: list[str]
    stagger: bool
    big: bool

    @property
    def records(self) -> list[TickRecord]:
        return self.result.records

    def styled(self, style: dict[str, Any], offset: int) -> dict[str, Any]:
        """``style`` with its markers staggered (``offset`` of 3) or enlarged."""
        out = dict(style)
        if self.stagger:
            out["markevery"] = (offset, 3)
        if self.big:  # a few points: large, the first drawn largest so that none hides another
            out["markersize"] = {0: 12, 1: 9, 2: 6}[offset]
        return out


def _layout(result: SimResult) -> _Plot:
    """The series of ``result`` and how they are laid out."""
    records = result.records
    c = result.config
    ran = len(records)
    series = {
        "target": [r.target for r in records],
        "size": [r.size for r in records],
        "allocated": [r.allocated for r in records],
        "held": [r.held for r in records],
    }
    gib = {k: [v / GIB_PAGES for v in vals] for k, vals in series.items()}
    top = max([*(v for vals in gib.values() for v in vals), c.ram_pages / GIB_PAGES * 0.05])
    zoomed = [
        k
        for k in ("size", "allocated", "held")
        if MIB_PAGES <= max(series[k], default=0) < ZOOM_BELOW * top * GIB_PAGES
    ]
    return _Plot(
        result,
        [r.tick for r in records],
        series,
        gib,
        top,
        zoomed,
        stagger=ran > 6,
        big=ran <= LABEL_TICKS,
    )


def _draw_top(p: _Plot, ax: Any) -> None:
    """The top panel's series, in GiB: target, size, frames given up and held."""
    from vmballoon.apps.simulation import fmt_size

    ax.plot(
        p.ticks,
        p.gib["target"],
        color="tab:green",
        alpha=0.35,
        linewidth=7,
        drawstyle="steps-mid",
        marker="_" if p.big else None,
        markersize=30,
        label="target (host schedule)",
    )
    ax.plot(p.ticks, p.gib["size"], **p.styled(SIZE_STYLE, 0))
    ax.plot(p.ticks, p.gib["allocated"], **p.styled(GIVEN_STYLE, 1))
    ax.plot(p.ticks, p.gib["held"], **p.styled(HELD_STYLE, 2))
    if p.big:
        _label_values(ax, p.records, set(p.zoomed), GIB_PAGES, fmt_size)


def _draw_events(p: _Plot, axes: Any, ax: Any) -> None:
    """On every panel, the resets and the crash as vertical lines (named in the legend
    of the top panel ``ax``)."""
    result = p.result
    for axis in axes:
        for i, t in enumerate(r.tick for r in p.records if r.reset):
            axis.axvline(
                t,
                color="tab:orange",
                linestyle=":",
                linewidth=1.5,
                zorder=0,
                label="reset (START)" if i == 0 and axis is ax else None,
            )
        if result.crashed_at is not None:
            axis.axvline(
                result.crashed_at,
                color="black",
                linewidth=1.2,
                alpha=0.5,
                linestyle="--",
                zorder=0,
                label="guest crashed" if axis is ax else None,
            )


def _finish_top(p: _Plot, ax: Any) -> None:
    """The top panel's violations, axis, title and legend."""
    bad = [r for r in p.records if r.violations]
    if bad:
        names = sorted({n for r in bad for n in r.violations})
        ax.scatter(
            [r.tick for r in bad],
            [r.size / GIB_PAGES for r in bad],
            marker="x",
            color="tab:red",
            s=40,
            zorder=3,
            label="property violated: " + ", ".join(names),
        )
    ax.set_ylabel("GiB")
    ax.set_ylim(bottom=0, top=p.top * 1.12)
    ax.set_title(_short_title(p.result), fontsize=10)
    ax.grid(True, alpha=0.3)
    note = None
    if _coincide(p.records, p.result.config.ram_pages):
        note = (
            "b->size, frames given up and frames held coincide\n"
            "(within 0.1% of the RAM): markers alternate ticks"
        )
    ax.legend(loc="upper right", fontsize=7, title=note, title_fontsize=7)


def _draw_zoom(p: _Plot, mid: Any) -> None:
    """The zoom panel: the small series again, in MiB or GiB, linear."""
    from vmballoon.apps.simulation import fmt_size

    peak = max(max(p.series[k]) for k in p.zoomed)
    unit, scale = ("GiB", GIB_PAGES) if peak >= GIB_PAGES else ("MiB", MIB_PAGES)
    styles = {"size": (SIZE_STYLE, 0), "allocated": (GIVEN_STYLE, 1), "held": (HELD_STYLE, 2)}
    for key in p.zoomed:
        style, offset = styles[key]
        mid.plot(p.ticks, [v / scale for v in p.series[key]], **p.styled(style, offset))
    if p.big:
        _label_values(mid, p.records, set(p.zoomed), scale, fmt_size, only=True)
    mid.set_ylim(bottom=0, top=peak / scale * 1.25)
    mid.set_ylabel(f"{unit} (zoom)")
    mid.grid(True, alpha=0.3)
    mid.legend(
        loc="upper right",
        fontsize=7,
        title="below a tenth of the top panel's scale: zoomed",
        title_fontsize=7,
    )


def _positive(values: list[int]) -> list[float]:
    """``values`` with 0 not drawn (NaN) on a log scale."""
    return [float(v) if v > 0 else float("nan") for v in values]


def _draw_low(p: _Plot, low: Any) -> None:
    """The bottom panel's series, in frames: churn, given up and held, with the batch
    page labelled."""
    low.plot(
        p.ticks,
        _positive([r.churn for r in p.records]),
        color="tab:gray",
        linewidth=0,
        marker="o",
        markersize=6 if p.big else 3,
        label="frames allocated during the tick",
    )
    batch = _batch_page_tick(p.records)
    given = p.styled(GIVEN_STYLE, 1)
    given["label"] = "frames given up (end)" + (", the batch page included" if batch else "")
    low.plot(p.ticks, _positive(p.series["allocated"]), **given)
    held = p.styled(HELD_STYLE, 2)
    held["label"] = "frames the host holds (end)"
    low.plot(p.ticks, _positive(p.series["held"]), **held)
    if p.big:
        for r in p.records:
            for name, value in (("given up", r.allocated), ("held", r.held)):
                if value > 0:
                    low.annotate(
                        f"{name}: {value:,} frames",
                        (r.tick, value),
                        xytext=(14, 0),
                        textcoords="offset points",
                        fontsize=7,
                        va="center",
                    )
    if batch is not None:
        low.annotate(
            "1 frame: the batch page\n(kept while batched commands are in use)",
            (batch.tick, 1),
            xytext=(10, 28),
            textcoords="offset points",
            fontsize=7,
            arrowprops={"arrowstyle": "->", "color": "tab:purple"},
        )


def _finish_low(p: _Plot, low: Any) -> None:
    """The bottom panel's log scale, axes (the x axis over the ticks that ran) and
    legend."""
    from matplotlib.ticker import MaxNLocator

    result, c = p.result, p.result.config
    low.set_yscale("log")
    low.set_ylim(bottom=0.5, top=max(2.0, c.ram_pages * 2.0))
    low.set_ylabel("4 KiB frames (log; 0 not drawn)")
    low.set_xlabel("tick (one vmballoon_work each; values at the end of the tick)")
    ran = len(p.records)
    last = c.ticks - 1 if result.complete and result.crashed_at is None else max(ran - 1, 0)
    pad = 1.0 if last < 4 else 0.5 + 0.02 * last
    low.set_xlim(-pad, last + (4.0 if p.big else pad))
    low.xaxis.set_major_locator(MaxNLocator(integer=True))
    low.grid(True, alpha=0.3, which="both")
    low.legend(loc="upper right", fontsize=7)


def draw(result: SimResult) -> Figure:
    """The picture of ``result`` (the caller closes it with ``pyplot.close``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = _layout(result)
    rows = 3 if p.zoomed else 2
    ratios = [3, 2, 2] if p.zoomed else [3, 2]
    fig, axes = plt.subplots(
        rows,
        1,
        figsize=(9, 9.6 if p.zoomed else 7.2),
        dpi=110,
        sharex=True,
        gridspec_kw={"height_ratios": ratios},
    )
    ax, low = axes[0], axes[-1]
    try:
        _draw_top(p, ax)
        _draw_events(p, axes, ax)
        _finish_top(p, ax)
        if p.zoomed:
            _draw_zoom(p, axes[1])
        _draw_low(p, low)
        _finish_low(p, low)
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    return fig
