"""C integer helpers for the reference: the widths of the types ``vmw_balloon.c`` uses.

Python integers are unbounded; every assignment to a C object of a narrower
type goes through one of these, so wrap-around happens exactly where it
happens in the C (x86-64, LP64: ``unsigned int`` 32 bits, ``unsigned long``
64 bits, ``u16`` 16 bits, ``int`` 32 bits two's complement).
"""

from __future__ import annotations

from vmballoon.core.protocol import U16_MASK, U32_MASK, U64_MASK, to_int32


def u16(value: int) -> int:
    """``(u16)value``."""
    return value & U16_MASK


def u32(value: int) -> int:
    """``(unsigned int)value`` / ``(u32)value``."""
    return value & U32_MASK


def u64(value: int) -> int:
    """``(unsigned long)value`` / ``(u64)value``."""
    return value & U64_MASK


def s32(value: int) -> int:
    """``(int)value``: the low 32 bits as a signed (two's complement) ``int``."""
    return to_int32(value)
