"""Resource-tree operations (kernel/resource.c). Each line calls one kernel function.

Struct-based calls (request_resource, insert_resource, ...) allocate the caller's
``struct resource`` on the line that first uses it and bind it to the line's handle, so a
later line can release, remove or adjust that same object, as a driver would.
"""

from __future__ import annotations

from typing import ClassVar

from iomemfuzz.fuzz.finding import PROCESS
from iomemfuzz.fuzz.ops import (
    BLOCKED,
    EBADF,
    ILLEGAL,
    OK,
    PROGRAM,
    Context,
    Kind,
    Op,
    Outcome,
    arg,
    errno_outcome,
    op,
    value_outcome,
)
from iomemfuzz.model import errno
from iomemfuzz.model.ioport import (
    IORESOURCE_EXCLUSIVE,
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_MUXED,
    Resource,
)
from iomemfuzz.model.kernel import REFUSED
from iomemfuzz.model.mm import CAP_SYS_ADMIN, Process
from iomemfuzz.model.resource import REGION_DISJOINT, REGION_INTERSECTS, REGION_MIXED
from iomemfuzz.model.sched import WOULD_BLOCK

FAMILY = "tree"
ROOTS = ("iomem", "ioport")
REGION_NAMES = {REGION_INTERSECTS: "INTERSECTS", REGION_DISJOINT: "DISJOINT",
                REGION_MIXED: "MIXED"}
EBUSY = Outcome("EBUSY")


def _parent(ctx: Context, value: str | int | None) -> Resource | None:
    node = ctx.node(value)
    return node if isinstance(node, Resource) else None


def _res(ctx: Context, handle: int | None) -> Resource | None:
    node = ctx.resolve(handle)
    return node if isinstance(node, Resource) else None


def _answer(ret: object) -> Outcome:
    """A door call's answer: REFUSED (the caller contract), None (a void function) or
    0 / -errno."""
    if ret is REFUSED:
        return ILLEGAL
    return OK if ret is None else errno_outcome(ret)


@op("__request_region", binds=True, family=FAMILY)
class RequestRegion(Op):
    """Claim [start, start+n-1] as a driver would: `__request_region()` (the engine of
    request_region, request_mem_region, pci_request_region)."""

    parent: object = arg(Kind.NODE, "iomem", choices=ROOTS)
    start: int = arg(Kind.ADDR, 0)
    n: int = arg(Kind.SIZE, 1)
    flags: int = arg(Kind.FLAGS, 0)
    name: str = arg(Kind.NAME, "")

    def run(self, ctx: Context) -> Outcome:
        parent = _parent(ctx, self.parent)
        if parent is None:
            return EBADF
        res = ctx.kernel.request_region(parent, self.start, self.n, self.name or None,
                                        self.flags, PROGRAM)
        if res is REFUSED:
            return ILLEGAL
        if res is WOULD_BLOCK:
            return BLOCKED
        if res is None:
            return EBUSY
        ctx.bind(res)
        return OK


@op("__release_region", family=FAMILY)
class ReleaseRegion(Op):
    """Release [start, start+n-1]: `__release_region()` (exact match only, no owner check)."""

    parent: object = arg(Kind.NODE, "iomem", choices=ROOTS)
    start: int = arg(Kind.ADDR, 0)
    n: int = arg(Kind.SIZE, 1)

    def run(self, ctx: Context) -> Outcome:
        parent = _parent(ctx, self.parent)
        if parent is None:
            return EBADF
        ret = ctx.kernel.release_region(parent, self.start, self.n, PROGRAM)
        return ILLEGAL if ret is REFUSED else OK


class _NewResource(Op):
    """Shared fields of the calls that link a caller-allocated struct resource."""

    __slots__ = ()
    # The Kernel method that links the new struct (0 / -EBUSY); the struct is bound to
    # the line's handle whatever the answer, as a driver still owns its allocation.
    CALL: ClassVar[str] = ""

    def new(self) -> Resource:
        return Resource(self.start, self.end, self.name or None, self.flags, self.desc)

    def run(self, ctx: Context) -> Outcome:
        parent = _parent(ctx, self.parent)
        if parent is None:
            return EBADF
        new = self.new()
        ctx.bind(new)
        return _answer(getattr(ctx.kernel, self.CALL)(parent, new, PROGRAM))


