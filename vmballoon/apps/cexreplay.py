"""Every counterexample ``vmballoon verify`` reports, replayed on the compiled C.

``verify`` finds its counterexamples in the Z3 encoding and confirms them on the
model; this module replays each one (a property's counterexample for SEED or for
FIXED minus a fix, and each per-defect SEED scenario) through the driver's own C
of the same variant (:func:`vmballoon.harness.replay.binary_for`: the vendored
seed with the variant's patches of ``spec/fixes``, compiled once per variant) and
checks the properties on the C's own observable trace, with the code of
``check-c`` (:func:`vmballoon.apps.ctrace.c_trace`).  Each row gets a ``c`` field:

* ``status``: ``shows`` (the C violates the property too), ``not-shown`` (it does
  not), ``not-observable`` (``rate_counter`` and ``throttle``, about inflate's
  locals, which the C does not show; or a state property the model breaks inside an
  entry point that crashes before it returns,
  :func:`vmballoon.apps.ctrace.hidden_by_crash`), ``no-compiler`` (no ``cc``:
  nothing run, nothing failed) or ``error`` (the variant's source does not build, or
  the driver did not return);
* ``shows`` (true, false, or null when not checked), ``properties`` (every property
  the C's trace violates), ``log_equal`` (the C's event log equals the model's on
  the scenario) and ``detail``.

A counterexample the model shows and the C does not (``not-shown``, ``error``, or
an event log that differs) is a disagreement of the readings: ``verify`` fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vmballoon.core.scenario import Scenario
    from vmballoon.core.variants import Variant

C_WORDS = {
    "shows": "shows it",
    "not-shown": "does not show it",
    "not-observable": "not observable",
    "no-compiler": "not compiled (no cc)",
    "error": "error",
}
"""What a counterexample row's ``c`` field (``status``) says in verify's table:
``C: <words>``."""

NOT_OBSERVABLE_ON_C = ("rate_counter",)
"""The property about inflate's locals (``vmballoon.apps.ctrace.NOT_OBSERVABLE``)."""


