"""The compiled driver in-process, its environment the Python :class:`Env`.

The harness (:mod:`vmballoon.harness.build`, ``vmballoon/harness/c/harness.c``) is a shared library.
:class:`CDriver` forks a child process per module load; the child loads the
library with ctypes and installs the environment as callbacks: every backdoor
command, allocation, free and VMCI call the C makes is a direct call into the
same :class:`vmballoon.core.env.Env` the model and the reference use (scripted
host, cooperative host, memory pressure), so the three readings meet the same
world and log the same events.  The parent talks to the child once per entry
point (one pickled request, one pickled reply), not once per command; a crash of
the C or of the child cannot take the checker down.

In the child an :class:`Observer` (the trace checker of
:mod:`vmballoon.apps.ctrace`) can be attached: it is called before every
environment call and reads the driver's state from the C
(:meth:`Runtime.snapshot`, :meth:`Runtime.lists`), and what it reports travels
back with each reply.

A fault of the driver (a NULL dereference, a list corruption) ends the entry
point in progress and is logged as a ``fault`` event; :attr:`CDriver.crash` names
the line of the driver it happened at (:class:`Crash`).  A driver that does not
return within ``timeout`` seconds is killed and reported as :class:`DriverTimeout`.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import gc
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from vmballoon.core.env import Env, Event, EventStack, events_since
from vmballoon.core.protocol import (
    BATCH_MAX_PAGES,
    BATCH_STATUS_MASK,
    FINAL_KEYS,
    NULL_PFN,
    STATS_FIELDS,
)

DEFAULT_TIMEOUT = 10.0
"""Seconds the driver may run an entry point before it is stopped."""

U64 = (1 << 64) - 1
GFP_NAMES = ("nosleep", "cansleep", "kernel", "other")
"""The allocation flags the harness tells apart (``gfp_code`` in harness.c)."""
OPS_NAMES: tuple[str | None, ...] = (None, "basic", "batched", None)
"""``b->ops``: NULL, the basic ops, the batched ops, ops of a patched source's own."""
ENTRIES = {"init": 0, "work": 1, "doorbell": 2, "exit": 3}
Drawing = tuple[bool, bool, bool]
"""For each script (hv, alloc, vmci): whether its answers are still being drawn."""
NOT_DRAWING: Drawing = (False, False, False)
"""No script (hv, alloc, vmci) is still being drawn: every answer is in the scenario."""
DRAWING: Drawing = (True, True, True)
"""Every script is still being drawn (an entry point whose answers a fuzzer draws)."""
SNAP_FIELDS = 20
"""The fields of ``harness_snapshot`` before the statistics."""
HARNESS_SOURCES = ("harness.c", "kshim.h")
"""Files of the harness (not the driver) that addr2line may name in a crash's inline chain."""


class HarnessError(Exception):
    """The harness process failed (not the driver: the driver's faults are events)."""


class DriverTimeout(HarnessError):
    """The driver did not return from an entry point in time (it loops)."""


@dataclass(frozen=True)
class Crash:
    """Where the driver faulted: the fault's kind and the line of the driver source."""

    kind: str  # null_deref or list_corrupt
    file: str  # the driver source as the compiler named it ("" when unknown)
    line: int  # 0 when unknown
    function: str  # the driver's function ("" when unknown)

    def site(self) -> str:
        """``file:line (function)``, or why there is none."""
        if not self.line:
            return "an unknown line (no debug information for the address)"
        return f"{self.file}:{self.line} ({self.function})"


class Observer(Protocol):
    """What runs in the child beside the driver: told of every entry point and of every
    environment call before it is answered (the C's state is then readable)."""

    def begin(self, name: str) -> None:
        """Entry point ``name`` starts (the runtime's env holds its ``step`` event)."""

    def call(self, kind: str, args: tuple[int, ...]) -> None:
        """The driver calls its environment: ``hv`` (cmd, arg1, arg2), ``alloc`` (order,
        gfp code), ``free`` (order, pfn), ``vmci_create``, ``vmci_destroy`` or ``warn``."""

    def end(self) -> None:
        """The entry point returned, or crashed."""

    def report(self) -> Any:
        """What the parent receives after each entry point (picklable)."""


