"""kernel/resource.c as an executable model, part 1 of 4: from the top of the file (the
two roots) to ``region_intersects()``. Parts 2-4 continue it in file order:
model/resource_alloc.py (``arch_remove_reservations()`` to ``resource_alignment()``),
model/resource_region.py (``revoke_iomem()`` to ``devm_request_resource()``) and
model/resource_iomem.py (``iomem_map_sanity_check()`` to ``iomem_init_inode()``, the end
of the file). The header's side is model/ioport.py; the model-only tree checker is
model/resource_check.py.

Semantics are those of the Debian 6.1 kernel (6.1.192 with stable backports, "6.1-deb");
the KernelProfile switches in the few places where other kernels differ. References are
to docs/SEMANTICS.md (spec §n) and the bug catalog (Bn, docs/CATALOG.md).

**One class over four modules.** The kernel's functions work on two global roots; the
model keeps them, and the profile and Log the functions consult, in one
:class:`~iomemfuzz.model.resource_tree.ResourceTree` object per kernel. So that each
module can follow its stretch of resource.c function by function, that class is built as
a chain, one class per module, each extending the previous one: :class:`ResourceTreeBase`
(here), ``ResourceTreeAlloc``, ``ResourceTreeRegion``, ``ResourceTreeIomem``; then
``ResourceTree(ResourceTreeIomem, RegionMacros)`` (model/resource_tree.py) adds
ioport.h's region macros. A chain rather than independent mixins because resource.c is
one: later functions call earlier ones, and each part sees the methods of the parts
before it, as a C function sees the ones above it. Each part declares the state that
resource.c declares in its stretch (the roots here, the iomem inode in part 3). Only
ResourceTree is meant to be instantiated and imported. Functions that take no tree
(``resource_alignment()``) are module-level functions after their part's class.
Model-only helpers (event reporting, shortcut searches) sit at the end of the class of the
module that needs them, never between two kernel functions;
tests/unit/test_kernel_order.py checks the order against resource.c's.

Shape follows the kernel on purpose:

* :class:`~iomemfuzz.model.ioport.Resource` keeps the kernel's pointer structure (parent /
  sibling / child), and the tree links the caller's object, so stale-pointer quirks (a
  released node keeps its child pointer, §2.3; ``__request_resource`` does not clear
  ``new.child``, B29h) happen here too.
* Kernel ``__foo`` functions are ``_foo`` methods (Python mangles ``__names`` inside
  classes); the others, static in C or not, carry the kernel's names.
* Failures are the kernel's return values (negative errno, ``None`` for NULL, the conflicting
  node). Warnings are Events on the Log. Crashes the kernel would suffer are Events too
  (NULL_DEREF, USE_AFTER_FREE, HANG); after one, the entry point returns its ordinary
  failure value (release: -EINVAL, request/insert/adjust: -EBUSY or the root as conflict,
  region request: None) and leaves the tree as it was wherever the model can. The real
  kernel would have oopsed holding ``resource_lock``; the "kernel stays sane" oracle reports
  the event, so what happens afterwards only has to be deterministic.
* Every list or tree walk is bounded (``_WALK``, model/ioport.py). Misused public
  operations can build cyclic lists (for example relinking a node whose stale ``child``
  still points into the tree); the kernel would spin forever with the lock held, the
  model emits HANG and gives up.
* Every write to a Resource field someone else may see is counted first
  (model/generation.py), so the whole-state oracles know when to look again.
"""

from __future__ import annotations

from collections.abc import Callable

from .errno import EBUSY, EINVAL, ENODEV
from .event import HANG, INFO, NULL_DEREF, USE_AFTER_FREE, WARN, Log
from .generation import changed
from .ioport import (
    _WALK,
    IORES_DESC_NONE,
    IORESOURCE_BUSY,
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_SYSTEM_RAM,
    U64_MAX,
    Resource,
    _s,
    format_resource,
)
from .profile import DEFAULT, KernelProfile
from .sched import WOULD_BLOCK

__all__ = [
    "IO_SPACE_LIMIT",
    "MAX_IORES_LEVEL",
    "PAGE_MASK",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "REGION_DISJOINT",
    "REGION_INTERSECTS",
    "REGION_MIXED",
    "WOULD_BLOCK",
    "ResourceTreeBase",
]

# --- Architecture (x86-64) -------------------------------------------------------------

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = U64_MAX & ~(PAGE_SIZE - 1)
IO_SPACE_LIMIT = 0xFFFF

# /proc/iomem indents at most this many levels (an enum near the top of resource.c).
MAX_IORES_LEVEL = 5

# region_intersects() answers (an enum in include/linux/mm.h).
REGION_INTERSECTS = 0
REGION_DISJOINT = 1
REGION_MIXED = 2

_SYSTEM_RAM_BUSY = IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY
_MEM_BUSY = IORESOURCE_MEM | IORESOURCE_BUSY




class _Hang(Exception):
    """A walk exceeded _WALK_LIMIT steps: the kernel would loop forever here."""


