"""γ: from an abstract state and step inputs of the encoding to a concrete model state.

The conformance check (:mod:`vmballoon.proofs.witness`) asks Z3 for abstract states and inputs
that take a given branch of the encoding; :func:`concretize` turns such a witness
into a model :class:`~vmballoon.model.state.State` (with its
:class:`~vmballoon.model.properties.Ghost`
and the frame ``f``) whose abstraction is the witness state, and whose environment
(scripted host answers, allocator, VMCI) answers the next step the way the
witness inputs say.  The model then takes that step for real.

:func:`representable` is the set of abstract states γ can build (as a Z3 formula):
the facts α always satisfies by construction (``f`` on one list at most, a cursor
inside the list it walks, a batch entry only inside a loop, ...), plus finite
bounds on the page lists (a concrete list is built page by page).  A state outside
it has no concrete counterpart at all (:doc:`spec/encoding-argument.md`), except
for the bounds, which the reviewed list of unreachable branches
(``spec/conformance-unreachable.json``) accounts for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import z3

from vmballoon.core import intervals as iv
from vmballoon.core.env import DEFAULT_RESPONSE, Env, Memory
from vmballoon.core.protocol import (
    CMD_BATCHED_2M_LOCK,
    CMD_BATCHED_2M_UNLOCK,
    CMD_BATCHED_LOCK,
    CMD_BATCHED_UNLOCK,
    CMD_GET_TARGET,
    CMD_GUEST_ID,
    CMD_LOCK,
    CMD_START,
    CMD_UNLOCK,
    CMD_VMCI_DOORBELL_SET,
    ERROR_PPN_PINNED,
    ERROR_RESET,
    PAGE_SHIFT,
    PAGES_PER_2M,
    U32_MASK,
    U64_MASK,
    VMCI_INVALID_ID,
    to_int32,
)
from vmballoon.core.scenario import Response
from vmballoon.core.variants import Variant
from vmballoon.model import listed as ls
from vmballoon.model.plist import PList
from vmballoon.model.properties import Ghost
from vmballoon.model.state import (
    DEFLATE_LOCS,
    INFLATE_LOCS,
    LOOP_LOCS,
    OPS_BASIC,
    OPS_BATCHED,
    STAT,
    STOPPED,
    Driver,
    Loc,
    Loop,
    State,
)

Values = dict[str, int | bool]

NONE, L4, L2, R4, R2 = 0, 1, 2, 3, 4
CLS_OK, CLS_REFUSE, CLS_FREE, CLS_WARN = 0, 1, 2, 3
STATUS_OF_CLASS = {CLS_OK: 0, CLS_REFUSE: ERROR_PPN_PINNED, CLS_FREE: ERROR_RESET, CLS_WARN: 1}
"""A per-page status of each class the driver distinguishes (lines 654-681)."""

LIST_BOUND = 1100
"""Longest page list γ builds (a concrete list is built page by page)."""
BATCH_BOUND = 512
"""A batch holds at most 512 entries: the batch page is one 4 KiB page (lines 165-176)."""

ENTRY_NAMES = ("work", "doorbell", "exit")


class NotConcretizable(Exception):
    """The witness has no concrete counterpart that γ can build."""


# -- the domain of γ, as a Z3 formula -----------------------------------------------------


def _in(s: dict[str, Any], locs: frozenset[Loc]) -> Any:
    return z3.Or([s["loc"] == z3.BitVecVal(int(x), 8) for x in locs])


def representable(s: dict[str, Any]) -> Any:
    """The abstract states γ can build: α's structural facts and finite list bounds."""
    from vmballoon.proofs.encoding import well_formed

    def bv(v: int, w: int = 32) -> Any:
        return z3.BitVecVal(v, w)

    fl = s["f_list"]
    deflate, loops = _in(s, DEFLATE_LOCS), _in(s, LOOP_LOCS)
    is2m = s["l_is2m"]
    cur4 = z3.If(z3.And(deflate, z3.Not(is2m)), s["ncur"], bv(0))
    cur2 = z3.If(z3.And(deflate, is2m), s["ncur"], bv(0))
    fhi = z3.UGT(s["f_pfn"], bv(U32_MASK, 64))
    cs = [
        well_formed(s),
        z3.Not(s["bad_free"]),
        z3.Not(s["freed_held"]),
        z3.Not(s["proto_bad"]),
        *(z3.ULE(s[n], bv(LIST_BOUND)) for n in ("n4", "n2", "r4", "r2")),
        z3.If(deflate, z3.ULE(s["ncur"], z3.If(is2m, s["n2"], s["n4"])), s["ncur"] == bv(0)),
        z3.Implies(s["f_cur"], z3.And(deflate, s["ncur"] != bv(0))),
        z3.Implies(z3.And(s["f_cur"], is2m), fl == bv(L2, 8)),
        z3.Implies(z3.And(s["f_cur"], z3.Not(is2m)), fl == bv(L4, 8)),
        z3.Implies(z3.And(fl == bv(L4, 8), z3.Not(s["f_cur"])), z3.UGT(s["n4"], cur4)),
        z3.Implies(z3.And(fl == bv(L2, 8), z3.Not(s["f_cur"])), z3.UGT(s["n2"], cur2)),
        z3.Implies(fl == bv(R4, 8), s["r4"] != bv(0)),
        z3.Implies(fl == bv(R2, 8), s["r2"] != bv(0)),
        z3.Implies(s["f_o9"], z3.And(s["f_alloc"], z3.Extract(8, 0, s["f_pfn"]) == bv(0, 9))),
        z3.Implies(s["page_null"], z3.Not(z3.Or(s["page_hi"], s["page_eq_batch"], s["f_page"]))),
        z3.Implies(s["f_page"], s["page_hi"] == fhi),
        z3.Implies(s["page_eq_batch"], s["bpage"]),
        z3.Implies(s["f_bpage"], s["bpage"]),
        z3.Implies(s["f_page"], s["page_eq_batch"] == s["f_bpage"]),
        z3.Implies(z3.And(s["page_eq_batch"], s["f_bpage"]), s["f_page"]),
        z3.Implies(z3.And(s["page_eq_batch"], s["f_bpage"]), s["page_hi"] == fhi),
        z3.Implies(s["f_batch"], z3.And(loops, s["l_num"] != bv(0))),
        z3.Implies(
            z3.And(loops, s["ops"] == bv(1, 8)),
            s["f_batch"] == z3.And(s["l_num"] != bv(0), s["f_page"]),
        ),
        # a batch has at most 512 entries (the batched ones live in one 4 KiB page);
        # the basic "batch" has one (batch_max_pages = 1): num_pages never wraps
        z3.Implies(loops, z3.ULE(s["l_num"], bv(BATCH_BOUND))),
        # line 917 divides by rate_alloc: the C (and the model) have no step from 0;
        # the invariant rate_bounds keeps it at least RATE_ALLOC_MIN
        s["rate_alloc"] != bv(0),
        # supported_page_sizes is only ever 0 (init), 1 or 2 (lines 344-347): the model
        # indexes its two page-size lists with it
        z3.ULE(s["supported"], bv(2)),
        # f in the batch and still in the cursor: taking it again puts it twice in the
        # batch, which α cannot represent; excluded by the inductive invariant (ownership)
        z3.Not(z3.And(s["f_batch"], s["f_cur"])),
        # pages in flight and the batch page are allocated, and the batch page is no
        # balloon page (invariant: ownership, no_leak); the encoding tracks one role of f
        z3.Implies(s["f_batch"], s["f_alloc"]),
        z3.Implies(s["f_bpage"], z3.And(s["f_alloc"], fl == bv(NONE, 8), z3.Not(s["f_batch"]))),
    ]
    return z3.And(cs)