ObserverFactory = Callable[..., Observer]


# -- the child: one module load of the library ------------------------------------------------

_ALLOC = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint, ctypes.c_int, ctypes.POINTER(ctypes.c_ulong))
_RELEASE = ctypes.CFUNCTYPE(None, ctypes.c_uint, ctypes.c_ulong)
_U64P = ctypes.POINTER(ctypes.c_uint64)
_HV = ctypes.CFUNCTYPE(
    None, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, _U64P, _U64P
)
_CREATE = ctypes.CFUNCTYPE(ctypes.c_long)
_NOTIFY = ctypes.CFUNCTYPE(None)


class Runtime:
    """The library loaded in this process, its environment :attr:`env` (child side)."""

    def __init__(self, library: Path, env: Env, send_batch: bool) -> None:
        self.env = env
        self.observer: Observer | None = None
        self.error: str | None = None  # an exception raised inside a callback
        self.was_crashed = False
        self.heartbeat: Callable[[], None] | None = None  # told now and then of progress
        # while an entry point runs on answers still being drawn (CDriver.begin): the
        # scripts the parent has not finished, and how to wait for more of them
        self.open_scripts = [False, False, False]  # hv, alloc, vmci
        self.wait_for_answers: Callable[[], None] | None = None
        self._calls = 0
        lib = ctypes.CDLL(str(library))
        self.lib = lib
        lib.harness_snapshot.restype = ctypes.c_size_t
        lib.harness_snapshot.argtypes = [ctypes.POINTER(ctypes.c_uint64)]
        lib.harness_list.restype = ctypes.c_size_t
        lib.harness_list.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
        lib.harness_list_delta.restype = ctypes.c_size_t
        lib.harness_list_delta.argtypes = lib.harness_list.argtypes
        lib.harness_flight_log.restype = ctypes.c_size_t
        lib.harness_flight_log.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
        lib.harness_batch.restype = ctypes.c_size_t
        lib.harness_batch.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
        lib.harness_run.restype = ctypes.c_int
        lib.harness_run.argtypes = [ctypes.c_int]
        self._snap = (ctypes.c_uint64 * 64)()
        self._buf = (ctypes.c_uint64 * 1024)()
        self._callbacks = (
            _ALLOC(self._alloc),
            _RELEASE(self._release),
            _HV(self._hv),
            _CREATE(self._create),
            _NOTIFY(self._destroy),
            _NOTIFY(self._warn),
        )
        lib.harness_setup(
            *self._callbacks,
            ctypes.c_ulong(env.totalram & U64),
            ctypes.c_int(1 if send_batch else 0),
        )

    # -- the environment, called by the C --------------------------------------------------

    def _beat(self) -> None:
        """Every 8 environment calls: tell :attr:`heartbeat` (the parent's clock of a
        driver that loops restarts at each of the driver's words to its environment)."""
        self._calls += 1
        if self._calls & 7 == 0 and self.heartbeat is not None:
            self.heartbeat()

    def _answer_ready(self, script: int) -> None:
        """Before the driver reads the next answer of ``script`` (0: hv, 1: alloc, 2:
        vmci): while the parent is still drawing that script and has sent no answer for
        this call, wait for more (or for the script to be finished: then the defaults)."""
        while self.open_scripts[script] and self.wait_for_answers is not None:
            env = self.env
            pos, have = (
                (env.hv_pos, env.hv_script),
                (env.alloc_pos, env.alloc_script),
                (env.vmci_pos, env.vmci_script),
            )[script]
            if pos < len(have):
                return
            self.wait_for_answers()

    def _failed(self) -> None:
        if self.error is None:
            self.error = traceback.format_exc(limit=-3).strip()

    def _alloc(self, order: int, gfp: int, out: Any) -> int:
        self._beat()
        try:
            if self.observer is not None:
                self.observer.call("alloc", (order, gfp))
            self._answer_ready(1)
            pfn, self.env = self.env.alloc(order, GFP_NAMES[gfp])
            if pfn is None:
                return 0
            out[0] = pfn  # any PFN up to 2**64 - 2 (frames at 2**63 and above are drawn)
            return 1
        except Exception:
            self._failed()
            return 0

    def _release(self, order: int, pfn: int) -> None:
        self._beat()
        try:
            if self.observer is not None:
                self.observer.call("free", (order, pfn))
            self.env = self.env.free(pfn, order)
        except Exception:
            self._failed()

    def _hv(self, cmd: int, arg1: int, arg2: int, n: int, entries: Any, out: Any) -> None:
        self._beat()
        try:
            if self.observer is not None:
                self.observer.call("hv", (cmd, arg1, arg2))
            batch = tuple(entries[:n]) if n else None
            if self.env.host is None:
                self._answer_ready(0)
            response, self.env = self.env.hv(cmd, arg1, arg2, batch)
            out[0] = response.status & U64
            out[1] = response.result & U64
            got = response.entries
            if got:
                m = min(len(got), BATCH_MAX_PAGES)
                out[2] = m
                for i in range(m):
                    out[3 + i] = got[i] & BATCH_STATUS_MASK
        except Exception:
            self._failed()

    def _create(self) -> int:
        try:
            if self.observer is not None:
                self.observer.call("vmci_create", ())
            self._answer_ready(2)
            handle, self.env = self.env.vmci_create()
            return -1 if handle is None else handle[1]
        except Exception:
            self._failed()
            return -1

    def _destroy(self) -> None:
        try:
            if self.observer is not None:
                self.observer.call("vmci_destroy", ())
            self.env = self.env.vmci_destroy()
        except Exception:
            self._failed()

    def _warn(self) -> None:
        try:
            if self.observer is not None:
                self.observer.call("warn", ())
            self.env = self.env.fault("warn", None)
        except Exception:
            self._failed()

    # -- entry points ---------------------------------------------------------------------

    def run(self, name: str) -> bool:
        """Run entry point ``name`` (``init``: module init); whether the driver crashed
        (the ``fault`` event is logged)."""
        obs = self.observer
        if obs is not None and name != "init":
            obs.begin(name)
        crashed = bool(self.lib.harness_run(ENTRIES[name]))
        if crashed and not self.was_crashed:
            self.was_crashed = True
            kind = ctypes.c_char_p.in_dll(self.lib, "harness_crash_kind").value or b"null_deref"
            pfn = ctypes.c_ulong.in_dll(self.lib, "harness_crash_pfn").value
            self.env = self.env.fault(kind.decode(), None if pfn == NULL_PFN else pfn)
        if obs is not None and name != "init":
            obs.end()
        if self.error is not None:
            raise HarnessError(f"the environment failed inside the driver: {self.error}")
        return crashed

    def crash_pc(self) -> tuple[str, int] | None:
        """The crash's kind and the offset of its program counter in the library."""
        if not self.was_crashed:
            return None
        kind = ctypes.c_char_p.in_dll(self.lib, "harness_crash_kind").value or b"null_deref"
        pc = ctypes.c_ulong.in_dll(self.lib, "harness_crash_pc").value
        return kind.decode(), pc - _load_base(self.lib)

    # -- the driver's state ----------------------------------------------------------------

    def snapshot(self) -> list[int]:
        """``harness_snapshot``: the fields of ``struct vmballoon`` (see harness.c) and the
        statistics in :data:`STATS_FIELDS` order."""
        n = self.lib.harness_snapshot(self._snap)
        return self._snap[:n]

    def lists(self, which: int) -> list[int]:
        """List ``which`` head to tail (0/1: pages 4k/2m, 2/3: refused 4k/2m), (4) the
        pages in flight as pairs ``pfn, flight << 4 | is_2m``, or (5) the frames taken off
        the balloon lists since ``harness_clear_taken``."""
        n = self.lib.harness_list(which, self._buf, len(self._buf))
        if n > len(self._buf):
            self._buf = (ctypes.c_uint64 * (2 * n))()
            n = self.lib.harness_list(which, self._buf, len(self._buf))
        return self._buf[:n]

    def list_delta(self, which: int) -> tuple[int, list[int]]:
        """How page list ``which`` (0..3) differs from what the last call returned: the
        number of entries gone from the head of that list, and the entries now before the
        tail the two share, head to tail (``harness_list_delta``: the entries added at
        the head since, found by the epoch they were added at; after a change elsewhere,
        which the harness's list_add, list_del and INIT_LIST_HEAD see, all of the last
        reading gone and the whole list).  ``which == -1``: forget, the next call of each
        list returns it whole."""
        n = self.lib.harness_list_delta(which, self._buf, len(self._buf))
        if n > len(self._buf):
            self._buf = (ctypes.c_uint64 * (2 * n))()
            n = self.lib.harness_list_delta(which, self._buf, len(self._buf))
        if which < 0:
            return 0, []
        return self._buf[0], self._buf[2:n]

    def flight_log(self) -> list[int]:
        """The changes of the pages in flight since the last call (the first starts the
        log and returns nothing), oldest first, as pairs ``pfn, flight << 4 | is_2m``
        (``harness_flight_log``; flight 0: the page left ``in_flight[]``, the last entry
        taking its slot)."""
        n = self.lib.harness_flight_log(self._buf, len(self._buf))
        if n > len(self._buf):
            self._buf = (ctypes.c_uint64 * (2 * n))()
            n = self.lib.harness_flight_log(self._buf, len(self._buf))
        return self._buf[:n]

    def batch(self, n: int) -> list[int]:
        """The first ``n`` (at most 512) batch entries as the driver wrote them."""
        got = self.lib.harness_batch(self._buf, min(n, BATCH_MAX_PAGES))
        return self._buf[:got]

    def final(self) -> dict[str, Any]:
        """The driver's state now, as the contract's ``final`` object."""
        return final_of(self.snapshot(), [self.lists(i) for i in range(4)])

    def dump_coverage(self) -> None:
        """Write the gcov counters of a coverage build (nothing otherwise)."""
        self.lib.harness_dump_coverage()


