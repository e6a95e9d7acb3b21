"""An output folder that one run owns: a lock, a manifest, and a mark while partial.

Every command with ``--out DIR`` (verify, fuzz, check-c) writes through :class:`RunDir`:

- **one run at a time**: ``DIR/.vmballoon.lock`` is created exclusively and holds the
  owner's pid; a second run into the same folder is refused with :class:`OutDirBusy`
  (one line, exit 2). A lock left by a process that no longer runs is taken over.
- **no stale files**: ``DIR/MANIFEST.json`` lists the files the last run wrote; a new
  run removes those (and only those: a file the user put there is never touched)
  before it writes its own.
- **partial is marked**: ``DIR/INCOMPLETE`` exists from the start of the run until
  :meth:`RunDir.finish` is called with ``complete=True``; an interrupted run leaves it,
  with the manifest saying ``"complete": false`` and listing what was written.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from types import TracebackType

LOCK = ".vmballoon.lock"
MANIFEST = "MANIFEST.json"
INCOMPLETE = "INCOMPLETE"


class OutDirBusy(Exception):
    """Another live run owns the folder; the message is one line."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDir:
    """``with RunDir(path, command="fuzz") as out: out.write_text(name, text)``."""

    def __init__(self, path: Path, *, command: str) -> None:
        self.path = path
        self.command = command
        self.written: list[str] = []
        self.complete = False
        self._locked = False

    # -- ownership ---------------------------------------------------------------------
    def __enter__(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / LOCK
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(lock.read_text(encoding="utf-8").strip() or "0")
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _alive(pid):
                    raise OutDirBusy(
                        f"{self.path}: another vmballoon run (pid {pid}) is writing here; "
                        "use another --out or wait for it"
                    ) from None
                lock.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"{os.getpid()}\n")
            self._locked = True
            break
        else:  # pragma: no cover - a race lost twice
            raise OutDirBusy(f"{self.path}: could not take the folder's lock")
        self._remove_previous()
        (self.path / INCOMPLETE).write_text(
            f"{self.command} run {os.getpid()} has not finished\n", encoding="utf-8"
        )
        self._save_manifest()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._save_manifest()
        if self.complete:
            (self.path / INCOMPLETE).unlink(missing_ok=True)
        if self._locked:
            (self.path / LOCK).unlink(missing_ok=True)
            self._locked = False

    def _remove_previous(self) -> None:
        manifest = self.path / MANIFEST
        try:
            earlier = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
        except (OSError, ValueError, AttributeError):
            earlier = []
        for name in earlier:
            if isinstance(name, str) and "/" not in name and name not in (LOCK, MANIFEST):
                with contextlib.suppress(OSError):
                    (self.path / name).unlink()

    def _save_manifest(self) -> None:
        doc = {"command": self.command, "complete": self.complete, "files": self.written}
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        tmp.replace(self.path / MANIFEST)

    # -- writing -----------------------------------------------------------------------
    def file(self, name: str) -> Path:
        """The path of ``name`` in the folder, recorded as written by this run."""
        if "/" in name or name in (LOCK, MANIFEST, INCOMPLETE):
            raise ValueError(f"not a plain output file name: {name}")
        if name not in self.written:
            self.written.append(name)
            self._save_manifest()
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        """Write ``name`` atomically (a temporary file renamed into place)."""
        target = self.file(name)
        tmp = target.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
        return target

    def finish(self, *, complete: bool) -> None:
        """Say whether the run wrote everything it set out to; the mark goes on exit."""
        self.complete = complete
