"""include/linux/ioport.h as an executable model, in the header's order: ``struct
resource``, the IORESOURCE_* flags, the IORES_DESC_* descriptors, the inline helpers and
the region macros over ``__request_region`` / ``__release_region``.

Semantics are those of the Debian 6.1 kernel (6.1.192 with stable backports, "6.1-deb",
which has ``resource_set_size``/``resource_set_range``). Spec references (§n, Bn) are to
the project's kernel-semantics spec, as everywhere in the model (README.md).

The region macros are :class:`RegionMacros`, a mixin of
:class:`~iomemfuzz.model.resource_tree.ResourceTree`: in C they expand to calls on the
two global roots, which in the model belong to a tree object. The module ends with the
model's printk of a struct resource (%pR/%pr, lib/vsprintf.c), which ``repr`` uses; it
models no ioport.h function, so it sits after all of them.

Model-only, at the top because ``struct resource``'s list walk needs it: ``_WALK``, the
bound on every list or tree walk of the tree code (model/resource.py and its
continuations). Misused public operations can build cyclic lists; the kernel would spin
forever with the lock held, the model gives up after ``_WALK_LIMIT`` steps.
"""

from __future__ import annotations

from collections.abc import Iterator

from .generation import changed

__all__ = [
    "DESC_NAMES",
    "FLAG_NAMES",
    "IORESOURCE_AUTO",
    "IORESOURCE_BITS",
    "IORESOURCE_BUS",
    "IORESOURCE_BUSY",
    "IORESOURCE_CACHEABLE",
    "IORESOURCE_DISABLED",
    "IORESOURCE_DMA",
    "IORESOURCE_EXCLUSIVE",
    "IORESOURCE_EXT_TYPE_BITS",
    "IORESOURCE_IO",
    "IORESOURCE_IRQ",
    "IORESOURCE_MEM",
    "IORESOURCE_MEM_64",
    "IORESOURCE_MUXED",
    "IORESOURCE_PCI_EA_BEI",
    "IORESOURCE_PCI_FIXED",
    "IORESOURCE_PREFETCH",
    "IORESOURCE_RANGELENGTH",
    "IORESOURCE_READONLY",
    "IORESOURCE_REG",
    "IORESOURCE_ROM_ENABLE",
    "IORESOURCE_ROM_SHADOW",
    "IORESOURCE_SHADOWABLE",
    "IORESOURCE_SIZEALIGN",
    "IORESOURCE_STARTALIGN",
    "IORESOURCE_SYSRAM",
    "IORESOURCE_SYSRAM_DRIVER_MANAGED",
    "IORESOURCE_SYSRAM_MERGEABLE",
    "IORESOURCE_SYSTEM_RAM",
    "IORESOURCE_TYPE_BITS",
    "IORESOURCE_UNSET",
    "IORESOURCE_WINDOW",
    "IORES_DESC_ACPI_NV_STORAGE",
    "IORES_DESC_ACPI_TABLES",
    "IORES_DESC_CRASH_KERNEL",
    "IORES_DESC_CXL",
    "IORES_DESC_DEVICE_PRIVATE_MEMORY",
    "IORES_DESC_NONE",
    "IORES_DESC_PERSISTENT_MEMORY",
    "IORES_DESC_PERSISTENT_MEMORY_LEGACY",
    "IORES_DESC_RESERVED",
    "IORES_DESC_SOFT_RESERVED",
    "REGION_MACROS",
    "U64_MAX",
    "RegionMacros",
    "Resource",
    "format_resource",
    "resource_contains",
    "resource_ext_type",
    "resource_intersection",
    "resource_overlaps",
    "resource_set_range",
    "resource_set_size",
    "resource_size",
    "resource_type",
    "resource_union",
]

# resource_size_t is a u64 on x86-64: every address sum wraps at 2^64.
U64_MAX = (1 << 64) - 1

# Upper bound on the steps of any single list or tree walk. Real trees have a few hundred
# nodes (a big server a few thousand); only a cyclic list, built by misusing stale
# pointers, gets anywhere near this, and every walk over one costs the full bound.
_WALK_LIMIT = 1 << 14
# Iterated as ``for _ in _WALK``: a tuple yields the same object each step, so the bound
# costs no allocation in the hot loops (a range would create an int per step).
_WALK = (None,) * _WALK_LIMIT


# --- struct resource -------------------------------------------------------------------


