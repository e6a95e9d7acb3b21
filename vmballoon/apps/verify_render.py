"""What ``vmballoon verify`` prints for a reader, and the results table of its JSON.

The progress lines (stderr, one counter ``[k/N]`` whose ``N`` is fixed up front), the
tables (stdout): a time only where it was measured, the assumptions once as a numbered
list the proved cells refer to (``proved [A1,A3]``), NULL for a null PFN and hex next to
decimal for PFNs, statuses and capabilities, and for each finding the command that shows
it step by step.  :func:`results_table` renders the README's results table from
``spec/verify-results.json`` (``python -m vmballoon.apps.verify_render``).
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmballoon.apps.cexreplay import C_WORDS
from vmballoon.apps.verify_jobs import (
    Board,
    DeepJob,
    DefectJob,
    Divergence,
    DivergenceJob,
    Job,
    Row,
    VariantJob,
)
from vmballoon.core.assumptions import BY_NAME
from vmballoon.core.variants import FIX_NAMES, FIXED
from vmballoon.proofs.check import ACCEL_PROPS, ConformanceOutcome, Outcome, conjuncts
from vmballoon.proofs.defects import DefectRow
from vmballoon.proofs.props import PROPERTIES
from vmballoon.proofs.status import Status

if TYPE_CHECKING:
    from vmballoon.apps.verify_jobs import Counter, Setup, Verdict

# -- numbers as the C reads them ------------------------------------------------------------

_NULL = re.compile(r"\b(PFN|frame|page|batch page) None\b")
_HEX = re.compile(r"\b(PFN|frame|page|status|capabilities|result|answered) (\d+)\b")


def readable(message: str) -> str:
    """``message`` with NULL for a null PFN and hex next to each PFN, status and
    capability (``PFN 50331648 (0x3000000)``)."""
    text = _NULL.sub(lambda m: f"{m.group(1)} NULL", message)
    return _HEX.sub(lambda m: f"{m.group(1)} {m.group(2)} ({int(m.group(2)):#x})", text)


def replay_command(scenario: str, variant: str) -> str:
    """The command that shows a finding transition by transition."""
    extra = [] if variant == "seed" else ["--variant", variant]
    return shlex.join(["vmballoon", "replay", scenario, *extra, "--format", "table"])


# -- progress -------------------------------------------------------------------------------


def parted(fix: str, div: Divergence) -> str:
    """What a first-divergence job (:func:`vmballoon.proofs.defects.divergence_job`) found."""
    if div.found is None:  # crashed: the defect's search computes it itself
        return f"crashed: {div.crash}"
    first = div.found["first"]
    if first is None:
        return "none (" + "; ".join(div.found["notes"]) + ")"
    return f"SEED and SEED + {fix} part at transition {first[0] + 1}"


def _statuses(rows: list[Row]) -> str:
    parts = []
    for r in rows:
        if isinstance(r, Outcome):
            parts.append(f"{r.prop}={r.status}")
        elif isinstance(r, ConformanceOutcome):
            parts.append(f"conformance={r.status}")
    return ", ".join(parts)


def progress(counter: Counter, board: Board, job: Job, rows: list[Row]) -> None:
    """One line per finished obligation on stderr (a divergence run ahead: a note)."""
    if isinstance(job, DivergenceJob):
        for r in rows:
            if isinstance(r, Divergence):
                counter.note(f"seed divergence {job.fix}: {parted(job.fix, r)}")
        return
    if isinstance(job, DefectJob):
        what = ", ".join(
            f"{r.status} {r.prop or ''}".strip() for r in rows if isinstance(r, DefectRow)
        )
        counter.tick(f"seed defect {job.fix}: {what}")
        return
    if isinstance(job, DeepJob):
        counter.tick(f"seed deep search (accelerated): {_statuses(rows)}")
        return
    counter.tick(f"{job.variant} {job.name()}: {_statuses(rows)}")
    if (
        isinstance(job, VariantJob)
        and job.variant == "seed"
        and job.bmc
        and any(p in ACCEL_PROPS for p in job.props)
        and not board.deep_pending
    ):
        counter.tick(
            "seed deep search (accelerated): not needed (nothing over the allocation "
            "counters left open)"
        )


def c_line(summary: dict[str, Any]) -> None:
    """How many counterexamples the C replayed (stderr)."""
    print(
        f"[C] {summary['replayed']} counterexamples replayed on the compiled driver "
        f"in {summary['seconds']} s"
        if summary["compiler"]
        else "[C] no C compiler: the counterexamples are not replayed on the C",
        file=sys.stderr,
        flush=True,
    )


# -- the report -----------------------------------------------------------------------------


class Assumptions:
    """The assumptions of the proved rows, numbered once (``A1``, ``A2``, ...)."""

    def __init__(self, rows: list[Outcome]) -> None:
        self.names: list[str] = []
        for r in rows:
            if r.status == Status.PROVED:
                self.names += [n for n in r.assumptions if n not in self.names]

    def refs(self, r: Outcome) -> str:
        nums = [f"A{self.names.index(n) + 1}" for n in r.assumptions if n in self.names]
        return f"[{','.join(nums)}]" if nums else ""

    def lines(self) -> list[str]:
        if not self.names:
            return []
        out = ["assumptions the proofs rest on (vmballoon/core/assumptions.py):"]
        for k, n in enumerate(self.names, 1):
            text = " ".join(BY_NAME[n].text.split()) if n in BY_NAME else "(not described)"
            out.append(f"  A{k} {n}: {text}")
        return out


def cell(r: Outcome | None, notes: Assumptions) -> str:
    """A status cell: ``violated@7 (1.2s)``, ``no-cex≤14``, ``proved [A1,A2]``; the time
    only where it is the row's own."""
    if r is None:
        return "-"
    st = str(r.status)
    if r.status in (Status.VIOLATED, Status.UNCONFIRMED) and r.depth is not None:
        st += f"@{r.depth}"
    elif r.status == Status.NO_CEX and r.depth is not None:
        st += f"≤{r.depth}"  # no counterexample up to that depth: bounded, not proved
    if r.status == Status.PROVED:
        st += (" " + notes.refs(r)) if notes.refs(r) else ""
        if r.tied is False:
            st += " (not tied to the model)"
    if r.measured and r.seconds > 0:
        st += f" ({r.seconds:.1f}s)"
    return st


