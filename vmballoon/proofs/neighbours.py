"""Model states one edit away from reached ones: where a weakened encoded property shows.

Property conformance (:mod:`vmballoon.proofs.propconf`) compares ``P(s)`` with
``∀f. P̂(α_f(s))``.  On the states a run reaches, the properties mostly hold (on FIXED,
all of them), and where ``P`` holds a weakened ``P̂`` (one clause dropped) agrees with
it: a state on which the two differ is one where ``P`` fails *in the way of the dropped
clause*, and such states are rarely reachable.  This module builds them from reached
states by one edit of the model state or its ghost.  The edits are chosen by the
structure of :class:`vmballoon.model.state.State` and
:class:`vmballoon.model.properties.Ghost`, never by the encoded properties (so a mutated
``vmballoon/proofs/props.py`` cannot hide from them):

* every integer field of the driver and of the loop locals one up, one down and zeroed,
  every flag flipped, the ops table switched (``struct vmballoon`` (vmw_balloon.c:274));
* ``n_refused_pages`` moved alone (the counter apart from its list);
* a page moved from one of the four lists (the two balloon lists and the two refused
  lists) to another with the counters kept in step (``struct vmballoon_page_size``
  (vmw_balloon.c:265)), and ``VMW_BALLOON_MAX_REFUSED + 1`` pages moved onto a refused
  list (``VMW_BALLOON_MAX_REFUSED`` (vmw_balloon.c:93)), or as many fresh pages from the
  allocator;
* the batch page and ``b->page`` cleared or set to a listed page;
* the control location set to a resting one (the refused lists of a loop seen between
  ticks);
* the host's held set (the ghost) with a listed page added or a held one removed, and
  the ghost's flags flipped.

An edited state is not reachable (or not known to be), so propconf counts a
disagreement on it only where the encoding is *weaker* than the model (it would prove
``P̂`` where ``P`` is false).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, get_type_hints

from vmballoon.core.protocol import MAX_REFUSED
from vmballoon.model import listed as ls
from vmballoon.model.plist import from_iterable, push, to_list
from vmballoon.model.properties import Ghost
from vmballoon.model.state import RESTING, Driver, Loc, Loop, State

Edit = Callable[[State, Ghost], "tuple[State, Ghost] | None"]
"""One edit: the edited state and ghost, or None where it does not apply."""

PAGE_4K, PAGE_2M = 1, 512
"""A page of each list, in 4 KiB pages (what ``unsigned int size`` (vmw_balloon.c:281)
counts)."""


def _drv(state: State, **kw: Any) -> State:
    return state._replace(drv=state.drv._replace(**kw))


def _loop(state: State, **kw: Any) -> State:
    return state._replace(loop=state.loop._replace(**kw))


def _scalar_edits() -> Iterator[tuple[str, Edit]]:
    """Each integer field one up, one down and zeroed, each flag flipped (driver and loop)."""
    for owner, tup, set_ in (("drv", Driver, _drv), ("loop", Loop, _loop)):
        for name, kind in get_type_hints(tup).items():
            if kind is int:
                for d in (1, -1):
                    yield (f"{owner}.{name}{d:+d}", _bump(owner, name, d, set_))
                yield f"{owner}.{name} = 0", _zero(owner, name, set_)
            elif kind is bool:
                yield f"{owner}.{name} flipped", _flip(owner, name, set_)


def _bump(owner: str, name: str, d: int, set_: Callable[..., State]) -> Edit:
    def edit(s: State, g: Ghost) -> tuple[State, Ghost] | None:
        v = getattr(getattr(s, owner), name) + d
        return None if v < 0 else (set_(s, **{name: v}), g)

    return edit


def _zero(owner: str, name: str, set_: Callable[..., State]) -> Edit:
    def edit(s: State, g: Ghost) -> tuple[State, Ghost] | None:
        return None if getattr(getattr(s, owner), name) == 0 else (set_(s, **{name: 0}), g)

    return edit


def _flip(owner: str, name: str, set_: Callable[..., State]) -> Edit:
    def edit(s: State, g: Ghost) -> tuple[State, Ghost] | None:
        return set_(s, **{name: not getattr(getattr(s, owner), name)}), g

    return edit


def _counter(idx: int, d: int) -> Edit:
    def edit(s: State, g: Ghost) -> tuple[State, Ghost] | None:
        n = list(s.drv.n_refused)
        n[idx] += d
        return None if n[idx] < 0 else (_drv(s, n_refused=(n[0], n[1])), g)

    return edit


_LISTS = (("pages", 0), ("pages", 1), ("refused", 0), ("refused", 1))


def _move(src: tuple[str, int], dst: tuple[str, int], count: int) -> Edit:
    """``count`` pages from the head of list ``src`` to the head of list ``dst``, ``b->size``
    and ``n_refused_pages`` following (the pages stay listed and allocated)."""

    def edit(s: State, g: Ghost) -> tuple[State, Ghost] | None:
        d = s.drv
        lists = {k: [to_list(x) for x in getattr(d, k)] for k in ("pages", "refused")}
        taken = lists[src[0]][src[1]][:count]
        if len(taken) < count:
            return None
        lists[src[0]][src[1]] = lists[src[0]][src[1]][count:]
        lists[dst[0]][dst[1]] = taken[::-1] + lists[dst[0]][dst[1]]
        size, n_refused = d.size, list(d.n_refused)
        for (kind, idx), sign in ((src, -1), (dst, 1)):
            if kind == "pages":
                size += sign * count * (PAGE_2M if idx else PAGE_4K)
            else:
                n_refused[idx] += sign * count
        if size < 0:
            return None
        pages, refused = (
            (from_iterable(lists[k][0]), from_iterable(lists[k][1])) for k in ("pages", "refused")
        )
        return _drv(
            s, pages=pages, refused=refused, size=size, n_refused=(n_refused[0], n_refused[1])
        ), g

    return edit


def _fill_refused(idx: int) -> Edit:
    """Refused list ``idx`` holding ``VMW_BALLOON_MAX_REFUSED + 1`` more pages, fresh from
    the allocator (of that list's order), its counter in step: the bound of
    ``n_refused_pages`` passed where no balloon list has that many pages to move."""

    def edit(s: State, g: Ghost) -> tuple[State, Ghost] | None:
        env, listed, refused = s.env, s.drv.listed, s.drv.refused[idx]
        for _ in range(MAX_REFUSED + 1):
            pfn, env = env.alloc(9 * idx, "nosleep")
            if pfn is None:
                return None
            listed, refused = ls.add(listed, pfn), push(refused, pfn)
        n = list(s.drv.n_refused)
        n[idx] += MAX_REFUSED + 1
        both = (refused, s.drv.refused[1]) if idx == 0 else (s.drv.refused[0], refused)
        return _drv(s, refused=both, n_refused=(n[0], n[1]), listed=listed)._replace(env=env), g

    return edit


def _first_listed(s: State) -> int | None:
    for kind, idx in _LISTS:
        lst = to_list(getattr(s.drv, kind)[idx])
        if lst:
            return lst[0]
    return None


def _pointer(name: str) -> Edit:
    """``b->batch_page`` or ``b->page`` cleared, or (when NULL) set to a listed page."""

    def edit(s: State, g: Ghost) -> tuple[State, Ghost] | None:
        if getattr(s.drv, name) is not None:
            return _drv(s, **{name: None}), g
        p = _first_listed(s)
        return None if p is None else (_drv(s, **{name: p}), g)

    return edit


def _ops(ops: str | None) -> Edit:
    def edit(s: State, g: Ghost) -> tuple[State, Ghost] | None:
        return None if s.drv.ops == ops else (_drv(s, ops=ops), g)

    return edit


def _rest(loc: Loc) -> Edit:
    def edit(s: State, g: Ghost) -> tuple[State, Ghost] | None:
        return None if s.loc == loc else (s._replace(loc=loc, loop=s.loop), g)

    return edit


def _held(add: bool) -> Edit:
    """The host holds one more listed page, or one held page less."""

    def edit(s: State, g: Ghost) -> tuple[State, Ghost] | None:
        if add:
            p = next(
                (
                    x
                    for kind, idx in _LISTS
                    for x in to_list(getattr(s.drv, kind)[idx])
                    if x not in g.held
                ),
                None,
            )
            return None if p is None else (s, replace(g, held=g.held | {p}))
        if not g.held:
            return None
        return s, replace(g, held=g.held - {min(g.held)})

    return edit


def _ghost_flags() -> Iterator[tuple[str, Edit]]:
    for name_, kind in get_type_hints(Ghost).items():
        if kind is bool:

            def edit(s: State, g: Ghost, name: str = name_) -> tuple[State, Ghost] | None:
                flipped: dict[str, Any] = {name: not getattr(g, name)}
                return s, replace(g, **flipped)

            yield f"ghost.{name_} flipped", edit


def edits() -> list[tuple[str, Edit]]:
    """Every edit, named."""
    out = list(_scalar_edits())
    out += [(f"n_refused[{i}]{d:+d}", _counter(i, d)) for i in (0, 1) for d in (1, -1)]
    for src in _LISTS:
        for dst in _LISTS:
            if src != dst:
                out.append((f"{src[0]}[{src[1]}] -> {dst[0]}[{dst[1]}]", _move(src, dst, 1)))
    for idx in (0, 1):
        out.append(
            (
                f"{MAX_REFUSED + 1} pages[{idx}] -> refused[{idx}]",
                _move(("pages", idx), ("refused", idx), MAX_REFUSED + 1),
            )
        )
    out += [(f"refused[{i}] + {MAX_REFUSED + 1} fresh pages", _fill_refused(i)) for i in (0, 1)]
    out += [(f"{n} toggled", _pointer(n)) for n in ("batch_page", "page")]
    out += [(f"ops = {o}", _ops(o)) for o in (None, "basic", "batched")]
    out += [(f"loc = {loc.name}", _rest(loc)) for loc in sorted(RESTING)]
    out += [("held + a listed page", _held(True)), ("held - a page", _held(False))]
    out += list(_ghost_flags())
    return out


def neighbours(state: State, ghost: Ghost) -> Iterator[tuple[str, State, Ghost]]:
    """The states one edit away from ``state`` (crashed states have none)."""
    if state.loc == Loc.CRASHED:
        return
    for name, edit in EDITS:
        got = edit(state, ghost)
        if got is not None:
            yield name, got[0], got[1]


EDITS = edits()

__all__ = ["EDITS", "Edit", "edits", "neighbours"]
