"""drivers/pci/hotplug/pciehp_pci.c: what the PCIe hotplug driver does when a card
enters or leaves a slot — scan, assign and bus-add it, or stop and remove it, each
under the rescan lock.

Functions take the :class:`~iomemfuzz.model.pci_core.PciCore` first (see pci_core's
docstring for the layout). The slot itself (what is in it) is the core's
``slots`` table: changing it is the hardware event, these functions are the kernel's
answer to it.
"""

from __future__ import annotations

from iomemfuzz.model import errno
from iomemfuzz.model.pci_bus import pci_bus_add_devices
from iomemfuzz.model.pci_core import PciCore, PciDriver, PciSlot
from iomemfuzz.model.pci_probe import pci_scan_child_bus
from iomemfuzz.model.pci_remove import pci_stop_and_remove_bus_device
from iomemfuzz.model.pci_setup_res import pci_assign_unassigned_bus_resources
from iomemfuzz.model.pci_spec import PciDeviceSpec
from iomemfuzz.model.sched import Path, mutex_lock, mutex_unlock


def pciehp_configure_device(pci: PciCore, spec: PciDeviceSpec) -> Path:
    """Models `pciehp_configure_device()`, drivers/pci/hotplug/pciehp_pci.c, v6.1, after
    a card is inserted into its slot: scan that slot, assign BARs, bus-add (every
    not-yet-added device of the bus), all under the rescan lock.

    -EBUSY if the slot is occupied. Before pcie_portdrv_init (device_initcall) no
    hotplug service runs: the device just sits in the slot until a scan finds it."""
    slot = pci.slots.setdefault(spec.name, PciSlot())
    if slot.spec is not None:
        return -errno.EBUSY
    slot.spec = spec
    if spec.driver and pci.state.driver_core_ready:
        # Its driver module is loaded (udev's modprobe, or built in).
        pci.state.drivers.setdefault(spec.driver, PciDriver(spec.driver, spec.claims))
    bus = pci.root_bus(spec.bus_key, spec.host)
    if not pci.state.pciehp_ready or not bus.registered:
        return 0
    yield from mutex_lock(pci.sched, pci.rescan_remove_lock, "pciehp_configure_device")
    yield from pci_scan_child_bus(pci, bus, spec.address[2] >> 3)
    pci_assign_unassigned_bus_resources(pci, bus)
    yield from pci_bus_add_devices(pci, bus)
    mutex_unlock(pci.sched, pci.rescan_remove_lock)
    return 0


def pciehp_unconfigure_device(pci: PciCore, name: str) -> Path:
    """Models `pciehp_unconfigure_device()`, drivers/pci/hotplug/pciehp_pci.c, v6.1,
    after the card left its slot: stop and remove under the rescan lock. -ENODEV if
    the slot is empty."""
    slot = pci.slots.get(name)
    if slot is None or slot.spec is None:
        return -errno.ENODEV
    spec = slot.spec
    slot.spec = None
    if not pci.state.pciehp_ready:
        return 0  # no hotplug service yet: the kernel does not notice
    yield from mutex_lock(pci.sched, pci.rescan_remove_lock, "pciehp_unconfigure_device")
    dev = pci.find(spec.name)
    if dev is not None and dev.registered:
        yield from pci_stop_and_remove_bus_device(pci, dev)
    mutex_unlock(pci.sched, pci.rescan_remove_lock)
    return 0
