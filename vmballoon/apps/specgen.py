"""``vmballoon spec``: the reviewer's reference, one Markdown document, with generated tables.

``spec/reference.md`` is assembled from the hand-written chapters of ``spec/``
(protocol, state, transitions, environment, fixes) and tables generated from the
code: the protocol constants (:mod:`vmballoon.core.protocol`), the fixes
(:mod:`vmballoon.core.variants`), the properties (:mod:`vmballoon.model.properties`) with their
proof status, the findings and the fix-necessity table.  Statuses come from a
``vmballoon verify --json`` result checked in as ``spec/verify-results.json``;
times are left out so that the document only changes when a result does.
``vmballoon spec --check`` fails when the checked-in document differs from what
the code generates (a test runs it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vmballoon.core import protocol
from vmballoon.core.assumptions import ASSUMPTIONS
from vmballoon.core.specdata import spec_dir
from vmballoon.core.variants import FIX_NAMES, FIXED, FIXES
from vmballoon.model.properties import PROPERTY_NAMES, STATE_PROPERTIES, TRANSITION_PROPERTIES

SPEC = spec_dir()
DOCUMENT = "reference.md"
RESULTS = "verify-results.json"
TRACE_ONLY: dict[str, str] = {}
"""Properties that the Z3 encoding does not state; they run on model traces only
(none now: ``progress`` is proved per tick by :mod:`vmballoon.proofs.progress`)."""

CHAPTERS = ("protocol.md", "state.md", "transitions.md", "environment.md", "fixes.md")


def describe(name: str) -> str:
    """One-paragraph description of property ``name`` (its docstring or its table entry)."""
    if name in STATE_PROPERTIES:
        doc = STATE_PROPERTIES[name].__doc__ or ""
        text = doc.strip().split("\n\n")[0]
    else:
        text = TRANSITION_PROPERTIES.get(name, "")
    return " ".join(text.split())


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def constants_table() -> str:
    """Commands, statuses, capabilities and limits, from :mod:`vmballoon.core.protocol`."""
    lines = ["| command | number |", "|---|---|"]
    lines += [_row([f"`{name}`", str(num)]) for num, name in protocol.COMMAND_NAMES.items()]
    lines += ["", "| status | value |", "|---|---|"]
    lines += [
        _row([f"`{name}`", hex(v) if v > 255 else str(v)])
        for v, name in protocol.STATUS_NAMES.items()
    ]
    caps = {
        "BASIC_CMDS": protocol.CAP_BASIC,
        "BATCHED_CMDS": protocol.CAP_BATCHED,
        "BATCHED_2M_CMDS": protocol.CAP_BATCHED_2M,
        "SIGNALLED_WAKEUP_CMD": protocol.CAP_SIGNALLED_WAKEUP,
        "CAPABILITIES (asked by START)": protocol.CAPABILITIES,
    }
    lines += ["", "| capability | bit |", "|---|---|"]
    lines += [_row([f"`{k}`", hex(v)]) for k, v in caps.items()]
    limits = {
        "RATE_ALLOC_MIN": protocol.RATE_ALLOC_MIN,
        "RATE_ALLOC_MAX": protocol.RATE_ALLOC_MAX,
        "RATE_ALLOC_INC": protocol.RATE_ALLOC_INC,
        "SLOW_CYCLES": protocol.SLOW_CYCLES,
        "MAX_REFUSED": protocol.MAX_REFUSED,
        "BATCH_MAX_PAGES": protocol.BATCH_MAX_PAGES,
        "pages per 2 MiB page": protocol.PAGES_PER_2M,
    }
    lines += ["", "| limit | value |", "|---|---|"]
    lines += [_row([f"`{k}`", str(v)]) for k, v in limits.items()]
    return "\n".join(lines)


def fixes_table() -> str:
    """Every fix flag: lines, defect, change, consequence prevented."""
    lines = ["| flag | C lines | defect | fix | prevents |", "|---|---|---|---|---|"]
    lines += [_row([f"`{f.name}`", f.lines, f.defect, f.change, f.prevents]) for f in FIXES]
    return "\n".join(lines)


def _status(result: dict[str, Any] | None) -> str:
    if result is None:
        return "not checked"
    status = str(result["status"])
    if status == "violated":
        return f"violated (depth {result['depth']})"
    if status == "no-cex":
        return f"no counterexample up to depth {result['depth']}"
    if status == "proved" and result.get("prop") == "progress":
        return "proved (inductive, per cooperative tick; <= 16 + 2T transitions from init)"
    if status == "proved":
        return "proved (inductive)"
    return status


def _by_variant(results: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["variant"], r["prop"]): r for r in results.get("results", [])}


def properties_table(results: dict[str, Any]) -> str:
    """Every property, what it says, and its status on SEED and FIXED."""
    by = _by_variant(results)
    lines = ["| property | what it protects | SEED | FIXED |", "|---|---|---|---|"]
    for name in PROPERTY_NAMES:
        seed, fixed = by.get(("seed", name)), by.get(("fixed", name))
        if seed is None and fixed is None and name in TRACE_ONLY:
            cells = [TRACE_ONLY[name]] * 2
        else:
            cells = [_status(seed), _status(fixed)]
        lines.append(_row([f"`{name}`", describe(name), *cells]))
    return "\n".join(lines)


def findings_table(results: dict[str, Any]) -> str:
    """Each property the seed violates: depth, counterexample, and the fixes it needs."""
    necessity: dict[str, list[str]] = results.get("necessity", {})
    lines = [
        "| property | shortest counterexample | scenario | fixes that remove it "
        "| the compiled C on it |",
        "|---|---|---|---|---|",
    ]
    for r in results.get("results", []):
        if r["variant"] != "seed" or r["status"] != "violated":
            continue
        fixes = [fix for fix, props in necessity.items() if r["prop"] in props]
        scenario = Path(r["scenario"]).name if r.get("scenario") else ""
        link = f"[{scenario}](findings/{scenario})" if scenario else ""
        lines.append(
            _row(
                [
                    f"`{r['prop']}`",
                    f"{r['depth']} transitions",
                    link,
                    ", ".join(f"`{f}`" for f in fixes) or "(none alone)",
                    c_cell(r.get("c")),
                ]
            )
        )
    return "\n".join(lines)


C_CELLS = {
    "shows": "shows it",
    "not-shown": "**does not show it**",
    "not-observable": "not observable (inflate's locals)",
    "no-compiler": "not compiled (no cc)",
    "error": "**error**",
}
"""What ``verify`` found replaying a counterexample on the compiled C of its variant."""


def c_cell(status: str | None) -> str:
    """The words for a row's ``c`` status ("" for results recorded without it)."""
    return "" if status is None else C_CELLS.get(status, status)


