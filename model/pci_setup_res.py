"""Placing BARs in the resource tree: drivers/pci/setup-res.c (claim, assign, enable),
the part of setup-bus.c that assigns a bus's unassigned BARs, and rebar.c's resize.

Functions take the :class:`~iomemfuzz.model.pci_core.PciCore` first, as the kernel's
take their ``struct pci_dev``; see pci_core's docstring for the layout. Claiming and
assignment make **non-busy** nodes under the root bus windows: only a driver's
``pci_request_regions`` (pci_driver.py) makes a busy one.

``pcibios_align_resource`` is x86's (arch/x86/pci/i386.c), but it lives here: setup-res.c
declares it as a weak hook and calls it for every assignment, while i386.c's initcalls
call setup-res.c, so keeping the hook with its caller lets pci_x86.py sit above this
module instead of both importing each other.
"""

from __future__ import annotations

from iomemfuzz.model import errno
from iomemfuzz.model.event import INFO
from iomemfuzz.model.ioport import (
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_MEM_64,
    IORESOURCE_PREFETCH,
    IORESOURCE_UNSET,
    U64_MAX,
    Resource,
)
from iomemfuzz.model.pci_core import PciBus, PciCore, PciDev
from iomemfuzz.model.pci_spec import HOST_ASYNC, PCI_STD_NUM_BARS
from iomemfuzz.model.resource_check import descendants

# arch/x86/pci: PCIBIOS_MIN_IO, and the end of the BIOS area pcibios_align_resource keeps
# memory BARs above.
PCIBIOS_MIN_IO = 0x1000
BIOS_END = 0x100000
FOUR_GIB = 1 << 32

# ReBAR size codes: 0 = 1 MiB ... (include/uapi/linux/pci_regs.h); the modelled
# capability offers 1 MiB .. 256 MiB.
REBAR_MAX_CODE = 8
REBAR_UNIT = 1 << 20  # the BAR size of code 0


def bus_windows(pci: PciCore, bus: PciBus, io: bool) -> list[Resource]:
    """Models `pci_bus_for_each_resource()` on a root bus, include/linux/pci.h, v6.1: the
    bus's windows of one type ("PCI Bus DDDD:BB" nodes, in address order); without
    any, the whole root (as x86 does without _CRS)."""
    root = pci.resources.ioport_resource if io else pci.resources.iomem_resource
    name = f"PCI Bus {bus.name}"
    found = [n for n in descendants(root) if n.name == name]
    if not found and bus.host == HOST_ASYNC:
        return []  # a DT host decodes only its own ranges
    return sorted(found, key=lambda r: r.start) or [root]


# --- drivers/pci/setup-res.c ------------------------------------------------------------

def pci_claim_resource(pci: PciCore, dev: PciDev, i: int,
                       windows: list[Resource] | None = None) -> int:
    """Models `pci_claim_resource()`, drivers/pci/setup-res.c, v6.1: link a
    firmware-assigned BAR into the window containing it as a **non-busy** node.
    ``windows``: the bus's windows of the BAR's type when the caller has them."""
    res = dev.resource[i]
    io = bool(res.flags & IORESOURCE_IO)
    if windows is None:
        windows = bus_windows(pci, dev.bus, io)
    parent = next((w for w in windows
                   if w.start <= res.start and res.end <= w.end), None)
    if parent is None:
        pci.log.emit(INFO, f"pci {dev.name}: can't claim BAR {i} {res!r}: no "
                     "compatible bridge window", dev=dev.name, bar=i)
        return -errno.EINVAL
    conflict = pci.resources.request_resource_conflict(parent, res)
    if conflict is not None:
        pci.log.emit(INFO, f"pci {dev.name}: can't claim BAR {i} {res!r}: address "
                     f"conflict with {conflict.name} {conflict!r}", dev=dev.name, bar=i)
        return -errno.EBUSY
    return 0


def pcibios_align_resource(data: object, res: Resource, size: int, align: int) -> int:
    """Models `pcibios_align_resource()`, arch/x86/pci/i386.c, v6.1 (setup-res.c's weak
    hook): I/O BARs avoid the ISA alias ranges (start & 0x300), memory BARs stay above
    1 MiB."""
    start = res.start
    if res.flags & IORESOURCE_IO:
        if start & 0x300:
            start = (start + 0x3FF) & ~0x3FF
    elif res.flags & IORESOURCE_MEM and start < BIOS_END:
        start = BIOS_END
    return start


