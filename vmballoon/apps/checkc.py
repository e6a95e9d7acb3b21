"""``vmballoon check-c FILE.c``: the reviewer's command for a patch of the driver.

It compiles ``FILE.c`` in the harness (:mod:`vmballoon.harness`), then lets the
differential fuzzer (:mod:`vmballoon.apps.fuzz`) build scenarios with the model of
variant ``--against`` (default ``fixed``) and runs each scenario through the
compiled file too, step by step.  After every step it checks every property on
the C's own observable trace (:mod:`vmballoon.apps.ctrace`) and compares the C's
event log and state with the model's.

* A **regression**: the C violates a property on a scenario where the model
  variant does not.  Hypothesis shrinks the scenario; it is written to ``--out``.
* A **divergence**: the C's log differs from the model variant's (information:
  the patch changes behaviour).  The first one found is shrunk and written too.
* Exit status 0: no regression; 1: a regression (or, with ``--strict``, a
  divergence); 2: bad input (missing file, a source that does not compile,
  unknown variant).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.stateful import get_state_machine_test, invariant

from vmballoon.apps.drawpool import pinned_constant_pool
from vmballoon.apps.fuzz import DifferentialMachine, abandoned, campaign_settings
from vmballoon.core import assumptions as asm
from vmballoon.core.argtypes import nonnegative_int, positive_int, variant_name
from vmballoon.core.minimize import minimize
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import Variant, parse_variant
from vmballoon.model.machine import event_log
from vmballoon.model.properties import check_trace

EXIT_OK, EXIT_FOUND, EXIT_USAGE = 0, 1, 2
NO_SHRINK = (Phase.explicit, Phase.generate)
"""Hypothesis finds; :func:`vmballoon.core.minimize.minimize` shrinks the scenario itself
(far fewer replays)."""
MINIMIZE_BUDGET = 300
"""Replays of the compiled C the minimiser may spend on one scenario."""


@dataclass
class Finding:
    """A regression or a divergence, on the scenario that shows it."""

    kind: str  # "regression", "divergence" or "timeout"
    properties: list[str]
    message: str
    scenario: Scenario
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "properties": self.properties,
            "message": self.message,
            "steps": len(self.scenario.steps),
            "scenario": str(self.path) if self.path else None,
        }


@dataclass
class Campaign:
    """What the machine saw in one campaign (class-level: Hypothesis builds the machines)."""

    failing: Finding | None = None  # the last failure raised: after shrinking, the minimal one
    divergence: Finding | None = None  # the first divergence seen (not shrunk)
    examples: int = 0
    ignore: set[str] = field(default_factory=set)


class CheckMachine(DifferentialMachine):
    """The model of :attr:`variant` builds the scenario; the compiled file follows it."""

    impls: tuple[str, ...] = ()
    steady_odds = 2
    """A steady host in every second example: a patch is mostly in the paths a grown
    balloon takes (full batches, batched deflation, the rate ceiling), which an
    erratic host rarely lets the balloon reach (with one in eight, the default of
    ``vmballoon fuzz``, 60 examples held 0 or 1 batched unlocks)."""
    binary: ClassVar[Path]
    fail_on: ClassVar[str] = "regression"  # or "divergence"
    campaign: ClassVar[Campaign]

    def __init__(self) -> None:
        super().__init__()
        self.checker: Any = None
        self.c_driver: Any = None
        self.model_violates: set[str] = set()  # properties the model variant violates so far
        self.campaign.examples += 1

    def teardown(self) -> None:
        if abandoned():  # not an example for Hypothesis's count either
            self.campaign.examples -= 1
        if self.c_driver is not None:
            self.c_driver.close()
        super().teardown()

    def properties_checked(self) -> None:  # not an invariant here: the model is the yardstick
        """The model variant's own violations are not the C's regressions."""

    def _fail(self, finding: Finding) -> None:
        self.campaign.failing = finding
        raise AssertionError(f"{finding.kind}: {finding.message}")

    def _run(self, name: str, data: Any) -> None:
        from vmballoon.apps.ctrace import CTraceChecker
        from vmballoon.harness.process import DriverTimeout
        from vmballoon.harness.replay import start

        first_step = self.state is None or not self.scenario.steps
        super()._run(name, data)
        sc = self.scenario
        try:
            if first_step and self.c_driver is None:
                base = Scenario(steps=(), frames=sc.frames, pfn_base=sc.pfn_base,
                                totalram_pages=sc.totalram_pages)  # fmt: skip
                self.c_driver = start(self.binary, base, trace=True)
                self.checker = CTraceChecker(self.c_driver, self.variant)
            drv = self.c_driver
            drv.env = drv.env._replace(hv_script=sc.hv, alloc_script=sc.alloc,
                                       vmci_script=sc.vmci)  # fmt: skip
            first = len(drv.commands)
            drv.step(name)
            self.checker.after_step(name, first)
        except DriverTimeout as exc:
            self._fail(Finding("timeout", [], str(exc), sc))

    @invariant()
    def c_checked(self) -> None:
        """Regressions (properties the C breaks and the model variant keeps), divergences."""
        if self.state is None or self.checker is None:
            return
        sc = self.scenario
        expected = event_log(self.state)
        got = {"format": expected["format"], "events": self.c_driver.events(),
               "final": self.c_driver.state()}  # fmt: skip
        if got != expected:
            first = log_difference(expected, got)
            finding = Finding("divergence", [], first, sc)
            if self.campaign.divergence is None:
                self.campaign.divergence = finding
            if self.fail_on == "divergence":
                self._fail(finding)
        if self.fail_on != "regression" or outside_assumptions(sc):
            return
        c_props = {v.prop: v.message for v in self.checker.violations}
        c_props = {p: m for p, m in c_props.items() if p not in self.campaign.ignore}
        if not c_props:
            return
        if not set(c_props) <= self.model_violates:  # a violation seen on a prefix stays
            self.model_violates = {v.prop for v in check_trace(sc, self.variant)}
        regressed = sorted(p for p in c_props if p not in self.model_violates)
        if regressed:
            message = "; ".join(f"{p}: {c_props[p]}" for p in regressed)
            self._fail(Finding("regression", regressed, message, sc))


def log_difference(expected: dict[str, Any], got: dict[str, Any]) -> str:
    """Where event log ``got`` (the C's) first differs from ``expected`` (the model's)."""
    ev_m, ev_c = expected["events"], got["events"]
    for i, (a, b) in enumerate(zip(ev_m, ev_c, strict=False)):
        if a != b:
            return f"event #{i}: model {json.dumps(a)}, C {json.dumps(b)}"
    if len(ev_m) != len(ev_c):
        return f"the model logs {len(ev_m)} events, the C {len(ev_c)}"
    for key, value in expected["final"].items():
        if got["final"].get(key) != value:
            return f"final.{key}: model {json.dumps(value)}, C {json.dumps(got['final'].get(key))}"
    return "the logs differ"


def run_check(binary: Path, variant: Variant, examples: int, seed: int, fail_on: str,
              steps: int = 12, ignore: set[str] | None = None) -> Campaign:  # fmt: skip
    """One campaign; the campaign's failing finding is the shrunk one."""
    campaign = Campaign(ignore=set(ignore or ()))
    machine = type(
        "CheckC",
        (CheckMachine,),
        {"variant": variant, "binary": binary, "fail_on": fail_on, "campaign": campaign},
    )
    test = get_state_machine_test(
        machine, settings=settings(campaign_settings(examples, steps), phases=NO_SHRINK)
    )
    with contextlib.suppress(AssertionError), pinned_constant_pool():
        hypothesis_seed(seed)(test)()  # the finding is in campaign.failing
    return campaign


