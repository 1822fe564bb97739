"""The driver contract: what an in-kernel caller of the resource API may do.

A Program line that plays a driver, bus code or memory hotplug (``__request_region``,
``release_resource``, ``adjust_resource``, ...) is held to the contract every correct
caller in the kernel keeps: the kernel-doc of each function, and what its callers do.
The kernel checks almost none of it (``__release_region`` warns, ``release_resource``
of an unlinked struct dereferences NULL), so a fuzzer that breaks it finds crashes and
leaks no driver can cause. Those are not bugs a maintainer can act on, so by default a
line that would break the contract does not run: the door (model/kernel.py) asks the
Kernel's observer, the claim ledger asks :func:`broken_rule`, and the line shows
``illegal``. Under a profile with ``driver_misuse`` set the line runs and every finding
after it is classed ``driver-misuse``.

Kernel code the model runs on its own (boot, hotplug, driver probes) is never asked:
it is the kernel, not a caller the Program plays. System calls and sysfs writes have no
contract: the kernel must cope with anything a process does.

Each rule names what it requires, in the caller's terms, and where that comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iomemfuzz.model.ioport import (
    IORESOURCE_BUSY,
    IORESOURCE_EXCLUSIVE,
    IORESOURCE_MUXED,
    IORESOURCE_SYSRAM_DRIVER_MANAGED,
    IORESOURCE_SYSTEM_RAM,
    IORESOURCE_TYPE_BITS,
    Resource,
    resource_type,
)
from iomemfuzz.model.resource_check import descendants

if TYPE_CHECKING:
    from iomemfuzz.model.kernel import Kernel

U64_MAX = (1 << 64) - 1
# The flag bits a caller of __request_region passes (the macros of ioport.h and memory
# hotplug's register_memory_resource()); BUSY and the type come from the function.
_REGION_FLAGS = (IORESOURCE_MUXED | IORESOURCE_EXCLUSIVE | IORESOURCE_SYSTEM_RAM
                 | IORESOURCE_SYSRAM_DRIVER_MANAGED | IORESOURCE_BUSY)

# (kernel, the claim ledger of fuzz/ledger.py, caller, arguments) -> broken? The ledger
# is not imported here: it imports this module.
Check = Callable[["Kernel", Any, str, dict[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    """One clause of the contract. ``broken`` says whether a call breaks it."""

    name: str
    requires: str  # what the caller must do, in one sentence
    source: str  # where the contract is written or kept
    broken: Check


def _root(node: Resource) -> Resource:
    while node.parent is not None:
        node = node.parent
    return node


def _usable(kernel: Kernel, node: object) -> bool:
    """A root, or a struct linked into the tree and not freed."""
    return (isinstance(node, Resource) and not node.freed
            and ((node.parent is None and node in kernel.roots) or kernel.in_tree(node)))


def _wraps(start: int, size: int) -> bool:
    return size < 1 or start + size - 1 > U64_MAX


def _parent_unusable(kernel, book, caller, a) -> bool:
    return not _usable(kernel, a["parent"])


def _struct_unusable(kernel, book, caller, a) -> bool:
    res = a["res"]
    return res.parent is None or not _usable(kernel, res)


def _not_own_struct(kernel, book, caller, a) -> bool:
    return book.structs.get(a["res"]) != caller


def _foreign_claims_inside(kernel, book, caller, a) -> bool:
    """Some other caller holds a busy region below ``res``."""
    res = a["res"]
    for node, claim in book.claims.items():
        if claim.holder == caller or claim.lost_by is not None or node is res:
            continue
        p = node.parent
        while p is not None and p is not res:
            p = p.parent
        if p is res:
            return True
    return False


def _region_wraps(kernel, book, caller, a) -> bool:
    return _wraps(a["start"], a["n"])


def _size_wraps(kernel, book, caller, a) -> bool:
    return _wraps(a.get("start", 0), a["size"])


def _region_flags(kernel, book, caller, a) -> bool:
    return bool(a["flags"] & ~_REGION_FLAGS)


def _new_inverted(kernel, book, caller, a) -> bool:
    new = a["new"]
    return new.start > new.end


def _new_wrong_type(kernel, book, caller, a) -> bool:
    """The struct's type is not its root's (MEM under iomem, IO under ioport)."""
    new, parent = a["new"], a["parent"]
    if not isinstance(parent, Resource):
        return False
    return resource_type(new) != (_root(parent).flags & IORESOURCE_TYPE_BITS)


def _busy_over_busy(kernel, book, caller, a) -> bool:
    """A busy new struct would meet a busy node: take it in (__request_region and
    __release_region treat a busy node as a leaf, so whatever it covers could no longer
    be released or claimed by the callers that hold it), or land inside it (the holder's
    release then drops the struct with its own node)."""
    new = a["new"]
    return bool(new.flags & IORESOURCE_BUSY) and _meets_busy(_root(a["parent"]), new.start,
                                                             new.end)


def _busy_over_busy_grown(kernel, book, caller, a) -> bool:
    """The same, for the range insert_resource_expand_to_fit() grows the struct to."""
    new = a["new"]
    if not new.flags & IORESOURCE_BUSY:
        return False
    root = _root(a["parent"])
    start, end = _grown(root, new.start, new.end)
    return _meets_busy(root, start, end)


def _meets_busy(root: Resource, start: int, end: int) -> bool:
    return any(node.flags & IORESOURCE_BUSY and node.start <= end and start <= node.end
               for node in descendants(root))


def _grown(root: Resource, start: int, end: int) -> tuple[int, int]:
    """The range insert_resource_expand_to_fit() ends with: from the root, go down into
    the child that holds the whole range; at the level where it stops, a child that only
    partly overlaps is a conflict, and the range grows to cover it and starts again."""
    while True:
        parent, conflict = root, None
        while conflict is None:
            child, inside = parent.child, None
            while child is not None and conflict is None:
                if child.start <= end and start <= child.end:
                    if child.start <= start and end <= child.end \
                            and (child.start, child.end) != (start, end):
                        inside = child
                    elif child.start < start or child.end > end:
                        conflict = child
                child = child.sibling
            if conflict is None and inside is None:
                return start, end  # everything it overlaps here fits inside it
            if conflict is None:
                parent = inside
        if conflict.start <= root.start and root.end <= conflict.end:
            return start, end
        start, end = min(start, conflict.start), max(end, conflict.end)


def _not_holding_region(kernel, book, caller, a) -> bool:
    """No live region of ``caller`` at exactly [start, start+n-1] under that root."""
    root, start, end = _root(a["parent"]), a["start"], a["start"] + a["n"] - 1
    return not any(
        c.holder == caller and c.lost_by is None and c.how in REGION_CALLS
        and c.node.start == start and c.node.end == end and _root(c.node) is root
        for c in book.claims.values())


def _not_system_ram(kernel, book, caller, a) -> bool:
    """Some byte of [start, start+size-1] is not in a busy System RAM node."""
    start, end = a["start"], a["start"] + a["size"] - 1
    ram = sorted((n.start, n.end) for n in descendants(kernel.roots[0])
                 if n.flags & IORESOURCE_SYSTEM_RAM == IORESOURCE_SYSTEM_RAM
                 and n.flags & IORESOURCE_BUSY)
    at = start
    for lo, hi in ram:
        if lo <= at <= hi:
            at = hi + 1
            if at > end:
                return False
    return True


def _not_merge_candidate(kernel, book, caller, a) -> bool:
    res = a["res"]
    return (res.flags & (IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY)
            != IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY)


def _bad_align(kernel, book, caller, a) -> bool:
    align = a["align"]
    return align < 1 or align & (align - 1) != 0


def _bad_window(kernel, book, caller, a) -> bool:
    return a["lo"] > a["hi"]


def _after_boot(kernel, book, caller, a) -> bool:
    return kernel.boot.done


def _not_a_root(kernel, book, caller, a) -> bool:
    return a["parent"] not in kernel.roots


def _range_inverted(kernel, book, caller, a) -> bool:
    return a["start"] > a["end"]


PARENT = Rule("parent-linked", "a parent passed in is a root or a struct that is linked "
              "into the tree and not freed",
              "every caller passes &iomem_resource, &ioport_resource or a resource it "
              "holds linked", _parent_unusable)
STRUCT = Rule("struct-linked", "the struct passed in is linked into the tree and not freed",
              "kernel-doc of release_resource/remove_resource/adjust_resource: the "
              "resource was requested or inserted before (B29f: a NULL parent oopses)",
              _struct_unusable)
OWN = Rule("own-struct", "a caller passes only a struct it linked itself with "
           "request_resource, insert_resource, allocate_resource or "
           "devm_request_resource (regions from __request_region go back through "
           "__release_region)",
           "each struct resource has one owner, who frees it; kernel-doc of "
           "remove_resource: 'the resource must have been inserted'",
           _not_own_struct)
NO_FOREIGN = Rule("no-foreign-claims", "nobody else holds a busy region inside the struct "
                  "a caller releases",
                  "pci_release_resource and the resize and bridge-window paths run only "
                  "with no driver bound below", _foreign_claims_inside)
REGION_SIZE = Rule("no-wrap", "n >= 1 and start + n - 1 does not wrap",
                   "callers pass a BAR's or a device's length, never 0",
                   _region_wraps)
SIZE = Rule("no-wrap", "size >= 1 and start + size - 1 does not wrap",
            "callers pass a real length", _size_wraps)
REGION_FLAGS = Rule("region-flags", "flags are among MUXED, EXCLUSIVE and the System RAM "
                    "bits memory hotplug passes",
                    "the ioport.h macros and register_memory_resource() are the callers",
                    _region_flags)
NEW_RANGE = Rule("struct-range", "a new struct has start <= end", "callers set end = start "
                 "+ size - 1 with size >= 1", _new_inverted)
NEW_TYPE = Rule("struct-type", "a new struct carries its root's type (MEM under iomem, "
                "IO under ioport)", "callers fill flags from the kind of space they "
                "request in", _new_wrong_type)
BUSY_OVER_BUSY = Rule("busy-meets-no-busy", "a busy struct a caller inserts neither takes "
                      "in nor lands inside a busy region (firmware's, a driver's or its own)",
                      "insert_resource's callers (e820 'Kernel code', crash kernel) place a "
                      "busy node over ranges nobody claimed", _busy_over_busy)
HOLDS = Rule("holds-region", "a caller releases only a region it requested and still "
             "holds, with the same start and length (B16)",
             "kernel-doc of __release_region: release a previously reserved region; "
             "devm checks the match and warns", _not_holding_region)
SYSRAM = Rule("system-ram-only", "memory hot-unplug releases only ranges that are "
              "busy System RAM", "try_remove_memory() calls it for memory blocks it "
              "added", _not_system_ram)
MERGE = Rule("system-ram-struct", "the struct is busy System RAM (memory hotplug's own)",
             "add_memory_resource() is the only caller", _not_merge_candidate)
ALIGN = Rule("align-power-of-two", "align is a power of two", "callers pass a BAR "
             "alignment or PAGE_SIZE", _bad_align)
WINDOW = Rule("window-ordered", "lo <= hi", "callers pass a bus window", _bad_window)
BOOT_ONLY = Rule("boot-only", "called only while the kernel boots (an __init function)",
                 "reserve_region_with_split is __init: it is gone once boot has finished",
                 _after_boot)
ROOT_ONLY = Rule("root-only", "called on &iomem_resource or &ioport_resource",
                 "its only callers reserve firmware ranges at the top", _not_a_root)
BUSY_OVER_BUSY_GROWN = Rule(
    "busy-meets-no-busy", "a busy struct a caller inserts, once grown to fit what it "
    "overlaps, neither takes in nor lands inside a busy region",
    "insert_resource_expand_to_fit's callers (e820's late reservations) run at boot over "
    "ranges nobody claimed", _busy_over_busy_grown)
RANGE = Rule("range-ordered", "start <= end", "callers pass a firmware range",
             _range_inverted)

# The calls whose results are regions: released through __release_region only.
REGION_CALLS = frozenset({"__request_region", "request_free_mem_region"})

CONTRACT: dict[str, tuple[Rule, ...]] = {
    "__request_region": (PARENT, REGION_SIZE, REGION_FLAGS),
    "__release_region": (PARENT, REGION_SIZE, HOLDS),
    "request_resource": (PARENT, NEW_RANGE, NEW_TYPE),
    "insert_resource": (PARENT, NEW_RANGE, NEW_TYPE, BUSY_OVER_BUSY),
    "insert_resource_expand_to_fit": (PARENT, NEW_RANGE, NEW_TYPE, BUSY_OVER_BUSY_GROWN),
    "devm_request_resource": (PARENT, NEW_RANGE, NEW_TYPE),
    "allocate_resource": (PARENT, NEW_TYPE),
    "release_resource": (STRUCT, OWN, NO_FOREIGN),
    "remove_resource": (STRUCT, OWN),
    "release_child_resources": (STRUCT, OWN, NO_FOREIGN),
    "adjust_resource": (STRUCT, OWN, SIZE),
    "reallocate_resource": (STRUCT, OWN, SIZE, ALIGN, WINDOW),
    "merge_system_ram_resource": (STRUCT, OWN, MERGE),
    "release_mem_region_adjustable": (SIZE, SYSRAM),
    "request_free_mem_region": (PARENT, SIZE),
    "alloc_free_mem_region": (PARENT, SIZE, ALIGN),
    "reserve_region_with_split": (BOOT_ONLY, ROOT_ONLY, RANGE),
}


def broken_rule(kernel: Kernel, book: Any, call: str, caller: str,
                args: dict[str, Any]) -> Rule | None:
    """The first rule of ``call``'s contract that this call breaks, or None."""
    for rule in CONTRACT.get(call, ()):
        if rule.broken(kernel, book, caller, args):
            return rule
    return None
