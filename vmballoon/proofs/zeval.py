"""Evaluate quantifier-free bit-vector Z3 terms on concrete values, in plain Python.

Also the two small bridges between concrete values and terms the searches share:
:func:`value_of` (a model's value of a term) and :func:`equal_to` (terms fixed to values).

The conformance check evaluates hundreds of branch conditions of the encoding on
every concrete sample.  Substituting and simplifying in Z3 costs about a
millisecond per term; :class:`Program` walks the shared DAG of all the terms
once (through Z3's C API), compiles every node into a Python closure, and then
evaluates all of them on one assignment in a few milliseconds.  Only the
operators the encoding uses are supported; any other raises :class:`ValueError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import z3

Env = dict[str, int | bool]
Values = list[Any]
Fn = Callable[[Values, Env], Any]


def value_of(m: z3.ModelRef, e: Any) -> int | bool:
    """The value a model gives the term ``e``: a bool, or a bit-vector's unsigned int."""
    v = m.eval(e, model_completion=True)
    if z3.is_bool(v):
        return bool(z3.is_true(v))
    return int(v.as_long())


def equal_to(x: dict[str, Any], values: dict[str, int | bool]) -> list[Any]:
    """``x`` (a state or the inputs of a step) takes the concrete ``values``, one equality
    a field, in the order of ``values``."""
    out: list[Any] = []
    for n, v in values.items():
        e = x[n]
        out.append(e == (z3.BoolVal(bool(v)) if z3.is_bool(e) else z3.BitVecVal(int(v), e.size())))
    return out


def _signed(v: int, w: int) -> int:
    return v - (1 << w) if v >> (w - 1) else v


def _op(
    kind: int, a: tuple[int, ...], w: int, p: tuple[int, ...], name: str, rw: int
) -> Fn:
    """A closure computing one node from the values of its arguments ``a``."""
    m = (1 << w) - 1
    if kind == z3.Z3_OP_UNINTERPRETED:
        if rw == 0:
            return lambda v, env: bool(env[name])
        mm = (1 << rw) - 1
        return lambda v, env: int(env[name]) & mm
    if kind == z3.Z3_OP_TRUE:
        return lambda v, env: True
    if kind == z3.Z3_OP_FALSE:
        return lambda v, env: False
    if kind == z3.Z3_OP_AND:
        return lambda v, env: all(v[x] for x in a)
    if kind == z3.Z3_OP_OR:
        return lambda v, env: any(v[x] for x in a)
    if kind == z3.Z3_OP_NOT:
        x0 = a[0]
        return lambda v, env: not v[x0]
    x0 = a[0] if a else 0
    x1 = a[1] if len(a) > 1 else 0
    if kind == z3.Z3_OP_IMPLIES:
        return lambda v, env: (not v[x0]) or bool(v[x1])
    if kind == z3.Z3_OP_ITE:
        x2 = a[2]
        return lambda v, env: v[x1] if v[x0] else v[x2]
    if kind == z3.Z3_OP_EQ:
        return lambda v, env: v[x0] == v[x1]
    if kind == z3.Z3_OP_DISTINCT:
        return lambda v, env: len({v[x] for x in a}) == len(a)
    if kind == z3.Z3_OP_XOR:
        return lambda v, env: bool(v[x0]) != bool(v[x1])
    if kind == z3.Z3_OP_BADD:
        return lambda v, env: sum(v[x] for x in a) & m
    if kind == z3.Z3_OP_BSUB:
        return lambda v, env: (v[x0] - v[x1]) & m
    if kind == z3.Z3_OP_BMUL:

        def mul(v: Values, env: Env) -> int:
            out = 1
            for x in a:
                out = (out * v[x]) & m
            return out

        return mul
    if kind == z3.Z3_OP_BNEG:
        return lambda v, env: (-v[x0]) & m
    if kind in (z3.Z3_OP_BUDIV, z3.Z3_OP_BUDIV_I):
        return lambda v, env: m if v[x1] == 0 else v[x0] // v[x1]
    if kind in (z3.Z3_OP_BUREM, z3.Z3_OP_BUREM_I):
        return lambda v, env: v[x0] if v[x1] == 0 else v[x0] % v[x1]
    if kind == z3.Z3_OP_BAND:

        def band(v: Values, env: Env) -> int:
            out = m
            for x in a:
                out &= v[x]
            return out

        return band
    if kind == z3.Z3_OP_BOR:

        def bor(v: Values, env: Env) -> int:
            out = 0
            for x in a:
                out |= v[x]
            return out

        return bor
    if kind == z3.Z3_OP_BNOT:
        return lambda v, env: v[x0] ^ m
    if kind == z3.Z3_OP_BSHL:
        return lambda v, env: 0 if v[x1] >= w else (v[x0] << v[x1]) & m
    if kind == z3.Z3_OP_BLSHR:
        return lambda v, env: 0 if v[x1] >= w else v[x0] >> v[x1]
    if kind == z3.Z3_OP_EXTRACT:
        hi, lo = p
        mm = (1 << (hi - lo + 1)) - 1
        return lambda v, env: (v[x0] >> lo) & mm
    if kind == z3.Z3_OP_CONCAT:
        widths = p

        def concat(v: Values, env: Env) -> int:
            out = 0
            for x, wx in zip(a, widths, strict=True):
                out = (out << wx) | v[x]
            return out

        return concat
    if kind == z3.Z3_OP_ZERO_EXT:
        return lambda v, env: v[x0]
    if kind == z3.Z3_OP_SIGN_EXT:
        mm = (1 << (w + p[0])) - 1
        return lambda v, env: _signed(v[x0], w) & mm
    if kind == z3.Z3_OP_ULEQ:
        return lambda v, env: v[x0] <= v[x1]
    if kind == z3.Z3_OP_ULT:
        return lambda v, env: v[x0] < v[x1]
    if kind == z3.Z3_OP_UGEQ:
        return lambda v, env: v[x0] >= v[x1]
    if kind == z3.Z3_OP_UGT:
        return lambda v, env: v[x0] > v[x1]
    if kind == z3.Z3_OP_SLEQ:
        return lambda v, env: _signed(v[x0], w) <= _signed(v[x1], w)
    if kind == z3.Z3_OP_SLT:
        return lambda v, env: _signed(v[x0], w) < _signed(v[x1], w)
    if kind == z3.Z3_OP_SGEQ:
        return lambda v, env: _signed(v[x0], w) >= _signed(v[x1], w)
    if kind == z3.Z3_OP_SGT:
        return lambda v, env: _signed(v[x0], w) > _signed(v[x1], w)
    raise ValueError(f"zeval: unsupported operator {name}")


