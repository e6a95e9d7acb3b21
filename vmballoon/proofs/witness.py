"""Branch- and boundary-complete conformance of the encoding with the model.

For every transition of the encoding (:mod:`vmballoon.proofs.encoding`) this module lists
*targets*, each a formula over the pre-state and the inputs of one step:

* ``branch``: every ``tx.when(c)`` taken and not taken (``pc ∧ c``, ``pc ∧ ¬c``
  with ``pc`` the path condition where it is entered);
* ``update``: every guarded update (``tx.set``/``tx.flag`` under its path condition),
  and, for a Boolean update, its new value true and false (``value``);
* ``mcdc``: every Boolean input, and every narrow comparison on an input (a status
  class, an entry point), true and false where it decides a condition or a Boolean
  update;
* ``boundary``: every comparison ``a ⋈ b`` of 32 or 64 bits met on a path, at
  ``a = b - 1``, ``a = b`` and ``a = b + 1`` (modular: this includes the wrap points
  ``0`` and ``2**w - 1``);
* ``decisive``: the same three points where, in addition, the comparison decides
  the value of the condition or update it is part of, and every Boolean state field
  or input, true and false, where it decides a condition or Boolean update (MC/DC);
  one that no state reaches is counted as *masked* (a plain target stands for it);
* ``wrap``: every addition, subtraction and constant multiplication of 32 or 64
  bits met on a path, overflowing.

For each target Z3 looks for a witness: a state γ can build
(:func:`vmballoon.proofs.concretize.representable`) and inputs that satisfy the step's
constraints and the target.  The witness becomes a concrete model state
(:func:`vmballoon.proofs.concretize.concretize`), the model takes the step, and the step is
checked both ways (:class:`vmballoon.proofs.conformance.Conformance`): the encoding admits
the model's step (its input constraints hold on the inputs read off the concrete
step) and the encoding's successor of α(pre) is α(post).  A target counts as
*witnessed* only when it holds on the concrete pre-state and the inputs read off
the concrete step, so coverage is measured on what the model did, not on what
the solver said.  Targets no representable state reaches are *unsatisfiable*;
each must be explained by a rule of the reviewed list
``spec/conformance-unreachable.json`` (and every rule must explain one).

:func:`check` returns a :class:`Report`; it passes when every satisfiable target
is witnessed, no witnessed step disagrees, every unsatisfiable target is
explained, and no abstraction fails (``NotRepresentable``).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import z3

from vmballoon.core.specdata import spec_dir
from vmballoon.core.variants import Variant
from vmballoon.model.machine import enter
from vmballoon.model.machine import step as model_step
from vmballoon.model.properties import observe_frames
from vmballoon.model.state import Loc, State
from vmballoon.proofs import encoding as default_encoding
from vmballoon.proofs.abstraction import NotRepresentable, alpha, step_inputs
from vmballoon.proofs.concretize import (
    Concrete,
    NotConcretizable,
    concretize,
    representable,
    scripted,
)
from vmballoon.proofs.solver import qfbv_solver, solver
from vmballoon.proofs.status import Status
from vmballoon.proofs.zeval import Program, nodes

if TYPE_CHECKING:
    from vmballoon.proofs.conformance import Conformance

Expr = Any
UNREACHABLE = spec_dir() / "conformance-unreachable.json"
SKIPPED = (Loc.EXITED, Loc.CRASHED)
"""Locations without a model transition: nothing runs after exit or a crash."""
WIDE = 32
QF_BV = True
"""Comparisons and arithmetic of at least this many bits get boundary and wrap targets."""


class TargetStatus(Enum):
    """What the search found for one target."""

    OPEN = "open"
    WITNESSED = "witnessed"  # by a concrete model step that does not crash
    CRASH_ONLY = "crash-only"  # no non-crashing step meets it; a crashing one does
    UNSAT = "unsat"  # no representable state meets it
    UNKNOWN = "unknown"  # the solver gave up: never counted as witnessed
    UNWITNESSED = "sat-unwitnessed"  # satisfiable, but no witness agreed with the target


@dataclass
class Target:
    """One branch, update, boundary or wrap point of one transition."""

    loc: Loc
    kind: str  # branch / update / mcdc / value / boundary / decisive / wrap
    desc: str
    expr: Expr
    status: TargetStatus = TargetStatus.OPEN


# -- the targets of a transition -------------------------------------------------------------


def _brief(e: Expr, depth: int = 3) -> str:
    """``e`` as an s-expression cut at ``depth`` (deeper terms: ``_``)."""
    if z3.is_const(e) or z3.is_bv_value(e):
        return str(e)
    if depth == 0:
        return "_"
    args = " ".join(_brief(c, depth - 1) for c in e.children())
    name = e.decl().name()
    if z3.is_app_of(e, z3.Z3_OP_EXTRACT):
        name = "extract{}:{}".format(*e.decl().params())
    return f"({name} {args})" if args else name


def _short(e: Expr, n: int = 110) -> str:
    s = _brief(e)
    return s if len(s) <= n else s[: n - 3] + "..."


def _site(enc_file: str) -> str:
    """Where in the encoding the current call comes from: the chain of its functions."""
    names: list[str] = []
    fr = sys._getframe(2)
    while fr is not None:
        code = fr.f_code
        if code.co_filename == enc_file and code.co_name not in (
            "when",
            "set",
            "flag",
            "assume",
            "goto",
            "crash",
            "__enter__",
            "successor",
        ):
            names.append(code.co_name)
        if code.co_name == "successor" and code.co_filename == enc_file:
            break
        fr = fr.f_back  # type: ignore[assignment]
    return ">".join(reversed(names))


_CMP_OPS = frozenset(
    {
        z3.Z3_OP_ULEQ,
        z3.Z3_OP_ULT,
        z3.Z3_OP_UGEQ,
        z3.Z3_OP_UGT,
        z3.Z3_OP_SLEQ,
        z3.Z3_OP_SLT,
        z3.Z3_OP_SGEQ,
        z3.Z3_OP_SGT,
        z3.Z3_OP_EQ,
    }
)
_AR_OPS = frozenset({z3.Z3_OP_BADD, z3.Z3_OP_BSUB, z3.Z3_OP_BMUL})


def _comparisons(e: Expr, seen: set[int], cmps: list[Expr], arith: list[Expr]) -> None:
    """Comparisons and arithmetic of at least :data:`WIDE` bits in ``e`` not in ``seen``,
    and the narrower comparisons that read an input (a low byte of a host result, a class
    code, an entry point: the comparisons an ``assume`` on an input is made of)."""
    ctx = e.ctx
    c = ctx.ref()
    stack = [e.as_ast()]
    reads: dict[int, bool] = {}

    def width(x: Any) -> int:
        srt = z3.Z3_get_sort(c, x)
        if z3.Z3_get_sort_kind(c, srt) != z3.Z3_BV_SORT:
            return 0
        return int(z3.Z3_get_bv_sort_size(c, srt))

    def numeral(x: Any) -> bool:
        return bool(z3.Z3_get_ast_kind(c, x) == z3.Z3_NUMERAL_AST)

    def reads_input(x: Any) -> bool:
        k = z3.Z3_get_ast_id(c, x)
        if k not in reads:
            if z3.Z3_get_ast_kind(c, x) != z3.Z3_APP_AST:
                reads[k] = False
            else:
                n = z3.Z3_get_app_num_args(c, x)
                if n == 0:
                    decl = z3.Z3_get_app_decl(c, x)
                    name = z3.Z3_get_symbol_string(c, z3.Z3_get_decl_name(c, decl))
                    reads[k] = name.startswith("i_")
                else:
                    reads[k] = any(reads_input(z3.Z3_get_app_arg(c, x, j)) for j in range(n))
        return reads[k]

    while stack:
        x = stack.pop()
        k = z3.Z3_get_ast_id(c, x)
        if k in seen or z3.Z3_get_ast_kind(c, x) != z3.Z3_APP_AST:
            continue
        seen.add(k)
        kind = z3.Z3_get_decl_kind(c, z3.Z3_get_app_decl(c, x))
        n = z3.Z3_get_app_num_args(c, x)
        ch = [z3.Z3_get_app_arg(c, x, j) for j in range(n)]
        if (
            (kind in _CMP_OPS or kind == z3.Z3_OP_DISTINCT)
            and n == 2
            and not all(numeral(y) for y in ch)
        ):
            w = width(ch[0])
            wide_cmp = w >= WIDE and kind in _CMP_OPS
            if wide_cmp or (0 < w < WIDE and reads_input(x)):
                cmps.append(z3.z3._to_expr_ref(x, ctx))
        if kind in _AR_OPS and n == 2 and width(x) >= WIDE and not all(numeral(y) for y in ch):
            arith.append(z3.z3._to_expr_ref(x, ctx))
        stack.extend(ch)


def _bool_atoms(e: Expr) -> list[Expr]:
    """The Boolean constants (state fields and inputs) ``e`` reads."""
    atoms: list[Expr] = []

    def descend(x: Expr) -> bool:  # an atom is kept, and not looked into
        if _input_atom(x):
            atoms.append(x)
            return False
        return True

    for _ in nodes(e, descend):
        pass
    return atoms


def _input_atom(x: Expr) -> bool:
    """An input's Boolean constant, or a narrow comparison on an input (a class code, an
    entry point)."""
    if z3.is_const(x) and z3.is_bool(x):
        return not (z3.is_true(x) or z3.is_false(x)) and str(x).startswith("i_")
    return bool(
        z3.is_app_of(x, z3.Z3_OP_EQ)
        and z3.is_bv(x.children()[0])
        and x.children()[0].size() < WIDE
        and "i_" in str(x)
    )


def _wraps(x: Expr) -> Expr:
    a, b = x.children()
    kind = x.decl().kind()
    if kind == z3.Z3_OP_BADD:
        return z3.ULT(x, a)
    if kind == z3.Z3_OP_BSUB:
        return z3.ULT(a, b)
    w = x.size()
    prod = z3.ZeroExt(w, a) * z3.ZeroExt(w, b)
    return z3.UGT(prod, z3.BitVecVal((1 << w) - 1, 2 * w))


@dataclass
class Transition:
    """The targets of one transition, with its state, inputs, constraints and successor."""

    targets: list[Target]
    s: dict[str, Expr]
    i: dict[str, Expr]
    cons: Expr
    post: dict[str, Expr]

    @property
    def crashes(self) -> Expr:
        """The step crashes (only the location is meaningful after it)."""
        return self.post["loc"] == z3.BitVecVal(int(Loc.CRASHED), 8)


def _as_bits(e: Expr) -> Expr:
    return z3.If(e, z3.BitVecVal(1, 1), z3.BitVecVal(0, 1)) if z3.is_bool(e) else e


def _changes_successor(post: dict[str, Expr]) -> Callable[[Expr], Expr]:
    """``flip(c)``: the successor differs with ``c`` replaced by true and by false (after a
    crash only the location counts: the other fields mean nothing there)."""
    names = sorted(n for n in post if n != "loc")
    vec = z3.Concat(*[_as_bits(post[n]) for n in names])
    loc = post["loc"]
    crashed = z3.BitVecVal(int(Loc.CRASHED), 8)

    def flip(c: Expr) -> Expr:
        t, f = (c, z3.BoolVal(True)), (c, z3.BoolVal(False))
        lt, lf = z3.substitute(loc, t), z3.substitute(loc, f)
        differ = z3.substitute(vec, t) != z3.substitute(vec, f)
        return z3.Or(lt != lf, z3.And(lt != crashed, differ))

    return flip


def _recorder(enc: ModuleType, log: list[tuple[str, str, Expr, Expr]]) -> Any:
    """The encoding's ``SymTx`` recording in ``log`` every condition, update and
    assumption of a transition, with its site and path condition."""
    enc_file = str(enc.__file__)

    class Recorder(enc.SymTx):  # type: ignore[name-defined,misc]
        @contextmanager
        def when(self, cond: Expr) -> Iterator[None]:
            log.append(("when", _site(enc_file), self.active(), cond))
            with super().when(cond):
                yield

        def set(self, name: str, value: Expr) -> None:
            v = z3.BoolVal(value) if isinstance(value, bool) else value
            log.append(("set", _site(enc_file) + f" {name}", self.active(), v))
            super().set(name, value)

        def flag(self, name: str, cond: Expr) -> None:
            log.append(("set", _site(enc_file) + f" {name}", self.active(), cond))
            super().flag(name, cond)

        def assume(self, cond: Expr) -> None:
            log.append(("assume", _site(enc_file), self.active(), cond))
            super().assume(cond)

    return Recorder


class _Targets:
    """The targets of one transition, in the order they are added: a formula already
    there is not added again, a description met again is numbered (``#1``, ...)."""

    def __init__(self, loc: Loc) -> None:
        self.loc = loc
        self.out: list[Target] = []
        self.seen: set[int] = set()
        self.names: dict[str, int] = {}

    def add(self, kind: str, desc: str, e: Expr) -> None:
        e = z3.simplify(e)
        if z3.is_false(e) and kind != "branch" and kind != "update":
            return
        k = e.get_id()
        if k in self.seen:
            return
        self.seen.add(k)
        n = self.names.get(desc, 0)
        self.names[desc] = n + 1
        self.out.append(Target(self.loc, kind, desc if n == 0 else f"{desc} #{n}", e))


def _branch_targets(log: list[tuple[str, str, Expr, Expr]], tg: _Targets) -> None:
    """Every condition taken and not taken, every guarded update, every Boolean
    update's value true and false."""
    for what, site, pc, e in log:
        if what == "when":
            tg.add("branch", f"{site} when {_short(e)} = true", z3.And(pc, e))
            tg.add("branch", f"{site} when {_short(e)} = false", z3.And(pc, z3.Not(e)))
        elif what == "set":
            tg.add("update", f"{site} under {_short(pc, 60)}", pc)
            if z3.is_bool(e) and not (z3.is_true(e) or z3.is_false(e)):
                tg.add("value", f"{site} := {_short(e, 70)} = true", z3.And(pc, e))
                tg.add("value", f"{site} := {_short(e, 70)} = false", z3.And(pc, z3.Not(e)))


def _mcdc_targets(site: str, pc: Expr, e: Expr, tg: _Targets) -> None:
    """MC/DC of the Boolean inputs the condition or Boolean update ``e`` reads: each
    true and false where it decides ``e``."""
    for atom in _bool_atoms(e):
        flips = z3.substitute(e, (atom, z3.BoolVal(True))) != z3.substitute(
            e, (atom, z3.BoolVal(False))
        )
        for val in (True, False):
            lit = atom if val else z3.Not(atom)
            tg.add("mcdc", f"{site} {atom} = {val} decides {_short(e, 70)}", z3.And(pc, flips, lit))


def _boundary_targets(
    site: str, pc: Expr, c: Expr, flip: Callable[[Expr], Expr], tg: _Targets
) -> None:
    """The comparison ``c`` at a = b, a = b - 1 and a = b + 1; and the same where it
    decides the successor of the step (the observable one: after a crash, only the
    location)."""
    a, b = c.children()
    one = z3.BitVecVal(1, a.size())
    text = _short(c, 90)
    on = z3.And(pc, flip(c))
    tg.add("boundary", f"{site} {text} at a = b", z3.And(pc, a == b))
    tg.add("boundary", f"{site} {text} at a = b - 1", z3.And(pc, a + one == b))
    tg.add("boundary", f"{site} {text} at a = b + 1", z3.And(pc, a == b + one))
    tg.add("decisive", f"{site} {text} decides, at a = b", z3.And(on, a == b))
    tg.add("decisive", f"{site} {text} decides, at a = b - 1", z3.And(on, a + one == b))
    tg.add("decisive", f"{site} {text} decides, at a = b + 1", z3.And(on, a == b + one))


def _condition_targets(
    log: list[tuple[str, str, Expr, Expr]], flip: Callable[[Expr], Expr], tg: _Targets
) -> None:
    """The MC/DC, boundary, decisive and wrap targets of every site's conditions;
    a comparison met at an earlier site belongs to it."""
    seen_nodes: set[int] = set()
    for what, site, pc, e in log:
        cmps: list[Expr] = []
        arith: list[Expr] = []
        _comparisons(pc, seen_nodes, [], [])
        _comparisons(e, seen_nodes, cmps, arith)
        if what in ("when", "set") and z3.is_bool(e):
            _mcdc_targets(site, pc, e, tg)
        for c in cmps:
            _boundary_targets(site, pc, c, flip, tg)
        for x in arith:
            tg.add("wrap", f"{site} {_short(x, 90)} wraps", z3.And(pc, _wraps(x)))


def transition_targets(
    loc: Loc, variant: Variant, enc: ModuleType = default_encoding
) -> Transition:
    """The targets of the transition out of ``loc``; with its state, inputs and constraints."""
    log: list[tuple[str, str, Expr, Expr]] = []
    s, i = enc.make_state("s_"), enc.make_inputs("i_")
    tx = _recorder(enc, log)(s, i, variant)
    enc.TRANSITIONS[loc](tx)
    cons = z3.And(*tx.cons) if tx.cons else z3.BoolVal(True)
    post: dict[str, Expr] = dict(tx.v)
    flip = _changes_successor(post)
    tg = _Targets(loc)
    _branch_targets(log, tg)
    _condition_targets(log, flip, tg)
    return Transition(tg.out, s, i, cons, post)


# -- running a witness through the model ----------------------------------------------------


@dataclass
class Concrete1:
    """One concrete step seen from frame ``f``: the abstraction before and after, the inputs;
    and the concrete states, ghosts and transition violations (for the property check)."""

    loc: Loc
    pre: dict[str, int | bool]
    inputs: dict[str, int | bool]
    post: dict[str, int | bool]
    prev: State | None = None
    nxt: State | None = None
    ghost: Any = None  # model.properties.Ghost before the step
    ghost_after: Any = None
    found: list[tuple[str, str, int | None]] = field(default_factory=list)

    @property
    def crashed(self) -> bool:
        return self.post["loc"] == int(Loc.CRASHED)


def run_step(c: Concrete, step: Callable[[State], State] = model_step) -> Concrete1:
    """Take one model step from ``c`` (host answers scripted from a first run)."""

    def go(c: Concrete) -> State:
        if c.state.loc == Loc.IDLE:
            return enter(c.state, c.entry)
        return step(c.state)

    first = go(c)
    host = c.state.env.host
    answers = list(host.answers) if host is not None else []  # type: ignore[attr-defined]
    c2 = scripted(c, answers)
    prev = c2.state
    nxt = go(c2)
    del first
    ghost, found = observe_frames(prev, nxt, c2.ghost)
    f = c2.f
    proto = any(n == "protocol" for n, _, _ in found)
    bad = any(n == "free_order" and p == f for n, _, p in found)
    held = any(n == "host_agreement" and p == f for n, _, p in found)
    pre = alpha(prev, c2.ghost, f)
    post = alpha(nxt, ghost, f, bad_free=bad, freed_held=held, proto_bad=proto)
    return Concrete1(
        prev.loc, pre, step_inputs(prev, nxt, f), post, prev, nxt, c2.ghost, ghost, found
    )


# -- the check ------------------------------------------------------------------------------


@dataclass
class LocReport:
    loc: str
    targets: int = 0
    satisfiable: int = 0
    witnessed: int = 0
    unsat: list[str] = field(default_factory=list)
    unwitnessed: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    crash_only: list[str] = field(default_factory=list)  # witnessed only by crashing steps
    samples: int = 0
    not_concretizable: int = 0
    masked: int = 0  # decisive boundaries no state reaches (the comparison never decides there)


@dataclass
class Report:
    """The coverage of one variant, and what went wrong."""

    variant: str
    locs: list[LocReport]
    mismatches: list[str]
    not_representable: int
    gamma_errors: list[str]
    unexplained: list[str]  # unsatisfiable targets no rule explains
    rules_used: set[int]
    seconds: float
    unreviewed_crash: list[str] = field(default_factory=list)  # crash-only, not in the list
    crash_rules_used: set[int] = field(default_factory=set)
    seed: int = 0
    steps: list[Concrete1] = field(default_factory=list, repr=False)  # kept on request

    @property
    def satisfiable(self) -> int:
        return sum(r.satisfiable for r in self.locs)

    @property
    def witnessed(self) -> int:
        return sum(r.witnessed for r in self.locs)

    @property
    def crash_only(self) -> list[str]:
        return [f"{r.loc} {t}" for r in self.locs for t in r.crash_only]

    @property
    def status(self) -> Status:
        if any(r.unknown for r in self.locs):
            return Status.UNKNOWN
        ok = (
            not self.mismatches
            and not self.gamma_errors
            and not self.unexplained
            and not self.unreviewed_crash
            and self.not_representable == 0
            and self.witnessed == self.satisfiable
        )
        return Status.PASSED if ok else Status.FAILED

    def ok(self) -> bool:
        return self.status == Status.PASSED

    def problems(self) -> list[str]:
        out = list(self.mismatches[:10]) + list(self.gamma_errors[:10])
        out += [f"unexplained unreachable target: {u}" for u in self.unexplained[:20]]
        out += [
            f"witnessed only by a crashing step, not in the reviewed list: {u}"
            for u in self.unreviewed_crash[:20]
        ]
        for r in self.locs:
            out += [f"{r.loc}: satisfiable but not witnessed: {u}" for u in r.unwitnessed[:5]]
            out += [f"{r.loc}: solver unknown: {u}" for u in r.unknown[:5]]
        if self.not_representable:
            out.append(f"{self.not_representable} abstraction failures (NotRepresentable)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "ok": self.ok(),
            "status": self.status.value,
            "satisfiable": self.satisfiable,
            "witnessed": self.witnessed,
            "crash_only": len(self.crash_only),
            "unsatisfiable": sum(len(r.unsat) for r in self.locs),
            "seconds": round(self.seconds, 1),
            "per_transition": {
                r.loc: {
                    "targets": r.targets,
                    "satisfiable": r.satisfiable,
                    "witnessed": r.witnessed,
                    "crash_only": len(r.crash_only),
                    "unsatisfiable": len(r.unsat),
                    "samples": r.samples,
                }
                for r in self.locs
            },
            "problems": self.problems(),
        }

    def table(self) -> str:
        lines = [
            f"{'transition':<12} {'witnessed/satisfiable':>22} {'crash':>6} {'unsat':>6}"
            f" {'steps':>6}"
        ]
        for r in self.locs:
            lines.append(
                f"{r.loc:<12} {f'{r.witnessed}/{r.satisfiable}':>22} {len(r.crash_only):>6}"
                f" {len(r.unsat):>6} {r.samples:>6}"
            )
        lines.append(
            f"{'all':<12} {f'{self.witnessed}/{self.satisfiable}':>22}"
            f" {len(self.crash_only):>6} {sum(len(r.unsat) for r in self.locs):>6}"
        )
        return "\n".join(lines)


def load_rules(path: Path = UNREACHABLE, key: str = "rules") -> list[dict[str, str]]:
    """The reviewed rules that explain unsatisfiable targets (``key="crash_only"``: the
    targets only a crashing step meets)."""
    data = json.loads(path.read_text())
    rules: list[dict[str, str]] = data[key]
    return rules


def _explained(t: Target, variant: Variant, rules: list[dict[str, str]]) -> int | None:
    for k, r in enumerate(rules):
        if r.get("variant", "*") not in ("*", variant.name):
            continue
        if r.get("loc", "*") not in ("*", t.loc.name):
            continue
        if re.search(r["match"], f"{t.kind}: {t.desc}"):
            return k
    return None


def _values(m: Any, consts: dict[str, Expr]) -> dict[str, int | bool]:
    out: dict[str, int | bool] = {}
    for n, c in consts.items():
        v = m.eval(c, model_completion=True)
        out[n] = z3.is_true(v) if z3.is_bool(c) else int(v.as_long())
    return out


def _env(pre: dict[str, int | bool], inputs: dict[str, int | bool]) -> dict[str, int | bool]:
    env = {f"s_{n}": v for n, v in pre.items()}
    env.update({f"i_{n}": v for n, v in inputs.items()})
    return env


Values = dict[str, int | bool]


def _retry(
    s: dict[str, Expr], i: dict[str, Expr], a: Values, inp: Values, one: Concrete1 | None
) -> list[Expr]:
    """What the next witness must do differently: another frame or size, and the inputs
    the concrete step read differently from the solver's (an input the encoding does not
    read there, such as ``h_hi`` when the head is ``f``) at the value the step read.  A
    witness γ could not build (``one`` None, e.g. the allocator handing out ``f`` while
    ``f`` is out) must also change an input: the solver may otherwise keep the same
    inputs over every try, whatever the frame."""

    def val(k: str, v: Any) -> Expr:
        return z3.BoolVal(bool(v)) if z3.is_bool(i[k]) else v

    out = [z3.Or(s["f_pfn"] != a["f_pfn"], s["size"] != a["size"])]
    if one is None:
        changed = [i[k] != val(k, v) for k, v in inp.items() if k in i]
        out += [z3.Or(changed)] if changed else []
    else:
        for k, v in one.inputs.items():
            if k in inp and inp[k] != v:
                out.append(i[k] == val(k, v))
    return out


Bias = Callable[[dict[str, Expr], dict[str, Expr]], Expr]
"""A preference over witnesses (state, inputs): asked first, dropped where it cannot hold.
Tests use it to steer the solver toward the witnesses that could hide a defect."""


@contextmanager
def solver_seed(seed: int) -> Iterator[None]:
    """Z3's random seeds (SMT core and SAT solver) set to ``seed`` for the block."""
    z3.set_param("smt.random_seed", seed)
    z3.set_param("sat.random_seed", seed)
    try:
        yield
    finally:
        z3.set_param("smt.random_seed", 0)
        z3.set_param("sat.random_seed", 0)


def check(
    variant: Variant,
    enc: ModuleType = default_encoding,
    step: Callable[[State], State] = model_step,
    rules: list[dict[str, str]] | None = None,
    locs: list[Loc] | None = None,
    timeout_ms: int = 20_000,
    seed: int = 0,
    bias: Bias | None = None,
    keep_steps: bool = False,
    crash_rules: list[dict[str, str]] | None = None,
) -> Report:
    """Witness every target of every transition of ``variant``; see the module docstring.

    Every target is first asked for a witness whose step does not crash (after a crash
    only the location is compared, so a crashing witness shows little); only where none
    exists is a crashing one asked for, and such a target counts only when a rule of the
    reviewed list (``crash_only`` in :data:`UNREACHABLE`) names it.  A concrete step that
    crashes witnesses no target but the crash-only one it was asked for.  ``seed``: Z3's
    random seeds; ``bias``: a preference tried first for every witness (tests);
    ``keep_steps``: keep every concrete step in :attr:`Report.steps`.
    """
    with solver_seed(seed):
        return _check(
            variant, enc, step, rules, locs, timeout_ms, seed, bias, keep_steps, crash_rules
        )


@dataclass
class _Run:
    """One variant's check: its setting, and what it gathers over the transitions."""

    variant: Variant
    enc: ModuleType
    step: Callable[[State], State]
    rules: list[dict[str, str]]
    crash_rules: list[dict[str, str]]
    timeout_ms: int
    bias: Bias | None
    keep_steps: bool
    checker: Conformance
    reports: list[LocReport] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    gamma_errors: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    unreviewed: list[str] = field(default_factory=list)
    used: set[int] = field(default_factory=set)
    crash_used: set[int] = field(default_factory=set)
    kept: list[Concrete1] = field(default_factory=list)
    not_rep: int = 0


class _LocCheck:
    """The witnesses of the targets of the transition out of one location: its solver
    (the step's constraints, from a state γ can build) and its report."""

    def __init__(self, run: _Run, loc: Loc) -> None:
        self.run, self.loc = run, loc
        enc = run.enc
        self.tr = transition_targets(loc, run.variant, enc)
        self.targets, self.s, self.i = self.tr.targets, self.tr.s, self.tr.i
        self.rep = LocReport(loc.name, targets=len(self.targets))
        seconds = run.timeout_ms / 1000
        self.sol = qfbv_solver(seconds) if QF_BV else solver(seconds)
        self.sol.add(representable(self.s), self.s["loc"] == enc.loc_val(loc), self.tr.cons)
        self.prog = Program([t.expr for t in self.targets])
        self.pref = run.bias(self.s, self.i) if run.bias is not None else None

    def check(self) -> None:
        """Witness every open target, then count them into the report."""
        for t in self.targets:
            if t.status != TargetStatus.OPEN:
                continue
            self.non_crashing(t)
            if t.status != TargetStatus.OPEN:
                continue
            self.crashing(t)
        self.tally()
        self.run.reports.append(self.rep)

    def solve(self, extra: list[Expr]) -> tuple[Any, Any]:
        """The solver's answer under ``extra`` and its model (None: none), under the
        preference first where there is one."""
        sol = self.sol
        sol.push()
        sol.add(*extra)
        r, m = z3.unknown, None
        if self.pref is not None:
            sol.push()
            sol.add(self.pref)
            r = sol.check()
            m = sol.model() if r == z3.sat else None
            sol.pop()
        if r != z3.sat:
            r = sol.check()
            m = sol.model() if r == z3.sat else None
        sol.pop()
        return r, m

    def concrete_step(self, a: Values, inp: Values) -> Concrete1 | None:
        """The model's step from γ of the witness, checked against the encoding (None:
        γ or the model had none; the failure is recorded)."""
        run, loc, name = self.run, self.loc, self.run.variant.name
        try:
            c = concretize(loc, a, inp, run.variant)
            one: Concrete1 | None = run_step(c, run.step)
        except NotConcretizable:
            self.rep.not_concretizable += 1
            return None
        except NotRepresentable as exc:
            run.not_rep += 1
            run.gamma_errors.append(f"{name} {loc.name}: α failed: {exc}")
            return None
        except Exception as exc:  # the model has no step from this state
            run.gamma_errors.append(f"{name} {loc.name}: model raised {exc!r}")
            return None
        assert one is not None
        if one.pre != {**one.pre, **a} and len(run.gamma_errors) < 50:
            diff = {k: (a[k], one.pre[k]) for k in a if one.pre[k] != a[k]}
            run.gamma_errors.append(f"{name} {loc.name}: α(γ(a)) != a on {diff}")
        bad = run.checker.mismatches(one.loc, one.pre, one.inputs, one.post)
        if bad:
            run.mismatches.append(f"{name} {loc.name}: {bad[:3]} pre={one.pre} inputs={one.inputs}")
        self.rep.samples += 1
        if run.keep_steps:
            run.kept.append(one)
        return one

    def witness(self, extra: list[Expr]) -> tuple[Any, Values, Values, Concrete1 | None]:
        """A solver witness under ``extra``, run through the model: the solver's
        answer, the witness state and inputs, and the concrete step (None: none)."""
        r, m = self.solve(extra)
        if m is None:
            return r, {}, {}, None
        a, inp = _values(m, self.s), _values(m, self.i)
        return r, a, inp, self.concrete_step(a, inp)

    def holds(self, one: Concrete1) -> list[bool]:
        """Which targets hold on the concrete step's pre-state and inputs."""
        return [bool(v) for v in self.prog.run(_env(one.pre, one.inputs))]

    def non_crashing(self, t: Target) -> None:
        """Look for a witness of ``t`` whose step does not crash; every target it meets
        is witnessed (up to four tries, each moving the frame and the free values)."""
        tries = 0
        moved: list[Expr] = []
        while t.status == TargetStatus.OPEN:
            r, a, inp, one = self.witness([t.expr, z3.Not(self.tr.crashes), *moved])
            if r == z3.unsat:
                if moved:  # non-crashing witnesses exist, none agreed with the target
                    t.status = TargetStatus.UNWITNESSED
                break  # else: no non-crashing step meets it
            if r != z3.sat:
                t.status = TargetStatus.UNKNOWN
                break
            if one is not None and not one.crashed:
                for u, val in zip(self.targets, self.holds(one), strict=True):
                    if val and u.status == TargetStatus.OPEN:
                        u.status = TargetStatus.WITNESSED
            if t.status == TargetStatus.OPEN:
                tries += 1
                if tries >= 4:
                    t.status = TargetStatus.UNWITNESSED
                else:  # another witness: move the frame and the free values
                    moved += _retry(self.s, self.i, a, inp, one)

    def crashing(self, t: Target) -> None:
        """No non-crashing step meets ``t``: look for a crashing one, the only kind
        there is (``t`` is then crash-only)."""
        tries = 0
        moved: list[Expr] = []
        while t.status == TargetStatus.OPEN:
            r, a, inp, one = self.witness([t.expr, *moved])
            if r == z3.unsat:
                t.status = TargetStatus.UNSAT if not moved else TargetStatus.UNWITNESSED
                break
            if r != z3.sat:
                t.status = TargetStatus.UNKNOWN
                break
            if one is not None and self.holds(one)[self.targets.index(t)]:
                t.status = TargetStatus.CRASH_ONLY
                break
            tries += 1
            if tries >= 4:
                t.status = TargetStatus.UNWITNESSED
            else:
                moved += _retry(self.s, self.i, a, inp, one)

    def tally(self) -> None:
        """Count every target into the report by what the search found; a crash-only
        or unsatisfiable target is looked up in the reviewed rules."""
        run, rep, loc = self.run, self.rep, self.loc
        for t in self.targets:
            name = f"{t.kind}: {t.desc}"
            if t.status == TargetStatus.WITNESSED:
                rep.satisfiable += 1
                rep.witnessed += 1
            elif t.status == TargetStatus.CRASH_ONLY:
                rep.satisfiable += 1
                rep.crash_only.append(name)
                k = _explained(t, run.variant, run.crash_rules)
                if k is None:
                    run.unreviewed.append(f"{loc.name} {name}")
                else:
                    run.crash_used.add(k)
                    rep.witnessed += 1
            elif t.status == TargetStatus.UNWITNESSED:
                rep.satisfiable += 1
                rep.unwitnessed.append(name)
            elif t.status == TargetStatus.UNKNOWN:
                rep.unknown.append(name)
            elif t.status == TargetStatus.UNSAT and t.kind == "decisive":
                rep.masked += 1  # the plain boundary target stands for it
            elif t.status == TargetStatus.UNSAT:
                rep.unsat.append(name)
                k = _explained(t, run.variant, run.rules)
                if k is None:
                    run.unexplained.append(f"{loc.name} {name}")
                else:
                    run.used.add(k)


def _check(
    variant: Variant,
    enc: ModuleType,
    step: Callable[[State], State],
    rules: list[dict[str, str]] | None,
    locs: list[Loc] | None,
    timeout_ms: int,
    seed: int,
    bias: Bias | None,
    keep_steps: bool,
    crash_rules: list[dict[str, str]] | None,
) -> Report:
    from vmballoon.proofs.conformance import Conformance

    t0 = time.monotonic()
    rules = load_rules() if rules is None else rules
    crash_rules = load_rules(key="crash_only") if crash_rules is None else crash_rules
    run = _Run(
        variant,
        enc,
        step,
        rules,
        crash_rules,
        timeout_ms,
        bias,
        keep_steps,
        Conformance(variant, enc),
    )
    for loc in locs or [x for x in enc.TRANSITIONS if x not in SKIPPED]:
        _LocCheck(run, loc).check()
    return Report(
        variant.name,
        run.reports,
        run.mismatches,
        run.not_rep,
        run.gamma_errors,
        run.unexplained,
        run.used,
        time.monotonic() - t0,
        run.unreviewed,
        run.crash_used,
        seed,
        run.kept,
    )


__all__ = [
    "Bias",
    "Concrete1",
    "Report",
    "Status",
    "Target",
    "TargetStatus",
    "Transition",
    "check",
    "load_rules",
    "run_step",
    "solver_seed",
    "transition_targets",
]
