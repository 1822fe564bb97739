"""The resource tree: kernel/resource.c and include/linux/ioport.h as an executable model.

Semantics are those of the Debian 6.1 kernel (6.1.192 with stable backports, "6.1-deb");
the KernelProfile switches in the few places where other kernels differ. Spec references
(§n, Bn) are to ``shared/spec/kernel-semantics.md``.

Shape follows the kernel on purpose:

* :class:`Resource` keeps the kernel's pointer structure (parent / sibling / child), and the
  tree links the caller's object, so stale-pointer quirks (a released node keeps its child
  pointer, §2.3; ``__request_resource`` does not clear ``new.child``, B29h) happen here too.
* Kernel ``__foo`` workers are ``_foo`` methods of :class:`ResourceTree` (Python mangles
  ``__names`` inside classes); the locked wrappers carry the kernel's public names.
* Failures are the kernel's return values (negative errno, ``None`` for NULL, the conflicting
  node). Warnings are Events on the Log. Crashes the kernel would suffer are Events too
  (NULL_DEREF, USE_AFTER_FREE, HANG); after one, the entry point returns its ordinary
  failure value (release: -EINVAL, request/insert/adjust: -EBUSY or the root as conflict,
  region request: None) and leaves the tree as it was wherever the model can. The real
  kernel would have oopsed holding ``resource_lock``; the "kernel stays sane" oracle reports
  the event, so what happens afterwards only has to be deterministic.
* Every list or tree walk is bounded. Misused public operations can build cyclic lists (for
  example relinking a node whose stale ``child`` still points into the tree); the kernel
  would spin forever with the lock held, the model emits HANG and gives up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .errno import EBUSY, EINVAL, ENODEV, ENOMEM, ERANGE
from .event import (
    DUPLICATED_INSERTION,
    EXPANDED_RESOURCE,
    HANG,
    INFO,
    NULL_DEREF,
    RELEASE_NONEXISTENT,
    RESOURCE_COLLISION,
    USE_AFTER_FREE,
    WARN,
    Log,
)
from .profile import CLAIM_FAIL, DEFAULT, KernelProfile
from .sched import WOULD_BLOCK
from .sched import WouldBlock as _WouldBlock

__all__ = [  # noqa: RUF022 - grouped as the spec lists them, not alphabetically
    "U64_MAX", "PAGE_SHIFT", "PAGE_SIZE", "PAGE_MASK", "IO_SPACE_LIMIT", "MAX_IORES_LEVEL",
    "PHYSMEM_END", "GFR_DESCENDING", "GFR_REQUEST_REGION", "GFR_DEFAULT_ALIGN",
    "REGION_INTERSECTS", "REGION_DISJOINT", "REGION_MIXED", "WOULD_BLOCK",
    "FLAG_NAMES", "DESC_NAMES", "REGION_MACROS",
    "I1_NESTING", "I2_ORDER", "I2_OVERLAP", "I3_EMPTY", "I3_INVERTED", "I4_PARENT", "I4_SHARED",
    "Resource", "RegionClaim", "ResourceTree",
    "resource_size", "resource_type", "resource_ext_type", "resource_contains",
    "resource_overlaps", "resource_intersection", "resource_union", "resource_set_size",
    "resource_set_range", "resource_alignment", "format_resource",
    "TreeProblem", "tree_problems", "problem_kind", "preorder", "descendants",
    "generation",
]

# --- Architecture (x86-64) -------------------------------------------------------------

U64_MAX = (1 << 64) - 1
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = U64_MAX & ~(PAGE_SIZE - 1)
IO_SPACE_LIMIT = 0xFFFF
# /proc/iomem indents at most this many levels (enum in kernel/resource.c).
MAX_IORES_LEVEL = 5
# PHYSMEM_END with 4-level paging and a direct map KASLR did not trim: (1 << 46) - 1
# (arch/x86/mm/kaslr.c presets physmem_end to this). ResourceTree.physmem_end can override it.
PHYSMEM_END = (1 << 46) - 1
# get_free_mem_region() flags and its default alignment, 1 << PA_SECTION_SHIFT (27 on x86-64).
GFR_DESCENDING = 1 << 0
GFR_REQUEST_REGION = 1 << 1
GFR_DEFAULT_ALIGN = 1 << 27

# --- Flags (ioport.h; the values are ABI, spec §1.2) -------------------------------------

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

# region_intersects() answers (ioport.h enum).
REGION_INTERSECTS = 0
REGION_DISJOINT = 1
REGION_MIXED = 2

# The ioport.h convenience macros over __request_region / __release_region:
# method name -> (root attribute of ResourceTree, flags it passes).
REGION_MACROS: dict[str, tuple[str, int]] = {
    "request_region": ("ioport_resource", 0),
    "request_muxed_region": ("ioport_resource", IORESOURCE_MUXED),
    "request_mem_region": ("iomem_resource", 0),
    "request_mem_region_muxed": ("iomem_resource", IORESOURCE_MUXED),
    "request_mem_region_exclusive": ("iomem_resource", IORESOURCE_EXCLUSIVE),
    "release_region": ("ioport_resource", 0),
    "release_mem_region": ("iomem_resource", 0),
}

_TYPE_EXT = IORESOURCE_TYPE_BITS | IORESOURCE_EXT_TYPE_BITS
_EXCLUSIVE_SYSTEM_RAM = IORESOURCE_SYSTEM_RAM | IORESOURCE_EXCLUSIVE
_SYSTEM_RAM_BUSY = IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY
_MEM_BUSY = IORESOURCE_MEM | IORESOURCE_BUSY
# x86 arch_remove_reservations(): the BIOS area below 4 GiB is never handed out.
_BIOS_ROM_BASE = 0xFFE00000
_BIOS_ROM_END = 0xFFFFFFFF

# Upper bound on the steps of any single list or tree walk. Real trees have a few hundred
# nodes (a big server a few thousand); only a cyclic list, built by misusing stale
# pointers, gets anywhere near this, and every walk over one costs the full bound.
_WALK_LIMIT = 1 << 14
# Iterated as ``for _ in _WALK``: a tuple yields the same object each step, so the bound
# costs no allocation in the hot loops (a range would create an int per step).
_WALK = (None,) * _WALK_LIMIT

# How many times this module changed a field of a Resource someone else may already see
# (a node linked in a tree, a struct the caller passed in), over all trees: the
# whole-state oracles re-walk the trees only when it moved since their last look. Writes
# to a struct this module allocated and has not handed out yet are not counted (nobody
# can have seen it). Outside this module only model/machine.py (building a new tree) and
# model/pci.py (a device's BAR resources) write Resource fields, and, as in the kernel,
# only to a node that is not linked or in the same call as a tree function that linked
# or unlinked it: nothing but this module changes a linked node behind its back.
_generation = 0


def _changed() -> None:
    global _generation
    _generation += 1


def generation() -> int:
    """Changes this module made to published Resource fields so far, in any tree (see
    ``_generation``): equal numbers mean no tree operation changed a node in between."""
    return _generation


class _Hang(Exception):
    """A walk exceeded _WALK_LIMIT steps: the kernel would loop forever here."""


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

    def __init__(self, start: int = 0, end: int = 0, name: str | None = None, flags: int = 0,
                 desc: int = IORES_DESC_NONE) -> None:
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


class RegionClaim:
    """One ``__request_region()`` call in flight across MUXED sleeps.

    The kernel keeps its allocated node and the container it has descended to in local
    variables while it sleeps, and retries from that container, not from the root. Pass the
    same RegionClaim to every attempt to get exactly that; it is reset once the call ends.
    """

    __slots__ = ("cur", "res")

    def __init__(self) -> None:
        self.res: Resource | None = None
        self.cur: Resource | None = None


# --- include/linux/ioport.h helpers -----------------------------------------------------


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
    _changed()
    out.start = max(r1.start, r2.start)
    out.end = min(r1.end, r2.end)
    return True


def resource_union(r1: Resource, r2: Resource, out: Resource) -> bool:
    """Models `resource_union()`, include/linux/ioport.h, v6.1 (6.1-deb).

    Adjacent but disjoint ranges are not merged; on False ``out`` is untouched."""
    if not (r1.start <= r2.end and r1.end >= r2.start):
        return False
    _changed()
    out.start = min(r1.start, r2.start)
    out.end = max(r1.end, r2.end)
    return True


def resource_set_size(res: Resource, size: int) -> None:
    """Models `resource_set_size()`, include/linux/ioport.h, v6.1 (6.1-deb backport)."""
    _changed()
    res.end = (res.start + size - 1) & U64_MAX


def resource_set_range(res: Resource, start: int, size: int) -> None:
    """Models `resource_set_range()`, include/linux/ioport.h, v6.1 (6.1-deb backport)."""
    _changed()
    res.start = start
    res.end = (start + size - 1) & U64_MAX


def resource_alignment(res: Resource) -> int:
    """Models `resource_alignment()`, kernel/resource.c, v6.1 (6.1-deb). 0 = invalid."""
    mode = res.flags & (IORESOURCE_SIZEALIGN | IORESOURCE_STARTALIGN)
    if mode == IORESOURCE_SIZEALIGN:
        return resource_size(res)
    if mode == IORESOURCE_STARTALIGN:
        return res.start
    return 0


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


def _align(x: int, a: int) -> int:
    """The kernel's ALIGN(x, a) in u64 (a is expected to be a power of two; others give
    whatever the macro gives)."""
    mask = (a - 1) & U64_MAX
    return ((x + mask) & U64_MAX) & ~mask & U64_MAX


def _next_resource(p: Resource, skip_children: bool) -> Resource | None:
    """next_resource() / next_resource_skip_children(): pre-order successor through the
    parent pointers. Climbing does not stop at the walk's own root, exactly as in C."""
    if not skip_children and p.child is not None:
        return p.child
    for _ in _WALK:
        if p.sibling is not None or p.parent is None:
            return p.sibling
        p = p.parent
    raise _Hang


