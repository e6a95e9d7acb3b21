"""Build the harness around a driver source: the only change to the C is the backdoor macro.

:func:`prepare_source` finds ``VMWARE_BALLOON_CMD`` wherever it is (seed lines
200-219; a stable file that adds ``#include <linux/io.h>`` has it one line
lower), rewrites it into one line that calls the harness's host
(``shim_backdoor`` in ``vmballoon/harness/c/harness.c``) and blanks the rest of its body,
so every other line keeps its text and its number.  A source whose macro block
is not the seed's is refused (:class:`BuildError`, one line).

:func:`build` compiles ``vmballoon/harness/c/harness.c``, which includes the rewritten
source, with ``$CC`` (else ``cc``, else ``gcc``):

* the kernel API comes from ``vmballoon/harness/c/kshim.h`` through the stand-in headers
  of ``vmballoon/harness/c/include``; any other ``<linux/...>``, ``<asm/...>`` or
  ``<asm-generic/...>`` the source includes and no include folder has gets an
  empty stand-in generated into the build folder; ``include_dirs`` (``--include
  DIR``) are searched after the harness's own headers;
* the harness is a shared library (``-fPIC -shared -z defs``, ``VMBALLOON_SHARED``
  defined), loaded in-process by :mod:`vmballoon.harness.process`; ``coverage=True`` builds
  with ``--coverage -O0`` (``VMBALLOON_COVERAGE`` defined) into a folder of its
  own, never cached, where the gcov notes stay and the counters are written;
* the compiler's warnings are printed on stderr (all but the seed's own known
  one, :meth:`Diagnostic.known_seed_warning`), on every build, cached or not,
  after a note for each generated stand-in (the build cannot see the real one);
* an undefined kernel helper is named (``undefined reference to cpu_relax``),
  not left as ``collect2: error: ld returned 1 exit status``.

Binaries are cached in the user's cache folder.  The key is everything that
goes into a build: the prepared source, the harness's C files, the flags, the
kind, the compiler (its resolved path and its ``--version``), the include
folders and where each ``#include`` of the source resolves, and the
environment variables the compiler reads (``CPATH``, ``C_INCLUDE_PATH``, ...).
The contents of the headers actually read (the compiler's dependency list,
system headers and ``--include`` headers included) are recorded with their
sha256 beside the binary and checked on every use: a changed header rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from vmballoon.core import specdata

HERE = Path(__file__).resolve().parent
C_DIR = HERE / "c"
INCLUDE_DIR = C_DIR / "include"
MACRO_FIRST = "#define VMWARE_BALLOON_CMD("
REPLACEMENT = (
    "#define VMWARE_BALLOON_CMD(cmd, arg1, arg2, result) ({ unsigned long __status, __result; "
    "__status = shim_backdoor(VMW_BALLOON_CMD_##cmd, (unsigned long)(arg1), "
    "(unsigned long)(arg2), &__result); result = __result; result &= -1UL; __status & -1UL; })"
)
CFLAGS = (
    "-std=gnu11",
    "-O2",
    "-g",
    "-Wall",
    # as the kernel builds: NULL checks are kept, no strict aliasing, wrapping signed overflow
    "-fno-delete-null-pointer-checks",
    "-fno-strict-aliasing",
    "-fno-strict-overflow",
)
COVERAGE_FLAGS = ("--coverage", "-O0", "-DVMBALLOON_COVERAGE=1", "-DHARNESS_COVERAGE=1")
"""Added after :data:`CFLAGS` for a coverage build (``-O0`` keeps every line countable)."""
SHARED_FLAGS = ("-fPIC", "-shared", "-DVMBALLOON_SHARED=1", "-Wl,-z,defs")
"""A shared library loaded in-process; ``-z defs``: a kernel helper the harness lacks is
a link error naming the symbol, not a failure to load."""
COMPILER_ENV = (
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "LIBRARY_PATH",
    "LD_LIBRARY_PATH",
    "LD_RUN_PATH",
    "SDKROOT",
)
"""Environment variables that change what the compiler or the linker reads: part of the key."""
KERNEL_INCLUDE = re.compile(r"^\s*#\s*include\s*<((?:linux|asm|asm-generic)/[^>\s]+)>", re.M)
STUB_DIR = "kstub"
"""The build folder's sub-folder of generated stand-ins for unknown kernel headers."""

Kind = Literal["shared"]


class BuildError(Exception):
    """A driver source the harness cannot build; the message is one line."""