class Resource:
    """``struct resource`` (include/linux/ioport.h): an inclusive [start, end] range.

    ``parent``/``sibling``/``child`` are the kernel's pointers: children form a singly linked
    list in ascending order, ``parent.child`` is the first. Two model-only fields track the
    allocator: ``slab`` says the struct came from kmalloc (``alloc_resource()``, so
    ``free_resource()`` really frees it), ``freed`` that it has been freed; touching a freed
    node through an entry point is reported as USE_AFTER_FREE. Identity is object identity.
    """

    __slots__ = ("child", "desc", "end", "flags", "freed", "name", "parent", "sibling", "slab",
                 "start")

    # desc 0 is IORES_DESC_NONE (the descriptors come after the struct, as in the header).
    def __init__(self, start: int = 0, end: int = 0, name: str | None = None, flags: int = 0,
                 desc: int = 0) -> None:
        self.start = start
        self.end = end
        self.name = name
        self.flags = flags
        self.desc = desc
        self.parent: Resource | None = None
        self.sibling: Resource | None = None
        self.child: Resource | None = None
        self.slab = False
        self.freed = False

    def children(self) -> Iterator[Resource]:
        """The child list in list order (stops after _WALK_LIMIT entries on a cyclic list)."""
        c = self.child
        for _ in _WALK:
            if c is None:
                return
            yield c
            c = c.sibling

    def __repr__(self) -> str:
        return format_resource(self)


# --- Flags (the values are ABI, spec §1.2) ----------------------------------------------

IORESOURCE_BITS = 0x000000FF
IORESOURCE_TYPE_BITS = 0x00001F00
IORESOURCE_IO = 0x00000100
IORESOURCE_MEM = 0x00000200
IORESOURCE_REG = 0x00000300
IORESOURCE_IRQ = 0x00000400
IORESOURCE_DMA = 0x00000800
IORESOURCE_BUS = 0x00001000
IORESOURCE_PREFETCH = 0x00002000
IORESOURCE_READONLY = 0x00004000
IORESOURCE_CACHEABLE = 0x00008000
IORESOURCE_RANGELENGTH = 0x00010000
IORESOURCE_SHADOWABLE = 0x00020000
IORESOURCE_SIZEALIGN = 0x00040000
IORESOURCE_STARTALIGN = 0x00080000
IORESOURCE_MEM_64 = 0x00100000
IORESOURCE_WINDOW = 0x00200000
IORESOURCE_MUXED = 0x00400000
IORESOURCE_EXT_TYPE_BITS = 0x01000000
IORESOURCE_SYSRAM = 0x01000000
IORESOURCE_SYSRAM_DRIVER_MANAGED = 0x02000000
IORESOURCE_SYSRAM_MERGEABLE = 0x04000000
IORESOURCE_EXCLUSIVE = 0x08000000
IORESOURCE_DISABLED = 0x10000000
IORESOURCE_UNSET = 0x20000000
IORESOURCE_AUTO = 0x40000000
IORESOURCE_BUSY = 0x80000000
IORESOURCE_SYSTEM_RAM = IORESOURCE_MEM | IORESOURCE_SYSRAM
# PCI bits inside IORESOURCE_BITS (shared with the ROM control bits).
IORESOURCE_ROM_ENABLE = 1 << 0
IORESOURCE_ROM_SHADOW = 1 << 1
IORESOURCE_PCI_FIXED = 1 << 4
IORESOURCE_PCI_EA_BEI = 1 << 5

# Single-bit flag names, for reports and decoding (type values are not bits: see
# resource_type()).
FLAG_NAMES: dict[int, str] = {
    IORESOURCE_PREFETCH: "PREFETCH",
    IORESOURCE_READONLY: "READONLY",
    IORESOURCE_CACHEABLE: "CACHEABLE",
    IORESOURCE_RANGELENGTH: "RANGELENGTH",
    IORESOURCE_SHADOWABLE: "SHADOWABLE",
    IORESOURCE_SIZEALIGN: "SIZEALIGN",
    IORESOURCE_STARTALIGN: "STARTALIGN",
    IORESOURCE_MEM_64: "MEM_64",
    IORESOURCE_WINDOW: "WINDOW",
    IORESOURCE_MUXED: "MUXED",
    IORESOURCE_SYSRAM: "SYSRAM",
    IORESOURCE_SYSRAM_DRIVER_MANAGED: "SYSRAM_DRIVER_MANAGED",
    IORESOURCE_SYSRAM_MERGEABLE: "SYSRAM_MERGEABLE",
    IORESOURCE_EXCLUSIVE: "EXCLUSIVE",
    IORESOURCE_DISABLED: "DISABLED",
    IORESOURCE_UNSET: "UNSET",
    IORESOURCE_AUTO: "AUTO",
    IORESOURCE_BUSY: "BUSY",
}

