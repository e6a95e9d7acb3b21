"""Plant one textual mutation in a copy of a module (for tests that expect a check to fail)."""

from __future__ import annotations

import importlib
import itertools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

_count = itertools.count()


@contextmanager
def mutant(module: str, old: str, new: str, count: int = 1) -> Iterator[ModuleType]:
    """A fresh copy of ``module`` with ``old`` replaced by ``new`` (exactly ``count`` times)."""
    src_path = Path(importlib.import_module(module).__file__ or "")
    src = src_path.read_text()
    assert src.count(old) == count, f"{old!r} occurs {src.count(old)} times in {module}"
    name = f"{module}_mutant{next(_count)}"
    mod = ModuleType(name)
    mod.__file__ = f"<mutant of {src_path.name}>"
    sys.modules[name] = mod
    try:
        exec(compile(src.replace(old, new), mod.__file__, "exec"), mod.__dict__)
        yield mod
    finally:
        del sys.modules[name]
