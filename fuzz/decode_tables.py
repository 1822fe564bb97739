"""The values the decoder (:mod:`iomemfuzz.fuzz.decode`) draws field values from.

Values are chosen the way a kernel developer picks test inputs. Each numeric field starts
with a *mode* byte: the field's simplest value; an entry of a table of interesting values
(page and BAR edges, sizes 0/1/page-1/page/page+1, values near 2^64, and every start, end
and size of the default machine's /proc/iomem and /proc/ioports); a value already used by
an earlier field of the same kind in the Program (addresses and sizes are kept apart,
most recent first, with ``start + n`` and ``end - start + 1`` of each pair); such a
value nudged (+-1, +-page, halved, page rounded); a small number; a page frame; or 8 raw
bytes. Handle fields pick among the handles earlier lines bind, most recent first (first
those of the operations a HANDLE field names in its ``choices``, if it does), so
references almost always exist.

This module holds the tables: the mode byte of each kind of field, the interesting
values (generic, then the default machine's), the names and the nudges. Tables only
grow at the end, so that old bytes keep their meaning (see "Stability" in
:mod:`iomemfuzz.fuzz.decode`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache

from iomemfuzz.fuzz.flags import BITS, TYPES
from iomemfuzz.fuzz.ops import Arg, Kind

U64 = 1 << 64
U64_MAX = U64 - 1
PAGE = 0x1000

# Modes of numeric (ADDR/SIZE) fields: the mode byte modulo 16 picks one. Weights are the
# number of slots: interesting tables and earlier values dominate, raw bytes are rare.
SIMPLEST, TABLE, POOL, DERIVE, SMALL, FRAME, RAW, RAW32 = range(8)
NUM_MODES = (SIMPLEST, TABLE, TABLE, TABLE, POOL, POOL, POOL, DERIVE,
             DERIVE, DERIVE, SMALL, FRAME, RAW, TABLE, POOL, RAW)
INT_MODES = (SIMPLEST, SMALL, SMALL, SMALL, SMALL, SMALL, TABLE, RAW)
# Flags: mostly meaningful combinations; 32 raw bits sometimes, all 64 rarely.
FLAG_MODES = (SIMPLEST, TABLE, TABLE, TABLE, TABLE, TABLE, TABLE, TABLE, TABLE, TABLE,
              SMALL, RAW32, RAW32, RAW32, RAW32, RAW)

# Generic interesting values, independent of any machine. Append only.
GENERIC_ADDRS = (
    0x0, 0x1, 0xFFF, 0x1000, 0x1001, 0x9F000, 0xA0000, 0xC0000, 0xFFFFF, 0x100000,
    0xFFFF, 0x10000, 0xCF8, 0x3F8, 0x7FFFFFFF, 0x80000000, 0xFE000000, 0xFEE00000,
    0xFFFFFFFF, 0x100000000, 1 << 47, 1 << 63, U64 - PAGE, U64 - 2, U64_MAX,
)
GENERIC_SIZES = (
    0x0, 0x1, 0x2, 0x4, 0x7F, 0x80, 0xFF, 0x100, 0x7FF, 0x800, 0xFFF, 0x1000, 0x1001,
    0x2000, 0x4000, 0x10000, 0x100000, 0x200000, 0x1000000, 0x10000000, 0x100000000,
    1 << 63, U64 - PAGE, U64_MAX,
)
GENERIC_INTS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 31, 32, 255, 256, 4096, 65535,
                (1 << 31) - 1, (1 << 32) - 1, U64_MAX)
_MEM, _IO = TYPES["MEM"], TYPES["IO"]
_B = BITS
GENERIC_FLAGS = (
    0, _MEM, _IO, _MEM | _B["BUSY"], _IO | _B["BUSY"], _MEM | _B["BUSY"] | _B["EXCLUSIVE"],
    _MEM | _B["BUSY"] | _B["MUXED"], _IO | _B["BUSY"] | _B["MUXED"], _B["MUXED"],
    _MEM | _B["SYSRAM"], _MEM | _B["SYSRAM"] | _B["BUSY"],
    _MEM | _B["SYSRAM"] | _B["EXCLUSIVE"], _MEM | _B["SYSRAM"] | _B["BUSY"] | _B["EXCLUSIVE"],
    _MEM | _B["PREFETCH"], _MEM | _B["PREFETCH"] | _B["MEM_64"], _MEM | _B["DISABLED"],
    _MEM | _B["UNSET"], _B["BUSY"], _B["EXCLUSIVE"], _MEM | _B["SYSRAM_DRIVER_MANAGED"],
    _MEM | _B["WINDOW"], _IO | _B["WINDOW"], TYPES["REG"], TYPES["IRQ"],
)
NAMES = ("", "drv", "dev", "a", "System RAM", "reserved", "PCI Bus 0000:00",
         "Kernel code", "dax", "Soft Reserved")
NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 :._-"
# A NAME field with suggestions (``Arg.choices``: test devices, BAR layouts, preemption
# points) takes one of its own names (simplest or suggested) for this many of the 256
# byte values; the rest pick uniformly among every name, or escape to a raw name.
OWN_NAME_BYTES = 192
MAX_NAME = 15

# Nudges of an earlier value (DERIVE mode). Append only.
TRANSFORMS: tuple[Callable[[int], int], ...] = (
    lambda v: v + 1,
    lambda v: v - 1,
    lambda v: v + 0xFFF,
    lambda v: v + PAGE,
    lambda v: v - PAGE,
    lambda v: v >> 1,
    lambda v: v << 1,
    lambda v: v & ~(PAGE - 1),
    lambda v: (v + PAGE - 1) & ~(PAGE - 1),
    lambda v: v + 0x7F,
    lambda v: v + 0x80,
    lambda v: v + 0xFF,
    lambda v: v + 0x800,
    lambda v: v - 0x800,
    lambda v: v + 0x100,
    lambda v: -v,
)


def field_modes(kind: Kind) -> tuple[int, ...]:
    """The mode table of a numeric field's kind (its mode byte indexes it)."""
    if kind is Kind.INT:
        return INT_MODES
    if kind is Kind.FLAGS:
        return FLAG_MODES
    return NUM_MODES