SHORTEST_WORDS = {
    "property": "yes, for this property (SEED's own shortest counterexample of it)",
    "every input": "yes",
    "pinned inputs": "yes, over the pinned inputs (vmballoon/proofs/pinned.py)",
    "pinned shared inputs": "yes, over the pinned inputs with SEED and SEED + fix reading "
    "the same inputs at every step (a product; not every replay)",
    "shared inputs": "yes, with SEED and SEED + fix reading the same inputs at every step "
    "(a product; not every replay)",
    "not established": "not established",
}
"""A defect row's ``shortest`` (vmballoon/proofs/defects.py ``SHORTEST``) in the findings table."""


def defects_table(results: dict[str, Any]) -> str:
    """One row per fix flag: the SEED scenario that shows its defect, and what the fix changes."""
    by = {d["fix"]: d for d in results.get("defects", [])}
    lines = [
        "| fix flag | C lines it changes | property violated on SEED | depth | shortest? "
        "| scenario (SEED violates it; SEED + the fix alone does not) "
        "| the compiled C on it |",
        "|---|---|---|---|---|---|---|",
    ]
    for fix in FIX_NAMES:
        d = by.get(fix)
        if d is None:
            lines.append(_row([f"`{fix}`", "", "not checked", "", "", "", ""]))
            continue
        scenario = Path(d["scenario"]).name if d.get("scenario") else ""
        link = f"[{scenario}](findings/{scenario})" if scenario else str(d.get("status"))
        prop = f"`{d['prop']}`" if d.get("prop") else str(d.get("status"))
        lines.append(
            _row(
                [
                    f"`{fix}`",
                    str(d.get("lines", "")),
                    prop,
                    f"{d['depth']} transitions" if d.get("depth") is not None else "",
                    SHORTEST_WORDS.get(str(d.get("shortest")), ""),
                    link,
                    _defect_c_cell(d),
                ]
            )
        )
    return "\n".join(lines)


