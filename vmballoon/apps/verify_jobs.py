"""The obligations of ``vmballoon verify``, and the board their results are recorded on.

Each obligation is a frozen dataclass: :meth:`Job.run` (in a worker process of its own)
returns its rows, :meth:`Job.crashed` the rows of a run that raised (a crash is a
failure, never "proved"), :meth:`Job.record` puts the rows on the :class:`Board` and
returns the obligations they make possible (the accelerated search once SEED's BMC is
done, the first divergences ahead of the per-defect searches).  To add an obligation:
write its dataclass here and return it from :func:`plan` (or from a ``record``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmballoon.core.variants import FIX_NAMES, FIXED, parse_variant
from vmballoon.proofs.check import (
    ACCEL_PROPS,
    DEEP_DEPTH,
    DEEP_TIMEOUT_FACTOR,
    ConformanceOutcome,
    Outcome,
    check_variant,
    conformance_outcome,
    deep,
    seed_open_for_acceleration,
    vacuity,
)
from vmballoon.proofs.defects import DefectRow, lines_of
from vmballoon.proofs.props import PROPERTIES
from vmballoon.proofs.status import Status

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
"""verify's exit codes (README, "The contract of each command")."""


@dataclass
class Setup:
    """What a verify run is asked to do (from its options)."""

    variants: list[str]
    props: list[str]
    necessity: bool
    per_defect: bool
    timeout: float
    depth: int
    jobs: int
    out: str | None
    complete_run: bool

    @staticmethod
    def of(args: argparse.Namespace) -> Setup:
        variants = ["seed", "fixed"] if args.variant == "all" else [args.variant]
        necessity = args.variant in ("all", "fixed") and not args.no_necessity
        return Setup(
            variants=variants,
            props=args.property or [*PROPERTIES, "progress"],
            necessity=necessity,
            per_defect="seed" in variants and not args.property,
            timeout=args.timeout,
            depth=args.depth,
            jobs=args.jobs,
            out=args.out,
            complete_run=args.variant == "all" and args.property is None and necessity,
        )


@dataclass
class Counter:
    """The progress counter ``[k/N]``, ``N`` fixed before the first job."""

    total: int
    done: int = 0

    def tick(self, line: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.total}] {line}", file=sys.stderr, flush=True)

    @staticmethod
    def note(line: str) -> None:
        """A line that is not a slot of its own (a divergence run ahead of its defect)."""
        print(f"       {line}", file=sys.stderr, flush=True)


@dataclass
class Verdict:
    """The exit code and why: ``reasons`` lists every row or check that fails the run."""

    code: int
    reasons: list[str] = field(default_factory=list)
    open_defects: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.code == EXIT_OK


@dataclass(frozen=True)
class Divergence:
    """Where SEED and SEED + ``fix`` first part (:func:`vmballoon.proofs.defects.
    divergence_job`'s answer, ``found``), computed ahead of the defect's search; None
    when the job crashed (``crash`` says how: the defect's search computes it itself)."""

    fix: str
    found: dict[str, Any] | None
    crash: str | None = None


Row = Outcome | DefectRow | ConformanceOutcome | Divergence
"""What an obligation returns: a result row, a defect row, a conformance report, or a
first divergence (not a row of its own: the defect's search takes it up)."""


