"""A host that answers GUEST_ID with ERROR_RESET on every tick keeps every tick in
``vmballoon_reset``: GET_TARGET is never sent and the balloon never moves.  ``progress``
is claimed only under the named host assumption ``no_reset_request``
(vmballoon/core/assumptions.py, and its constraint in vmballoon/proofs/progress.py COOPERATIVE):
the executable predicate marks every such tick as outside the cooperative environment,
so the model's ``progress`` does not judge it, and the proof's obligation "no
cooperative transition schedules a reset" is what the assumption buys."""

from __future__ import annotations

from vmballoon import model
from vmballoon.core import assumptions as asm
from vmballoon.core.protocol import CAP_BASIC, ERROR_RESET, SUCCESS_WITH_CAPABILITIES
from vmballoon.core.scenario import Response, Scenario
from vmballoon.core.variants import FIXED
from vmballoon.model.machine import enter, start, step
from vmballoon.model.properties import check_trace, initial_ghost, observe
from vmballoon.model.state import Loc

TICKS = 6


def endless_resets() -> Scenario:
    """Every tick (a reset: the doorbell cleared, START, GUEST_ID): START grants the basic
    commands, GUEST_ID is answered ERROR_RESET."""
    hv = [
        Response(0, 0, None),
        Response(SUCCESS_WITH_CAPABILITIES, CAP_BASIC, None),
        Response(ERROR_RESET, 0, None),
    ]
    return Scenario(steps=("work",) * TICKS, hv=tuple(hv * TICKS))


def test_endless_guest_id_resets_never_send_get_target() -> None:
    log = model.replay(endless_resets(), FIXED)
    cmds = [ev["cmd"] for ev in log["events"] if ev["ev"] == "hv"]
    assert cmds == ["VMCI_DOORBELL_SET", "START", "GUEST_ID"] * TICKS  # never GET_TARGET


def test_every_such_tick_breaks_no_reset_request_so_progress_does_not_judge_it() -> None:
    sc = endless_resets()
    state, ghost = start(sc, FIXED), initial_ghost()
    broken_per_tick = []
    for name in sc.steps:
        nxt = enter(state, name)
        while True:
            ghost, _ = observe(state, nxt, ghost)
            state = nxt
            if state.loc in (Loc.IDLE, Loc.EXITED, Loc.CRASHED):
                break
            nxt = step(state)
        broken_per_tick.append({n for n, _ in ghost.tick_broken})
    assert all("no_reset_request" in b for b in broken_per_tick), broken_per_tick
    # the documented verdict: progress is not violated (the environment is not cooperative)
    assert not [v for v in check_trace(sc, FIXED) if v.prop == "progress"]


def test_the_assumption_and_its_constraint_exist_under_one_name() -> None:
    from vmballoon.proofs.progress import COOPERATIVE

    assert "no_reset_request" in asm.BY_NAME and "no_reset_request" in COOPERATIVE
    view = asm.StepView(commands=(asm.Command("GUEST_ID", ERROR_RESET, 0),))
    guest = asm.Guest(4096, 0, 4096)
    assert asm.BY_NAME["no_reset_request"].check(guest, view) == "GUEST_ID answered ERROR_RESET"
    other = asm.StepView(commands=(asm.Command("GUEST_ID", 1, 0),))  # any other failure: fine
    assert asm.BY_NAME["no_reset_request"].check(guest, other) is None


def test_an_error_reset_on_the_doorbells_clearing_breaks_nothing() -> None:
    """The doorbell is cleared at the start of a reset (line 1017), before the reset
    clears ``reset_required`` (line 1092): ERROR_RESET there is harmless, the tick reads
    its target, and no_reset_request does not exclude it."""
    hv = (
        Response(ERROR_RESET, 0, None),
        Response(SUCCESS_WITH_CAPABILITIES, CAP_BASIC, None),
        Response(0, 0, None),
        Response(0, 0, None),
    )
    sc = Scenario(steps=("work",), hv=hv)
    log = model.replay(sc, FIXED)
    assert "GET_TARGET" in [ev["cmd"] for ev in log["events"] if ev["ev"] == "hv"]
    view = asm.StepView(
        commands=(asm.Command("VMCI_DOORBELL_SET", ERROR_RESET, 0, invalidates=True),)
    )
    assert asm.BY_NAME["no_reset_request"].check(asm.Guest(4096, 0, 4096), view) is None
