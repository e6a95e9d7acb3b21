"""A counterexample of the encoding and the scenario that replays it.

:class:`Trace` is what a solver model says of a run of the encoding: each step's state
(the fields of :data:`vmballoon.proofs.encoding.FIELD_NAMES`) and inputs.
:func:`to_scenario` turns it into a scenario of the contract (``spec/scenario-format.md``)
by running the model along it, so that every host answer, allocation and VMCI result
lands where the model asks for it.  BMC, the per-defect searches and progress all write
their counterexamples through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vmballoon.core.env import DEFAULT_RESPONSE, events_since
from vmballoon.core.protocol import U32_MASK, U64_MASK
from vmballoon.core.scenario import Response, Scenario
from vmballoon.core.variants import Variant
from vmballoon.model.machine import enter, start, step
from vmballoon.model.state import OPS_BASIC, Loc, State
from vmballoon.proofs.abstraction import SITE_OF_CMD


@dataclass
class Trace:
    """A counterexample of the encoding: the locations and inputs of each step."""

    states: list[dict[str, int | bool]]
    inputs: list[dict[str, int | bool]]


_STATUS_OF_CLASS = {0: 0, 1: 5, 2: 6, 3: 3}


def _response(site: str, inp: dict[str, int | bool], num: int) -> Response:
    st, res = int(inp[f"{site}_st"]), int(inp[f"{site}_res"])
    entries = None
    if site in ("BLOCK", "BUNLOCK") and inp["e_present"]:
        ent = []
        if inp.get("_f_batch"):
            ent.append(_STATUS_OF_CLASS[int(inp["f_cls"]) & 3])
        ent += [0] * int(inp["e_ok"]) + [5] * int(inp["e_ref"])
        ent += [6] * int(inp["e_free"]) + [3] * int(inp["e_warn"])
        entries = tuple(ent[: max(num, 0)][:512])
    return Response(st & U64_MASK, res & U64_MASK, entries)


@dataclass
class _Script:
    """The scenario being written: its pool, and the steps and the host's, the
    allocator's and VMCI's answers so far."""

    frames: int
    pfn_base: int
    ram_big: bool
    steps: list[str] = field(default_factory=list)
    hv: list[Response] = field(default_factory=list)
    alloc: list[bool] = field(default_factory=list)
    vmci: list[bool] = field(default_factory=list)
    f_taken: bool = False  # an allocation of the trace returns f: f must be in the pool
    misplaced: int = 0  # pages for b->page (not f) on the wrong side of 2**32 (a_hi)

    def scenario(self) -> Scenario:
        return Scenario(
            steps=tuple(self.steps),
            frames=self.frames,
            pfn_base=self.pfn_base,
            totalram_pages=(1 << 33) if self.ram_big else None,
            hv=tuple(self.hv),
            alloc=tuple(self.alloc),
            vmci=tuple(self.vmci),
        )


def _script(trace: Trace, *, across: bool = False) -> _Script:
    """The empty script of ``trace``: the pool starts at f's 2 MiB block and holds 4096
    frames, or with accelerated steps enough for every allocation to be a 2 MiB page.

    With ``across`` the pool is moved to the other side of the 32-bit PFN boundary
    (where f is not): for a trace that never allocates f and whose other pages are
    32-bit where f is not, or the reverse (the encoding's ``a_hi``)."""
    f = int(trace.states[0]["f_pfn"])
    base = f - f % 512
    ram_big = bool(trace.states[0]["ram_big"])
    bulk = sum(int(x["acc_k"]) if x.get("acc") else 1 for x in trace.inputs)
    accelerated = any(x.get("acc") for x in trace.inputs)
    frames = max(4096, (bulk + 2) * 512) if accelerated else 4096
    if across:
        top = 1 << 32
        low = min(base % top, top - frames)
        base = base + top if base < top else max(low - low % 512, 0)
    return _Script(frames, base, ram_big)


def _accelerated(state: State, k: int, sc: _Script) -> State:
    """An accelerated step (:mod:`vmballoon.proofs.accel`): ``k`` successful allocations."""
    for _ in range(k):
        sc.alloc.append(True)
        env = state.env._replace(alloc_script=tuple(sc.alloc))
        state = step(state._replace(env=env))
    return state


def _issued(state: State, nxt: State) -> list[str]:
    """The input sites of the backdoor commands the step from ``state`` to ``nxt``
    issued, in order."""
    issued = []
    for ev in events_since(nxt.env.log, state.env.log):
        if ev["ev"] == "hv":
            if ev["cmd"] == "VMCI_DOORBELL_SET":
                inv = ev["arg1"] == 0xFFFFFFFF and ev["arg2"] == 0xFFFFFFFF
                issued.append("DBINV" if inv else "DBSET")
            else:
                issued.append(SITE_OF_CMD[ev["cmd"]])
    return issued


def _basic_page(state: State) -> bool:
    """Whether the step from ``state`` allocates a page for ``b->page`` (basic ops), the
    one allocation whose PFN the encoding says fits in 32 bits or not (``a_hi``)."""
    return state.loc == Loc.I_LOOP and state.drv.ops == OPS_BASIC


def _allocated(state: State, nxt: State) -> int | None:
    """The PFN the step from ``state`` to ``nxt`` allocated (None: none, or it failed)."""
    allocs = [e for e in events_since(nxt.env.log, state.env.log) if e["ev"] == "alloc"]
    return allocs[-1]["pfn"] if allocs else None


def _answered(
    state: State, sc: _Script, inp: dict[str, int | bool], num: int
) -> tuple[State, list[Response]]:
    """The step from ``state`` with the host answering every command it issues as
    ``inp`` says, and those answers; iterated, since the commands a step issues can
    depend on the answers it gets."""
    trial: list[Response] = []
    for _ in range(4):
        env = state.env._replace(
            hv_script=(*sc.hv, *trial),
            alloc_script=(*sc.alloc, bool(inp["a_ok"])),
            vmci_script=(*sc.vmci, bool(inp["v_ok"])),
        )
        cur = state._replace(env=env)
        nxt = enter(cur, sc.steps[-1]) if state.loc == Loc.IDLE else step(cur)
        want = [_response(site, inp, num) for site in _issued(state, nxt)]
        if want == trial[: len(want)] and len(trial) == len(want):
            break
        trial = want
    return nxt, trial


def _step_along(
    state: State, sc: _Script, pre: dict[str, int | bool], inp: dict[str, int | bool]
) -> State:
    """One step of the trace from ``state`` (pre-state ``pre``, inputs ``inp``), its
    answers written into ``sc``."""
    inp = dict(inp, _f_batch=bool(pre["f_batch"]))
    nxt, trial = _answered(state, sc, inp, int(pre["l_num"]))
    sc.hv.extend(trial)
    if nxt.env.alloc_pos > state.env.alloc_pos:
        sc.alloc.append(bool(inp["a_ok"]))
        page = _allocated(state, nxt)
        if inp["a_f"]:
            sc.f_taken = True
        elif _basic_page(state) and page is not None and (page > U32_MASK) != bool(inp["a_hi"]):
            sc.misplaced += 1
    if nxt.env.vmci_pos > state.env.vmci_pos:
        sc.vmci.append(bool(inp["v_ok"]))
    env = nxt.env._replace(
        hv_script=tuple(sc.hv), alloc_script=tuple(sc.alloc), vmci_script=tuple(sc.vmci)
    )
    return nxt._replace(env=env)


def to_scenario(trace: Trace, variant: Variant) -> Scenario:
    """A scenario of the contract that drives the model along ``trace``.

    Built by running the model: each step's host answers, allocations and VMCI
    results are the trace's inputs for the commands the model actually issues.
    The pool starts at f's 2 MiB block so that f is among the first frames handed out;
    it holds 4096 frames, or with accelerated steps enough for every allocation of the
    trace to be a 2 MiB page (the encoding has no bound on free memory).  Where that
    pool hands out 32-bit PFNs where the trace's pages (not f) are above, or the
    reverse, and the trace never allocates f, the pool is moved across the 32-bit
    boundary (:func:`_script`): the model then issues the commands the trace does.
    """
    sc = _along(trace, variant, _script(trace))
    if sc.misplaced and not sc.f_taken:
        moved = _along(trace, variant, _script(trace, across=True))
        sc = moved if moved.misplaced < sc.misplaced else sc
    return sc.scenario()


def _along(trace: Trace, variant: Variant, sc: _Script) -> _Script:
    """``sc`` written by running the model along ``trace``."""
    state: State = start(sc.scenario(), variant)
    for k, inp in enumerate(trace.inputs):
        pre = trace.states[k]
        if state.loc in (Loc.EXITED, Loc.CRASHED):
            break
        if state.loc == Loc.IDLE:
            sc.steps.append(("work", "doorbell", "exit")[min(int(inp["entry"]), 2)])
        if inp.get("acc") and state.loc == Loc.I_LOOP:
            state = _accelerated(state, int(inp["acc_k"]), sc)
        else:
            state = _step_along(state, sc, pre, inp)
    while sc.hv and sc.hv[-1] == DEFAULT_RESPONSE:
        sc.hv.pop()
    return sc


__all__ = ["Trace", "to_scenario"]
