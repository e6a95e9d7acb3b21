"""The project's fast checks, cheapest first, and which mutated files each one can see.

A mutant runs through the stages that apply to its file, in this order, and is
killed by the first that fails (or exceeds its timeout).  Each stage is a pytest
selection or a ``vmballoon`` command, run in a fresh process forked from a worker
that has the heavy libraries (z3, hypothesis, pytest) loaded already.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MODEL, REFERENCE = "vmballoon/model/", "vmballoon/reference/"
ENCODING = "vmballoon/proofs/encoding.py"
PROPS, PROGRESS = "vmballoon/proofs/props.py", "vmballoon/proofs/progress.py"
DRIVERS = tuple(
    f"vmballoon/proofs/{name}.py"
    for name in ("houdini", "check", "defects", "vacuity", "abstract_reach", "unrolling")
)


@dataclass(frozen=True)
class Stage:
    """One check: ``pytest ARGS`` (kind ``pytest``), ``vmballoon ARGS`` (kind ``cli``) or
    a function ``module:name`` returning an exit status (kind ``call``)."""

    name: str
    kind: str
    args: tuple[str, ...]
    applies: tuple[str, ...]
    """Prefixes of the files whose mutants this stage can kill."""
    env: dict[str, str] = field(default_factory=dict)
    default: bool = True
    """Run unless asked otherwise (``--stage``)."""

    def applies_to(self, rel: str) -> bool:
        return any(rel.startswith(p) for p in self.applies)

    def for_file(self, rel: str) -> Stage:
        """This stage for a mutant of ``rel``: the test files of :data:`FIRST` for ``rel``
        run first (pytest stops at the first failure: the tests of the mutated module
        kill most of its mutants in seconds); the same tests in all."""
        first = [a for a in FIRST.get(rel, ()) if a in self.args]
        if self.kind != "pytest" or not first:
            return self
        args = (*first, *(a for a in self.args if a not in first))
        return Stage(self.name, self.kind, args, self.applies, self.env, self.default)


SLOW = (
    # checks the conformance checker itself on SEED (26 s): mutants of the encoding
    # meet test_encoding_matches_model instead
    "tests/test_encoding_conformance.py::test_checker_detects_a_wrong_successor",
)
FUZZ_EXAMPLES = "50"
ASIDE = (
    # not about the readings: the scenario parser, the fuzz command's options, the
    # generated spec, the mutation tool itself, the command line, the packaging
    "tests/test_scenario_validation.py",
    "tests/test_fuzz_cli.py",
    "tests/test_spec_generated.py",
    "tests/test_mutation.py",
    "tests/test_cli_contract.py",
    "tests/test_packaging.py",
)

STAGES: tuple[Stage, ...] = (
    Stage(
        "golden",
        "pytest",
        ("tests/test_model_golden.py", "tests/test_reference_golden.py"),
        (MODEL, REFERENCE),
    ),
    Stage(
        "boundaries",
        "pytest",
        (
            "tests/test_boundaries.py",
            "tests/test_frameset.py",
            "tests/test_model_units.py",
            "tests/test_ownership_check.py",
            "tests/test_property_units.py",
            "tests/test_reference_units.py",
        ),
        (MODEL, REFERENCE),
    ),
    Stage(
        "scenarios",
        "pytest",
        ("tests/test_scenarios_differential.py",),
        (MODEL, REFERENCE),
    ),
    Stage(
        "quick-conformance",
        "call",
        ("benchmarks.mutation.quick:conformance",),
        (MODEL, ENCODING),
    ),
    Stage(
        "units",
        "pytest",
        (
            "tests/test_property_findings.py",
            # the monitor's incremental claims against the whole-state predicates
            "tests/test_monitor.py",
            "tests/test_encoding_relation.py",
            "tests/test_progress.py",
            "tests/test_simulate.py",
        ),
        (MODEL, REFERENCE, ENCODING),
    ),
    Stage(
        "verdicts",
        "pytest",
        # every property's verdict on every scenario of the repository, per variant:
        # the properties are shared by model and reference, so only this sees them
        ("tests/test_property_verdicts.py",),
        (MODEL,),
    ),
    Stage(
        "conformance",
        "pytest",
        (
            "tests/test_boundary_conformance.py",
            "tests/test_encoding_conformance.py",
            "--deselect",
            SLOW[0],
        ),
        (MODEL, ENCODING),
    ),
    Stage(
        "witness",
        "pytest",
        (
            # branch- and boundary-complete conformance, totality/reachability, and the
            # assumptions read the same in Python and Z3 (issue 8, items 1-3): thorough
            # and slow (about 45 s of CPU), so after the cheaper stages
            "tests/test_witness_conformance.py",
            "tests/test_vacuity.py",
            "tests/test_assumptions.py",
        ),
        (MODEL, ENCODING),
    ),
    Stage(
        "properties",
        "call",
        # property conformance alone (a few seconds): the encoded properties against the
        # model's on reached and neighbour states
        ("benchmarks.mutation.quick:properties",),
        (PROPS, PROGRESS),
    ),
    Stage(
        "argument",
        "call",
        # the links of issue 20: input-completeness, witnesses that do not crash, and
        # property conformance, on FIXED then SEED, stopping at the first failure
        ("benchmarks.mutation.quick:argument",),
        (ENCODING, PROPS, PROGRESS),
    ),
    Stage(
        "fuzz",
        "pytest",
        (
            "tests/test_fuzz_differential.py",
            # with fewer examples than CI's, coverage of every transition is not expected
            "--deselect=tests/test_fuzz_differential.py::test_ci_fuzz_reached_every_transition",
        ),
        (MODEL, REFERENCE),
        {"VMBALLOON_CI_EXAMPLES": FUZZ_EXAMPLES},
    ),
    Stage(
        "suite",
        "pytest",
        (
            "tests",
            "--ignore=tests/test_model_golden.py",
            "--ignore=tests/test_reference_golden.py",
            "--ignore=tests/test_scenarios_differential.py",
            "--ignore=tests/test_boundaries.py",
            "--ignore=tests/test_model_units.py",
            "--ignore=tests/test_ownership_check.py",
            "--ignore=tests/test_property_units.py",
            "--ignore=tests/test_reference_units.py",
            "--ignore=tests/test_property_verdicts.py",
            "--ignore=tests/test_property_findings.py",
            "--ignore=tests/test_monitor.py",
            "--ignore=tests/test_encoding_relation.py",
            "--ignore=tests/test_progress.py",
            "--ignore=tests/test_simulate.py",
            "--ignore=tests/test_encoding_conformance.py",
            "--ignore=tests/test_boundary_conformance.py",
            "--ignore=tests/test_witness_conformance.py",
            "--ignore=tests/test_vacuity.py",
            "--ignore=tests/test_assumptions.py",
            "--ignore=tests/test_fuzz_differential.py",
            *(f"--ignore={path}" for path in ASIDE),
        ),
        (MODEL, REFERENCE, ENCODING),
        # the rest of the test suite: 15-40 s per mutant that gets this far; on request
        default=False,
    ),
    Stage(
        "drivers",
        "pytest",
        # the proof drivers' own tests: Houdini, BMC and its confirmation, the defect
        # searches, vacuity, the abstract cone, progress
        (
            "tests/test_houdini.py",
            "tests/test_vacuity.py",
            "tests/test_progress.py",
            # the cooperative environment read the same in Python and Z3, and its resets
            "tests/test_assumptions.py",
            "tests/test_progress_resets.py",
            "tests/test_check_replay.py",
            "tests/test_check_obligations.py",
            "tests/test_defect_divergence.py",
            "tests/test_defect_job.py",
            "tests/test_defect_findings.py",
            "tests/test_defect_shortest.py",
            "tests/test_accel.py",
            "tests/test_unrolling.py",
            # verify's rows, their JSON and verdict, and the checked-in results' depth
            "tests/test_verify_verdict.py",
            "tests/test_results_table.py",
            # last: its BMC builds terms that change the witnesses the tests above see
            # (run in one process, Z3's answers depend on the terms built before)
            "tests/test_defect_search_steps.py",
        ),
        (PROPS, PROGRESS, *DRIVERS),
    ),
    Stage(
        "verify",
        "cli",
        ("verify", "--variant", "fixed", "--no-necessity", "--jobs", "1", "--timeout", "120"),
        (ENCODING, PROPS, PROGRESS, *DRIVERS),
    ),
)
STAGES_BY_NAME = {s.name: s for s in STAGES}

FIRST: dict[str, tuple[str, ...]] = {
    "vmballoon/proofs/defects.py": (
        "tests/test_defect_job.py",
        "tests/test_defect_shortest.py",
        "tests/test_defect_findings.py",
        "tests/test_defect_divergence.py",
    ),
    "vmballoon/proofs/abstract_reach.py": ("tests/test_defect_divergence.py",),
    "vmballoon/proofs/progress.py": (
        "tests/test_progress.py",
        "tests/test_assumptions.py",
        "tests/test_progress_resets.py",
    ),
    "vmballoon/proofs/check.py": (
        "tests/test_check_obligations.py",
        "tests/test_check_replay.py",
        "tests/test_verify_verdict.py",
        "tests/test_results_table.py",
        "tests/test_houdini.py",
    ),
    "vmballoon/proofs/unrolling.py": ("tests/test_unrolling.py", "tests/test_accel.py"),
    "vmballoon/proofs/vacuity.py": ("tests/test_vacuity.py",),
    "vmballoon/proofs/houdini.py": ("tests/test_houdini.py",),
}
"""The drivers stage's tests of each proof driver, run first for its mutants."""


def stages_for(rel: str, only: list[str] | None = None) -> list[Stage]:
    """The stages that can kill a mutant of ``rel``, cheapest first (``only``: these)."""
    return [
        s
        for s in STAGES
        if s.applies_to(rel) and (s.name in only if only is not None else s.default)
    ]
