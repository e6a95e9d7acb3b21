"""``vmballoon check-c FILE.c``: the reviewer's command for a patch of the driver.

It compiles ``FILE.c`` in the harness (:mod:`vmballoon.harness`), then judges it
against the model of variant ``--against`` (default ``fixed``) in two phases:

1. **the corpus** (:func:`corpus`): every shipped scenario (``spec/findings``,
   ``spec/examples``, ``tests/golden``, ``tests/scenarios``) is replayed on the C and
   on the model, the same on every seed, so a patch that breaks a branch one of them
   takes is found whatever the seed;
2. **the fuzzer**: the differential fuzzer (:mod:`vmballoon.apps.fuzz`) builds
   scenarios with the model and runs each through the compiled file too, step by
   step.

After every step the properties are checked on the C's own observable trace
(:mod:`vmballoon.apps.ctrace`) and the C's event log and state are compared with
the model's.  Each finding (:class:`Finding`) is one of :class:`Kind`:

* ``regression``: the C violates a property on a scenario where the model variant
  does not;
* ``known-defect``: the same, and the violation is one of the seed's known defects
  (the model of FIXED without that fix violates the property on the scenario, per
  the necessity matrix of ``spec/verify-results.json``, and the C's event log there
  is that model's): the finding names the fix flag that removes it;
* ``divergence``: the C's log differs from the model variant's (information: the
  patch changes behaviour), shown as the fields that differ;
* ``outside-assumptions``: a divergence or violation on a scenario outside the
  declared assumptions every result rests on (``vmballoon/core/assumptions.py``,
  e.g. ``pfn_below_2_52``): reported apart, never as a behaviour change;
* ``timeout``: the C did not return from an entry point.

Each is minimized and written to ``--out`` as a scenario whose ``meta`` says what
it shows (source and its sha256, variant, property, message, seed) and the exact
``vmballoon replay`` commands that show it again.  Exit status 0: no regression;
1: a regression or known defect (or, with ``--strict``, a divergence); 2: bad
input (missing file, a source that does not compile, unknown variant, an ``--out``
that is not a folder); 130: interrupted (what was found is written, the folder
marked INCOMPLETE).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import random
import shlex
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

from hypothesis import Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.stateful import get_state_machine_test, invariant

from vmballoon.apps.argtypes import nonnegative_int, output_dir, positive_int, variant_name
from vmballoon.apps.drawpool import pinned_constant_pool
from vmballoon.apps.fuzz import DifferentialMachine, LogAgreement, abandoned, campaign_settings
from vmballoon.apps.outdir import OutDirBusy, RunDir
from vmballoon.core import assumptions as asm
from vmballoon.core.minimize import minimize
from vmballoon.core.protocol import EVENTS_FORMAT
from vmballoon.core.scenario import Scenario, ScenarioError, load_scenario
from vmballoon.core.specdata import PACKAGE_DIR, spec_dir
from vmballoon.core.variants import FIX_NAMES, FIXED, Variant, parse_variant
from vmballoon.harness.coverage import Coverage
from vmballoon.harness.process import HarnessError
from vmballoon.harness.replay import Follower
from vmballoon.model.machine import event_log
from vmballoon.model.properties import check_trace
from vmballoon.model.state import State

EXIT_OK, EXIT_FOUND, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
NO_SHRINK = (Phase.explicit, Phase.generate)
"""Hypothesis finds; :func:`vmballoon.core.minimize.minimize` shrinks the scenario itself
(far fewer replays)."""
MINIMIZE_BUDGET = 300
"""Replays of the compiled C the minimiser may spend on one scenario."""
REPORT = "report.json"
"""The report's file in ``--out`` (also what an interrupted run found)."""


class Kind(StrEnum):
    """What a finding is."""

    REGRESSION = "regression"
    KNOWN_DEFECT = "known-defect"
    DIVERGENCE = "divergence"
    OUTSIDE = "outside-assumptions"
    TIMEOUT = "timeout"


FAILS = frozenset({Kind.REGRESSION, Kind.KNOWN_DEFECT, Kind.TIMEOUT})
"""The kinds that make check-c exit 1 (a divergence too with ``--strict``)."""


class Origin(StrEnum):
    """Which phase found a finding."""

    CORPUS = "corpus"
    FUZZER = "fuzzer"


@dataclass
class Finding:
    """A regression, known defect, divergence, ... on the scenario that shows it."""

    kind: Kind
    properties: list[str]
    message: str
    scenario: Scenario
    origin: Origin = Origin.FUZZER
    corpus_file: str | None = None  # the corpus scenario it was found on
    fixes: list[str] = field(default_factory=list)  # known-defect: the flags that remove it
    assumptions: list[str] = field(default_factory=list)  # outside: the assumptions broken
    crash_line: str | None = None  # where the C crashed, when the runtime says
    minimized: bool = False
    path: Path | None = None
    replay: list[str] = field(default_factory=list)  # commands that show it again

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "origin": str(self.origin),
            "corpus_file": self.corpus_file,
            "properties": self.properties,
            "message": self.message,
            "fixes": self.fixes,
            "assumptions": self.assumptions,
            "crash_line": self.crash_line,
            "steps": len(self.scenario.steps),
            "minimized": self.minimized,
            "scenario": str(self.path) if self.path else None,
            "replay": self.replay,
        }


IN_FLIGHT = 2
"""Examples done by the model whose C may still be running: the C of the last ones
works while the model makes the next (two processes, two cores)."""


