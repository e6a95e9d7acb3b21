"""The compiled driver as a child process, its environment the Python :class:`Env`.

:class:`CDriver` starts a harness binary (:mod:`harness.build`) and answers it
over the line protocol documented in ``vmballoon/harness/c/harness.c``: every backdoor
command, allocation, free and VMCI call the C makes goes through the same
:class:`vmballoon.core.env.Env` the model and the reference use (scripted
host, cooperative host, memory pressure), so the three readings meet the same
world and log the same events.

A fault of the driver (a NULL dereference, a list corruption) ends the
entry point in progress and is logged as a ``fault`` event; a driver that does
not answer within ``timeout`` seconds is killed and reported as
:class:`DriverTimeout`.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any, NamedTuple

from vmballoon.core.env import Env, Event
from vmballoon.core.protocol import BATCH_MAX_PAGES, BATCH_STATUS_MASK

DEFAULT_TIMEOUT = 10.0
"""Seconds the driver may run without a word to its environment before it is stopped."""

class HarnessError(Exception):
    """The harness process failed (not the driver: the driver's faults are events)."""


class DriverTimeout(HarnessError):
    """The driver did not return from an entry point in time (it loops)."""


class Command(NamedTuple):
    """What the harness reported with one backdoor command, for trace checks."""

    target: int  # b->target when the command was issued
    batch_page: int | None  # PFN of b->batch_page then (None: NULL)
    batch: tuple[int, ...] | None  # the batch entries 0 .. num_pages-1 as the driver wrote them
    env: Env  # the environment right after the command (its hv event the newest)


def _pfn(text: bytes) -> int | None:
    return None if text == b"-" else int(text)


class CDriver:
    """One module load of the compiled driver, stepped entry point by entry point.

    ``env`` is the environment at module load; after every call :attr:`env`
    holds the environment with the new events.  ``with_batch``: send the batch
    entries of batched commands to the host (a cooperative host reads them); by
    default only when ``env`` has a host or with ``trace``, which records in
    :attr:`commands` what the driver showed at each command (for ``check-c``).
    """

    def __init__(
        self,
        binary: Path,
        env: Env,
        timeout: float = DEFAULT_TIMEOUT,
        with_batch: bool | None = None,
        trace: bool = False,
    ) -> None:
        self.env = env
        self.trace = trace
        self.timeout = timeout
        self.crashed = False
        self.exited = False
        self.steps = 0
        self.commands: list[Command] = []  # what the driver showed at each backdoor command
        send = (env.host is not None or trace) if with_batch is None else with_batch
        self._proc = subprocess.Popen(
            [str(binary), str(env.totalram), "1" if send else "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in = self._proc.stdin
        self._fd = self._proc.stdout.fileno()
        self._buf = b""
        self._serve()  # module init (vmballoon_init)

    # -- plumbing ---------------------------------------------------------------------------

    def _line(self, deadline: float) -> bytes:
        buf = self._buf
        while True:
            i = buf.find(b"\n")
            if i >= 0:
                self._buf = buf[i + 1 :]
                return buf[:i]
            remaining = deadline - time.monotonic()
            ready = select.select([self._fd], [], [], max(remaining, 0))[0] if remaining > 0 else []
            if not ready:
                self.close()
                raise DriverTimeout(f"the driver did not return within {self.timeout:g} s")
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                err = self._stderr()
                raise HarnessError(f"the harness stopped: {err or 'no message'}")
            buf += chunk

    def _stderr(self) -> str:
        self.close()
        assert self._proc.stderr is not None
        return self._proc.stderr.read().decode(errors="replace").strip()

    def _send(self, text: str) -> None:
        try:
            self._in.write(text.encode())
            self._in.flush()
        except BrokenPipeError:
            raise HarnessError(f"the harness stopped: {self._stderr() or 'no message'}") from None

    def _serve(self) -> None:
        """Answer the driver's requests until it reports the entry point returned."""
        timeout = self.timeout
        deadline = time.monotonic() + timeout
        env = self.env
        reply = ""
        while True:
            line = self._line(deadline)
            kind = line[:1]
            if kind == b"A":
                _, order, gfp = line.split()
                pfn, env = env.alloc(int(order), gfp.decode())
                reply = ("-\n" if pfn is None else f"{pfn}\n")
            elif kind == b"F":
                _, order_b, pfn_b = line.split()
                env = env.free(int(pfn_b), int(order_b))
                continue
            elif kind == b"H":
                parts = line.split()
                cmd, arg1, arg2 = int(parts[1]), int(parts[2]), int(parts[3])
                n = int(parts[6])
                batch = tuple(int(x) for x in parts[7 : 7 + n]) if n else None
                response, env = env.hv(cmd, arg1, arg2, batch)
                if self.trace:
                    self.commands.append(Command(int(parts[4]), _pfn(parts[5]), batch, env))
                entries = response.entries or ()
                m = min(len(entries), BATCH_MAX_PAGES)
                statuses = " ".join(str(e & BATCH_STATUS_MASK) for e in entries[:m])
                reply = (f"{response.status} {response.result} {m} {statuses}\n")
            elif kind == b"C":
                handle, env = env.vmci_create()
                reply = ("-\n" if handle is None else f"{handle[1]}\n")
            elif kind == b"D":
                env = env.vmci_destroy()
                continue
            elif kind == b"W":
                env = env.fault("warn", None)
                continue
            elif kind == b"K":
                _, fault, pfn_b = line.split()
                env = env.fault(fault.decode(), None if pfn_b == b"-" else int(pfn_b))
                self.crashed = True
                continue
            elif kind == b"R":
                self.env = env
                return
            else:
                self.env = env
                raise HarnessError(f"the harness sent {line[:60]!r}")
            self._send(reply)
            deadline = time.monotonic() + timeout

    # -- entry points ----------------------------------------------------------------------

    def step(self, name: str) -> None:
        """Run entry point ``name`` (logging its ``step`` event); nothing after exit or a crash."""
        if self.exited or self.crashed:
            return
        if name not in ("work", "doorbell", "exit"):
            raise ValueError(f"unknown step {name!r}")
        self.env = self.env.step(name)
        self.steps += 1
        self._send(name + "\n")
        try:
            self._serve()
        except DriverTimeout:
            raise DriverTimeout(
                f"the driver did not return from step {self.steps} ({name}) within "
                f"{self.timeout:g} s: it loops"
            ) from None
        if name == "exit":
            self.exited = True

    def state(self) -> dict[str, Any]:
        """The driver's state now, as the contract's ``final`` object."""
        self._send("state\n")
        line = self._line(time.monotonic() + self.timeout)
        if not line.startswith(b"S "):
            raise HarnessError(f"the harness sent {line[:60]!r} instead of its state")
        state: dict[str, Any] = json.loads(line[2:])
        self._line(time.monotonic() + self.timeout)  # R
        if state["ops"] == "other":
            state["ops"] = None  # a patched source with ops of its own: not one of the contract's
        return state

    def events(self) -> list[Event]:
        """The event log so far."""
        return self.env.events()

    def close(self) -> None:
        """Stop the harness process."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> CDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