# --- Descriptors (spec §1.3) -------------------------------------------------------------

IORES_DESC_NONE = 0
IORES_DESC_CRASH_KERNEL = 1
IORES_DESC_ACPI_TABLES = 2
IORES_DESC_ACPI_NV_STORAGE = 3
IORES_DESC_PERSISTENT_MEMORY = 4
IORES_DESC_PERSISTENT_MEMORY_LEGACY = 5
IORES_DESC_DEVICE_PRIVATE_MEMORY = 6
IORES_DESC_RESERVED = 7
IORES_DESC_SOFT_RESERVED = 8
IORES_DESC_CXL = 9

DESC_NAMES: dict[int, str] = {
    IORES_DESC_NONE: "NONE",
    IORES_DESC_CRASH_KERNEL: "CRASH_KERNEL",
    IORES_DESC_ACPI_TABLES: "ACPI_TABLES",
    IORES_DESC_ACPI_NV_STORAGE: "ACPI_NV_STORAGE",
    IORES_DESC_PERSISTENT_MEMORY: "PERSISTENT_MEMORY",
    IORES_DESC_PERSISTENT_MEMORY_LEGACY: "PERSISTENT_MEMORY_LEGACY",
    IORES_DESC_DEVICE_PRIVATE_MEMORY: "DEVICE_PRIVATE_MEMORY",
    IORES_DESC_RESERVED: "RESERVED",
    IORES_DESC_SOFT_RESERVED: "SOFT_RESERVED",
    IORES_DESC_CXL: "CXL",
}

# --- inline helpers ------------------------------------------------------------------------


def resource_set_size(res: Resource, size: int) -> None:
    """Models `resource_set_size()`, include/linux/ioport.h, v6.1 (6.1-deb backport)."""
    changed()
    res.end = (res.start + size - 1) & U64_MAX


def resource_set_range(res: Resource, start: int, size: int) -> None:
    """Models `resource_set_range()`, include/linux/ioport.h, v6.1 (6.1-deb backport)."""
    changed()
    res.start = start
    res.end = (start + size - 1) & U64_MAX


def resource_size(res: Resource) -> int:
    """Models `resource_size()`, include/linux/ioport.h, v6.1 (6.1-deb).

    end - start + 1 in u64: [0, 2^64-1] has size 0, an empty node (end = start - 1) too."""
    return (res.end - res.start + 1) & U64_MAX


