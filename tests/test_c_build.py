"""Building real driver files in the harness (vmballoon/harness/build.py, kshim.h):
stable-tree files as they are, unknown headers, --include, the cache key, the compiler,
warnings, link errors,
shared and coverage builds; the upstream-stable variant; the stable files' provenance."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vmballoon.apps.replay import replay
from vmballoon.core import assumptions as asm
from vmballoon.core.scenario import load_scenario
from vmballoon.core.variants import (
    FIX_NAMES,
    FIXED,
    SEED,
    UPSTREAM_STABLE,
    Variant,
    parse_variant,
)
from vmballoon.harness import build as b
from vmballoon.harness.patches import apply_hunks, parse_patch, variant_source
from vmballoon.harness.replay import replay as replay_c

DRIVERS = ROOT / "tests" / "data" / "drivers"
STABLE_414 = DRIVERS / "vmw_balloon-4.14.y.c"
STABLE_49 = DRIVERS / "vmw_balloon-4.9.y.c"
SEED_TEXT = b.seed_source().read_text(encoding="utf-8")
SCENARIOS = sorted(
    [
        *(ROOT / "tests" / "scenarios").glob("*.json"),
        *(ROOT / "tests" / "golden").glob("*.scenario.json"),
        *(ROOT / "spec" / "examples").glob("*.scenario.json"),
        *(ROOT / "spec" / "findings").glob("*.scenario.json"),
        *(ROOT / "tests" / "data" / "scenarios").glob("*.json"),
    ]
)
BATCH_PAGE_AT_2_52 = ROOT / "tests" / "data" / "scenarios" / "batch_page_at_2_52.json"


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache folder of this test's own (nothing built by another test is reused)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield tmp_path / "cache" / "vmballoon-spec" / "harness"


def quiet() -> tuple[list[str], Callable[[list[str]], None]]:
    seen: list[str] = []
    return seen, seen.extend


def with_line(text: str, after: str, line: str) -> str:
    assert text.count(after) == 1
    return text.replace(after, after + line)


# ---- the stable files ----------------------------------------------------------------------


def test_stable_files_are_the_seed_with_upstreams_changes() -> None:
    """tests/data/drivers/README.md: 4.14.y = seed + upstream/*.patch; 4.9.y = 4.14.y with
    4.9's hypervisor check."""
    lines = SEED_TEXT.splitlines()
    patches = sorted((DRIVERS / "upstream").glob("*.patch"))
    assert len(patches) == 5
    edits = []
    for p in patches:
        text = p.read_text(encoding="utf-8")
        assert text.startswith("Subject: vmw_balloon: ")
        hunks = parse_patch(text, p.name)
        assert apply_hunks(lines, hunks, p.name) != lines
        edits.append(hunks)
    from vmballoon.harness.patches import hunk_edits, merge_edits

    merged = merge_edits(
        lines,
        [e for p, h in zip(patches, edits, strict=True) for e in hunk_edits(lines, h, p.name)],
    )
    assert "\n".join(merged) + "\n" == STABLE_414.read_text(encoding="utf-8")
    v49 = STABLE_49.read_text(encoding="utf-8")
    assert v49 == STABLE_414.read_text(encoding="utf-8").replace(
        "if (x86_hyper_type != X86_HYPER_VMWARE)", "if (x86_hyper != &x86_hyper_vmware)"
    )
    for text in (STABLE_414.read_text(encoding="utf-8"), v49):
        assert text.startswith("/*\n * VMware Balloon driver.")  # the licence header is kept
        assert "GNU General Public License" in text
        assert "#include <linux/io.h>" in text and "late_initcall(vmballoon_init);" in text
        assert text.count("PHYS_PFN(virt_to_phys(b->batch_page))") == 2
        assert "return -EINVAL;" in text and "goto fail;" in text


def test_the_macro_is_found_where_it_is_and_other_lines_keep_their_numbers() -> None:
    text = STABLE_414.read_text(encoding="utf-8")
    assert b.macro_line(SEED_TEXT) == 200
    assert b.macro_line(text) == 201  # <linux/io.h> moved it down one line
    body = b.prepare_source(text, "stable.c").splitlines()[1:]
    src = text.splitlines()
    assert len(body) == len(src)
    changed = [i + 1 for i, (x, y) in enumerate(zip(src, body, strict=True)) if x != y]
    assert changed == list(range(201, 221))


@pytest.mark.parametrize("path", [STABLE_414, STABLE_49], ids=lambda p: p.name)
def test_stable_files_compile_without_hand_made_headers(path: Path, cache: Path) -> None:
    text = path.read_text(encoding="utf-8")
    seen, sink = quiet()
    assert b.build(text, path.name, on_warning=sink).is_file()
    assert seen == []  # nothing but the seed's known warning (filtered)
    everything = b.warnings_of(text, path.name)
    assert len(everything) == 1 and "vmballoon_send_lock_page" in everything[0]
    assert f"{path.name}:605:" in everything[0]  # seed line 598: +1 io.h, +6 for the 2 MB fix


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_414_file_replays_like_upstream_stable(path: Path) -> None:
    scenario = load_scenario(path)
    assert replay_c(scenario, source=STABLE_414) == replay(scenario, "model", UPSTREAM_STABLE)


def test_the_49_file_replays_like_the_414_file() -> None:
    for path in SCENARIOS[::4]:
        scenario = load_scenario(path)
        assert replay_c(scenario, source=STABLE_49) == replay_c(scenario, source=STABLE_414)


# ---- virt_to_phys and PHYS_PFN -------------------------------------------------------------


@pytest.mark.parametrize("variant", [FIXED, UPSTREAM_STABLE], ids=lambda v: v.name)
def test_batch_page_pfn_is_exact_even_at_2_52(variant: Variant) -> None:
    """The batch page at PFN 2**52 (outside pfn_below_2_52): PHYS_PFN(virt_to_phys(...))
    in the C names the same PFN as the model's page_to_pfn (kshim.h's top comment)."""
    scenario = load_scenario(BATCH_PAGE_AT_2_52)
    log = replay(scenario, "model", variant)
    batched = [e for e in log["events"] if e.get("cmd") == "BATCHED_LOCK"]
    assert batched and batched[0]["arg1"] == 2**52
    assert replay_c(scenario, variant) == log
    assert [o.name for o in asm.scenario_outside(scenario, asm.GLOBAL)] == ["pfn_below_2_52"]


def test_the_batch_pfn_patch_says_and_does_upstreams_expression() -> None:
    text = (ROOT / "spec" / "fixes" / "batch_pfn.patch").read_text(encoding="utf-8")
    message, diff = text.split("\n---\n", 1)
    assert "PHYS_PFN(virt_to_phys(b->batch_page))" in message
    added = [line for line in diff.splitlines() if line.startswith("+\t")]
    assert added == ["+\tunsigned long pfn = PHYS_PFN(virt_to_phys(b->batch_page));"] * 2
    fixes_md = (ROOT / "spec" / "fixes.md").read_text(encoding="utf-8")
    assert "virt_to_page(b->batch_page)" not in fixes_md


# ---- the upstream-stable variant -----------------------------------------------------------


def test_upstream_stable_is_a_named_variant() -> None:
    v = parse_variant("upstream-stable")
    assert v == UPSTREAM_STABLE and v.name == "upstream-stable"
    assert parse_variant(v.name) == v
    assert set(v.fixes) == {
        "batch_pfn",
        "lock_64bit_refused",
        "no_2m_without_batching",
        "doorbell_set_status",
    }
    assert (
        parse_variant(
            "doorbell_set_status,batch_pfn,no_2m_without_batching,lock_64bit_refused"
        ).name
        == "upstream-stable"
    )
    assert v.fixes < FIXED.fixes and set(FIX_NAMES) >= v.fixes
    assert variant_source(v) != variant_source(SEED)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmballoon", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_upstream_stable_everywhere_a_variant_is(tmp_path: Path) -> None:
    scenario = str(ROOT / "tests" / "scenarios" / "null_ops.json")
    patched = run("patch", "--variant", "upstream-stable")
    assert patched.returncode == 0 and patched.stdout == variant_source(UPSTREAM_STABLE)
    for args in (
        ["replay", scenario, "--variant", "upstream-stable"],
        ["replay", scenario, "--impl", "c", "--variant", "upstream-stable"],
        ["replay", scenario, "--check", "--variant", "upstream-stable"],
    ):
        proc = run(*args)
        assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, args
    from vmballoon.apps.fuzz import Campaign
    from vmballoon.apps.verify import _variant_or_all

    assert _variant_or_all("upstream-stable") == "upstream-stable"
    assert Campaign(UPSTREAM_STABLE, impls=("reference",)).machine().variant == UPSTREAM_STABLE


def test_check_c_on_the_414_file(tmp_path: Path) -> None:
    """Done-when of issue 22, the short way: check-c finds no regression against
    upstream-stable (a tiny campaign: the shipped scenarios above are the broad check),
    and the C crashes where fixed does not on the reset_needs_ops finding, which is what
    check-c --against fixed reports."""
    ok = run(
        "check-c",
        str(STABLE_414),
        "--against",
        "upstream-stable",
        "--examples",
        "5",
        "--seed",
        "1",
        "--out",
        str(tmp_path / "a"),
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    noise = [x for x in ok.stderr.splitlines() if not x.startswith("check-c: ")]
    assert noise == []  # only check-c's progress: no warning, no stand-in header
    from vmballoon.apps.checkc import regressed
    from vmballoon.harness.replay import binary_for

    binary = binary_for(source=STABLE_414)
    finding = load_scenario(ROOT / "spec" / "findings" / "defect.reset_needs_ops.scenario.json")
    assert regressed(binary, finding, FIXED) == ["no_crash"]
    assert regressed(binary, finding, UPSTREAM_STABLE) == []
    assert replay(finding, "model", FIXED.without("reset_needs_ops"))["final"]["crashed"]


# ---- headers: stand-ins, --include, the cache key ------------------------------------------


def test_an_unknown_kernel_header_gets_an_empty_stand_in(cache: Path) -> None:
    text = with_line(
        SEED_TEXT,
        "#include <asm/hypervisor.h>\n",
        "#include <asm-generic/hypervisor.h>\n#include <linux/rwsem.h>\n",
    )
    assert b.resolve_includes(text, ()) == {
        **{h: "harness" for h in b.kernel_includes(SEED_TEXT)},
        "asm-generic/hypervisor.h": "stub",
        "linux/rwsem.h": "stub",
    }
    # one line more before the macro: the stand-ins keep the harness working
    seen, sink = quiet()
    assert b.build(text, "vendor.c", on_warning=sink).is_file()
    assert len(seen) == 2 and all("an empty stand-in is used" in s for s in seen)
    assert "<asm-generic/hypervisor.h>" in seen[0] and "<linux/rwsem.h>" in seen[1]


def vendor_source() -> str:
    """The seed using a vendor helper from a header the harness does not know."""
    text = with_line(SEED_TEXT, "#include <asm/hypervisor.h>\n", "#include <linux/vendor_fix.h>\n")
    timer = "\tSTATS_INC(b->stats.timer);\n"
    return text.replace(timer, timer + "\tvendor_fix(b->size);\n")


def test_include_dir_supplies_the_rest(tmp_path: Path, cache: Path) -> None:
    inc = tmp_path / "inc"
    (inc / "linux").mkdir(parents=True)
    (inc / "linux" / "vendor_fix.h").write_text(
        "static inline void vendor_fix(unsigned x) { (void)x; }\n"
    )
    text = vendor_source()
    with pytest.raises(b.BuildError) as err:  # without it: a stand-in, and vendor_fix unknown
        b.build(text, "vendor.c", on_warning=None)
    assert "undefined reference to vendor_fix" in str(err.value)
    assert b.resolve_includes(text, (inc,))["linux/vendor_fix.h"] == f"--include {inc}"
    assert b.build(text, "vendor.c", include_dirs=[inc]).is_file()
    with pytest.raises(b.BuildError, match=r"--include .*: no such folder"):
        b.build(text, "vendor.c", include_dirs=[tmp_path / "missing"])


def test_check_c_and_replay_take_include(tmp_path: Path) -> None:
    inc = tmp_path / "inc"
    (inc / "linux").mkdir(parents=True)
    (inc / "linux" / "vendor_fix.h").write_text(
        "static inline void vendor_fix(unsigned x) { (void)x; }\n"
    )
    src = tmp_path / "vendor.c"
    src.write_text(vendor_source(), encoding="utf-8")
    scenario = str(ROOT / "tests" / "scenarios" / "null_ops.json")
    without = run("replay", scenario, "--impl", "c", "--source", str(src))
    assert without.returncode == 2 and without.stderr.count("\n") == 1
    assert "undefined reference to vendor_fix" in without.stderr
    assert "collect2" not in without.stderr
    good = run("replay", scenario, "--impl", "c", "--source", str(src), "--include", str(inc))
    assert good.returncode == 0, good.stderr
    checked = run(
        "check-c",
        str(src),
        "--include",
        str(inc),
        "--against",
        "seed",
        "--examples",
        "3",
        "--seed",
        "2",
        "--out",
        str(tmp_path / "o"),
    )
    assert checked.returncode in (0, 1) and "Traceback" not in checked.stderr
    assert "no such file" not in checked.stderr and "does not" not in checked.stderr
    lonely = run("replay", scenario, "--include", str(inc))
    assert lonely.returncode == 2 and "--source" in lonely.stderr


def test_the_cache_key_holds_what_goes_into_a_build(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A binary built with a header from CPATH is not reused without it, nor after the
    header changed; include folders are part of the key."""
    hdr = tmp_path / "hand" / "linux"
    hdr.mkdir(parents=True)
    (hdr / "vendor_fix.h").write_text("static inline void vendor_fix(unsigned x) { (void)x; }\n")
    text = vendor_source()
    monkeypatch.setenv("CPATH", str(tmp_path / "hand"))
    first = b.build(text, "vendor.c", on_warning=None)
    assert b.build(text, "vendor.c", on_warning=None) == first  # cached
    monkeypatch.delenv("CPATH")
    with pytest.raises(b.BuildError, match="undefined reference to vendor_fix"):
        b.build(text, "vendor.c", on_warning=None)  # not the CPATH build
    monkeypatch.setenv("CPATH", str(tmp_path / "hand"))
    stamp = first.stat().st_mtime_ns
    (hdr / "vendor_fix.h").write_text("static inline void vendor_fix(unsigned x) { x++; }\n")
    again = b.build(text, "vendor.c", on_warning=None)
    assert again == first and again.stat().st_mtime_ns != stamp  # rebuilt: the header changed
    monkeypatch.delenv("CPATH")
    in_dir = b.build(text, "vendor.c", include_dirs=[tmp_path / "hand"], on_warning=None)
    assert in_dir != first


# ---- the compiler, warnings, link errors ---------------------------------------------------


def test_cc_naming_a_missing_compiler_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "no-such-cc-xyz")
    with pytest.raises(b.BuildError, match=r"CC='no-such-cc-xyz': no such compiler"):
        b.compiler_command()
    env = {**os.environ, "CC": "no-such-cc-xyz", "XDG_CACHE_HOME": str(tmp_path)}
    proc = run("check-c", str(STABLE_414), "--examples", "1", "--out", str(tmp_path / "o"), env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "no-such-cc-xyz" in proc.stderr and "Traceback" not in proc.stderr
    for args in (
        ["fuzz", "--examples", "1", "--seed", "1"],
        ["replay", str(ROOT / "tests" / "scenarios" / "null_ops.json"), "--impl", "c"],
    ):
        proc = run(*args, env=env)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, (args, proc.stderr)
        assert "no-such-cc-xyz" in proc.stderr and "Traceback" not in proc.stderr
    monkeypatch.setenv("CC", "gcc -std=gnu11")
    assert b.compiler_command() == ["gcc", "-std=gnu11"]


def test_a_missing_kernel_helper_is_named(cache: Path) -> None:
    timer = "\tSTATS_INC(b->stats.timer);\n"
    text = SEED_TEXT.replace(timer, timer + "\tcpu_relax();\n")
    text = text.replace(
        "static struct vmballoon balloon;",
        "static struct vmballoon balloon;\nvoid cpu_relax(void);",
    )
    with pytest.raises(b.BuildError) as err:
        b.build(text, "relax.c", on_warning=None)
    msg = str(err.value)
    assert msg.startswith("relax.c: does not link: undefined reference to cpu_relax")
    assert "collect2" not in msg and "\n" not in msg


def test_warnings_are_shown_but_the_seeds_known_one(tmp_path: Path, cache: Path) -> None:
    timer = "\tSTATS_INC(b->stats.timer);\n"
    text = SEED_TEXT.replace(timer, timer + "\tint unused_here;\n")
    seen, sink = quiet()
    b.build(text, "warns.c", on_warning=sink)
    assert len(seen) == 1 and "warns.c:" in seen[0] and "unused_here" in seen[0]
    seen2, sink2 = quiet()
    b.build(text, "warns.c", on_warning=sink2)
    assert seen2 == seen  # from the cache: shown again
    seen3, sink3 = quiet()
    b.build(SEED_TEXT, on_warning=sink3)
    assert seen3 == []
    src = tmp_path / "warns.c"
    src.write_text(text, encoding="utf-8")
    proc = run(
        "replay",
        str(ROOT / "tests" / "scenarios" / "null_ops.json"),
        "--impl",
        "c",
        "--source",
        str(src),
    )
    assert proc.returncode == 0 and "unused_here" in proc.stderr


def test_diagnostics_are_parsed_as_data() -> None:
    line = (
        "vmw_balloon.c:598:58: warning: pointer targets in passing argument 3 of "
        "‘vmballoon_send_lock_page’ differ in signedness [-Wpointer-sign]"
    )
    (d,) = b.parse_diagnostics(line)
    assert (d.file, d.line, d.column, d.severity, d.option) == (
        "vmw_balloon.c",
        598,
        58,
        "warning",
        "-Wpointer-sign",
    )
    assert d.known_seed_warning and d.text() == line
    (e,) = b.parse_diagnostics("x.c:1:2: warning: unused variable ‘y’ [-Wunused-variable]")
    assert not e.known_seed_warning


# ---- shared and coverage builds ------------------------------------------------------------


def test_shared_and_coverage_builds(tmp_path: Path, cache: Path) -> None:
    so = b.build(SEED_TEXT)
    assert so.name == "libharness.so"
    head = so.read_bytes()[:18]
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[16:18], "little") == 3  # ET_DYN
    assert b.build(SEED_TEXT, kind="shared") == so  # cached
    out = tmp_path / "cov"
    exe = b.build(SEED_TEXT, coverage=True, out_dir=out)
    assert exe.parent == out.resolve() and (out / "vmw_balloon.c").is_file()
    assert list(out.glob("*.gcno"))
    with pytest.raises(b.BuildError, match="unknown build kind"):
        b.build(SEED_TEXT, kind="static")  # type: ignore[arg-type]


def test_a_scenario_outside_the_assumptions_is_named() -> None:
    inside = load_scenario(ROOT / "tests" / "scenarios" / "null_ops.json")
    assert asm.scenario_outside(inside) == []
    outside = load_scenario(ROOT / "tests" / "scenarios" / "pfn_above_2_52.json")
    (o,) = asm.scenario_outside(outside)
    assert o.name == "pfn_below_2_52" and "2**52" in o.message
