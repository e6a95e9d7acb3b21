"""Where the spec's data lives: the one place that knows.

``spec/`` (the hand-written chapters, the generated reference, the checked-in
verify results and findings) is shipped inside the package as ``vmballoon/spec_data``:
a link to the top-level ``spec/`` in a source checkout (editable install), a copy
in an installed wheel.  Everything that reads or writes spec files asks
:func:`spec_dir`.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def spec_dir() -> Path:
    """The directory holding ``protocol.md``, ``reference.md``, ``verify-results.json``, ..."""
    return (PACKAGE_DIR / "spec_data").resolve()


def seed_source() -> Path:
    """The vendored seed driver, ``spec/driver/vmw_balloon.c``."""
    return spec_dir() / "driver" / "vmw_balloon.c"