@op("request_resource", binds=True, family=FAMILY)
class RequestResource(_NewResource):
    """Allocate a struct resource [start, end] and `request_resource()` it under parent."""

    CALL = "request_resource"
    parent: object = arg(Kind.NODE, "iomem", choices=ROOTS)
    start: int = arg(Kind.ADDR, 0)
    end: int = arg(Kind.ADDR, 0)
    flags: int = arg(Kind.FLAGS, IORESOURCE_MEM)
    desc: int = arg(Kind.INT, 0, hi=9)
    name: str = arg(Kind.NAME, "")


@op("insert_resource", binds=True, family=FAMILY)
class InsertResource(_NewResource):
    """Allocate a struct resource [start, end] and `insert_resource()` it under parent
    (it adopts the nodes it covers)."""

    CALL = "insert_resource"
    parent: object = arg(Kind.NODE, "iomem", choices=ROOTS)
    start: int = arg(Kind.ADDR, 0)
    end: int = arg(Kind.ADDR, 0)
    flags: int = arg(Kind.FLAGS, IORESOURCE_MEM)
    desc: int = arg(Kind.INT, 0, hi=9)
    name: str = arg(Kind.NAME, "")


@op("insert_resource_expand_to_fit", binds=True, family=FAMILY)
class InsertResourceExpandToFit(_NewResource):
    """Allocate [start, end] and `insert_resource_expand_to_fit()` it under root (void:
    the line reports ok whether or not the struct ended up in the tree)."""

    parent: object = arg(Kind.NODE, "iomem", choices=ROOTS)
    start: int = arg(Kind.ADDR, 0)
    end: int = arg(Kind.ADDR, 0)
    flags: int = arg(Kind.FLAGS, IORESOURCE_MEM)
    desc: int = arg(Kind.INT, 0, hi=9)
    name: str = arg(Kind.NAME, "")

    CALL = "insert_resource_expand_to_fit"


class _OnStruct(Op):
    """The calls that take one linked struct and change the tree around it: the line
    names the Kernel method (``CALL``); the kernel's answer is the outcome."""

    __slots__ = ()
    CALL: ClassVar[str]

    def run(self, ctx: Context) -> Outcome:
        res = _res(ctx, self.res)
        if res is None:
            return EBADF
        return _answer(getattr(ctx.kernel, self.CALL)(res, PROGRAM))


@op("release_resource", family=FAMILY)
class ReleaseResource(_OnStruct):
    """`release_resource()`: unlink the struct together with its whole subtree."""

    CALL = "release_resource"
    res: int | None = arg(Kind.HANDLE, None)


@op("remove_resource", family=FAMILY)
class RemoveResource(_OnStruct):
    """`remove_resource()`: unlink the struct, splicing its children into its place."""

    CALL = "remove_resource"
    res: int | None = arg(Kind.HANDLE, None)


@op("release_child_resources", family=FAMILY)
class ReleaseChildResources(_OnStruct):
    """`release_child_resources()`: detach every descendant, rebasing each to [0, size-1]
    (void: the line reports ok)."""

    CALL = "release_child_resources"
    res: int | None = arg(Kind.HANDLE, None)


@op("adjust_resource", family=FAMILY)
class AdjustResource(Op):
    """`adjust_resource()`: move/resize a linked struct to [start, start+size-1]."""

    res: int | None = arg(Kind.HANDLE, None)
    start: int = arg(Kind.ADDR, 0)
    size: int = arg(Kind.SIZE, 1)

    def run(self, ctx: Context) -> Outcome:
        res = _res(ctx, self.res)
        if res is None:
            return EBADF
        return _answer(ctx.kernel.adjust_resource(res, self.start, self.size, PROGRAM))