@dataclass(frozen=True)
class Diagnostic:
    """One compiler message, ``file:line:column: severity: message [-Woption]``."""

    file: str
    line: int
    column: int
    severity: str  # "warning", "error", "note" or "fatal error"
    message: str
    option: str | None

    def text(self) -> str:
        """The message as the compiler printed it (one line)."""
        opt = f" [{self.option}]" if self.option else ""
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}{opt}"

    @property
    def known_seed_warning(self) -> bool:
        """The seed's own warning, in every 1.5.0.x file: ``vmballoon_lock_page`` passes
        ``int *hv_status`` for ``unsigned int *`` (seed line 598)."""
        return (
            self.severity == "warning"
            and self.option == "-Wpointer-sign"
            and "vmballoon_send_lock_page" in self.message
        )


DIAGNOSTIC = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>fatal error|error|warning|note): "
    r"(?P<msg>.*?)(?: \[(?P<opt>-W[^\]]+)\])?$"
)
UNDEFINED = re.compile(r"undefined reference to [`'‘\"]([^'’`\"]+)['’`\"]")


def parse_diagnostics(stderr: str, build_dir: Path | None = None) -> list[Diagnostic]:
    """The compiler's diagnostics (gcc and clang format), paths in ``build_dir`` made relative."""
    out: list[Diagnostic] = []
    prefix = str(build_dir) + os.sep if build_dir is not None else None
    for raw in stderr.splitlines():
        line = raw.replace(prefix, "") if prefix else raw
        m = DIAGNOSTIC.match(line.strip())
        if m:
            out.append(
                Diagnostic(m["file"], int(m["line"]), int(m["col"]), m["sev"], m["msg"], m["opt"])
            )
    return out


def seed_source() -> Path:
    """The vendored seed, ``spec/driver/vmw_balloon.c`` (MODULE_VERSION 1.5.0.0-k)."""
    return specdata.seed_source()


def expected_macro() -> list[str]:
    """The 20 lines of the seed's ``VMWARE_BALLOON_CMD`` (lines 200-219)."""
    return (C_DIR / "backdoor_macro.txt").read_text(encoding="utf-8").splitlines()


def macro_line(text: str, name: str = "vmw_balloon.c") -> int:
    """The 1-based line where ``VMWARE_BALLOON_CMD`` is defined (exactly one definition)."""
    starts = [i for i, line in enumerate(text.splitlines()) if line.startswith(MACRO_FIRST)]
    if len(starts) != 1:
        raise BuildError(
            f"{name}: expected one VMWARE_BALLOON_CMD macro definition, found {len(starts)}"
        )
    return starts[0] + 1


def prepare_source(text: str, name: str = "vmw_balloon.c") -> str:
    """``text`` with the backdoor macro replaced, every other line kept at its number.

    The macro is found wherever it is defined; a ``#line 1`` directive first names
    the file as ``name`` in the compiler's messages.
    """
    lines = text.splitlines()
    expected = expected_macro()
    at = macro_line(text, name) - 1
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


# ---- the compiler ---------------------------------------------------------------------------


def compiler_command() -> list[str]:
    """The C compiler as a command: ``$CC`` (split like a shell word list), else ``cc``,
    else ``gcc``.  A ``$CC`` that names no program is an error, never a fallback."""
    cc = os.environ.get("CC")
    if cc is not None and cc.strip():
        try:
            words = shlex.split(cc)
        except ValueError as exc:
            raise BuildError(f"CC={cc!r}: {exc}") from None
        if shutil.which(words[0]) is None:
            raise BuildError(f"CC={cc!r}: no such compiler ({words[0]} is not a program on PATH)")
        return words
    for name in ("cc", "gcc"):
        if shutil.which(name):
            return [name]
    raise BuildError("no C compiler found: install gcc (apt-get install gcc) or set CC")


def compiler() -> str:
    """The C compiler, as ``$CC`` names it (else ``cc``, else ``gcc``)."""
    return shlex.join(compiler_command())


@cache
def _compiler_identity(words: tuple[str, ...]) -> str:
    exe = shutil.which(words[0]) or words[0]
    real = os.path.realpath(exe)
    try:
        st = os.stat(real)
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = "?"
    proc = subprocess.run([*words, "--version"], capture_output=True, text=True, check=False)
    return f"{real}|{stamp}|{' '.join(words[1:])}|{proc.stdout.strip()}"


def compiler_identity() -> str:
    """What identifies the compiler in the cache key: its resolved path, size and mtime,
    its extra words and its ``--version``."""
    return _compiler_identity(tuple(compiler_command()))


