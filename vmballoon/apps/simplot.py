"""The picture of a simulation: balloon size and target (GiB) against ticks.

Resets (ticks in which the driver sent START) are dashed vertical lines;
ticks in which a property of :mod:`model.properties` failed are red crosses on
the size curve, with the properties named in the legend.  Uses matplotlib's
Agg backend (no display needed); the format follows the file's extension.
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
    # time runs along x: tick t spans [t, t+1); the target in force during tick t is
    # drawn from t, the size at the end of tick t at t+1 (it starts at 0 at module load)
    ticks = [r.tick for r in records]
    end = ticks[-1] + 1 if ticks else 1
    target = [r.target / GIB_PAGES for r in records]
    size_x = [0, *(t + 1 for t in ticks)]
    size = [0.0, *(r.size / GIB_PAGES for r in records)]

    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    try:
        ax.step([*ticks, end], [*target, target[-1] if target else 0.0], where="post",
                color="tab:green", alpha=0.35, linewidth=7, solid_capstyle="butt",
                label="target (host schedule)")  # fmt: skip
        ax.step(size_x, size, where="post", color="tab:blue", linewidth=1.8,
                label="balloon size (end of tick)")  # fmt: skip
        resets = [r.tick for r in records if r.reset]
        for i, t in enumerate(resets):
            ax.axvline(t, color="tab:orange", linestyle=":", linewidth=1.5,
                       label="reset (START)" if i == 0 else None)  # fmt: skip
        bad = [r for r in records if r.violations]
        if bad:
            names = sorted({n for r in bad for n in r.violations})
            ax.scatter([r.tick + 1 for r in bad], [r.size / GIB_PAGES for r in bad], marker="x",
                       color="tab:red", s=40, zorder=3,
                       label="property violated: " + ", ".join(names))  # fmt: skip
        if result.crashed_at is not None:
            ax.axvline(result.crashed_at + 1, color="black", linewidth=2, label="guest crashed")
        ax.set_xlabel("ticks (one vmballoon_work each)")
        ax.set_ylabel("GiB")
        ax.set_ylim(bottom=0, top=max([*size, *target, c.ram_pages / GIB_PAGES * 0.05]) * 1.12)
        ax.set_xlim(-0.02 * c.ticks - 0.5, c.ticks + 0.5)
        ax.set_title(
            f"{c.variant.name}: {c.ram_pages / GIB_PAGES:g} GiB guest, "
            f"host capabilities {c.capabilities:#x}"
            + (f", pressure {c.pressure:g}" if c.pressure else "")
        )
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
