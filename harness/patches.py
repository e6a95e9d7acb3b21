"""The fixes as kernel patches: ``spec/fixes/<flag>.patch``, applied to the vendored seed.

One unified diff per fix flag of :mod:`vmballoon.core.variants`, with a
kernel-style header (subject ``vmw_balloon: ...``, what is wrong, what the fix
does, what it prevents).  :func:`variant_source` applies the patches of a
variant in the fixed order of ``FIX_NAMES``; every hunk must apply exactly
(context and removed lines equal), possibly moved by the lines earlier patches
added or removed, so any combination of fixes gives one well-defined source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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


def apply_hunks(lines: list[str], hunks: list[Hunk], name: str = "patch") -> list[str]:
    """``lines`` with every hunk applied; a hunk may have moved by up to 200 lines."""
    out = list(lines)
    shift = 0
    for h in hunks:
        want = h.old_start - 1 + shift
        at = None
        for delta in range(201):
            for pos in (want - delta, want + delta):
                fits = 0 <= pos <= len(out) - len(h.old)
                if fits and tuple(out[pos : pos + len(h.old)]) == h.old:
                    at = pos
                    break
            if at is not None:
                break
        if at is None:
            raise PatchError(f"{name}: hunk at line {h.old_start} does not apply")
        out[at : at + len(h.old)] = list(h.new)
        shift = at - (h.old_start - 1) + len(h.new) - len(h.old)
    return out


def variant_source(variant: Variant) -> str:
    """The driver source of ``variant``: the seed with its fixes' patches, in FIX_NAMES order."""
    text = seed_source().read_text(encoding="utf-8")
    lines = text.splitlines()
    for flag in FIX_NAMES:
        if variant.has(flag):
            path = patch_path(flag)
            lines = apply_hunks(lines, parse_patch(path.read_text(encoding="utf-8"), path.name),
                                path.name)  # fmt: skip
    return "\n".join(lines) + "\n"