def _defect_c_cell(d: dict[str, Any]) -> str:
    """The seed's C on the defect's scenario, and the C of SEED + fix, FIXED - fix."""
    cell = c_cell(d.get("c"))
    plus, minus = d.get("c_seed_plus_fix"), d.get("c_fixed_minus_fix")
    if d.get("c") == "shows" and plus is False and minus is True:
        return f"{cell}; SEED + the fix does not, FIXED - the fix does"
    if plus is not None or minus is not None:
        return (
            f"{cell}; SEED + the fix: {'shows' if plus else 'does not show'} it, "
            f"FIXED - the fix: {'shows' if minus else 'does not show'} it"
        )
    return cell


def invariants_section(results: dict[str, Any]) -> str:
    """The inductive invariants Houdini kept: each conjunct in words, then as formulas."""
    parts: list[str] = []
    for inv in results.get("invariants", []):
        shown = inv["conjuncts"]
        split = []
        if inv["variant"] not in ("fixed", "seed"):  # FIXED minus a fix: the split ones counted
            split = [c for c in shown if c["origin"].startswith("split from ")]
            shown = [c for c in shown if c not in split]
        parts += [
            f"### {inv['variant']}",
            "",
            "| conjunct | origin | what it says |",
            "|---|---|---|",
        ]
        parts += [_row([f"`{c['name']}`", c["origin"], c["words"]]) for c in shown]
        if split:
            parts += [
                "",
                f"and {len(split)} conjuncts split mechanically from "
                f"{len({c['origin'] for c in split})} FIXED lemmas (each in "
                "spec/verify-results.json, `invariants`).",
            ]
        parts += ["", "<details><summary>formulas (Z3)</summary>", "", "```"]
        for c in shown:
            parts.append(f"{c['name']}: " + " ".join(str(c["formula"]).split()))
        parts += ["```", "", "</details>", ""]
    return "\n".join(parts) if parts else "(no invariant recorded)"


def necessity_table(results: dict[str, Any]) -> str:
    """For each fix: the properties that FIXED minus that fix violates; a result that is
    no verdict (unknown, error, unconfirmed) is shown as such, never as "not needed"."""
    necessity: dict[str, list[str]] = results.get("necessity", {})
    lines = ["| fix | properties violated without it |", "|---|---|"]
    for fix in FIX_NAMES:
        props = necessity.get(fix)
        variant = FIXED.without(fix).name
        open_ = sorted(
            f"`{r['prop']}` {r['status']}"
            for r in results.get("results", [])
            if r["variant"] == variant and r["status"] not in ("violated", "no-cex", "proved")
        )
        text = (
            ", ".join(f"`{p}`" for p in props)
            if props
            else (
                "not checked"
                if props is None and not open_
                else ""
                if open_
                else "no property needs it: a property is missing or the fix is not one"
            )
        )
        if open_:
            text = "; ".join(t for t in (text, "UNKNOWN (no verdict): " + ", ".join(open_)) if t)
        lines.append(_row([f"`{fix}`", text]))
    return "\n".join(lines)


def assumptions_table() -> str:
    """Every assumption a result rests on (vmballoon/core/assumptions.py), with its reason
    and where each reading states it."""
    lines = ["| assumption | what is assumed | why | results resting on it |", "|---|---|---|---|"]
    for a in ASSUMPTIONS:
        rests = "every property" if a.results == "all" else f"`{a.results}`"
        lines.append(_row([f"`{a.name}`", a.text, a.reason, rests]))
    return "\n".join(lines)


def _chapter(name: str) -> str:
    text = (SPEC / name).read_text(encoding="utf-8").strip()
    # chapters become sections of the one document: demote their headings one level
    out = []
    for line in text.splitlines():
        out.append("#" + line if line.startswith("#") else line)
    return "\n".join(out)