def pci_assign_resource(pci: PciCore, dev: PciDev, i: int) -> int:
    """Models `pci_assign_resource()`, drivers/pci/setup-res.c + bus.c, v6.1 →
    `pci_bus_alloc_resource()` → `pci_bus_alloc_from_region()` → `allocate_resource()`:
    the lowest free, size-aligned fit in the bus windows, as a non-busy node. A 64-bit
    BAR tries above 4 GiB first; a 32-bit one stays below; a non-prefetchable BAR never
    goes into a prefetchable window."""
    res = dev.resource[i]
    size = (res.end - res.start + 1) & U64_MAX
    io = bool(res.flags & IORESOURCE_IO)
    if io or dev.bus.host == HOST_ASYNC:
        # DT hosts translate bus addresses: the CPU window can sit above 4 GiB and
        # still serve 32-bit BARs.
        regions = [(0, U64_MAX)]
    elif res.flags & IORESOURCE_MEM_64:
        regions = [(FOUR_GIB, U64_MAX), (0, U64_MAX)]
    else:
        regions = [(0, FOUR_GIB - 1)]
    for lo, hi in regions:
        for window in bus_windows(pci, dev.bus, io):
            if window.flags & IORESOURCE_PREFETCH and not res.flags & IORESOURCE_PREFETCH:
                continue
            avail_lo, avail_hi = max(window.start, lo), min(window.end, hi)
            if avail_lo > avail_hi:
                continue
            # "min" is PCIBIOS_MIN_IO/MEM unless the window's own start overrides it.
            low = avail_lo or (PCIBIOS_MIN_IO if io else 0)
            if pci.resources.allocate_resource(window, res, size, low, avail_hi, size,
                                               pcibios_align_resource, dev) == 0:
                res.flags &= ~IORESOURCE_UNSET
                return 0
    res.flags |= IORESOURCE_UNSET
    res.start, res.end = 0, size - 1
    pci.log.emit(INFO, f"pci {dev.name}: BAR {i}: failed to assign [size {size:#x}]",
                 dev=dev.name, bar=i)
    return -errno.ENOMEM


def pci_enable_resources(pci: PciCore, dev: PciDev) -> int:
    """Models `pci_enable_resources()`, drivers/pci/setup-res.c, v6.1 (what
    `pci_enable_device()` checks): every BAR with a length must be assigned and
    claimed."""
    for i in range(PCI_STD_NUM_BARS):
        res = dev.resource[i]
        if not dev.bar_len(i) or not res.flags & (IORESOURCE_IO | IORESOURCE_MEM):
            continue
        if res.flags & IORESOURCE_UNSET or res.parent is None:
            pci.log.emit(INFO, f"pci {dev.name}: can't enable device: BAR {i} "
                         f"{res!r} not assigned", dev=dev.name, bar=i)
            return -errno.EINVAL
    return 0


# --- drivers/pci/setup-bus.c ------------------------------------------------------------

def pci_assign_unassigned_bus_resources(pci: PciCore, bus: PciBus) -> None:
    """Models `pci_assign_unassigned_bus_resources()`, drivers/pci/setup-bus.c, v6.1
    (`pci_bus_assign_resources()`): every BAR of the bus's devices not linked into the
    tree is assigned, largest alignment first (`pdev_sort_resources`)."""
    todo = []
    for order, dev in enumerate(bus.devices):
        if not dev.registered:
            continue
        for i in range(PCI_STD_NUM_BARS):
            res = dev.resource[i]
            if dev.bar_len(i) and res.parent is None and res.flags & (
                    IORESOURCE_IO | IORESOURCE_MEM):
                todo.append((-dev.bar_len(i), order, i, dev))
    for _size, _order, i, dev in sorted(todo, key=lambda t: t[:3]):
        pci_assign_resource(pci, dev, i)


# --- drivers/pci/rebar.c ----------------------------------------------------------------

def pci_resize_resource(pci: PciCore, dev: PciDev, n: int, code: int) -> int:
    """Models `pci_resize_resource()`, drivers/pci/rebar.c + setup-bus.c, 6.1-deb →
    `pci_do_resource_release_and_resize()`: release every BAR of the device in the same
    window as BAR ``n``, set the new size (1 MiB << code), reassign; on failure restore
    the old placement."""
    if n not in dev.spec.rebar or not 0 <= code <= REBAR_MAX_CODE:
        return -errno.EINVAL
    res = dev.resource[n]
    window = res.parent
    saved = []
    for i in range(PCI_STD_NUM_BARS):
        r = dev.resource[i]
        if not dev.bar_len(i):
            continue
        if (r.parent is not window) if window is not None else (r.flags != res.flags):
            continue
        saved.append((i, r.start, r.end, r.flags))
        if r.parent is not None:
            pci.resources.release_resource(r)
    res.end = res.start + (REBAR_UNIT << code) - 1
    pci_assign_unassigned_bus_resources(pci, dev.bus)
    pci.broker.tree_changed(f"resize {dev.name}")
    if all(dev.resource[i].parent is not None for i, *_ in saved):
        return 0
    for i, start, end, flags in saved:
        r = dev.resource[i]
        if r.parent is not None:
            pci.resources.release_resource(r)
        r.start, r.end, r.flags = start, end, flags
        pci_claim_resource(pci, dev, i)
    return -errno.ENOSPC