def fields_of(snap: list[int]) -> dict[str, Any]:
    """The fields of ``struct vmballoon`` in a snapshot (:meth:`Runtime.snapshot`), by the
    contract's names: the ``final`` object without its lists and statistics."""
    return {
        "size": snap[0],
        "target": snap[1],
        "rate_alloc": snap[2],
        "slow_allocation_cycles": snap[3],
        "reset_required": bool(snap[4]),
        "capabilities": snap[5],
        "supported_page_sizes": snap[6],
        "batch_max_pages": snap[7],
        "ops": OPS_NAMES[snap[8]],
        "n_refused": [snap[9], snap[10]],
        "batch_page": None if snap[11] == NULL_PFN else snap[11],
        "page": None if snap[12] == NULL_PFN else snap[12],
        "doorbell": [snap[14], snap[15]] if snap[13] else None,
        "crashed": bool(snap[16]),
    }


def final_of(snap: list[int], lists: list[list[int]]) -> dict[str, Any]:
    """The contract's ``final`` object from a snapshot and the four page lists."""
    stats: dict[str, Any] = {}
    i = SNAP_FIELDS
    for name, pair in STATS_FIELDS:
        if pair:
            stats[name] = [snap[i], snap[i + 1]]
            i += 2
        else:
            stats[name] = snap[i]
            i += 1
    final = fields_of(snap)
    final["pages"], final["refused"] = [lists[0], lists[1]], [lists[2], lists[3]]
    final["stats"] = stats
    return {key: final[key] for key in FINAL_KEYS}


