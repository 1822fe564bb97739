"""kernel/resource.c as an executable model, part 3 of 4: from ``revoke_iomem()`` to
``devm_request_resource()`` — the region API drivers use (``__request_region``,
``__release_region``) and the revocation of user mappings it triggers, memory hotplug's
region calls and the devres wrapper.

:class:`ResourceTreeRegion` continues part 2
(:class:`~iomemfuzz.model.resource_alloc.ResourceTreeAlloc`) and is continued by part 4
(model/resource_iomem.py); model/resource.py explains the chain. Semantics are those of
the Debian 6.1 kernel ("6.1-deb"); spec references (§n, Bn) are to the kernel-semantics
spec (README.md).

``revoke_iomem`` and ``iomem_get_mapping`` (and ``iomem_init_inode``, part 4) live in
resource.c since v5.12 (71a1d8ed900f), and so here, with their state, the iomem inode.
v5.8-5.11 had ``revoke_devmem()`` and the inode in drivers/char/mem.c; the profile
switches give those kernels the same behaviour from the same slot (model/devmem.py's
``chr_dev_init`` fills it there). What revoke_iomem calls outside resource.c,
``devmem_is_allowed()`` (arch/x86/mm/init.c) and the address spaces it unmaps (mm), is
attached to the tree by Devmem (model/devmem.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errno import EBUSY
from .event import NULL_DEREF, RELEASE_NONEXISTENT, RESOURCE_COLLISION, REVOKE_SKIPPED, WARN, Log
from .generation import changed
from .ioport import (
    _WALK,
    IORES_DESC_DEVICE_PRIVATE_MEMORY,
    IORESOURCE_BUSY,
    IORESOURCE_EXT_TYPE_BITS,
    IORESOURCE_MEM,
    IORESOURCE_MUXED,
    IORESOURCE_SYSRAM_MERGEABLE,
    IORESOURCE_SYSTEM_RAM,
    IORESOURCE_TYPE_BITS,
    U64_MAX,
    Resource,
    _s,
    format_resource,
)
from .mm import CAUSE_REVOKE, AddressSpace, Mm
from .profile import CLAIM_FAIL, DEFAULT, KernelProfile
from .resource import PAGE_SHIFT
from .resource_alloc import ResourceTreeAlloc
from .sched import WOULD_BLOCK, WouldBlock

__all__ = [
    "REVOKE_UNMAPPED",
    "RegionClaim",
    "ResourceTreeRegion",
    "Revocation",
    "iomem_inode_compiled_out",
]

_TYPE_EXT = IORESOURCE_TYPE_BITS | IORESOURCE_EXT_TYPE_BITS
_SYSTEM_RAM_BUSY = IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY

REVOKE_UNMAPPED = "unmapped"  # Revocation.outcome when unmap_mapping_range ran
# Other outcomes are the REVOKE_SKIPPED reasons: "io_strict_devmem=n", "no-inode",
# "ends-allowed".


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revoke_iomem() call: for which claim, when (Mm.tick()), with what outcome."""

    res: Resource
    at: int
    outcome: str


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


