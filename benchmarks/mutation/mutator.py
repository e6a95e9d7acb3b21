"""A small AST mutator for the readings: ``vmballoon/model/``, ``vmballoon/reference/``,
``vmballoon/proofs/encoding.py``.

Each :class:`Mutant` is one local change of the source, spliced into the original
text at the node's position (the rest of the file is byte-identical, so the diff
is one hunk).  Kinds:

* ``relop``: a comparison moved across its boundary (``<`` to ``<=``, ``>`` to
  ``>=`` and back) or complemented (``<`` to ``>=``, ``==`` to ``!=``, ``in`` to
  ``not in``, ``is`` to ``is not``); in the Z3 encoding also ``z3.ULT`` /
  ``ULE`` / ``UGT`` / ``UGE``.
* ``constant``: an integer literal moved by one (``n - 1`` and ``n + 1``).
* ``negate``: the condition of an ``if`` / ``while`` / ternary negated (unless it is
  a single comparison, which ``relop`` already complements), ``and`` and ``or``
  swapped, a ``not`` removed; in the encoding ``z3.And`` / ``z3.Or`` swapped,
  ``z3.Not(x)`` to ``x``, and the guard of ``z3.If`` and of ``tx.when`` negated.
* ``nofix``: a fix flag's test (``variant.has("fix")``, ``tx.fix("fix")``)
  replaced by ``False``: the fix's branch is dropped.
* ``assume``: (encoding only) an added ``tx.assume(z3.Not(c))`` at the head of a
  ``with tx.when(c):`` block or before ``tx.crash(c)``: the encoding silently
  stops allowing a behaviour of the model.
* ``stricter``: (encoding only) an added ``tx.assume(z3.Extract(7, 0, x) != 0x39)``
  after ``st, res = tx.hv(...)`` for ``x`` the status and the result: the host's
  answers with one low byte dropped (the stricter ``assume`` of issue 20).
* ``weaken``: (the encoded properties and the progress obligations) one argument of a
  ``z3.And`` dropped: a weaker property or lemma.

A mutant's :attr:`Mutant.key` names it by file, enclosing function, kind, the
original and the mutated text and an occurrence number, not by line, so the
list of equivalent mutants survives edits elsewhere in the file.
"""

from __future__ import annotations

import ast
import difflib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vmballoon.core.variants import FIX_NAMES

KINDS: tuple[str, ...] = ("relop", "constant", "negate", "nofix", "assume", "stricter", "weaken")
TARGETS: tuple[str, ...] = (
    "vmballoon/model",
    "vmballoon/reference",
    *(
        f"vmballoon/proofs/{name}.py"
        for name in (
            "encoding",
            "props",
            "progress",
            "houdini",
            "check",
            "defects",
            "vacuity",
            "abstract_reach",
            "unrolling",
        )
    ),
)
"""Files and folders (relative to the repository root) that are mutated: the readings, the
encoding, the encoded properties, the progress obligations and the proof drivers."""
WEAKENED = ("vmballoon/proofs/props.py", "vmballoon/proofs/progress.py")
"""Files whose ``z3.And`` arguments are dropped one at a time (``weaken``)."""

_BOUNDARY: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
}
_COMPLEMENT: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.GtE,
    ast.LtE: ast.Gt,
    ast.Gt: ast.LtE,
    ast.GtE: ast.Lt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_Z3_BOUNDARY = {"ULT": "ULE", "ULE": "ULT", "UGT": "UGE", "UGE": "UGT"}
_Z3_COMPLEMENT = {"ULT": "UGE", "ULE": "UGT", "UGT": "ULE", "UGE": "ULT"}


@dataclass(frozen=True)
class Mutant:
    """One mutation of one file."""

    file: str
    kind: str
    scope: str
    original: str
    replacement: str
    line: int
    start: tuple[int, int]
    """(line, byte column) where the replaced text starts (1-based line)."""
    end: tuple[int, int]
    new_text: str
    """The text put in place of ``[start, end)``."""
    occurrence: int = 0

    @property
    def key(self) -> str:
        """A stable name: no line numbers, so it survives edits elsewhere in the file."""
        occ = f" #{self.occurrence}" if self.occurrence else ""
        return f"{self.file}::{self.scope}::{self.kind}: {self.original} -> {self.replacement}{occ}"

    def apply(self, source: str) -> str:
        """The mutated source."""
        lines = source.encode().splitlines(keepends=True)
        (l0, c0), (l1, c1) = self.start, self.end
        head = b"".join(lines[: l0 - 1]) + lines[l0 - 1][:c0]
        tail = lines[l1 - 1][c1:] + b"".join(lines[l1:])
        return (head + self.new_text.encode() + tail).decode()

    def diff(self, source: str) -> str:
        """A unified diff of the mutation (a few lines of context)."""
        return "".join(
            difflib.unified_diff(
                source.splitlines(keepends=True),
                self.apply(source).splitlines(keepends=True),
                fromfile=f"a/{self.file}",
                tofile=f"b/{self.file}",
                n=2,
            )
        )