@op("release_mem_region_adjustable", family=FAMILY)
class ReleaseMemRegionAdjustable(Op):
    """`release_mem_region_adjustable()` (memory hot-unplug): trim or split a busy node."""

    start: int = arg(Kind.ADDR, 0)
    size: int = arg(Kind.SIZE, 1)

    def run(self, ctx: Context) -> Outcome:
        return _answer(ctx.kernel.release_mem_region_adjustable(self.start, self.size,
                                                                PROGRAM))


@op("request_free_mem_region", binds=True, family=FAMILY)
class RequestFreeMemRegion(Op):
    """`request_free_mem_region()`: find a free range under base (descending) and claim it
    (it revokes, like __request_region on iomem)."""

    base: object = arg(Kind.NODE, "iomem", choices=ROOTS)
    size: int = arg(Kind.SIZE, 0x1000)
    name: str = arg(Kind.NAME, "")

    def run(self, ctx: Context) -> Outcome:
        base = _parent(ctx, self.base)
        if base is None:
            return EBADF
        res = ctx.kernel.request_free_mem_region(base, self.size, self.name or None,
                                                 PROGRAM)
        if res is REFUSED:
            return ILLEGAL
        if not isinstance(res, Resource):
            return errno_outcome(res if isinstance(res, int) else -errno.ERANGE)
        ctx.bind(res)
        return OK


@op("alloc_free_mem_region", binds=True, family=FAMILY)
class AllocFreeMemRegion(Op):
    """`alloc_free_mem_region()` (CXL): find a free range under base (ascending) and
    insert a non-busy node there (no revoke)."""

    base: object = arg(Kind.NODE, "iomem", choices=ROOTS)
    size: int = arg(Kind.SIZE, 0x1000)
    align: int = arg(Kind.SIZE, 0x1000)
    name: str = arg(Kind.NAME, "")

    def run(self, ctx: Context) -> Outcome:
        base = _parent(ctx, self.base)
        if base is None:
            return EBADF
        res = ctx.kernel.alloc_free_mem_region(base, self.size, self.align,
                                               self.name or None, PROGRAM)
        if res is REFUSED:
            return ILLEGAL
        if not isinstance(res, Resource):
            return errno_outcome(res if isinstance(res, int) else -errno.ERANGE)
        ctx.bind(res)
        return OK


@op("region_intersects", family=FAMILY)
class RegionIntersects(Op):
    """`region_intersects()`: how [start, start+size-1] meets nodes matching flags/desc."""

    start: int = arg(Kind.ADDR, 0)
    size: int = arg(Kind.SIZE, 0x1000)
    flags: int = arg(Kind.FLAGS, 0)
    desc: int = arg(Kind.INT, 0, hi=9)

    def run(self, ctx: Context) -> Outcome:
        ret = ctx.kernel.region_intersects(self.start, self.size, self.flags, self.desc)
        return value_outcome(REGION_NAMES[ret])


@op("iomem_is_exclusive", family=FAMILY)
class IomemIsExclusive(Op):
    """`iomem_is_exclusive()`: may userspace map the page holding addr?"""

    addr: int = arg(Kind.ADDR, 0)

    def run(self, ctx: Context) -> Outcome:
        return value_outcome(bool(ctx.kernel.iomem_is_exclusive(self.addr)))


@op("page_is_ram", family=FAMILY)
class PageIsRam(Op):
    """`page_is_ram()`: is the whole page pfn covered by one System RAM node?"""

    pfn: int = arg(Kind.ADDR, 0, hi=(1 << 52) - 1)

    def run(self, ctx: Context) -> Outcome:
        return value_outcome(bool(ctx.kernel.page_is_ram(self.pfn)))


def _ranges(found: list[tuple[int, int]]) -> str:
    """What a walk visited, as one value token: ``0x1000-0x1fff,0x3000-0x3fff``."""
    return ",".join(f"{hex(a)}-{hex(b)}" for a, b in found)


