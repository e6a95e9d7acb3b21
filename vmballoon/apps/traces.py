"""Traces of a replay that people can read and tools can load.

A replay through the model passes through one state per transition.
:func:`model_trace` lists them with their labels and the events each step
emitted; :func:`to_itf` writes them as an ITF trace (the Apalache trace format:
``#meta``, ``vars``, ``states``, integers as ``{"#bigint": "..."}``; a value
that may be absent, like ``batch_page``, as a sequence of length 0 or 1, the TLA+
idiom that itf-py loads (it cannot load an ``Option`` variant over integers),
:func:`to_table` as a text table with one row per transition and only the
fields that changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vmballoon.core.env import Event, EventStack
from vmballoon.core.protocol import (
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BATCHED_2M,
    CAP_SIGNALLED_WAKEUP,
    STATUS_NAMES,
)
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import Variant
from vmballoon.model.machine import STOPPED, enter, final_json, start, step
from vmballoon.model.state import Loc, State
from vmballoon.model.transitions import TRANSITIONS

ITF_DESCRIPTION = "https://apalache.informal.systems/docs/adr/015adr-trace.html"
OPTIONAL_FIELDS = frozenset({"batch_page", "page", "doorbell", "ops", "pfn", "arg1", "arg2"})
LOOP_FIELDS = ("num_pages", "allocations", "rate", "error", "cansleep", "is_2m")


@dataclass(frozen=True)
class TraceStep:
    """One step of a replay: its label, the state after it, the events it emitted."""

    label: str
    state: State
    events: tuple[Event, ...]


def _new_events(before: EventStack, after: EventStack) -> tuple[Event, ...]:
    out: list[Event] = []
    while after is not None and after is not before:
        out.append(after[0])
        after = after[1]
    out.reverse()
    return tuple(out)


def model_trace(scenario: Scenario, variant: Variant) -> list[TraceStep]:
    """Every state the model passes through replaying ``scenario``, from module init."""
    state = start(scenario, variant)
    trace = [TraceStep("init", state, ())]
    for name in scenario.steps:
        if state.loc in STOPPED:
            break
        nxt = enter(state, name)
        trace.append(TraceStep(f"enter({name})", nxt, _new_events(state.env.log, nxt.env.log)))
        state = nxt
        while state.loc in TRANSITIONS:
            label = TRANSITIONS[state.loc].__name__
            nxt = step(state)
            trace.append(TraceStep(label, nxt, _new_events(state.env.log, nxt.env.log)))
            state = nxt
    return trace


def snapshot(state: State) -> dict[str, Any]:
    """The fields shown for a state: the contract's final state, location and loop locals."""
    out: dict[str, Any] = {"loc": state.loc.name}
    out.update(final_json(state))
    loop = state.loop
    running = state.loc not in (Loc.IDLE, Loc.EXITED, Loc.CRASHED)
    for name in LOOP_FIELDS:
        value = getattr(loop, name)
        out[name] = value if running else (False if isinstance(value, bool) else 0)
    return out


# -- ITF ---------------------------------------------------------------------------------


def _itf_value(value: Any, optional: bool = False) -> Any:
    if optional:
        return [] if value is None else [_itf_value(value)]
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return {"#bigint": str(value)}
    if isinstance(value, list | tuple):
        return [_itf_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _itf_value(v, k in OPTIONAL_FIELDS) for k, v in value.items()}
    raise TypeError(f"no ITF encoding for {value!r}")


def to_itf(trace: list[TraceStep], source: str) -> dict[str, Any]:
    """The trace as an ITF document."""
    states: list[dict[str, Any]] = []
    variables: list[str] = []
    for index, item in enumerate(trace):
        snap = snapshot(item.state)
        fields: dict[str, Any] = {"action": item.label}
        fields.update(snap)
        fields["events"] = list(item.events)
        if not variables:
            variables = list(fields)
        itf_state = {"#meta": {"index": index}}
        itf_state.update({k: _itf_value(v, k in OPTIONAL_FIELDS) for k, v in fields.items()})
        states.append(itf_state)
    return {
        "#meta": {
            "format": "ITF",
            "format-description": ITF_DESCRIPTION,
            "source": source,
            "description": "vmballoon-spec model replay: one state per transition",
        },
        "vars": variables,
        "states": states,
    }


# -- readable table ----------------------------------------------------------------------


def _short(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, list) and len(value) > 6:
        return f"[{', '.join(str(v) for v in value[:3])}, ... {len(value)} items]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value).replace("None", "null")


_CAP_NAMES = (
    (CAP_BASIC, "BASIC"), (CAP_BATCHED, "BATCHED"), (CAP_BATCHED_2M, "BATCHED_2M"),
    (CAP_SIGNALLED_WAKEUP, "SIGNALLED_WAKEUP"),
)  # fmt: skip


def status_name(status: int) -> str:
    """A backdoor status by name (its number when it has none)."""
    return STATUS_NAMES.get(status, str(status))


def caps_name(caps: int) -> str:
    """A capability word as ``BASIC|BATCHED|...`` (unknown bits in hex; ``0``: none)."""
    names = [n for bit, n in _CAP_NAMES if caps & bit]
    rest = caps & ~sum(bit for bit, _ in _CAP_NAMES)
    if rest:
        names.append(hex(rest))
    return "|".join(names) or "0"


def _event_text(event: Event) -> str:
    kind = event["ev"]
    if kind == "hv":
        arg1 = event["arg1"]
        if event["cmd"] == "START" and isinstance(arg1, int):
            arg1 = caps_name(arg1)
        args = f"{arg1}, {event['arg2']}"
        result = event["result"]
        res = caps_name(result) if event["cmd"] == "START" and result else str(result)
        return f"{event['cmd']}({args}) -> {status_name(event['status'])}/{res}"
    if kind == "alloc":
        return f"alloc order {event['order']} {event['gfp']} -> {event['pfn']}"
    if kind == "free":
        return f"free order {event['order']} {event['pfn']}"
    if kind == "fault":
        return f"FAULT {event['kind']} {event['pfn']}"
    if kind == "step":
        return f"step {event['name']}"
    if kind == "vmci_create":
        return f"vmci_create ok={event['ok']}"
    return str(kind)


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in after.items():
        old = before.get(key)
        if value == old:
            continue
        if isinstance(value, dict) and isinstance(old, dict):
            out.extend(
                f"{key}.{k}: {_short(old.get(k))} -> {_short(v)}"
                for k, v in value.items()
                if old.get(k) != v
            )
        elif key == "capabilities":
            out.append(f"{key}: {caps_name(int(old or 0))} -> {caps_name(int(value))}")
        else:
            out.append(f"{key}: {_short(old)} -> {_short(value)}")
    return out


def to_table(trace: list[TraceStep]) -> str:
    """One row per transition: its label, the fields that changed, the events it emitted."""
    rows = [f"{'#':>4}  {'transition':<18} changes"]
    previous: dict[str, Any] = {}
    for index, item in enumerate(trace):
        snap = snapshot(item.state)
        if previous:
            changes = _diff(previous, snap)
        else:
            changes = [f"{k}: {_short(v)}" for k, v in snap.items()]
        previous = snap
        lines = changes + [f"  {_event_text(e)}" for e in item.events]
        first = lines[0] if lines else "(no change)"
        rows.append(f"{index:>4}  {item.label:<18} {first}")
        rows.extend(f"{'':>4}  {'':<18} {line}" for line in lines[1:])
    return "\n".join(rows)
