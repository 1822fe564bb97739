"""kernel/resource.c as an executable model, part 4 of 4: from ``iomem_map_sanity_check()``
to the end of the file — the checks /dev/mem and ioremap ask of iomem
(``iomem_map_sanity_check``, ``resource_is_exclusive``, ``iomem_is_exclusive``), the
free-region allocators (CONFIG_GET_FREE_REGION) and the iomem inode's initcall.

:class:`ResourceTreeIomem` continues part 3
(:class:`~iomemfuzz.model.resource_region.ResourceTreeRegion`);
:class:`~iomemfuzz.model.resource_tree.ResourceTree` completes it with ioport.h's region
macros. model/resource.py explains the chain. Semantics are those of the Debian 6.1
kernel ("6.1-deb"); spec references (§n, Bn) are to the kernel-semantics spec (README.md).
"""

from __future__ import annotations

from .errno import ENOMEM, ERANGE
from .event import WARN, Log
from .generation import changed
from .ioport import (
    _WALK,
    IORES_DESC_DEVICE_PRIVATE_MEMORY,
    IORES_DESC_NONE,
    IORESOURCE_BUSY,
    IORESOURCE_EXCLUSIVE,
    IORESOURCE_MEM,
    IORESOURCE_SYSTEM_RAM,
    U64_MAX,
    Resource,
    _s,
    format_resource,
)
from .mm import AddressSpace
from .profile import DEFAULT, KernelProfile
from .resource import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, REGION_DISJOINT, _Hang
from .resource_alloc import _align
from .resource_region import ResourceTreeRegion, iomem_inode_compiled_out
from .sched import WOULD_BLOCK

__all__ = [
    "GFR_DEFAULT_ALIGN",
    "GFR_DESCENDING",
    "GFR_REQUEST_REGION",
    "PHYSMEM_END",
    "ResourceTreeIomem",
]

# PHYSMEM_END with 4-level paging and a direct map KASLR did not trim: (1 << 46) - 1
# (arch/x86/mm/kaslr.c presets physmem_end to this). ResourceTree.physmem_end can override it.
PHYSMEM_END = (1 << 46) - 1
# get_free_mem_region() flags and its default alignment, 1 << PA_SECTION_SHIFT (27 on x86-64).
GFR_DESCENDING = 1 << 0
GFR_REQUEST_REGION = 1 << 1
GFR_DEFAULT_ALIGN = 1 << 27

_EXCLUSIVE_SYSTEM_RAM = IORESOURCE_SYSTEM_RAM | IORESOURCE_EXCLUSIVE


class ResourceTreeIomem(ResourceTreeRegion):
    """kernel/resource.c from iomem_map_sanity_check() to iomem_init_inode(): part 4 of
    :class:`~iomemfuzz.model.resource_tree.ResourceTree`."""

    __slots__ = (
        "_io_strict",
        "_strict_checks",
        "_v516",
        "physmem_end",
    )

    def __init__(self, profile: KernelProfile = DEFAULT, log: Log | None = None) -> None:
        super().__init__(profile, log)
        self.physmem_end = PHYSMEM_END
        self._v516 = profile.iomem_is_exclusive_v516
        self._strict_checks = profile.strict_iomem_checks
        self._io_strict = profile.io_strict_devmem

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
                p = self.next_resource(p, False)
        except _Hang:
            pass
        self._hang("iomem_map_sanity_check", "walk does not terminate")
        return 0

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
            # p = next_resource(p, skip_children), inlined: devmem_is_allowed asks this
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
                res = self._request_region_locked(self.iomem_resource, addr, size, name, 0)
                if res is None or res is WOULD_BLOCK:
                    return -ERANGE
                changed()
                res.desc = desc
                if self.revoke_hook is not None:
                    self.revoke_hook(res)
                return res
            res = self.alloc_resource()
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

    def iomem_init_inode(self) -> int:
        """Models `iomem_init_inode()` (fs_initcall), kernel/resource.c, v6.1.

        Pins the "iomem" pseudo-fs and publishes an anonymous inode. On failure it only
        logs: the pointer stays NULL forever, revocation is silently off, and every later
        iomem_get_mapping() dereferences NULL (B25)."""
        if not (self.profile.revoke_devmem and self.profile.iomem_inode_in_resource):
            return 0  # v5.8-5.11 make the inode in chr_dev_init; <= 5.7 have none
        if iomem_inode_compiled_out(self.profile):
            return 0
        if self.iomem_inode is not None:
            return 0
        if self.profile.iomem_init_inode_fails:
            self.log.emit(WARN, "Cannot allocate inode for iomem: -12", initcall="iomem")
            return -ENOMEM
        self.iomem_inode = AddressSpace("iomem")
        return 0

    # --- model-only helpers -------------------------------------------------------------------

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