class ResourceTreeRegion(ResourceTreeAlloc):
    """kernel/resource.c from revoke_iomem() to devm_request_resource(): part 3 of
    :class:`~iomemfuzz.model.resource_tree.ResourceTree`, whose docstring describes the
    hooks and collaborators this part holds."""

    __slots__ = (
        "_claim_fail",
        "claim_veto_hook",
        "devmem_is_allowed",
        "iomem_inode",
        "mm",
        "muxed_wake_hook",
        "revocations",
        "revoke_hook",
    )

    def __init__(self, profile: KernelProfile = DEFAULT, log: Log | None = None) -> None:
        super().__init__(profile, log)
        self.revoke_hook: Callable[[Resource], object] | None = None
        self.claim_veto_hook: Callable[[int, int], bool] | None = None
        self.muxed_wake_hook: Callable[[], object] | None = None
        # The iomem pseudo-inode's address space: NULL until iomem_init_inode() succeeds
        # (or, on v5.8-5.11, chr_dev_init makes its devmem inode, modelled as this slot).
        self.iomem_inode: AddressSpace | None = None
        # revoke_iomem's collaborators, attached by Devmem.
        self.devmem_is_allowed: Callable[[int], int] | None = None
        self.mm: Mm | None = None
        # Every revoke_iomem() call and what it did, for the mapping oracles.
        self.revocations: list[Revocation] = []
        self._claim_fail = profile.claim_policy == CLAIM_FAIL

    def revoke_iomem(self, res: Resource) -> None:
        """Models `revoke_iomem()`, kernel/resource.c, v6.1 (and v5.8's `revoke_devmem()`,
        drivers/char/mem.c): unless IO_STRICT_DEVMEM is off, the inode is missing, or
        *both end pages* are still allowed, zap every user mapping of the claimed pages
        with unmap_mapping_range(iomem, start, size, even_cows=1).

        Only the first and last pfn are checked ("for performance"), so a claim whose
        ends are allowed is never revoked even if its middle is off limits (B6). Every
        call is recorded in ``revocations``, skipped ones also as a REVOKE_SKIPPED event."""
        if not self.profile.revoke_devmem:
            return
        if not self.profile.io_strict_devmem:
            self._revoke_skipped(res, "io_strict_devmem=n", "stub")
            return
        inode = self.iomem_inode
        if inode is None:
            self._revoke_skipped(res, "no-inode", "iomem inode not ready")
            return
        if self._both_ends_allowed(res):
            self._revoke_skipped(res, "ends-allowed", "first and last page still allowed")
            return
        size = (res.end - res.start + 1) & U64_MAX
        self.revocations.append(Revocation(res, self.mm.tick(), REVOKE_UNMAPPED))
        self.mm.unmap_mapping_range(inode, res.start, size, True, cause=CAUSE_REVOKE,
                                    claim_start=res.start, claim_end=res.end)

    def iomem_get_mapping(self) -> AddressSpace | None:
        """Models `iomem_get_mapping()`, kernel/resource.c, v6.1: the iomem inode's
        i_mapping, with no NULL check.

        Called before iomem_init_inode or after it failed it dereferences NULL: a
        NULL_DEREF event and a None result (B25). The never-released v3-v5 variant
        returned NULL without the inode instead; its callers oops (B24)."""
        if self.iomem_inode is not None:
            return self.iomem_inode
        if iomem_inode_compiled_out(self.profile):
            return None
        self.log.emit(NULL_DEREF, "BUG: kernel NULL pointer dereference in "
                      "iomem_get_mapping: iomem_inode is NULL", where="iomem_get_mapping",
                      catalog="B25")
        return None

    def _request_region_locked(self, parent: Resource, start: int, n: int, name: str | None,
                               flags: int, claim: RegionClaim | None = None
                               ) -> Resource | WouldBlock | None:
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
                        changed()
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
                        ) -> Resource | WouldBlock | None:
        """Models `__request_region()`, kernel/resource.c, v6.1 (6.1-deb).

        :meth:`_request_region_locked`, then, only if the *argument* ``parent`` is
        ``iomem_resource``, ``revoke_iomem(res)`` via ``revoke_hook`` (outside the lock, so
        not atomic with the claim). WOULD_BLOCK: see _request_region_locked."""
        if parent.freed and self._use_after_free("__request_region", parent):
            return None
        res = self._request_region_locked(parent, start, n, name, flags, claim)
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
                changed()
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
            changed()
            if via_child:
                holder.child = res.sibling
            else:
                holder.sibling = res.sibling
            self.free_resource(res)
        elif res.start == start:
            if self._adjust_resource(res, (end + 1) & U64_MAX, (res.end - end) & U64_MAX):
                self._warn_once(site, text)
        elif res.end == end:
            if self._adjust_resource(res, res.start, (start - res.start) & U64_MAX):
                self._warn_once(site, text)
        else:
            new_res = self.alloc_resource()
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
            changed()
            res.sibling = new_res

    @staticmethod
    def system_ram_resources_mergeable(r1: Resource, r2: Resource) -> bool:
        """Models `system_ram_resources_mergeable()`, kernel/resource.c, v6.1 (6.1-deb).

        Names are compared by value: the kernel compares the pointers, which hotplug users
        share."""
        return (r1.flags == r2.flags and (r1.end + 1) & U64_MAX == r2.start
                and r1.name == r2.name and r1.desc == r2.desc
                and r1.child is None and r2.child is None)

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
        changed()
        res.flags |= IORESOURCE_SYSRAM_MERGEABLE
        cur = res.sibling
        if cur is not None and self.system_ram_resources_mergeable(res, cur):
            res.end = cur.end
            res.sibling = cur.sibling
            self.free_resource(cur)
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
        if cur is not None and self.system_ram_resources_mergeable(cur, res):
            cur.end = res.end
            cur.sibling = res.sibling
            self.free_resource(res)

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

    # --- model-only helpers -------------------------------------------------------------------

    def _both_ends_allowed(self, res: Resource) -> bool:
        """revoke_iomem()'s test: devmem_is_allowed() of the first pfn, then of the last.

        A claim within one page (most BARs and single-page requests) asks twice about the
        same page with nothing in between: the second answer is the first unless the
        first logged something (a walk that hung reports each time), so it is asked
        again only then."""
        first = res.start >> PAGE_SHIFT
        last = res.end >> PAGE_SHIFT
        mark = len(self.log)
        if not self.devmem_is_allowed(first):
            return False
        if last == first and len(self.log) == mark:
            return True
        return bool(self.devmem_is_allowed(last))

    def _revoke_skipped(self, res: Resource, reason: str, why: str) -> None:
        self.revocations.append(Revocation(res, self.mm.tick(), reason))
        self.log.emit(REVOKE_SKIPPED, f"revoke_iomem [{res.start:#x}-{res.end:#x}]: {why}",
                      reason=reason, start=res.start, end=res.end)


def iomem_inode_compiled_out(profile: KernelProfile) -> bool:
    """True where the iomem inode code is not built at all: v3-v5 of the 2020 series
    (never released) kept it under CONFIG_IO_STRICT_DEVMEM (B24)."""
    return (profile.premerge_null_mapping_without_io_strict
            and not profile.io_strict_devmem)