@dataclass
class Board:
    """Everything a verify run has found so far, and what its scheduling waits for."""

    per_defect: bool
    necessity: bool
    timeout: float
    out: str | None
    results: list[Outcome] = field(default_factory=list)
    conformance: list[ConformanceOutcome] = field(default_factory=list)
    defects: dict[str, DefectRow] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)
    early: dict[str, dict[str, Any]] = field(default_factory=dict)
    early_pending: set[str] = field(default_factory=set)
    deep_pending: bool = False
    seed_done: bool = False
    planned: set[str] = field(default_factory=set)

    def add(self, rows: list[Row]) -> None:
        """File each row where it belongs (by its type)."""
        for row in rows:
            if isinstance(row, ConformanceOutcome):
                self.conformance.append(row)
            elif isinstance(row, DefectRow):
                self.defects[row.fix] = row
            elif isinstance(row, Outcome):
                self.results.append(row)

    def ready(self, fix: str) -> bool:
        """Whether the search for ``fix``'s defect can be planned: SEED's results, the
        FIXED-minus-``fix`` results it reads and the accelerated search are in."""
        fixed_minus = FIXED.without(fix).name
        nec_done = not self.necessity or any(r.variant == fixed_minus for r in self.results)
        return (
            self.seed_done and nec_done and not self.deep_pending and fix not in self.early_pending
        )

    def plan_defects(self) -> tuple[list[DefectRow], list[Job]]:
        """The defects that can be planned now: rows from SEED's own counterexamples, and
        the searches of the others."""
        from vmballoon.proofs.defects import plan_defect

        rows: list[DefectRow] = []
        jobs: list[Job] = []
        if not self.per_defect:
            return rows, jobs
        for fix in FIX_NAMES:
            if fix in self.planned or not self.ready(fix):
                continue
            self.planned.add(fix)
            row, search = plan_defect(
                fix, self.results, self.necessity, timeout=self.timeout, out=self.out
            )
            if row is not None:
                self.defects[fix] = row
                rows.append(row)
            elif search is not None:
                jobs.append(
                    DefectJob(
                        variant="seed",
                        timeout=float(search["timeout"]),
                        fix=fix,
                        props=tuple(search["props"]),
                        start=int(search["start"]),
                        depth=int(search["depth"]),
                        out=search["out"],
                        window=bool(search["window"]),
                        start_exact=bool(search["start_exact"]),
                        divergence=self.early.get(fix),
                    )
                )
        return rows, jobs


def error_row(prop: str, variant: str, kind: str, exc: BaseException) -> Outcome:
    """The row of an obligation that raised: ``error``, the exception its detail."""
    return Outcome(prop, variant, kind, Status.ERROR, 0.0, repr(exc), measured=False)


@dataclass(frozen=True)
class Job:
    """One obligation of a verify run (run in a fresh worker process)."""

    variant: str
    timeout: float

    def run(self) -> list[Row]:
        raise NotImplementedError

    def crashed(self, exc: BaseException) -> list[Row]:
        """The rows of a run that raised ``exc``."""
        return [error_row(self.name(), self.variant, "error", exc)]

    def name(self) -> str:
        """What the progress line calls the obligation."""
        return type(self).__name__

    def record(self, board: Board, rows: list[Row]) -> list[Job]:
        """Put ``rows`` on ``board``; the obligations this makes possible (queue front)."""
        board.add(rows)
        return []

    def counted(self) -> bool:
        """Whether the job has a slot of its own in the progress counter ``[k/N]``."""
        return True


@dataclass(frozen=True)
class VariantJob(Job):
    """Houdini for one variant, then (``bmc``) BMC for what it does not prove
    (:func:`vmballoon.proofs.check.check_variant`)."""

    props: tuple[str, ...] = ()
    depth: int = 0
    out: str | None = None
    bmc: bool = True
    tied: bool = True
    """False for a variant whose encoding no check ties to the model (FIXED minus a fix:
    no conformance, no totality): its "proved" rows say so (``Outcome.tied``)."""

    def run(self) -> list[Row]:
        out = Path(self.out) if self.out else None
        return list(
            check_variant(
                parse_variant(self.variant),
                list(self.props),
                timeout=self.timeout,
                depth=self.depth,
                out_dir=out,
                use_bmc=self.bmc,
            )
        )

    def crashed(self, exc: BaseException) -> list[Row]:
        kind = "bmc" if self.bmc else "induction"
        return [error_row(p, self.variant, kind, exc) for p in self.props]

    def name(self) -> str:
        return "variant"

    def record(self, board: Board, rows: list[Row]) -> list[Job]:
        if not self.tied:
            for r in rows:
                if isinstance(r, Outcome) and r.status == Status.PROVED:
                    r.tied = False
                    r.detail += (
                        "; proved, not tied to the model (no conformance or totality "
                        "check for this variant)"
                    )
        board.add(rows)
        if self.variant != "seed" or not self.bmc:
            return []
        board.seed_done = True
        follow: list[Job] = []
        if board.per_defect:  # ahead of the deep search: the longest chain
            from vmballoon.proofs.defects import plan_divergence

            for fix in FIX_NAMES:
                spec = plan_divergence(fix, board.results, timeout=self.timeout)
                if spec is not None:
                    board.early_pending.add(fix)
                    follow.append(
                        DivergenceJob(
                            variant="seed",
                            timeout=float(spec["timeout"]),
                            fix=fix,
                            props=tuple(spec["props"]),
                            depth=int(spec["depth"]),
                        )
                    )
        open_ = seed_open_for_acceleration(board.results)
        if open_:
            board.deep_pending = True
            follow.append(
                DeepJob(
                    variant="seed",
                    timeout=self.timeout,
                    props=tuple(open_),
                    depth=self.depth,
                    out=self.out,
                )
            )
        return follow


