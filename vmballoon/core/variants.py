"""Variants of the driver: the seed as written, and fixes that can be applied one by one.

``SEED`` is ``vmw_balloon.c`` exactly as written, defects included.  Each
:class:`Fix` repairs one defect found while reading the C; it names the lines
it changes and the consequence it prevents.  ``FIXED`` applies all of them.
The model and the reference both take a :class:`Variant` and must agree on
every variant, so a fix is specified here once, in words, and implemented
twice, independently.

``UPSTREAM_STABLE`` (named ``upstream-stable``) is what upstream fixed in 2018
and the 4.9.y and 4.14.y stable trees (and the vendor kernels built on them)
ship with the 1.5.0.0-k driver: ``batch_pfn`` ("fix inflation with batching"),
``lock_64bit_refused`` ("fix inflation of 64-bit GFNs"),
``no_2m_without_batching`` ("do not use 2MB without batching") and
``doorbell_set_status`` ("VMCI_DOORBELL_SET does not check status"); the fifth
stable fix, "fix VMCI use when balloon built into kernel" (``late_initcall``),
changes no behaviour the spec models.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fix:
    """One repair of the seed."""

    name: str
    lines: str
    defect: str
    change: str
    prevents: str


FIXES: tuple[Fix, ...] = (
    Fix(
        name="count_allocations",
        lines="791-926 (vmballoon_inflate: 794, 883, 903, 916)",
        defect=(
            "`allocations` is declared and compared (lines 883, 903, 916) but never "
            "incremented, so `allocations >= rate` never holds: the rate limit the "
            "comments at lines 802-815 promise never applies, a NOSLEEP failure "
            "never pauses, and `rate_alloc` never grows back."
        ),
        change=(
            "`allocations++` right after a successful allocation (after the "
            "`if (!page)` block, before `add_page` at line 892)."
        ),
        prevents="an unthrottled inflation that drains guest memory while under pressure",
    ),
    Fix(
        name="batch_pfn",
        lines="470, 518 (vmballoon_send_batched_lock / _unlock)",
        defect=(
            "batched commands pass `page_to_pfn(b->page)` as the batch's PFN; in "
            "batched mode `b->page` is NULL (or a stale basic-mode page), so the "
            "host is never told where the batch page is."
        ),
        change=("pass the PFN of the batch page (`PHYS_PFN(virt_to_phys(b->batch_page))`)."),
        prevents=(
            "the host ignoring every batch while the driver reads its own, unchanged "
            "statuses as success: pages counted as ballooned that the host never locked"
        ),
    ),
    Fix(
        name="no_2m_without_batching",
        lines="344-347 (vmballoon_send_start)",
        defect=(
            "`supported_page_sizes = 2` whenever the host offers BATCHED_2M_CMDS, even "
            "without BATCHED_CMDS; the basic ops then lock a 2 MiB allocation as one "
            "4 KiB page (line 596 says this 'can never happen')."
        ),
        change="use 2 MiB pages only when both BATCHED_CMDS and BATCHED_2M_CMDS are set.",
        prevents="2 MiB blocks on the 4 KiB list, freed at order 0: wrong-order frees and leaks",
    ),
    Fix(
        name="lock_64bit_refused",
        lines="592, 598-600 (vmballoon_lock_page)",
        defect=(
            "`vmballoon_send_lock_page` returns -1 when the PFN does not fit in 32 "
            "bits, but the caller tests `locked > 0`, so the page is added to the "
            "balloon and counted although no LOCK was sent."
        ),
        change=(
            "test `locked != 0` (a -1 is refused like any failure) and initialise "
            "`hv_status` to VMW_BALLOON_SUCCESS so the refused path never reads it "
            "uninitialised."
        ),
        prevents="balloon pages the host never locked, which can then never be unlocked",
    ),
    Fix(
        name="warn_status_frees",
        lines="677-679 (vmballoon_lock_batched_page)",
        defect=(
            "a per-page status outside the handled ones hits `WARN_ON_ONCE` and the "
            "page is dropped: on no list and never freed."
        ),
        change="after the warning, free the page like a page the host does not need.",
        prevents="a frame leaked for every unexpected per-page status",
    ),
    Fix(
        name="reset_needs_ops",
        lines="1078-1092 (vmballoon_reset)",
        defect=(
            "when START succeeds with neither BATCHED_CMDS nor BASIC_CMDS, `ops` keeps "
            "its old value (NULL after module init, or batched ops whose batch page "
            "pop just freed) and `reset_required` is cleared."
        ),
        change="return with `reset_required` still set when no command set was negotiated.",
        prevents="a call through NULL `ops` or a write through a NULL batch page",
    ),
    Fix(
        name="doorbell_set_status",
        lines="1040-1052 (vmballoon_vmci_init)",
        defect=(
            "the status of VMCI_DOORBELL_SET is discarded and the result register "
            "is tested instead (`error` is the macro's result argument)."
        ),
        change=(
            "test the command's status: a non-SUCCESS status is a failure; the result is ignored."
        ),
        prevents=(
            "a doorbell the guest believes set although the host refused it (missed "
            "wake-ups), and a working doorbell torn down for a stray result value"
        ),
    ),
    Fix(
        name="target_on_success",
        lines="457, 475-478, 505, 523-526 (LOCK / UNLOCK senders)",
        defect=(
            "LOCK and UNLOCK write the result register into `b->target` whatever the "
            "status; on a failed command the result is not a target."
        ),
        change="update `b->target` only when the command's status is SUCCESS.",
        prevents="inflating or deflating towards a value the host never asked for",
    ),
)

FIX_NAMES: tuple[str, ...] = tuple(f.name for f in FIXES)
FIXES_BY_NAME: dict[str, Fix] = {f.name: f for f in FIXES}


@dataclass(frozen=True)
class Variant:
    """A set of applied fixes."""

    fixes: frozenset[str]

    def __post_init__(self) -> None:
        unknown = sorted(self.fixes - set(FIX_NAMES))
        if unknown:
            raise ValueError(f"unknown fix {unknown[0]!r}")

    def has(self, name: str) -> bool:
        """Whether fix ``name`` is applied."""
        return name in self.fixes

    @property
    def name(self) -> str:
        """``seed``, ``fixed``, a named variant (``upstream-stable``), ``fixed-<fix>`` or a
        comma-separated list of fixes; :func:`parse_variant` reads each back."""
        if not self.fixes:
            return "seed"
        if self.fixes == frozenset(FIX_NAMES):
            return "fixed"
        for name, fixes in NAMED.items():
            if self.fixes == fixes:
                return name
        missing = set(FIX_NAMES) - self.fixes
        if len(missing) == 1:
            return f"fixed-{missing.pop()}"
        return ",".join(n for n in FIX_NAMES if n in self.fixes)

    def without(self, name: str) -> Variant:
        """This variant with fix ``name`` removed."""
        return Variant(self.fixes - {name})


UPSTREAM_STABLE_FIXES: frozenset[str] = frozenset(
    {"batch_pfn", "lock_64bit_refused", "no_2m_without_batching", "doorbell_set_status"}
)
"""The fixes upstream made in 2018 and the 4.9.y and 4.14.y stable trees carry."""
NAMED: dict[str, frozenset[str]] = {"upstream-stable": UPSTREAM_STABLE_FIXES}
"""Variants with a name of their own (besides ``seed``, ``fixed`` and ``fixed-<fix>``)."""

SEED = Variant(frozenset())
FIXED = Variant(frozenset(FIX_NAMES))
UPSTREAM_STABLE = Variant(UPSTREAM_STABLE_FIXES)


def parse_variant(text: str) -> Variant:
    """``seed``, ``fixed``, ``upstream-stable``, ``fixed-<fix>`` (all fixes but one) or
    ``fix,fix,...``."""
    text = text.strip()
    if text == "seed":
        return SEED
    if text == "fixed":
        return FIXED
    if text in NAMED:
        return Variant(NAMED[text])
    if text.startswith("fixed-"):
        name = text[len("fixed-") :]
        if name not in FIX_NAMES:
            raise ValueError(f"unknown fix {name!r} (known: {', '.join(FIX_NAMES)})")
        return FIXED.without(name)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("empty variant")
    for n in names:
        if n not in FIX_NAMES:
            raise ValueError(
                f"unknown variant or fix {n!r} (use seed, fixed, "
                f"{', '.join(NAMED)}, fixed-<fix> or a list of: {', '.join(FIX_NAMES)})"
            )
    return Variant(frozenset(names))
