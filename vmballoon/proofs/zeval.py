"""Evaluate quantifier-free bit-vector Z3 terms on concrete values, in plain Python.

Also the two small bridges between concrete values and terms the searches share:
:func:`value_of` (a model's value of a term) and :func:`equal_to` (terms fixed to values),
and :func:`nodes`, the one walk over a term's DAG.

The conformance check evaluates hundreds of branch conditions of the encoding on
every concrete sample.  Substituting and simplifying in Z3 costs about a
millisecond per term; :class:`Program` walks the shared DAG of all the terms
once (through Z3's C API), compiles every node into a Python closure, and then
evaluates all of them on one assignment in a few milliseconds.  Only the
operators the encoding uses are supported; any other raises :class:`ValueError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


def nodes(e: Any, descend: Callable[[Any], bool]) -> Iterator[Any]:
    """Each distinct node of the term ``e`` once (by Z3 id), depth first (the last child
    first); a node's children are visited only where ``descend(node)``."""
    stack, seen = [e], set()
    while stack:
        x = stack.pop()
        if x.get_id() in seen:
            continue
        seen.add(x.get_id())
        yield x
        if descend(x):
            stack.extend(x.children())


def _signed(v: int, w: int) -> int:
    return v - (1 << w) if v >> (w - 1) else v


def _bmul(a: tuple[int, ...], m: int) -> Fn:
    """The product of the arguments, modulo the width."""

    def mul(v: Values, env: Env) -> int:
        out = 1
        for x in a:
            out = (out * v[x]) & m
        return out

    return mul


def _band(a: tuple[int, ...], m: int) -> Fn:
    """The bitwise and of the arguments."""

    def band(v: Values, env: Env) -> int:
        out = m
        for x in a:
            out &= v[x]
        return out

    return band


def _bor(a: tuple[int, ...], m: int) -> Fn:
    """The bitwise or of the arguments."""

    def bor(v: Values, env: Env) -> int:
        out = 0
        for x in a:
            out |= v[x]
        return out

    return bor


def _concat(a: tuple[int, ...], widths: tuple[int, ...]) -> Fn:
    """The arguments side by side, the first the most significant (``widths``: theirs)."""

    def concat(v: Values, env: Env) -> int:
        out = 0
        for x, wx in zip(a, widths, strict=True):
            out = (out << wx) | v[x]
        return out

    return concat


_NARY: dict[int, Callable[[tuple[int, ...], int], Fn]] = {
    z3.Z3_OP_AND: lambda a, m: lambda v, env: all(v[x] for x in a),
    z3.Z3_OP_OR: lambda a, m: lambda v, env: any(v[x] for x in a),
    z3.Z3_OP_DISTINCT: lambda a, m: lambda v, env: len({v[x] for x in a}) == len(a),
    z3.Z3_OP_BADD: lambda a, m: lambda v, env: sum(v[x] for x in a) & m,
    z3.Z3_OP_BMUL: _bmul,
    z3.Z3_OP_BAND: _band,
    z3.Z3_OP_BOR: _bor,
}
"""The operators over any number of arguments: ``(arguments, width mask) -> closure``."""


def _extract(x0: int, w: int, m: int, p: tuple[int, ...]) -> Fn:
    """Bits ``hi`` down to ``lo`` (the parameters) of the argument."""
    hi, lo = p
    mm = (1 << (hi - lo + 1)) - 1
    return lambda v, env: (v[x0] >> lo) & mm


def _sign_ext(x0: int, w: int, m: int, p: tuple[int, ...]) -> Fn:
    """The argument, of width ``w``, sign-extended by ``p[0]`` bits."""
    mm = (1 << (w + p[0])) - 1
    return lambda v, env: _signed(v[x0], w) & mm


