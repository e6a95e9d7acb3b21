"""Traces of a replay that people can read and tools can load, written as they are made.

A replay through the model passes through one state per transition.
:func:`walk` yields them one at a time, with their labels, the events each
transition emitted and, when asked, the properties that fail in that state
(the same checks, ghost and numbering as :func:`vmballoon.model.properties.check_trace`:
index 0 is module init, every entry and every transition counts one).

:func:`write_itf` streams them as an ITF trace (the Apalache trace format:
``#meta``, ``vars``, ``states``); :func:`write_table` as a text table with one
row per transition and only the fields that changed.  Neither keeps the states:
memory is that of the replay itself (the persistent state and the event log)
plus one state's text, so the ITF of a 64 GiB guest inflating 2 MiB pages to
48 GiB streams out in bounded memory.

ITF encoding: integers are JSON numbers below 2**53 and ``{"#bigint": "..."}``
above (what ITF prescribes; jq and JavaScript would round larger numbers); pairs
(the two page sizes' lists, counters and statistics, the doorbell handle) are
``{"#tup": [...]}``; a top-level value that may be absent (``batch_page``, ``page``,
``doorbell``, ``ops``) and an event's ``pfn`` are a sequence of length 0 or 1, the TLA+
idiom that itf-py loads.  A state's ``#meta`` holds its index and, when the
properties were checked, the ``violations`` that hold there (property, message).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from io import StringIO
from typing import Any, Protocol

from vmballoon.core.env import Event
from vmballoon.core.protocol import (
    CAP_BASIC,
    CAP_BATCHED,
    CAP_BATCHED_2M,
    CAP_SIGNALLED_WAKEUP,
    FINAL_KEYS,
    FINAL_SCALAR_KEYS,
    STATS_FIELDS,
    STATUS_NAMES,
)
from vmballoon.core.scenario import Scenario
from vmballoon.core.variants import Variant
from vmballoon.model.claims import list_segments as list_segments  # re-exported (traceout)
from vmballoon.model.machine import start, trace
from vmballoon.model.plist import PList, iterate
from vmballoon.model.properties import Monitor, new_events
from vmballoon.model.state import RETURNED, STAT, Loc, State

ITF_DESCRIPTION = "https://apalache.informal.systems/docs/adr/015adr-trace.html"
MODEL_DESCRIPTION = "vmballoon-spec model replay: one state per transition"
LOOP_FIELDS = ("num_pages", "allocations", "rate", "error", "cansleep", "is_2m")
VARS = ("action", "loc", *FINAL_KEYS, *LOOP_FIELDS, "events")
"""The variables of every ITF state, in order: the action, the location, the contract's
``final`` object, the loop's locals and the transition's events."""
SAFE_INT = 1 << 53


class TextSink(Protocol):
    """Where a trace is streamed: anything with ``write(str)`` (a text file, stdout)."""

    def write(self, text: str, /) -> int:
        """Write ``text``."""


@dataclass(frozen=True)
class TraceStep:
    """One step of a replay: its index and label, the state after it, the events it
    emitted, and the properties failing in that state (empty when unchecked)."""

    index: int
    label: str
    state: State
    events: tuple[Event, ...]
    violations: tuple[tuple[str, str], ...] = ()


def walk(scenario: Scenario, variant: Variant, check: bool = False) -> Iterator[TraceStep]:
    """Every state the model passes through replaying ``scenario``, from module init.

    With ``check`` a :class:`vmballoon.model.properties.Monitor` checks every property in
    every state and each step carries the ones failing there (as ``check_trace`` with
    ``first_only=False``).
    """
    state = start(scenario, variant)
    monitor = Monitor(state, first_only=False) if check else None

    def failing() -> tuple[tuple[str, str], ...]:
        return tuple((v.prop, v.message) for v in monitor.last) if monitor else ()

    yield TraceStep(0, "init", state, (), failing())
    for t in trace(state, scenario.steps):
        if monitor is not None:
            monitor.step(t.prev, t.state)
        yield TraceStep(t.index, t.label, t.state, tuple(new_events(t.prev, t.state)), failing())


def model_trace(scenario: Scenario, variant: Variant, check: bool = False) -> list[TraceStep]:
    """:func:`walk` as a list (for short scenarios: it keeps every state)."""
    return list(walk(scenario, variant, check))


def _stopped_loop(state: State) -> bool:
    return state.loc in RETURNED


def _loop_values(state: State) -> dict[str, Any]:
    loop = state.loop
    idle = _stopped_loop(state)
    out: dict[str, Any] = {}
    for name in LOOP_FIELDS:
        value = getattr(loop, name)
        out[name] = (False if isinstance(value, bool) else 0) if idle else value
    return out


def _small_values(state: State) -> dict[str, Any]:
    d = state.drv  # the model's Driver names its scalar fields as the contract does
    return {name: getattr(d, name) for name in FINAL_SCALAR_KEYS}


def _num(value: int) -> str:
    return str(value) if -SAFE_INT < value < SAFE_INT else f'{{"#bigint": "{value}"}}'


class _ListText:
    """The JSON text of one persistent list, updated in O(1) Python steps when the list
    gained or lost its head since the last call (the common case of a transition)."""

    def __init__(self) -> None:
        self.node: PList = None
        self.text = ""

    def __call__(self, node: PList) -> str:
        old = self.node
        if node is old:
            return self.text
        if node is None:
            text = ""
        elif node[1] is old:  # list_add: a new head
            text = _num(node[0]) + (", " + self.text if self.text else "")
        elif old is not None and old[1] is node:  # the head was taken off
            text = self.text[len(_num(old[0])) + 2 :]
        else:
            text = ", ".join(map(_num, iterate(node)))
        self.node, self.text = node, text
        return text


def _itf(value: Any) -> Any:
    """A small value in ITF (records, sequences, integers)."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int):
        return value if -SAFE_INT < value < SAFE_INT else {"#bigint": str(value)}
    if isinstance(value, list | tuple):
        return [_itf(v) for v in value]
    if isinstance(value, dict):
        return {k: _itf(v) for k, v in value.items()}
    raise TypeError(f"no ITF encoding for {value!r}")