@dataclass
class Campaign:
    """What the machine saw in one campaign (class-level: Hypothesis builds the machines).

    The C of an example is checked step by step as its replies come, the model going on
    meanwhile: with the next step, and once the example is done with the next example
    (:attr:`backlog`, at most :data:`IN_FLIGHT` examples behind).  The examples are
    checked in the order Hypothesis made them, so the findings are those a check that
    waited for the C at every step would make: the first failing example ends the
    campaign (:class:`CampaignDone`), the first divergence is the first example's."""

    failing: Finding | None = None  # the first failing example's finding
    divergence: Finding | None = None  # the first divergence inside the assumptions
    outside: Finding | None = None  # the first divergence or violation outside them
    examples: int = 0  # examples checked (the failing one included; not the abandoned)
    ignore: set[str] = field(default_factory=set)
    backlog: deque[CheckMachine] = field(default_factory=deque)  # done, C still checked
    in_flight: int = IN_FLIGHT  # examples the backlog may hold when the next one starts
    wait_each_step: bool = False  # wait for the C at every step (the reference ordering)
    error: HarnessError | None = None  # the harness failed while an example was checked

    def settle(self, wait: bool, keep: int = 0) -> None:
        """Check the examples of :attr:`backlog`, oldest first, as far as the C has
        answered (``wait``: all but the newest ``keep``, waiting for the C).  A failing
        finding or a failed harness ends the campaign: the examples after it are dropped."""
        try:
            while self.backlog and not self.done:
                machine = self.backlog[0]
                found = machine.check_due(wait=wait and len(self.backlog) > keep)
                if found is None and machine.due:
                    return  # its C is still running: the later examples wait their turn
                self.backlog.popleft().close()
                self.examples += not machine.abandoned
                self.failing = found
        except HarnessError as exc:
            self.error = exc
        if self.done:
            self.drop()

    @property
    def done(self) -> bool:
        """Whether the campaign has what ends it (a failing finding, a failed harness)."""
        return self.failing is not None or self.error is not None

    def drop(self) -> None:
        """Stop the C of every example still in :attr:`backlog` unchecked."""
        while self.backlog:
            self.backlog.popleft().close()


class CampaignDone(KeyboardInterrupt):
    """Raised inside the machine once the campaign is done (:attr:`Campaign.done`): the
    finding is an earlier example's, so Hypothesis must not take it for this example's
    failure; it lets an interrupt through untouched and :func:`run_check` ends there."""


class CheckMachine(DifferentialMachine):
    """The model of :attr:`variant` builds the scenario; the compiled file follows it."""

    impls: tuple[str, ...] = ()
    steady_odds = 2
    """A steady host in every second example: a patch is mostly in the paths a grown
    balloon takes (full batches, batched deflation, the rate ceiling), which an
    erratic host rarely lets the balloon reach (with one in eight, the default of
    ``vmballoon fuzz``, 60 examples held 0 or 1 batched unlocks)."""
    model_checked = False  # the model is the yardstick: its own violations are not the C's
    records_coverage = False  # the fuzzer's coverage is not check-c's report
    binary: ClassVar[Path]
    fail_on: ClassVar[str] = "regression"  # or "divergence"
    campaign: ClassVar[Campaign]

    def __init__(self) -> None:
        super().__init__()
        self.checker: Any = None
        self.follower: Follower | None = None
        self.model_violates: set[str] = set()  # properties the model variant violates so far
        self.agreement = LogAgreement()
        self.due: deque[tuple[State, Scenario]] = deque()  # steps the C has not answered yet
        self.setup_due = 0  # replies due before the first step's: module init, attach
        self.abandoned = False  # Hypothesis abandoned it: not an example for its count

    def teardown(self) -> None:
        campaign = self.campaign
        self.abandoned = abandoned()
        # an example Hypothesis abandoned (its data ran out) still ran its steps
        settled = sys.exc_info()[0] is None or self.abandoned
        try:
            if settled:
                campaign.backlog.append(self)  # checked as the C's replies come
                campaign.settle(wait=True, keep=campaign.in_flight)
            else:
                self.close()
        finally:
            super().teardown()
        if campaign.done and settled:
            raise CampaignDone

    def close(self) -> None:
        """Stop the C of this example."""
        if self.follower is not None:
            self.follower.close()

    def properties_checked(self) -> None:  # not an invariant here: the model is the yardstick
        """The model variant's own violations are not the C's regressions."""

    def _c_beside(self, name: str) -> Follower | None:
        """The compiled file, loaded at the first step, started on entry point ``name``
        beside the model (:meth:`DifferentialMachine._c_beside`)."""
        from vmballoon.apps.ctrace import CTraceChecker

        sc = self.scenario
        if self.follower is None:
            base = Scenario(
                steps=(),
                frames=sc.frames,
                pfn_base=sc.pfn_base,
                totalram_pages=sc.totalram_pages,
            )
            # module init and the observer's attach run beside the model's first step (a
            # driver that does not return from them is a timeout of c_checked's collect)
            self.follower = Follower(self.binary, base, trace=True, wait=False)
            self.checker = CTraceChecker(self.follower.driver, self.variant, wait=False)
            self.setup_due = self.follower.driver.pending
        self.follower.begin(sc, name)
        return self.follower

    @invariant()
    def c_checked(self) -> None:
        """Regressions (properties the C breaks and the model variant keeps), divergences;
        both apart when the scenario is outside the declared assumptions.

        A step is checked when the C's reply to it has come (:class:`Campaign`): the
        model goes on meanwhile, and the steps still due when the example ends are
        checked while the next examples run."""
        stop_if_signalled()
        if self.state is None or self.follower is None:
            return
        campaign = self.campaign
        self.due.append((self.state, self.scenario))
        wait = campaign.wait_each_step
        campaign.settle(wait=wait)
        if not campaign.backlog and not campaign.done:
            try:
                campaign.failing = self.check_due(wait=wait)
            except HarnessError as exc:
                campaign.error = exc
        if campaign.done:
            raise CampaignDone

    def check_due(self, wait: bool) -> Finding | None:
        """Check the steps in :attr:`due`, oldest first, as the C's replies to them come
        (``wait``: all of them, waiting for the C; else those already answered); the
        first failing finding (the steps after it are left unchecked)."""
        from vmballoon.harness.process import DriverTimeout

        if self.follower is None:  # no step: nothing ran on the C
            return None
        driver = self.follower.driver
        try:
            while self.due and (wait or driver.reply_ready()):
                driver.collect()
                if self.setup_due:
                    self.setup_due -= 1
                    continue
                found = self._check_step(*self.due.popleft())
                if found is not None:
                    return found
        except DriverTimeout as exc:
            return Finding(Kind.TIMEOUT, [], str(exc), self.due[0][1])
        return None

    def _check_step(self, state: State, sc: Scenario) -> Finding | None:
        """The C's state after the step that ended the scenario ``sc`` (its reply just
        taken) against the model's ``state`` there; the finding that fails the check."""
        assert self.follower is not None
        self.checker.after_step()
        campaign = self.campaign
        outside = violated_assumptions(sc)
        events, final = self.follower.driver.taken_log()
        if not self.agreement.holds(state, self.follower.driver.env.log, final):
            c_log = {"format": EVENTS_FORMAT, "events": events, "final": final}
            message = log_difference(event_log(state), c_log)
            finding = Finding(Kind.DIVERGENCE, [], message, sc)
            if outside:
                if campaign.outside is None:
                    campaign.outside = dataclasses.replace(
                        finding, kind=Kind.OUTSIDE, assumptions=outside
                    )
            elif campaign.divergence is None:
                campaign.divergence = finding
            if self.fail_on == "divergence" and not outside:
                return finding
        if self.fail_on != "regression":
            return None
        c_props = {v.prop: v.message for v in self.checker.violations}
        c_props = {p: m for p, m in c_props.items() if p not in campaign.ignore}
        if not c_props:
            return None
        if not set(c_props) <= self.model_violates:  # a violation seen on a prefix stays
            asked = frozenset(c_props)  # the others are not asked: a long check is costly
            self.model_violates = {v.prop for v in check_trace(sc, self.variant, asked)}
        regressed = sorted(p for p in c_props if p not in self.model_violates)
        if not regressed:
            return None
        message = "; ".join(f"{p}: {c_props[p]}" for p in regressed)
        if outside:
            if campaign.outside is None or not campaign.outside.properties:
                campaign.outside = Finding(
                    Kind.OUTSIDE, regressed, message, sc, assumptions=outside
                )
            return None
        return Finding(Kind.REGRESSION, regressed, message, sc)


