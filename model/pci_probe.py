"""drivers/pci/probe.c: enumeration — host bridge registration, reading and sizing the
BARs, `pci_device_add()` (the device joins its bus, sysfs and the klist), scanning a
bus or a slot, and the two callers that scan, assign and bus-add in one go:
`pci_host_probe()` (no lock) and `pci_rescan_bus()` (caller holds the rescan lock).

Functions take the :class:`~iomemfuzz.model.pci_core.PciCore` first (see pci_core's
docstring for the layout), in probe.c's order.
"""

from __future__ import annotations

from iomemfuzz.model import errno
from iomemfuzz.model.event import WARN
from iomemfuzz.model.ioport import (
    IORESOURCE_MEM,
    IORESOURCE_SIZEALIGN,
    IORESOURCE_UNSET,
    IORESOURCE_WINDOW,
    U64_MAX,
    Resource,
)
from iomemfuzz.model.pci_bus import pci_bus_add_devices
from iomemfuzz.model.pci_core import PCI_ROM_RESOURCE, PciBus, PciCore, PciDev
from iomemfuzz.model.pci_setup_res import FOUR_GIB, pci_assign_unassigned_bus_resources
from iomemfuzz.model.pci_spec import PCI_STD_NUM_BARS, parse_bdf
from iomemfuzz.model.pci_x86 import pci_fixup_video
from iomemfuzz.model.resource_check import descendants
from iomemfuzz.model.sched import Path, Point

# The memory window a DT host bridge without a listed window gets (see _host_windows).
ASYNC_WINDOW_SIZE = 256 << 20


def pci_read_bases(pci: PciCore, dev: PciDev) -> None:
    """Models `pci_read_bases()`, drivers/pci/probe.c, v6.1 (`__pci_read_base()` per
    BAR): a BAR with a firmware address keeps it; one without is UNSET
    [0, size - 1]."""
    for i in range(PCI_STD_NUM_BARS):
        bar = dev.spec.bar(i)
        res = dev.resource[i]
        if bar is None:
            continue
        res.flags = bar.flags
        if bar.addr is not None:
            res.start, res.end = bar.addr, bar.addr + bar.size - 1
        else:
            res.flags |= IORESOURCE_UNSET
            res.start, res.end = 0, bar.size - 1
    if dev.spec.rom:
        rom = dev.resource[PCI_ROM_RESOURCE]
        rom.flags = IORESOURCE_MEM | IORESOURCE_SIZEALIGN | IORESOURCE_UNSET
        rom.start, rom.end = 0, dev.spec.rom - 1


def pci_register_host_bridge(pci: PciCore, bus: PciBus) -> None:
    """Models `pci_register_host_bridge()`, drivers/pci/probe.c, v6.1: the host
    bridge device and the root bus's class device appear in sysfs; legacy files are
    made here once sysfs is initialised."""
    if bus.registered:
        return
    bus.registered = True
    bus.sd = pci.sysfs.mkdir_p(f"/devices/pci{bus.domain:04x}:{bus.number:02x}")
    bus.class_sd = pci.sysfs.mkdir_p(f"{bus.sd.path()}/pci_bus/{bus.name}")
    pci.files.pci_create_legacy_files(bus, "pci_register_host_bridge")


def pci_device_add(pci: PciCore, dev: PciDev) -> None:
    """Models `pci_device_add()`, drivers/pci/probe.c + drivers/base/core.c, v6.1 →
    `device_add()`.

    HEADER fixups run first (since 66d28b21fe6b pci_fixup_video is one; on
    5.13–5.16 it was a FINAL fixup, ``profile.rom_visibility_at_device_add``). Then
    the device joins its bus list, gets its sysfs directory and its *static*
    attributes (whose visibility is decided now, B23), and joins the bus klist."""
    if not pci.profile.rom_visibility_at_device_add:
        pci_fixup_video(pci, dev)
    dev.bus.devices.append(dev)
    sd = pci.sysfs.create_dir(dev.bus.sd or pci.sysfs.mkdir_p("/devices"), dev.name)
    if isinstance(sd, int):
        pci.log.emit(WARN, f"WARNING: pci_device_add: device_add failed ({sd})",
                     dev=dev.name)
        return
    dev.sd = sd
    dev.registered = True
    pci.files.device_add_attrs(dev)
    pci.klist.append(dev)
    dev.on_klist = True