@dataclass(frozen=True)
class VacuityJob(Job):
    """``Init ∧ Inv`` satisfiable, every transition enabled, totality
    (:func:`vmballoon.proofs.check.vacuity`)."""

    def run(self) -> list[Row]:
        return [vacuity(parse_variant(self.variant), self.timeout)]

    def crashed(self, exc: BaseException) -> list[Row]:
        return [error_row("vacuity", self.variant, "vacuity", exc)]

    def name(self) -> str:
        return "vacuity"


@dataclass(frozen=True)
class ConformanceJob(Job):
    """The branch- and boundary-complete conformance of the encoding with the model."""

    def run(self) -> list[Row]:
        return [conformance_outcome(parse_variant(self.variant))]

    def crashed(self, exc: BaseException) -> list[Row]:
        return [
            ConformanceOutcome(
                self.variant,
                False,
                {"variant": self.variant, "ok": False, "problems": [f"crashed: {exc!r}"]},
            )
        ]

    def name(self) -> str:
        return "conformance"


@dataclass(frozen=True)
class DeepJob(Job):
    """The accelerated search (:func:`vmballoon.proofs.check.deep`) for the SEED properties
    over the allocation counters that plain BMC left open; its rows replace plain BMC's."""

    props: tuple[str, ...] = ()
    depth: int = 0
    out: str | None = None

    def run(self) -> list[Row]:
        out = Path(self.out) if self.out else None
        return list(
            deep(
                list(self.props),
                parse_variant(self.variant),
                depth=DEEP_DEPTH,
                timeout=self.timeout * DEEP_TIMEOUT_FACTOR,
                out_dir=out,
                plain_depth=self.depth,
            )
        )

    def crashed(self, exc: BaseException) -> list[Row]:
        return [error_row(p, self.variant, "accelerated", exc) for p in self.props]

    def name(self) -> str:
        return "deep search (accelerated)"

    def record(self, board: Board, rows: list[Row]) -> list[Job]:
        board.deep_pending = False
        new = {r.prop: r for r in rows if isinstance(r, Outcome)}
        for k, old in enumerate(board.results):
            if old.variant == "seed" and old.prop in new:
                new[old.prop].seconds += old.seconds
                board.results[k] = new[old.prop]
        return []


@dataclass(frozen=True)
class DivergenceJob(Job):
    """The first divergence of SEED and SEED + ``fix``, run ahead of the defect's search
    (:func:`vmballoon.proofs.defects.divergence_job`)."""

    fix: str = ""
    props: tuple[str, ...] = ()
    depth: int = 0

    def run(self) -> list[Row]:
        from vmballoon.proofs.defects import divergence_job

        found = divergence_job(
            {
                "fix": self.fix,
                "props": list(self.props),
                "depth": self.depth,
                "timeout": self.timeout,
            }
        )
        return [Divergence(self.fix, found)]

    def crashed(self, exc: BaseException) -> list[Row]:
        return [Divergence(self.fix, None, repr(exc))]

    def name(self) -> str:
        return f"divergence {self.fix}"

    def record(self, board: Board, rows: list[Row]) -> list[Job]:
        board.early_pending.discard(self.fix)
        for row in rows:
            if isinstance(row, Divergence) and row.found is not None:
                board.early[row.fix] = row.found
        return []

    def counted(self) -> bool:
        return False  # part of its defect's slot