def load_results(path: Path | None = None) -> dict[str, Any]:
    """The checked-in verify results (``{}`` when there are none)."""
    path = path or SPEC / RESULTS
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def stable_results(results: dict[str, Any]) -> dict[str, Any]:
    """Verify results without times or solver details, for checking in."""
    keep = ("prop", "variant", "kind", "status", "depth", "scenario")
    raw = results.get("results", [])
    rows = [{k: r.get(k) for k in keep} for r in raw if r.get("prop") != "invariant"]
    for row, r in zip(rows, [r for r in raw if r.get("prop") != "invariant"], strict=True):
        if r.get("c"):  # the counterexample replayed on the compiled C: its status only
            row["c"] = r["c"]["status"]
    rows.sort(key=lambda r: (str(r["variant"]), str(r["prop"])))
    for r in rows:
        if r.get("scenario"):
            r["scenario"] = f"spec/findings/{Path(str(r['scenario'])).name}"
    invariants = [
        {
            "variant": r["variant"],
            "conjuncts": [
                {k: c[k] for k in ("name", "origin", "words", "formula")} for c in r["conjuncts"]
            ],
        }
        for r in raw
        if r.get("prop") == "invariant" and r.get("conjuncts")
    ]
    invariants.sort(key=lambda r: str(r["variant"]))
    defects = [
        {
            k: d.get(k)
            for k in ("fix", "lines", "prop", "depth", "status", "source", "shortest", "scenario")
        }
        for d in results.get("defects", [])
    ]
    for d, raw_d in zip(defects, results.get("defects", []), strict=True):
        if d.get("scenario"):
            d["scenario"] = f"spec/findings/{Path(str(d['scenario'])).name}"
        if raw_d.get("c"):
            c = raw_d["c"]
            d["c"] = c["status"]
            for key in ("seed_plus_fix", "fixed_minus_fix"):
                d[f"c_{key}"] = c.get(key)
    return {
        "ok": results.get("ok"),
        "results": rows,
        "necessity": results.get("necessity", {}),
        "defects": defects,
        "invariants": invariants,
    }


def _throttle_note(results: dict[str, Any]) -> str:
    seed = _by_variant(results).get(("seed", "throttle"))
    if seed is not None and seed["status"] == "violated":
        return (
            "`throttle` fails on the seed only after more than 512 allocations in one inflate "
            "call; bounded model checking finds it with accelerated steps "
            "(vmballoon/proofs/accel.py: "
            "k successful allocations, k symbolic, in one transition, checked against k model "
            "steps by tests/test_accel.py), so its depth counts a batch of allocations as one "
            "transition. The search runs first with the inputs that do not matter at their "
            "defaults (vmballoon/proofs/pinned.py: a sound under-approximation, so what it "
            "finds is a "
            "real trace), then, for what it does not find, over every input."
        )
    return (
        "`throttle` fails on the seed only after more than 512 allocations in one inflate "
        "call, beyond the depth of bounded model checking; the property itself runs in the "
        "differential fuzzer on every example, where the seed violates it "
        "(`vmballoon fuzz` lists it under property violations seen)."
    )


def _introduction() -> list[str]:
    """The title, what the document covers, and the protocol constants."""
    return [
        "# vmw_balloon.c: the reviewer's reference",
        "",
        "<!-- Generated by `vmballoon spec` from the chapters of spec/ and the code; "
        "edit those, then run `vmballoon spec`. -->",
        "",
        "This document specifies the Linux VMware balloon driver as written in "
        "`spec/driver/vmw_balloon.c` (the *seed*, vendored unmodified), top to bottom: "
        "the protocol, the state, "
        "the control locations and every transition with the C lines it models, the "
        "environment, the properties with their status on the seed and on the fixed "
        "driver, the fixes, and the findings. The executable form is `vmballoon/model/`; "
        "`vmballoon/reference/` and `vmballoon/proofs/` are checked against it.",
        "",
        "## Protocol constants",
        "",
        constants_table(),
        "",
    ]


