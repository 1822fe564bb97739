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
    IORESOURCE_PREFETCH,
    IORESOURCE_READONLY,
    IORESOURCE_ROM_ENABLE,
    IORESOURCE_SIZEALIGN,
    IORESOURCE_WINDOW,
    U64_MAX,
    Resource,
)
from iomemfuzz.model.pci_bus import pci_bus_add_devices
from iomemfuzz.model.pci_core import PCI_ROM_RESOURCE, PciBus, PciCore, PciDev
from iomemfuzz.model.pci_setup_res import FOUR_GIB, pci_assign_unassigned_bus_resources
from iomemfuzz.model.pci_spec import HOST_ASYNC, PCI_STD_NUM_BARS, parse_bdf
from iomemfuzz.model.pci_x86 import pci_fixup_video
from iomemfuzz.model.resource_check import descendants
from iomemfuzz.model.sched import Path, Point, mutex_lock, mutex_unlock

# The memory window a DT host bridge without a listed window gets (see _host_windows).
ASYNC_WINDOW_SIZE = 256 << 20
# The flags pci_read_bases() gives an expansion ROM resource before sizing it.
ROM_FLAGS = IORESOURCE_MEM | IORESOURCE_PREFETCH | IORESOURCE_READONLY | IORESOURCE_SIZEALIGN


def pci_read_bases(pci: PciCore, dev: PciDev) -> None:
    """Models `pci_read_bases()` → `__pci_read_base()`, drivers/pci/probe.c, v6.1: size
    each BAR and read the address the function's register holds now. On x86 bus and CPU
    addresses are the same, so every value is taken as an address, 0 included: a BAR
    never programmed reads as [0, size - 1] without UNSET (boot claiming skips address
    0; assignment places it). The expansion ROM becomes a prefetchable, read-only,
    size-aligned memory resource at the ROM BAR's address, enabled if its enable bit is
    set. A removed and rescanned function therefore comes back where it last decoded
    (until assignment moves it), not where firmware first put it."""
    hw = dev.hw
    for i in range(PCI_STD_NUM_BARS):
        bar = dev.spec.bar(i)
        size = hw.sizes[i]
        if bar is None or not size:
            continue
        res = dev.resource[i]
        res.flags = bar.flags
        res.start, res.end = hw.bars[i], hw.bars[i] + size - 1
    if hw.sizes[PCI_ROM_RESOURCE]:
        rom = dev.resource[PCI_ROM_RESOURCE]
        rom.flags = ROM_FLAGS | (IORESOURCE_ROM_ENABLE if hw.rom_enabled else 0)
        start = hw.bars[PCI_ROM_RESOURCE]
        rom.start, rom.end = start, start + hw.sizes[PCI_ROM_RESOURCE] - 1


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
        dev = PciDev(spec, bus, pci.slots[name].hw)
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
    """Models `pci_host_probe()`, drivers/pci/probe.c, v6.1 / v6.12, run from a host
    bridge driver's probe (DT controllers; hv_pci alike), and `vmd_enable_domain()`,
    drivers/pci/controller/vmd.c, for a VMD domain: scan, assign every BAR,
    `pci_bus_add_devices()`. On 6.1 none of them takes the rescan lock; since v6.12
    (``profile.host_probe_takes_rescan_lock``) `pci_host_probe()` holds it around the
    scan and again around bus-add, so a sysfs remove or rescan waits for it. VMD never
    takes it. -EBUSY if the host was already probed."""
    if bus.key in pci.state.probed_hosts:
        return -errno.EBUSY
    pci.state.probed_hosts.add(bus.key)
    locked = bus.host == HOST_ASYNC and pci.profile.host_probe_takes_rescan_lock
    _host_windows(pci, bus)
    pci_register_host_bridge(pci, bus)
    if locked:
        yield from mutex_lock(pci.sched, pci.rescan_remove_lock, "pci_host_probe")
    yield from pci_scan_child_bus(pci, bus)
    if locked:
        mutex_unlock(pci.sched, pci.rescan_remove_lock)
    pci_assign_unassigned_bus_resources(pci, bus)
    yield Point("pci_host_probe: before pci_bus_add_devices", bus.name)
    if locked:
        yield from mutex_lock(pci.sched, pci.rescan_remove_lock, "pci_host_probe")
    yield from pci_bus_add_devices(pci, bus)
    if locked:
        mutex_unlock(pci.sched, pci.rescan_remove_lock)
    return 0


def pci_rescan_bus(pci: PciCore, bus: PciBus) -> Path:
    """Models `pci_rescan_bus()`, drivers/pci/probe.c, v6.1: scan for new functions,
    assign their BARs, bus-add them (caller holds the rescan lock)."""
    pci_register_host_bridge(pci, bus)
    yield from pci_scan_child_bus(pci, bus)
    pci_assign_unassigned_bus_resources(pci, bus)
    yield from pci_bus_add_devices(pci, bus)
    return 0