class ResourceTreeBase:
    """Both resource roots of one kernel, and kernel/resource.c up to region_intersects().

    The base of :class:`~iomemfuzz.model.resource_tree.ResourceTree` (see the module
    docstring); it holds the state every part uses: the roots, the profile and its
    switches, the Log, and the WARN_ON_ONCE sites that have fired.
    """

    __slots__ = (
        "_once",
        "_ri_nested",
        "_walk_first_lvl",
        "iomem_resource",
        "ioport_resource",
        "log",
        "profile",
    )

    def __init__(self, profile: KernelProfile = DEFAULT, log: Log | None = None) -> None:
        self.profile = profile
        self.log = log if log is not None else Log()
        self.iomem_resource = Resource(0, U64_MAX, "PCI mem", IORESOURCE_MEM)
        self.ioport_resource = Resource(0, IO_SPACE_LIMIT, "PCI IO", IORESOURCE_IO)
        # WARN_ON_ONCE sites that have fired in this boot.
        self._once: set[str] = set()
        # The profile is frozen: read the switches once, the hot paths test plain attributes.
        self._ri_nested = profile.region_intersects_nested
        self._walk_first_lvl = not profile.walkers_nested

    @staticmethod
    def next_resource(p: Resource, skip_children: bool) -> Resource | None:
        """Models `next_resource()` / `next_resource_skip_children()`, kernel/resource.c, v6.1.

        The pre-order successor through the parent pointers. Climbing does not stop at the
        walk's own root, exactly as in C. Raises _Hang on a cyclic structure."""
        if not skip_children and p.child is not None:
            return p.child
        for _ in _WALK:
            if p.sibling is not None or p.parent is None:
                return p.sibling
            p = p.parent
        raise _Hang

    @staticmethod
    def free_resource(res: Resource | None) -> None:
        """Models `free_resource()`, kernel/resource.c, v6.1 (6.1-deb).

        Only kmalloc'ed structs are really freed (memblock and static ones are leaked or
        kept), so only those can later be used after free."""
        if res is not None and res.slab:
            changed()
            res.freed = True

    @staticmethod
    def alloc_resource() -> Resource:
        """Models `alloc_resource()`, kernel/resource.c, v6.1 (6.1-deb).

        A zeroed kmalloc'ed struct (allocation never fails here)."""
        res = Resource()
        res.slab = True
        return res

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
                changed()
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
        changed()
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

    def _release_child_resources(self, r: Resource) -> None:
        """Models `__release_child_resources()`, kernel/resource.c, v6.1 (6.1-deb).

        Detaches every descendant (post-order, like the C recursion): each loses parent,
        sibling and children, is logged, and is rebased to [0, size - 1] with its flags.
        Every pointer is cleared as it is followed, so this ends even on cyclic lists."""
        if r.child is not None:
            changed()
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

    def request_resource_conflict(self, root: Resource, new: Resource) -> Resource | None:
        """Models `request_resource_conflict()`, kernel/resource.c, v6.1 (6.1-deb)."""
        if self._use_after_free("request_resource_conflict", root, new):
            return root
        return self._request_resource(root, new)

    def request_resource(self, root: Resource, new: Resource) -> int:
        """Models `request_resource()`, kernel/resource.c, v6.1 (6.1-deb).

        0, or -EBUSY for any conflict (an invalid range too, never -EINVAL)."""
        return -EBUSY if self.request_resource_conflict(root, new) is not None else 0

    def release_resource(self, old: Resource) -> int:
        """Models `release_resource()`, kernel/resource.c, v6.1 (6.1-deb). 0 / -EINVAL."""
        if self._use_after_free("release_resource", old):
            return -EINVAL
        return self._release_resource(old, True)

    def find_next_iomem_res(self, start: int, end: int, flags: int, desc: int,
                            out: Resource | None, first_lvl: bool = False, *,
                            private: bool = False) -> int:
        """Models `find_next_iomem_res()`, kernel/resource.c, v6.1 (6.1-deb).

        The lowest iomem node (a parent before its children) that overlaps [start, end]
        and has all ``flags`` and ``desc`` (NONE = any). Children are skipped until the
        first overlapping node. ``out`` gets the match clipped to [start, end] with its
        flags, desc and parent. 0, -ENODEV, or -EINVAL (no ``out``, or start >= end).
        ``first_lvl``: the pre-v5.14 top-level-only search (profile ``walkers_nested``).
        ``private``: ``out`` is the caller's own on-stack struct that nothing links (the
        walkers below, as in C), so writing it is not counted (model/generation.py)."""
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
                    if not private:
                        changed()
                    out.start = max(start, p.start)
                    out.end = min(end, p.end)
                    out.flags = p.flags
                    out.desc = p.desc
                    out.parent = p.parent
                    return 0
            # p = next_resource(p, skip_children), inlined (page_is_ram and the walkers
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
                    and self.find_next_iomem_res(start, end, flags, desc, res,
                                                 first_lvl, private=True) == 0):
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
            if not (start < end and self.find_next_iomem_res(
                    start, end, _SYSTEM_RAM_BUSY, IORES_DESC_NONE, res, private=True) == 0):
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

    @staticmethod
    def _is_ram(pfn: int, nr_pages: int, arg: object) -> int:
        """Models `__is_ram()`, kernel/resource.c, v6.1 (6.1-deb): page_is_ram()'s callback."""
        return 1

    def page_is_ram(self, pfn: int) -> bool:
        """Models `page_is_ram()`, kernel/resource.c, v6.1 (6.1-deb).

        True iff one SYSTEM_RAM|BUSY node (the first in pre-order) covers the whole page; a
        page split between two adjacent RAM nodes is "not RAM"."""
        return self.walk_system_ram_range(pfn, 1, None, self._is_ram) == 1

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

    # --- model-only: reporting what the kernel would suffer ---------------------------------

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