def resource_type(res: Resource) -> int:
    """Models `resource_type()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
    return res.flags & IORESOURCE_TYPE_BITS


def resource_ext_type(res: Resource) -> int:
    """Models `resource_ext_type()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
    return res.flags & IORESOURCE_EXT_TYPE_BITS


def resource_contains(r1: Resource, r2: Resource) -> bool:
    """Models `resource_contains()`, include/linux/ioport.h, v6.1 (6.1-deb).

    False when the types differ or either is UNSET; otherwise plain range containment."""
    if r1.flags & IORESOURCE_TYPE_BITS != r2.flags & IORESOURCE_TYPE_BITS:
        return False
    if (r1.flags | r2.flags) & IORESOURCE_UNSET:
        return False
    return r1.start <= r2.start and r1.end >= r2.end


def resource_overlaps(r1: Resource, r2: Resource) -> bool:
    """Models `resource_overlaps()`, include/linux/ioport.h, v6.1 (6.1-deb). Numbers only."""
    return r1.start <= r2.end and r1.end >= r2.start


def resource_intersection(r1: Resource, r2: Resource, out: Resource) -> bool:
    """Models `resource_intersection()`, include/linux/ioport.h, v6.1 (6.1-deb).

    On no overlap returns False and leaves ``out`` untouched; only start/end are written."""
    if not (r1.start <= r2.end and r1.end >= r2.start):
        return False
    changed()
    out.start = max(r1.start, r2.start)
    out.end = min(r1.end, r2.end)
    return True


def resource_union(r1: Resource, r2: Resource, out: Resource) -> bool:
    """Models `resource_union()`, include/linux/ioport.h, v6.1 (6.1-deb).

    Adjacent but disjoint ranges are not merged; on False ``out`` is untouched."""
    if not (r1.start <= r2.end and r1.end >= r2.start):
        return False
    changed()
    out.start = min(r1.start, r2.start)
    out.end = max(r1.end, r2.end)
    return True


# --- region macros over __request_region / __release_region ---------------------------------

# Method name -> (root attribute of ResourceTree, flags it passes): the same macros as data,
# for decoders and tests that go through all of them.
REGION_MACROS: dict[str, tuple[str, int]] = {
    "request_region": ("ioport_resource", 0),
    "request_muxed_region": ("ioport_resource", IORESOURCE_MUXED),
    "request_mem_region": ("iomem_resource", 0),
    "request_mem_region_muxed": ("iomem_resource", IORESOURCE_MUXED),
    "request_mem_region_exclusive": ("iomem_resource", IORESOURCE_EXCLUSIVE),
    "release_region": ("ioport_resource", 0),
    "release_mem_region": ("iomem_resource", 0),
}


class RegionMacros:
    """The macros as methods of ResourceTree (this is one of its mixins): each passes one
    of the tree's two roots to ``_request_region`` / ``_release_region``, which the tree
    defines (model/resource_region.py)."""

    __slots__ = ()

    def request_region(self, start: int, n: int, name: str | None):
        """Models `request_region()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
        return self._request_region(self.ioport_resource, start, n, name, 0)

    def request_muxed_region(self, start: int, n: int, name: str | None):
        """Models `request_muxed_region()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
        return self._request_region(self.ioport_resource, start, n, name, IORESOURCE_MUXED)

    def _request_mem_region(self, start: int, n: int, name: str | None, excl: int):
        """Models `__request_mem_region()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
        return self._request_region(self.iomem_resource, start, n, name, excl)

    def request_mem_region(self, start: int, n: int, name: str | None):
        """Models `request_mem_region()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
        return self._request_region(self.iomem_resource, start, n, name, 0)

    def request_mem_region_muxed(self, start: int, n: int, name: str | None):
        """Models `request_mem_region_muxed()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
        return self._request_region(self.iomem_resource, start, n, name, IORESOURCE_MUXED)

    def request_mem_region_exclusive(self, start: int, n: int, name: str | None):
        """Models `request_mem_region_exclusive()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
        return self._request_region(self.iomem_resource, start, n, name, IORESOURCE_EXCLUSIVE)

    def release_region(self, start: int, n: int) -> None:
        """Models `release_region()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
        self._release_region(self.ioport_resource, start, n)

    def release_mem_region(self, start: int, n: int) -> None:
        """Models `release_mem_region()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
        self._release_region(self.iomem_resource, start, n)


# --- printk of a struct resource (lib/vsprintf.c) --------------------------------------------

# %pR prefixes and number formats by type (lib/vsprintf.c resource_string()); the first
# row whose bit is set wins, in the kernel's order, so REG (0x300) prints as "io".
_PRINTK_TYPES: tuple[tuple[int, str, str], ...] = (
    (IORESOURCE_IO, "io  ", "0x{:04x}"),
    (IORESOURCE_MEM, "mem ", "0x{:08x}"),
    (IORESOURCE_IRQ, "irq ", "{:d}"),
    (IORESOURCE_DMA, "dma ", "{:d}"),
    (IORESOURCE_BUS, "bus ", "{:02x}"),
)
_PRINTK_DECODE: tuple[tuple[int, str], ...] = (
    (IORESOURCE_MEM_64, " 64bit"),
    (IORESOURCE_PREFETCH, " pref"),
    (IORESOURCE_WINDOW, " window"),
    (IORESOURCE_DISABLED, " disabled"),
)


def format_resource(res: Resource, decode: bool = True) -> str:
    """Models `resource_string()` (the %pR / %pr printk formats), lib/vsprintf.c, v6.1.

    ``decode=True`` is %pR ("[mem 0x000a0000-0x000bffff 64bit pref]"), False is %pr
    ("[mem 0x000a0000-0x000bffff flags 0x200]")."""
    flags = res.flags
    prefix, number = "??? ", "0x{:08x}"
    for bit, type_prefix, type_number in _PRINTK_TYPES:
        if flags & bit:
            prefix, number = type_prefix, type_number
            break
    else:
        decode = False
    if decode and flags & IORESOURCE_UNSET:
        body = "size " + number.format(resource_size(res))
    elif res.start != res.end:
        body = number.format(res.start) + "-" + number.format(res.end)
    else:
        body = number.format(res.start)
    if decode:
        tail = "".join(text for bit, text in _PRINTK_DECODE if flags & bit)
    else:
        tail = f" flags {flags:#x}" if flags else " flags 0x0"
    return f"[{prefix}{body}{tail}]"


def _s(name: str | None) -> str:
    """printk's %s of a possibly NULL name."""
    return "(null)" if name is None else name