def _collect(res: Resource, found: list[tuple[int, int]]) -> int:
    """Walker callback: remember the clipped match and keep walking (return 0)."""
    found.append((res.start, res.end))
    return 0


def _walk_outcome(ret: int, found: list[tuple[int, int]]) -> Outcome:
    # The walkers return -EINVAL when nothing matched, else the callback's last return.
    return errno_outcome(ret) if ret < 0 else value_outcome(_ranges(found))


@op("walk_iomem_res_desc", family=FAMILY)
class WalkIomemResDesc(Op):
    """`walk_iomem_res_desc()`: the iomem nodes in [start, end] with all of flags and the
    desc (0 = any), each clipped to the range; EINVAL when none matched."""

    desc: int = arg(Kind.INT, 0, hi=9)
    flags: int = arg(Kind.FLAGS, IORESOURCE_MEM)
    start: int = arg(Kind.ADDR, 0)
    end: int = arg(Kind.ADDR, 0xffffffff)

    def run(self, ctx: Context) -> Outcome:
        found: list[tuple[int, int]] = []
        ret = ctx.kernel.walk_iomem_res_desc(self.desc, self.flags, self.start, self.end,
                                             found, _collect)
        return _walk_outcome(ret, found)


@op("walk_system_ram_res", family=FAMILY)
class WalkSystemRamRes(Op):
    """`walk_system_ram_res()`: the busy System RAM in [start, end] (kexec, kdump); top
    level only before v5.14."""

    start: int = arg(Kind.ADDR, 0)
    end: int = arg(Kind.ADDR, 0xffffffff)

    def run(self, ctx: Context) -> Outcome:
        found: list[tuple[int, int]] = []
        ret = ctx.kernel.walk_system_ram_res(self.start, self.end, found, _collect)
        return _walk_outcome(ret, found)


@op("walk_mem_res", family=FAMILY)
class WalkMemRes(Op):
    """`walk_mem_res()`: the busy MEM nodes in [start, end]; top level only before
    v5.14."""

    start: int = arg(Kind.ADDR, 0)
    end: int = arg(Kind.ADDR, 0xffffffff)

    def run(self, ctx: Context) -> Outcome:
        found: list[tuple[int, int]] = []
        ret = ctx.kernel.walk_mem_res(self.start, self.end, found, _collect)
        return _walk_outcome(ret, found)


def _collect_pages(pfn: int, nr_pages: int, found: list[tuple[int, int]]) -> int:
    """walk_system_ram_range callback: remember (first pfn, page count), keep walking."""
    found.append((pfn, nr_pages))
    return 0


@op("walk_system_ram_range", family=FAMILY)
class WalkSystemRamRange(Op):
    """`walk_system_ram_range()`: the whole pages of busy System RAM in nr_pages pages
    from start_pfn, as PFN+COUNT runs; EINVAL when the first match holds no whole page."""

    start_pfn: int = arg(Kind.ADDR, 0, hi=(1 << 52) - 1)
    nr_pages: int = arg(Kind.SIZE, 0x100000, hi=(1 << 52) - 1)

    def run(self, ctx: Context) -> Outcome:
        found: list[tuple[int, int]] = []
        ret = ctx.kernel.walk_system_ram_range(self.start_pfn, self.nr_pages, found,
                                               _collect_pages)
        if ret < 0:
            return errno_outcome(ret)
        return value_outcome(",".join(f"{hex(p)}+{hex(n)}" for p, n in found))


@op("lookup_resource", family=FAMILY)
class LookupResource(Op):
    """`lookup_resource()`: the top-level child of root starting at start (its range), or
    nil; nested nodes are never found."""

    root: object = arg(Kind.NODE, "iomem", choices=ROOTS)
    start: int = arg(Kind.ADDR, 0)

    def run(self, ctx: Context) -> Outcome:
        root = _parent(ctx, self.root)
        if root is None:
            return EBADF
        res = ctx.kernel.lookup_resource(root, self.start)
        return value_outcome("nil" if res is None else _ranges([(res.start, res.end)]))