def cache_dir() -> Path:
    """Where compiled harnesses are kept: ``$XDG_CACHE_HOME/vmballoon-spec/harness``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vmballoon-spec" / "harness"


def _harness_files() -> list[Path]:
    return sorted(p for p in C_DIR.rglob("*") if p.is_file())


def first_error(stderr: str, build_dir: Path) -> str:
    """The compiler's first error, on one line, with the build folder's path removed.

    A link that fails on undefined symbols names them (``undefined reference to
    cpu_relax``) rather than quoting ``collect2``."""
    undefined = sorted(set(UNDEFINED.findall(stderr)))
    if undefined:
        which = ", ".join(undefined)
        return (
            f"undefined reference to {which}: the harness does not provide "
            f"{'this kernel helper' if len(undefined) == 1 else 'these kernel helpers'} "
            "(define it in a header of a folder given with --include DIR)"
        )
    for d in parse_diagnostics(stderr, build_dir):
        if d.severity in ("error", "fatal error"):
            return d.text()
    for line in stderr.splitlines():
        if "error" in line:
            return line.replace(str(build_dir) + os.sep, "").strip()
    lines = [s for s in stderr.splitlines() if s.strip()]
    return lines[0].strip() if lines else "the compiler failed without a message"


# ---- include folders ------------------------------------------------------------------------


def kernel_includes(text: str) -> list[str]:
    """The ``<linux/...>``, ``<asm/...>`` and ``<asm-generic/...>`` headers ``text`` includes."""
    return sorted(set(KERNEL_INCLUDE.findall(text)))


def check_include_dirs(include_dirs: Iterable[Path | str]) -> tuple[Path, ...]:
    """The include folders, absolute; a missing one is a :class:`BuildError`."""
    out: list[Path] = []
    for d in include_dirs:
        p = Path(d).expanduser()
        if not p.is_dir():
            what = "not a folder" if p.exists() else "no such folder"
            raise BuildError(f"--include {d}: {what}")
        out.append(p.resolve())
    return tuple(out)


def _env_dirs() -> list[Path]:
    dirs: list[Path] = []
    for var in ("CPATH", "C_INCLUDE_PATH"):
        dirs += [Path(p) for p in os.environ.get(var, "").split(os.pathsep) if p]
    return dirs


def resolve_includes(text: str, include_dirs: Sequence[Path]) -> dict[str, str]:
    """Where each kernel header of ``text`` comes from: ``harness``, ``--include <dir>``,
    ``env <dir>`` (``CPATH``/``C_INCLUDE_PATH``) or ``stub`` (generated, empty)."""
    where: dict[str, str] = {}
    for header in kernel_includes(text):
        if (INCLUDE_DIR / header).is_file():
            where[header] = "harness"
            continue
        found = next((d for d in include_dirs if (d / header).is_file()), None)
        if found is not None:
            where[header] = f"--include {found}"
            continue
        env = next((d for d in _env_dirs() if (d / header).is_file()), None)
        where[header] = f"env {env}" if env is not None else "stub"
    return where


def stub_notes(name: str, where: dict[str, str]) -> list[str]:
    """One line per generated stand-in: the build cannot see what the real header holds."""
    return [
        f"{name}: note: <{header}> is not a header the harness knows: an empty stand-in is "
        "used (give the real one with --include DIR if the driver needs what it defines)"
        for header, origin in where.items()
        if origin == "stub"
    ]


def write_stubs(build_dir: Path, where: dict[str, str]) -> Path:
    """An empty stand-in (it includes only ``kshim.h``) for each ``stub`` header."""
    stub_root = build_dir / STUB_DIR
    stub_root.mkdir(parents=True, exist_ok=True)
    for header, origin in where.items():
        if origin == "stub":
            path = stub_root / header
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                f"/* <{header}>: generated by vmballoon/harness/build.py, a header the harness "
                f"does not "
                'know; everything the driver uses is in kshim.h. */\n#include "kshim.h"\n',
                encoding="utf-8",
            )
    return stub_root


def _include_flags(build_dir: Path, include_dirs: Sequence[Path], stub_root: Path) -> list[str]:
    flags = ["-I", str(build_dir), "-I", str(C_DIR), "-I", str(INCLUDE_DIR)]
    for d in include_dirs:
        flags += ["-I", str(d)]
    return [*flags, "-I", str(stub_root)]


# ---- the cache ------------------------------------------------------------------------------


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def parse_depfile(text: str) -> list[str]:
    """The prerequisites of a make dependency file (``-MD``), in order."""
    joined = text.replace("\\\n", " ")
    out: list[str] = []
    for rule in joined.splitlines():
        if ":" not in rule:
            continue
        _, _, deps = rule.partition(": ")
        words = re.split(r"(?<!\\)\s+", deps.strip())
        out += [w.replace("\\ ", " ") for w in words if w]
    return list(dict.fromkeys(out))


def dependency_manifest(depfile: Path, build_dir: Path) -> dict[str, str]:
    """``{header path: sha256}`` of every file the compiler read outside the build folder."""
    deps = parse_depfile(depfile.read_text(encoding="utf-8", errors="replace"))
    manifest: dict[str, str] = {}
    root = str(build_dir.resolve())
    for dep in deps:
        p = Path(dep)
        if not p.is_absolute():
            p = (build_dir / p).resolve()
        if str(p.resolve()).startswith(root + os.sep):
            continue
        digest = _sha256(p)
        if digest is not None:
            manifest[str(p)] = digest
    return manifest


def manifest_holds(manifest: dict[str, str]) -> bool:
    """Whether every recorded header still has the recorded contents."""
    return all(_sha256(Path(p)) == digest for p, digest in manifest.items())


def build_key(
    prepared: str,
    kind: Kind,
    coverage: bool,
    include_dirs: Sequence[Path],
    where: dict[str, str],
    host: Path,
) -> str:
    """The cache key of a build (see the module docstring)."""
    h = hashlib.sha256()

    def put(label: str, value: str | bytes) -> None:
        data = value.encode() if isinstance(value, str) else value
        h.update(f"{label}:{len(data)}:".encode())
        h.update(data)

    put("compiler", compiler_identity())
    put("flags", " ".join(_flags(kind, coverage)))
    put("kind", kind)
    put("source", prepared)
    put("host", str(host))
    for f in _harness_files():
        put("harness " + f.relative_to(C_DIR).as_posix(), f.read_bytes())
    for d in include_dirs:
        put("include", str(d))
    put("resolution", json.dumps(where, sort_keys=True))
    for var in COMPILER_ENV:
        put("env " + var, os.environ.get(var, "\0unset"))
    return h.hexdigest()[:24]


def _flags(kind: Kind, coverage: bool) -> list[str]:
    flags = list(CFLAGS)
    if coverage:
        flags += COVERAGE_FLAGS
    return flags + list(SHARED_FLAGS)


def output_name(kind: Kind) -> str:
    """The library's file name."""
    return "libharness.so"