def rows_to_replay(
    results: list[dict[str, Any]], defects: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows with a counterexample scenario: property results and per-defect rows."""
    rows = [
        r for r in results if r.get("scenario") and r.get("status") in ("violated", "unconfirmed")
    ]
    rows += [d for d in defects if d.get("scenario") and d.get("prop")]
    return rows


def _compiler() -> str | None:
    from vmballoon.harness.build import BuildError, compiler

    try:
        return compiler()
    except BuildError:
        return None


def _field(
    status: str,
    detail: str = "",
    properties: list[str] | None = None,
    shows: bool | None = None,
    log_equal: bool | None = None,
) -> dict[str, Any]:
    assert status in C_WORDS
    return {
        "status": status,
        "shows": shows,
        "properties": properties or [],
        "log_equal": log_equal,
        "detail": detail,
    }


def replay_row(row: dict[str, Any]) -> dict[str, Any]:
    """The ``c`` field of one counterexample row (a C compiler is there).

    A per-defect row (it has ``fix``) also gets ``seed_plus_fix`` and
    ``fixed_minus_fix``: whether the C of those variants shows the property (the
    defect's claim on the model is: the seed shows it, SEED + fix does not, FIXED
    minus the fix does); null when the property is not observable."""
    from vmballoon.core.scenario import ScenarioError, load_scenario
    from vmballoon.core.variants import FIXED, Variant, parse_variant

    prop = str(row["prop"])
    variant = parse_variant(str(row.get("variant", "seed")))
    try:
        scenario = load_scenario(Path(str(row["scenario"])))
    except (OSError, ScenarioError) as exc:
        return _field("error", f"the scenario cannot be read: {exc}")
    field = check_on_c(scenario, variant, prop)
    if "fix" in row and field["status"] in ("shows", "not-shown", "not-observable"):
        fix = str(row["fix"])
        for key, other in (
            ("seed_plus_fix", Variant(frozenset({fix}))),
            ("fixed_minus_fix", FIXED.without(fix)),
        ):
            sub = check_on_c(scenario, other, prop)
            field[key] = sub["shows"]
            if sub["status"] == "error":
                field["status"], field["detail"] = "error", f"{other.name}: {sub['detail']}"
    return field


def check_on_c(scenario: Scenario, variant: Variant, prop: str) -> dict[str, Any]:
    """Whether the compiled C of ``variant`` violates ``prop`` on ``scenario`` (checked on
    its own observable trace), and whether its event log equals the model's."""
    from vmballoon import model
    from vmballoon.apps.checkc import log_difference
    from vmballoon.apps.ctrace import NOT_OBSERVABLE, c_trace, hidden_by_crash
    from vmballoon.harness.build import BuildError
    from vmballoon.harness.patches import PatchError
    from vmballoon.harness.process import HarnessError
    from vmballoon.harness.replay import binary_for

    assert tuple(NOT_OBSERVABLE) == NOT_OBSERVABLE_ON_C
    try:
        binary = binary_for(variant)
    except (BuildError, PatchError) as exc:
        return _field("error", f"the C of {variant.name} does not build: {exc}")
    try:
        violations, log = c_trace(binary, scenario, variant)
    except HarnessError as exc:
        return _field("error", f"{variant.name}: {exc}")
    props = sorted({v.prop for v in violations})
    expected = model.replay(scenario, variant)
    equal = log == expected
    differs = f"the C's log differs from the model's ({variant.name})"
    detail = "" if equal else f"{differs}: {log_difference(expected, log)}"
    if prop in NOT_OBSERVABLE:
        return _field("not-observable", detail, props, None, equal)
    shown = prop in props
    hidden = None if shown else hidden_by_crash(scenario, variant, prop)
    if hidden is not None:
        return _field("not-observable", detail or hidden, props, None, equal)
    if shown:
        v = next(v for v in violations if v.prop == prop)
        detail = detail or f"entry point {v.step}: {v.message}"
    return _field("shows" if shown else "not-shown", detail, props, shown, equal)


def disagreement(row: dict[str, Any]) -> str | None:
    """Why the C and the model disagree on this row's counterexample (None: they agree,
    or nothing could be checked for want of a compiler, or the model does not show it)."""
    c = row.get("c")
    if c is None or row.get("status") != "violated" or c["status"] == "no-compiler":
        return None
    where = (
        f"{row.get('variant', 'seed')} {row['prop']}"
        if "fix" not in row
        else f"defect {row['fix']} ({row['prop']})"
    )
    if c["status"] == "not-shown":
        return (
            f"{where}: the model shows the violation, the C does not (it violates: "
            f"{', '.join(c['properties']) or 'nothing'})"
        )
    if c["status"] == "error":
        return f"{where}: the model shows the violation, the C could not replay it: {c['detail']}"
    if c["log_equal"] is False:
        return f"{where}: {c['detail']}"
    if c.get("seed_plus_fix") is True:
        return f"{where}: the C of SEED + {row['fix']} still shows it (the model's does not)"
    if c.get("fixed_minus_fix") is False:
        return f"{where}: the C of FIXED minus {row['fix']} does not show it (the model's does)"
    return None


def replayed_variants(variants: list[str], *, necessity: bool, per_defect: bool) -> list[str]:
    """The variants whose C a verify run of ``variants`` may replay counterexamples on:
    each variant run (FIXED's are proofs, it has none); with ``necessity`` FIXED minus
    each fix; with ``per_defect`` SEED + each fix and FIXED minus each fix."""
    from vmballoon.core.variants import FIX_NAMES, FIXED, Variant, parse_variant

    out = [parse_variant(v) for v in variants if v != "fixed"]
    if necessity or per_defect:
        out += [FIXED.without(f) for f in FIX_NAMES]
    if per_defect:
        out += [Variant(frozenset({f})) for f in FIX_NAMES]
    return list(dict.fromkeys(v.name for v in out))


def build_ahead(variants: list[str], *, necessity: bool, per_defect: bool) -> Callable[[], None]:
    """Start compiling the C of every variant the run may replay on
    (:func:`replayed_variants`) on a thread of its own, beside the proof workers, so
    that a cold build cache (a fresh machine: 17 builds, about 7 s) does not wait for
    the end of the run; returns the wait for it.  A build that fails is left for the
    replay, which reports it on its row; without a compiler nothing is built."""
    from vmballoon.core.variants import parse_variant
    from vmballoon.harness.build import BuildError
    from vmballoon.harness.patches import PatchError
    from vmballoon.harness.replay import binary_for

    names = replayed_variants(variants, necessity=necessity, per_defect=per_defect)

    def build_all() -> None:
        for name in names:
            try:
                binary_for(parse_variant(name))
            except (BuildError, PatchError):
                continue

    if _compiler() is None:
        return lambda: None
    thread = threading.Thread(target=build_all, name="build-ahead", daemon=True)
    thread.start()
    return thread.join


def replay_counterexamples(
    results: list[dict[str, Any]], defects: list[dict[str, Any]]
) -> dict[str, Any]:
    """Add the ``c`` field to every counterexample row; the run's summary
    (``compiler``, ``replayed``, ``seconds``, ``disagreements``: one line each)."""
    started = time.perf_counter()
    rows = rows_to_replay(results, defects)
    cc = _compiler()
    for row in rows:
        if cc is None:
            row["c"] = _field("no-compiler", "no C compiler found (install gcc or set CC)")
        else:
            row["c"] = replay_row(row)
    problems = [p for p in (disagreement(r) for r in rows) if p is not None]
    return {
        "compiler": cc,
        "replayed": len(rows) if cc else 0,
        "seconds": round(time.perf_counter() - started, 2),
        "disagreements": problems,
    }