def _differences(path: str, a: Any, b: Any, out: list[tuple[str, Any, Any]]) -> None:
    """The leaves where ``a`` and ``b`` differ, as ``(path, a's, b's)``."""
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            _differences(f"{path}.{key}" if path else str(key), a.get(key), b.get(key), out)
        return
    if (
        isinstance(a, list)
        and isinstance(b, list)
        and len(a) == len(b)
        and not all(isinstance(x, int) for x in (*a, *b))
    ):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _differences(f"{path}[{i}]", x, y, out)
        return
    out.append((path, a, b))


def _brief(value: Any) -> str:
    text = json.dumps(value)
    if isinstance(value, list) and len(value) > 8:
        text = f"[{', '.join(json.dumps(v) for v in value[:4])}, ... {len(value)} items]"
    return text


def field_differences(expected: Any, got: Any, path: str = "") -> list[str]:
    """Only the fields where ``got`` (the C's) differs from ``expected`` (the model's):
    ``path: model X, C Y`` each."""
    out: list[tuple[str, Any, Any]] = []
    _differences(path, expected, got, out)
    return [f"{p}: model {_brief(a)}, C {_brief(b)}" for p, a, b in out]


def log_difference(expected: dict[str, Any], got: dict[str, Any]) -> str:
    """Where event log ``got`` (the C's) first differs from ``expected`` (the model's):
    the first event that differs, by the fields that differ, else the final state's
    fields that differ (not the whole objects)."""
    ev_m, ev_c = expected["events"], got["events"]
    for i, (a, b) in enumerate(zip(ev_m, ev_c, strict=False)):
        if a != b:
            what = a.get("cmd") or a.get("name") or a.get("kind") or ""
            head = f"event #{i} ({a.get('ev')}{' ' + what if what else ''})"
            if a.get("ev") != b.get("ev"):
                return f"{head}: model {json.dumps(a)}, C {json.dumps(b)}"
            return f"{head}: " + "; ".join(field_differences(a, b))
    if len(ev_m) != len(ev_c):
        longer, who = (ev_m, "model") if len(ev_m) > len(ev_c) else (ev_c, "C")
        return (
            f"the model logs {len(ev_m)} events, the C {len(ev_c)} (the {who}'s next: "
            f"{json.dumps(longer[min(len(ev_m), len(ev_c))])})"
        )
    diffs = field_differences(expected["final"], got["final"], "final")
    return "; ".join(diffs) if diffs else "the logs differ"