def outside_assumptions(sc: Scenario) -> bool:
    """A guest the properties are not claimed for (frames at or above 2**52)."""
    return bool(asm.broken(asm.GLOBAL, asm.Guest(sc.frames, sc.pfn_base, sc.totalram)))


def regressed(binary: Path, scenario: Scenario, variant: Variant) -> list[str]:
    """Properties the C violates on ``scenario`` and the model variant does not."""
    from vmballoon.apps.ctrace import check_c_trace
    from vmballoon.harness.process import DriverTimeout

    try:
        c_props = {v.prop for v in check_c_trace(binary, scenario, variant)}
    except DriverTimeout:
        return ["timeout"]
    if not c_props or outside_assumptions(scenario):
        return []
    return sorted(c_props - {v.prop for v in check_trace(scenario, variant)})


def diverges(binary: Path, scenario: Scenario, variant: Variant) -> bool:
    """Whether the C's event log differs from the model variant's on ``scenario``."""
    from vmballoon import model
    from vmballoon.harness.process import DriverTimeout
    from vmballoon.harness.replay import replay

    try:
        return replay(scenario, source=None, binary=binary) != model.replay(scenario, variant)
    except DriverTimeout:
        return True


def first_divergence(binary: Path, scenario: Scenario, variant: Variant) -> str:
    """Where the C's log first differs from the model variant's on ``scenario``."""
    from vmballoon import model
    from vmballoon.harness.replay import replay

    return log_difference(model.replay(scenario, variant),
                             replay(scenario, binary=binary))  # fmt: skip


