"""Resource-tree operations (kernel/resource.c). Each line calls one kernel function.

Struct-based calls (request_resource, insert_resource, ...) allocate the caller's
``struct resource`` on the line that first uses it and bind it to the line's handle, so a
later line can release, remove or adjust that same object, as a driver would.
"""

from __future__ import annotations

from iomemfuzz.fuzz.ops import (
    BLOCKED,
    EBADF,
    OK,
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
from iomemfuzz.model.kernel import PROGRAM
from iomemfuzz.model.resource import (
    IORESOURCE_MEM,
    REGION_DISJOINT,
    REGION_INTERSECTS,
    REGION_MIXED,
    WOULD_BLOCK,
    Resource,
)

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
        ctx.kernel.release_region(parent, self.start, self.n, PROGRAM)
        return OK


class _NewResource(Op):
    """Shared fields of the calls that link a caller-allocated struct resource."""

    __slots__ = ()

    def new(self) -> Resource:
        return Resource(self.start, self.end, self.name or None, self.flags, self.desc)


@op("request_resource", binds=True, family=FAMILY)
class RequestResource(_NewResource):
    """Allocate a struct resource [start, end] and `request_resource()` it under parent."""

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
        ret = ctx.kernel.resources.request_resource(parent, new)
        ctx.kernel.tree_changed(PROGRAM)
        if ret == 0:
            ctx.kernel.note_new_resource(new, PROGRAM)
        return errno_outcome(ret)


@op("insert_resource", binds=True, family=FAMILY)
class InsertResource(_NewResource):
    """Allocate a struct resource [start, end] and `insert_resource()` it under parent
    (it adopts the nodes it covers)."""

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
        ret = ctx.kernel.resources.insert_resource(parent, new)
        ctx.kernel.tree_changed(PROGRAM)
        if ret == 0:
            ctx.kernel.note_new_resource(new, PROGRAM)
        return errno_outcome(ret)


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

    def run(self, ctx: Context) -> Outcome:
        parent = _parent(ctx, self.parent)
        if parent is None:
            return EBADF
        new = self.new()
        ctx.bind(new)
        ctx.kernel.resources.insert_resource_expand_to_fit(parent, new)
        ctx.kernel.tree_changed(PROGRAM)
        if ctx.kernel.in_tree(new):
            ctx.kernel.note_new_resource(new, PROGRAM)
        return OK


@op("release_resource", family=FAMILY)
class ReleaseResource(Op):
    """`release_resource()`: unlink the struct together with its whole subtree."""

    res: int | None = arg(Kind.HANDLE, None)

    def run(self, ctx: Context) -> Outcome:
        res = _res(ctx, self.res)
        if res is None:
            return EBADF
        ret = ctx.kernel.resources.release_resource(res)
        ctx.kernel.tree_changed(PROGRAM)
        return errno_outcome(ret)


@op("remove_resource", family=FAMILY)
class RemoveResource(Op):
    """`remove_resource()`: unlink the struct, splicing its children into its place."""

    res: int | None = arg(Kind.HANDLE, None)

    def run(self, ctx: Context) -> Outcome:
        res = _res(ctx, self.res)
        if res is None:
            return EBADF
        ret = ctx.kernel.resources.remove_resource(res)
        ctx.kernel.tree_changed(PROGRAM)
        return errno_outcome(ret)


@op("release_child_resources", family=FAMILY)
class ReleaseChildResources(Op):
    """`release_child_resources()`: detach every descendant, rebasing each to [0, size-1]."""

    res: int | None = arg(Kind.HANDLE, None)

    def run(self, ctx: Context) -> Outcome:
        res = _res(ctx, self.res)
        if res is None:
            return EBADF
        ctx.kernel.resources.release_child_resources(res)
        ctx.kernel.tree_changed(PROGRAM)
        return OK


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
        ret = ctx.kernel.resources.adjust_resource(res, self.start, self.size)
        ctx.kernel.tree_changed(PROGRAM)
        return errno_outcome(ret)


@op("release_mem_region_adjustable", family=FAMILY)
class ReleaseMemRegionAdjustable(Op):
    """`release_mem_region_adjustable()` (memory hot-unplug): trim or split a busy node."""

    start: int = arg(Kind.ADDR, 0)
    size: int = arg(Kind.SIZE, 1)

    def run(self, ctx: Context) -> Outcome:
        ctx.kernel.release_mem_region_adjustable(self.start, self.size, PROGRAM)
        return OK


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
        res = ctx.kernel.resources.request_free_mem_region(base, self.size,
                                                           self.name or None)
        if not isinstance(res, Resource):
            return errno_outcome(res if isinstance(res, int) else -errno.ERANGE)
        ctx.kernel.note_claim(res, PROGRAM)
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
        res = ctx.kernel.resources.alloc_free_mem_region(base, self.size, self.align,
                                                         self.name or None)
        if not isinstance(res, Resource):
            return errno_outcome(res if isinstance(res, int) else -errno.ERANGE)
        ctx.kernel.tree_changed(PROGRAM)
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
        ret = ctx.kernel.resources.region_intersects(self.start, self.size, self.flags,
                                                     self.desc)
        return value_outcome(REGION_NAMES[ret])


@op("iomem_is_exclusive", family=FAMILY)
class IomemIsExclusive(Op):
    """`iomem_is_exclusive()`: may userspace map the page holding addr?"""

    addr: int = arg(Kind.ADDR, 0)

    def run(self, ctx: Context) -> Outcome:
        return value_outcome(bool(ctx.kernel.resources.iomem_is_exclusive(self.addr)))


@op("page_is_ram", family=FAMILY)
class PageIsRam(Op):
    """`page_is_ram()`: is the whole page pfn covered by one System RAM node?"""

    pfn: int = arg(Kind.ADDR, 0, hi=(1 << 52) - 1)

    def run(self, ctx: Context) -> Outcome:
        return value_outcome(bool(ctx.kernel.resources.page_is_ram(self.pfn)))