# -- γ ------------------------------------------------------------------------------------


class _Frames:
    """Fresh 512-aligned frames on the far side of ``f`` (never in ``f``'s 2 MiB block)."""

    def __init__(self, f: int) -> None:
        self.f = f
        self.lo = (1 << 31) if f < (1 << 31) else PAGES_PER_2M
        self.hi = (1 << 32) if f >= (1 << 33) else (1 << 41)
        self.used: list[int] = []

    def take(self, hi: bool) -> int:
        if hi:
            p, self.hi = self.hi, self.hi + PAGES_PER_2M
        else:
            p, self.lo = self.lo, self.lo + PAGES_PER_2M
        self.used.append(p)
        return p


def _runs(values: list[int]) -> tuple[tuple[int, int], ...]:
    """Sorted distinct integers as runs ``(start, end)``."""
    out: list[tuple[int, int]] = []
    for v in values:
        if out and out[-1][1] == v:
            out[-1] = (out[-1][0], v + 1)
        else:
            out.append((v, v + 1))
    return tuple(out)


def _plist(pfns: list[int]) -> PList:
    out: PList = None
    for p in reversed(pfns):
        out = (p, out)
    return out


@dataclass
class Concrete:
    """A model state, its ghost, the watched frame and the entry point to start (at IDLE)."""

    state: State
    ghost: Ghost
    f: int
    entry: str


