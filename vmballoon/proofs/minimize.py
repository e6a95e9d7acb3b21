"""Minimal counterexamples: every input that does not matter takes its default.

A counterexample scenario comes out of a solver model, whose values are whatever the
solver picked.  :func:`minimize` replaces, one at a time and in a fixed order, each
input by its default (a host answer by status 0, result 0 and no entries; an
allocation or a VMCI create by success; ``pfn_base`` by 0; ``totalram_pages`` by
the frame count; ``frames`` by the format's default), drops entry points, and
lowers numbers, keeping a change only when the replay
(:func:`model.properties.check_trace`) still shows
what is wanted.  Each kept input is therefore needed: reverting any one of them to
its default loses the violation.  The result depends only on the scenario it starts
from, so equal solver models give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import cache

from vmballoon.core.env import DEFAULT_RESPONSE
from vmballoon.core.scenario import DEFAULT_FRAMES, Response, Scenario

Keep = Callable[[Scenario], bool]


def _trim(sc: Scenario) -> Scenario:
    """Trailing defaults are implied by the format: leave them out."""
    hv, alloc, vmci = list(sc.hv), list(sc.alloc), list(sc.vmci)
    while hv and hv[-1] == DEFAULT_RESPONSE:
        hv.pop()
    while alloc and alloc[-1]:
        alloc.pop()
    while vmci and vmci[-1]:
        vmci.pop()
    return replace(sc, hv=tuple(hv), alloc=tuple(alloc), vmci=tuple(vmci))


def _simpler_responses(r: Response) -> list[Response]:
    """Candidates for one host answer, simplest first."""
    out = [DEFAULT_RESPONSE]
    if r.entries is not None:
        out.append(Response(r.status, r.result, None))
        if any(r.entries):
            kept = tuple(e for e in r.entries if e)
            out.append(Response(r.status, r.result, (0,) * (len(r.entries) - len(kept)) + kept))
        if len(r.entries) > 1:
            out.append(Response(r.status, r.result, r.entries[:1]))
    if r.result:
        out.append(Response(r.status, 0, r.entries))
        out.extend(Response(r.status, v, r.entries) for v in _smaller(r.result))
    if r.status:
        out.append(Response(0, r.result, r.entries))
    return [c for c in out if c != r]


def _smaller(v: int) -> list[int]:
    """Smaller numbers to try in place of ``v``: a few powers of two, then ``v`` halved."""
    cands = [1, 2, v & 0xFFFFFFFF, v >> 1]
    return sorted({c for c in cands if 0 < c < v})


def minimize(sc: Scenario, keep: Keep, rounds: int = 4) -> Scenario:
    """The scenario with every input that ``keep`` does not need at its default.

    ``keep`` is asked once per distinct scenario: a later round that tries a candidate
    again (most of them, when the round before changed little) gets the answer kept."""
    keep = cache(keep)
    if not keep(sc):
        return sc
    cur = _trim(sc)
    if not keep(cur):
        cur = sc
    for _ in range(rounds):
        before = cur
        cur = _pass(cur, keep)
        if cur == before:
            break
    return cur


def _try(cur: Scenario, cand: Scenario, keep: Keep) -> Scenario:
    cand = _trim(cand)
    return cand if cand != cur and keep(cand) else cur


def _runs(alloc: tuple[bool, ...]) -> list[tuple[int, int]]:
    """``(start, end)`` of each maximal run of successes in ``alloc``, last first."""
    out, k = [], 0
    while k < len(alloc):
        if alloc[k]:
            j = k
            while j < len(alloc) and alloc[j]:
                j += 1
            out.append((k, j))
            k = j
        else:
            k += 1
    return out[::-1]


def _drop_runs(cur: Scenario, keep: Keep) -> Scenario:
    """Successful allocations before a failure, dropped a run or half a run at a time."""
    for a, b in _runs(cur.alloc):
        while b > a:
            al = cur.alloc
            nxt = _try(cur, replace(cur, alloc=(*al[:a], *al[b:])), keep)
            if nxt is not cur:
                cur = nxt
                break
            half = (b - a) // 2
            if half == 0:
                break
            nxt = _try(cur, replace(cur, alloc=(*al[:a], *al[a + half :])), keep)
            if nxt is cur:
                break
            cur, b = nxt, b - half
    return cur


def _pass(cur: Scenario, keep: Keep) -> Scenario:
    # entry points: drop from the end, then each one
    while len(cur.steps) > 1:
        nxt = _try(cur, replace(cur, steps=cur.steps[:-1]), keep)
        if nxt is cur:
            break
        cur = nxt
    k = 0
    while k < len(cur.steps):
        cand = replace(cur, steps=cur.steps[:k] + cur.steps[k + 1 :])
        nxt = _try(cur, cand, keep)
        if nxt is cur:
            k += 1
        cur = nxt
    # host answers: simpler in place, or dropped
    k = 0
    while k < len(cur.hv):
        for r in _simpler_responses(cur.hv[k]):
            nxt = _try(cur, replace(cur, hv=(*cur.hv[:k], r, *cur.hv[k + 1 :])), keep)
            if nxt is not cur:
                cur = nxt
                break
        else:
            k += 1
    # allocator: whole runs of successes dropped (a deep trace may allocate hundreds of
    # pages before the failure that matters), then halved
    cur = _drop_runs(cur, keep)
    # allocator and VMCI: success by default
    for k in range(len(cur.alloc)):
        if k < len(cur.alloc) and not cur.alloc[k]:
            a = cur.alloc
            cur = _try(cur, replace(cur, alloc=(*a[:k], True, *a[k + 1 :])), keep)
    for k in range(len(cur.vmci)):
        if k < len(cur.vmci) and not cur.vmci[k]:
            v = cur.vmci
            cur = _try(cur, replace(cur, vmci=(*v[:k], True, *v[k + 1 :])), keep)
    # the pool: no offset, no reported RAM of its own, the default size
    if cur.pfn_base:
        cur = _try(cur, replace(cur, pfn_base=0), keep)
    if cur.totalram_pages is not None:
        cur = _try(cur, replace(cur, totalram_pages=None), keep)
    if cur.frames != DEFAULT_FRAMES:
        cur = _try(cur, replace(cur, frames=DEFAULT_FRAMES), keep)
    return cur


__all__ = ["minimize"]
