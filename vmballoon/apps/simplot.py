"""The picture of a simulation, per tick: what the driver says and what really happened.

Top panel (GiB, linear): the host's target and ``b->size`` as the driver counts it,
beside the frames the guest has given up (allocated from its page allocator and
not returned) and the frames the host holds locked.  Bottom panel (frames, log
scale, so that 1 and 12 million show together): the same two, and the frames the
driver allocated during the tick (the seed's allocate-and-free churn, which ends
each tick back near 0).  Each tick's values are drawn at that tick: the target in
force during tick t and the state at the end of tick t share the abscissa t.

Resets (ticks in which the driver sent START) are dotted vertical lines; ticks in
which a property of :mod:`model.properties` failed are red crosses, with the
properties named in the legend.  Uses matplotlib's Agg backend (no display
needed); the format follows the file's extension.
"""

from __future__ import annotations

from vmballoon.apps.simulation import SimResult

GIB_PAGES = 1 << 18


def plot(result: SimResult, path: str) -> None:
    """Write the picture of ``result`` to ``path`` (``.png`` or ``.svg``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = result.records
    c = result.config
    ticks = [r.tick for r in records]
    target = [r.target / GIB_PAGES for r in records]
    size = [r.size / GIB_PAGES for r in records]
    allocated = [r.allocated / GIB_PAGES for r in records]
    held = [r.held / GIB_PAGES for r in records]

    fig, (ax, low) = plt.subplots(2, 1, figsize=(9, 7.2), dpi=110, sharex=True,
                                  gridspec_kw={"height_ratios": [3, 2]})  # fmt: skip
    try:
        ax.plot(ticks, target, color="tab:green", alpha=0.35, linewidth=7,
                drawstyle="steps-mid", label="target (host schedule)")  # fmt: skip
        ax.plot(ticks, size, color="tab:blue", linewidth=1.8, marker=".",
                label="b->size (driver's count)")  # fmt: skip
        ax.plot(ticks, allocated, color="tab:purple", linewidth=1.4, linestyle="--",
                marker="^", markersize=3, label="frames the guest gave up (allocated)")  # fmt: skip
        ax.plot(ticks, held, color="tab:brown", linewidth=1.4, linestyle="-.",
                marker="s", markersize=3, label="frames the host holds locked")  # fmt: skip
        for axis in (ax, low):
            for i, t in enumerate(r.tick for r in records if r.reset):
                axis.axvline(t, color="tab:orange", linestyle=":", linewidth=1.5,
                             label="reset (START)" if i == 0 and axis is ax else None)  # fmt: skip
            if result.crashed_at is not None:
                axis.axvline(result.crashed_at, color="black", linewidth=2,
                             label="guest crashed" if axis is ax else None)  # fmt: skip
        bad = [r for r in records if r.violations]
        if bad:
            names = sorted({n for r in bad for n in r.violations})
            ax.scatter([r.tick for r in bad], [r.size / GIB_PAGES for r in bad], marker="x",
                       color="tab:red", s=40, zorder=3,
                       label="property violated: " + ", ".join(names))  # fmt: skip
        ax.set_ylabel("GiB")
        top = max([*size, *target, *allocated, *held, c.ram_pages / GIB_PAGES * 0.05])
        ax.set_ylim(bottom=0, top=top * 1.12)
        ax.set_title(
            f"{c.variant.name}: {c.ram_pages / GIB_PAGES:g} GiB guest, "
            f"host capabilities {c.capabilities:#x}"
            + (f", pressure {c.pressure:g}" if c.pressure else "")
        )
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=7)

        def positive(values: list[int]) -> list[float]:
            return [float(v) if v > 0 else float("nan") for v in values]

        low.plot(ticks, positive([r.churn for r in records]), color="tab:gray", linewidth=0,
                 marker="o", markersize=3, label="frames allocated during the tick")  # fmt: skip
        low.plot(ticks, positive([r.allocated for r in records]), color="tab:purple",
                 linestyle="--", marker="^", markersize=3, label="frames given up (end)")
        low.plot(ticks, positive([r.held for r in records]), color="tab:brown", linestyle="-.",
                 marker="s", markersize=3, label="frames the host holds (end)")  # fmt: skip
        low.set_yscale("log")
        low.set_ylim(bottom=0.5, top=max(2.0, c.ram_pages * 2.0))
        low.set_ylabel("4 KiB frames (log; 0 not drawn)")
        low.set_xlabel("tick (one vmballoon_work each; values at the end of the tick)")
        low.set_xlim(-0.02 * c.ticks - 0.5, c.ticks + 0.5)
        low.grid(True, alpha=0.3, which="both")
        low.legend(loc="upper right", fontsize=7)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