def c_word(c: dict[str, Any] | None) -> str:
    """``C: shows it`` etc. for a counterexample row replayed on the C ("" when not)."""
    return "" if c is None else f"C: {C_WORDS.get(c['status'], c['status'])}"


def necessity_cell(board: Board, variant: str) -> str:
    """What FIXED minus one fix shows: violated properties (with what the C of that
    variant shows), any result that is not a verdict as such, never as "not needed", and
    how many proofs are not tied to the model."""
    rows = [r for r in board.results if r.variant == variant]
    violated = sorted(
        r.prop + (f" [{c_word(r.c)}]" if r.c else "") for r in rows if r.status == Status.VIOLATED
    )
    open_ = sorted(
        f"{r.prop}={r.status}"
        for r in rows
        if r.status not in (Status.VIOLATED, Status.NO_CEX, Status.PROVED)
    )
    untied = [r.prop for r in rows if r.status == Status.PROVED and r.tied is False]
    parts = [", ".join(violated)] if violated else []
    if open_:
        parts.append("UNKNOWN: " + ", ".join(open_))
    if not parts:
        parts.append("no property needs it (up to depth)")
    if untied:
        parts.append(f"{len(untied)} proved, not tied to the model")
    return "; ".join(parts)


def coverage_line(board: Board) -> str:
    """Which transitions the checks reached: vacuity, and the counterexample traces."""
    from vmballoon.model.transitions import TRANSITIONS

    lines = [
        f"coverage: vacuity ({r.variant}): {r.status}: {r.detail}"
        for r in board.results
        if r.prop == "vacuity"
    ]
    visited: set[str] = set()
    for r in board.results:
        if r.detail.startswith("trace: "):
            visited.update(r.detail[len("trace: ") :].split(";")[0].split())
    if visited:
        never = [loc.name for loc in TRANSITIONS if loc.name not in visited]
        lines.append(
            f"coverage: counterexample traces visit {len(visited)} locations; never: "
            + (", ".join(never) if never else "none")
        )
    return "\n".join(lines) if lines else "coverage: no vacuity check in this run"