def fit(value: int, a: Arg) -> int:
    """Bring any integer into the field's bounds (wrapping, so every value is reachable)."""
    value &= U64_MAX
    if a.lo <= value <= a.hi:
        return value
    return a.lo + (value - a.lo) % (a.hi - a.lo + 1)


def _dedup(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(v & U64_MAX for v in values))


@cache
def machine_values() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(addresses, sizes) worth trying on the default machine: every node's start, end,
    end + 1, a byte inside its first page and the page after it; its size and half size."""
    # Imported here so that importing this module does not build a kernel; the atheris
    # target imports the model under instrumentation first.
    from iomemfuzz.model.kernel import Kernel
    from iomemfuzz.model.resource_check import preorder

    kernel = Kernel()
    addrs: list[int] = []
    sizes: list[int] = []
    for root in (kernel.resources.iomem_resource, kernel.resources.ioport_resource):
        for node, depth in preorder(root):
            if depth == 0:
                continue
            size = node.end - node.start + 1
            addrs += [node.start, node.end, node.end + 1, node.start + 0x800,
                      node.start + PAGE]
            sizes += [size, size >> 1]
    return tuple(sorted(set(addrs))), tuple(sorted(set(sizes)))


@cache
def machine_names() -> tuple[str, ...]:
    """Names that exist on the default machine: its PCI devices ("0000:00:02.0") and the
    names of its resources, for NAME fields such as a device to open or remove."""
    from iomemfuzz.model.kernel import Kernel
    from iomemfuzz.model.resource_check import preorder

    kernel = Kernel()
    names = [getattr(spec, "name", "") for spec in getattr(kernel.machine, "pci_devices", ())]
    for node, _depth in preorder(kernel.resources.iomem_resource):
        names.append(node.name or "")
    return tuple(n for n in dict.fromkeys(names) if n and n not in NAMES)


@cache
def tables() -> dict[Kind, tuple[int, ...]]:
    """Interesting values per kind: generic ones first (stable), then the machine's."""
    addrs, sizes = machine_values()
    return {
        Kind.ADDR: _dedup(GENERIC_ADDRS + addrs)[:256],
        Kind.SIZE: _dedup(GENERIC_SIZES + sizes)[:256],
        Kind.INT: GENERIC_INTS,
        Kind.FLAGS: GENERIC_FLAGS,
    }

