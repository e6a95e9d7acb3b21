"""An immutable set of frames that grows and shrinks one frame at a time cheaply.

The ghost's frames held by the host (:class:`vmballoon.model.properties.Ghost`) change
by one frame at each basic LOCK or UNLOCK (lines 451-457, 499-505): a ``frozenset``
copied at each such command made checking a basic inflation of ``n`` pages cost
``n**2``.  A :class:`FrameSet` keeps a ``frozenset`` and two small ones, the frames
added and removed since, and folds them in once they outgrow the square root of the
set: a change costs O(sqrt n), amortised, and every older set stays as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Set
from math import isqrt
from typing import TypeVar

_T = TypeVar("_T")

_EMPTY: frozenset[int] = frozenset()


class FrameSet(Set[int]):
    """An immutable set of ints: ``base - minus | plus`` (``plus`` disjoint from
    ``base``, ``minus`` a subset of it)."""

    __slots__ = ("_all", "_base", "_minus", "_plus")

    def __init__(self, frames: Iterable[int] = ()) -> None:
        self._base = frames if isinstance(frames, frozenset) else frozenset(frames)
        self._plus = self._minus = _EMPTY
        self._all: frozenset[int] | None = self._base

    @classmethod
    def of(cls, frames: Iterable[int]) -> FrameSet:
        """``frames`` as a FrameSet (itself when it is one)."""
        return frames if isinstance(frames, FrameSet) else cls(frames)

    @classmethod
    def _make(cls, base: frozenset[int], plus: frozenset[int], minus: frozenset[int]) -> FrameSet:
        out = cls.__new__(cls)
        if len(plus) + len(minus) > max(32, isqrt(len(base))):
            base, plus, minus = (base - minus) | plus, _EMPTY, _EMPTY
        out._base, out._plus, out._minus = base, plus, minus
        out._all = base if not plus and not minus else None
        return out

    def with_frame(self, pfn: int) -> FrameSet:
        """This set and ``pfn``."""
        if pfn in self:
            return self
        if pfn in self._minus:
            return self._make(self._base, self._plus, self._minus - {pfn})
        return self._make(self._base, self._plus | {pfn}, self._minus)

    def without(self, pfn: int) -> FrameSet:
        """This set without ``pfn``."""
        if pfn not in self:
            return self
        if pfn in self._plus:
            return self._make(self._base, self._plus - {pfn}, self._minus)
        return self._make(self._base, self._plus, self._minus | {pfn})

    def frozen(self) -> frozenset[int]:
        """The frames as a ``frozenset`` (built once)."""
        if self._all is None:
            self._all = (self._base - self._minus) | self._plus
        return self._all

    def __contains__(self, pfn: object) -> bool:
        return pfn in self._plus or (pfn in self._base and pfn not in self._minus)

    def __len__(self) -> int:
        return len(self._base) - len(self._minus) + len(self._plus)

    def __iter__(self) -> Iterator[int]:
        return iter(self.frozen())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Set):
            return self.frozen() == frozenset(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.frozen())

    @classmethod
    def _from_iterable(cls, it: Iterable[_T]) -> frozenset[_T]:
        return frozenset(it)  # what |, &, - and ^ give: a plain frozenset

    def __repr__(self) -> str:
        return f"FrameSet({sorted(self)})"


EMPTY = FrameSet()
"""The empty FrameSet."""

__all__ = ["EMPTY", "FrameSet"]
