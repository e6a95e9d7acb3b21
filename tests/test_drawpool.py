"""Pinned campaigns draw no constants from the local modules loaded (vmballoon.apps.drawpool).

Hypothesis draws about one integer in twenty from constants scraped from the source of
*local* modules, so without the pinning what a seed draws depends on which modules a
process happened to import.  The check runs in a fresh interpreter (the test session
pins the pool for every test, so in-process there is nothing unpinned to compare
with): a planted local module holds 500 distinctive integers; unpinned, Hypothesis
draws some of them; pinned, none.  (Hypothesis ignores a module with more than 1,024
constants, and integers from -99 to 99.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BASE = 10**12
COUNT = 500

DRIVER = f"""
import json, sys
sys.path.insert(0, sys.argv[1])
import planted_constants  # a local module: its constants join Hypothesis's pool
from hypothesis import HealthCheck, given, seed, settings, strategies as st
from vmballoon.apps.drawpool import pinned_constant_pool

def planted_draws():
    hits = []
    @seed(5)
    @settings(max_examples=200, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def draw(data):
        for _ in range(20):
            v = data.draw(st.integers())
            if {BASE} <= v < {BASE} + 7 * {COUNT} and (v - {BASE}) % 7 == 0:
                hits.append(v)
    draw()
    return len(hits)

unpinned = planted_draws()
with pinned_constant_pool() as hooked:
    pinned = planted_draws()
print(json.dumps({{"unpinned": unpinned, "pinned": pinned, "hooked": hooked}}))
"""


def test_pinned_pool_keeps_a_local_modules_constants_out_of_the_draws(tmp_path: Path) -> None:
    values = ", ".join(str(BASE + 7 * n) for n in range(COUNT))
    (tmp_path / "planted_constants.py").write_text(f"VALUES = [{values}]\n")
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["hooked"], "this Hypothesis has no local-constant hook: campaigns run unpinned"
    # the planted constants do reach unpinned draws (else this test could not fail) ...
    assert counts["unpinned"] > 0, counts
    # ... and never pinned ones
    assert counts["pinned"] == 0, counts