@dataclass(frozen=True)
class DefectJob(Job):
    """The per-defect search (:func:`vmballoon.proofs.defects.defect_job`)."""

    fix: str = ""
    props: tuple[str, ...] = ()
    start: int = 0
    depth: int = 0
    out: str | None = None
    window: bool = True
    start_exact: bool = False
    divergence: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    def run(self) -> list[Row]:
        from vmballoon.proofs.defects import defect_job

        spec: dict[str, Any] = {
            "fix": self.fix,
            "props": list(self.props),
            "start": self.start,
            "depth": self.depth,
            "timeout": self.timeout,
            "out": self.out,
            "window": self.window,
            "start_exact": self.start_exact,
        }
        if self.divergence is not None:
            spec["divergence"] = self.divergence
        return [defect_job(spec)]

    def crashed(self, exc: BaseException) -> list[Row]:
        return [
            DefectRow(
                self.fix,
                lines_of(self.fix),
                None,
                None,
                Status.ERROR,
                0.0,
                "product",
                detail=repr(exc),
            )
        ]

    def name(self) -> str:
        return f"defect {self.fix}"


SECONDS: dict[str, float] = {
    "fixed-no_2m_without_batching": 10.6,
    "fixed-reset_needs_ops": 8.9,
    "fixed": 6.4,
    "fixed-lock_64bit_refused": 5.8,
    "fixed-batch_pfn": 4.9,
    "fixed-count_allocations": 4.9,
    "fixed-warn_status_frees": 4.3,
    "fixed-target_on_success": 2.2,
    "fixed-doorbell_set_status": 1.7,
    "vacuity": 0.3,
}
"""Seconds each obligation after the conformance checks took on the reference machine
(docs/performance.md; the vacuity check under ``vacuity``): only the order of
:func:`plan`'s queue rests on them, never a result."""


def plan(
    variants: list[str],
    props: list[str],
    timeout: float,
    depth: int,
    out: str | None,
    necessity: bool,
) -> list[Job]:
    """The obligations of a verify run known up front, the longest first.

    The longest chain first: the seed, then its deep search and the defect searches,
    which ``verify`` puts at the front of its queue as soon as the seed is done.  Then
    the independent obligations from the longest to the shortest (the conformance
    checks; the fix-necessity variants and FIXED's proof by :data:`SECONDS`; the
    vacuity check), so that the two workers end close together: a long
    obligation left to the end would run alone on one of them."""
    jobs: list[Job] = []
    for v in variants:
        if v != "fixed":  # the seed, or any other variant: Houdini, then BMC for the rest
            jobs.append(
                VariantJob(
                    variant=v, timeout=timeout, props=tuple(props), depth=depth, out=out, bmc=True
                )
            )
    jobs += [ConformanceJob(variant=v, timeout=timeout) for v in variants]
    rest: list[Job] = []
    if necessity:
        # the safety properties only: progress is checked on SEED and proved on FIXED; its
        # BMC on every FIXED-minus-one variant cost more than the rest of the table
        safety = tuple(n for n in props if n in PROPERTIES)
        rest += [
            VariantJob(
                variant=FIXED.without(n).name,
                timeout=timeout,
                props=safety,
                depth=depth,
                out=out,
                bmc=True,
                tied=False,
            )
            for n in FIX_NAMES
        ]
    if "fixed" in variants:
        rest.append(
            VariantJob(
                variant="fixed",
                timeout=timeout,
                props=tuple(props),
                depth=depth,
                out=out,
                bmc=False,
            )
        )
        rest.append(VacuityJob(variant="fixed", timeout=timeout))
    return jobs + sorted(rest, key=_expected, reverse=True)  # stable: ties keep their order


def _expected(job: Job) -> float:
    """The job's :data:`SECONDS` (0 for one not listed)."""
    return SECONDS.get("vacuity" if isinstance(job, VacuityJob) else job.variant, 0.0)


def slots(jobs: list[Job], variants: list[str], props: list[str], per_defect: bool) -> int:
    """``N`` of the progress counter ``[k/N]``, fixed before the first job runs: the jobs
    planned up front, the accelerated search (done or not needed) when SEED's BMC looks
    at a property over the allocation counters, and one per defect."""
    deep_slot = "seed" in variants and any(p in ACCEL_PROPS for p in props)
    return (
        sum(1 for j in jobs if j.counted())
        + (1 if deep_slot else 0)
        + (len(FIX_NAMES) if per_defect else 0)
    )


__all__ = [
    "SECONDS",
    "Board",
    "ConformanceJob",
    "DeepJob",
    "DefectJob",
    "Divergence",
    "DivergenceJob",
    "Job",
    "Row",
    "VacuityJob",
    "VariantJob",
    "error_row",
    "plan",
    "slots",
]
