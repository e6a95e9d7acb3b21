"""A worker: runs mutants of one scratch copy of the repository, one stage per forked child.

Started by :mod:`benchmarks.mutation.runner` with the scratch copy as its working
directory and first on ``sys.path``.  It loads z3, hypothesis and pytest once
(never the project: each child imports the mutated files afresh), then reads one
JSON request per line on stdin and answers one JSON line on stdout:

request ``{"file": REL, "source": TEXT, "stages": [NAME, ...], "timeouts": {NAME: S}}``;
answer ``{"outcome": "killed"|"timeout"|"survived", "stage": NAME|null,
"seconds": S, "stages": {NAME: S}}``.

The mutated text is written over ``REL`` for the request and the original put back
after it.  Bytecode is never written (``PYTHONDONTWRITEBYTECODE``), so a mutant of
the same size and second as the original cannot be served from a stale cache.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from benchmarks.mutation.stages import STAGES_BY_NAME, Stage


def _preload() -> None:
    import _pytest.python  # noqa: F401
    import hypothesis
    import hypothesis.stateful
    import hypothesis.strategies  # noqa: F401
    import pytest  # noqa: F401
    import z3  # noqa: F401


def _child(stage: Stage, log: Path) -> int:
    """Run ``stage`` in this (forked) process; its exit status."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.update(stage.env)
    if stage.kind == "cli":
        from vmballoon.apps.cli import main

        return main(list(stage.args))
    if stage.kind == "call":
        module, name = stage.args[0].split(":")
        fn = getattr(importlib.import_module(module), name)
        return int(fn())
    import pytest

    args = [*stage.args, "-x", "-q", "-n", "0", "-p", "no:cacheprovider", "-W", "ignore"]
    return int(pytest.main(args))


_CHILD: list[int] = []
"""The process group of the stage running now (killed with the worker)."""


def _stop(signum: int, frame: object) -> None:
    for pid in _CHILD:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    os._exit(1)


def run_stage(stage: Stage, timeout: float, log: Path) -> str:
    """``passed``, ``failed`` or ``timeout``: ``stage`` run in a forked child."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setpgid(0, 0)
        code = 1
        try:
            code = _child(stage, log)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _CHILD.append(pid)
    try:
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return "passed" if os.waitstatus_to_exitcode(status) == 0 else "failed"
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "timeout"
            time.sleep(0.02)
    finally:
        _CHILD.remove(pid)


def _present(stage: Stage, tree: Path) -> Stage | None:
    """``stage`` without the test files that do not exist (yet); None if none is left."""
    if stage.kind != "pytest":
        return stage

    def missing(arg: str) -> bool:
        path = arg.split("::")[0]
        return path.startswith("tests/") and not (tree / path).exists()

    args = tuple(a for a in stage.args if not missing(a))
    if not any(a.startswith("tests") for a in args):
        return None
    return Stage(stage.name, stage.kind, args, stage.applies, stage.env, stage.default)


def serve(tree: Path) -> None:
    """Answer requests on stdin until it closes."""
    log = tree / ".mutation-stage.log"
    for line in sys.stdin:
        req = json.loads(line)
        path = tree / req["file"]
        original = path.read_text()
        path.write_text(req["source"])
        t0 = time.monotonic()
        outcome, killer, times = "survived", None, {}
        try:
            for name in req["stages"]:
                stage = _present(STAGES_BY_NAME[name].for_file(req["file"]), tree)
                if stage is None:
                    continue
                s0 = time.monotonic()
                result = run_stage(stage, float(req["timeouts"][name]), log)
                times[name] = round(time.monotonic() - s0, 2)
                if result != "passed":
                    outcome = "killed" if result == "failed" else "timeout"
                    killer = name
                    break
        finally:
            path.write_text(original)
        answer = {
            "outcome": outcome,
            "stage": killer,
            "seconds": round(time.monotonic() - t0, 2),
            "stages": times,
        }
        if outcome != "survived" and req.get("keep_log"):
            answer["log"] = log.read_text(errors="replace")[-4000:]
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main() -> None:
    sys.dont_write_bytecode = True
    signal.signal(signal.SIGTERM, _stop)
    tree = Path.cwd()
    _preload()
    serve(tree)


if __name__ == "__main__":
    main()