def violated_assumptions(sc: Scenario) -> list[str]:
    """The names of the declared assumptions every result rests on (``GLOBAL``, e.g.
    ``pfn_below_2_52``) that scenario ``sc`` breaks
    (:func:`vmballoon.core.assumptions.scenario_outside`): the properties and the model
    are not claimed for it, so what it shows is reported apart."""
    return [o.name for o in asm.scenario_outside(sc, asm.GLOBAL)]


def outside_assumptions(sc: Scenario) -> bool:
    """A guest the properties are not claimed for (frames at or above 2**52)."""
    return bool(violated_assumptions(sc))


def run_check(
    binary: Path,
    variant: Variant,
    examples: int,
    seed: int,
    fail_on: str,
    steps: int = 12,
    ignore: set[str] | None = None,
    campaign: Campaign | None = None,
) -> Campaign:
    """One campaign; the campaign's failing finding is the shrunk one.  ``campaign``:
    the object to record into (so an interrupted run still has what it saw)."""
    campaign = campaign or Campaign()
    campaign.ignore |= set(ignore or ())
    machine = type(
        "CheckC",
        (CheckMachine,),
        {"variant": variant, "binary": binary, "fail_on": fail_on, "campaign": campaign},
    )
    test = get_state_machine_test(
        machine, settings=settings(campaign_settings(examples, steps), phases=NO_SHRINK)
    )
    try:
        with contextlib.suppress(CampaignDone), pinned_constant_pool():
            hypothesis_seed(seed)(test)()  # the finding is in campaign.failing
        campaign.settle(wait=True)  # the examples whose C was still being checked
    finally:
        campaign.drop()
    if campaign.error is not None:
        raise campaign.error
    return campaign


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


def where_logs_part(binary: Path, scenario: Scenario, variant: Variant) -> str:
    """Where the C's log first differs from the model variant's on ``scenario``."""
    from vmballoon import model
    from vmballoon.harness.replay import replay

    return log_difference(model.replay(scenario, variant), replay(scenario, binary=binary))


# -- known defects, the corpus, the crash's line ------------------------------------------