# --- the tree ----------------------------------------------------------------------------


class ResourceTree:
    """Both resource roots of one kernel, plus the operations of kernel/resource.c.

    Hooks (set by the Kernel that owns the tree; all default to None):

    * ``revoke_hook(res)`` — ``revoke_iomem()``: run after a successful ``__request_region``
      whose *argument* parent is ``iomem_resource`` (and by ``request_free_mem_region``).
    * ``claim_veto_hook(start, end) -> bool`` — design alternative (profile
      ``claim_policy == "fail"``, B15): asked before a request whose argument parent is
      ``iomem_resource``; True makes the request fail (NULL) instead of claiming.
    * ``muxed_wake_hook()`` — ``wake_up(&muxed_resource_wait)``: run when
      ``__release_region`` frees a MUXED node. There is one global wait queue, so every
      sleeper wakes and retries, whatever range it waits for.
    """

    __slots__ = (
        "_claim_fail",
        "_io_strict",
        "_once",
        "_ri_nested",
        "_strict_checks",
        "_v516",
        "_walk_first_lvl",
        "claim_veto_hook",
        "iomem_resource",
        "ioport_resource",
        "log",
        "muxed_wake_hook",
        "physmem_end",
        "profile",
        "revoke_hook",
    )

    def __init__(self, profile: KernelProfile = DEFAULT, log: Log | None = None) -> None:
        self.profile = profile
        self.log = log if log is not None else Log()
        self.iomem_resource = Resource(0, U64_MAX, "PCI mem", IORESOURCE_MEM)
        self.ioport_resource = Resource(0, IO_SPACE_LIMIT, "PCI IO", IORESOURCE_IO)
        self.revoke_hook: Callable[[Resource], object] | None = None
        self.claim_veto_hook: Callable[[int, int], bool] | None = None
        self.muxed_wake_hook: Callable[[], object] | None = None
        self.physmem_end = PHYSMEM_END
        # WARN_ON_ONCE sites that have fired in this boot.
        self._once: set[str] = set()
        # The profile is frozen: read the switches once, the hot paths test plain attributes.
        self._claim_fail = profile.claim_policy == CLAIM_FAIL
        self._ri_nested = profile.region_intersects_nested
        self._v516 = profile.iomem_is_exclusive_v516
        self._strict_checks = profile.strict_iomem_checks
        self._io_strict = profile.io_strict_devmem
        self._walk_first_lvl = not profile.walkers_nested

    # --- events ---------------------------------------------------------------------------

    def _null_deref(self, function: str, what: str) -> None:
        self.log.emit(NULL_DEREF, f"BUG: kernel NULL pointer dereference in {function}: {what}",
                      function=function)

    def _hang(self, function: str, what: str) -> None:
        self.log.emit(HANG, f"watchdog: BUG: soft lockup in {function}: {what}",
                      function=function)

    def _use_after_free(self, function: str, *nodes: Resource | None) -> bool:
        """Report (and return True) if an argument node has been freed."""
        for res in nodes:
            if res is not None and res.freed:
                self.log.emit(USE_AFTER_FREE,
                              f"BUG: KASAN: use-after-free in {function}: struct resource "
                              f"{_s(res.name)} {format_resource(res)} was freed",
                              function=function, name=_s(res.name), start=res.start,
                              end=res.end)
                return True
        return False

    def _warn_once(self, site: str, text: str) -> None:
        if site not in self._once:
            self._once.add(site)
            self.log.emit(WARN, text, function=site)

    @staticmethod
    def _free_resource(res: Resource | None) -> None:
        """free_resource(): only kmalloc'ed structs are really freed (memblock and static
        ones are leaked or kept), so only those can later be used after free."""
        if res is not None and res.slab:
            _changed()
            res.freed = True

    @staticmethod
    def _alloc_resource() -> Resource:
        """alloc_resource(): a zeroed kmalloc'ed struct (allocation never fails here)."""
        res = Resource()
        res.slab = True
        return res

    # --- request / release ----------------------------------------------------------------

    def _request_resource(self, root: Resource, new: Resource) -> Resource | None:
        """Models `__request_resource()`, kernel/resource.c, v6.1 (6.1-deb).

        Links ``new`` into ``root``'s child list and returns None, or returns the conflict:
        ``root`` when the range is invalid or outside root, else the first (lowest) child
        that overlaps. No descent, no flag checks; ``new.child`` is left as it is (B29h)."""
        start = new.start
        end = new.end
        if end < start or start < root.start or end > root.end:
            return root
        prev = None
        tmp = root.child
        for _ in _WALK:
            if tmp is None or tmp.start > end:
                _changed()
                new.sibling = tmp
                if prev is None:
                    root.child = new
                else:
                    prev.sibling = new
                new.parent = root
                return None
            if tmp.end >= start:
                return tmp
            prev = tmp
            tmp = tmp.sibling
        self._hang("__request_resource", "child list of " + _s(root.name) + " is cyclic")
        return root

    def request_resource_conflict(self, root: Resource, new: Resource) -> Resource | None:
        """Models `request_resource_conflict()`, kernel/resource.c, v6.1 (6.1-deb)."""
        if self._use_after_free("request_resource_conflict", root, new):
            return root
        return self._request_resource(root, new)

    def request_resource(self, root: Resource, new: Resource) -> int:
        """Models `request_resource()`, kernel/resource.c, v6.1 (6.1-deb).

        0, or -EBUSY for any conflict (an invalid range too, never -EINVAL)."""
        return -EBUSY if self.request_resource_conflict(root, new) is not None else 0

    def devm_request_resource(self, dev: str, root: Resource, new: Resource) -> int:
        """Models `devm_request_resource()`, kernel/resource.c, v6.1 (6.1-deb).

        ``dev`` is the device name for the message; the devres bookkeeping (release on
        driver detach) belongs to the device model that calls this."""
        conflict = self.request_resource_conflict(root, new)
        if conflict is None:
            return 0
        self.log.emit(RESOURCE_COLLISION,
                      f"{dev}: resource collision: {format_resource(new)} conflicts with "
                      f"{_s(conflict.name)} {format_resource(conflict)}",
                      device=dev, start=new.start, end=new.end, conflict=_s(conflict.name))
        return -EBUSY

    def _release_resource(self, old: Resource, release_child: bool) -> int:
        """Models `__release_resource()`, kernel/resource.c, v6.1 (6.1-deb).

        Finds ``old`` (by identity) in its parent's child list. release_child: unlink it with
        its subtree (old.child kept). Otherwise splice its children into its place. Either
        way old.parent = NULL and old.sibling is not cleared. -EINVAL if not found; a NULL
        ``old.parent`` is a NULL dereference in C (B29f)."""
        parent = old.parent
        if parent is None:
            self._null_deref("__release_resource", "old->parent is NULL")
            return -EINVAL
        prev: Resource | None = None
        tmp = parent.child
        for _ in _WALK:
            if tmp is None:
                return -EINVAL
            if tmp is old:
                break
            prev = tmp
            tmp = tmp.sibling
        else:
            self._hang("__release_resource", "child list of " + _s(parent.name) + " is cyclic")
            return -EINVAL
        _changed()
        if release_child or old.child is None:
            if prev is None:
                parent.child = old.sibling
            else:
                prev.sibling = old.sibling
            old.parent = None
            return 0
        # Find the last child first so that a cyclic child list leaves the tree untouched.
        last = old.child
        for _ in _WALK:
            if last.sibling is None:
                break
            last = last.sibling
        else:
            self._hang("__release_resource", "child list of " + _s(old.name) + " is cyclic")
            return -EINVAL
        chd = old.child
        while True:
            chd.parent = parent
            if chd is last:
                break
            chd = chd.sibling
        # Same order as C: link the first child in, then the last child to old's sibling.
        if prev is None:
            parent.child = old.child
        else:
            prev.sibling = old.child
        last.sibling = old.sibling
        old.parent = None
        return 0

    def release_resource(self, old: Resource) -> int:
        """Models `release_resource()`, kernel/resource.c, v6.1 (6.1-deb). 0 / -EINVAL."""
        if self._use_after_free("release_resource", old):
            return -EINVAL
        return self._release_resource(old, True)

    def remove_resource(self, old: Resource) -> int:
        """Models `remove_resource()`, kernel/resource.c, v6.1 (6.1-deb). 0 / -EINVAL.

        The children move up into old's place; old.child is left pointing at them."""
        if self._use_after_free("remove_resource", old):
            return -EINVAL
        return self._release_resource(old, False)

    def _release_child_resources(self, r: Resource) -> None:
        """Models `__release_child_resources()`, kernel/resource.c, v6.1 (6.1-deb).

        Detaches every descendant (post-order, like the C recursion): each loses parent,
        sibling and children, is logged, and is rebased to [0, size - 1] with its flags.
        Every pointer is cleared as it is followed, so this ends even on cyclic lists."""
        if r.child is not None:
            _changed()
        frames: list[list[Resource | None]] = [[r.child]]
        owners = [r]
        r.child = None
        while frames:
            frame = frames[-1]
            p = frame[0]
            if p is None:
                frames.pop()
                done = owners.pop()
                if frames:
                    self.log.emit(INFO, "release child resource " + format_resource(done),
                                  name=_s(done.name), start=done.start, end=done.end)
                    size = (done.end - done.start + 1) & U64_MAX
                    done.start = 0
                    done.end = (size - 1) & U64_MAX
                continue
            frame[0] = p.sibling
            p.parent = None
            p.sibling = None
            frames.append([p.child])
            owners.append(p)
            p.child = None

    def release_child_resources(self, r: Resource) -> None:
        """Models `release_child_resources()`, kernel/resource.c, v6.1 (6.1-deb)."""
        if self._use_after_free("release_child_resources", r):
            return
        self._release_child_resources(r)

    # --- insert ---------------------------------------------------------------------------

    def _insert_resource(self, parent: Resource, new: Resource) -> Resource | None:
        """Models `__insert_resource()`, kernel/resource.c, v6.1 (6.1-deb).

        Descends into any conflict that strictly contains ``new`` (busy or not), then adopts
        the run of siblings that lie inside ``new``. Returns None, ``parent`` (invalid
        range), ``new`` itself (duplicated insertion, WARN) or the sibling that overlaps
        only partly (nothing changed)."""
        for _ in _WALK:
            first = self._request_resource(parent, new)
            if first is None or first is parent:
                return first
            if first is new:
                self.log.emit(DUPLICATED_INSERTION,
                              "WARNING: kernel/resource.c: __insert_resource: duplicated "
                              "insertion of " + _s(new.name) + " " + format_resource(new),
                              name=_s(new.name), start=new.start, end=new.end)
                return first
            if first.start > new.start or first.end < new.end:
                break
            if first.start == new.start and first.end == new.end:
                break
            parent = first
        else:
            self._hang("__insert_resource", "descent does not terminate")
            return parent
        nxt = first
        for _ in _WALK:
            if nxt.start < new.start or nxt.end > new.end:
                return nxt
            if nxt.sibling is None or nxt.sibling.start > new.end:
                break
            nxt = nxt.sibling
        else:
            self._hang("__insert_resource", "child list of " + _s(parent.name) + " is cyclic")
            return parent
        _changed()
        new.parent = parent
        new.sibling = nxt.sibling
        new.child = first
        nxt.sibling = None
        adopted: Resource | None = first
        while adopted is not None:
            adopted.parent = new
            adopted = adopted.sibling
        if parent.child is first:
            parent.child = new
        else:
            # first was reached by walking parent's list, so this walk finds it.
            prev = parent.child
            while prev.sibling is not first:
                prev = prev.sibling
            prev.sibling = new
        return None

    def insert_resource_conflict(self, parent: Resource, new: Resource) -> Resource | None:
        """Models `insert_resource_conflict()`, kernel/resource.c, v6.1 (6.1-deb)."""
        if self._use_after_free("insert_resource_conflict", parent, new):
            return parent
        return self._insert_resource(parent, new)

    def insert_resource(self, parent: Resource, new: Resource) -> int:
        """Models `insert_resource()`, kernel/resource.c, v6.1 (6.1-deb). 0 / -EBUSY."""
        return -EBUSY if self.insert_resource_conflict(parent, new) is not None else 0

    def insert_resource_expand_to_fit(self, root: Resource, new: Resource) -> None:
        """Models `insert_resource_expand_to_fit()`, kernel/resource.c, v6.1 (6.1-deb).

        Returns at once if ``new.parent`` is set. Otherwise widens ``new`` over each conflict
        until it inserts; when the conflict is ``root`` it gives up silently and ``new`` is
        not inserted (B29b). A conflict that does not widen ``new`` (a duplicated insertion
        of a node reachable from the tree) repeats forever in C: HANG."""
        if self._use_after_free("insert_resource_expand_to_fit", root, new):
            return
        if new.parent is not None:
            return
        for _ in _WALK:
            conflict = self._insert_resource(root, new)
            if conflict is None or conflict is root:
                return
            before = (new.start, new.end)
            if conflict.start < new.start:
                _changed()
                new.start = conflict.start
            if conflict.end > new.end:
                _changed()
                new.end = conflict.end
            self.log.emit(EXPANDED_RESOURCE,
                          f"resource: Expanded resource {_s(new.name)} due to conflict with "
                          f"{_s(conflict.name)}",
                          name=_s(new.name), conflict=_s(conflict.name), start=new.start,
                          end=new.end)
            if (new.start, new.end) == before:
                # A failed __insert_resource changes nothing, so the next round would be
                # identical: the kernel spins here with the write lock held.
                self._hang("insert_resource_expand_to_fit",
                           f"conflict with {_s(conflict.name)} cannot be resolved")
                return
        self._hang("insert_resource_expand_to_fit", "does not terminate")

    # --- adjust ---------------------------------------------------------------------------

    def _adjust_resource(self, res: Resource, start: int, size: int) -> int:
        """Models `__adjust_resource()`, kernel/resource.c, v6.1 (6.1-deb).

        end = start + size - 1 wraps unchecked: size 0 leaves an empty node
        [start, start - 1] (B29a) and a size that wraps past 2^64 an inverted one.
        A parent whose child list does not hold ``res`` is a NULL dereference in C."""
        end = (start + size - 1) & U64_MAX
        parent = res.parent
        if parent is not None:
            if start < parent.start or end > parent.end:
                return -EBUSY
            if res.sibling is not None and res.sibling.start <= end:
                return -EBUSY
            tmp = parent.child
            if tmp is not res:
                for _ in _WALK:
                    if tmp is None:
                        self._null_deref("__adjust_resource",
                                         "res is not in its parent's child list")
                        return -EBUSY
                    if tmp.sibling is res:
                        break
                    tmp = tmp.sibling
                else:
                    self._hang("__adjust_resource",
                               "child list of " + _s(parent.name) + " is cyclic")
                    return -EBUSY
                if start <= tmp.end:
                    return -EBUSY
        child = res.child
        for _ in _WALK:
            if child is None:
                break
            if child.start < start or child.end > end:
                return -EBUSY
            child = child.sibling
        else:
            self._hang("__adjust_resource", "child list of " + _s(res.name) + " is cyclic")
            return -EBUSY
        _changed()
        res.start = start
        res.end = end
        return 0

    def adjust_resource(self, res: Resource, start: int, size: int) -> int:
        """Models `adjust_resource()`, kernel/resource.c, v6.1 (6.1-deb). 0 / -EBUSY."""
        if self._use_after_free("adjust_resource", res):
            return -EBUSY
        return self._adjust_resource(res, start, size)

    # --- allocation -----------------------------------------------------------------------

    def _arch_remove_reservations(self, avail: Resource) -> None:
        """Models `arch_remove_reservations()`, arch/x86/kernel/resource.c, v6.1.

        Only the BIOS ROM clip; the e820 clip is off (pci_use_e820 is false on firmware
        from 2023 on, and the model keeps no e820 table)."""
        # ``avail`` is __find_resource's scratch range: its writes are not counted.
        if not avail.flags & IORESOURCE_MEM:
            return
        if avail.end < _BIOS_ROM_BASE or avail.start > _BIOS_ROM_END:
            return
        low = _BIOS_ROM_BASE - avail.start if avail.start < _BIOS_ROM_BASE else 0
        high = avail.end - _BIOS_ROM_END if avail.end > _BIOS_ROM_END else 0
        if low > high:
            avail.end = _BIOS_ROM_BASE - 1
        else:
            avail.start = _BIOS_ROM_END + 1

    def _find_resource(self, root: Resource, old: Resource | None, new: Resource, size: int,
                       lo: int, hi: int, align: int,
                       alignf: Callable[[object, Resource, int, int], int] | None,
                       alignf_data: object) -> int:
        """Models `__find_resource()`, kernel/resource.c, v6.1 (6.1-deb)."""
        # One scratch range carried across iterations like the C ``tmp``: a clipped start
        # survives into the next gap when that gap ends at ``old``.
        this = root.child
        tmp = Resource(root.start, 0, flags=new.flags)
        if this is not None and this.start == root.start:
            tmp.start = old.start if this is old else (this.end + 1) & U64_MAX
            this = this.sibling
        for _ in _WALK:
            if this is not None:
                tmp.end = this.end if this is old else (this.start - 1) & U64_MAX
            else:
                tmp.end = root.end
            if tmp.end >= tmp.start:
                tmp.start = max(tmp.start, lo)
                tmp.end = min(tmp.end, hi)
                self._arch_remove_reservations(tmp)
                avail = Resource(_align(tmp.start, align), tmp.end,
                                 flags=new.flags & ~IORESOURCE_UNSET)
                if avail.start >= tmp.start:
                    if alignf is None:
                        alloc_start = avail.start
                    else:
                        alloc_start = alignf(alignf_data, avail, size, align) & U64_MAX
                    alloc = Resource(alloc_start, (alloc_start + size - 1) & U64_MAX,
                                     flags=avail.flags)
                    if alloc.start <= alloc.end and resource_contains(avail, alloc):
                        _changed()
                        new.start = alloc.start
                        new.end = alloc.end
                        return 0
            if this is None or this.end == root.end:
                return -EBUSY
            if this is not old:
                tmp.start = (this.end + 1) & U64_MAX
            this = this.sibling
        self._hang("__find_resource", "child list of " + _s(root.name) + " is cyclic")
        return -EBUSY

    def allocate_resource(self, root: Resource, new: Resource, size: int, lo: int, hi: int,
                          align: int,
                          alignf: Callable[[object, Resource, int, int], int] | None = None,
                          alignf_data: object = None) -> int:
        """Models `allocate_resource()`, kernel/resource.c, v6.1 (6.1-deb). 0 / -EBUSY.

        ``lo``/``hi`` are the kernel's min/max. A ``new`` that already has a parent is
        reallocated (`reallocate_resource()`): grown or shrunk in place when possible, moved
        when it has no children, -EBUSY otherwise."""
        if self._use_after_free("allocate_resource", root, new):
            return -EBUSY
        if new.parent is not None:
            return self._reallocate_resource(root, new, size, lo, hi, align, alignf,
                                             alignf_data)
        err = self._find_resource(root, None, new, size, lo, hi, align, alignf, alignf_data)
        if err >= 0 and self._request_resource(root, new) is not None:
            err = -EBUSY
        return err

    def _reallocate_resource(self, root: Resource, old: Resource, newsize: int, lo: int,
                             hi: int, align: int,
                             alignf: Callable[[object, Resource, int, int], int] | None,
                             alignf_data: object) -> int:
        """Models `reallocate_resource()`, kernel/resource.c, v6.1 (6.1-deb)."""
        new = Resource(old.start, old.end, old.name, old.flags, old.desc)
        err = self._find_resource(root, old, new, newsize, lo, hi, align, alignf, alignf_data)
        if err:
            return err
        if resource_contains(new, old):
            _changed()
            old.start = new.start
            old.end = new.end
            return 0
        if old.child is not None:
            return -EBUSY
        if resource_contains(old, new):
            _changed()
            old.start = new.start
            old.end = new.end
            return 0
        # The C code releases old, copies the candidate over it (its parent/sibling copied
        # from old before the release) and requests it again; BUG_ON if that conflicts.
        self._release_resource(old, True)
        _changed()
        old.start = new.start
        old.end = new.end
        if self._request_resource(root, old) is not None:
            self.log.emit(WARN, "kernel BUG at kernel/resource.c: reallocate_resource: "
                          "re-request of the moved resource conflicts",
                          function="reallocate_resource")
        return 0

    def lookup_resource(self, root: Resource, start: int) -> Resource | None:
        """Models `lookup_resource()`, kernel/resource.c, v6.1 (6.1-deb).

        The first *top-level* child of ``root`` whose start equals ``start``."""
        res = root.child
        for _ in _WALK:
            if res is None or res.start == start:
                return res
            res = res.sibling
        self._hang("lookup_resource", "child list of " + _s(root.name) + " is cyclic")
        return None

    # --- __request_region / __release_region ----------------------------------------------

    def request_region_locked(self, parent: Resource, start: int, n: int, name: str | None,
                              flags: int, claim: RegionClaim | None = None
                              ) -> Resource | _WouldBlock | None:
        """Models `__request_region_locked()`, kernel/resource.c, v6.1 (6.1-deb).

        The part of ``__request_region`` under resource_lock: allocate [start, start+n-1],
        then descend into the first overlapping non-busy child until it fits (flags: type
        and SYSRAM of the deepest container | BUSY | ``flags``; desc of that container).
        Returns the new BUSY leaf, None (any busy overlap, invalid range, or a veto under
        claim_policy "fail"), or WOULD_BLOCK when both the busy conflict and the request are
        MUXED. WOULD_BLOCK means the task has put itself on the global MUXED wait queue and
        dropped the lock; in 6.1 it sets TASK_UNINTERRUPTIBLE only *after* dropping the
        lock, so a wake_up in that window is lost [D]. To retry like the kernel (from the
        container reached, with the same node) pass the same ``claim`` again; without one
        the call simply starts over from ``parent``. ``flags`` is a C ``int``: bit 31
        sign-extends into the upper half of the unsigned long flags word."""
        flags &= 0xFFFFFFFF
        if flags & 0x80000000:
            flags |= 0xFFFFFFFF00000000
        if claim is not None and claim.res is not None:
            res = claim.res
            cur = claim.cur
        else:
            res = Resource(start, (start + n - 1) & U64_MAX, name)
            res.slab = True
            cur = parent
        if (self._claim_fail and parent is self.iomem_resource
                and self.claim_veto_hook is not None
                and self.claim_veto_hook(res.start, res.end)):
            if claim is not None:
                claim.res = claim.cur = None
            return None
        r_start = res.start
        r_end = res.end
        for _ in _WALK:
            if cur.freed and self._use_after_free("__request_region", cur):
                break
            res.flags = (cur.flags & _TYPE_EXT) | IORESOURCE_BUSY | flags
            res.desc = cur.desc
            # __request_resource(cur, res), inlined: this is the fuzzer's hottest loop.
            if r_end < r_start or r_start < cur.start or r_end > cur.end:
                conflict = cur
            else:
                prev = None
                conflict = cur.child
                for _ in _WALK:
                    if conflict is None or conflict.start > r_end:
                        _changed()
                        res.sibling = conflict
                        if prev is None:
                            cur.child = res
                        else:
                            prev.sibling = res
                        res.parent = cur
                        conflict = None
                        break
                    if conflict.end >= r_start:
                        break
                    prev = conflict
                    conflict = conflict.sibling
                else:
                    self._hang("__request_resource", "child list of " + _s(cur.name)
                               + " is cyclic")
                    break
            if conflict is None:
                if claim is not None:
                    claim.res = claim.cur = None
                return res
            if conflict.desc == IORES_DESC_DEVICE_PRIVATE_MEMORY:
                self.log.emit(WARN, f"resource: Unaddressable device {_s(conflict.name)} "
                              f"{format_resource(conflict)} conflicts with "
                              f"{format_resource(res)}",
                              function="__request_region", conflict=_s(conflict.name))
            if conflict is not cur and not conflict.flags & IORESOURCE_BUSY:
                cur = conflict
                continue
            if conflict.flags & flags & IORESOURCE_MUXED:
                if claim is not None:
                    claim.res = res
                    claim.cur = cur
                return WOULD_BLOCK
            break
        else:
            self._hang("__request_region", "descent does not terminate")
        if claim is not None:
            claim.res = claim.cur = None
        return None

    def _request_region(self, parent: Resource, start: int, n: int, name: str | None,
                        flags: int, claim: RegionClaim | None = None
                        ) -> Resource | _WouldBlock | None:
        """Models `__request_region()`, kernel/resource.c, v6.1 (6.1-deb).

        :meth:`request_region_locked`, then, only if the *argument* ``parent`` is
        ``iomem_resource``, ``revoke_iomem(res)`` via ``revoke_hook`` (outside the lock, so
        not atomic with the claim). WOULD_BLOCK: see request_region_locked."""
        if parent.freed and self._use_after_free("__request_region", parent):
            return None
        res = self.request_region_locked(parent, start, n, name, flags, claim)
        if res is None or res is WOULD_BLOCK:
            return res
        if parent is self.iomem_resource and self.revoke_hook is not None:
            self.revoke_hook(res)
        return res

    def request_region_task(self, parent: Resource, start: int, n: int, name: str | None,
                            flags: int):
        """Models `__request_region()`, kernel/resource.c, v6.1 (6.1-deb), as a task.

        A generator for the scheduler: it yields WOULD_BLOCK each time the kernel would
        sleep on the MUXED wait queue (resume it after a wake-up) and returns what
        ``__request_region`` returns (StopIteration.value)."""
        claim = RegionClaim()
        while True:
            res = self._request_region(parent, start, n, name, flags, claim)
            if res is not WOULD_BLOCK:
                return res
            yield WOULD_BLOCK

    def _release_region(self, parent: Resource, start: int, n: int) -> None:
        """Models `__release_region()`, kernel/resource.c, v6.1 (6.1-deb).

        Walks ``parent``'s children for a node containing [start, start+n-1]: descends into
        non-busy ones, removes a busy one with exactly that range (its children go with it,
        B29g; no owner check), and stops at a busy one with a different range. Nothing
        found: "Trying to free nonexistent resource" and no change. Freeing a MUXED node
        wakes every MUXED sleeper. The removed node keeps its stale parent/sibling."""
        if parent.freed and self._use_after_free("__release_region", parent):
            return
        end = (start + n - 1) & U64_MAX
        owner = parent  # whose child list the walk is in
        prev = None  # the node before ``res`` in that list
        res = parent.child
        for _ in _WALK:
            if res is None:
                break
            if res.start <= start and res.end >= end:
                if not res.flags & IORESOURCE_BUSY:
                    owner = res
                    prev = None
                    res = res.child
                    continue
                if res.start != start or res.end != end:
                    break
                _changed()
                if prev is None:
                    owner.child = res.sibling
                else:
                    prev.sibling = res.sibling
                if res.flags & IORESOURCE_MUXED and self.muxed_wake_hook is not None:
                    self.muxed_wake_hook()
                if res.slab:
                    res.freed = True
                return
            prev = res
            res = res.sibling
        else:
            self._hang("__release_region", "child list walk does not terminate")
            return
        self.log.emit(RELEASE_NONEXISTENT,
                      f"resource: Trying to free nonexistent resource "
                      f"<0x{start:016x}-0x{end:016x}>",
                      parent=_s(parent.name), start=start, end=end)

    # ioport.h convenience macros (REGION_MACROS).

    def request_region(self, start: int, n: int, name: str | None):
        """Models `request_region()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
        return self._request_region(self.ioport_resource, start, n, name, 0)

    def request_muxed_region(self, start: int, n: int, name: str | None):
        """Models `request_muxed_region()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
        return self._request_region(self.ioport_resource, start, n, name, IORESOURCE_MUXED)

    def request_mem_region(self, start: int, n: int, name: str | None):
        """Models `request_mem_region()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
        return self._request_region(self.iomem_resource, start, n, name, 0)

    def _request_mem_region(self, start: int, n: int, name: str | None, excl: int):
        """Models `__request_mem_region()`, include/linux/ioport.h, v6.1 (6.1-deb)."""
        return self._request_region(self.iomem_resource, start, n, name, excl)

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

    # --- memory hotplug ---------------------------------------------------------------------

    def release_mem_region_adjustable(self, start: int, size: int) -> None:
        """Models `release_mem_region_adjustable()`, kernel/resource.c, v6.1 (6.1-deb).

        Finds one BUSY MEM node (descending into non-busy MEM nodes from iomem's top level)
        that contains [start, end]: removes it on an exact match, trims its front or end, or
        splits it (children stay with the low part). The scan stops at the first node with
        start >= end, so a one-byte range never matches a node that starts there."""
        parent = self.iomem_resource
        end = (start + size - 1) & U64_MAX
        if start < parent.start or end > parent.end:
            self._warn_once("release_mem_region_adjustable:range",
                            "WARNING: kernel/resource.c: release_mem_region_adjustable: "
                            "range outside iomem_resource")
            return
        holder = parent
        via_child = True
        res = parent.child
        for _ in _WALK:
            if res is None or res.start >= end:
                return
            if res.start > start or res.end < end:
                holder = res
                via_child = False
                res = res.sibling
                continue
            if not res.flags & IORESOURCE_MEM:
                return
            if not res.flags & IORESOURCE_BUSY:
                holder = res
                via_child = True
                res = res.child
                continue
            break
        else:
            self._hang("release_mem_region_adjustable", "walk does not terminate")
            return
        site = "release_mem_region_adjustable:adjust"
        text = ("WARNING: kernel/resource.c: release_mem_region_adjustable: "
                "__adjust_resource failed")
        if res.start == start and res.end == end:
            _changed()
            if via_child:
                holder.child = res.sibling
            else:
                holder.sibling = res.sibling
            self._free_resource(res)
        elif res.start == start:
            if self._adjust_resource(res, (end + 1) & U64_MAX, (res.end - end) & U64_MAX):
                self._warn_once(site, text)
        elif res.end == end:
            if self._adjust_resource(res, res.start, (start - res.start) & U64_MAX):
                self._warn_once(site, text)
        else:
            new_res = self._alloc_resource()
            new_res.name = res.name
            new_res.start = (end + 1) & U64_MAX
            new_res.end = res.end
            new_res.flags = res.flags
            new_res.desc = res.desc
            new_res.parent = res.parent
            new_res.sibling = res.sibling
            if self._adjust_resource(res, res.start, (start - res.start) & U64_MAX):
                self._warn_once(site, text)
                return
            _changed()
            res.sibling = new_res

    def merge_system_ram_resource(self, res: Resource) -> None:
        """Models `merge_system_ram_resource()`, kernel/resource.c, v6.1 (6.1-deb).

        Marks ``res`` MERGEABLE and merges it with the next, then the previous sibling when
        flags, end+1 == start, name, desc match and neither has children. A merged-away
        node is freed, so a caller still holding it has a dangling pointer."""
        if self._use_after_free("merge_system_ram_resource", res):
            return
        if res.flags & _SYSTEM_RAM_BUSY != _SYSTEM_RAM_BUSY:
            self._warn_once("merge_system_ram_resource",
                            "WARNING: kernel/resource.c: merge_system_ram_resource: "
                            "not busy System RAM")
            return
        _changed()
        res.flags |= IORESOURCE_SYSRAM_MERGEABLE
        cur = res.sibling
        if cur is not None and _mergeable(res, cur):
            res.end = cur.end
            res.sibling = cur.sibling
            self._free_resource(cur)
        if res.parent is None:
            self._null_deref("merge_system_ram_resource", "res->parent is NULL")
            return
        cur = res.parent.child
        for _ in _WALK:
            if cur is None or cur.sibling is res:
                break
            cur = cur.sibling
        else:
            self._hang("merge_system_ram_resource", "child list is cyclic")
            return
        if cur is not None and _mergeable(cur, res):
            cur.end = res.end
            cur.sibling = res.sibling
            self._free_resource(res)

    # --- boot-time reservation --------------------------------------------------------------

    def reserve_region_with_split(self, root: Resource, start: int, end: int,
                                  name: str | None) -> None:
        """Models `reserve_region_with_split()`, kernel/resource.c, v6.1 (6.1-deb).

        Clips the range to ``root`` (pr_err; aborts if wholly outside), then fills only the
        *top-level* gaps of ``root`` with BUSY nodes of root's type (never descends)."""
        if self._use_after_free("reserve_region_with_split", root):
            return
        if root.start > start or root.end < end:
            text = (f"resource: requested range [0x{start:x}-0x{end:x}] not in root "
                    f"{format_resource(root, decode=False)}")
            if start > root.end or end < root.start:
                self.log.emit(WARN, text, function="reserve_region_with_split")
                return
            end = min(end, root.end)
            start = max(start, root.start)
            self.log.emit(WARN, f"{text}\nresource: fixing request to [0x{start:x}-0x{end:x}]",
                          function="reserve_region_with_split")
        self._reserve_region_with_split(root, start, end, name)

    def _reserve_region_with_split(self, root: Resource, start: int, end: int,
                                   name: str | None) -> None:
        """Models `__reserve_region_with_split()`, kernel/resource.c, v6.1 (6.1-deb)."""
        kind = root.flags & IORESOURCE_TYPE_BITS
        res = self._alloc_resource()
        res.name, res.start, res.end = name, start, end
        res.flags = kind | IORESOURCE_BUSY
        next_res: Resource | None = None
        for _ in _WALK:
            conflict = self._request_resource(root, res)
            if conflict is None:
                if next_res is None:
                    return
                res, next_res = next_res, None
                continue
            if conflict.start <= res.start and conflict.end >= res.end:
                self._free_resource(res)
                if next_res is not None:
                    # The pending second piece is leaked, never inserted.
                    self.log.emit(WARN, "WARNING: kernel/resource.c: "
                                  "__reserve_region_with_split: split piece dropped",
                                  function="__reserve_region_with_split")
                return
            if conflict.start > res.start:
                old_end = res.end
                res.end = (conflict.start - 1) & U64_MAX
                if conflict.end < old_end:
                    next_res = self._alloc_resource()
                    next_res.name = name
                    next_res.start = (conflict.end + 1) & U64_MAX
                    next_res.end = old_end
                    next_res.flags = kind | IORESOURCE_BUSY
            else:
                res.start = (conflict.end + 1) & U64_MAX
        self._hang("__reserve_region_with_split", "does not terminate")

    # --- searching ------------------------------------------------------------------------

    def find_next_iomem_res(self, start: int, end: int, flags: int, desc: int,
                            out: Resource | None, first_lvl: bool = False) -> int:
        """Models `find_next_iomem_res()`, kernel/resource.c, v6.1 (6.1-deb).

        The lowest iomem node (a parent before its children) that overlaps [start, end]
        and has all ``flags`` and ``desc`` (NONE = any). Children are skipped until the
        first overlapping node. ``out`` gets the match clipped to [start, end] with its
        flags, desc and parent. 0, -ENODEV, or -EINVAL (no ``out``, or start >= end).
        ``first_lvl``: the pre-v5.14 top-level-only search (profile ``walkers_nested``)."""
        ret = self._find_next_iomem_res(start, end, flags, desc, out, first_lvl)
        if ret == 0:
            _changed()
        return ret

    def _find_next_iomem_res(self, start: int, end: int, flags: int, desc: int,
                             out: Resource | None, first_lvl: bool = False) -> int:
        """find_next_iomem_res() for the walkers below, whose ``out`` is their own
        on-stack struct (as in C) that nothing links: its writes are not counted."""
        if out is None or start >= end:
            return -EINVAL
        skip_children = True
        p = self.iomem_resource.child
        for _ in _WALK:
            if p is None:
                return -ENODEV
            if p.start > end:
                return -ENODEV
            if p.end >= start:
                skip_children = first_lvl
                if p.flags & flags == flags and (desc == IORES_DESC_NONE
                                                 or desc == p.desc):
                    out.start = max(start, p.start)
                    out.end = min(end, p.end)
                    out.flags = p.flags
                    out.desc = p.desc
                    out.parent = p.parent
                    return 0
            # p = _next_resource(p, skip_children), inlined (page_is_ram and the walkers
            # call this once per match).
            if not skip_children and p.child is not None:
                p = p.child
                continue
            for _ in _WALK:
                if p.sibling is not None or p.parent is None:
                    break
                p = p.parent
            else:
                break
            p = p.sibling
        self._hang("find_next_iomem_res", "iomem walk does not terminate")
        return -ENODEV

    def _walk_iomem_res_desc(self, start: int, end: int, flags: int, desc: int, arg: object,
                             func: Callable[[Resource, object], int],
                             first_lvl: bool = False) -> int:
        """Models `__walk_iomem_res_desc()`, kernel/resource.c, v6.1 (6.1-deb).

        Calls ``func(clipped_match, arg)`` for each match, moving the cursor past it.
        -EINVAL if nothing matched, else func's last return. A match that ends at 2^64-1
        wraps the cursor to 0 and C starts over forever: HANG."""
        ret = -EINVAL
        res = Resource()
        for _ in _WALK:
            if not (start < end
                    and self._find_next_iomem_res(start, end, flags, desc, res,
                                                  first_lvl) == 0):
                return ret
            ret = func(res, arg)
            if ret:
                return ret
            if res.end == U64_MAX:
                self._hang("__walk_iomem_res_desc", "cursor wrapped past 2^64-1")
                return ret
            start = res.end + 1
        self._hang("__walk_iomem_res_desc", "does not terminate")
        return ret

    def walk_iomem_res_desc(self, desc: int, flags: int, start: int, end: int, arg: object,
                            func: Callable[[Resource, object], int]) -> int:
        """Models `walk_iomem_res_desc()`, kernel/resource.c, v6.1 (6.1-deb)."""
        return self._walk_iomem_res_desc(start, end, flags, desc, arg, func)

    def walk_system_ram_res(self, start: int, end: int, arg: object,
                            func: Callable[[Resource, object], int]) -> int:
        """Models `walk_system_ram_res()`, kernel/resource.c, v6.1 (6.1-deb).

        SYSTEM_RAM|BUSY nodes; top level only when profile.walkers_nested is False."""
        return self._walk_iomem_res_desc(start, end, _SYSTEM_RAM_BUSY, IORES_DESC_NONE, arg,
                                         func, self._walk_first_lvl)

    def walk_mem_res(self, start: int, end: int, arg: object,
                     func: Callable[[Resource, object], int]) -> int:
        """Models `walk_mem_res()`, kernel/resource.c, v6.1 (6.1-deb).

        MEM|BUSY nodes; top level only when profile.walkers_nested is False."""
        return self._walk_iomem_res_desc(start, end, _MEM_BUSY, IORES_DESC_NONE, arg, func,
                                         self._walk_first_lvl)

    def walk_system_ram_range(self, start_pfn: int, nr_pages: int, arg: object,
                              func: Callable[[int, int, object], int]) -> int:
        """Models `walk_system_ram_range()`, kernel/resource.c, v6.1 (6.1-deb).

        For each SYSTEM_RAM|BUSY match in [pfn*4096, (pfn+nr)*4096 - 1] calls
        ``func(first_pfn, nr_whole_pages, arg)`` on the whole pages it covers. Starts with
        ret = -EINVAL, so a first match covering no whole page ends the walk with -EINVAL.
        Searches nested nodes in every profile (it has since v5.1)."""
        start = (start_pfn << PAGE_SHIFT) & U64_MAX
        end = ((((start_pfn + nr_pages) & U64_MAX) << PAGE_SHIFT) - 1) & U64_MAX
        ret = -EINVAL
        res = Resource()
        for _ in _WALK:
            if not (start < end and self._find_next_iomem_res(
                    start, end, _SYSTEM_RAM_BUSY, IORES_DESC_NONE, res) == 0):
                return ret
            pfn = ((res.start + PAGE_SIZE - 1) & U64_MAX) >> PAGE_SHIFT
            end_pfn = ((res.end + 1) & U64_MAX) >> PAGE_SHIFT
            if end_pfn > pfn:
                ret = func(pfn, end_pfn - pfn, arg)
            if ret:
                return ret
            if res.end == U64_MAX:
                self._hang("walk_system_ram_range", "cursor wrapped past 2^64-1")
                return ret
            start = res.end + 1
        self._hang("walk_system_ram_range", "does not terminate")
        return ret

    def page_is_ram(self, pfn: int) -> bool:
        """Models `page_is_ram()`, kernel/resource.c, v6.1 (6.1-deb).

        True iff one SYSTEM_RAM|BUSY node (the first in pre-order) covers the whole page; a
        page split between two adjacent RAM nodes is "not RAM"."""
        return self.walk_system_ram_range(pfn, 1, None, _is_ram) == 1

    def _region_intersects(self, parent: Resource, start: int, size: int, flags: int,
                           desc: int) -> int:
        """Models `__region_intersects()`, kernel/resource.c, v6.1 (6.1-deb).

        Counts each child of ``parent`` overlapping R = [start, start+size-1] as matching
        or other. With ``region_intersects_nested`` (b4afe4183ec7, in 6.1-deb) a
        non-matching child counts as matching when matching descendants tile its overlap
        with R. As in C the descendant walk runs on into later siblings (it only bumps the
        count, never the answer). size 0 means R = [start, start-1] (B29d)."""
        r_start = start
        r_end = (start + size - 1) & U64_MAX
        nested = self._ri_nested
        matched = other = 0
        p = parent.child
        try:
            for _ in _WALK:
                if p is None:
                    break
                if not (p.start <= r_end and p.end >= r_start):
                    p = p.sibling
                    continue
                if p.flags & flags == flags and (desc == IORES_DESC_NONE or desc == p.desc):
                    matched += 1
                    p = p.sibling
                    continue
                if not nested:
                    other += 1
                    p = p.sibling
                    continue
                o_start = max(p.start, r_start)
                o_end = min(p.end, r_end)
                covered = False
                dp = p.child
                for _ in _WALK:
                    if dp is None:
                        break
                    if (dp.start <= r_end and dp.end >= r_start and dp.flags & flags == flags
                            and (desc == IORES_DESC_NONE or desc == dp.desc)):
                        matched += 1
                        if dp.start > o_start:
                            break
                        if dp.end >= o_end:
                            covered = True
                            break
                        o_start = max(o_start, (dp.end + 1) & U64_MAX)
                    # next_resource(dp), inlined: this walk visits the rest of the tree.
                    if dp.child is not None:
                        dp = dp.child
                        continue
                    for _ in _WALK:
                        if dp.sibling is not None or dp.parent is None:
                            break
                        dp = dp.parent
                    else:
                        raise _Hang
                    dp = dp.sibling
                else:
                    raise _Hang
                if not covered:
                    other += 1
                p = p.sibling
            else:
                raise _Hang
        except _Hang:
            self._hang("__region_intersects", "walk does not terminate")
        if matched == 0:
            return REGION_DISJOINT
        if other == 0:
            return REGION_INTERSECTS
        return REGION_MIXED

    def region_intersects(self, start: int, size: int, flags: int, desc: int) -> int:
        """Models `region_intersects()`, kernel/resource.c, v6.1 (6.1-deb).

        REGION_DISJOINT (no matching node overlaps), REGION_INTERSECTS (only matching nodes
        and holes), REGION_MIXED. Profile ``region_intersects_nested`` False gives the
        top-level-only algorithm of v6.1.0 and every kernel before v6.12."""
        return self._region_intersects(self.iomem_resource, start, size, flags, desc)

    def resource_is_exclusive(self, root: Resource, addr: int, size: int) -> bool:
        """Models `resource_is_exclusive()`, kernel/resource.c, v6.1 (6.1-deb).

        Pre-order walk of ``root`` up to the first node starting at or after addr + size
        (u64: wraps to 0 for the top page, so that answer is False, B29c). True on a
        SYSTEM_RAM|EXCLUSIVE node (busy or not, even under iomem=relaxed); with
        strict_iomem_checks, on a BUSY node when IO_STRICT_DEVMEM or EXCLUSIVE.
        Profile ``iomem_is_exclusive_v516`` False gives v4.5..v5.15: False outright without
        strict checks, no SYSTEM_RAM|EXCLUSIVE rule, no subtree skipping."""
        limit = (addr + size) & U64_MAX
        strict = self._strict_checks
        io_strict = self._io_strict
        if not self._v516 and not strict:
            return False
        v516 = self._v516
        p = root.child
        for _ in _WALK:
            if p is None or p.start >= limit:
                return False
            if p.end < addr:
                # 5.16+ skips the subtree of a node that ends before addr; the old walk
                # visited it (same answer: those children end before addr too).
                skip_children = v516
            else:
                skip_children = False
                pflags = p.flags
                if v516 and pflags & _EXCLUSIVE_SYSTEM_RAM == _EXCLUSIVE_SYSTEM_RAM:
                    return True
                if (strict and pflags & IORESOURCE_BUSY
                        and (io_strict or pflags & IORESOURCE_EXCLUSIVE)):
                    return True
            # p = _next_resource(p, skip_children), inlined: devmem_is_allowed asks this
            # for every page an mmap or read() touches.
            if not skip_children and p.child is not None:
                p = p.child
                continue
            for _ in _WALK:
                if p.sibling is not None or p.parent is None:
                    break
                p = p.parent
            else:
                break
            p = p.sibling
        self._hang("resource_is_exclusive", "walk does not terminate")
        return False

    def iomem_is_exclusive(self, addr: int) -> bool:
        """Models `iomem_is_exclusive()`, kernel/resource.c, v6.1 (6.1-deb).

        resource_is_exclusive(iomem_resource, addr & PAGE_MASK, PAGE_SIZE): the whole page."""
        return self.resource_is_exclusive(self.iomem_resource, addr & PAGE_MASK, PAGE_SIZE)

    def iomem_map_sanity_check(self, addr: int, size: int) -> int:
        """Models `iomem_map_sanity_check()`, kernel/resource.c, v6.1 (6.1-deb).

        -1 and a warning if [addr, addr+size-1] overlaps a non-busy node without lying
        inside that node's page span, else 0."""
        end = (addr + size - 1) & U64_MAX
        p = self.iomem_resource.child
        try:
            for _ in _WALK:
                if p is None:
                    return 0
                if (p.start <= end and p.end >= addr
                        and not (p.start >> PAGE_SHIFT <= addr >> PAGE_SHIFT
                                 and p.end >> PAGE_SHIFT >= end >> PAGE_SHIFT)
                        and not p.flags & IORESOURCE_BUSY):
                    self.log.emit(WARN, f"resource: resource sanity check: requesting "
                                  f"[mem 0x{addr:016x}-0x{end:016x}], which spans more than "
                                  f"{_s(p.name)} {format_resource(p)}",
                                  function="iomem_map_sanity_check", name=_s(p.name))
                    return -1
                p = _next_resource(p, False)
        except _Hang:
            pass
        self._hang("iomem_map_sanity_check", "walk does not terminate")
        return 0

    # --- free-region allocators (CONFIG_GET_FREE_REGION) ----------------------------------

    def _gfr_next_candidate(self, base: Resource, addr: int, size: int, descending: bool
                            ) -> int | None:
        """The next address get_free_mem_region() would test after ``addr``, jumping over
        candidates that still overlap the same child of ``base`` (the kernel tests them one
        by one and rejects each; the outcome is the same). None: the loop would end."""
        lowest = highest = None
        c = base.child
        for _ in _WALK:
            if c is None:
                break
            if c.start <= (addr + size - 1) & U64_MAX and c.end >= addr:
                if lowest is None:
                    lowest = c
                highest = c
            c = c.sibling
        if descending:
            blocker = highest
            step = -(-(addr + size - blocker.start) // size) if blocker is not None else 1
            step = max(step, 1)
            nxt = addr - step * size
            if nxt <= size or nxt < base.start:
                return None
            return nxt
        blocker = lowest
        step = -(-(blocker.end + 1 - addr) // size) if blocker is not None else 1
        step = max(step, 1)
        nxt = addr + step * size
        if nxt > U64_MAX or nxt > min(base.end, self.physmem_end):
            return None
        return nxt

    def get_free_mem_region(self, base: Resource, size: int, align: int, name: str | None,
                            desc: int, flags: int) -> Resource | int:
        """Models `get_free_mem_region()`, kernel/resource.c, v6.1 (6.1-deb).

        ``size`` is rounded up to ``align``; candidates step by ``size`` (descending from
        min(base.end, PHYSMEM_END) - size + 1, or ascending from ALIGN(base.start)); the
        first one with no child of ``base`` overlapping it is taken, all under the write
        lock. GFR_REQUEST_REGION: ``__request_region_locked(iomem_resource, …)``, desc set,
        then revoke_hook. Otherwise a MEM node inserted under ``base``. Returns the node or
        -ERANGE (ERR_PTR). Size 0 never advances a descending search: HANG in C."""
        if self._use_after_free("get_free_mem_region", base):
            return -ENOMEM
        size = _align(size, align)
        descending = bool(flags & GFR_DESCENDING)
        cap = min(base.end, self.physmem_end)
        if descending:
            addr = (cap - size + 1) & U64_MAX
            if not (addr > size and addr >= base.start):
                return -ERANGE
        else:
            addr = _align(base.start, align)
            if not (addr > (addr - size) & U64_MAX and addr <= cap):
                return -ERANGE
        for _ in _WALK:
            if self._region_intersects(base, addr, size, 0, IORES_DESC_NONE) != REGION_DISJOINT:
                if size == 0:
                    self._hang("get_free_mem_region", "size 0: the candidate never moves")
                    return -ERANGE
                nxt = self._gfr_next_candidate(base, addr, size, descending)
                if nxt is None:
                    return -ERANGE
                addr = nxt
                continue
            if flags & GFR_REQUEST_REGION:
                res = self.request_region_locked(self.iomem_resource, addr, size, name, 0)
                if res is None or res is WOULD_BLOCK:
                    return -ERANGE
                _changed()
                res.desc = desc
                if self.revoke_hook is not None:
                    self.revoke_hook(res)
                return res
            res = self._alloc_resource()
            res.start = addr
            res.end = (addr + size - 1) & U64_MAX
            res.name = name
            res.desc = desc
            res.flags = IORESOURCE_MEM
            if self._insert_resource(base, res) is not None or res.child is not None:
                # C breaks out here; a node that did insert (and adopted children) stays
                # in the tree, leaked, while the caller sees -ERANGE.
                return -ERANGE
            return res
        self._hang("get_free_mem_region", "search does not terminate")
        return -ERANGE

    def request_free_mem_region(self, base: Resource, size: int, name: str | None
                                ) -> Resource | int:
        """Models `request_free_mem_region()`, kernel/resource.c, v6.1 (6.1-deb).

        Descending, requested from iomem (so it revokes), desc DEVICE_PRIVATE_MEMORY,
        section alignment."""
        return self.get_free_mem_region(base, size, GFR_DEFAULT_ALIGN, name,
                                        IORES_DESC_DEVICE_PRIVATE_MEMORY,
                                        GFR_DESCENDING | GFR_REQUEST_REGION)

    def alloc_free_mem_region(self, base: Resource, size: int, align: int, name: str | None
                              ) -> Resource | int:
        """Models `alloc_free_mem_region()`, kernel/resource.c, v6.1 (6.1-deb).

        Ascending, inserted under ``base`` (no revoke), desc NONE."""
        return self.get_free_mem_region(base, size, align, name, IORES_DESC_NONE, 0)


def _is_ram(pfn: int, nr_pages: int, arg: object) -> int:
    """__is_ram(): the page_is_ram() callback."""
    return 1


def _mergeable(r1: Resource, r2: Resource) -> bool:
    """system_ram_resources_mergeable() (names compared by value: the kernel compares the
    pointers, which hotplug users share)."""
    return (r1.flags == r2.flags and (r1.end + 1) & U64_MAX == r2.start
            and r1.name == r2.name and r1.desc == r2.desc
            and r1.child is None and r2.child is None)


# --- invariant checker --------------------------------------------------------------------

# Problem kinds tree_problems() reports (the text before the first ":" of each problem).
I1_NESTING = "I1-nesting"  # a child sticks out of its parent's range
I2_ORDER = "I2-order"  # well-formed siblings out of ascending order (disjoint)
I2_OVERLAP = "I2-overlap"  # well-formed siblings overlap
# end == start - 1: adjust_resource(r, s, 0) leaves this by design (B29a). It is empty,
# sorts correctly, and only acts as a zero-width wall at start.
I3_EMPTY = "I3-empty"
# end < start - 1: adjust_resource with a size that wraps past 2^64 (no overflow check).
# Sorted by start like any node, but later requests can then be linked overlapping a
# well-formed sibling ([D], reported as I2-overlap when it happens).
I3_INVERTED = "I3-inverted"
I4_PARENT = "I4-parent"  # a node's parent pointer is not the node whose list holds it
I4_SHARED = "I4-shared"  # a node reached twice: cross-linked or cyclic lists


class TreeProblem(str):
    """One tree_problems() entry: ``"<kind>: <text>"``, a str with its kind as ``.kind``."""

    __slots__ = ()

    @property
    def kind(self) -> str:
        return self.partition(":")[0]


def problem_kind(problem: str) -> str:
    """The kind of one tree_problems() entry, e.g. ``"I3-empty"``."""
    return problem.partition(":")[0]


def _node_text(res: Resource) -> str:
    return f"{_s(res.name)!r} [0x{res.start:x}-0x{res.end:x}]"


def tree_problems(root: Resource) -> list[TreeProblem]:
    """Check the tree under ``root`` against spec §1.5 I1–I4; empty when all hold.

    Each problem is ``"<kind>: <text>"`` with kind one of I1_NESTING, I2_ORDER, I2_OVERLAP,
    I3_EMPTY, I3_INVERTED, I4_PARENT, I4_SHARED (see problem_kind()). I3 is split because
    an empty node is a documented by-design result of adjust_resource (B29a) that an
    oracle may accept, while an inverted one is not. I2 compares well-formed siblings only
    (each with the previous well-formed one); malformed ones are reported under I3. The walk
    follows child/sibling pointers, visits every node once, and stops a list at a node
    already seen (I4_SHARED), so it ends on any pointer structure. Order: each child list
    in list order, the lists depth first."""
    if _well_formed(root):
        return []
    problems: list[TreeProblem] = []

    def report(kind: str, text: str) -> None:
        problems.append(TreeProblem(f"{kind}: {text}"))

    seen = {id(root)}
    stack = [root]
    while stack:
        parent = stack.pop()
        last: Resource | None = None
        c = parent.child
        kids: list[Resource] = []
        while c is not None:
            if id(c) in seen:
                report(I4_SHARED, f"{_node_text(c)} reached again in the child list of "
                                  f"{_node_text(parent)}")
                break
            seen.add(id(c))
            if c.parent is not parent:
                owner = "NULL" if c.parent is None else _node_text(c.parent)
                report(I4_PARENT, f"{_node_text(c)} is in the child list of "
                                  f"{_node_text(parent)} but its parent is {owner}")
            if c.start < parent.start or c.end > parent.end:
                report(I1_NESTING, f"{_node_text(c)} is not inside its parent "
                                   f"{_node_text(parent)}")
            if c.end < c.start:
                kind = I3_EMPTY if (c.end + 1) & U64_MAX == c.start else I3_INVERTED
                report(kind, f"{_node_text(c)} has end < start")
            else:
                if last is not None and not last.end < c.start:
                    kind = I2_OVERLAP if last.start <= c.end else I2_ORDER
                    report(kind, f"{_node_text(last)} is followed by {_node_text(c)} under "
                                 f"{_node_text(parent)}")
                last = c
            if c.child is not None:
                kids.append(c)
            c = c.sibling
        stack.extend(reversed(kids))
    return problems


def _well_formed(root: Resource) -> bool:
    """True iff tree_problems(root) finds nothing: its walk and its conditions, without
    building any text. The busy-consistency oracle asks after every step in thorough
    mode and the answer is almost always yes, so this is the path that has to be fast."""
    seen = {root}
    stack = [root]
    while stack:
        parent = stack.pop()
        low, high = parent.start, parent.end
        # Every start is >= low by the time it is compared, so this means "no previous
        # well-formed sibling".
        last_end = low - 1
        c = parent.child
        while c is not None:
            if c in seen or c.parent is not parent:
                return False  # I4_SHARED, I4_PARENT
            seen.add(c)
            start, end = c.start, c.end
            if start < low or end > high or end < start or start <= last_end:
                return False  # I1_NESTING, I3_*, I2_*
            last_end = end
            if c.child is not None:
                stack.append(c)
            c = c.sibling
    return True


def preorder(root: Resource) -> Iterator[tuple[Resource, int]]:
    """Yield ``(node, depth)`` for every descendant of ``root`` in pre-order, depth 0 for
    root's children (the /proc/iomem depth before MAX_IORES_LEVEL capping).

    Follows child/sibling pointers (not parent pointers, unlike the kernel's walkers) and
    never yields a node twice, so it ends on any pointer structure; on a well-formed tree
    the order is the kernel's."""
    seen = {id(root)}
    stack: list[tuple[Resource | None, int]] = [(root.child, 0)]
    while stack:
        node, depth = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node, depth
        stack.append((node.sibling, depth))
        stack.append((node.child, depth + 1))


def descendants(root: Resource) -> list[Resource]:
    """Every descendant of ``root`` in pre-order, as a list: the same nodes and order as
    :func:`preorder` without depths, several times faster (no generator frames).

    Like preorder it never visits a node twice, so it ends on any pointer structure,
    including the broken ones a fuzzed Program can build through a stale struct."""
    out: list[Resource] = []
    append = out.append
    # Resources hash by identity, so the nodes themselves can go in the set: no id()
    # call per node.
    seen = {root}
    add = seen.add
    stack = [root.child]
    pop = stack.pop
    push = stack.append
    while stack:
        node = pop()
        while node is not None:
            if node in seen:
                break
            add(node)
            append(node)
            if node.sibling is not None:
                push(node.sibling)
            node = node.child
    return out
