"""Branch- and boundary-complete conformance of the encoding with the model.

For every transition of the encoding (:mod:`proofs.encoding`) this module lists
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
(:func:`proofs.concretize.representable`) and inputs that satisfy the step's
constraints and the target.  The witness becomes a concrete model state
(:func:`proofs.concretize.concretize`), the model takes the step, and the step is
checked both ways (:class:`proofs.conformance.Conformance`): the encoding admits
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
from pathlib import Path
from types import ModuleType
from typing import Any

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
from vmballoon.proofs.zeval import Program

Expr = Any
UNREACHABLE = spec_dir() / "conformance-unreachable.json"
SKIPPED = (Loc.EXITED, Loc.CRASHED)
"""Locations without a model transition: nothing runs after exit or a crash."""
WIDE = 32
QF_BV = True
"""Comparisons and arithmetic of at least this many bits get boundary and wrap targets."""


@dataclass
class Target:
    """One branch, update, boundary or wrap point of one transition."""

    loc: Loc
    kind: str  # branch / update / boundary / wrap
    desc: str
    expr: Expr
    status: str = "open"  # open / witnessed / unsat / unknown / sat-unwitnessed


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
            "when", "set", "flag", "assume", "goto", "crash", "__enter__", "successor",
        ):  # fmt: skip
            names.append(code.co_name)
        if code.co_name == "successor" and code.co_filename == enc_file:
            break
        fr = fr.f_back  # type: ignore[assignment]
    return ">".join(reversed(names))


_CMP_OPS = frozenset({
    z3.Z3_OP_ULEQ, z3.Z3_OP_ULT, z3.Z3_OP_UGEQ, z3.Z3_OP_UGT,
    z3.Z3_OP_SLEQ, z3.Z3_OP_SLT, z3.Z3_OP_SGEQ, z3.Z3_OP_SGT, z3.Z3_OP_EQ,
})  # fmt: skip
_AR_OPS = frozenset({z3.Z3_OP_BADD, z3.Z3_OP_BSUB, z3.Z3_OP_BMUL})


def _comparisons(e: Expr, seen: set[int], cmps: list[Expr], arith: list[Expr]) -> None:
    """Comparisons and arithmetic of at least :data:`WIDE` bits in ``e`` not in ``seen``."""
    ctx = e.ctx
    c = ctx.ref()
    stack = [e.as_ast()]

    def wide(x: Any) -> bool:
        srt = z3.Z3_get_sort(c, x)
        return bool(
            z3.Z3_get_sort_kind(c, srt) == z3.Z3_BV_SORT
            and z3.Z3_get_bv_sort_size(c, srt) >= WIDE
        )

    def numeral(x: Any) -> bool:
        return bool(z3.Z3_get_ast_kind(c, x) == z3.Z3_NUMERAL_AST)

    while stack:
        x = stack.pop()
        k = z3.Z3_get_ast_id(c, x)
        if k in seen or z3.Z3_get_ast_kind(c, x) != z3.Z3_APP_AST:
            continue
        seen.add(k)
        kind = z3.Z3_get_decl_kind(c, z3.Z3_get_app_decl(c, x))
        n = z3.Z3_get_app_num_args(c, x)
        ch = [z3.Z3_get_app_arg(c, x, j) for j in range(n)]
        if kind in _CMP_OPS and n == 2 and wide(ch[0]) and not all(numeral(y) for y in ch):
            cmps.append(z3.z3._to_expr_ref(x, ctx))
        if kind in _AR_OPS and n == 2 and wide(x) and not all(numeral(y) for y in ch):
            arith.append(z3.z3._to_expr_ref(x, ctx))
        stack.extend(ch)


def _bool_atoms(e: Expr) -> list[Expr]:
    """The Boolean constants (state fields and inputs) ``e`` reads."""
    out: dict[int, Expr] = {}
    stack, seen = [e], set()
    while stack:
        x = stack.pop()
        if x.get_id() in seen:
            continue
        seen.add(x.get_id())
        if (
            z3.is_const(x) and z3.is_bool(x) and not (z3.is_true(x) or z3.is_false(x))
            and str(x).startswith("i_")
        ):
            out[x.get_id()] = x
        elif (
            z3.is_app_of(x, z3.Z3_OP_EQ) and z3.is_bv(x.children()[0])
            and x.children()[0].size() < WIDE and "i_" in str(x)
        ):  # a narrow comparison on an input (a class code, an entry point)
            out[x.get_id()] = x
        else:
            stack.extend(x.children())
    return list(out.values())


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


def transition_targets(
    loc: Loc, variant: Variant, enc: ModuleType = default_encoding
) -> tuple[list[Target], Any, Any, Any]:
    """The targets of the transition out of ``loc``; with its state, inputs and constraints."""
    log: list[tuple[str, str, Expr, Expr]] = []
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

    s, i = enc.make_state("s_"), enc.make_inputs("i_")
    tx = Recorder(s, i, variant)
    enc.TRANSITIONS[loc](tx)
    cons = z3.And(*tx.cons) if tx.cons else z3.BoolVal(True)
    out: list[Target] = []
    seen: set[int] = set()
    names: dict[str, int] = {}

    def add(kind: str, desc: str, e: Expr) -> None:
        e = z3.simplify(e)
        if z3.is_false(e) and kind != "branch" and kind != "update":
            return
        k = e.get_id()
        if k in seen:
            return
        seen.add(k)
        n = names.get(desc, 0)
        names[desc] = n + 1
        out.append(Target(loc, kind, desc if n == 0 else f"{desc} #{n}", e))

    for what, site, pc, e in log:
        if what == "when":
            add("branch", f"{site} when {_short(e)} = true", z3.And(pc, e))
            add("branch", f"{site} when {_short(e)} = false", z3.And(pc, z3.Not(e)))
        elif what == "set":
            add("update", f"{site} under {_short(pc, 60)}", pc)
            if z3.is_bool(e) and not (z3.is_true(e) or z3.is_false(e)):
                add("value", f"{site} := {_short(e, 70)} = true", z3.And(pc, e))
                add("value", f"{site} := {_short(e, 70)} = false", z3.And(pc, z3.Not(e)))
    seen_nodes: set[int] = set()  # comparisons met at an earlier site belong to it
    for what, site, pc, e in log:
        cmps: list[Expr] = []
        arith: list[Expr] = []
        _comparisons(pc, seen_nodes, [], [])
        _comparisons(e, seen_nodes, cmps, arith)
        if what in ("when", "set") and z3.is_bool(e):
            for atom in _bool_atoms(e):  # MC/DC of the Boolean inputs it reads
                flips = z3.substitute(e, (atom, z3.BoolVal(True))) != z3.substitute(
                    e, (atom, z3.BoolVal(False))
                )
                for val in (True, False):
                    lit = atom if val else z3.Not(atom)
                    add("mcdc", f"{site} {atom} = {val} decides {_short(e, 70)}",
                        z3.And(pc, flips, lit))  # fmt: skip
        for c in cmps:
            a, b = c.children()
            one = z3.BitVecVal(1, a.size())
            text = _short(c, 90)
            # decisive: the comparison's value decides the value of the expression it is in
            flips = z3.substitute(e, (c, z3.BoolVal(True))) != z3.substitute(
                e, (c, z3.BoolVal(False))
            )
            on = z3.And(pc, flips)
            add("boundary", f"{site} {text} at a = b", z3.And(pc, a == b))
            add("boundary", f"{site} {text} at a = b - 1", z3.And(pc, a + one == b))
            add("boundary", f"{site} {text} at a = b + 1", z3.And(pc, a == b + one))
            add("decisive", f"{site} {text} decides, at a = b", z3.And(on, a == b))
            add("decisive", f"{site} {text} decides, at a = b - 1", z3.And(on, a + one == b))
            add("decisive", f"{site} {text} decides, at a = b + 1", z3.And(on, a == b + one))
        for x in arith:
            add("wrap", f"{site} {_short(x, 90)} wraps", z3.And(pc, _wraps(x)))
    return out, s, i, cons


# -- running a witness through the model ----------------------------------------------------


@dataclass
class Concrete1:
    """One concrete step seen from frame ``f``: the abstraction before and after, the inputs."""

    loc: Loc
    pre: dict[str, int | bool]
    inputs: dict[str, int | bool]
    post: dict[str, int | bool]


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
    return Concrete1(prev.loc, pre, step_inputs(prev, nxt, f), post)


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

    @property
    def satisfiable(self) -> int:
        return sum(r.satisfiable for r in self.locs)

    @property
    def witnessed(self) -> int:
        return sum(r.witnessed for r in self.locs)

    def ok(self) -> bool:
        return (
            not self.mismatches
            and not self.gamma_errors
            and not self.unexplained
            and self.not_representable == 0
            and self.witnessed == self.satisfiable
            and not any(r.unknown for r in self.locs)
        )

    def problems(self) -> list[str]:
        out = list(self.mismatches[:10]) + list(self.gamma_errors[:10])
        out += [f"unexplained unreachable target: {u}" for u in self.unexplained[:20]]
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
            "satisfiable": self.satisfiable,
            "witnessed": self.witnessed,
            "unsatisfiable": sum(len(r.unsat) for r in self.locs),
            "seconds": round(self.seconds, 1),
            "per_transition": {
                r.loc: {
                    "targets": r.targets,
                    "satisfiable": r.satisfiable,
                    "witnessed": r.witnessed,
                    "unsatisfiable": len(r.unsat),
                    "samples": r.samples,
                }
                for r in self.locs
            },
            "problems": self.problems(),
        }

    def table(self) -> str:
        lines = [f"{'transition':<12} {'witnessed/satisfiable':>22} {'unsat':>6} {'steps':>6}"]
        for r in self.locs:
            lines.append(
                f"{r.loc:<12} {f'{r.witnessed}/{r.satisfiable}':>22} {len(r.unsat):>6}"
                f" {r.samples:>6}"
            )
        lines.append(
            f"{'all':<12} {f'{self.witnessed}/{self.satisfiable}':>22}"
            f" {sum(len(r.unsat) for r in self.locs):>6}"
        )
        return "\n".join(lines)


def load_rules(path: Path = UNREACHABLE) -> list[dict[str, str]]:
    """The reviewed rules that explain unsatisfiable targets."""
    data = json.loads(path.read_text())
    rules: list[dict[str, str]] = data["rules"]
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


def _absorb(
    checker: Any, one: Concrete1, prog: Program, targets: list[Target], rep: LocReport,
    mismatches: list[str], variant: Variant,
) -> None:  # fmt: skip
    """Check one concrete step both ways; mark the targets it witnesses."""
    bad = checker.mismatches(one.loc, one.pre, one.inputs, one.post)
    if bad:
        mismatches.append(
            f"{variant.name} {one.loc.name}: {bad[:3]} pre={one.pre} inputs={one.inputs}"
        )
    vals = prog.run(_env(one.pre, one.inputs))
    for t, val in zip(targets, vals, strict=True):
        if val:
            t.status = "witnessed"
    rep.samples += 1


def check(
    variant: Variant,
    enc: ModuleType = default_encoding,
    step: Callable[[State], State] = model_step,
    rules: list[dict[str, str]] | None = None,
    locs: list[Loc] | None = None,
    timeout_ms: int = 20_000,
) -> Report:
    """Witness every target of every transition of ``variant``; see the module docstring."""
    from vmballoon.proofs.conformance import Conformance

    t0 = time.monotonic()
    rules = load_rules() if rules is None else rules
    checker = Conformance(variant, enc)
    reports: list[LocReport] = []
    mismatches: list[str] = []
    gamma_errors: list[str] = []
    unexplained: list[str] = []
    used: set[int] = set()
    not_rep = 0
    for loc in locs or [x for x in enc.TRANSITIONS if x not in SKIPPED]:
        targets, s, i, cons = transition_targets(loc, variant, enc)
        rep = LocReport(loc.name, targets=len(targets))
        sol = z3.SolverFor("QF_BV") if QF_BV else z3.Solver()
        sol.set("timeout", timeout_ms)
        sol.add(representable(s), s["loc"] == enc.loc_val(loc), cons)
        open_ = list(targets)
        prog = Program([t.expr for t in targets])

        while open_:
            t = open_[0]
            tries = 0
            sol.push()
            sol.add(t.expr)
            done = False
            while not done:
                r = sol.check()
                if r == z3.unsat:
                    t.status = "unsat"
                    done = True
                elif r == z3.unknown:
                    t.status = "unknown"
                    done = True
                else:
                    m = sol.model()
                    a, inp = _values(m, s), _values(m, i)
                    try:
                        c = concretize(loc, a, inp, variant)
                        one = run_step(c, step)
                    except NotConcretizable:
                        rep.not_concretizable += 1
                        one = None
                    except NotRepresentable as exc:
                        not_rep += 1
                        gamma_errors.append(f"{variant.name} {loc.name}: α failed: {exc}")
                        one = None
                    except Exception as exc:  # the model has no step from this state
                        gamma_errors.append(f"{variant.name} {loc.name}: model raised {exc!r}")
                        one = None
                    if one is not None:
                        if one.pre != {**one.pre, **a} and len(gamma_errors) < 50:
                            diff = {k: (a[k], one.pre[k]) for k in a if one.pre[k] != a[k]}
                            gamma_errors.append(
                                f"{variant.name} {loc.name}: α(γ(a)) != a on {diff}"
                            )
                        _absorb(checker, one, prog, targets, rep, mismatches, variant)
                        open_ = [t for t in open_ if t.status != "witnessed"]
                    if t.status == "witnessed":
                        done = True
                    else:
                        tries += 1
                        if tries >= 4:
                            t.status = "sat-unwitnessed"
                            done = True
                        else:  # another witness: move the frame and the free values
                            sol.add(z3.Or(s["f_pfn"] != a["f_pfn"], s["size"] != a["size"]))
            sol.pop()
            if t in open_:
                open_.remove(t)
        for t in targets:
            if t.status == "witnessed":
                rep.satisfiable += 1
                rep.witnessed += 1
            elif t.status == "sat-unwitnessed":
                rep.satisfiable += 1
                rep.unwitnessed.append(f"{t.kind}: {t.desc}")
            elif t.status == "unknown":
                rep.unknown.append(f"{t.kind}: {t.desc}")
            elif t.status == "unsat" and t.kind == "decisive":
                rep.masked += 1  # the plain boundary target stands for it
            elif t.status == "unsat":
                rep.unsat.append(f"{t.kind}: {t.desc}")
                k = _explained(t, variant, rules)
                if k is None:
                    unexplained.append(f"{loc.name} {t.kind}: {t.desc}")
                else:
                    used.add(k)
        reports.append(rep)
    return Report(
        variant.name, reports, mismatches, not_rep, gamma_errors, unexplained, used,
        time.monotonic() - t0,
    )  # fmt: skip


__all__ = ["Report", "Target", "check", "load_rules", "run_step", "transition_targets"]
