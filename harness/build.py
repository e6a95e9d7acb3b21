"""Build the harness around a driver source: the only change to the C is the backdoor macro.

:func:`prepare_source` rewrites ``VMWARE_BALLOON_CMD`` (seed lines 200-219, the
inline ``inl`` of the hypervisor port) into one line that calls the harness's
host (``shim_backdoor`` in ``harness/c/harness.c``) and blanks the 19 lines of
its body, so every other line keeps its text and its number.  A source whose
macro block is not the seed's is refused (:class:`BuildError`, one line).

:func:`build` compiles ``harness/c/harness.c``, which includes the rewritten
source, with the system's ``cc``; binaries are cached in the user's cache
directory under the hash of everything that goes into them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from vmballoon.core import specdata

HERE = Path(__file__).resolve().parent
C_DIR = HERE / "c"
MACRO_FIRST = "#define VMWARE_BALLOON_CMD("
REPLACEMENT = (
    "#define VMWARE_BALLOON_CMD(cmd, arg1, arg2, result) ({ unsigned long __status, __result; "
    "__status = shim_backdoor(VMW_BALLOON_CMD_##cmd, (unsigned long)(arg1), "
    "(unsigned long)(arg2), &__result); result = __result; result &= -1UL; __status & -1UL; })"
)
CFLAGS = (
    "-std=gnu11", "-O2", "-g", "-Wall",
    # as the kernel builds: NULL checks are kept, no strict aliasing, wrapping signed overflow
    "-fno-delete-null-pointer-checks", "-fno-strict-aliasing", "-fno-strict-overflow",
)  # fmt: skip


class BuildError(Exception):
    """A driver source the harness cannot build; the message is one line."""


def seed_source() -> Path:
    """The vendored seed, ``spec/driver/vmw_balloon.c`` (MODULE_VERSION 1.5.0.0-k)."""
    return specdata.seed_source()


def expected_macro() -> list[str]:
    """The 20 lines of the seed's ``VMWARE_BALLOON_CMD`` (lines 200-219)."""
    return (C_DIR / "backdoor_macro.txt").read_text(encoding="utf-8").splitlines()


def prepare_source(text: str, name: str = "vmw_balloon.c") -> str:
    """``text`` with the backdoor macro replaced, every other line kept at its number.

    A ``#line 1`` directive first names the file as ``name`` in the compiler's messages.
    """
    lines = text.splitlines()
    expected = expected_macro()
    starts = [i for i, line in enumerate(lines) if line.startswith(MACRO_FIRST)]
    if len(starts) != 1:
        raise BuildError(
            f"{name}: expected one VMWARE_BALLOON_CMD macro definition, found {len(starts)}"
        )
    at = starts[0]
    block = [line.rstrip("\r") for line in lines[at : at + len(expected)]]
    if block != expected:
        bad = next(
            (i for i, (a, b) in enumerate(zip(block, expected, strict=False)) if a != b),
            len(block),
        )
        raise BuildError(
            f"{name}:{at + bad + 1}: the VMWARE_BALLOON_CMD block (lines {at + 1}-"
            f"{at + len(expected)}) is not the seed's; the harness replaces exactly that "
            "inline assembly"
        )
    directive = '#line 1 "' + name.replace("\\", "/").replace('"', "'") + '"'
    blank = [""] * (len(expected) - 1)
    out = [directive, *lines[:at], REPLACEMENT, *blank, *lines[at + len(expected) :]]
    return "\n".join(out) + "\n"


def compiler() -> str:
    """The C compiler: ``$CC``, else ``cc``, else ``gcc``."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    raise BuildError("no C compiler found: install gcc (apt-get install gcc) or set CC")


def cache_dir() -> Path:
    """Where compiled harnesses are kept: ``$XDG_CACHE_HOME/vmballoon-spec/harness``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vmballoon-spec" / "harness"


def _harness_files() -> list[Path]:
    return sorted(p for p in C_DIR.rglob("*") if p.is_file())


def first_error(stderr: str, build_dir: Path) -> str:
    """The compiler's first error, on one line, with the build folder's path removed."""
    for line in stderr.splitlines():
        if "error" in line:
            return line.replace(str(build_dir) + os.sep, "").strip()
    lines = [s for s in stderr.splitlines() if s.strip()]
    return lines[0].strip() if lines else "the compiler failed without a message"


def build(source_text: str, name: str = "vmw_balloon.c") -> Path:
    """The harness for a driver source: the shared library of :func:`build_library`."""
    return build_library(source_text, name)


LIBRARY_FLAGS = ("-shared", "-fPIC")
"""The harness as a shared library, loaded in-process (:mod:`vmballoon.harness.process`)."""
COVERAGE_FLAGS = ("-O0", "--coverage", "-DHARNESS_COVERAGE")
"""Line and branch counters (gcov); -O0 keeps every branch of the source a branch."""


def build_library(source_text: str, name: str = "vmw_balloon.c", coverage: bool = False) -> Path:
    """The harness as a shared library for a driver source (compiled once, then taken
    from the cache); ``coverage``: with gcov counters, the ``.gcno`` notes beside it."""
    prepared = prepare_source(source_text, name)
    cc = compiler()
    flags = (*CFLAGS, *LIBRARY_FLAGS, *(COVERAGE_FLAGS if coverage else ()))
    h = hashlib.sha256()
    h.update(cc.encode())
    h.update(" ".join(flags).encode())
    h.update(prepared.encode())
    for f in _harness_files():
        h.update(f.relative_to(C_DIR).as_posix().encode())
        h.update(f.read_bytes())
    folder = cache_dir() / (h.hexdigest()[:24] + ("-cov" if coverage else "-so"))
    target = folder / "harness.so"
    if target.is_file():
        return target
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
    try:
        (tmp / "vmw_balloon.c").write_text(prepared, encoding="utf-8")
        cmd = [cc, *flags, "-I", str(tmp), "-I", str(C_DIR), "-I", str(C_DIR / "include"),
               str(C_DIR / "harness.c"), "-o", str(tmp / "harness.so"), "-ldl"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp)
        if proc.returncode != 0:
            raise BuildError(f"{name}: does not compile: {first_error(proc.stderr, tmp)}")
        try:
            os.rename(tmp, folder)  # atomic: a concurrent build of the same source wins
        except OSError:
            if not target.is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def warnings_of(source_text: str, name: str = "vmw_balloon.c") -> list[str]:
    """The compiler's warnings for a driver source in the harness (for the -Wall test)."""
    prepared = prepare_source(source_text, name)
    with tempfile.TemporaryDirectory() as tmp:
        build_dir = Path(tmp)
        (build_dir / "vmw_balloon.c").write_text(prepared, encoding="utf-8")
        cmd = [compiler(), *CFLAGS, "-fsyntax-only", "-I", str(build_dir), "-I", str(C_DIR),
               "-I", str(C_DIR / "include"), str(C_DIR / "harness.c")]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return [
            line.replace(str(build_dir) + os.sep, "")
            for line in proc.stderr.splitlines()
            if "warning:" in line
        ]
