"""Pinned campaigns that draw the same examples wherever they run.

Hypothesis (6.131 and later) replaces about one integer draw in twenty with a
constant taken from the source of the *local* modules loaded in the process:
every module outside site-packages and the test folders. Which modules are
loaded, and which constants they hold, then decide what a pinned campaign
draws: ``vmballoon fuzz --seed 7`` drew other examples through the CLI than in
pytest, in an editable install than in a site-packages one, and after an edit
to any module of the package (a new patch applier moved the seed-7 campaign of
``tests/test_fuzz_cli.py`` off its violation).

:func:`pinned_constant_pool` runs a campaign with no local constants (the
global pool of Hypothesis, the same everywhere, stays), so a seed names one
campaign for a given fuzzer and Hypothesis version. The fuzzer draws the
driver's boundary values itself (``vmballoon.apps.fuzz``), so nothing that
finds bugs depends on constants scraped from the source.

The hook is Hypothesis's module-level ``_get_local_constants``; if a later
Hypothesis moves it, campaigns run unpinned and
``tests/test_drawpool.py`` and
``tests/test_fuzz_cli.py::test_cli_and_in_process_campaigns_draw_alike`` fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    from hypothesis.internal.conjecture import providers as _providers
    from hypothesis.internal.constants_ast import Constants as _Constants
except ImportError:  # pragma: no cover - a Hypothesis without the constant pool
    _providers = None  # type: ignore[assignment]


def _hookable() -> bool:
    names = ("_get_local_constants", "CONSTANTS_CACHE")
    return _providers is not None and all(hasattr(_providers, name) for name in names)


def _clear_cache() -> None:
    """Forget the constants Hypothesis cached per draw kind (they hold the old pool)."""
    cache: Any = _providers.CONSTANTS_CACHE
    inner = getattr(cache, "cache", None)
    if inner is not None and hasattr(inner, "clear"):
        inner.clear()


@contextmanager
def pinned_constant_pool() -> Iterator[bool]:
    """Within the block, Hypothesis draws no constants from local modules.

    Yields whether the pool could be pinned (False with a Hypothesis that has
    no such hook). Nesting is allowed; the outermost block restores the hook.
    """
    if not _hookable():
        yield False
        return
    original = _providers._get_local_constants
    empty = _Constants()

    def no_local_constants() -> Any:
        return empty

    _providers._get_local_constants = no_local_constants
    _clear_cache()
    try:
        yield True
    finally:
        _providers._get_local_constants = original
        _clear_cache()