def _fixes_and_assumptions() -> list[str]:
    """The table of every fix, and the assumptions every result is claimed under."""
    return [
        "## All fixes (generated)",
        "",
        fixes_table(),
        "",
        "## Assumptions",
        "",
        "Every result of this spec is claimed only for the environments these assumptions "
        "allow. They are declared once, in `vmballoon/core/assumptions.py`, each with an "
        "executable predicate: the trace check (`vmballoon/model/properties.py`), the fuzzer and "
        "`vmballoon simulate` read the predicates, the Z3 proofs build one constraint per "
        "name (`vmballoon/proofs/encoding.py` `ASSUMED` for the ones every property rests on, "
        "`vmballoon/proofs/progress.py` `COOPERATIVE` for `progress`), and `vmballoon verify` "
        "names "
        "them with every proved result. A test (`tests/test_assumptions.py`) checks on "
        "fuzzed concrete steps that each predicate holds exactly when the Z3 constraint of "
        "the same name holds on the abstraction of the step (for `guest_below_2_32` the Z3 "
        "constraint is the weaker consequence it needs: the balloon holds fewer than 2^32 "
        "frames), so an executable check that honours the assumptions cannot refute a "
        "property proved under them. GUEST_ID and the VMCI_DOORBELL_SET that sets the "
        "doorbell may fail with any status but ERROR_RESET (`no_reset_request`: that answer "
        "schedules a reset, and a host "
        "giving it on every tick keeps GET_TARGET from ever being sent), vmci_doorbell_create "
        "may fail, and START may grant any capability word: `progress` is proved without "
        "assuming otherwise.",
        "",
        assumptions_table(),
        "",
    ]


def _properties(results: dict[str, Any]) -> list[str]:
    """The properties with their status on every variant, and how their two forms agree."""
    fixed_ok = all(
        r["status"] == "proved" for r in results.get("results", []) if r["variant"] == FIXED.name
    )
    return [
        "## Properties and their status",
        "",
        "Status as `vmballoon verify` reports it (spec/verify-results.json): *proved* is an "
        "induction proof (Houdini keeps the property in an inductive invariant) with no bound "
        "on memory or ticks; *violated* is a bounded-model-checking counterexample from "
        "module init, replayed through the model before it is reported; *no counterexample "
        "up to depth N* is a bounded result, not a proof. Every result rests on "
        "`pfn_below_2_52`; `progress` also on the cooperative environment, the other "
        "assumptions of the table above: for FIXED it is proved by induction for one tick "
        "from any state of the safety invariant, with a ranking function bounding a tick to "
        "15 + 2T + 2(n4 + n2) transitions (16 + 2T from module init: the target is reached "
        "in the first tick); for the other variants BMC from init looks for a tick that "
        "ends off target, with the target frozen.",
        "",
        properties_table(results),
        "",
        "Each safety property's Z3 form (`vmballoon/proofs/props.py`) is the per-frame reading of "
        "its Python twin (`vmballoon/model/properties.py`): the twin quantifies over every "
        "frame, the "
        "Z3 form speaks of one arbitrary frame f. They state the same thing: `no_leak` "
        "requires, like its twin counting the frames each owner covers, that a 2 MiB block "
        "is neither on a 4 KiB list nor the batch page (one frame owned, 511 leaked). The "
        "one difference is in form, not strength: a frame on two lists, or twice on one, "
        "which the twins of `ownership` and `accounting` reject, cannot be represented by "
        "the abstraction (one `f_list`); `vmballoon/proofs/abstraction.py` raises NotRepresentable "
        "for it and the conformance tests count such states.",
        "",
        f"FIXED proves every checked property: {'yes' if fixed_ok and results else 'no'}.",
        "",
        _throttle_note(results),
        "",
    ]