@op("allocate_resource", binds=True, family=FAMILY)
class AllocateResource(Op):
    """Allocate a struct resource and `allocate_resource()` it: the first aligned gap of
    size bytes under root within [lo, hi] (PCI BAR and CardBus window assignment)."""

    root: object = arg(Kind.NODE, "iomem", choices=ROOTS)
    size: int = arg(Kind.SIZE, 0x1000)
    lo: int = arg(Kind.ADDR, 0)
    hi: int = arg(Kind.ADDR, 0xffffffff)
    align: int = arg(Kind.SIZE, 0x1000)
    flags: int = arg(Kind.FLAGS, IORESOURCE_MEM)
    name: str = arg(Kind.NAME, "")

    def run(self, ctx: Context) -> Outcome:
        root = _parent(ctx, self.root)
        if root is None:
            return EBADF
        new = Resource(0, 0, self.name or None, self.flags)
        ctx.bind(new)
        return _answer(ctx.kernel.allocate_resource(root, new, self.size, self.lo, self.hi,
                                                    self.align, PROGRAM))


@op("reallocate_resource", family=FAMILY)
class ReallocateResource(Op):
    """`allocate_resource()` on a struct that is already linked (reallocate_resource()):
    grow or shrink it in place, or move it when it has no children."""

    res: int | None = arg(Kind.HANDLE, None)
    root: object = arg(Kind.NODE, "iomem", choices=ROOTS)
    size: int = arg(Kind.SIZE, 0x1000)
    lo: int = arg(Kind.ADDR, 0)
    hi: int = arg(Kind.ADDR, 0xffffffff)
    align: int = arg(Kind.SIZE, 0x1000)

    def run(self, ctx: Context) -> Outcome:
        res = _res(ctx, self.res)
        root = _parent(ctx, self.root)
        if res is None or root is None:
            return EBADF
        return _answer(ctx.kernel.reallocate_resource(root, res, self.size, self.lo,
                                                      self.hi, self.align, PROGRAM))


@op("reserve_region_with_split", family=FAMILY)
class ReserveRegionWithSplit(Op):
    """`reserve_region_with_split()` (boot-time firmware reservation): fill the top-level
    gaps of [start, end] under root with busy nodes, around whatever is there."""

    root: object = arg(Kind.NODE, "iomem", choices=ROOTS)
    start: int = arg(Kind.ADDR, 0)
    end: int = arg(Kind.ADDR, 0)
    name: str = arg(Kind.NAME, "")

    def run(self, ctx: Context) -> Outcome:
        root = _parent(ctx, self.root)
        if root is None:
            return EBADF
        return _answer(ctx.kernel.reserve_region_with_split(root, self.start, self.end,
                                                            self.name or None, PROGRAM))


@op("devm_request_resource", binds=True, family=FAMILY)
class DevmRequestResource(_NewResource):
    """Allocate a struct resource [start, end] and `devm_request_resource()` it for device
    dev: request_resource() that logs the collision on failure."""

    dev: str = arg(Kind.NAME, "0000:00:02.0")
    parent: object = arg(Kind.NODE, "iomem", choices=ROOTS)
    start: int = arg(Kind.ADDR, 0)
    end: int = arg(Kind.ADDR, 0)
    flags: int = arg(Kind.FLAGS, IORESOURCE_MEM)
    desc: int = arg(Kind.INT, 0, hi=9)
    name: str = arg(Kind.NAME, "")

    def run(self, ctx: Context) -> Outcome:
        parent = _parent(ctx, self.parent)
        if parent is None:
            return EBADF
        new = self.new()
        ctx.bind(new)
        return _answer(ctx.kernel.devm_request_resource(self.dev, parent, new, PROGRAM))