class _Host:
    """Answers each backdoor command from the witness inputs of its call site."""

    def __init__(self, inputs: Values, entries: dict[str, tuple[int, ...] | None]) -> None:
        self.inputs = inputs
        self.entries = entries
        self.answers: list[Response] = []

    def with_batch_page(self, pfn: int) -> _Host:
        return self

    def answer(
        self, cmd: int, arg1: int, arg2: int, batch: tuple[int, ...] | None
    ) -> tuple[Response, _Host]:
        site = site_of(cmd, arg1, arg2)
        r = Response(
            int(self.inputs[f"{site}_st"]),
            int(self.inputs[f"{site}_res"]),
            self.entries.get(site),
        )
        self.answers.append(r)
        return r, self


def site_of(cmd: int, arg1: int, arg2: int) -> str:
    """The encoding's input site of a backdoor command."""
    if cmd == CMD_VMCI_DOORBELL_SET:
        invalid = arg1 == VMCI_INVALID_ID and arg2 == VMCI_INVALID_ID
        return "DBINV" if invalid else "DBSET"
    return {
        CMD_START: "START",
        CMD_GET_TARGET: "GET_TARGET",
        CMD_LOCK: "LOCK",
        CMD_UNLOCK: "UNLOCK",
        CMD_GUEST_ID: "GUEST_ID",
        CMD_BATCHED_LOCK: "BLOCK",
        CMD_BATCHED_2M_LOCK: "BLOCK",
        CMD_BATCHED_UNLOCK: "BUNLOCK",
        CMD_BATCHED_2M_UNLOCK: "BUNLOCK",
    }[cmd]


def _batch(a: Values, i: Values, f: int, frames: _Frames, lock: bool) -> tuple[list[int], Any]:
    """The batch in flight (oldest first) and the per-page statuses the host writes."""
    n = int(a["l_num"])
    counts = [int(i["e_ok"]), int(i["e_ref"]), int(i["e_free"]), int(i["e_warn"])]
    fb = bool(a["f_batch"])
    others: list[int] = []
    if sum(counts) + int(fb) == n:
        for cls, c in enumerate(counts):
            others += [cls] * c
    else:  # the witness inputs do not describe this batch (no command reads it)
        others = [CLS_OK] * (n - int(fb))
    classes = sorted(others, key=lambda c: c != CLS_REFUSE)  # refusable entries first
    rank = min(int(i["f_rank"]), sum(1 for c in classes if c == CLS_REFUSE))
    del lock
    pfns = [frames.take(False) for _ in classes]
    if fb:
        pfns.insert(rank, f)
        classes.insert(rank, int(i["f_cls"]))
    statuses = tuple(STATUS_OF_CLASS.get(c, 1) for c in classes)
    return pfns, statuses


def _pages(a: Values, f: int, frames: _Frames) -> tuple[int | None, int | None]:
    """``b->page`` and the batch page."""
    page: int | None = None
    if not a["page_null"]:
        page = f if a["f_page"] else frames.take(bool(a["page_hi"]))
    bpage: int | None = None
    if a["bpage"]:
        if a["f_bpage"]:
            bpage = f
        elif a["page_eq_batch"]:
            bpage = page
        else:
            bpage = frames.take(False)
    return page, bpage


def _build(
    n: int, with_f: bool, two_m: bool, f: int, frames: _Frames, blocks: list[int]
) -> list[int]:
    """A list of ``n`` pages, ``f`` at its head when ``with_f``, the others fresh (2 MiB
    ones recorded in ``blocks``)."""
    out = [frames.take(False) for _ in range(n - int(with_f))]
    if with_f:
        out.insert(0, f)
    if two_m:
        blocks.extend(p for p in out if p != f)
    return out


def _cursor(ncur: int, in_cur: bool, i: Values, f: int, frames: _Frames) -> list[int]:
    """The ``ncur`` pages a deflate has still to walk, ``f`` among them when ``in_cur``
    (at the head or second, as the witness inputs say)."""
    cur: list[int] = []
    if ncur:
        head_f = in_cur and (bool(i["h_f"]) or ncur == 1)
        cur.append(f if head_f else frames.take(bool(i["h_hi"])))
        if in_cur and not head_f:
            cur.append(f)
        cur += [frames.take(False) for _ in range(ncur - len(cur))]
    return cur


