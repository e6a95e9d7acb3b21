"""``vmballoon verify``: every property on SEED and FIXED, proved or violated, in parallel.

Wire into ``vmballoon/apps/cli.py`` with::

    from vmballoon.proofs.cli import add_verify_parser
    add_verify_parser(sub)          # sets func=cmd_verify

Exit status 0 iff every property is proved for FIXED (with the vacuity check) and
every SEED violation found is confirmed by replaying its counterexample.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from vmballoon.core.argtypes import output_dir, positive_float, positive_int, variant_name
from vmballoon.core.assumptions import BY_NAME, names_for
from vmballoon.core.variants import FIX_NAMES, FIXED, parse_variant
from vmballoon.proofs.check import (
    DEEP_DEPTH,
    DEEP_TIMEOUT_FACTOR,
    DEFAULT_DEPTH,
    DEFAULT_TIMEOUT,
    conjuncts,
    deep_job,
    jobs_for,
    run_obligation,
)
from vmballoon.proofs.props import PROPERTIES

C_WORDS = {
    "shows": "shows it",
    "not-shown": "does not show it",
    "not-observable": "not observable",
    "no-compiler": "not compiled (no cc)",
    "error": "error",
}
"""What a counterexample row's ``c`` field (``status``: the compiled C of the row's variant
replaying it, :mod:`vmballoon.apps.cexreplay`) says in the table: ``C: <words>``."""

CReplay = Callable[[list[dict[str, Any]], list[dict[str, Any]]], dict[str, Any]]
"""Replays the counterexamples on the C (rows, defect rows), adds each row's ``c`` field
and returns the summary with its ``disagreements`` (the application layer passes it)."""

JSON_SCHEMA = "vmballoon-verify/1"
"""The ``schema`` field of ``verify --json`` (README: "verify --json"); a change of the
fields' meaning bumps it."""


def add_verify_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``verify`` subcommand to an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "verify", help="prove the properties (Z3): induction for fixed, BMC for seed"
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--variant", type=_variant_or_all, default="all",
        help="all (seed and fixed), seed, fixed, fixed-<fix> or fix,fix,...",
    )  # fmt: skip
    p.add_argument(
        "--property", action="append", choices=sorted([*PROPERTIES, "progress"]), default=None,
        help="check only this property (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--jobs", type=positive_int, default=2, help="parallel processes, >= 1 (default 2)"
    )
    p.add_argument(
        "--timeout", type=positive_float, default=DEFAULT_TIMEOUT,
        help=f"seconds per solver query, > 0 (default {DEFAULT_TIMEOUT:g}); the accelerated "
        f"search's one query over {DEEP_DEPTH} depths gets {DEEP_TIMEOUT_FACTOR} times that",
    )  # fmt: skip
    p.add_argument(
        "--depth", type=positive_int, default=DEFAULT_DEPTH,
        help=f"BMC depth in transitions, >= 1 (default {DEFAULT_DEPTH}); depth 0 would "
        "search nothing and is refused",
    )  # fmt: skip
    p.add_argument(
        "--out", type=output_dir, default="verify-out",
        help="directory for counterexample scenarios (checked before any solving)",
    )  # fmt: skip
    p.add_argument(
        "--no-necessity",
        action="store_true",
        help="skip the fix-necessity table (FIXED minus one fix)",
    )
    p.set_defaults(func=cmd_verify)
    return p


def _variant_or_all(text: str) -> str:
    return text if text == "all" else parse_variant(variant_name(text)).name


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    st = r["status"]
    if st in ("violated", "unconfirmed") and r.get("depth") is not None:
        st += f"@{r['depth']}"
    elif st == "no-cex" and r.get("depth") is not None:
        st += f"≤{r['depth']}"  # no counterexample up to that depth: bounded, not proved
    return f"{st} ({r['seconds']:.1f}s)"


def coverage_line(results: list[dict[str, Any]]) -> str:
    """Which transitions the checks reached: vacuity, and the counterexample traces."""
    from vmballoon.model.transitions import TRANSITIONS

    lines = []
    for r in results:
        if r["prop"] == "vacuity":
            lines.append(f"coverage: vacuity ({r['variant']}): {r['status']}: {r['detail']}")
    visited: set[str] = set()
    for r in results:
        detail = str(r.get("detail") or "")
        if detail.startswith("trace: "):
            visited.update(detail[len("trace: "):].split())
    if visited:
        never = [loc.name for loc in TRANSITIONS if loc.name not in visited]
        lines.append(
            f"coverage: counterexample traces visit {len(visited)} locations; never: "
            + (", ".join(never) if never else "none")
        )
    return "\n".join(lines) if lines else "coverage: no vacuity check in this run"