def _findings(results: dict[str, Any]) -> list[str]:
    """One SEED scenario per defect, and the SEED violations by property."""
    return [
        "## Findings",
        "",
        "### One SEED scenario per defect",
        "",
        "For every fix flag, a scenario on which the seed as written violates a property "
        "and the seed with that one fix applied does not (and FIXED without the fix violates "
        "it too, so the violation is this defect's). `vmballoon replay SCENARIO --check` "
        "prints the violation; `--variant <flag> --property <property>` shows it cleared "
        "(exit 0). Found by `vmballoon verify` "
        "(vmballoon/proofs/defects.py): the seed's own shortest counterexample of the property "
        "when "
        "the fix alone clears it, otherwise bounded model checking of SEED, SEED + the fix "
        "and FIXED without it on the same inputs (first with the inputs that do not matter "
        "at their defaults, vmballoon/proofs/pinned.py); every scenario is minimised (inputs "
        "that do "
        "not matter at their defaults) and confirmed by replay. A row that is not "
        "`violated` says why (`unknown`: the search timed out). *shortest?* is what the "
        "search established of the depth: the seed's own shortest counterexample is the "
        "shortest for its property; a search from where SEED and SEED + the fix first part "
        "(before that they are one driver, so nothing shorter tells them apart) is the "
        "shortest over the inputs it searched.",
        "",
        defects_table(results),
        "",
        "### SEED violations by property",
        "",
        "Each property the seed violates, with its shortest counterexample "
        "as a scenario of the contract (replay it with `vmballoon replay`), and the fixes "
        "whose removal from FIXED brings the violation back. What each fix changes is in "
        "the fixes table above and in the Fixes chapter. The last column of both tables "
        "is what `verify` saw replaying the scenario on the driver's own C, compiled "
        "from the vendored source with the variant's patches, the properties checked on "
        "the C's observable trace (`vmballoon check-c`'s checks).",
        "",
        findings_table(results),
        "",
    ]


def _necessity_and_invariants(results: dict[str, Any]) -> list[str]:
    """What fails when one fix is removed from FIXED, and the inductive invariants."""
    return [
        "## Fix necessity",
        "",
        "FIXED minus one fix, checked like the seed: the properties that then fail.",
        "",
        necessity_table(results),
        "",
        "## Inductive invariants",
        "",
        "The invariants Houdini keeps (vmballoon/proofs/check.py): every conjunct is inductive "
        "together with the others, so each property among them holds in every reachable "
        "state, with no bound. For the seed and for FIXED minus a fix the candidates are "
        "the properties, every conjunct of the FIXED lemmas split mechanically "
        "(vmballoon/proofs/lemmas.py: origin *split from ...*, derived, not written) and a "
        "few hand-written seed lemmas.",
        "",
        invariants_section(results),
        "",
    ]


def render(results: dict[str, Any]) -> str:
    """The whole reviewer's reference."""
    parts = _introduction()
    for chapter in CHAPTERS:
        parts += [_chapter(chapter), ""]
    parts += _fixes_and_assumptions()
    parts += _properties(results)
    parts += _findings(results)
    parts += _necessity_and_invariants(results)
    head = parts.index("## Protocol constants")
    return "\n".join([*parts[:head], *contents(parts[head:]), *parts[head:]])


def anchor(heading: str, used: dict[str, int]) -> str:
    """The anchor GitHub gives ``heading`` (lower case, punctuation dropped, spaces to
    hyphens; a repeated anchor gets ``-1``, ``-2``, ...)."""
    import re

    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    n = used.get(slug, 0)
    used[slug] = n + 1
    return slug if n == 0 else f"{slug}-{n}"


def contents(body: list[str]) -> list[str]:
    """The contents list: every section (``##``) of ``body``, in order, linked."""
    lines = ["## Contents"]
    used: dict[str, int] = {"contents": 1}
    fenced = False
    number = 0
    for text in "\n".join(body).splitlines():
        if text.startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        if text.startswith("#"):
            level = len(text) - len(text.lstrip("#"))
            title = text[level:].strip()
            slug = anchor(title, used)
            if level == 2:
                number += 1
                lines.append(f"{number}. [{title.replace('`', '')}](#{slug})")
    return [*lines, ""]


