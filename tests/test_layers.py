"""The package's import graph: no cycle, and layers that point one way.

core (shared vocabulary) <- model <- {reference, harness, proofs} <- apps. A module may
import its own layer and the layers below it, never one above; and no set of modules
imports each other in a circle (an import made inside a function counts too: it is a
dependency all the same).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PKG = ROOT / "vmballoon"

LAYER = {"core": 0, "model": 1, "reference": 2, "harness": 2, "proofs": 2, "apps": 3}
"""The layer of each subpackage; ``vmballoon`` itself (``__main__``) stands on top."""


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The package's modules ``path`` imports (``from pkg import sub`` is ``pkg.sub``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            found = [s for s in subs if s in MODULES]
            out.update(found)
            if len(found) < len(subs) and node.module in MODULES:
                out.add(node.module)
    return out


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYER.get(parts[1], 4) if len(parts) > 1 else 4


def _cycles() -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    cycles = _cycles()
    assert not cycles, "modules that import each other in a circle: " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_layers_point_one_way() -> None:
    upward = [
        f"{m} imports {d}"
        for m, deps in sorted(GRAPH.items())
        for d in sorted(deps)
        if _layer(d) > _layer(m)
    ]
    assert not upward, upward


def test_the_checker_sees_a_planted_cycle() -> None:
    """The cycle finder is not vacuous: a two-module circle is reported."""
    GRAPH["vmballoon.core.protocol"].add("vmballoon.core.scenario")
    GRAPH["vmballoon.core.scenario"].add("vmballoon.core.protocol")
    try:
        assert ["vmballoon.core.protocol", "vmballoon.core.scenario"] in _cycles()
    finally:
        GRAPH["vmballoon.core.protocol"].discard("vmballoon.core.scenario")
        GRAPH["vmballoon.core.scenario"].discard("vmballoon.core.protocol")