def _crashed(job: dict[str, Any], exc: BaseException) -> list[dict[str, Any]]:
    """A crashed obligation is a failure, never "proved"."""
    if job["kind"] == "defect":
        return [{"fix": job["fix"], "lines": "", "prop": None, "depth": None, "status": "error",
                 "seconds": 0.0, "source": "product", "scenario": None, "evidence": {},
                 "detail": repr(exc)}]  # fmt: skip
    return [{
        "prop": job.get("prop", ",".join(job.get("props", []))),
        "variant": job["variant"], "kind": job["kind"], "status": "error",
        "seconds": 0.0, "detail": repr(exc), "depth": None, "scenario": None, "replay": [],
        "assumptions": [],
    }]  # fmt: skip


def _parted(fix: str, outs: list[dict[str, Any]]) -> str:
    """What a first-divergence job (:func:`proofs.defects.divergence_job`) found."""
    found = [o for o in outs if "first" in o]
    if not found:  # crashed: the defect's search computes it itself
        return "crashed: " + "; ".join(str(o.get("detail")) for o in outs)
    first = found[0]["first"]
    if first is None:
        return "none (" + "; ".join(found[0]["notes"]) + ")"
    return f"SEED and SEED + {fix} part at transition {first[0] + 1}"


def _progress(done: int, total: int, job: dict[str, Any], outs: list[dict[str, Any]]) -> None:
    if job["kind"] == "divergence":
        print(f"[{done}/{total}] seed divergence {job['fix']}: {_parted(job['fix'], outs)}",
              file=sys.stderr, flush=True)  # fmt: skip
        return
    if job["kind"] == "deep":
        what = ", ".join(f"{o['prop']}={o['status']}" for o in outs)
        print(f"[{done}/{total}] seed deep search (accelerated): {what}", file=sys.stderr,
              flush=True)  # fmt: skip
        return
    if job["kind"] == "defect":
        what = ", ".join(f"{o['fix']}: {o['status']} {o.get('prop') or ''}".strip() for o in outs)
        line = f"[{done}/{total}] seed defect {job['fix']}: {what}"
    else:
        name = job.get("prop") or job["kind"]
        what = ", ".join(f"{o['prop']}={o['status']}" for o in outs)
        line = f"[{done}/{total}] {job['variant']} {name}: {what}"
    print(line, file=sys.stderr, flush=True)


def conformance_line(c: dict[str, Any]) -> str:
    """What ties the proofs (about the Z3 encoding) to the model, as one paragraph."""
    head = (
        f"conformance ({c['variant']}): the proofs are about the Z3 encoding; it agrees with "
        f"the model on {c['witnessed']}/{c['satisfiable']} satisfiable branches, boundaries "
        f"and wrap points of its transitions, each witnessed by a concrete model step "
        f"({c['unsatisfiable']} unreachable, reviewed in spec/conformance-unreachable.json; "
        f"{c['seconds']}s): {'ok' if c['ok'] else 'FAILED'}"
    )
    lines = [head, *(f"  {x}" for x in c.get("lines", []))]  # the other links (proofs.argument)
    return "\n".join([*lines, *(f"  {p}" for p in c.get("problems", [])[:10])])


