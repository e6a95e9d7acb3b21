"""The fixes as kernel patches: ``spec/fixes/<flag>.patch``, applied to the vendored seed.

One unified diff per fix flag of :mod:`vmballoon.core.variants`, with a
kernel-style header (subject ``vmw_balloon: ...``, what is wrong, what the fix
does, what it prevents) and three lines of context, each made against the
vendored seed: ``git apply`` or ``patch -p1`` applies any one of them to
``drivers/misc/vmw_balloon.c`` as it is.

Two fixes change adjacent lines (``batch_pfn`` line 470 and
``target_on_success`` line 469; the same pair at 517-518), so one's context is
the other's change and a plain sequential ``patch`` of both would reject a hunk.
:func:`variant_source` therefore merges the patches of a variant the way a
three-way merge joins branches of one base: every hunk must match the seed
exactly (context and removed lines, at the line its header names); its changed
runs, placed by seed line, are applied together in ``FIX_NAMES`` order, and two
fixes that change the same seed line are a conflict (an error, never a guess).
So any combination of fixes gives one well-defined source, the same whatever
order the flags are named in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from vmballoon.core import specdata
from vmballoon.core.variants import FIX_NAMES, Variant
from vmballoon.harness.build import seed_source

HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(Exception):
    """A patch that does not apply; the message is one line."""


@dataclass(frozen=True)
class Hunk:
    """One hunk: where it starts in the old file, its old lines and its new lines."""

    old_start: int  # 1-based
    old: tuple[str, ...]
    new: tuple[str, ...]


def fixes_dir() -> Path:
    """The folder of the fix patches (``spec/fixes``)."""
    return specdata.spec_dir() / "fixes"


def patch_path(flag: str) -> Path:
    """``spec/fixes/<flag>.patch``."""
    return fixes_dir() / f"{flag}.patch"


def parse_patch(text: str, name: str = "patch") -> list[Hunk]:
    """The hunks of a one-file unified diff (its header, up to ``---``, is ignored)."""
    lines = text.splitlines()
    hunks: list[Hunk] = []
    i = 0
    while i < len(lines) and not lines[i].startswith("@@"):
        i += 1
    while i < len(lines):
        if lines[i] == "-- ":  # the mail signature: the diff has ended
            break
        m = HUNK.match(lines[i])
        if not m:
            if lines[i].startswith(("--", "diff ", "index ")) or not lines[i].strip():
                i += 1
                continue
            raise PatchError(f"{name}: line {i + 1}: expected a hunk header, got {lines[i]!r}")
        old_len = int(m.group(2) or "1")
        new_len = int(m.group(4) or "1")
        old: list[str] = []
        new: list[str] = []
        i += 1
        while (len(old) < old_len or len(new) < new_len) and i < len(lines):
            line = lines[i]
            tag, body = (line[:1], line[1:]) if line else (" ", "")
            if tag == " ":
                old.append(body)
                new.append(body)
            elif tag == "-":
                old.append(body)
            elif tag == "+":
                new.append(body)
            elif tag != "\\":
                raise PatchError(f"{name}: line {i + 1}: bad hunk line {line!r}")
            i += 1
        if len(old) != old_len or len(new) != new_len:
            raise PatchError(f"{name}: a hunk ends early")
        hunks.append(Hunk(int(m.group(1)), tuple(old), tuple(new)))
    return hunks


@dataclass(frozen=True)
class Edit:
    """One changed run of a hunk, placed in the base: ``base[start:end]`` becomes ``new``."""

    start: int  # 0-based index of the first replaced base line (the insertion point if none)
    end: int
    new: tuple[str, ...]
    origin: str  # the patch it comes from, for error messages


def hunk_edits(base: list[str], hunks: list[Hunk], name: str = "patch") -> list[Edit]:
    """The changed runs of ``hunks``, each checked against ``base`` at its header's line.

    A hunk applies only where it says: its context and removed lines must equal
    ``base`` from line ``old_start`` on (no offset search, no fuzz)."""
    edits: list[Edit] = []
    for h in hunks:
        at = h.old_start - 1 if h.old else h.old_start  # "-N,0" inserts after line N
        if tuple(base[at : at + len(h.old)]) != h.old:
            raise PatchError(f"{name}: hunk at line {h.old_start} does not apply to the seed")
        edits.extend(_changed_runs(h, at, name))
    return edits


def _changed_runs(h: Hunk, at: int, name: str) -> list[Edit]:
    """Split a hunk into the runs between its context lines (a diff of old against new)."""
    from difflib import SequenceMatcher

    runs: list[Edit] = []
    matcher = SequenceMatcher(a=h.old, b=h.new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            runs.append(Edit(at + i1, at + i2, h.new[j1:j2], name))
    return runs


def merge_edits(base: list[str], edits: list[Edit]) -> list[str]:
    """``base`` with every edit applied; edits that touch the same base lines conflict."""
    ordered = sorted(edits, key=lambda e: (e.start, e.end))
    for a, b in pairwise(ordered):
        if b.start < a.end or (b.start == a.start and a.start == a.end == b.end):
            raise PatchError(
                f"{a.origin} and {b.origin} both change line {b.start + 1} of the seed"
            )
    out = list(base)
    for e in reversed(ordered):
        out[e.start : e.end] = list(e.new)
    return out


def apply_hunks(lines: list[str], hunks: list[Hunk], name: str = "patch") -> list[str]:
    """``lines`` with the hunks of one patch applied (each must match where it says)."""
    return merge_edits(lines, hunk_edits(lines, hunks, name))


def variant_source(variant: Variant) -> str:
    """The driver source of ``variant``: the seed with its fixes' patches merged."""
    text = seed_source().read_text(encoding="utf-8")
    base = text.splitlines()
    edits: list[Edit] = []
    for flag in FIX_NAMES:
        if variant.has(flag):
            path = patch_path(flag)
            edits += hunk_edits(
                base, parse_patch(path.read_text(encoding="utf-8"), path.name), path.name
            )
    return "\n".join(merge_edits(base, edits)) + "\n"
