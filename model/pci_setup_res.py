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
    IORESOURCE_PCI_FIXED,
    IORESOURCE_PREFETCH,
    IORESOURCE_ROM_ENABLE,
    IORESOURCE_ROM_SHADOW,
    IORESOURCE_UNSET,
    U64_MAX,
    Resource,
)
from iomemfuzz.model.pci_core import (
    PCI_NUM_RESOURCES,
    PCI_ROM_RESOURCE,
    PciBus,
    PciCore,
    PciDev,
)
from iomemfuzz.model.pci_hw import PCI_COMMAND_IO, PCI_COMMAND_MEMORY
from iomemfuzz.model.pci_spec import HOST_ACPI, PCI_STD_NUM_BARS
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

# Class codes (class >> 8) setup-bus.c treats specially (include/linux/pci_ids.h).
PCI_CLASS_NOT_DEFINED = 0x0000
PCI_CLASS_BRIDGE_HOST = 0x0600
PCI_CLASS_SYSTEM_PIC = 0x0800


def bus_windows(pci: PciCore, bus: PciBus, io: bool) -> list[Resource]:
    """Models `pci_bus_for_each_resource()` on a root bus, include/linux/pci.h, v6.1: the
    bus's windows of one type ("PCI Bus DDDD:BB" nodes, in address order); without
    any, the whole root (as x86 does without _CRS)."""
    root = pci.resources.ioport_resource if io else pci.resources.iomem_resource
    name = f"PCI Bus {bus.name}"
    found = [n for n in descendants(root) if n.name == name]
    if not found and bus.host != HOST_ACPI:
        return []  # a DT or VMD host decodes only its own ranges
    return sorted(found, key=lambda r: r.start) or [root]


# --- drivers/pci/setup-res.c ------------------------------------------------------------

def pci_update_resource(pci: PciCore, dev: PciDev, i: int) -> None:
    """Models `pci_update_resource()` → `pci_std_update_resource()`,
    drivers/pci/setup-res.c, v6.1: program the function's BAR register with the
    resource's address. Nothing for an empty, unassigned or fixed resource; a ROM BAR
    only while the ROM is enabled, so an assigned but disabled ROM keeps whatever the
    register held. A 64-bit BAR is written with memory decoding briefly off and the old
    command restored: no lasting change."""
    res = dev.resource[i]
    if not res.flags or res.flags & (IORESOURCE_UNSET | IORESOURCE_PCI_FIXED):
        return
    if i == PCI_ROM_RESOURCE:
        if not res.flags & IORESOURCE_ROM_ENABLE:
            return
        dev.hw.rom_enabled = True
    dev.hw.bars[i] = res.start


def pci_claim_resource(pci: PciCore, dev: PciDev, i: int,
                       windows: list[Resource] | None = None) -> int:
    """Models `pci_claim_resource()`, drivers/pci/setup-res.c, v6.1: link a
    firmware-assigned BAR into the window containing it as a **non-busy** node (on
    failure the resource is marked UNSET). A ROM shadowed in RAM is "claimed" without
    entering the tree. ``windows``: the bus's windows of the BAR's type when the caller
    has them."""
    res = dev.resource[i]
    if res.flags & IORESOURCE_UNSET:
        return -errno.EINVAL
    if res.flags & IORESOURCE_ROM_SHADOW:
        return 0
    io = bool(res.flags & IORESOURCE_IO)
    if windows is None:
        windows = bus_windows(pci, dev.bus, io)
    parent = next((w for w in windows
                   if w.start <= res.start and res.end <= w.end), None)
    if parent is None:
        pci.log.emit(INFO, f"pci {dev.name}: can't claim BAR {i} {res!r}: no "
                     "compatible bridge window", dev=dev.name, bar=i)
        res.flags |= IORESOURCE_UNSET
        return -errno.EINVAL
    conflict = pci.resources.request_resource_conflict(parent, res)
    if conflict is not None:
        pci.log.emit(INFO, f"pci {dev.name}: can't claim BAR {i} {res!r}: address "
                     f"conflict with {conflict.name} {conflict!r}", dev=dev.name, bar=i)
        res.flags |= IORESOURCE_UNSET
        return -errno.EBUSY
    return 0