@op("merge_system_ram_resource", family=FAMILY)
class MergeSystemRamResource(Op):
    """`merge_system_ram_resource()` (memory hotplug): merge a busy System RAM struct with
    identical adjacent siblings; a merged-away struct is freed."""

    res: int | None = arg(Kind.HANDLE, None)

    def run(self, ctx: Context) -> Outcome:
        res = _res(ctx, self.res)
        if res is None:
            return EBADF
        return _answer(ctx.kernel.merge_system_ram_resource(res, PROGRAM))


@op("iomem_map_sanity_check", family=FAMILY)
class IomemMapSanityCheck(Op):
    """`iomem_map_sanity_check()` (ioremap): 0, or -1 with a warning when [addr,
    addr+size-1] straddles a non-busy node's page span."""

    addr: int = arg(Kind.ADDR, 0)
    size: int = arg(Kind.SIZE, 0x1000)

    def run(self, ctx: Context) -> Outcome:
        # The kernel returns a bare -1 here, not an errno.
        return value_outcome(str(ctx.kernel.iomem_map_sanity_check(self.addr, self.size)))


@op("read_proc_iomem", family=FAMILY, who=PROCESS)
class ReadProcIomem(Op):
    """Read /proc/iomem (or /proc/ioports) as proc (`r_show()`): the range field of line
    ``line``, 0-0 for a reader without CAP_SYS_ADMIN, ``eof`` past the last line."""

    proc: int | None = arg(Kind.HANDLE, None, choices=("process",))
    root: object = arg(Kind.NODE, "iomem", choices=ROOTS)
    line: int = arg(Kind.INT, 0, hi=255)

    def run(self, ctx: Context) -> Outcome:
        # nil reads as init (pid 1), like the mapping family's file operations.
        proc = (ctx.kernel.init_process() if self.proc is None
                else ctx.resolve(self.proc))
        root = _parent(ctx, self.root)
        if not isinstance(proc, Process) or root is None or root.parent is not None:
            return EBADF
        lines = ctx.kernel.read_proc_resources(root, proc.capable(CAP_SYS_ADMIN))
        if self.line >= len(lines):
            return value_outcome("eof")
        return value_outcome(lines[self.line].split(" : ", 1)[0].strip())


# The ioport.h claim macros: each is __request_region() on a fixed root with fixed flags
# (macro -> (root, flags)).
REQUEST_MACROS = {
    "io": (IORESOURCE_IO, 0),  # request_region
    "io_muxed": (IORESOURCE_IO, IORESOURCE_MUXED),  # request_muxed_region
    "mem": (IORESOURCE_MEM, 0),  # request_mem_region
    "mem_muxed": (IORESOURCE_MEM, IORESOURCE_MUXED),  # request_mem_region_muxed
    "mem_exclusive": (IORESOURCE_MEM, IORESOURCE_EXCLUSIVE),  # ..._exclusive
}


@op("request_region", binds=True, family=FAMILY)
class RequestRegionMacro(Op):
    """A driver claims [start, start+n-1] through an ioport.h macro: `request_region()`
    (io), `request_muxed_region()` (io_muxed), `request_mem_region()` (mem),
    `request_mem_region_muxed()` (mem_muxed) or `request_mem_region_exclusive()`
    (mem_exclusive). A MUXED conflict reports blocked without waiting."""

    macro: str = arg(Kind.CHOICE, "io", choices=tuple(REQUEST_MACROS))
    start: int = arg(Kind.ADDR, 0)
    n: int = arg(Kind.SIZE, 1)
    name: str = arg(Kind.NAME, "")

    def run(self, ctx: Context) -> Outcome:
        kind, flags = REQUEST_MACROS.get(self.macro, REQUEST_MACROS["io"])
        iomem, ioport = ctx.kernel.roots
        res = ctx.kernel.request_region(iomem if kind == IORESOURCE_MEM else ioport,
                                        self.start, self.n, self.name or None, flags,
                                        PROGRAM)
        if res is REFUSED:
            return ILLEGAL
        if res is WOULD_BLOCK:
            return BLOCKED
        if not isinstance(res, Resource):
            return EBUSY
        ctx.bind(res)
        return OK
