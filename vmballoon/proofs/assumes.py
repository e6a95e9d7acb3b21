"""Every ``tx.assume`` of the encoding, with its justification from the C or the environment.

An assumption of the encoding restricts the inputs of a step: a behaviour it
excludes is a behaviour no proof looks at.  Each one is listed here by the
function of :mod:`vmballoon.proofs.encoding` it is in and its rank there (source order),
with a prefix of its source text (so an edit of the assumption shows up as a
mismatch) and why it holds.  ``tests/test_vacuity.py`` checks that the table
lists exactly the ``tx.assume`` calls of the encoding, that ``spec/encoding-assumes.md``
is :func:`markdown` of it, and that each made stricter (its premise or boundary
excluded, or ``False``) is caught by the totality check or the branch-complete
conformance check.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from vmballoon.core.specdata import spec_dir


@dataclass(frozen=True)
class Assume:
    function: str  # the function of vmballoon/proofs/encoding.py
    rank: int  # 0 for its first tx.assume, 1 for the second, ...
    source: str  # a prefix of the call's source, whitespace collapsed
    kind: str  # "environment", "C" or "abstraction"
    why: str


ASSUMES: tuple[Assume, ...] = (
    Assume(
        "_batch_entries",
        0,
        "tx.assume(z3.ULE(c, num))",
        "environment",
        "The host writes at most one status per batch entry: each count of statuses "
        "of one class is at most num_pages (scenario-format.md, batch entries; the "
        "model reads statuses of entries 0 .. num_pages-1 only, lines 654-681).",
    ),
    Assume(
        "_batch_entries",
        1,
        'tx.assume(i["e_ok"] + i["e_ref"] + i["e_free"] + i["e_warn"] + fb == num)',
        "abstraction",
        "The classes partition the batch: every entry, f's included, has exactly one "
        "status class (lines 654-681 read each entry once).",
    ),
    Assume(
        "_batch_entries",
        2,
        'tx.assume(z3.ULE(i["f_cls"], z3.BitVecVal(CLS_WARN, 8)))',
        "abstraction",
        "There are four classes (OK, refused, freed, unexpected: lines 654-681); the "
        "input is an 8-bit code for one of them.",
    ),
    Assume(
        "_batch_entries",
        3,
        'tx.assume(z3.Implies(z3.Not(tx["f_batch"]), i["f_cls"] == z3.BitVecVal(CLS_OK, 8)))',
        "abstraction",
        "f's class describes f's entry; without f in the batch there is none, and the "
        "input is fixed to a default (the encoding does not read it then).",
    ),
    Assume(
        "_batch_entries",
        4,
        'tx.assume(z3.Implies(z3.Not(tx["f_batch"]), i["f_rank"] == bv32(0)))',
        "abstraction",
        "Likewise f's rank among the refusable entries: a default when f is not in "
        "the batch (never read then).",
    ),
    Assume(
        "_batch_entries",
        5,
        'tx.assume(z3.ULE(i["f_rank"], i["e_ref"]))',
        "abstraction",
        "f's rank counts the refusable entries before f's, which are among the e_ref "
        "refusable entries of other pages.",
    ),
    Assume(
        "_batch_entries",
        6,
        "tx.assume( z3.Implies( z3.Not(written),",
        "C",
        "When the command does not name the batch page, or the host wrote no statuses, "
        "the driver reads back the entries it wrote, whose status bits are 0 "
        "(lines 179-191: a PFN << PAGE_SHIFT has its low 12 bits clear): every entry "
        "is OK.",
    ),
    Assume(
        "t_idle",
        0,
        "tx.assume(z3.ULE(e, z3.BitVecVal(2, 8)))",
        "environment",
        "Three entry points exist: the work timer, the doorbell, module exit "
        "(lines 1101-1130, 1001-1008, 1294-1308).",
    ),
    Assume(
        "t_reset_ops",
        0,
        'tx.assume(z3.Implies(i["a_f"], z3.And(i["a_ok"], z3.Not(tx["f_alloc"]))))',
        "environment",
        "The page allocator returns only a frame it has not handed out (a_f: the batch "
        "page allocation, line 990, returns f).",
    ),
    Assume(
        "t_reset_ops",
        1,
        'tx.assume(z3.Implies(i["a_eqpage"], z3.And(i["a_ok"], z3.Not(i["a_f"]))))',
        "abstraction",
        "a_eqpage says the allocation returned the (stale) b->page, a frame other than "
        "f: it implies a successful allocation, and excludes a_f.",
    ),
    Assume(
        "t_reset_ops",
        2,
        'tx.assume(z3.Implies(i["a_eqpage"], z3.And(z3.Not(tx["page_null"]),'
        ' z3.Not(tx["f_page"]))))',
        "abstraction",
        "A stale b->page that the allocator returns is a real page (not NULL) and not f "
        "(f's case is a_f).",
    ),
    Assume(
        "t_inflate_loop",
        0,
        'tx.assume(z3.Implies(i["a_f"], z3.And(i["a_ok"], z3.Not(tx["f_alloc"]))))',
        "environment",
        "The page allocator returns only a frame it has not handed out (a_f: the "
        "allocation of line 841 returns f).",
    ),
    Assume(
        "t_inflate_loop",
        1,
        'tx.assume( z3.Implies( z3.And(i["a_f"], is2m),',
        "environment",
        "An order-9 allocation returns a 512-aligned block (alloc_pages with order 9, "
        "line 548: the buddy allocator aligns blocks to their size).",
    ),
    Assume(
        "t_deflate_loop",
        0,
        'tx.assume(z3.Implies(i["h_f"], tx["f_cur"]))',
        "abstraction",
        "The head of the list the deflate loop walks is f only if f is in what is left "
        "of that list (list_for_each_entry_safe, line 945).",
    ),
    Assume(
        "t_deflate_loop",
        1,
        'tx.assume(z3.Implies(z3.And(tx["f_cur"], tx["ncur"] == bv32(1)), i["h_f"]))',
        "abstraction",
        "If f is the only page left in the walked list, the head is f.",
    ),
)


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def sites(source: str) -> list[tuple[str, int, str, int, int]]:
    """Every ``tx.assume(...)`` call: function, rank, source text, start and end offsets."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln))
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef):
            continue
        calls = [
            n
            for n in ast.walk(fn)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "assume"
            and isinstance(n.func.value, ast.Name)
            and n.func.value.id == "tx"
        ]
        calls.sort(key=lambda n: (n.lineno, n.col_offset))
        for rank, n in enumerate(calls):
            assert n.end_lineno is not None and n.end_col_offset is not None
            a = starts[n.lineno - 1] + n.col_offset
            b = starts[n.end_lineno - 1] + n.end_col_offset
            out.append((fn.name, rank, source[a:b], a, b))
    return out


