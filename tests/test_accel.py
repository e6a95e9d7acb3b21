"""The accelerated inflate step (vmballoon/proofs/accel.py) is k steps of the model.

From concrete ``I_LOOP`` states of the model (batched host, 4 KiB and 2 MiB pages,
finite and unlimited rates), the accelerated transition with ``acc_k = k`` must
admit exactly the runs where the model takes ``k`` successful allocations without
leaving the loop before the last, and its successor must be the abstraction of the
state the model reaches after those ``k`` steps.
"""

from __future__ import annotations

from typing import Any

import pytest
import z3

from vmballoon.core.protocol import CAP_BASIC, CAP_BATCHED, CAP_BATCHED_2M
from vmballoon.core.scenario import Response, Scenario
from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.model.machine import enter, start, step
from vmballoon.model.properties import initial_ghost, observe
from vmballoon.model.state import Loc, State
from vmballoon.proofs.abstraction import alpha
from vmballoon.proofs.accel import accelerated, make_acc_inputs
from vmballoon.proofs.encoding import FIELDS, B, make_state

SWC = 0x03000000
_KIND = dict(FIELDS)


def _const(name: str, value: int | bool) -> Any:
    kind = _KIND[name]
    if kind == B:
        return z3.BoolVal(bool(value))
    assert isinstance(kind, int)
    return z3.BitVecVal(int(value) % (1 << kind), kind)


def _loop_states(scenario: Scenario, variant: Variant) -> list[State]:
    """Every I_LOOP state of the replay of ``scenario``."""
    state = start(scenario, variant)
    out = []
    for name in scenario.steps:
        state = enter(state, name)
        while state.loc not in (Loc.IDLE, Loc.EXITED, Loc.CRASHED):
            if state.loc == Loc.I_LOOP:
                out.append(state)
            state = step(state)
    return out


def _scenario(caps: int, target: int, alloc: tuple[bool, ...]) -> Scenario:
    hv = (Response(0), Response(SWC, caps), Response(0), Response(0, target))
    return Scenario(steps=("work",), frames=8192, hv=hv, alloc=alloc)


CASES = [
    (CAP_BASIC | CAP_BATCHED, 700, ()),  # 4 KiB, unlimited rate
    (CAP_BASIC | CAP_BATCHED, 5000, (True, False)),  # batch page, then a NOSLEEP failure
    (CAP_BASIC | CAP_BATCHED | CAP_BATCHED_2M, 3000, ()),  # 2 MiB pages
]


@pytest.mark.parametrize("variant", [SEED, FIXED], ids=lambda v: v.name)
@pytest.mark.parametrize("case", CASES, ids=["4k", "rate", "2m"])
def test_accelerated_step_is_k_model_steps(variant: Variant, case: Any) -> None:
    caps, target, alloc = case
    states = _loop_states(_scenario(caps, target, alloc), variant)
    assert states
    s, a = make_state("s_"), make_acc_inputs("a_")
    step_ = accelerated(s, a, variant)
    cons, post = z3.And(*step_.cons), step_.post
    checked = admitted = 0
    for at in states[:: max(1, len(states) // 12)]:
        # the accelerated step is k *successful* allocations: no scripted failure ahead
        env = at.env
        pre = at._replace(env=env._replace(alloc_script=env.alloc_script[: env.alloc_pos]))
        f = pre.env.memory.end - 1  # a frame the k allocations do not reach
        for k in (1, 2, 7, 100, 511, 512, 513):
            # the model: k steps, each a successful allocation, all but the last staying in I_LOOP
            cur, ghost, valid = pre, initial_ghost(), True
            for j in range(k):
                if cur.loc != Loc.I_LOOP:
                    valid = False
                    break
                nxt = step(cur)
                ghost, _ = observe(cur, nxt, ghost)
                if nxt.loop.allocated != cur.loop.allocated + 1 or (
                    j < k - 1 and nxt.loc != Loc.I_LOOP
                ):
                    valid = False
                cur = nxt
            g0 = initial_ghost()
            abs_pre = alpha(pre, g0, f)
            subs = [(s[n], _const(n, v)) for n, v in abs_pre.items()]
            subs += [(a["acc_k"], z3.BitVecVal(k, 32)), (a["acc"], z3.BoolVal(True))]
            ok = z3.is_true(z3.simplify(z3.substitute(cons, *subs)))
            assert ok == valid, (k, abs_pre["l_num"], abs_pre["size"], abs_pre["target"])
            checked += 1
            if not ok:
                continue
            admitted += 1
            abs_post = alpha(cur, g0, f)
            for n in ("loc", "l_num", "l_alloc", "l_allocated", "size", "target", "n4", "n2"):
                got = z3.simplify(z3.substitute(post[n], *subs))
                assert z3.is_true(z3.simplify(got == _const(n, abs_post[n]))), (n, k, got)
    assert checked and admitted