def assumption_lines(results: list[dict[str, Any]]) -> list[str]:
    """With every proved result, the assumptions it rests on (names, then their texts)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for r in results:
        if r["status"] == "proved":
            key = tuple(r.get("assumptions") or names_for(r["prop"]))
            name = r["prop"] if r["variant"] == "fixed" else f"{r['prop']} ({r['variant']})"
            groups.setdefault(key, []).append(name)
    if not groups:
        return []
    lines = ["proved, assuming (vmballoon/core/assumptions.py):"]
    used: list[str] = []
    for key, props in groups.items():
        lines.append(f"  {', '.join(props)}")
        lines.append(f"    rest on: {', '.join(key)}")
        used += [n for n in key if n not in used]
    lines += [f"  {n}: {BY_NAME[n].text}" for n in used if n in BY_NAME]
    return lines


def c_word(row: dict[str, Any] | None) -> str:
    """``C: shows it`` etc. for a counterexample row replayed on the C ("" when not)."""
    c = (row or {}).get("c")
    return "" if c is None else f"C: {C_WORDS.get(c['status'], c['status'])}"


def necessity_cell(results: list[dict[str, Any]], variant: str) -> str:
    """What FIXED minus one fix shows: violated properties (with what the C of that
    variant shows), and any result that is not a verdict (unknown, error, unconfirmed)
    as such, never as "not needed"."""
    rows = [r for r in results if r["variant"] == variant]
    violated = sorted(
        r["prop"] + (f" [{c_word(r)}]" if c_word(r) else "")
        for r in rows if r["status"] == "violated"
    )  # fmt: skip
    open_ = sorted(f"{r['prop']}={r['status']}" for r in rows
                   if r["status"] not in ("violated", "no-cex", "proved"))  # fmt: skip
    parts = [", ".join(violated)] if violated else []
    if open_:
        parts.append("UNKNOWN: " + ", ".join(open_))
    if not parts:
        return "no property needs it (up to depth)"
    return "; ".join(parts)


def cmd_verify(args: argparse.Namespace, c_replay: CReplay | None = None) -> int:
    """Run the obligations in parallel; print the tables; 0 iff all is well.

    ``c_replay`` (``vmballoon verify`` passes :func:`vmballoon.apps.cexreplay.
    replay_counterexamples`) replays every counterexample on the compiled C; a
    counterexample the model shows and the C does not fails the run."""
    import z3

    from vmballoon.proofs import defects as dft

    t0 = time.monotonic()
    variants = ["seed", "fixed"] if args.variant == "all" else [args.variant]
    props = args.property or [*PROPERTIES, "progress"]
    necessity = args.variant in ("all", "fixed") and not args.no_necessity
    per_defect = "seed" in variants and not args.property
    jobs = jobs_for(variants, props, args.timeout, args.depth, args.out, necessity)
    results: list[dict[str, Any]] = []
    conformance: list[dict[str, Any]] = []
    defects: dict[str, dict[str, Any]] = {}
    planned: set[str] = set()
    # first divergences run ahead of their defect's search (proofs.defects.divergence_job)
    early: dict[str, dict[str, Any]] = {}
    early_pending: set[str] = set()
    deep_pending = False
    total = len(jobs) + (len(FIX_NAMES) if per_defect else 0)
    done = 0

    def ready(fix: str) -> bool:
        seed_done = any(r["variant"] == "seed" and r["kind"] in ("bmc", "induction", "houdini")
                        for r in results)  # fmt: skip
        fixed_minus = FIXED.without(fix).name
        nec_done = not necessity or any(r["variant"] == fixed_minus for r in results)
        return seed_done and nec_done and not deep_pending and fix not in early_pending

    # a fresh process per obligation: Z3's answers depend on the terms a process built
    # before, so a reused worker would make the counterexamples vary from run to run
    # at most ``--jobs`` obligations are submitted at a time, from a queue of our own: the
    # searches planned on the way (the deep search, the defects) go to its front, since
    # they are on the longest chain of the run (seed, then deep search, then defects)
    queue = list(jobs)
    workers = max(1, args.jobs)
    with ProcessPoolExecutor(max_workers=workers, max_tasks_per_child=1) as pool:
        futs: dict[Any, dict[str, Any]] = {}
        while queue or futs:
            while queue and len(futs) < workers:
                nxt = queue.pop(0)
                futs[pool.submit(run_obligation, nxt)] = nxt
            finished, _ = wait(list(futs), return_when=FIRST_COMPLETED)
            for fut in finished:
                job = futs.pop(fut)
                try:
                    outs = fut.result()
                except Exception as exc:
                    outs = _crashed(job, exc)
                done += 1
                _progress(done, total, job, outs)
                if job["kind"] == "divergence":
                    # a crashed one leaves nothing: the defect's search computes it itself
                    early_pending.discard(job["fix"])
                    early.update({o["fix"]: o for o in outs if "first" in o})
                elif job["kind"] == "defect":
                    defects.update({o["fix"]: o for o in outs})
                elif job["kind"] == "deep":
                    # the accelerated search replaces plain BMC's "no-cex" (its time added)
                    deep_pending = False
                    new = {o["prop"]: o for o in outs}
                    for k, old in enumerate(results):
                        if old["variant"] == "seed" and old["prop"] in new:
                            new[old["prop"]]["seconds"] += old["seconds"]
                            results[k] = new[old["prop"]]
                elif job["kind"] == "conformance" and outs and "per_transition" in outs[0]:
                    conformance.extend(outs)
                else:
                    results.extend(outs)
                if job["kind"] == "variant" and job["variant"] == "seed" and job["bmc"]:
                    deep = deep_job(outs, {k: job[k] for k in ("timeout", "depth", "out")})
                    if deep is not None:
                        deep_pending = True
                        total += 1
                        queue.insert(0, deep)
                    if per_defect:  # ahead of the deep search: the longest chain
                        ahead = [d for d in (dft.plan_divergence(f, results, args)
                                             for f in FIX_NAMES) if d is not None]  # fmt: skip
                        early_pending.update(d["fix"] for d in ahead)
                        total += len(ahead)
                        queue[:0] = ahead
            if not per_defect:
                continue
            for fix in FIX_NAMES:
                if fix in planned or not ready(fix):
                    continue
                planned.add(fix)
                row, search = dft.plan_defect(fix, results, necessity, args)
                if row is not None:
                    defects[fix] = row
                    done += 1
                    _progress(done, total, {"kind": "defect", "fix": fix}, [row])
                elif search is not None:
                    if fix in early:
                        search["divergence"] = early[fix]
                    queue.insert(0, search)
    c_summary: dict[str, Any] | None = None
    if c_replay is not None:
        c_summary = c_replay(results, [defects[f] for f in FIX_NAMES if f in defects])
        print(f"[C] {c_summary['replayed']} counterexamples replayed on the compiled driver "
              f"in {c_summary['seconds']} s" if c_summary["compiler"] else
              "[C] no C compiler: the counterexamples are not replayed on the C",
              file=sys.stderr, flush=True)  # fmt: skip
    by = {(r["variant"], r["prop"]): r for r in results}
    ok = c_summary is None or not c_summary["disagreements"]
    if "fixed" in variants:
        names = [*conjuncts(), "vacuity"]
        needed = [n for n in names if n in props or n not in PROPERTIES]
        needed += [n for n in props if n not in PROPERTIES]  # progress (proofs.progress)
        ok = ok and all(by.get(("fixed", n), {}).get("status") == "proved" for n in needed)
        # the proofs are about the encoding: they speak of the driver only as far as
        # the encoding and the model agree (spec/encoding-argument.md)
        ok = ok and any(c.get("variant") == "fixed" for c in conformance)
    # every variant that gets proofs (FIXED, and SEED's Houdini survivors) is checked
    ok = ok and len(conformance) == len(variants) and all(c.get("ok") for c in conformance)
    others = [v for v in variants if v != "fixed"]
    ok = ok and not any(
        r["variant"] in others and r["status"] in ("unconfirmed", "unknown", "error")
        for r in results
    )
    # a per-defect search the solver could not finish (``unknown``) leaves the run
    # incomplete (exit 3), never proved; anything else short of a violation fails
    open_defects = [f for f, d in defects.items() if d["status"] == "unknown"]
    ok = ok and all(d["status"] in ("violated", "unknown") for d in defects.values())
    code = (3 if open_defects else 0) if ok else 1
    necessity_table: dict[str, list[str]] = {}
    if necessity:
        for fix in FIX_NAMES:
            vname = FIXED.without(fix).name
            necessity_table[fix] = sorted(
                r["prop"] for r in results if r["variant"] == vname and r["status"] == "violated"
            )
    elapsed = time.monotonic() - t0
    if args.json:
        complete = args.variant == "all" and args.property is None and necessity
        json.dump(
            {
                "schema": JSON_SCHEMA, "ok": code == 0, "exit": code, "complete": complete,
                "seconds": elapsed,
                "solver": {"name": "z3", "version": z3.get_version_string()},
                "depth": args.depth, "deep_depth": DEEP_DEPTH,
                "deep_timeout": args.timeout * DEEP_TIMEOUT_FACTOR,
                "defect_depth": dft.DEFECT_DEPTH,
                "timeout": args.timeout, "jobs": args.jobs,
                "results": results, "necessity": necessity_table,
                "defects": [defects[f] for f in FIX_NAMES if f in defects],
                "conformance": conformance, "c_replay": c_summary,
            },
            sys.stdout,
            indent=1,
        )  # fmt: skip
        sys.stdout.write("\n")
        return code
    shown = [v for v in ("seed", "fixed") if v in variants] or variants
    if len(shown) == 1 and shown[0] not in ("seed", "fixed"):
        print(f"{'property':<20} {shown[0]:<28} counterexample")
        for name in props:
            r = by.get((shown[0], name))
            print(f"{name:<20} {_cell(r):<28} {(r or {}).get('scenario') or ''} {c_word(r)}")
    else:
        print(f"{'property':<20} {'seed':<28} {'fixed':<28} counterexample")
        for name in props:
            seed, fixed = by.get(("seed", name)), by.get(("fixed", name))
            cex = (seed or {}).get("scenario") or ""
            print(f"{name:<20} {_cell(seed):<28} {_cell(fixed):<28} {cex} {c_word(seed)}")
    for name in [*conjuncts(), "vacuity"]:
        if name not in PROPERTIES and ("fixed", name) in by:
            print(f"{name:<20} {'(lemma)':<28} {_cell(by[('fixed', name)]):<28}")
    violations = [r for r in results if r["status"] in ("violated", "unconfirmed")
                  and r["variant"] in others]  # fmt: skip
    if violations:
        print("\nviolations (replayed through the model):")
        for r in violations:
            msgs = "; ".join(
                f"transition {m.get('step', '?')} ({m.get('loc', '?')}): {m.get('message')}"
                for m in r.get("replay", [])
            ) or "(the replay shows no violation)"
            c = r.get("c")
            on_c = f" | {c_word(r)}" + (f": {c['detail']}" if c["detail"] else "") if c else ""
            print(f"  {r['variant']} {r['prop']} (depth {r['depth']}): {msgs}{on_c}")
    for r in results:
        if r["prop"] == "invariant":
            print(f"\ninvariant ({r['variant']}): {r['detail']} in {r['seconds']:.1f}s: "
                  + ", ".join(c["name"] for c in r.get("conjuncts", [])))  # fmt: skip
    for r in results:  # why a check did not conclude: never hide the reason
        if r["status"] in ("error", "unknown", "failed"):
            print(f"{r['variant']} {r['prop']}: {r['status']}: {r.get('detail') or ''}")
    print("\n" + "\n".join(assumption_lines(results)))
    print("\n" + coverage_line(results))
    for c in conformance:
        print(conformance_line(c))
    if necessity:
        print("\nfix necessity (FIXED minus the fix: properties violated)")
        for fix in necessity_table:
            print(f"  {fix:<24} {necessity_cell(results, FIXED.without(fix).name)}")
    if per_defect:
        print("\nper defect: a SEED scenario violating the property, cleared by the fix alone")
        for fix in FIX_NAMES:
            d = defects.get(fix)
            if d is None:
                continue
            where = f"@{d['depth']}" if d.get("depth") is not None else ""
            msg = "; ".join(m["message"] for m in d.get("evidence", {}).get("seed", []))
            print(f"  {fix:<24} {d['status']}{where} {d.get('prop') or ''} "
                  f"{d.get('scenario') or d.get('detail')} (C lines {d['lines']})"
                  + (f": {msg}" if msg else "")
                  + (f" | {c_word(d)}" if c_word(d) else ""))  # fmt: skip
    if c_summary is not None and c_summary["disagreements"]:
        print("\nthe C disagrees with the model on a counterexample (the run fails):")
        for line in c_summary["disagreements"]:
            print(f"  {line}")
    elif c_summary is not None and c_summary["compiler"] is None:
        print("\nno C compiler (cc): the counterexamples were not replayed on the C")
    verdict = {0: "OK", 1: "FAILED"}.get(
        code, f"INCOMPLETE (no seed counterexample found: {', '.join(open_defects)})")
    print(f"\n{verdict} in {elapsed:.1f}s")
    return code


def main() -> int:
    """Stand-alone entry point (``python -m proofs.cli``) until the main CLI wires it in."""
    parser = argparse.ArgumentParser(prog="vmballoon")
    sub = parser.add_subparsers(dest="command", required=True)
    add_verify_parser(sub)
    args = parser.parse_args()
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
