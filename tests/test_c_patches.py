"""The fixes as kernel patches (spec/fixes): headers, any combination applies, `vmballoon patch`."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vmballoon.core.variants import FIX_NAMES, FIXED, SEED, Variant
from vmballoon.harness.build import build, seed_source
from vmballoon.harness.patches import (
    PatchError,
    apply_hunks,
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
