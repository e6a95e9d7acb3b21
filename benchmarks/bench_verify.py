"""Benchmark of ``vmballoon verify``: run ``python -m benchmarks.bench_verify``.

Runs the whole verify (every property on SEED and FIXED, the fix-necessity
variants, the per-defect search) with the default settings in a subprocess, as a
user would, and reports the wall time of the whole run, the load of the machine
and the time of each obligation (one Houdini-plus-BMC job per variant, the
vacuity check, each defect's search, the conformance checks).  Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def main() -> None:
    """Run verify, print the times."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "vmballoon",
                "verify",
                "--json",
                "--jobs",
                str(args.jobs),
                "--out",
                str(Path(tmp) / "cex"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - began
    data = json.loads(proc.stdout)
    per_job: dict[str, float] = defaultdict(float)
    for r in data["results"]:
        # each row's time is its own (Houdini's is the invariant row's): a job is their sum
        job = "vacuity (fixed)" if r["prop"] == "vacuity" else r["variant"]
        if r["variant"] == "seed" and r["prop"] == "throttle":
            job = "seed throttle (plain + accelerated search)"
        per_job[job] += float(r["seconds"])
    for d in data.get("defects", []):
        per_job[f"defect {d['fix']} ({d['source']})"] += float(d["seconds"])
    for c in data.get("conformance", []):
        per_job[f"conformance ({c['variant']})"] += float(c["seconds"])
    load = os.getloadavg()
    print(
        f"vmballoon verify, {args.jobs} jobs: {wall:.1f} s wall, exit {proc.returncode}, "
        f"ok={data['ok']}; load average after the run {load[0]:.1f} {load[1]:.1f} "
        f"{load[2]:.1f} on {os.cpu_count()} CPUs; z3 {data.get('solver', {}).get('version')}"
    )
    print(f"{'obligation':<34} {'seconds':>8}")
    for job, secs in sorted(per_job.items(), key=lambda kv: -kv[1]):
        print(f"{job:<34} {secs:>8.1f}")
    print(f"{'sum of obligations':<34} {sum(per_job.values()):>8.1f}")


if __name__ == "__main__":
    main()