def _load_base(lib: ctypes.CDLL) -> int:
    """Where the library is mapped in this process (its first mapping)."""
    path = os.path.realpath(lib._name)
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == path and int(parts[2], 16) == 0:
                return int(parts[0].split("-")[0], 16)
    return 0


# -- the pipe between parent and child --------------------------------------------------------


def _framed(value: Any) -> memoryview:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return memoryview(struct.pack("<Q", len(data)) + data)


def _send(fd: int, value: Any) -> None:
    view = _framed(value)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes | None:
    chunks: list[bytes] = []
    while n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv(fd: int, deadline: float | None = None) -> Any:
    head = _read_exact(fd, 8, deadline)
    if head is None:
        raise EOFError
    body = _read_exact(fd, struct.unpack("<Q", head)[0], deadline)
    if body is None:
        raise EOFError
    return pickle.loads(body)


def _env_fields(env: Env) -> tuple[Any, ...]:
    return (
        env.hv_pos,
        env.alloc_pos,
        env.vmci_pos,
        env.vmci_created,
        env.memory,
        env.host,
        env.alloc_fail,
    )


def _extended(script: tuple[Any, ...], kept: int, tail: tuple[Any, ...]) -> tuple[Any, ...]:
    """``script``'s first ``kept`` answers followed by ``tail`` (:meth:`CDriver._scripts`)."""
    return script[:kept] + tail if kept else tail


