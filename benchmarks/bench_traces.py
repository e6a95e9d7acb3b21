"""Benchmark of ``vmballoon replay --format itf``: run ``python -m benchmarks.bench_traces``.

Streams the ITF trace of ``tests/scenarios/guest64g_2m_to_48g_and_back.json`` (a
64 GiB guest inflating 2 MiB pages to 48 GiB and back: 49,272 states, up to
24,576 pages each) into a byte counter, as a user would pipe it, and reports the
wall time, the size of the trace and the peak resident memory of the command.
Not a test (``tests/test_traces.py`` checks a quarter of this scenario).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "scenarios" / "guest64g_2m_to_48g_and_back.json"
CODE = (
    "import sys\n"
    "from vmballoon.apps.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
    "print(hwm[0].split()[1], file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def main() -> None:
    """Run the replay, print the figures."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CODE,
            "replay",
            str(SCENARIO),
            "--format",
            "itf",
            "--no-check",
            "--force",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    size = 0
    while chunk := proc.stdout.read(1 << 20):
        size += len(chunk)
    err = proc.stderr.read().decode()
    if proc.wait() != 0:
        raise SystemExit(err)
    seconds = time.perf_counter() - began
    peak_mib = int(err.strip().splitlines()[-1]) / 1024
    print(
        f"ITF of {SCENARIO.name}: {size / 1e9:.2f} GB in {seconds:.1f} s, "
        f"peak RSS {peak_mib:.0f} MiB"
    )


if __name__ == "__main__":
    main()
