"""A verify job answers the same whatever its process allocated before it.

Z3's answers depend on which of its terms are alive.  Python's cyclic garbage collector
runs when the process has allocated enough, so with it on a job's counterexamples and
samples moved when the code before the job (its imports, a module grown by a function)
allocated a little more or less.  ``vmballoon.apps.verify._run_job`` runs every job with
the collector off.
"""

from __future__ import annotations

import subprocess
import sys

_JOB = """
import sys
from dataclasses import dataclass
from vmballoon.apps.verify import _run_job
from vmballoon.apps.verify_jobs import Job
from vmballoon.core.variants import SEED
from vmballoon.proofs import witness

@dataclass(frozen=True)
class WitnessSteps(Job):
    def run(self):
        return [len(witness.check(SEED, keep_steps=True).steps)]

grown = [[[] for _ in range(10)] for _ in range(int(sys.argv[1]))]
print(_run_job(WitnessSteps(variant="seed", timeout=120.0))[0])
"""


def _steps_after(allocated: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _JOB, str(allocated)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return int(out.stdout.split()[-1])


def test_a_job_does_not_depend_on_what_its_process_allocated_before() -> None:
    """The SEED witness check (about 7 s) after 0 and after 7 more lists of lists: with
    the collector on it kept 501 and 509 concrete steps."""
    assert _steps_after(0) == _steps_after(7)