def _prepare_child_process(mask: Iterable[int]) -> None:
    """Set up a forked child for the driver: SIGINT's default handler, the signal mask
    ``mask`` (the parent's before the fork), no faulthandler, no cyclic collector."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    faulthandler.disable()  # the driver's faults are the harness's to report
    # a short-lived process that builds acyclic objects (events, persistent lists, the
    # observer's states): the cyclic collector would only traverse the heap it shares
    # with the parent again and again (copying its pages)
    gc.disable()


def _child(library: Path, env: Env, send_batch: bool, rfd: int, wfd: int) -> None:
    """The child's loop: run what the parent asks, reply with what changed."""
    _Child(Runtime(library, env, send_batch), rfd, wfd).serve()


class _Child:
    """The child's side of the pipe: requests in, one reply per request."""

    def __init__(self, rt: Runtime, rfd: int, wfd: int) -> None:
        self.rt, self.rfd, self.wfd = rt, rfd, wfd
        self.sent: EventStack = None  # the log as far as the last reply carried it
        self.exited = False
        self.last_beat = time.monotonic()
        rt.heartbeat = self.alive
        rt.wait_for_answers = self.more_answers

    def reply(self, **extra: Any) -> None:
        """What changed since the last reply: the new events, the environment's state."""
        rt = self.rt
        events = events_since(rt.env.log, self.sent)
        self.sent = rt.env.log
        obs = rt.observer
        reply = {
            "events": events,
            "env": _env_fields(rt.env),
            "crashed": rt.was_crashed,
            "exited": self.exited,
            "crash": rt.crash_pc(),
            "report": obs.report() if obs is not None else None,
        }
        _send(self.wfd, {**reply, **extra})

    def alive(self) -> None:
        """At most every half second of a long entry point: tell the parent's clock."""
        now = time.monotonic()
        if now - self.last_beat > 0.5:
            self.last_beat = now
            _send(self.wfd, {"alive": True})

    def take_scripts(self, scripts: Any) -> None:
        """Extend the scripts as the parent says (``(kept, tail)`` each, None: unchanged)."""
        if scripts is not None:
            env = self.rt.env
            hv, alloc, vmci = (
                _extended(old, *new)
                for old, new in zip(
                    (env.hv_script, env.alloc_script, env.vmci_script), scripts, strict=True
                )
            )
            self.rt.env = env._replace(hv_script=hv, alloc_script=alloc, vmci_script=vmci)

    def more_answers(self) -> None:
        """Wait for the parent's next ``("more", scripts, open scripts)``: it drew more."""
        msg = _recv(self.rfd)
        if msg[0] != "more":
            raise HarnessError(f"expected answers, got {msg[0]!r}")
        self.take_scripts(msg[1])
        self.rt.open_scripts = list(msg[2])

    def steps(self, op: str, msg: tuple[Any, ...]) -> None:
        """``("step", name, scripts, final, open scripts)`` or ``("run", names, scripts,
        final)``: the entry points, then one reply (the driver's state with ``final``)."""
        rt = self.rt
        self.take_scripts(msg[2])
        rt.open_scripts = [bool(x) for x in (msg[4] if len(msg) > 4 else (0, 0, 0))]
        for name in (msg[1],) if op == "step" else msg[1]:
            if self.exited or rt.was_crashed:
                break
            if op == "run":
                _send(self.wfd, {"begin": name})  # the parent times each entry point
            rt.env = rt.env.step(name)
            rt.run(name)
            self.exited = name == "exit"
        rt.open_scripts = [False, False, False]
        self.reply(final=rt.final() if len(msg) < 4 or msg[3] else None)

    def serve(self) -> None:
        """Module init, then the parent's requests until ``quit``."""
        rt = self.rt
        rt.run("init")
        self.reply()
        while True:
            msg = _recv(self.rfd)
            op = msg[0]
            if op == "more":  # answers of a step that needed no more of them
                self.take_scripts(msg[1])
            elif op in ("step", "run"):
                self.steps(op, msg)
            elif op == "state":
                self.reply(final=rt.final())
            elif op == "attach":
                rt.observer = msg[1](rt, *msg[2])
                self.reply()
            elif op == "quit":
                rt.dump_coverage()
                return
            else:
                raise HarnessError(f"unknown request {op!r}")


