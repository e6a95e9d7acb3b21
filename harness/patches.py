"""The fixes as kernel patches: ``spec/fixes/<flag>.patch``, applied to the vendored seed.

One unified diff per fix flag of :mod:`vmballoon.core.variants`, with a
kernel-style header (subject ``vmw_balloon: ...``, what is wrong, what the fix
does, what it prevents) and three lines of context, as ``git format-patch``
writes it: each is a diff of the vendored seed, so ``git apply`` or ``patch -p1``
takes any one of them alone.

:func:`variant_source` applies the patches of a variant as a merge of changes to
the seed: every hunk is placed on the seed (its context and removed lines must
equal the seed's there, possibly moved by up to 200 lines; else one line says
which line differs), split into its changes (seed lines replaced by new lines),
and the changes of all the variant's patches are applied together, in the fixed
order of ``FIX_NAMES`` where two insert at the same place.  A context line may be
changed by another fix (``target_on_success``'s context holds ``batch_pfn``'s
line), which is why the patches are not applied one after the other; two patches
changing the same seed line is an error, so any combination of fixes gives one
well-defined source.
"""

from __future__ import annotations

import itertools
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
    """One hunk: where it starts in the old file, its old lines, its new lines, and its
    body (each line with its tag: ``" "`` context, ``"-"`` removed, ``"+"`` added)."""

    old_start: int  # 1-based
    old: tuple[str, ...]
    new: tuple[str, ...]
    body: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Change:
    """Old lines ``start .. end - 1`` (0-based; ``start == end``: an insertion before
    line ``start``) replaced by ``new``; from hunk ``hunk`` of patch ``name``."""

    start: int
    end: int
    new: tuple[str, ...]
    name: str
    hunk: int  # the hunk's old_start, for messages


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
        tagged: list[tuple[str, str]] = []
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
            if tag != "\\":
                tagged.append((tag, body))
            i += 1
        if len(old) != old_len or len(new) != new_len:
            raise PatchError(f"{name}: a hunk ends early")
        # a hunk with no old lines inserts after line old_start (0: at the top)
        start = int(m.group(1)) + (1 if old_len == 0 else 0)
        hunks.append(Hunk(start, tuple(old), tuple(new), tuple(tagged)))
    return hunks


def locate(lines: list[str], h: Hunk, name: str = "patch", max_offset: int = 200) -> int:
    """Where (0-based) the old side of hunk ``h`` (context and removed lines) is in
    ``lines``: at its line number, else the nearest place up to ``max_offset`` lines
    away; :class:`PatchError` (one line, naming the first line that differs) if none."""
    want = h.old_start - 1
    for delta in range(max_offset + 1):
        for pos in (want - delta, want + delta):
            fits = 0 <= pos <= len(lines) - len(h.old)
            if fits and tuple(lines[pos : pos + len(h.old)]) == h.old:
                return pos
    tags = [t for t, _ in h.body if t != "+"]  # of the old lines, in order
    for k, expected in enumerate(h.old):
        found = lines[want + k] if 0 <= want + k < len(lines) else "(end of file)"
        if found != expected:
            what = "context" if tags[k] == " " else "removed"
            raise PatchError(
                f"{name}: hunk at line {h.old_start} does not apply: {what} line "
                f"{want + k + 1} is {found!r}, the patch expects {expected!r}"
            )
    raise PatchError(f"{name}: hunk at line {h.old_start} does not apply")


def changes_of(lines: list[str], hunks: list[Hunk], name: str = "patch") -> list[Change]:
    """The hunks placed on ``lines`` (:func:`locate`) and split into their changes."""
    out: list[Change] = []
    for h in hunks:
        pos = locate(lines, h, name)
        start: int | None = None
        new: list[str] = []
        for tag, text in (*h.body, (" ", "")):  # a context line closes the change
            if tag == " ":
                if start is not None:
                    out.append(Change(start, pos, tuple(new), name, h.old_start))
                    start, new = None, []
                pos += 1
                continue
            if start is None:
                start = pos
            if tag == "-":
                pos += 1
            else:
                new.append(text)
    return out


def merge(lines: list[str], changes: list[Change]) -> list[str]:
    """``lines`` with every change applied; two changes of the same old line (or an
    insertion inside another's removed lines) are a :class:`PatchError` (one line).
    Insertions at one place keep the order of ``changes``."""
    order = {id(c): k for k, c in enumerate(changes)}
    ranked = sorted(changes, key=lambda c: (c.start, c.end > c.start, order[id(c)]))
    for a, b in itertools.pairwise(ranked):
        if b.start < a.end:
            raise PatchError(
                f"{b.name}: hunk at line {b.hunk} changes seed line {b.start + 1}, which "
                f"{a.name} (hunk at line {a.hunk}) changes too"
            )
    out: list[str] = []
    at = 0
    for c in ranked:
        out += lines[at : c.start]
        out += c.new
        at = max(at, c.end)
    return out + lines[at:]


def apply_hunks(lines: list[str], hunks: list[Hunk], name: str = "patch") -> list[str]:
    """``lines`` with every hunk of one patch applied (the context must match)."""
    return merge(lines, changes_of(lines, hunks, name))


def variant_source(variant: Variant) -> str:
    """The driver source of ``variant``: the seed with its fixes' patches, in FIX_NAMES order."""
    text = seed_source().read_text(encoding="utf-8")
    lines = text.splitlines()
    changes: list[Change] = []
    for flag in FIX_NAMES:
        if variant.has(flag):
            path = patch_path(flag)
            hunks = parse_patch(path.read_text(encoding="utf-8"), path.name)
            changes += changes_of(lines, hunks, path.name)
    return "\n".join(merge(lines, changes)) + "\n"
