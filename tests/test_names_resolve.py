"""Every module, API and file name the README, docs/ and the docstrings cite exists.

A reader who follows a name must find it: ``vmballoon.model.properties.check_trace``
imports and resolves attribute by attribute, ``:mod:`vmballoon.proofs.encoding``` is a
module, ``vmballoon/harness/c/harness.c`` and ``spec/findings/`` are in the tree. Bare
names of the old layout (``proofs.encoding``, ``model/state.py``) are reported too:
the readings live under ``vmballoon/``.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted(p for p in (ROOT / "spec").glob("*.md") if p.name != "reference.md"),
]
SOURCES = sorted((ROOT / "vmballoon").rglob("*.py"))

_SUBPACKAGES = ("model", "proofs", "reference", "harness", "apps", "core")
DOTTED = re.compile(
    r"(?<![\w./-])((?:vmballoon|" + "|".join(_SUBPACKAGES) + r")\.[A-Za-z_][\w.]*\w)"
)
"""A dotted name that starts with the package or one of its subpackages."""
PATH = re.compile(
    r"(?<![\w./-])((?:vmballoon|tests|benchmarks|spec|docs|"
    + "|".join(_SUBPACKAGES)
    + r")/[\w./*<>-]*[\w/*>])"
)
"""A path in the tree (globs and ``<placeholders>`` allowed)."""


def _docstrings(path: Path) -> str:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                parts.append(doc)
    return "\n".join(parts)


def _resolves(name: str) -> bool:
    if not name.startswith("vmballoon."):
        return False  # a bare subpackage name: the old layout
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _exists(path: str) -> bool:
    if re.search(r"<[^>]*>", path):  # a placeholder: the folder before it must exist
        return (ROOT / path.split("<", 1)[0]).parent.exists()
    if "*" in path:
        return any(ROOT.glob(path))
    return (ROOT / path.rstrip("/")).exists()


FILE_SUFFIXES = (".md", ".py", ".json", ".c", ".h", ".txt", ".png", ".svg", ".dot", ".patch")


def _unresolved(text: str) -> list[str]:
    bad = [
        n
        for n in DOTTED.findall(text)
        if not n.endswith(FILE_SUFFIXES) and not _resolves(n.rstrip("."))
    ]
    bad += [p for p in PATH.findall(text) if not _exists(p)]
    return sorted(set(bad))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_name_what_exists(doc: Path) -> None:
    assert _unresolved(doc.read_text(encoding="utf-8")) == []


def test_docstrings_name_what_exists() -> None:
    bad = {
        str(p.relative_to(ROOT)): found for p in SOURCES if (found := _unresolved(_docstrings(p)))
    }
    assert bad == {}


def test_a_name_that_does_not_exist_is_found() -> None:
    text = (
        "see `vmballoon.model.properties.no_such_thing`, :mod:`proofs.encoding`, "
        "`vmballoon/model/nothing.py` and `vmballoon.model.properties.check_trace`"
    )
    assert _unresolved(text) == [
        "proofs.encoding",
        "vmballoon.model.properties.no_such_thing",
        "vmballoon/model/nothing.py",
    ]
