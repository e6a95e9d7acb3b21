"""Where the spec's data lives: the one place that knows.

``spec/`` (the hand-written chapters, the generated reference, the checked-in verify
results and findings, the vendored driver and its fix patches) is read from the source
checkout the package was installed from (``<checkout>/spec``, next to ``vmballoon/``), or,
in an installed wheel, from the copy the build puts in the package
(``vmballoon/spec_data``, see ``setup.py``). Everything that reads spec files asks
:func:`spec_dir`; :func:`checkout_spec_dir` says where ``vmballoon spec`` may write.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
_MARK = Path("driver") / "vmw_balloon.c"


def _checkout_of(start: Path) -> Path | None:
    """The ``spec/`` of the vmballoon-spec checkout holding ``start``, if any."""
    for folder in (start, *start.parents):
        spec = folder / "spec"
        if (spec / _MARK).is_file() and (folder / "vmballoon" / "core" / "specdata.py").is_file():
            return spec
    return None


def spec_dir() -> Path:
    """The directory holding ``protocol.md``, ``reference.md``, ``verify-results.json``, ..."""
    return _checkout_of(PACKAGE_DIR.parent) or PACKAGE_DIR / "spec_data"


def checkout_spec_dir(cwd: Path | None = None) -> Path | None:
    """The ``spec/`` of the checkout the command runs in (``cwd`` or above), if any:
    ``vmballoon spec`` writes there, never into an installed package."""
    return _checkout_of((cwd or Path.cwd()).resolve())


def seed_source() -> Path:
    """The vendored seed driver, ``spec/driver/vmw_balloon.c``."""
    return spec_dir() / "driver" / "vmw_balloon.c"