def _write(finding: Finding, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.scenario.json"
    path.write_text(json.dumps(finding.scenario.to_json(), indent=1) + "\n", encoding="utf-8")
    finding.path = path


def check_c(source: Path, against: Variant, examples: int, seed: int, out: Path,
            strict: bool = False) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """The whole check: exit status and report (raises ``BuildError`` for a bad source)."""
    from vmballoon.apps.ctrace import NOT_OBSERVABLE, check_c_trace
    from vmballoon.harness.replay import binary_for

    started = time.perf_counter()
    binary = binary_for(source=source)
    found = run_check(binary, against, examples, seed, "regression")
    regressions: list[Finding] = []
    if found.failing is not None:
        f = found.failing
        if f.kind == "regression":
            props = set(f.properties)
            f.scenario = minimize(
                f.scenario,
                lambda sc: bool(props & set(regressed(binary, sc, against))),
                budget=MINIMIZE_BUDGET,
            )
            f.properties = regressed(binary, f.scenario, against)
            c_msgs = {v.prop: v.message for v in check_c_trace(binary, f.scenario, against)}
            f.message = "; ".join(f"{p}: {c_msgs.get(p, '')}" for p in f.properties)
        _write(f, out, f"{f.kind}." + ("-".join(f.properties) or "hang"))
        regressions.append(f)
    divergence = found.divergence
    if divergence is not None:
        divergence.scenario = minimize(
            divergence.scenario, lambda sc: diverges(binary, sc, against), budget=MINIMIZE_BUDGET
        )
        divergence.message = first_divergence(binary, divergence.scenario, against)
        _write(divergence, out, "divergence")
    code = EXIT_FOUND if regressions or (strict and divergence) else EXIT_OK
    report = {
        "source": str(source),
        "against": against.name,
        "examples": found.examples,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "regressions": [r.to_json() for r in regressions],
        "divergence": divergence.to_json() if divergence else None,
        "not_observable": list(NOT_OBSERVABLE),
        "exit": code,
    }
    return code, report


def print_report(report: dict[str, Any]) -> None:
    """The report as text."""
    print(f"check-c {report['source']} against {report['against']}: {report['examples']} "
          f"scenarios (seed {report['seed']}) in {report['seconds']} s")  # fmt: skip
    for r in report["regressions"]:
        names = ", ".join(r["properties"]) or "the driver does not return"
        print(f"REGRESSION {names}: the C violates it, {report['against']} does not: "
              f"{r['message']}")  # fmt: skip
        print(f"  minimized scenario ({r['steps']} steps): {r['scenario']}")
    if not report["regressions"]:
        print(f"no regression: every property {report['against']} keeps, the C keeps")
    d = report["divergence"]
    if d:
        print(f"divergence (information): the C behaves unlike {report['against']}: "
              f"{d['message']}")  # fmt: skip
        print(f"  minimized scenario ({d['steps']} steps): {d['scenario']}")
    else:
        print(f"no divergence: the C's event logs equal {report['against']}'s")
    print("not observable on the C (inflate's locals): " + ", ".join(report["not_observable"]))


def cmd_check_c(args: argparse.Namespace) -> int:
    """``vmballoon check-c``."""
    from vmballoon.harness.build import BuildError
    from vmballoon.harness.process import HarnessError

    source = Path(args.source)
    if not source.is_file():
        print(f"error: {source}: no such file", file=sys.stderr)
        return EXIT_USAGE
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    try:
        code, report = check_c(source, parse_variant(args.against), args.examples, seed,
                               Path(args.out), args.strict)  # fmt: skip
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FOUND
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report)
    return code


def add_check_c_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``vmballoon check-c``."""
    p = sub.add_parser("check-c", help="check a driver source (a proposed patch) against a variant")
    p.add_argument("source", metavar="FILE.c", help="the driver source to check")
    p.add_argument("--against", type=variant_name, default="fixed",
                   help="the model variant it must keep the properties of (default fixed)")
    p.add_argument("--examples", type=positive_int, default=200, help="scenarios (default 200)")
    p.add_argument("--seed", type=nonnegative_int, default=None, help="seed (printed)")
    p.add_argument("--out", default="check-c-out", metavar="DIR",
                   help="where minimized scenarios are written (default check-c-out)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--strict", action="store_true", help="a divergence also fails (exit 1)")
    p.set_defaults(func=cmd_check_c)  # fmt: skip
