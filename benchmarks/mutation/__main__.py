"""``python -m benchmarks.mutation [--jobs N] [--only FILE] [--out report.json] ...``.

Mutates ``vmballoon/model/``, ``vmballoon/reference/`` and ``vmballoon/proofs/encoding.py``
(:mod:`benchmarks.mutation.mutator`), runs each mutant against the project's fast
checks cheapest first (:mod:`benchmarks.mutation.stages`) and writes a JSON report:
killed (and by which stage), survived (with the mutant's diff), the reviewed
equivalent mutants of ``equivalent.json``, the score and the time.  Run it under
``nice``: it is a benchmark, not a CI step.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.mutation.mutator import KINDS, all_mutants, target_files
from benchmarks.mutation.runner import (
    ROOT,
    Result,
    campaign,
    commit,
    dirty,
    keys_from,
    load_equivalent,
    merge,
    report,
    rescore,
    shard_of,
)
from benchmarks.mutation.stages import STAGES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mutation", description=__doc__)
    p.add_argument("--jobs", type=int, default=1, help="workers (one scratch copy each)")
    p.add_argument("--only", action="append", metavar="FILE", help="mutate only FILE (repeatable)")
    p.add_argument("--kind", action="append", choices=KINDS, help="only mutants of this kind")
    p.add_argument("--match", metavar="TEXT", help="only mutants whose key contains TEXT")
    p.add_argument(
        "--rerun", metavar="REPORT", help="only the survivors of an earlier report (keys)"
    )
    p.add_argument(
        "--keys",
        metavar="FILE",
        help="only the mutants whose keys FILE lists, one a line (# starts a comment): "
        "e.g. the 'missing' of a merged report",
    )
    p.add_argument("--sample", type=int, metavar="N", help="a random sample of N mutants")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample")
    p.add_argument(
        "--shard",
        metavar="K/N",
        type=_shard,
        help="the K-th of N parts (1 <= K <= N) of the mutants, by a hash of each key, so "
        "a mutant stays in its part when others are added or removed; joined by --merge",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="REPORT",
        help="join the reports of shards into one, scored against the current mutants "
        "and equivalent.json (runs nothing; a mutant no report ran is counted as missing)",
    )
    p.add_argument(
        "--stage",
        action="append",
        choices=[s.name for s in STAGES],
        help="run these stages (default: all but 'suite')",
    )
    p.add_argument("--list", action="store_true", help="print the mutants' keys and stop")
    p.add_argument(
        "--rescore",
        metavar="REPORT",
        help="apply the current equivalent.json to an earlier report (runs nothing)",
    )
    p.add_argument("--out", default="mutation-report.json", help="the JSON report")
    return p


def _shard(text: str) -> tuple[int, int]:
    """``K/N`` as ``(K, N)``, 1 <= K <= N."""
    k, sep, n = text.partition("/")
    if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n):
        raise argparse.ArgumentTypeError(f"{text!r}: expected K/N with 1 <= K <= N, e.g. 1/4")
    return int(k), int(n)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    if args.rescore:
        try:
            earlier = json.loads(Path(args.rescore).read_text())
            rep = rescore(earlier, load_equivalent())
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: {args.rescore}: not a mutation report ({exc})", file=sys.stderr)
            return 2
        return _write(rep, args.out)
    if args.merge:
        try:
            parts = [json.loads(Path(r).read_text()) for r in args.merge]
            current = [m.key for m in all_mutants(ROOT)]
            rep = merge(parts, current, load_equivalent())
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: --merge: not a mutation report ({exc})", file=sys.stderr)
            return 2
        return _write(rep, args.out)
    known = target_files(ROOT)
    for rel in args.only or []:
        if rel not in known:
            print(f"error: {rel}: not a mutated file (one of {', '.join(known)})", file=sys.stderr)
            return 2
    mutants = list(all_mutants(ROOT, args.only))
    if args.kind:
        mutants = [m for m in mutants if m.kind in args.kind]
    if args.match:
        mutants = [m for m in mutants if args.match in m.key]
    if args.rerun:
        try:
            keys = {s["key"] for s in json.loads(Path(args.rerun).read_text())["survivors"]}
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: {args.rerun}: not a mutation report ({exc})", file=sys.stderr)
            return 2
        mutants = [m for m in mutants if m.key in keys]
    if args.sample is not None and args.sample < len(mutants):
        mutants = sorted(
            random.Random(args.seed).sample(mutants, args.sample),
            key=lambda m: (m.file, m.start, m.key),
        )
    if args.keys:
        try:
            wanted = keys_from(Path(args.keys).read_text())
        except OSError as exc:
            print(f"error: --keys: {exc}", file=sys.stderr)
            return 2
        mutants = [m for m in mutants if m.key in wanted]
        unknown = sorted(wanted - {m.key for m in all_mutants(ROOT)})
        if unknown:
            print(
                f"error: --keys: {len(unknown)} keys name no current mutant (first: "
                f"{unknown[0]!r})",
                file=sys.stderr,
            )
            return 2
    if args.shard is not None:
        k, n = args.shard
        mutants = [m for m in mutants if shard_of(m.key, n) == k]
    if args.list:
        for m in mutants:
            print(f"{m.line:5d} {m.key}")
        return 0
    if not mutants:
        print("error: no mutant selected", file=sys.stderr)
        return 2
    equivalent = load_equivalent()

    def progress(done: int, total: int, r: Result) -> None:
        where = f" by {r.stage}" if r.stage else ""
        mark = " [equivalent]" if r.outcome == "survived" and r.mutant.key in equivalent else ""
        print(
            f"[{done}/{total}] {r.outcome}{where} {r.seconds:.1f}s {r.mutant.key}{mark}",
            file=sys.stderr,
            flush=True,
        )

    try:
        results, base, wall, interrupted = campaign(mutants, args.jobs, progress, args.stage)
    except KeyboardInterrupt:
        print("mutation: interrupted while timing the unmutated checks; no report", file=sys.stderr)
        return 130
    rep = report(results, base, wall, equivalent)
    if interrupted:  # what finished is kept; the report says what did not run
        ran = {r.mutant.key for r in results}
        rep["partial"] = True
        rep["not_run"] = [m.key for m in mutants if m.key not in ran]
        print(
            f"mutation: interrupted; the report holds the {len(results)} mutants that "
            f"finished and lists the {len(rep['not_run'])} that did not (not_run)",
            file=sys.stderr,
        )
    rep["jobs"] = args.jobs
    rep["commit"] = commit()
    rep["dirty"] = dirty()
    rep["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    # a stage slowed by other jobs can pass its timeout: a survivor then counts as killed
    rep["load_average_after"] = round(os.getloadavg()[0], 1)
    if rep["load_average_after"] > max(1, args.jobs) + 0.5 and rep["timeouts"]:
        print(
            f"note: load average {rep['load_average_after']} with {args.jobs} jobs: rerun "
            f"the {rep['timeouts']} timeouts on a quiet machine (--keys)",
            file=sys.stderr,
        )
    if args.shard is not None:
        rep["shard"] = "{}/{}".format(*args.shard)
    written = _write(rep, args.out)
    return 130 if interrupted else written


def _write(rep: dict[str, Any], out: str) -> int:
    Path(out).write_text(json.dumps(rep, indent=1) + "\n")
    print(
        f"{rep['mutants']} mutants: {rep['killed']} killed ({rep['timeouts']} by timeout), "
        f"{rep['equivalent']} equivalent, {rep['survived']} survived; "
        f"score {100 * rep['score']:.1f}% of non-equivalent mutants; "
        f"{rep['wall_seconds']:.0f} s wall "
        + (f"in {len(rep['merged'])} runs" if "merged" in rep else f"({rep.get('jobs', 1)} jobs)")
        + f"; report: {out}"
    )
    if rep.get("missing"):
        print(f"not run by any report: {len(rep['missing'])} of the current mutants")
    print("\n| file | mutants | killed | equivalent | survived | not run | score |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for f, c in rep["files"].items():
        counts = (c.get(n, 0) for n in ("mutants", "killed", "equivalent", "survived", "not_run"))
        print(
            f"| `{f}` | " + " | ".join(f"{n:,}" for n in counts) + f" | {100 * c['score']:.1f}% |"
        )
    for s in rep["survivors"]:
        print(f"\nsurvived: {s['key']} (line {s['line']})\n{s['diff']}")
    return 0


def _main() -> int:
    """:func:`main`, quiet when its reader goes away (``... | head``)."""
    try:
        return main()
    except BrokenPipeError:
        sys.stdout = None  # nothing more to flush at exit
        return 1


if __name__ == "__main__":
    sys.exit(_main())
