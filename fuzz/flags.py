"""IORESOURCE_* flags as Program text: ``MEM|SYSRAM|BUSY`` rather than ``0x81000200``.

The type field (bits 8-12) is a value, not a set of bits (REG = IO|MEM numerically), so
it is printed as one name; the remaining bits are printed by name in ascending order, and
any bit without a name in hex. The table comes from include/linux/ioport.h (spec §1.2).
"""

from __future__ import annotations

TYPE_MASK = 0x00001F00

TYPES: dict[str, int] = {
    "IO": 0x00000100,
    "MEM": 0x00000200,
    "REG": 0x00000300,
    "IRQ": 0x00000400,
    "DMA": 0x00000800,
    "BUS": 0x00001000,
}

BITS: dict[str, int] = {
    "PREFETCH": 0x00002000,
    "READONLY": 0x00004000,
    "CACHEABLE": 0x00008000,
    "RANGELENGTH": 0x00010000,
    "SHADOWABLE": 0x00020000,
    "SIZEALIGN": 0x00040000,
    "STARTALIGN": 0x00080000,
    "MEM_64": 0x00100000,
    "WINDOW": 0x00200000,
    "MUXED": 0x00400000,
    "SYSRAM": 0x01000000,
    "SYSRAM_DRIVER_MANAGED": 0x02000000,
    "SYSRAM_MERGEABLE": 0x04000000,
    "EXCLUSIVE": 0x08000000,
    "DISABLED": 0x10000000,
    "UNSET": 0x20000000,
    "AUTO": 0x40000000,
    "BUSY": 0x80000000,
}

NAMES: dict[str, int] = {**TYPES, **BITS}
_TYPE_BY_VALUE = {v: k for k, v in TYPES.items()}
_BITS_ASCENDING = sorted(BITS.items(), key=lambda kv: kv[1])
FLAGS_MAX = (1 << 64) - 1
# Longest numeric flag text worth converting: 0x, 16 hex digits and room for leading zeros.
_MAX_NUMBER_CHARS = 40


def format_flags(flags: int) -> str:
    """Canonical text of ``flags``."""
    if flags == 0:
        return "0"
    parts: list[str] = []
    rest = flags
    type_value = flags & TYPE_MASK
    if type_value in _TYPE_BY_VALUE:
        parts.append(_TYPE_BY_VALUE[type_value])
        rest &= ~TYPE_MASK
    for name, bit in _BITS_ASCENDING:
        if rest & bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def parse_flags(text: str) -> int:
    """``MEM|BUSY``, ``0x80000200``, ``0`` or any ``|`` mix of names and numbers."""
    value = 0
    for part in text.split("|"):
        if not part:
            raise ValueError(f"empty flag in {text!r}")
        if part in NAMES:
            value |= NAMES[part]
            continue
        if len(part) > _MAX_NUMBER_CHARS:
            # Never converted: Python refuses decimal strings over 4,300 digits.
            raise ValueError(f"flag value {part[:12]}... out of range")
        try:
            number = int(part, 0)
        except ValueError:
            known = ", ".join(NAMES)
            raise ValueError(f"unknown flag {part!r} (known: {known})") from None
        if not 0 <= number <= FLAGS_MAX:
            raise ValueError(f"flag value {part!r} out of range")
        value |= number
    return value