def print_warnings(lines: Iterable[str]) -> None:
    """The default for :func:`build`'s ``on_warning``: each line on stderr."""
    for line in lines:
        print(line, file=sys.stderr)


# ---- build ----------------------------------------------------------------------------------


def build(
    source_text: str,
    name: str = "vmw_balloon.c",
    *,
    kind: Kind = "shared",
    coverage: bool = False,
    include_dirs: Iterable[Path | str] = (),
    out_dir: Path | None = None,
    host: Path | None = None,
    on_warning: Callable[[list[str]], None] | None = print_warnings,
) -> Path:
    """The harness for a driver source: an executable (``kind="exe"``) or a shared
    library (``kind="shared"``).

    Cached (see the module docstring) unless ``coverage`` or ``out_dir`` is given:
    then it is built in ``out_dir`` (a new folder under the cache folder when
    ``None``), where it stays with its prepared source ``vmw_balloon.c`` and, for
    coverage, its gcov notes (``*.gcno``; the counters, ``*.gcda``, appear there
    when it runs).  ``host`` is the C file that includes the driver (default
    ``vmballoon/harness/c/harness.c``).  The compiler's warnings but the seed's known one go
    to ``on_warning`` (default: stderr; ``None``: dropped)."""
    if kind != "shared":
        raise BuildError(f"unknown build kind {kind!r} (the harness is a shared library)")
    prepared = prepare_source(source_text, name)
    dirs = check_include_dirs(include_dirs)
    host_c = (host or C_DIR / "harness.c").resolve()
    if not host_c.is_file():
        raise BuildError(f"{host_c}: no such harness host file")
    where = resolve_includes(source_text, dirs)
    if coverage or out_dir is not None:
        return _build_apart(
            prepared, name, kind, coverage, dirs, where, host_c, out_dir, on_warning
        )
    return _build_cached(prepared, name, kind, coverage, dirs, where, host_c, on_warning)