def pci_revert_fw_address(pci: PciCore, dev: PciDev, i: int, size: int) -> int:
    """Models `pci_revert_fw_address()`, drivers/pci/setup-res.c, v6.1: a BAR that found
    no space goes back to the address firmware gave it, if x86 saved one (a failed
    boot-time claim, `pcibios_save_fw_addr()`; the list is dropped at the end of
    fs_initcall) and nothing now sits there."""
    fw_addr = dev.fw_addr.get(i)
    if not fw_addr:
        return -errno.ENOMEM
    res = dev.resource[i]
    start, end = res.start, res.end
    res.start, res.end = fw_addr, fw_addr + size - 1
    res.flags &= ~IORESOURCE_UNSET
    io = bool(res.flags & IORESOURCE_IO)
    root = next((w for w in bus_windows(pci, dev.bus, io)
                 if w.start <= res.start and res.end <= w.end),
                pci.resources.ioport_resource if io else pci.resources.iomem_resource)
    pci.log.emit(INFO, f"pci {dev.name}: BAR {i}: trying firmware assignment {res!r}",
                 dev=dev.name, bar=i)
    conflict = pci.resources.request_resource_conflict(root, res)
    if conflict is not None:
        res.start, res.end = start, end
        res.flags |= IORESOURCE_UNSET
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
    the lowest free, size-aligned fit in the bus windows, as a non-busy node, then
    `pci_update_resource()` programs the BAR. A 64-bit BAR tries above 4 GiB first; a
    32-bit one stays below; a non-prefetchable BAR never goes into a prefetchable
    window. No space: the firmware address, while x86 still has it; otherwise the
    resource stays UNSET and the caller resets it."""
    res = dev.resource[i]
    if res.flags & IORESOURCE_PCI_FIXED:
        return 0
    res.flags |= IORESOURCE_UNSET
    size = (res.end - res.start + 1) & U64_MAX
    io = bool(res.flags & IORESOURCE_IO)
    if io or dev.bus.host != HOST_ACPI:
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
                return _assigned(pci, dev, i)
    pci.log.emit(INFO, f"pci {dev.name}: BAR {i} [size {size:#x}]: can't assign; no "
                 "space", dev=dev.name, bar=i)
    if pci_revert_fw_address(pci, dev, i, size) == 0:
        return _assigned(pci, dev, i)
    pci.log.emit(INFO, f"pci {dev.name}: BAR {i}: failed to assign [size {size:#x}]",
                 dev=dev.name, bar=i)
    return -errno.ENOMEM


def _assigned(pci: PciCore, dev: PciDev, i: int) -> int:
    res = dev.resource[i]
    res.flags &= ~IORESOURCE_UNSET
    pci.log.emit(INFO, f"pci {dev.name}: BAR {i} {res!r}: assigned", dev=dev.name, bar=i)
    pci_update_resource(pci, dev, i)
    return 0


def pci_enable_resources(pci: PciCore, dev: PciDev, mask: int) -> int:
    """Models `pci_enable_resources()`, drivers/pci/setup-res.c, v6.1 (what
    `pci_enable_device()` runs on x86): for every resource in ``mask`` (bit i: resource
    i) with I/O or memory flags — the ROM only while it is enabled — the resource must
    be assigned and claimed (-EINVAL otherwise); then the command register gets the
    I/O and memory decode bits those resources need, written only if that changes it.
    A resource reset by a failed assignment has no flags and is skipped."""
    cmd = old = dev.hw.command
    for i in range(PCI_NUM_RESOURCES):
        res = dev.resource[i]
        if not mask & (1 << i) or not res.flags & (IORESOURCE_IO | IORESOURCE_MEM):
            continue
        if i == PCI_ROM_RESOURCE and not res.flags & IORESOURCE_ROM_ENABLE:
            continue
        if res.flags & IORESOURCE_UNSET or res.parent is None:
            why = "not assigned" if res.flags & IORESOURCE_UNSET else "not claimed"
            pci.log.emit(INFO, f"pci {dev.name}: BAR {i} {res!r}: {why}; can't enable "
                         "device", dev=dev.name, bar=i)
            return -errno.EINVAL
        cmd |= PCI_COMMAND_IO if res.flags & IORESOURCE_IO else PCI_COMMAND_MEMORY
    if cmd != old:
        pci.log.emit(INFO, f"pci {dev.name}: enabling device ({old:04x} -> {cmd:04x})",
                     dev=dev.name)
        dev.hw.command = cmd
    return 0


# --- drivers/pci/setup-bus.c ------------------------------------------------------------

def reset_resource(res: Resource) -> None:
    """Models `reset_resource()`, drivers/pci/setup-bus.c, v6.1: a resource that could not
    be assigned is emptied (start = end = flags = 0): no resource file, no claim, and
    `pci_enable_device()` skips it."""
    res.start = res.end = res.flags = 0


def _sorts_resources(dev: PciDev) -> bool:
    """Models `__dev_sort_resources()`'s filter, drivers/pci/setup-bus.c, v6.1: the kernel
    never moves the resources of a classless function or a host bridge, nor those of an
    IOAPIC function firmware enabled."""
    cls = dev.spec.pci_class >> 8
    if cls in (PCI_CLASS_NOT_DEFINED, PCI_CLASS_BRIDGE_HOST):
        return False
    return not (cls == PCI_CLASS_SYSTEM_PIC
                and dev.hw.command & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY))


def pci_assign_unassigned_bus_resources(pci: PciCore, bus: PciBus) -> None:
    """Models `pci_assign_unassigned_bus_resources()`, drivers/pci/setup-bus.c, v6.1 →
    `__pci_bus_assign_resources()` → `pbus_assign_resources_sorted()`: every resource of
    the bus's devices — BARs 0-5 **and the expansion ROM** — that has flags, is not
    linked into the tree and is not fixed goes into one list, sorted by alignment
    (largest first; ties keep device and index order, `pdev_sort_resources`), and is
    assigned in that order; one that finds no space is reset (`reset_resource`). A root
    bus has no window to size, so there is no optional-size retry."""
    todo = []
    for order, dev in enumerate(bus.devices):
        if not dev.registered or not _sorts_resources(dev):
            continue
        for i in range(PCI_NUM_RESOURCES):
            res = dev.resource[i]
            if (not res.flags or res.parent is not None
                    or res.flags & IORESOURCE_PCI_FIXED):
                continue
            todo.append((-pci_resource_alignment(res), order, i, dev))
    for _align, _order, i, dev in sorted(todo, key=lambda t: t[:3]):
        res = dev.resource[i]
        if (res.end - res.start + 1) & U64_MAX and pci_assign_resource(pci, dev, i):
            reset_resource(res)


def pci_resource_alignment(res: Resource) -> int:
    """Models `pci_resource_alignment()`, drivers/pci/pci.h, v6.1, for the resources the
    model has (BARs and ROMs are size-aligned): the resource's size."""
    return (res.end - res.start + 1) & U64_MAX


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
    old_size = dev.hw.sizes[n]
    res.end = res.start + (REBAR_UNIT << code) - 1
    dev.hw.sizes[n] = REBAR_UNIT << code  # pci_rebar_set_size()
    pci_assign_unassigned_bus_resources(pci, dev.bus)
    pci.broker.tree_changed(f"resize {dev.name}")
    if all(dev.resource[i].parent is not None for i, *_ in saved):
        return 0
    # Roll back: the old size and placement, each BAR programmed with it again.
    dev.hw.sizes[n] = old_size
    for i, start, end, flags in saved:
        r = dev.resource[i]
        if r.parent is not None:
            pci.resources.release_resource(r)
        r.start, r.end, r.flags = start, end, flags
        if pci_claim_resource(pci, dev, i) == 0:
            pci_update_resource(pci, dev, i)
    return -errno.ENOSPC
