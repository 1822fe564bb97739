"""drivers/acpi/pci_root.c: boot-time enumeration of the ACPI host bridges — scan each
root bus, then bus-add its devices under the rescan lock.

Functions take the :class:`~iomemfuzz.model.pci_core.PciCore` first (see pci_core's
docstring for the layout). Their BARs are claimed later, by pcibios_resource_survey
(pci_x86.py).
"""

from __future__ import annotations

from iomemfuzz.model.pci_bus import pci_bus_add_devices
from iomemfuzz.model.pci_core import PciBus, PciCore
from iomemfuzz.model.pci_probe import pci_register_host_bridge, pci_scan_child_bus
from iomemfuzz.model.pci_spec import HOST_ACPI
from iomemfuzz.model.sched import Path, mutex_lock, mutex_unlock


def acpi_pci_root_add(pci: PciCore, bus: PciBus) -> Path:
    """Models `acpi_pci_root_add()`, drivers/acpi/pci_root.c, v6.1 →
    `pci_acpi_scan_root()` at boot: scan (device_add each function), then
    `pci_bus_add_devices()` under the rescan lock."""
    pci_register_host_bridge(pci, bus)
    yield from pci_scan_child_bus(pci, bus)
    yield from mutex_lock(pci.sched, pci.rescan_remove_lock, "acpi_pci_root_add")
    yield from pci_bus_add_devices(pci, bus)
    mutex_unlock(pci.sched, pci.rescan_remove_lock)
    return 0


def acpi_scan_roots(pci: PciCore) -> Path:
    """Models the PCI part of `acpi_init()` (subsys_initcall), drivers/acpi/bus.c, v6.1:
    every ACPI root bus is added, in bus order."""
    for key in sorted(pci.buses):
        if pci.buses[key].host == HOST_ACPI:
            yield from acpi_pci_root_add(pci, pci.buses[key])
    return 0