def _one_line(node: ast.AST) -> str:
    return " ".join(ast.unparse(node).split())


def _is_z3(node: ast.expr, *names: str) -> bool:
    """``z3.<name>(...)`` for one of ``names``."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "z3"
        and node.func.attr in names
    )


def _fix_test(node: ast.expr) -> str | None:
    """The fix name of ``<x>.has("fix")`` or ``<x>.fix("fix")``, else None."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("has", "fix")
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value in FIX_NAMES
    ):
        return str(node.args[0].value)
    return None


def _tx_call(node: ast.expr, method: str) -> ast.expr | None:
    """The argument of ``tx.<method>(arg)``, else None."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "tx"
        and node.func.attr == method
        and len(node.args) == 1
    ):
        return node.args[0]
    return None


@dataclass
class _Collector(ast.NodeVisitor):
    file: str
    text: str
    out: list[Mutant] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    skip: set[int] = field(default_factory=set)

    # -- helpers ------------------------------------------------------------------
    def _scope(self) -> str:
        return ".".join(self.scopes) or "<module>"

    def _add(
        self, kind: str, node: ast.expr | ast.stmt, new_text: str, original: str, repl: str
    ) -> None:
        end_line, end_col = node.end_lineno, node.end_col_offset
        assert end_line is not None and end_col is not None
        self.out.append(
            Mutant(
                file=self.file,
                kind=kind,
                scope=self._scope(),
                original=original,
                replacement=repl,
                line=node.lineno,
                start=(node.lineno, node.col_offset),
                end=(end_line, end_col),
                new_text=new_text,
            )
        )

    def _replace(self, kind: str, node: ast.expr, new: ast.expr) -> None:
        """``node`` replaced by ``new`` (unparsed: same syntax class, no added parentheses)."""
        text = ast.unparse(new)
        self._add(kind, node, text, _one_line(node), " ".join(text.split()))

    def _negate(self, node: ast.expr, z3_expr: bool) -> None:
        if z3_expr:
            new: ast.expr = ast.Call(
                func=ast.Attribute(value=ast.Name("z3"), attr="Not"), args=[node], keywords=[]
            )
        else:
            new = ast.UnaryOp(op=ast.Not(), operand=node)
        self._replace("negate", node, new)

    def _insert_assume(self, before: ast.stmt, cond: ast.expr, indent_of: ast.stmt) -> None:
        """``tx.assume(z3.Not(cond))`` as a new line before statement ``before``."""
        line = before.lineno
        indent = " " * indent_of.col_offset
        stmt = f"tx.assume(z3.Not({_one_line(cond)}))"
        self.out.append(
            Mutant(
                file=self.file,
                kind="assume",
                scope=self._scope(),
                original=f"at {_one_line(cond)}",
                replacement=stmt,
                line=line,
                start=(line, 0),
                end=(line, 0),
                new_text=f"{indent}{stmt}\n",
            )
        )

    # -- scopes and what is never mutated ------------------------------------------
    def _body_without_docstring(self, body: list[ast.stmt]) -> list[ast.stmt]:
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            return body[1:]
        return body

    def visit_Module(self, node: ast.Module) -> None:
        for stmt in self._body_without_docstring(node.body):
            self.visit(stmt)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scopes.append(node.name)
        for stmt in self._body_without_docstring(node.body):
            self.visit(stmt)
        self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.scopes.append(node.name)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        for stmt in self._body_without_docstring(node.body):
            self.visit(stmt)
        self.scopes.pop()

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        raise NotImplementedError("no async code in the readings")

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
            return
        if _fix_test(test) is None and not isinstance(test, ast.Compare):
            self._negate(test, z3_expr=False)
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        if not isinstance(node.test, ast.Compare):
            self._negate(node.test, z3_expr=False)
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        if _fix_test(node.test) is None and not isinstance(node.test, ast.Compare):
            self._negate(node.test, z3_expr=False)
        self.generic_visit(node)

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            cond = _tx_call(item.context_expr, "when")
            if cond is not None:
                self._insert_assume(node.body[0], cond, node.body[0])
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        if (
            self.file == "vmballoon/proofs/encoding.py"
            and _tx_call(node.value, "hv") is not None
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Tuple)
        ):
            indent = " " * node.col_offset
            line = (node.end_lineno or node.lineno) + 1
            for name in node.targets[0].elts:
                if isinstance(name, ast.Name) and not name.id.startswith("_"):
                    stmt = f"tx.assume(z3.Extract(7, 0, {name.id}) != 0x39)"
                    self.out.append(
                        Mutant(
                            file=self.file,
                            kind="stricter",
                            scope=self._scope(),
                            original=f"after {_one_line(node)}",
                            replacement=stmt,
                            line=line,
                            start=(line, 0),
                            end=(line, 0),
                            new_text=f"{indent}{stmt}\n",
                        )
                    )
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        cond = _tx_call(node.value, "crash")
        if cond is not None:
            self._insert_assume(node, cond, node)
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        other: ast.boolop = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self._replace("negate", node, ast.BoolOp(op=other, values=node.values))
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self._add(
                "negate", node, ast.unparse(node.operand), _one_line(node), _one_line(node.operand)
            )
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        for k, op in enumerate(node.ops):
            for table in (_BOUNDARY, _COMPLEMENT):
                new_op = table.get(type(op))
                if new_op is None:
                    continue
                ops = list(node.ops)
                ops[k] = new_op()
                new = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
                self._replace("relop", node, new)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        fix = _fix_test(node)
        if fix is not None:
            self._add("nofix", node, "False", _one_line(node), "False")
            return
        func = node.func
        if isinstance(func, ast.Attribute) and _is_z3(node, *_Z3_BOUNDARY):
            for table in (_Z3_BOUNDARY, _Z3_COMPLEMENT):
                new_func = ast.Attribute(value=func.value, attr=table[func.attr])
                self._replace("relop", node, ast.Call(new_func, node.args, node.keywords))
        elif isinstance(func, ast.Attribute) and _is_z3(node, "And", "Or"):
            other = "Or" if func.attr == "And" else "And"
            new_func = ast.Attribute(value=func.value, attr=other)
            self._replace("negate", node, ast.Call(new_func, node.args, node.keywords))
            starred = any(isinstance(a, ast.Starred) for a in node.args)
            if func.attr == "And" and self.file in WEAKENED and len(node.args) > 1 and not starred:
                for k in range(len(node.args)):
                    rest = node.args[:k] + node.args[k + 1 :]
                    self._replace("weaken", node, ast.Call(func, rest, node.keywords))
        elif _is_z3(node, "Not") and len(node.args) == 1:
            arg = node.args[0]
            self._add("negate", node, ast.unparse(arg), _one_line(node), _one_line(arg))
        elif _is_z3(node, "If") and len(node.args) == 3:
            self._negate(node.args[0], z3_expr=True)
        cond = _tx_call(node, "when")
        if cond is not None:
            self._negate(cond, z3_expr=True)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int):
            return
        segment = ast.get_source_segment(self.text, node) or ""
        fmt = hex if segment.lower().startswith("0x") else str
        for new in (value - 1, value + 1):
            self._add("constant", node, fmt(new), segment, fmt(new))


def _number(mutants: list[Mutant]) -> list[Mutant]:
    """Give mutants that share file, scope, kind and texts an occurrence number."""
    seen: Counter[tuple[str, str, str, str, str]] = Counter()
    out = []
    for m in mutants:
        ident = (m.file, m.scope, m.kind, m.original, m.replacement)
        out.append(Mutant(**{**m.__dict__, "occurrence": seen[ident]}))
        seen[ident] += 1
    return out


def mutants_of(root: Path, rel: str) -> list[Mutant]:
    """Every mutant of file ``rel`` (relative to ``root``), in source order."""
    text = (root / rel).read_text()
    collector = _Collector(rel, text)
    collector.visit(ast.parse(text))
    mutants = sorted(collector.out, key=lambda m: (m.start, m.end, m.kind, m.new_text))
    for m in mutants:  # an expression replaced by an expression, or one statement added
        ast.parse(m.new_text.strip(), mode="exec" if m.kind == "assume" else "eval")
    return _number(mutants)


def target_files(root: Path) -> list[str]:
    """The Python files mutated, relative to ``root``."""
    files: list[str] = []
    for target in TARGETS:
        path = root / target
        if path.is_dir():
            files += [str(p.relative_to(root)) for p in sorted(path.glob("*.py"))]
        else:
            files.append(target)
    return [f for f in files if not f.endswith("__init__.py")]


def all_mutants(root: Path, only: list[str] | None = None) -> Iterator[Mutant]:
    """The mutants of every target file (or of the files in ``only``)."""
    for rel in only or target_files(root):
        yield from mutants_of(root, rel)