def pci_scan_child_bus(pci: PciCore, bus: PciBus, slot: int | None = None) -> Path:
    """Models `pci_scan_child_bus()`, drivers/pci/probe.c, v6.1 → `pci_scan_slot()` →
    `pci_scan_single_device()`: every function present in a slot (only slot ``slot``
    if given, as pciehp scans) and not yet known is read (BARs sized, firmware
    addresses kept) and `pci_device_add()`ed. Yields after each device_add: from then
    on the device is on the klist pci_sysfs_init walks."""
    for name in sorted(pci.slots, key=lambda n: parse_bdf(n)):
        spec = pci.slots[name].spec
        if spec is None or spec.bus_key != bus.key:
            continue
        if slot is not None and spec.address[2] >> 3 != slot:
            continue
        if any(d.name == spec.name for d in bus.devices):
            continue  # pci_get_slot found it: already enumerated
        dev = PciDev(spec, bus)
        pci_read_bases(pci, dev)
        pci_device_add(pci, dev)
        yield Point("pci_scan_child_bus: after pci_device_add", dev.name)


def _host_windows(pci: PciCore, bus: PciBus) -> None:
    """Models `pci_parse_request_of_pci_ranges()`, drivers/pci/of.c, v6.1: a DT host
    bridge requests the memory window its "ranges" describe
    (`devm_request_resource(&iomem_resource, ...)`). A machine that lists no "PCI Bus
    DDDD:BB" window for the bus gets the lowest free, naturally aligned 256 MiB above
    4 GiB; its I/O space is not modelled (I/O BARs there stay unassigned)."""
    name = f"PCI Bus {bus.name}"
    if any(n.name == name for n in descendants(pci.resources.iomem_resource)):
        return
    win = Resource(0, 0, name, IORESOURCE_MEM | IORESOURCE_WINDOW, 0)
    pci.resources.allocate_resource(pci.resources.iomem_resource, win,
                                    ASYNC_WINDOW_SIZE, FOUR_GIB, U64_MAX,
                                    ASYNC_WINDOW_SIZE)


def pci_host_probe(pci: PciCore, bus: PciBus) -> Path:
    """Models `pci_host_probe()`, drivers/pci/probe.c, v6.1, run from a host bridge
    driver's probe (DT controllers; vmd and hv_pci behave alike): scan, assign every
    BAR, `pci_bus_add_devices()` — **without** the rescan lock. -EBUSY if the host
    was already probed."""
    if bus.key in pci.state.probed_hosts:
        return -errno.EBUSY
    pci.state.probed_hosts.add(bus.key)
    _host_windows(pci, bus)
    pci_register_host_bridge(pci, bus)
    yield from pci_scan_child_bus(pci, bus)
    pci_assign_unassigned_bus_resources(pci, bus)
    yield Point("pci_host_probe: before pci_bus_add_devices", bus.name)
    yield from pci_bus_add_devices(pci, bus)
    return 0


def pci_rescan_bus(pci: PciCore, bus: PciBus) -> Path:
    """Models `pci_rescan_bus()`, drivers/pci/probe.c, v6.1: scan for new functions,
    assign their BARs, bus-add them (caller holds the rescan lock)."""
    pci_register_host_bridge(pci, bus)
    yield from pci_scan_child_bus(pci, bus)
    pci_assign_unassigned_bus_resources(pci, bus)
    yield from pci_bus_add_devices(pci, bus)
    return 0
