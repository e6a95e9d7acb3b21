"""The fixes as kernel patches (spec/fixes): headers, any combination applies, `vmballoon patch`."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vmballoon.core.variants import FIX_NAMES, FIXED, SEED, Variant
from vmballoon.harness.build import build, seed_source
from vmballoon.harness.patches import (
    Hunk,
    PatchError,
    apply_hunks,
    hunk_edits,
    merge_edits,
    parse_patch,
    patch_path,
    variant_source,
)


@pytest.mark.parametrize("flag", FIX_NAMES)
def test_one_kernel_style_patch_per_fix(flag: str) -> None:
    text = patch_path(flag).read_text(encoding="utf-8")
    subject = re.search(r"^Subject: \[PATCH\] (.*)$", text, re.M)
    assert subject is not None and subject.group(1).startswith("vmw_balloon: ")
    body = text.split("\n---\n")[0]
    assert "What is wrong (lines" in body and "The fix:" in body and "It prevents" in body
    assert "--- a/drivers/misc/vmw_balloon.c" in text
    hunks = parse_patch(text, flag)
    assert hunks
    alone = variant_source(Variant(frozenset({flag})))
    assert alone != seed_source().read_text(encoding="utf-8")


def test_every_combination_of_fixes_applies() -> None:
    sources = set()
    for r in range(len(FIX_NAMES) + 1):
        for combo in itertools.combinations(FIX_NAMES, r):
            sources.add(variant_source(Variant(frozenset(combo))))
    assert len(sources) == 2 ** len(FIX_NAMES)  # every set of fixes is a different source


def test_seed_variant_is_the_vendored_seed() -> None:
    assert variant_source(SEED) == seed_source().read_text(encoding="utf-8")


def test_single_fix_and_fixed_sources_compile() -> None:
    for variant in [FIXED, *(Variant(frozenset({f})) for f in FIX_NAMES)]:
        assert build(variant_source(variant), variant.name).is_file()


def test_a_hunk_that_does_not_match_is_an_error() -> None:
    hunks = parse_patch(patch_path("batch_pfn").read_text(encoding="utf-8"))
    with pytest.raises(PatchError, match="does not apply"):
        apply_hunks(["int x;"] * 600, hunks, "batch_pfn.patch")


@pytest.mark.parametrize("flag", FIX_NAMES)
def test_each_patch_has_three_lines_of_context(flag: str) -> None:
    seed_lines = seed_source().read_text(encoding="utf-8").splitlines()
    for h in parse_patch(patch_path(flag).read_text(encoding="utf-8"), flag):
        lead = next(i for i, (a, b) in enumerate(zip(h.old, h.new, strict=False)) if a != b)
        trail = next(
            i for i, (a, b) in enumerate(zip(h.old[::-1], h.new[::-1], strict=False)) if a != b
        )
        assert lead == 3 or h.old_start == 1, (flag, h.old_start)
        assert trail == 3 or h.old_start - 1 + len(h.old) == len(seed_lines), (flag, h.old_start)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize("flag", FIX_NAMES)
def test_git_applies_each_patch_alone_to_the_seed(flag: str, tmp_path: Path) -> None:
    """What a kernel developer does: ``git apply`` the patch in a tree holding the seed."""
    driver = tmp_path / "drivers" / "misc" / "vmw_balloon.c"
    driver.parent.mkdir(parents=True)
    driver.write_text(seed_source().read_text(encoding="utf-8"), encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    proc = subprocess.run(
        ["git", "apply", str(patch_path(flag))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert driver.read_text(encoding="utf-8") == variant_source(Variant(frozenset({flag})))


def test_fixes_that_change_adjacent_lines_merge_and_the_same_line_conflicts() -> None:
    base = ["a", "b", "c", "d"]
    one = hunk_edits(base, [Hunk(1, ("a", "b", "c"), ("a", "B", "c"))], "one")
    two = hunk_edits(base, [Hunk(1, ("a", "b", "c", "d"), ("a", "b", "C", "d"))], "two")
    assert merge_edits(base, one + two) == ["a", "B", "C", "d"]  # two's context is one's change
    clash = hunk_edits(base, [Hunk(2, ("b",), ("x",))], "three")
    with pytest.raises(PatchError, match="one and three both change line 2"):
        merge_edits(base, one + clash)


def test_patch_command_writes_the_fixed_source(tmp_path: Path) -> None:
    out = tmp_path / "fixed.c"
    proc = subprocess.run(
        [sys.executable, "-m", "vmballoon", "patch", "--variant", "fixed", "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text(encoding="utf-8") == variant_source(FIXED)
    bad = subprocess.run(
        [sys.executable, "-m", "vmballoon", "patch", "--variant", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