def _lists(
    loc: Loc, a: Values, i: Values, f: int, frames: _Frames, blocks: list[int]
) -> tuple[list[list[int]], list[int] | None, list[list[int]]]:
    """The two balloon lists, the cursor a deflate walks (part of the list it walks) and
    the two refused lists."""
    deflate, is2m, fl = loc in DEFLATE_LOCS, bool(a["l_is2m"]), int(a["f_list"])
    ncur = int(a["ncur"])
    cursor: list[int] | None = None
    lists: list[list[int]] = []
    for idx, (cnt, tag) in enumerate(((int(a["n4"]), L4), (int(a["n2"]), L2))):
        walked = deflate and int(is2m) == idx
        in_cur = walked and bool(a["f_cur"])
        rest = cnt - (ncur if walked else 0)
        if rest < 0:
            raise NotConcretizable("cursor longer than its list")
        lists.append(_build(rest, fl == tag and not in_cur, bool(idx), f, frames, blocks))
        if walked:
            cur = _cursor(ncur, in_cur, i, f, frames)
            if bool(idx):
                blocks.extend(p for p in cur if p != f)
            cursor = cur
    refused = [
        _build(int(a["r4"]), fl == R4, False, f, frames, blocks),
        _build(int(a["r2"]), fl == R2, True, f, frames, blocks),
    ]
    return lists, cursor, refused


def _in_flight(
    loc: Loc, a: Values, i: Values, f: int, frames: _Frames, blocks: list[int]
) -> tuple[PList, dict[str, tuple[int, ...] | None]]:
    """The batch in flight (the loop's ``fill``) and the per-page statuses the host
    answers the batched command with."""
    fill: PList = None
    entries: dict[str, tuple[int, ...] | None] = {}
    if loc in LOOP_LOCS and a["ops"] != 1 and int(a["l_num"]) > 0:
        pfns, statuses = _batch(a, i, f, frames, loc in INFLATE_LOCS)
        if a["l_is2m"]:
            blocks.extend(p for p in pfns if p != f)
        for p in pfns:
            fill = ((p << PAGE_SHIFT) & U64_MASK, fill)
        if i["e_present"]:
            entries["BLOCK" if loc in INFLATE_LOCS else "BUNLOCK"] = statuses
    elif i["e_present"]:
        entries["BLOCK" if loc in INFLATE_LOCS else "BUNLOCK"] = ()
    return fill, entries


def _allocated(
    loc: Loc, a: Values, i: Values, f: int, page: int | None, frames: _Frames
) -> int | None:
    """The frame the next allocation returns (None: the allocation fails)."""
    if not i["a_ok"]:
        return None
    if i["a_f"]:
        if a["f_alloc"]:
            raise NotConcretizable("the allocator cannot return a frame it has out")
        return f
    if i["a_eqpage"] and loc == Loc.R_OPS:
        if page is None or page == f:
            raise NotConcretizable("a stale b->page needs a page other than f")
        return page
    return frames.take(bool(i["a_hi"]))


def _memory(
    loc: Loc, a: Values, f: int, target: int | None, frames: _Frames, blocks: list[int]
) -> Memory:
    """The guest's memory: ``target`` free for the next allocation (its 2 MiB block at
    I_LOOP on 2 MiB pages), ``f`` free, in a handed-out block or out of the pool as
    ``a`` says, and the order-9 blocks handed out."""
    order9 = loc == Loc.I_LOOP and bool(a["l_is2m"])
    free: list[tuple[int, int]] = []
    if target is not None:
        free.append((target, target + (PAGES_PER_2M if order9 else 1)))
    if target == f and order9 and f % PAGES_PER_2M:
        raise NotConcretizable("a 2 MiB allocation returns an aligned frame")
    base = 0
    if not a["f_alloc"] and target != f:
        if f % PAGES_PER_2M:
            blocks.append(f - f % PAGES_PER_2M)  # f inside a block: not a block's first frame
        elif target is None or target < f:
            free.append((f, f + 1))
        elif all(p > f for p in frames.used):
            base = f + 1  # f outside the pool
        else:
            raise NotConcretizable("f free below the frame the allocator must return")
    elif a["f_alloc"] and a["f_o9"]:
        blocks.append(f)
    free.sort()
    blocks_runs = _runs(sorted({b >> 9 for b in blocks}))
    free_runs: tuple[tuple[int, int], ...] = ()
    for s_, e_ in free:
        free_runs = iv.add(free_runs, s_, e_)
    return Memory(base, 1 << 52, free_runs, blocks_runs, ())


def _listed(every: list[int]) -> ls.Listed:
    """The set of listed frames of ``every`` page on a list (each on one list only)."""
    if len(set(every)) != len(every):
        raise NotConcretizable("a page on two lists")
    aligned = sorted(p >> 9 for p in every if p % PAGES_PER_2M == 0)
    listed: ls.Listed = (_runs(aligned), ())
    for p in every:
        if p % PAGES_PER_2M:
            listed = ls.add(listed, p)
    return listed