def _event_itf(event: Event) -> dict[str, Any]:
    out = {k: _itf(v) for k, v in event.items()}
    if "pfn" in event:
        out["pfn"] = [] if event["pfn"] is None else [_itf(event["pfn"])]
    return out


def _stats_itf(stats: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, pair in STATS_FIELDS:
        i = STAT[name]
        out[name] = {"#tup": [_itf(stats[i]), _itf(stats[i + 1])]} if pair else _itf(stats[i])
    return out


def _option(value: Any) -> list[Any]:
    return [] if value is None else [value]


class ItfWriter:
    """Writes an ITF document state by state (:meth:`begin`, :meth:`state`, :meth:`end`)."""

    def __init__(self, out: TextSink) -> None:
        self.out = out
        self.lists = [[_ListText() for _ in range(3)] for _ in range(2)]
        self.count = 0

    def begin(self, source: str, checked: bool, description: str = MODEL_DESCRIPTION) -> None:
        """The trace's ``#meta`` and ``vars``; then the states follow."""
        meta = {
            "format": "ITF",
            "format-description": ITF_DESCRIPTION,
            "source": source,
            "description": description,
            "checked": checked,
            "violations": "in each state's #meta" if checked else "not checked (--no-check)",
        }
        self.out.write(
            '{"#meta": ' + json.dumps(meta) + ',\n"vars": ' + json.dumps(VARS) + ',\n"states": [\n'
        )

    def _pages(self, state: State) -> str:
        bodies = []
        for idx in (0, 1):
            texts = [
                cache(seg)
                for cache, seg in zip(self.lists[idx], list_segments(state, idx), strict=True)
            ]
            bodies.append("[" + ", ".join(t for t in texts if t) + "]")
        return '{"#tup": [' + bodies[0] + ", " + bodies[1] + "]}"

    def state(self, item: TraceStep, checked: bool) -> None:
        """One state of the trace."""
        st = item.state
        d = st.drv
        meta: dict[str, Any] = {"index": item.index}
        if checked:
            meta["violations"] = [{"property": p, "message": m} for p, m in item.violations]
        head: dict[str, Any] = {"#meta": meta, "action": item.label, "loc": st.loc.name}
        head.update({k: _itf(v) for k, v in _small_values(st).items()})
        head["ops"] = _option(d.ops)
        tail: dict[str, Any] = {
            "refused": {
                "#tup": [
                    [_itf(p) for p in iterate(d.refused[0])],
                    [_itf(p) for p in iterate(d.refused[1])],
                ]
            },
            "n_refused": {"#tup": [_itf(d.n_refused[0]), _itf(d.n_refused[1])]},
            "batch_page": _option(_itf(d.batch_page)),
            "page": _option(_itf(d.page)),
            "doorbell": _option(None if d.doorbell is None else {"#tup": _itf(d.doorbell)}),
            "crashed": st.loc == Loc.CRASHED,
            "stats": _stats_itf(st.stats),
        }
        tail.update({k: _itf(v) for k, v in _loop_values(st).items()})
        tail["events"] = [_event_itf(e) for e in item.events]
        text = json.dumps(head)[:-1] + ', "pages": ' + self._pages(st) + ", " + json.dumps(tail)[1:]
        self.out.write((",\n" if self.count else "") + text)
        self.count += 1

    def end(self) -> None:
        """Close the document."""
        self.out.write("\n]}\n")


def write_itf(
    steps: Iterable[TraceStep],
    out: TextSink,
    source: str,
    checked: bool,
    description: str = MODEL_DESCRIPTION,
) -> int:
    """Stream ``steps`` as one ITF document to ``out``; the number of states."""
    writer = ItfWriter(out)
    writer.begin(source, checked, description)
    for item in steps:
        writer.state(item, checked)
    writer.end()
    return writer.count


def to_itf(trace: Iterable[TraceStep], source: str, checked: bool = False) -> dict[str, Any]:
    """The trace as an ITF document (a JSON value; for short traces)."""
    buf = StringIO()
    write_itf(trace, buf, source, checked)
    value: dict[str, Any] = json.loads(buf.getvalue())
    return value


# -- readable table ----------------------------------------------------------------------


def snapshot(state: State) -> dict[str, Any]:
    """The fields shown for a state: the contract's final state, location and loop locals."""
    from vmballoon.model.machine import final_json

    out: dict[str, Any] = {"loc": state.loc.name}
    out.update(final_json(state))
    out.update(_loop_values(state))
    return out


def _short(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, list) and len(value) > 6:
        return f"[{', '.join(str(v) for v in value[:3])}, ... {len(value)} items]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value).replace("None", "null")


_CAP_NAMES = (
    (CAP_BASIC, "BASIC"),
    (CAP_BATCHED, "BATCHED"),
    (CAP_BATCHED_2M, "BATCHED_2M"),
    (CAP_SIGNALLED_WAKEUP, "SIGNALLED_WAKEUP"),
)


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


TABLE_HEADER = f"{'#':>4}  {'transition':<18} changes"


def table_rows(
    steps: Iterable[TraceStep],
    first: int = 0,
    stop: int | None = None,
    violations_only: bool = False,
) -> Iterator[str]:
    """The table's lines, one block per transition: its label, the fields that changed
    (against the transition before it, shown or not), the events, the failing properties.

    Only transitions ``first <= index < stop`` are shown, and with ``violations_only``
    only those where a property fails.
    """
    previous: dict[str, Any] | None = None
    for item in steps:
        if stop is not None and item.index >= stop:
            break
        if item.index < first - 1:
            continue
        snap = snapshot(item.state)
        shown = item.index >= first and (item.violations or not violations_only)
        if shown:
            if previous is not None:
                changes = _diff(previous, snap)
            else:
                changes = [f"{k}: {_short(v)}" for k, v in snap.items()]
            lines = changes + [f"  {_event_text(e)}" for e in item.events]
            lines += [f"  ! {prop}: {msg}" for prop, msg in item.violations]
            head = lines[0] if lines else "(no change)"
            yield f"{item.index:>4}  {item.label:<18} {head}"
            for line in lines[1:]:
                yield f"{'':>4}  {'':<18} {line}"
        previous = snap


def write_table(
    steps: Iterable[TraceStep],
    out: TextSink,
    first: int = 0,
    stop: int | None = None,
    violations_only: bool = False,
) -> None:
    """Stream the table of :func:`table_rows` to ``out``."""
    out.write(TABLE_HEADER + "\n")
    for line in table_rows(steps, first, stop, violations_only):
        out.write(line + "\n")


def to_table(
    trace: Iterable[TraceStep],
    first: int = 0,
    stop: int | None = None,
    violations_only: bool = False,
) -> str:
    """The whole table as one string (for short traces)."""
    return "\n".join([TABLE_HEADER, *table_rows(trace, first, stop, violations_only)])