def _const(val: int) -> Fn:
    return lambda v, env: val


class Program:
    """Every node of ``roots``' DAG as a closure, in an order where arguments come first."""

    def __init__(self, roots: list[Any]) -> None:
        self.fns: list[Fn] = []
        self.roots: list[int] = []
        if not roots:
            return
        ctx = roots[0].ctx_ref()
        slot: dict[int, int] = {}
        for r in roots:
            self.roots.append(self._add(ctx, r.as_ast(), slot))

    def _add(self, ctx: Any, root: Any, slot: dict[int, int]) -> int:
        stack: list[tuple[Any, bool]] = [(root, False)]
        while stack:
            ast, ready = stack.pop()
            k = z3.Z3_get_ast_id(ctx, ast)
            if k in slot:
                continue
            if z3.Z3_get_ast_kind(ctx, ast) == z3.Z3_NUMERAL_AST:
                val = int(z3.Z3_get_numeral_string(ctx, ast))
                slot[k] = len(self.fns)
                self.fns.append(_const(val))
                continue
            n = z3.Z3_get_app_num_args(ctx, ast)
            args = [z3.Z3_get_app_arg(ctx, ast, j) for j in range(n)]
            if not ready:
                stack.append((ast, True))
                stack.extend((x, False) for x in reversed(args))
                continue
            decl = z3.Z3_get_app_decl(ctx, ast)
            kind = z3.Z3_get_decl_kind(ctx, decl)
            name = z3.Z3_get_symbol_string(ctx, z3.Z3_get_decl_name(ctx, decl))
            a = tuple(slot[z3.Z3_get_ast_id(ctx, x)] for x in args)

            def width(x: Any) -> int:
                s = z3.Z3_get_sort(ctx, x)
                if z3.Z3_get_sort_kind(ctx, s) == z3.Z3_BV_SORT:
                    return int(z3.Z3_get_bv_sort_size(ctx, s))
                return 0

            w = width(args[0]) if args else 0
            p: tuple[int, ...] = ()
            if kind == z3.Z3_OP_EXTRACT:
                p = (
                    z3.Z3_get_decl_int_parameter(ctx, decl, 0),
                    z3.Z3_get_decl_int_parameter(ctx, decl, 1),
                )
            elif kind in (z3.Z3_OP_ZERO_EXT, z3.Z3_OP_SIGN_EXT):
                p = (z3.Z3_get_decl_int_parameter(ctx, decl, 0),)
            elif kind == z3.Z3_OP_CONCAT:
                p = tuple(width(x) for x in args)
            slot[k] = len(self.fns)
            self.fns.append(_op(kind, a, w, p, name, width(ast)))
        return slot[z3.Z3_get_ast_id(ctx, root)]

    def run(self, env: Env) -> list[Any]:
        """The value of every root where each constant named ``n`` is ``env[n]``."""
        v: Values = [None] * len(self.fns)
        for k, fn in enumerate(self.fns):
            v[k] = fn(v, env)
        return [v[r] for r in self.roots]


def evaluate(e: Any, env: Env) -> Any:
    """The value of one term (compiles it: use :class:`Program` for many)."""
    return Program([e]).run(env)[0]


__all__ = ["Env", "Program", "evaluate"]