def _driver(
    a: Values,
    lists: list[list[int]],
    refused: list[list[int]],
    bpage: int | None,
    page: int | None,
    listed: ls.Listed,
) -> Driver:
    """The driver's state ``struct vmballoon`` of ``a`` with its pages."""
    ops = {0: None, 1: OPS_BASIC, 2: OPS_BATCHED}[int(a["ops"])]
    return Driver(
        size=int(a["size"]),
        target=int(a["target"]),
        rate_alloc=int(a["rate_alloc"]),
        slow_allocation_cycles=int(a["slow"]),
        reset_required=bool(a["reset"]),
        capabilities=int(a["caps"]),
        supported_page_sizes=int(a["supported"]),
        batch_max_pages=int(a["batch_max"]),
        ops=ops,
        pages=(_plist(lists[0]), _plist(lists[1])),
        refused=(_plist(refused[0]), _plist(refused[1])),
        n_refused=(int(a["n_ref0"]), int(a["n_ref1"])),
        batch_page=bpage,
        page=page,
        doorbell=(0, 1) if a["doorbell"] else None,
        warned=bool(a["warned"]),
        listed=listed,
    )


def _loop(a: Values, fill: PList, cursor: list[int] | None) -> Loop:
    """The locals of the inflate or deflate loop of ``a``."""
    return Loop(
        rate=int(a["l_rate"]),
        allocations=int(a["l_alloc"]),
        num_pages=int(a["l_num"]),
        error=to_int32(int(a["l_err"])),
        cansleep=bool(a["l_cansleep"]),
        is_2m=bool(a["l_is2m"]),
        fill=fill,
        cursor=_plist(cursor) if cursor else None,
        readded=None,
        allocated=int(a["l_allocated"]),
    )


def _env(a: Values, i: Values, mem: Memory, entries: dict[str, tuple[int, ...] | None]) -> Env:
    """The environment answering the next step as ``i`` says: the host, the allocator
    and VMCI."""
    return Env(
        hv_script=(),
        hv_pos=0,
        alloc_script=(bool(i["a_ok"]),),
        alloc_pos=0,
        vmci_script=(bool(i["v_ok"]),),
        vmci_pos=0,
        vmci_created=1 if a["doorbell"] else 0,
        memory=mem,
        totalram=(1 << 33) if a["ram_big"] else (1 << 20),
        log=None,
        host=_Host(i, entries),  # type: ignore[arg-type]
    )


def concretize(loc: Loc, a: Values, i: Values, variant: Variant) -> Concrete:
    """γ(a) at ``loc``, with an environment answering the next step as ``i`` says."""
    if loc in STOPPED:
        raise NotConcretizable("nothing runs after exit or a crash")
    f = int(a["f_pfn"])
    frames = _Frames(f)
    blocks: list[int] = []  # first frames of order-9 blocks handed out
    # fresh frames are taken in this order: the pages, the lists, the batch, the allocation
    page, bpage = _pages(a, f, frames)
    lists, cursor, refused = _lists(loc, a, i, f, frames, blocks)
    fill, entries = _in_flight(loc, a, i, f, frames, blocks)
    target = _allocated(loc, a, i, f, page, frames)
    mem = _memory(loc, a, f, target, frames, blocks)
    listed = _listed([p for lst in (*lists, *refused, cursor or []) for p in lst])
    drv = _driver(a, lists, refused, bpage, page, listed)
    env = _env(a, i, mem, entries)
    entry = ENTRY_NAMES[int(i["entry"])] if loc == Loc.IDLE and int(i["entry"]) <= 2 else "work"
    running = "" if loc == Loc.IDLE else "work"
    state = State(loc, drv, _loop(a, fill, cursor), (0,) * STAT["_len"], env, variant, running)
    ghost = Ghost(
        held=frozenset({f}) if a["f_host"] else frozenset(),
        negotiated=int(a["neg"]),
        doorbell_ok=bool(a["db_ok"]),
        target_ok=bool(a["target_ok"]),
        target_written=drv.target,  # with target_ok false, what the failed command wrote
    )
    return Concrete(state, ghost, f, entry)


def scripted(c: Concrete, answers: list[Response]) -> Concrete:
    """``c`` with the host's answers of a first run as the scenario's script."""
    env = c.state.env._replace(hv_script=tuple(answers), host=None)
    return Concrete(c.state._replace(env=env), c.ghost, c.f, c.entry)


__all__ = [
    "BATCH_BOUND",
    "DEFAULT_RESPONSE",
    "LIST_BOUND",
    "Concrete",
    "NotConcretizable",
    "concretize",
    "representable",
    "scripted",
    "site_of",
]
