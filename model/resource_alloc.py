"""kernel/resource.c as an executable model, part 2 of 4: from ``arch_remove_reservations()``
to ``resource_alignment()`` — finding room for a resource (``__find_resource``,
``reallocate_resource``, ``allocate_resource``, ``lookup_resource``), inserting one over
existing nodes, removing and adjusting one, and the boot-time ``reserve_region_with_split``.

:class:`ResourceTreeAlloc` continues part 1
(:class:`~iomemfuzz.model.resource.ResourceTreeBase`) and is continued by part 3
(model/resource_region.py); model/resource.py explains the chain. Semantics are those of
the Debian 6.1 kernel ("6.1-deb"); spec references (§n, Bn) are to the kernel-semantics
spec (README.md).
"""

from __future__ import annotations

from collections.abc import Callable

from .errno import EBUSY, EINVAL
from .event import DUPLICATED_INSERTION, EXPANDED_RESOURCE, WARN
from .generation import changed
from .ioport import (
    _WALK,
    IORESOURCE_BUSY,
    IORESOURCE_MEM,
    IORESOURCE_SIZEALIGN,
    IORESOURCE_STARTALIGN,
    IORESOURCE_TYPE_BITS,
    IORESOURCE_UNSET,
    U64_MAX,
    Resource,
    _s,
    format_resource,
    resource_contains,
    resource_size,
)
from .resource import ResourceTreeBase

__all__ = ["ResourceTreeAlloc", "resource_alignment"]

# x86 arch_remove_reservations(): the BIOS area below 4 GiB is never handed out.
_BIOS_ROM_BASE = 0xFFE00000
_BIOS_ROM_END = 0xFFFFFFFF


def _align(x: int, a: int) -> int:
    """The kernel's ALIGN(x, a) in u64 (a is expected to be a power of two; others give
    whatever the macro gives)."""
    mask = (a - 1) & U64_MAX
    return ((x + mask) & U64_MAX) & ~mask & U64_MAX


class ResourceTreeAlloc(ResourceTreeBase):
    """kernel/resource.c from arch_remove_reservations() to reserve_region_with_split():
    part 2 of :class:`~iomemfuzz.model.resource_tree.ResourceTree` (see
    model/resource.py)."""

    __slots__ = ()

    def arch_remove_reservations(self, avail: Resource) -> None:
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
                self.arch_remove_reservations(tmp)
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
                        changed()
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

    def reallocate_resource(self, root: Resource, old: Resource, newsize: int, lo: int,
                            hi: int, align: int,
                            alignf: Callable[[object, Resource, int, int], int] | None,
                            alignf_data: object) -> int:
        """Models `reallocate_resource()`, kernel/resource.c, v6.1 (6.1-deb)."""
        new = Resource(old.start, old.end, old.name, old.flags, old.desc)
        err = self._find_resource(root, old, new, newsize, lo, hi, align, alignf, alignf_data)
        if err:
            return err
        if resource_contains(new, old):
            changed()
            old.start = new.start
            old.end = new.end
            return 0
        if old.child is not None:
            return -EBUSY
        if resource_contains(old, new):
            changed()
            old.start = new.start
            old.end = new.end
            return 0
        # The C code releases old, copies the candidate over it (its parent/sibling copied
        # from old before the release) and requests it again; BUG_ON if that conflicts.
        self._release_resource(old, True)
        changed()
        old.start = new.start
        old.end = new.end
        if self._request_resource(root, old) is not None:
            self.log.emit(WARN, "kernel BUG at kernel/resource.c: reallocate_resource: "
                          "re-request of the moved resource conflicts",
                          function="reallocate_resource")
        return 0

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
            return self.reallocate_resource(root, new, size, lo, hi, align, alignf,
                                             alignf_data)
        err = self._find_resource(root, None, new, size, lo, hi, align, alignf, alignf_data)
        if err >= 0 and self._request_resource(root, new) is not None:
            err = -EBUSY
        return err

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
        changed()
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
                changed()
                new.start = conflict.start
            if conflict.end > new.end:
                changed()
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

    def remove_resource(self, old: Resource) -> int:
        """Models `remove_resource()`, kernel/resource.c, v6.1 (6.1-deb). 0 / -EINVAL.

        The children move up into old's place; old.child is left pointing at them."""
        if self._use_after_free("remove_resource", old):
            return -EINVAL
        return self._release_resource(old, False)

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
        changed()
        res.start = start
        res.end = end
        return 0

    def adjust_resource(self, res: Resource, start: int, size: int) -> int:
        """Models `adjust_resource()`, kernel/resource.c, v6.1 (6.1-deb). 0 / -EBUSY."""
        if self._use_after_free("adjust_resource", res):
            return -EBUSY
        return self._adjust_resource(res, start, size)

    def _reserve_region_with_split(self, root: Resource, start: int, end: int,
                                   name: str | None) -> None:
        """Models `__reserve_region_with_split()`, kernel/resource.c, v6.1 (6.1-deb)."""
        kind = root.flags & IORESOURCE_TYPE_BITS
        res = self.alloc_resource()
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
                self.free_resource(res)
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
                    next_res = self.alloc_resource()
                    next_res.name = name
                    next_res.start = (conflict.end + 1) & U64_MAX
                    next_res.end = old_end
                    next_res.flags = kind | IORESOURCE_BUSY
            else:
                res.start = (conflict.end + 1) & U64_MAX
        self._hang("__reserve_region_with_split", "does not terminate")

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


def resource_alignment(res: Resource) -> int:
    """Models `resource_alignment()`, kernel/resource.c, v6.1 (6.1-deb). 0 = invalid."""
    mode = res.flags & (IORESOURCE_SIZEALIGN | IORESOURCE_STARTALIGN)
    if mode == IORESOURCE_SIZEALIGN:
        return resource_size(res)
    if mode == IORESOURCE_STARTALIGN:
        return res.start
    return 0

