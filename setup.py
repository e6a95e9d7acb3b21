"""The one build step pyproject.toml cannot say: ship the top-level ``spec/`` folder in the
package as ``vmballoon/spec_data/`` (the vendored driver, the fix patches, the chapters and
the checked-in results that the commands read). A source checkout reads ``spec/`` itself
(``vmballoon.core.specdata``), so an editable install copies nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithSpec(build_py):
    """``build_py`` that also copies ``spec/`` to ``<build>/vmballoon/spec_data``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        source = Path(__file__).resolve().parent / "spec"
        target = Path(self.build_lib) / "vmballoon" / "spec_data"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))


setup(cmdclass={"build_py": BuildWithSpec})