def encoding_source() -> str:
    from vmballoon.proofs import encoding

    return Path(str(encoding.__file__)).read_text()


def check_table(source: str | None = None) -> list[str]:
    """Differences between :data:`ASSUMES` and the ``tx.assume`` calls of the encoding."""
    found = sites(source or encoding_source())
    table = {(a.function, a.rank): a for a in ASSUMES}
    out = []
    for fn, rank, text, _, _ in found:
        a = table.pop((fn, rank), None)
        if a is None:
            out.append(f"tx.assume in {fn} (#{rank}) is not listed: {_norm(text)[:80]}")
        elif not _norm(text).startswith(_norm(a.source)):
            out.append(f"tx.assume in {fn} (#{rank}) changed: {_norm(text)[:80]}")
    out += [f"listed but gone: {fn} #{rank}" for fn, rank in table]
    return out


def markdown() -> str:
    """The table of assumptions as ``spec/encoding-assumes.md``."""
    out = [
        "# Assumptions of the Z3 encoding",
        "",
        "Generated from `vmballoon/proofs/assumes.py` (checked against the `tx.assume` calls of",
        "`vmballoon/proofs/encoding.py` by `tests/test_vacuity.py`). Each restricts the inputs "
        "of a",
        "step; a behaviour it excluded would be invisible to every proof. *environment*:",
        "a fact about the hypervisor, allocator or kernel; *C*: what the C code does;",
        "*abstraction*: a fact of how the encoding describes one frame (it excludes no",
        "concrete behaviour). Each made stricter (its premise or its boundary excluded,",
        "or `False`) makes the totality check or the branch-complete conformance check",
        "fail (`tests/test_vacuity.py`, `tests/test_witness_conformance.py`). Each is",
        "also a target of the input-completeness check (`vmballoon/proofs/completeness.py`): Z3",
        "shows it excludes no input the environment contract allows.",
        "",
        "| function | # | assumption | kind | why |",
        "|---|---|---|---|---|",
    ]
    for a in ASSUMES:
        src = a.source.replace("|", "\\|")
        out.append(f"| `{a.function}` | {a.rank} | `{src}` | {a.kind} | {a.why} |")
    return "\n".join(out) + "\n"


SPEC = spec_dir() / "encoding-assumes.md"

__all__ = ["ASSUMES", "SPEC", "Assume", "check_table", "markdown", "sites"]