def conformance_lines(c: ConformanceOutcome) -> list[str]:
    """What ties the proofs (about the Z3 encoding) to the model."""
    d = c.data
    if "satisfiable" not in d:
        return [f"conformance ({c.variant}): FAILED", *(f"  {p}" for p in d.get("problems", []))]
    head = (
        f"conformance ({c.variant}): the proofs are about the Z3 encoding; it agrees with "
        f"the model on {d['witnessed']}/{d['satisfiable']} satisfiable branches, boundaries "
        f"and wrap points of its transitions, each witnessed by a concrete model step "
        f"({d['unsatisfiable']} unreachable, reviewed in spec/conformance-unreachable.json; "
        f"{d['seconds']}s): {'ok' if c.ok else 'FAILED'}"
    )
    others = [f"  {x}" for x in d.get("lines", [])]  # the other links (proofs.argument)
    return [head, *others, *(f"  {p}" for p in d.get("problems", [])[:10])]


def _table(setup: Setup, board: Board, notes: Assumptions) -> list[str]:
    by = {(r.variant, r.prop): r for r in board.results}
    shown = [v for v in ("seed", "fixed") if v in setup.variants] or setup.variants
    out = []
    if len(shown) == 1 and shown[0] not in ("seed", "fixed"):
        out.append(f"{'property':<20} {shown[0]:<34} counterexample")
        for name in setup.props:
            r = by.get((shown[0], name))
            out.append(
                f"{name:<20} {cell(r, notes):<34} {(r.scenario if r else '') or ''} "
                f"{c_word(r.c if r else None)}".rstrip()
            )
    else:
        out.append(f"{'property':<20} {'seed':<34} {'fixed':<34} counterexample")
        for name in setup.props:
            seed, fixed = by.get(("seed", name)), by.get(("fixed", name))
            cex = (seed.scenario if seed else None) or ""
            out.append(
                f"{name:<20} {cell(seed, notes):<34} {cell(fixed, notes):<34} {cex} "
                f"{c_word(seed.c if seed else None)}".rstrip()
            )
    for name in [*conjuncts(), "vacuity"]:
        if name not in PROPERTIES and ("fixed", name) in by:
            out.append(f"{name:<20} {'(lemma)':<34} {cell(by[('fixed', name)], notes):<34}")
    return out


def _findings(setup: Setup, board: Board) -> list[str]:
    others = [v for v in setup.variants if v != "fixed"]
    rows = [
        r
        for r in board.results
        if r.status in (Status.VIOLATED, Status.UNCONFIRMED) and r.variant in others
    ]
    if not rows:
        return []
    out = ["", "violations (replayed through the model):"]
    for r in rows:
        msgs = (
            "; ".join(
                f"transition {m.get('step', '?')} ({m.get('loc', '?')}): "
                f"{readable(str(m.get('message')))}"
                for m in r.replay
            )
            or "(the replay shows no violation)"
        )
        on_c = ""
        if r.c:
            on_c = f" | {c_word(r.c)}" + (f": {readable(r.c['detail'])}" if r.c["detail"] else "")
        out.append(f"  {r.variant} {r.prop} (depth {r.depth}): {msgs}{on_c}")
        if r.scenario:
            out.append(f"    {replay_command(r.scenario, r.variant)}")
    return out


def _defects(board: Board) -> list[str]:
    out = ["", "per defect: a SEED scenario violating the property, cleared by the fix alone"]
    for fix in FIX_NAMES:
        d = board.defects.get(fix)
        if d is None:
            continue
        where = f"@{d.depth}" if d.depth is not None else ""
        msg = "; ".join(readable(str(m["message"])) for m in d.evidence.get("seed", []))
        out.append(
            f"  {fix:<24} {d.status}{where} {d.prop or ''} "
            f"(C lines {d.lines})"
            + (f": {msg}" if msg else "")
            + (f" | {c_word(d.c)}" if d.c else "")
        )
        if d.shortest:
            out.append(f"    shortest: {d.shortest}")
        if d.scenario:
            out.append(f"    {replay_command(d.scenario, 'seed')}")
        elif d.detail:
            out.append(f"    {d.detail}")
    return out