@cache
def necessity() -> dict[str, tuple[str, ...]]:
    """The necessity matrix of ``spec/verify-results.json``: for each fix flag, the
    properties FIXED without it violates (``{}`` when the file is missing)."""
    try:
        data = json.loads((spec_dir() / "verify-results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    raw = data.get("necessity") if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        return {}
    return {
        fix: tuple(str(p) for p in props)
        for fix, props in raw.items()
        if fix in FIX_NAMES and isinstance(props, list)
    }


def known_defect_fixes(scenario: Scenario, prop: str, c_log: dict[str, Any]) -> list[str]:
    """The fix flags whose known seed defect is this violation of ``prop`` on
    ``scenario``: the necessity matrix says FIXED without the fix violates ``prop``, the
    model of FIXED without it does so on this very scenario (FIXED does not), and the C
    does there exactly what that model does (its event log ``c_log`` is the model's): the
    same defect, not another violation of the same property."""
    from vmballoon import model

    only = frozenset({prop})
    candidates = [fix for fix, props in necessity().items() if prop in props]
    if not candidates or check_trace(scenario, FIXED, only):
        return []
    return [
        fix
        for fix in candidates
        if check_trace(scenario, FIXED.without(fix), only)
        and model.replay(scenario, FIXED.without(fix)) == c_log
    ]


def crash_line(binary: Path, scenario: Scenario) -> str | None:
    """``file:line (function)`` of the C where the driver crashed on ``scenario``, when the
    runtime reports one (:func:`vmballoon.apps.cview.crash_site`); None when it did not
    crash or cannot say."""
    from vmballoon.apps.cview import crash_site
    from vmballoon.harness.process import HarnessError
    from vmballoon.harness.replay import start

    try:
        with start(binary, scenario) as drv:
            for name in scenario.steps:
                if drv.exited or drv.crashed:
                    break
                drv.step(name)
            return crash_site(drv) if drv.crashed else None
    except HarnessError:
        return None


REPO_ROOT = PACKAGE_DIR.parent
CORPUS: tuple[tuple[str, Callable[[], Path], str], ...] = (
    ("spec/findings", lambda: spec_dir() / "findings", "*.json"),
    ("spec/examples", lambda: spec_dir() / "examples", "*.scenario.json"),
    ("tests/golden", lambda: REPO_ROOT / "tests" / "golden", "*.scenario.json"),
    ("tests/scenarios", lambda: REPO_ROOT / "tests" / "scenarios", "*.json"),
)
"""The deterministic corpus: folder label, where it is, which files."""


@dataclass
class Corpus:
    """The corpus's scenarios, and the folders or files that could not be read."""

    scenarios: list[tuple[str, Scenario]]
    missing: list[str]


CORPUS_MAX_FRAMES = 1 << 20
"""Guests above this (4 GiB) are not replayed by check-c's corpus: the C is observed at
every environment call, and a balloon of millions of frames makes each observation as
long as the balloon.  Such a scenario is listed as not replayed, with the command that
checks it on its own (``vmballoon replay FILE --impl c --check``)."""


def corpus() -> Corpus:
    """Every scenario of the corpus (sorted, so every run replays them in one order).
    A folder that is not there (an installed package has no ``tests/``), a file that
    does not load, or a guest above :data:`CORPUS_MAX_FRAMES` is listed in ``missing``:
    the report says so."""
    scenarios: list[tuple[str, Scenario]] = []
    missing: list[str] = []
    for label, where, pattern in CORPUS:
        folder = where()
        files = sorted(folder.glob(pattern)) if folder.is_dir() else []
        if not files:
            missing.append(f"{label} (no scenarios found at {folder})")
        for path in files:
            try:
                scenario = load_scenario(path)
            except (OSError, ScenarioError) as exc:
                missing.append(f"{label}/{path.name} ({exc})")
                continue
            if scenario.frames > CORPUS_MAX_FRAMES:
                missing.append(
                    f"{label}/{path.name} (a guest of {scenario.frames} frames, above "
                    f"{CORPUS_MAX_FRAMES}: check it alone with vmballoon replay {path} "
                    "--impl c --check)"
                )
                continue
            scenarios.append((f"{label}/{path.name}", scenario))
    return Corpus(scenarios, missing)


def judge(
    binary: Path, scenario: Scenario, against: Variant, ignore: frozenset[str] = frozenset()
) -> list[Finding]:
    """Every finding one whole scenario shows on the C against the model of ``against``
    (properties in ``ignore`` are not asked of the model: its check of a long scenario
    is the costly part)."""
    from vmballoon import model
    from vmballoon.apps.ctrace import c_trace
    from vmballoon.harness.process import DriverTimeout

    try:
        violations, log = c_trace(binary, scenario, against)
    except DriverTimeout as exc:
        return [Finding(Kind.TIMEOUT, [], str(exc), scenario)]
    outside = violated_assumptions(scenario)
    found: list[Finding] = []
    expected = model.replay(scenario, against)
    if log != expected:
        diff = log_difference(expected, log)
        if outside:
            found.append(Finding(Kind.OUTSIDE, [], diff, scenario, assumptions=outside))
        else:
            found.append(Finding(Kind.DIVERGENCE, [], diff, scenario))
    c_props = {v.prop: v.message for v in violations if v.prop not in ignore}
    if c_props:
        kept = {v.prop for v in check_trace(scenario, against, frozenset(c_props))}
        worse = sorted(p for p in c_props if p not in kept)
        if worse:
            message = "; ".join(f"{p}: {c_props[p]}" for p in worse)
            kind = Kind.OUTSIDE if outside else Kind.REGRESSION
            found.append(Finding(kind, worse, message, scenario, assumptions=outside))
    return found


def run_corpus(
    binary: Path,
    against: Variant,
    scenarios: list[tuple[str, Scenario]],
    ignore: frozenset[str] = frozenset(),
    not_replayed: list[str] | None = None,
) -> Iterator[Finding]:
    """The corpus on the C, the smallest guests first: the first finding of each kind and
    property (a property already found is not asked again of later scenarios), each
    yielded as soon as it is found (an interrupted corpus keeps what it found).

    A driver that does not return (a timeout) ends the corpus there: every later
    scenario would wait for the same timeout.  Their names go to ``not_replayed``."""
    seen: set[tuple[Kind, tuple[str, ...]]] = set()
    reported: set[str] = set(ignore)
    ordered = sorted(scenarios, key=lambda s: (s[1].frames, len(s[1].steps)))
    for i, (name, scenario) in enumerate(ordered):
        stop_if_signalled()
        findings = judge(binary, scenario, against, frozenset(reported))
        for f in findings:
            key = (f.kind, tuple(f.properties) if f.kind in FAILS else ())
            if key in seen:
                continue
            seen.add(key)
            if f.kind in FAILS:
                reported.update(f.properties)
            f.origin, f.corpus_file = Origin.CORPUS, name
            yield f
        if any(f.kind == Kind.TIMEOUT for f in findings):
            later = len(ordered) - i - 1
            if later and not_replayed is not None:
                not_replayed.append(
                    f"the {later} scenario(s) after {name} (the driver did not return on it: "
                    "each would wait for the same timeout)"
                )
            return


def finalize(f: Finding, binary: Path, against: Variant) -> None:
    """Minimize ``f``'s scenario (a regression keeps one of its properties regressed, a
    divergence stays a divergence inside the assumptions), then say what it shows on the
    minimized scenario: the C's messages, the known defect and its fix flag, the crash's
    line of C."""
    from vmballoon.apps.ctrace import check_c_trace
    from vmballoon.harness.replay import replay

    if f.kind == Kind.REGRESSION:
        props = set(f.properties)
        f.scenario = minimize(
            f.scenario,
            lambda sc: bool(props & set(regressed(binary, sc, against))),
            budget=MINIMIZE_BUDGET,
        )
        f.minimized = True
        f.properties = regressed(binary, f.scenario, against)
        if f.properties != ["timeout"]:
            c_msgs = {v.prop: v.message for v in check_c_trace(binary, f.scenario, against)}
            f.message = "; ".join(f"{p}: {c_msgs.get(p, '')}" for p in f.properties)
            c_log = replay(f.scenario, binary=binary)
            known = {p: known_defect_fixes(f.scenario, p, c_log) for p in f.properties}
            f.fixes = sorted({fix for fixes in known.values() for fix in fixes})
            if f.properties and all(known.values()):
                f.kind = Kind.KNOWN_DEFECT
    elif f.kind == Kind.DIVERGENCE:
        f.scenario = minimize(
            f.scenario,
            lambda sc: not outside_assumptions(sc) and diverges(binary, sc, against),
            budget=MINIMIZE_BUDGET,
        )
        f.minimized = True
        f.message = where_logs_part(binary, f.scenario, against)
    if f.kind != Kind.TIMEOUT:
        f.crash_line = crash_line(binary, f.scenario)


# -- writing and reporting ----------------------------------------------------------------


def replay_commands(
    path: Path, source: Path, against: Variant, f: Finding, include_dirs: tuple[Path, ...] = ()
) -> list[str]:
    """The exact ``vmballoon replay`` commands that show finding ``f`` again."""
    p, s, v = shlex.quote(str(path)), shlex.quote(str(source)), shlex.quote(against.name)
    inc = "".join(f" --include {shlex.quote(str(d))}" for d in include_dirs)
    c = f"vmballoon replay {p} --impl c --source {s}{inc} --variant {v}"
    cmds = [f"{c} --check", f"{c} --format table"]
    if f.kind in (Kind.DIVERGENCE, Kind.OUTSIDE):
        cmds = [f"{c} --format table", f"vmballoon replay {p} --variant {v} --format table"]
    else:
        cmds.append(f"vmballoon replay {p} --variant {v} --check")
    return cmds


def _file_name(f: Finding, taken: set[str]) -> str:
    base = f"{f.origin}.{f.kind}." + ("-".join(f.properties) or "log")
    name, n = f"{base}.scenario.json", 2
    while name in taken:
        name, n = f"{base}.{n}.scenario.json", n + 1
    taken.add(name)
    return name


@dataclass
class Report:
    """What one check-c run found, by phase."""

    source: Path
    sha256: str
    against: Variant
    seed: int
    corpus_scenarios: int = 0
    corpus_missing: list[str] = field(default_factory=list)
    examples: int = 0
    findings: list[Finding] = field(default_factory=list)
    complete: bool = False
    seconds: float = 0.0
    strict: bool = False
    include_dirs: tuple[Path, ...] = ()
    coverage: dict[str, Coverage] = field(default_factory=dict)
    """With ``--coverage``: the driver's gcov coverage by phase (``corpus``, ``fuzzer``)
    and both (``together``)."""

    def of(self, *kinds: Kind, origin: Origin | None = None) -> list[Finding]:
        """The findings of these kinds (and of ``origin``)."""
        return [f for f in self.findings if f.kind in kinds and origin in (None, f.origin)]

    @property
    def exit(self) -> int:
        """The exit status the findings call for."""
        if not self.complete:
            return EXIT_INTERRUPTED
        if self.of(*FAILS) or (self.strict and self.of(Kind.DIVERGENCE)):
            return EXIT_FOUND
        return EXIT_OK

    def to_json(self) -> dict[str, Any]:
        from vmballoon.apps.ctrace import NOT_OBSERVABLE

        def listed(*kinds: Kind) -> list[dict[str, Any]]:
            return [f.to_json() for f in self.of(*kinds)]

        divergences = listed(Kind.DIVERGENCE)
        return {
            "source": str(self.source),
            "sha256": self.sha256,
            "against": self.against.name,
            "seed": self.seed,
            "complete": self.complete,
            "corpus": {
                "scenarios": self.corpus_scenarios,
                "missing": self.corpus_missing,
                "found": [f.to_json() for f in self.findings if f.origin == Origin.CORPUS],
            },
            "fuzzer": {
                "examples": self.examples,
                "found": [f.to_json() for f in self.findings if f.origin == Origin.FUZZER],
            },
            "examples": self.examples,
            "seconds": self.seconds,
            "regressions": listed(Kind.REGRESSION, Kind.KNOWN_DEFECT, Kind.TIMEOUT),
            "divergence": divergences[0] if divergences else None,
            "outside_assumptions": listed(Kind.OUTSIDE),
            "not_observable": list(NOT_OBSERVABLE),
            "coverage": {k: c.to_json() for k, c in self.coverage.items()} or None,
            "exit": self.exit,
        }


def _write(f: Finding, out: RunDir, report: Report, taken: set[str]) -> None:
    name = _file_name(f, taken)
    path = out.path / name
    f.path = path
    f.replay = replay_commands(path, report.source, report.against, f, report.include_dirs)
    doc = f.scenario.to_json()
    doc["meta"] = {
        "tool": "vmballoon check-c",
        "kind": str(f.kind),
        "origin": str(f.origin),
        "corpus_file": f.corpus_file,
        "source": str(report.source),
        "sha256": report.sha256,
        "variant": report.against.name,
        "property": f.properties[0] if f.properties else None,
        "properties": f.properties,
        "message": f.message,
        "seed": report.seed,
        "fixes": f.fixes,
        "assumptions": f.assumptions,
        "crash_line": f.crash_line,
        "minimized": f.minimized,
        "replay": f.replay,
    }
    out.write_text(name, json.dumps(doc, indent=1) + "\n")


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while the findings are written (a second Ctrl-C does
    not cut a file in half)."""
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def check_c(
    source: Path,
    against: Variant,
    examples: int,
    seed: int,
    out: Path,
    strict: bool = False,
    corpus_first: bool = True,
    progress: Callable[[str], None] | None = None,
    include_dirs: tuple[Path, ...] = (),
    coverage: bool = False,
) -> Report:
    """The whole check (raises ``BuildError`` for a bad source, ``OutDirBusy`` for an
    ``out`` another run owns).  Interrupted (``KeyboardInterrupt``, which SIGTERM raises
    too under :func:`cmd_check_c`), it writes what it found and returns a report that is
    not complete.  ``coverage``: the C is a gcov build, and the report says what the
    corpus and the fuzzer each took of its lines and branches."""
    from vmballoon.harness.coverage import collect
    from vmballoon.harness.process import HarnessError
    from vmballoon.harness.replay import binary_for

    say = progress or (lambda _: None)
    started = time.perf_counter()
    data = source.read_bytes()
    binary = binary_for(source=source, include_dirs=include_dirs, coverage=coverage)
    counted = collect if coverage else lambda _: contextlib.nullcontext()
    report = Report(
        source,
        hashlib.sha256(data).hexdigest(),
        against,
        seed,
        strict=strict,
        include_dirs=include_dirs,
    )
    with RunDir(out, command="check-c") as rd:
        campaign = Campaign()
        try:
            if corpus_first:
                _corpus_phase(report, binary, counted, say)
            _fuzzer_phase(report, binary, campaign, examples, counted, say)
            report.findings += _campaign_findings(campaign)
            for f in report.findings:
                stop_if_signalled()
                if f.kind in (Kind.REGRESSION, Kind.DIVERGENCE):
                    say(f"check-c: minimizing the {f.origin}'s {f.kind}")
                finalize(f, binary, against)
            report.complete = True
        except (KeyboardInterrupt, HarnessError) as exc:
            if isinstance(exc, HarnessError) and not SIGNALLED.is_set():
                raise  # a harness that failed on its own, not one a Ctrl-C stopped
            if not any(f.origin == Origin.FUZZER for f in report.findings):
                report.findings += _campaign_findings(campaign)
        report.examples = campaign.examples
        _write_run(rd, report, started)
    return report


def _corpus_phase(
    report: Report,
    binary: Path,
    counted: Callable[[Path], contextlib.AbstractContextManager[Any]],
    say: Callable[[str], None],
) -> None:
    """check-c's first phase: the corpus on the C, each finding added to ``report`` (and
    said) as soon as it is found, the scenarios not replayed listed in it."""
    cor = corpus()
    report.corpus_scenarios, report.corpus_missing = len(cor.scenarios), cor.missing
    say(f"check-c: corpus: {len(cor.scenarios)} scenarios")
    with counted(binary) as counts:
        for f in run_corpus(
            binary, report.against, cor.scenarios, not_replayed=report.corpus_missing
        ):
            report.findings.append(f)
            what = f"{f.kind} {','.join(f.properties)}".rstrip()
            say(f"check-c: corpus: {what} in {f.corpus_file}")
        if counts is not None:
            report.coverage["corpus"] = counts.result()


def _fuzzer_phase(
    report: Report,
    binary: Path,
    campaign: Campaign,
    examples: int,
    counted: Callable[[Path], contextlib.AbstractContextManager[Any]],
    say: Callable[[str], None],
) -> None:
    """check-c's second phase: the fuzzer on the C, recording into ``campaign`` (its
    findings are taken from there); the coverage of this phase, and of both phases
    together, added to ``report``."""
    say(f"check-c: fuzzer: {examples} examples (seed {report.seed})")
    with counted(binary) as counts:
        run_check(binary, report.against, examples, report.seed, "regression", campaign=campaign)
        if counts is not None:
            report.coverage["fuzzer"] = counts.result()
    if len(report.coverage) == 2:
        report.coverage["together"] = report.coverage["corpus"].union(report.coverage["fuzzer"])


def _write_run(rd: RunDir, report: Report, started: float) -> None:
    """Every finding as a scenario file, then :data:`REPORT` (the run's seconds since
    ``started``), into ``rd``, which is then finished; signals held meanwhile."""
    with _signals_held():
        taken: set[str] = set()
        for f in report.findings:
            _write(f, rd, report, taken)
        report.seconds = round(time.perf_counter() - started, 1)
        rd.write_text(REPORT, json.dumps(report.to_json(), indent=1) + "\n")
        rd.finish(complete=report.complete)


def _campaign_findings(campaign: Campaign) -> list[Finding]:
    found = [f for f in (campaign.failing, campaign.divergence, campaign.outside) if f]
    for f in found:
        f.origin = Origin.FUZZER
    return found


def _finding_lines(f: Finding, against: str) -> list[str]:
    names = ", ".join(f.properties)
    where = f" (corpus {f.corpus_file})" if f.corpus_file else ""
    if f.kind == Kind.KNOWN_DEFECT:
        flags = ", ".join(f.fixes)
        head = (
            f"KNOWN DEFECT {names}{where}: the seed's defect {flags}, removed by fix flag "
            f"{flags} (the C does what the model of FIXED without it does on this "
            f"scenario, which violates {names}; {against} does not): {f.message}"
        )
    elif f.kind == Kind.REGRESSION:
        head = f"REGRESSION {names}{where}: the C violates it, {against} does not: {f.message}"
        if f.fixes:
            head += f" (in part the seed's defect {', '.join(f.fixes)})"
    elif f.kind == Kind.TIMEOUT:
        head = f"REGRESSION the driver does not return{where}: {f.message}"
    elif f.kind == Kind.DIVERGENCE:
        head = f"divergence (information){where}: the C behaves unlike {against}: {f.message}"
    else:
        what = f"the C violates {names}" if f.properties else "the C's log differs"
        head = (
            f"outside assumptions: {', '.join(f.assumptions)}{where}: {what} (not a "
            f"behaviour change: no result is claimed there): {f.message}"
        )
    lines = [head]
    if f.crash_line:
        lines.append(f"  the C crashed at {f.crash_line}")
    state = "minimized scenario" if f.minimized else "scenario"
    lines.append(f"  {state} ({len(f.scenario.steps)} steps): {f.path}")
    lines += [f"  replay: {cmd}" for cmd in f.replay]
    return lines


def print_report(report: Report) -> None:
    """The report as text."""
    from vmballoon.apps.ctrace import NOT_OBSERVABLE

    against = report.against.name
    state = "" if report.complete else " (INTERRUPTED: partial)"
    print(
        f"check-c {report.source} (sha256 {report.sha256[:12]}) against {against}{state}: "
        f"corpus {report.corpus_scenarios} scenarios, fuzzer {report.examples} scenarios "
        f"(seed {report.seed}) in {report.seconds} s"
    )
    for line in report.corpus_missing:
        print(f"corpus: not replayed: {line}")
    for origin in (Origin.CORPUS, Origin.FUZZER):
        mine = [f for f in report.findings if f.origin == origin]
        print(
            f"{origin}: "
            + (
                ", ".join(f"{f.kind} {','.join(f.properties)}".rstrip() for f in mine)
                or "nothing found"
            )
        )
    order = list(Kind)
    for f in sorted(report.findings, key=lambda f: (f.kind not in FAILS, order.index(f.kind))):
        for line in _finding_lines(f, against):
            print(line)
    so_far = "" if report.complete else " in what was checked before the interrupt"
    if not report.of(*FAILS):
        print(f"no regression{so_far}: every property {against} keeps, the C keeps")
    if not report.of(Kind.DIVERGENCE):
        print(f"no divergence{so_far}: the C's event logs equal {against}'s")
    print("not observable on the C (inflate's locals): " + ", ".join(NOT_OBSERVABLE))
    for line in coverage_lines(report.coverage):
        print(line)


def coverage_lines(coverage: dict[str, Coverage]) -> list[str]:
    """``--coverage``: lines and branches of the driver each phase took, then per function
    (of all phases together)."""
    out = [
        f"coverage ({phase}): lines {c.lines_hit}/{c.lines}, branches {c.branches_hit}/"
        f"{len(c.branches)}"
        for phase, c in coverage.items()
    ]
    whole = coverage.get("together") or next(iter(coverage.values()), None)
    if whole is not None:
        out += [
            f"  {fn.name}: lines {fn.lines_hit}/{fn.lines}, branches "
            f"{fn.branches_hit}/{fn.branches}"
            for fn in whole.functions
        ]
    return out


SIGNALLED = threading.Event()
"""Set by :func:`_raise_interrupt`: a harness that stops after it was stopped by the
same signal (a Ctrl-C reaches the whole process group), not on its own."""


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    SIGNALLED.set()
    raise KeyboardInterrupt


def stop_if_signalled() -> None:
    """Raise the interrupt again where the one :func:`_raise_interrupt` raised was lost
    (Python ignores an exception raised in a finalizer or an at-fork callback): checked
    before each scenario of the corpus, each step of the fuzzer, each minimization."""
    if SIGNALLED.is_set():
        raise KeyboardInterrupt


def cmd_check_c(args: argparse.Namespace) -> int:
    """``vmballoon check-c``."""
    from vmballoon.harness.build import BuildError
    from vmballoon.harness.process import HarnessError

    source = Path(args.source)
    if not source.is_file():
        why = (
            "is a directory"
            if source.is_dir()
            else "not a regular file"
            if source.exists()
            else "no such file"
        )
        print(f"error: {source}: {why}", file=sys.stderr)
        return EXIT_USAGE
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    SIGNALLED.clear()
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    old_int = signal.getsignal(signal.SIGINT)
    if old_int is signal.default_int_handler:  # not when the shell made us ignore it
        signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        report = check_c(
            source,
            parse_variant(args.against),
            args.examples,
            seed,
            Path(args.out),
            args.strict,
            not args.no_corpus,
            lambda line: print(line, file=sys.stderr),
            include_dirs=tuple(args.include),
            coverage=args.coverage,
        )
    except (BuildError, OutDirBusy) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FOUND
    except KeyboardInterrupt:  # before the output folder was taken
        print("check-c: interrupted before the campaign started", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print_report(report)
    if not report.complete:
        print(
            f"check-c: interrupted: {len(report.findings)} finding(s) so far written to "
            f"{args.out} (marked INCOMPLETE)",
            file=sys.stderr,
        )
    return report.exit


def add_check_c_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``vmballoon check-c``."""
    p = sub.add_parser("check-c", help="check a driver source (a proposed patch) against a variant")
    p.add_argument("source", metavar="FILE.c", help="the driver source to check")
    p.add_argument(
        "--against",
        type=variant_name,
        default="fixed",
        help="the model variant it must keep the properties of (default fixed)",
    )
    p.add_argument(
        "--examples",
        type=positive_int,
        default=200,
        help="fuzzer scenarios, after the corpus (default 200)",
    )
    p.add_argument("--seed", type=nonnegative_int, default=None, help="seed (printed)")
    p.add_argument(
        "--out",
        type=output_dir,
        default="check-c-out",
        metavar="DIR",
        help="where the report and the minimized scenarios are written (default "
        "check-c-out; a folder one run owns)",
    )
    p.add_argument(
        "--include",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="a folder of kernel headers the harness does not provide "
        "(searched after the harness's own; repeatable)",
    )
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--strict", action="store_true", help="a divergence also fails (exit 1)")
    p.add_argument(
        "--coverage",
        action="store_true",
        help="build the C with gcov counters and report the lines and branches "
        "of the driver the corpus and the fuzzer each took, per function",
    )
    p.add_argument(
        "--no-corpus",
        action="store_true",
        help="skip the deterministic corpus (spec/findings, spec/examples, "
        "tests/golden, tests/scenarios) that runs before the fuzzer",
    )
    p.set_defaults(func=cmd_check_c)
