"""Scenarios of ``scenario-format.md`` (v1): strict parsing and validation.

A scenario fixes everything outside the driver.  Parsing is strict, as the
contract demands: unknown keys, wrong types (booleans are not integers, floats
are not integers), negative numbers, values of 2**64 or more, duplicate keys and
responses without ``status`` are all rejected with a :class:`ScenarioError`
whose message names the offending key.  Nothing is replayed from a scenario
that does not validate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmballoon.core.protocol import U64_MASK

SCENARIO_FORMAT = "vmballoon-scenario/1"
STEP_NAMES = ("work", "doorbell", "exit")
DEFAULT_FRAMES = 65536
LIMIT = 1 << 64


class ScenarioError(ValueError):
    """A scenario that does not follow the contract; the message is one line."""


@dataclass(frozen=True)
class Response:
    """One hypervisor answer: the status, the result register, optional batch entries."""

    status: int
    result: int = 0
    entries: tuple[int, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "result": self.result}
        if self.entries is not None:
            out["entries"] = list(self.entries)
        return out


@dataclass(frozen=True)
class Scenario:
    """Everything outside the driver: RAM, host answers, allocator and VMCI scripts."""

    steps: tuple[str, ...]
    frames: int = DEFAULT_FRAMES
    pfn_base: int = 0
    totalram_pages: int | None = None
    hv: tuple[Response, ...] = ()
    alloc: tuple[bool, ...] = ()
    vmci: tuple[bool, ...] = ()

    @property
    def totalram(self) -> int:
        """What ``si_meminfo()`` reports as ``totalram`` (defaults to ``frames``)."""
        return self.frames if self.totalram_pages is None else self.totalram_pages

    def to_json(self) -> dict[str, Any]:
        """The scenario as a JSON value of the contract (defaults left out)."""
        out: dict[str, Any] = {"format": SCENARIO_FORMAT, "frames": self.frames}
        if self.pfn_base:
            out["pfn_base"] = self.pfn_base
        if self.totalram_pages is not None:
            out["totalram_pages"] = self.totalram_pages
        out["steps"] = list(self.steps)
        if self.hv:
            out["hv"] = [r.to_json() for r in self.hv]
        if self.alloc:
            out["alloc"] = list(self.alloc)
        if self.vmci:
            out["vmci"] = list(self.vmci)
        return out


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ScenarioError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ScenarioError(f"{name} is not valid JSON here")


def _reject_float(text: str) -> Any:
    raise ScenarioError(f"number {text} is not an integer")


def _uint(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where}: expected a non-negative integer, got {_kind(value)}")
    if value < 0:
        raise ScenarioError(f"{where}: must not be negative (got {value})")
    if value >= LIMIT:
        raise ScenarioError(f"{where}: must be less than 2**64 (got {value})")
    return value


def _bool_list(value: Any, where: str) -> tuple[bool, ...]:
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: expected a list of booleans, got {_kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, bool):
            raise ScenarioError(f"{where}[{i}]: expected a boolean, got {_kind(item)}")
    return tuple(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _response(value: Any, where: str) -> Response:
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: expected an object, got {_kind(value)}")
    for key in value:
        if key not in ("status", "result", "entries"):
            raise ScenarioError(f"{where}: unknown key {key!r}")
    if "status" not in value:
        raise ScenarioError(f"{where}: missing key 'status'")
    status = _uint(value["status"], f"{where}.status")
    result = _uint(value.get("result", 0), f"{where}.result")
    entries: tuple[int, ...] | None = None
    if "entries" in value:
        raw = value["entries"]
        if not isinstance(raw, list):
            raise ScenarioError(f"{where}.entries: expected a list of integers, got {_kind(raw)}")
        entries = tuple(_uint(e, f"{where}.entries[{i}]") for i, e in enumerate(raw))
    return Response(status, result, entries)


_KEYS = ("format", "frames", "pfn_base", "totalram_pages", "steps", "hv", "alloc", "vmci", "meta")


def scenario_from_json(doc: Any) -> Scenario:
    """Validate a decoded JSON value and build the scenario it describes."""
    if not isinstance(doc, dict):
        raise ScenarioError(f"scenario: expected an object, got {_kind(doc)}")
    for key in doc:
        if key not in _KEYS:
            raise ScenarioError(f"unknown key {key!r}")
    if "format" not in doc:
        raise ScenarioError("missing key 'format'")
    if "meta" in doc and not isinstance(doc["meta"], dict):
        # free-form notes (a checker's counterexample: property, variant, depth, ...);
        # replay ignores them
        raise ScenarioError(f"meta: expected an object, got {_kind(doc['meta'])}")
    if doc["format"] != SCENARIO_FORMAT:
        raise ScenarioError(f"format: expected {SCENARIO_FORMAT!r}, got {doc['format']!r}")
    if "steps" not in doc:
        raise ScenarioError("missing key 'steps'")
    steps_raw = doc["steps"]
    if not isinstance(steps_raw, list):
        raise ScenarioError(f"steps: expected a list, got {_kind(steps_raw)}")
    for i, step in enumerate(steps_raw):
        if not isinstance(step, str) or step not in STEP_NAMES:
            raise ScenarioError(
                f"steps[{i}]: expected one of 'work', 'doorbell', 'exit', got {step!r}"
            )
    frames = _uint(doc.get("frames", DEFAULT_FRAMES), "frames")
    pfn_base = _uint(doc.get("pfn_base", 0), "pfn_base")
    if pfn_base + frames > U64_MASK:
        raise ScenarioError("pfn_base + frames: must not exceed 2**64 - 1 (the NULL page's PFN)")
    totalram: int | None = None
    if "totalram_pages" in doc:
        totalram = _uint(doc["totalram_pages"], "totalram_pages")
    hv_raw = doc.get("hv", [])
    if not isinstance(hv_raw, list):
        raise ScenarioError(f"hv: expected a list of responses, got {_kind(hv_raw)}")
    hv = tuple(_response(r, f"hv[{i}]") for i, r in enumerate(hv_raw))
    alloc = _bool_list(doc.get("alloc", []), "alloc")
    vmci = _bool_list(doc.get("vmci", []), "vmci")
    return Scenario(
        steps=tuple(steps_raw),
        frames=frames,
        pfn_base=pfn_base,
        totalram_pages=totalram,
        hv=hv,
        alloc=alloc,
        vmci=vmci,
    )


def parse_scenario(text: str) -> Scenario:
    """Parse the text of a scenario file; raises :class:`ScenarioError`."""
    try:
        doc = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_reject_float,
            parse_constant=_reject_constant,
        )
    except ScenarioError:
        raise
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"not valid JSON: {exc.msg} (line {exc.lineno})") from None
    except RecursionError:
        raise ScenarioError("not valid JSON: nested too deeply") from None
    return scenario_from_json(doc)


def load_scenario(path: str | Path) -> Scenario:
    """Read and parse a scenario file; raises :class:`ScenarioError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError("no such file") from None
    except IsADirectoryError:
        raise ScenarioError("is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read ({exc.__class__.__name__})") from None
    return parse_scenario(text)