def report(
    setup: Setup,
    board: Board,
    v: Verdict,
    c_summary: dict[str, Any] | None,
    elapsed: float,
    *,
    interrupted: bool = False,
) -> None:
    """The text report on stdout."""
    notes = Assumptions(board.results)
    out = _table(setup, board, notes)
    out += _findings(setup, board)
    for r in board.results:
        if r.prop == "invariant":
            names = ", ".join(c["name"] for c in getattr(r, "conjuncts", []))
            took = f" in {r.seconds:.1f}s" if r.measured else ""
            out += ["", f"invariant ({r.variant}): {r.detail}{took}: {names}"]
    for r in board.results:  # why a check did not conclude: never hide the reason
        if r.status in (Status.ERROR, Status.UNKNOWN, Status.FAILED):
            out.append(f"{r.variant} {r.prop}: {r.status}: {r.detail}")
    if notes.lines():
        out += ["", *notes.lines()]
    out += ["", coverage_line(board)]
    for c in board.conformance:
        out += conformance_lines(c)
    if setup.necessity:
        out += ["", "fix necessity (FIXED minus the fix: properties violated)"]
        for fix in FIX_NAMES:
            out.append(f"  {fix:<24} {necessity_cell(board, FIXED.without(fix).name)}")
    if setup.per_defect:
        out += _defects(board)
    if c_summary is not None and c_summary["disagreements"]:
        out += ["", "the C disagrees with the model on a counterexample (the run fails):"]
        out += [f"  {line}" for line in c_summary["disagreements"]]
    elif c_summary is not None and c_summary["compiler"] is None:
        out += ["", "no C compiler (cc): the counterexamples were not replayed on the C"]
    if v.reasons and not interrupted:
        out += ["", "the run fails because:", *(f"  {r}" for r in v.reasons)]
    if interrupted:
        verdict = "INTERRUPTED (partial results above)"
    elif v.code == 3:
        verdict = f"INCOMPLETE (no seed counterexample found: {', '.join(v.open_defects)})"
    else:
        verdict = "OK" if v.ok else "FAILED"
    out.append(f"\n{verdict} in {elapsed:.1f}s")
    print("\n".join(out))


# -- the results table of spec/verify-results.json -------------------------------------------


def results_table(doc: dict[str, Any], findings: Path | None = None) -> str:
    """The README's results table (Markdown) from a ``verify-results.json`` document
    (:func:`vmballoon.apps.specgen.import_verify`'s): per property, SEED's verdict and
    FIXED's.  The transition of each SEED finding is the one its replay shows (the
    scenario in ``findings``, default spec/findings, replayed through the model): for a
    plain BMC row it is the recorded depth, for the accelerated search's (whose steps
    may be many allocations) the depth of the search is given beside it."""
    from vmballoon.core.specdata import spec_dir

    where = findings if findings is not None else spec_dir() / "findings"
    by = {(r["variant"], r["prop"]): r for r in doc["results"]}
    lines = ["| property | SEED | FIXED | seed finding |", "|---|---|---|---|"]
    for name in [*PROPERTIES, "progress"]:
        seed, fixed = by.get(("seed", name)), by.get(("fixed", name))
        if seed is None and fixed is None:
            continue
        finding = f"`{seed['scenario']}`" if seed and seed.get("scenario") else ""
        cell = _md_cell(seed, where)
        lines.append(f"| `{name}` | {cell} | {_md_cell(fixed, where)} | {finding} |")
    return "\n".join(lines)


def replay_transition(scenario: Path, prop: str) -> int | None:
    """The transition at which the model first violates ``prop`` replaying ``scenario``
    on SEED (None: it does not)."""
    from vmballoon.core.scenario import load_scenario
    from vmballoon.core.variants import SEED
    from vmballoon.model.properties import check_trace

    found = check_trace(load_scenario(str(scenario)), SEED, frozenset({prop}))
    return min((v.step for v in found), default=None)


def _md_cell(r: dict[str, Any] | None, findings: Path) -> str:
    if r is None:
        return "-"
    if r["status"] == "violated" and r.get("scenario"):
        step = replay_transition(findings / Path(r["scenario"]).name, r["prop"])
        if step is None:
            return "violated (its replay does not show it)"
        if r.get("kind") == "accelerated":
            return f"violated at transition {step} (accelerated search, depth {r['depth']})"
        return f"violated at transition {step}"
    if r["status"] == "no-cex" and r.get("depth") is not None:
        return f"no counterexample up to depth {r['depth']}"
    return str(r["status"])


def main(argv: list[str] | None = None) -> int:
    """``python -m vmballoon.apps.verify_render [verify-results.json]``: print the table."""
    import json

    from vmballoon.core.specdata import spec_dir

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else spec_dir() / "verify-results.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        print(results_table(doc))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: {path}: not a verify-results document ({exc})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