def write(out_dir: Path, results_path: Path | None = None) -> Path:
    """Regenerate ``reference.md`` in ``out_dir`` (a checkout's ``spec/``, or ``--out``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / DOCUMENT
    out.write_text(render(load_results(results_path)), encoding="utf-8")
    return out


def check() -> list[str]:
    """Differences between the checked-in document and what the code generates."""
    path = SPEC / DOCUMENT
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    expected = render(load_results())
    if current == expected:
        return []
    import difflib

    diff = difflib.unified_diff(
        current.splitlines(), expected.splitlines(), "checked-in", "generated", lineterm="", n=0
    )
    return list(diff)[:40]


class PartialResult(ValueError):
    """A verify output that does not cover everything the checked-in results cover."""


def missing(raw: dict[str, Any]) -> list[str]:
    """What a full ``vmballoon verify`` run reports and ``raw`` lacks (empty: complete).

    A full run checks every property on SEED and on FIXED, the vacuity of FIXED's
    invariant and the fix-necessity table (FIXED minus each fix).
    """
    if not isinstance(raw.get("results"), list):
        raise ValueError("no 'results' list")
    have = {(r.get("variant"), r.get("prop")) for r in raw["results"]}
    out = [f"{v} {p}" for v in ("seed", FIXED.name) for p in PROPERTY_NAMES if (v, p) not in have]
    if (FIXED.name, "vacuity") not in have:
        out.append("fixed vacuity")
    necessity = raw.get("necessity") or {}
    out += [f"necessity of {fix}" for fix in FIX_NAMES if fix not in necessity]
    if "defects" in raw:  # (results from before the per-defect search have none)
        found = {d.get("fix") for d in raw["defects"] or []}
        out += [f"the defect search of {fix}" for fix in FIX_NAMES if fix not in found]
    if raw.get("complete") is False:
        out.append("the run says it was partial (--property, --variant or --no-necessity)")
    return out


def require_complete(raw: dict[str, Any]) -> None:
    """Raise :class:`PartialResult` unless ``raw`` is the output of a full verify run.

    ``spec --from-verify`` refuses a partial result rather than merging it: the
    checked-in results, findings and reference stay as they are.
    """
    lacks = missing(raw)
    if lacks:
        more = f" and {len(lacks) - 3} more" if len(lacks) > 3 else ""
        raise PartialResult(
            f"partial verify result (lacks {', '.join(lacks[:3])}{more}); run the full "
            "`vmballoon verify --json` (no --property/--variant/--no-necessity); nothing written"
        )


def import_verify(raw_path: Path, out_dir: Path) -> dict[str, Any]:
    """Take a ``vmballoon verify --json`` output: its stable part and its counterexamples.

    Refuses (:class:`PartialResult`) a partial run; reads every counterexample
    scenario it names before writing anything, then copies them into
    ``out_dir/findings/`` and returns the results as they are checked in.
    """
    raw: dict[str, Any] = json.loads(raw_path.read_text(encoding="utf-8"))
    require_complete(raw)
    copies: dict[Path, str] = {}
    findings = out_dir / "findings"
    for r in [*raw.get("results", []), *raw.get("defects", [])]:
        src = r.get("scenario")
        if src and r.get("variant", "seed") == "seed":
            try:
                copies[findings / Path(src).name] = Path(src).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"counterexample {src}: cannot read ({exc.strerror})") from None
    stable = stable_results(raw)
    findings.mkdir(parents=True, exist_ok=True)
    for target, text in copies.items():
        target.write_text(text, encoding="utf-8")
    stable["results"] = [
        r if r["variant"] == "seed" else {**r, "scenario": None} for r in stable["results"]
    ]
    return stable


def compare_results(fresh: dict[str, Any], checked_in: dict[str, Any]) -> list[str]:
    """Where a fresh verify run disagrees with the checked-in statuses."""

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        # the seed's depths are the shortest counterexamples, a fact of the model; the
        # other variants report the first violation a solver finds, which may vary
        return (r.get("status"), r.get("depth")) if r["variant"] == "seed" else (r.get("status"),)

    old = {(r["variant"], r["prop"]): key(r) for r in checked_in["results"]}
    new = {(r["variant"], r["prop"]): key(r) for r in fresh["results"]}
    out = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            out.append(f"{k[0]} {k[1]}: checked in {old.get(k)}, now {new.get(k)}")
    if fresh.get("necessity") != checked_in.get("necessity"):
        out.append("fix-necessity table differs")

    def dkey(d: dict[str, Any]) -> tuple[Any, ...]:
        return (d.get("status"), d.get("prop"), d.get("depth"), d.get("shortest"))

    old_d = {d["fix"]: dkey(d) for d in checked_in.get("defects", [])}
    new_d = {d["fix"]: dkey(d) for d in fresh.get("defects", [])}
    for fix in sorted(set(old_d) | set(new_d)):
        if old_d.get(fix) != new_d.get(fix):
            out.append(f"defect {fix}: checked in {old_d.get(fix)}, now {new_d.get(fix)}")
    return out
