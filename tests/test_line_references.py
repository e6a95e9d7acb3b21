"""C line citations point at the line they name.

A checkable citation names what the cited line holds and where, in one form::

    ``allocations`` (vmw_balloon.c:794)
    ``b->ops`` (vmw_balloon.c:848, 892, 894, 910, 954, 959, 970)
    ``b->rate_alloc`` (vmw_balloon.c:867-868, 919-921)

(single or double backticks; the token may be on the line before the parenthesis).
Every listed line, or some line of every listed range, of the vendored seed
``spec/driver/vmw_balloon.c`` must contain the token.  Every ``vmw_balloon.c:<digit>``
in the code, its docstrings, ``spec/`` and the README must be part of such a citation.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

SEED = (ROOT / "spec" / "driver" / "vmw_balloon.c").read_text(encoding="utf-8").splitlines()
CITATION = re.compile(r"`{1,2}([^`]+?)`{1,2}\s*\(vmw_balloon\.c:([0-9][0-9 ,\-]*)\)")
ANY = re.compile(r"vmw_balloon\.c:[0-9]")


def sources() -> list[Path]:
    """The code (docstrings and comments included), the spec chapters and the README."""
    out: list[Path] = []
    for folder in ("model", "reference", "proofs", "harness", "core", "apps"):
        out += sorted((ROOT / "vmballoon" / folder).rglob("*.py"))
    out += sorted((ROOT / "spec").glob("*.md"))
    out.append(ROOT / "README.md")
    return out


def check(text: str, seed: list[str]) -> list[str]:
    """Problems with the citations in ``text`` (empty: all hold)."""
    problems = []
    covered: set[int] = set()
    for m in CITATION.finditer(text):
        covered.update(range(m.start(2), m.end(2)))
        token = m.group(1).strip()
        for item in m.group(2).split(","):
            first, _, last = item.strip().partition("-")
            lo, hi = int(first), int(last or first)
            if not 1 <= lo <= hi <= len(seed):
                problems.append(f"`{token}` (vmw_balloon.c:{item.strip()}): no such line")
            elif not any(token in seed[k - 1] for k in range(lo, hi + 1)):
                problems.append(
                    f"`{token}` (vmw_balloon.c:{item.strip()}): the line reads "
                    f"{seed[lo - 1].strip()!r}"
                )
    for m in ANY.finditer(text):
        if m.end() - 1 not in covered:
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"line {line}: a vmw_balloon.c reference without a `token` (...)")
    return problems


def test_the_checker_catches_a_wrong_line() -> None:
    assert check("``allocations`` (vmw_balloon.c:794)", SEED) == []
    assert check("``allocations`` (vmw_balloon.c:792)", SEED)  # the old, wrong citation
    assert check("``b->ops`` (vmw_balloon.c:843)", SEED)
    assert check("``b->rate_alloc`` (vmw_balloon.c:870-871)", SEED)
    assert check("see vmw_balloon.c:794 for it", SEED)  # not checkable: refused


def test_every_citation_holds() -> None:
    problems = []
    total = 0
    for path in sources():
        text = path.read_text(encoding="utf-8")
        total += len(CITATION.findall(text))
        problems += [f"{path.relative_to(ROOT)}: {p}" for p in check(text, SEED)]
    assert not problems, "\n".join(problems)
    assert total >= 8


def test_the_fixed_examples_of_the_issue_are_cited_right() -> None:
    props = (ROOT / "vmballoon" / "model" / "properties.py").read_text(encoding="utf-8")
    assert "``allocations`` (vmw_balloon.c:794)" in props
    assert "(vmw_balloon.c:867-868" in props
    assert "848, 892, 894, 910, 954, 959, 970" in props
    assert "(lines 843" not in props and "613, 663" not in props and "870-871" not in props
