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
    PatchError,
    apply_hunks,
    changes_of,
    merge,
    parse_patch,
    patch_path,
    variant_source,
)

KERNEL_PATH = "drivers/misc/vmw_balloon.c"


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


@pytest.mark.parametrize("flag", FIX_NAMES)
def test_each_patch_is_a_standard_diff_with_three_lines_of_context(flag: str) -> None:
    """Every hunk has 3 lines of context before and after its changes (fewer only at the
    ends of the file), its counts match its header, and the diffstat adds up."""
    text = patch_path(flag).read_text(encoding="utf-8")
    seed = seed_source().read_text(encoding="utf-8").splitlines()
    hunks = parse_patch(text, flag)
    for h in hunks:
        tags = "".join(t for t, _ in h.body)
        lead, trail = len(tags) - len(tags.lstrip(" ")), len(tags) - len(tags.rstrip(" "))
        assert lead == min(3, h.old_start - 1), (flag, h.old_start, tags)
        assert trail == min(3, len(seed) - (h.old_start - 1 + len(h.old) - trail)), (flag, tags)
        header = re.search(rf"^@@ -{h.old_start},{len(h.old)} \+\d+,{len(h.new)} @@", text, re.M)
        assert header is not None, (flag, h.old_start)
    added = sum(t == "+" for h in hunks for t, _ in h.body)
    removed = sum(t == "-" for h in hunks for t, _ in h.body)
    stat = re.search(r"^ 1 file changed(, (\d+) insertions?\(\+\))?(, (\d+) deletions?\(-\))?$",
                     text, re.M)  # fmt: skip
    assert stat is not None
    assert (int(stat.group(2) or 0), int(stat.group(4) or 0)) == (added, removed)


def test_each_patch_alone_applies_to_the_vendored_seed_with_git_apply(tmp_path: Path) -> None:
    """`git apply` (when git is there) takes each patch alone on the seed, and gives what
    the project's applier gives (which is checked with or without git)."""
    seed = seed_source().read_text(encoding="utf-8")
    git = shutil.which("git")
    for flag in FIX_NAMES:
        ours = "\n".join(apply_hunks(seed.splitlines(), parse_patch(
            patch_path(flag).read_text(encoding="utf-8"), flag), flag)) + "\n"  # fmt: skip
        assert ours == variant_source(Variant(frozenset({flag})))
        if git is None:
            continue
        tree = tmp_path / flag
        (tree / KERNEL_PATH).parent.mkdir(parents=True)
        (tree / KERNEL_PATH).write_text(seed, encoding="utf-8")
        for args in (["--check"], []):
            proc = subprocess.run([git, "apply", *args, str(patch_path(flag))], cwd=tree,
                                  capture_output=True, text=True, check=False)  # fmt: skip
            assert proc.returncode == 0, (flag, proc.stderr)
        assert (tree / KERNEL_PATH).read_text(encoding="utf-8") == ours


def test_a_context_line_that_differs_is_one_clear_error() -> None:
    seed = seed_source().read_text(encoding="utf-8").splitlines()
    hunks = parse_patch(patch_path("batch_pfn").read_text(encoding="utf-8"))
    first = hunks[0]
    at = first.old_start - 1  # the first context line of the first hunk
    changed = [*seed[:at], seed[at] + " /* edited */", *seed[at + 1 :]]
    with pytest.raises(PatchError) as err:
        apply_hunks(changed, hunks, "batch_pfn.patch")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"batch_pfn.patch: hunk at line {first.old_start} does not apply: "
                              f"context line {first.old_start} is ")  # fmt: skip


def test_two_patches_changing_one_line_is_an_error() -> None:
    seed = seed_source().read_text(encoding="utf-8").splitlines()
    hunks = parse_patch(patch_path("batch_pfn").read_text(encoding="utf-8"))
    twice = changes_of(seed, hunks, "a.patch") + changes_of(seed, hunks, "b.patch")
    with pytest.raises(PatchError, match=r"^b.patch: hunk at line \d+ changes seed line 470, "
                                         r"which a.patch \(hunk at line \d+\) changes too$"):
        merge(seed, twice)


def test_a_context_line_another_fix_changes_still_applies() -> None:
    """target_on_success's context holds batch_pfn's line 470: both apply, in any order."""
    seed = seed_source().read_text(encoding="utf-8").splitlines()
    target = parse_patch(patch_path("target_on_success").read_text(encoding="utf-8"))
    assert any(" " + seed[469] in [t + x for t, x in h.body] for h in target)
    both = variant_source(Variant(frozenset({"batch_pfn", "target_on_success"})))
    assert "page_to_pfn(virt_to_page(b->batch_page));" in both
    assert "unsigned long status, result;" in both


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


def test_patch_command_writes_the_fixed_source(tmp_path: Path) -> None:
    out = tmp_path / "fixed.c"
    proc = subprocess.run(
        [sys.executable, "-m", "vmballoon", "patch", "--variant", "fixed", "-o", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert out.read_text(encoding="utf-8") == variant_source(FIXED)
    bad = subprocess.run([sys.executable, "-m", "vmballoon", "patch", "--variant", "nope"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
