"""Property conformance (vmballoon/proofs/propconf.py): P(s) iff P-hat(alpha_f(s)) for every frame.

On model states (the witness check's steps, boundary states built by γ, targeted and
cooperative runs, the checked-in counterexamples, random runs) every one of the 13
encoded state properties and ``progress`` says of every frame what the model's says.
The issue's planted weakenings of ``vmballoon/proofs/props.py`` must be caught.
"""

from __future__ import annotations

from typing import Any

import pytest

from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.proofs import propconf, witness
from vmballoon.proofs.abstraction import alpha
from vmballoon.proofs.witness import Status

from .mutate import mutant

_STEPS: dict[str, list[witness.Concrete1]] = {}


def steps(variant: Variant) -> list[witness.Concrete1]:
    if variant.name not in _STEPS:
        _STEPS[variant.name] = witness.check(variant, keep_steps=True).steps
    return _STEPS[variant.name]


@pytest.mark.parametrize("variant", [FIXED, SEED], ids=lambda v: v.name)
def test_every_encoded_property_agrees_with_the_model(variant: Variant) -> None:
    r = propconf.check(variant, steps(variant))
    print(r.line())
    assert r.status == Status.PASSED, r.problems()
    assert sum(r.states.values()) > 1000
    assert set(r.states) == {"witness", "boundary", "targeted", "random", "neighbour"}
    # every property is seen failing somewhere, except what FIXED never reaches
    assert set(r.blind) <= {"doorbell_agreement", "progress"}
    assert r.held["progress"] > 0  # the cooperative runs reach the end of a tick


NO_LEAK = (
    '    return z3.Implies(_resting(s), z3.Implies(s["f_alloc"], z3.And(owned, whole)))',
    '    return z3.Implies(_resting(s), z3.Implies(s["f_alloc"], owned))',
)
HOST = ('    return z3.And(agree, z3.Not(s["freed_held"]))', "    return agree")


@pytest.mark.parametrize(("name", "old", "new"), [("no_leak", *NO_LEAK), ("host_agreement", *HOST)])
@pytest.mark.parametrize("variant", [FIXED, SEED], ids=lambda v: v.name)
def test_kills_a_weakened_property(name: str, old: str, new: str, variant: Variant) -> None:
    """The issue's demonstrations: the 2 MiB-block clause of no_leak, the freed_held clause
    of host_agreement removed.  verify runs this check on both variants; the weakened
    no_leak is seen on SEED's reachable states (its no_2m_without_batching defect puts
    2 MiB pages on the 4 KiB list) and on FIXED's neighbour states (a 2 MiB page moved to
    the 4 KiB list), the weakened host_agreement on witness steps of both."""
    with mutant("vmballoon.proofs.props", old, new) as m:
        r = propconf.check(variant, steps(variant), props=m.PROPERTIES, boundary=False)
    caught = any(x.prop == name for x in r.failing)
    assert r.status == Status.FAILED and caught, r.line()


def test_a_stricter_property_on_a_reached_state_fails() -> None:
    """The other direction: an encoded property stricter than the model's (no_leak also
    forbidding any allocated frame between ticks) disagrees on reached states."""
    old, _ = NO_LEAK
    new = '    return z3.Implies(_resting(s), z3.Not(s["f_alloc"]))'
    with mutant("vmballoon.proofs.props", old, new) as m:
        r = propconf.check(FIXED, [], props=m.PROPERTIES, boundary=False, random_runs=5)
    assert any(x.prop == "no_leak" and not x.unsound for x in r.failing), r.line()


def test_alpha_frames_is_alpha_of_each_frame() -> None:
    """The batched abstraction equals :func:`alpha` frame by frame."""
    from vmballoon.proofs.conformance import targeted_scenarios, transitions_of

    n = 0
    for sc in targeted_scenarios().values():
        for _prev, nxt, _g0, g1, _found in transitions_of(sc, FIXED, 60):
            frames = propconf.frames_of(nxt, g1)
            got = propconf.alpha_frames(nxt, g1, frames, set(), set(), False)
            assert got == [alpha(nxt, g1, f) for f in frames]
            n += 1
    assert n > 50


def test_progress_is_compared_after_a_cooperative_tick() -> None:
    """A planted wrong progress predicate (the range shifted by one) is caught on the
    cooperative runs, where the model's progress applies."""
    from vmballoon.proofs import progress

    ck = propconf.Checker(FIXED)
    orig = progress.progress_holds

    def shifted(s: dict[str, Any], t: Any) -> Any:
        return orig(s, t + 1)

    progress.progress_holds = shifted
    try:
        bad = propconf.Checker(FIXED)
    finally:
        progress.progress_holds = orig
    for c in (ck, bad):
        for sc in propconf.cooperative_scenarios().values():
            c.run(sc, FIXED, "targeted")
    assert ck.out.status == Status.PASSED and ck.out.held["progress"] > 0
    assert any(m.prop == "progress" for m in bad.out.failing)


REFUSED_EMPTY = (
    '    empty = z3.And(s["n_ref0"] == bv32(0), s["n_ref1"] == bv32(0))',
    '    empty = z3.And(s["n_ref0"] == bv32(0))',
)
OWNERSHIP_BPAGE = (
    '        z3.Not(z3.And(lst, s["f_bpage"])),\n',
    "",
)


@pytest.mark.parametrize(
    ("name", "old", "new"), [("refused_bounds", *REFUSED_EMPTY), ("ownership", *OWNERSHIP_BPAGE)]
)
def test_neighbour_states_catch_a_clause_no_run_violates(name: str, old: str, new: str) -> None:
    """A clause whose violation no run reaches on FIXED (the 2 MiB refused list empty
    between ticks; the batch page on a balloon list) dropped from the encoded property:
    the states one edit away from reached ones (vmballoon/proofs/neighbours.py) show it,
    and without them the check is blind to it."""
    with mutant("vmballoon.proofs.props", old, new) as m:
        r = propconf.check(FIXED, [], props=m.PROPERTIES, boundary=False, random_runs=5)
        blind = propconf.check(
            FIXED, [], props=m.PROPERTIES, boundary=False, random_runs=5, edit=False
        )
    assert any(x.prop == name and x.source == "neighbour" and x.unsound for x in r.failing), (
        r.line()
    )
    assert not any(x.prop == name for x in blind.failing), blind.line()


def test_progress_predicate_says_the_target_is_the_hosts() -> None:
    """``progress_holds`` without ``b->target == T`` (as it was until a neighbour state
    showed it: a state at IDLE after a cooperative tick whose target was moved by one) is
    weaker than the model's progress and fails the check."""
    from vmballoon.proofs import progress

    orig = progress.progress_holds

    def no_target(s: dict[str, Any], t: Any) -> Any:
        import z3

        from vmballoon.model.state import Loc
        from vmballoon.proofs.encoding import loc_val

        done = z3.And(s["loc"] == loc_val(Loc.IDLE), z3.Not(s["reset"]))
        return z3.Implies(done, progress.in_range(s["size"], t, strict=False))

    progress.progress_holds = no_target
    try:
        bad = propconf.Checker(FIXED)
    finally:
        progress.progress_holds = orig
    for sc in propconf.cooperative_scenarios().values():
        bad.run(sc, FIXED, "targeted")
    assert any(m.prop == "progress" and m.unsound for m in bad.out.failing), bad.out.line()