_UNARY: dict[int, Callable[[int, int, int, tuple[int, ...]], Fn]] = {
    z3.Z3_OP_NOT: lambda x0, w, m, p: lambda v, env: not v[x0],
    z3.Z3_OP_BNEG: lambda x0, w, m, p: lambda v, env: (-v[x0]) & m,
    z3.Z3_OP_BNOT: lambda x0, w, m, p: lambda v, env: v[x0] ^ m,
    z3.Z3_OP_ZERO_EXT: lambda x0, w, m, p: lambda v, env: v[x0],
    z3.Z3_OP_SIGN_EXT: _sign_ext,
    z3.Z3_OP_EXTRACT: _extract,
}
"""The operators of one argument: ``(argument, width, width mask, parameters) -> closure``."""

_BINARY: dict[int, Callable[[int, int, int, int], Fn]] = {
    z3.Z3_OP_IMPLIES: lambda x0, x1, w, m: lambda v, env: (not v[x0]) or bool(v[x1]),
    z3.Z3_OP_EQ: lambda x0, x1, w, m: lambda v, env: v[x0] == v[x1],
    z3.Z3_OP_XOR: lambda x0, x1, w, m: lambda v, env: bool(v[x0]) != bool(v[x1]),
    z3.Z3_OP_BSUB: lambda x0, x1, w, m: lambda v, env: (v[x0] - v[x1]) & m,
    z3.Z3_OP_BUDIV: lambda x0, x1, w, m: lambda v, env: m if v[x1] == 0 else v[x0] // v[x1],
    z3.Z3_OP_BUREM: lambda x0, x1, w, m: lambda v, env: v[x0] if v[x1] == 0 else v[x0] % v[x1],
    z3.Z3_OP_BSHL: lambda x0, x1, w, m: lambda v, env: 0 if v[x1] >= w else (v[x0] << v[x1]) & m,
    z3.Z3_OP_BLSHR: lambda x0, x1, w, m: lambda v, env: 0 if v[x1] >= w else v[x0] >> v[x1],
    z3.Z3_OP_ULEQ: lambda x0, x1, w, m: lambda v, env: v[x0] <= v[x1],
    z3.Z3_OP_ULT: lambda x0, x1, w, m: lambda v, env: v[x0] < v[x1],
    z3.Z3_OP_UGEQ: lambda x0, x1, w, m: lambda v, env: v[x0] >= v[x1],
    z3.Z3_OP_UGT: lambda x0, x1, w, m: lambda v, env: v[x0] > v[x1],
    z3.Z3_OP_SLEQ: lambda x0, x1, w, m: lambda v, env: _signed(v[x0], w) <= _signed(v[x1], w),
    z3.Z3_OP_SLT: lambda x0, x1, w, m: lambda v, env: _signed(v[x0], w) < _signed(v[x1], w),
    z3.Z3_OP_SGEQ: lambda x0, x1, w, m: lambda v, env: _signed(v[x0], w) >= _signed(v[x1], w),
    z3.Z3_OP_SGT: lambda x0, x1, w, m: lambda v, env: _signed(v[x0], w) > _signed(v[x1], w),
}
"""The operators of two arguments: ``(first, second, width, width mask) -> closure``."""
_BINARY[z3.Z3_OP_BUDIV_I] = _BINARY[z3.Z3_OP_BUDIV]
_BINARY[z3.Z3_OP_BUREM_I] = _BINARY[z3.Z3_OP_BUREM]


def _op(kind: int, a: tuple[int, ...], w: int, p: tuple[int, ...], name: str, rw: int) -> Fn:
    """A closure computing one node from the values of its arguments ``a`` (``w``: the
    first argument's width, ``p``: the operator's parameters, ``rw``: the node's width)."""
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
    if kind in _NARY:
        return _NARY[kind](a, m)
    x0 = a[0] if a else 0
    x1 = a[1] if len(a) > 1 else 0
    if kind in _UNARY:
        return _UNARY[kind](x0, w, m, p)
    if kind in _BINARY:
        return _BINARY[kind](x0, x1, w, m)
    if kind == z3.Z3_OP_ITE:
        x2 = a[2]
        return lambda v, env: v[x1] if v[x0] else v[x2]
    if kind == z3.Z3_OP_CONCAT:
        return _concat(a, p)
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


__all__ = ["Env", "Program", "evaluate", "nodes"]