def _build_apart(
    prepared: str,
    name: str,
    kind: Kind,
    coverage: bool,
    dirs: tuple[Path, ...],
    where: dict[str, str],
    host_c: Path,
    out_dir: Path | None,
    on_warning: Callable[[list[str]], None] | None,
) -> Path:
    """The uncached build of :func:`build`, in ``out_dir`` (a new folder under the cache
    folder when ``None``)."""
    if out_dir is None:
        cache_dir().mkdir(parents=True, exist_ok=True)
        out_dir = Path(tempfile.mkdtemp(prefix="coverage-", dir=cache_dir()))
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    target, warnings = _compile(
        prepared, name, out_dir, kind, coverage, dirs, where, host_c, out_dir / output_name(kind)
    )
    _emit(stub_notes(name, where) + warnings, on_warning)
    return target


def _build_cached(
    prepared: str,
    name: str,
    kind: Kind,
    coverage: bool,
    dirs: tuple[Path, ...],
    where: dict[str, str],
    host_c: Path,
    on_warning: Callable[[list[str]], None] | None,
) -> Path:
    """The cached build of :func:`build`: the cached library when its record of the
    headers still holds, else built in a temporary folder and moved into place with its
    record."""
    key = build_key(prepared, kind, coverage, dirs, where, host_c)
    folder = cache_dir() / key
    target = folder / output_name(kind)
    manifest_path = folder / "manifest.json"
    if target.is_file() and manifest_path.is_file():
        try:
            record = json.loads(manifest_path.read_text(encoding="utf-8"))
            if manifest_holds(record["headers"]):
                _emit(stub_notes(name, where) + list(record["warnings"]), on_warning)
                return target
        except (ValueError, KeyError, TypeError):
            pass  # a damaged record: build again
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        build_dir = Path(tmp)
        built, warnings = _compile(
            prepared,
            name,
            build_dir,
            kind,
            coverage,
            dirs,
            where,
            host_c,
            build_dir / output_name(kind),
        )
        record = {
            "headers": dependency_manifest(build_dir / "deps.d", build_dir),
            "warnings": warnings,
            "includes": where,
        }
        (build_dir / "manifest.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.replace(built, target)  # atomic: concurrent builds of the same source agree
        os.replace(build_dir / "manifest.json", manifest_path)
    _emit(stub_notes(name, where) + warnings, on_warning)
    return target


def _emit(warnings: list[str], on_warning: Callable[[list[str]], None] | None) -> None:
    if warnings and on_warning is not None:
        on_warning(warnings)


def _compile(
    prepared: str,
    name: str,
    build_dir: Path,
    kind: Kind,
    coverage: bool,
    dirs: Sequence[Path],
    where: dict[str, str],
    host: Path,
    output: Path,
) -> tuple[Path, list[str]]:
    """Compile in ``build_dir``; the output and the warnings to show (one line each)."""
    (build_dir / "vmw_balloon.c").write_text(prepared, encoding="utf-8")
    stub_root = write_stubs(build_dir, where)
    cmd = [
        *compiler_command(),
        *_flags(kind, coverage),
        *_include_flags(build_dir, dirs, stub_root),
        "-MD",
        "-MF",
        str(build_dir / "deps.d"),
        str(host),
        "-o",
        str(output),
        "-ldl",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=build_dir)
    if proc.returncode != 0:
        stage = "does not link" if UNDEFINED.search(proc.stderr) else "does not compile"
        raise BuildError(f"{name}: {stage}: {first_error(proc.stderr, build_dir)}")
    warnings = [
        d.text()
        for d in parse_diagnostics(proc.stderr, build_dir)
        if d.severity == "warning" and not d.known_seed_warning
    ]
    return output, warnings


def warnings_of(
    source_text: str, name: str = "vmw_balloon.c", *, include_dirs: Iterable[Path | str] = ()
) -> list[str]:
    """Every compiler warning for a driver source in the harness, the known one included
    (for the -Wall test)."""
    prepared = prepare_source(source_text, name)
    dirs = check_include_dirs(include_dirs)
    with tempfile.TemporaryDirectory() as tmp:
        build_dir = Path(tmp)
        (build_dir / "vmw_balloon.c").write_text(prepared, encoding="utf-8")
        stub_root = write_stubs(build_dir, resolve_includes(source_text, dirs))
        cmd = [
            *compiler_command(),
            *CFLAGS,
            "-fsyntax-only",
            *_include_flags(build_dir, dirs, stub_root),
            str(C_DIR / "harness.c"),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return [
            d.text() for d in parse_diagnostics(proc.stderr, build_dir) if d.severity == "warning"
        ]