# -- the parent's handle ----------------------------------------------------------------------


INTERRUPTS = frozenset({signal.SIGINT, signal.SIGTERM})
"""The signals that stop a campaign (held while a driver's process forks)."""


class CDriver:
    """One module load of the compiled driver (a forked child), stepped entry point by
    entry point.

    ``env`` is the environment at module load; after every call :attr:`env` holds the
    environment with the new events.  Assigning :attr:`env` new scripts (a scenario that
    grows while it runs) hands them to the child with the next step.  ``with_batch``:
    show a host the batch entries of batched commands; by default only when ``env`` has a
    host (a cooperative host reads them) or with ``trace`` (a trace checker reads them).
    ``wait=False``: return while module init runs (its reply is taken with the next one:
    :meth:`collect_all`, and every request, takes the replies still due first).
    """

    def __init__(
        self,
        library: Path,
        env: Env,
        timeout: float = DEFAULT_TIMEOUT,
        with_batch: bool | None = None,
        trace: bool = False,
        wait: bool = True,
    ) -> None:
        self.library = library
        self.timeout = timeout
        self.trace = trace
        self.crashed = False
        self.exited = False
        self.steps = 0
        self.crash: Crash | None = None
        self.report: Any = None  # the attached observer's last report
        self._env = env
        self._scripts_sent = (env.hv_script, env.alloc_script, env.vmci_script)
        self._final: dict[str, Any] | None = None
        self._pending: deque[str] = deque()  # entry points submitted, not yet collected
        self._inbox: deque[dict[str, Any]] = deque()  # replies read while a request waited
        self._drawing = False  # the running entry point may wait for answers (feed)
        send = (env.host is not None or trace) if with_batch is None else with_batch
        to_child, self._to_child = os.pipe()
        self._from_child, from_parent = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        # a Ctrl-C (or SIGTERM) that arrived during the fork would run its handler inside
        # an at-fork callback (logging's), where Python ignores the KeyboardInterrupt it
        # raises: held until the parent is back in its own code
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                os.close(self._to_child)
                os.close(self._from_child)
                _prepare_child_process(mask)
                _child(library, env, send, to_child, from_parent)
            except EOFError:
                pass
            except BaseException:
                code = 1
                with contextlib.suppress(OSError):
                    _send(from_parent, {"error": traceback.format_exc(limit=-4).strip()})
            finally:
                os._exit(code)
        os.close(to_child)
        os.close(from_parent)
        os.set_blocking(self._to_child, False)  # a request never waits on a full reply pipe
        self.pid = pid
        self._closed = False
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self._pending.append("module init")
        if wait:
            self.collect_all()

    # -- plumbing ---------------------------------------------------------------------------

    def _receive(self, what: str) -> dict[str, Any]:
        try:
            while True:
                msg: dict[str, Any] = (
                    self._inbox.popleft()
                    if self._inbox
                    else _recv(self._from_child, time.monotonic() + self.timeout)
                )
                if "alive" in msg:
                    continue
                if "begin" not in msg:
                    break
                self.steps += 1
                what = f"step {self.steps} ({msg['begin']})"
        except TimeoutError:
            self._kill()
            raise DriverTimeout(
                f"the driver did not return from {what} within {self.timeout:g} s: it loops"
            ) from None
        except EOFError:
            status = self._reap()
            raise HarnessError(f"the harness stopped during {what}: {status}") from None
        if "error" in msg:
            self._kill()
            raise HarnessError(f"the harness failed during {what}: {msg['error']}")
        env = self._env
        log = env.log
        for ev in msg["events"]:
            log = (ev, log)
        hv_pos, alloc_pos, vmci_pos, created, memory, host, alloc_fail = msg["env"]
        self._env = Env(
            env.hv_script,
            hv_pos,
            env.alloc_script,
            alloc_pos,
            env.vmci_script,
            vmci_pos,
            created,
            memory,
            env.totalram,
            log,
            host,
            alloc_fail,
        )
        self.crashed = msg["crashed"]
        self.exited = msg["exited"]
        if msg["crash"] is not None and self.crash is None:
            self.crash = _crash_site(self.library, *msg["crash"])
        self.report = msg["report"]
        self._final = msg.get("final")
        return msg

    def _post(self, msg: tuple[Any, ...]) -> None:
        """Send request ``msg``.  While the child's pipe is full, the replies the child
        is writing are read into :attr:`_inbox` (a caller that takes replies late must
        not leave both processes waiting to write)."""
        if self._closed:
            raise HarnessError("the harness was closed")
        view = _framed(msg)
        try:
            while view:
                try:
                    view = view[os.write(self._to_child, view) :]
                except BlockingIOError:
                    readable, writable, _ = select.select(
                        [self._from_child], [self._to_child], [], self.timeout
                    )
                    if readable:
                        self._inbox.append(_recv(self._from_child))
                    elif not writable:
                        self._kill()
                        raise DriverTimeout(
                            f"the driver took no request within {self.timeout:g} s: it loops"
                        ) from None
        except (OSError, EOFError):
            raise HarnessError(f"the harness stopped: {self._reap()}") from None

    def _request(self, msg: tuple[Any, ...], what: str) -> dict[str, Any]:
        self.collect_all()
        self._post(msg)
        return self._receive(what)

    def _scripts(self) -> tuple[tuple[int, tuple[Any, ...]], ...] | None:
        """The scripts to hand the child, each as ``(kept, tail)``: the child keeps the
        first ``kept`` answers it has and appends ``tail`` (a script that only grew at
        its end, the fuzzer's, travels by its new answers only); None: unchanged."""
        env = self._env
        now = (env.hv_script, env.alloc_script, env.vmci_script)
        sent = self._scripts_sent
        if all(a is b for a, b in zip(now, sent, strict=True)):
            return None
        self._scripts_sent = now
        return tuple(
            (len(old), new[len(old) :]) if new[: len(old)] == old else (0, new)
            for new, old in zip(now, sent, strict=True)
        )

    def _reap(self) -> str:
        if self._closed:
            return "closed"
        self._closed = True
        os.close(self._to_child)
        os.close(self._from_child)
        _, status = os.waitpid(self.pid, 0)
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
            if signum in INTERRUPTS:  # a Ctrl-C (or SIGTERM) reached the child first
                raise KeyboardInterrupt
            return f"killed by signal {signal.Signals(signum).name}"
        return f"exit status {os.WEXITSTATUS(status)}"

    @property
    def env(self) -> Env:
        """The environment with every event so far."""
        return self._env

    @env.setter
    def env(self, env: Env) -> None:
        self._env = env

    # -- entry points ----------------------------------------------------------------------

    def attach(self, factory: ObserverFactory, *args: Any, wait: bool = True) -> Any:
        """Attach ``factory(runtime, *args)`` as the child's observer; its first report
        (``wait=False``: return None at once, the report comes with the next reply taken)."""
        if not wait:
            self._post(("attach", factory, args))
            self._pending.append("attach")
            return None
        self._request(("attach", factory, args), "attach")
        return self.report

    def step(self, name: str, final: bool = True) -> None:
        """Run entry point ``name`` (logging its ``step`` event); nothing after exit or a
        crash.  ``final``: also fetch the driver's state (:meth:`state`)."""
        self.collect_all()
        if self.exited or self.crashed:
            return
        self.submit(name, final)
        self.collect()

    def submit(self, name: str, final: bool = True, drawing: Drawing = NOT_DRAWING) -> None:
        """Start entry point ``name`` in the child and return at once: the caller works
        while the driver runs; :meth:`collect` takes the replies in order (until then
        :attr:`env` and the state are those of the last reply taken).  After exit or a
        crash the child runs nothing and replies with the same state.

        ``drawing``: the scripts (hv, alloc, vmci) whose answers for this entry point
        are still being drawn: where the driver reads past the answers it has of such
        a script, it waits for :meth:`feed` to send more or to end the drawing."""
        if name not in ("work", "doorbell", "exit"):
            raise ValueError(f"unknown step {name!r}")
        self.steps += 1
        self._post(("step", name, self._scripts(), final, drawing))
        self._pending.append(f"step {self.steps} ({name})")
        self._drawing = any(drawing)

    def feed(self, drawing: Drawing = NOT_DRAWING) -> None:
        """Hand the running entry point the answers :attr:`env`'s scripts hold now; the
        scripts still being drawn after them (none: the entry point has every answer it
        will get, past them the defaults)."""
        self._post(("more", self._scripts(), drawing))
        self._drawing = any(drawing)

    def collect(self) -> None:
        """Wait for the reply of the oldest entry point submitted and take it (ending the
        drawing of its answers: a caller that waits has no more to give)."""
        if self._drawing:
            self.feed()
        self._receive(self._pending.popleft())

    def collect_all(self) -> None:
        """Take the replies of every entry point submitted."""
        while self._pending:
            self.collect()

    @property
    def pending(self) -> int:
        """Requests submitted whose replies are not taken yet (module init and the
        observer's attach included)."""
        return len(self._pending)

    def reply_ready(self) -> bool:
        """Whether the child has begun the reply :meth:`collect` takes next (it then
        waits at most for the rest of it)."""
        return bool(self._pending) and (
            bool(self._inbox) or bool(select.select([self._from_child], [], [], 0)[0])
        )

    def taken_log(self) -> tuple[list[Event], dict[str, Any]]:
        """The events and the driver's state as of the last reply taken (an entry
        point's reply carries its state), without waiting for the ones still due."""
        if self._final is None:
            raise HarnessError("the last reply taken carried no driver state")
        return self._env.events(), self._final

    def run(self, steps: tuple[str, ...]) -> None:
        """Run ``steps`` in one request (the replay of a whole scenario)."""
        for name in steps:
            if name not in ("work", "doorbell", "exit"):
                raise ValueError(f"unknown step {name!r}")
        if self.exited or self.crashed or not steps:
            return
        self._request(("run", steps, self._scripts(), True), "a step")

    def state(self) -> dict[str, Any]:
        """The driver's state now, as the contract's ``final`` object."""
        self.collect_all()
        if self._final is None:
            self._request(("state",), "state")
        assert self._final is not None
        return self._final

    def events(self) -> list[Event]:
        """The event log so far."""
        self.collect_all()
        return self._env.events()

    def close(self) -> None:
        """Stop the child; it writes its coverage counters first (it is killed when it
        does not end within 5 s)."""
        if self._closed:
            return
        with contextlib.suppress(HarnessError):  # entry points still running finish first
            if self._drawing:
                self.feed()
            self.collect_all()
        if self._closed:
            return
        try:
            _send(self._to_child, ("quit",))
            if select.select([self._from_child], [], [], 5.0)[0]:
                os.read(self._from_child, 1)  # end of file: the child is gone
            else:
                os.kill(self.pid, signal.SIGKILL)
        except OSError:
            self._kill()
        self._reap()

    def _kill(self) -> None:
        """Stop the child at once (it loops, or it cannot be told)."""
        if self._closed:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._reap()

    def __enter__(self) -> CDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


@cache
def _crash_site(library: Path, kind: str, offset: int) -> Crash:
    """The driver's line at ``offset`` in ``library`` (addr2line, inlined frames unwound
    to the first that is not the harness's own)."""
    try:
        out = subprocess.run(
            ["addr2line", "-f", "-i", "-e", str(library), hex(offset)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    except OSError:
        return Crash(kind, "", 0, "")
    lines = out.splitlines()
    for function, where in zip(lines[0::2], lines[1::2], strict=False):
        file, _, line = where.rpartition(":")
        line = line.split()[0] if line else ""
        if not line.isdigit() or line == "0" or Path(file).name in HARNESS_SOURCES:
            continue
        return Crash(kind, Path(file).name, int(line), function)
    return Crash(kind, "", 0, "")


__all__ = [
    "DEFAULT_TIMEOUT",
    "CDriver",
    "Crash",
    "DriverTimeout",
    "HarnessError",
    "Observer",
    "Runtime",
    "fields_of",
    "final_of",
]
