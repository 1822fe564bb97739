"""The PCI subsystem as the rest of the model sees it: :class:`Pci`, and the PCI types
callers use (re-exported from the modules that define them).

A Pci is the :class:`~iomemfuzz.model.pci_core.PciCore` (buses, klist, slots, drivers,
locks) with pci-sysfs.c and proc.c plugged in, and the entry points the boot sequence,
the operations and the tests call: initcalls, the ``remove``/``rescan``/``bind``/
``unbind`` files, slot events, host bridge probes, narration. Each entry point is one
call into the module that models the kernel file doing the work; pci_core.py explains
the layout and why it is module functions taking the core.

This module is the top of the PCI model's import graph: it imports the per-file modules
and nothing imports it back, which is what lets pci-sysfs.c and proc.c depend on the
core without a cycle (tools/import_cycles.py checks that).
"""

from __future__ import annotations

from iomemfuzz.model import acpi_pci_root, pci_driver, pci_probe, pci_x86, pciehp_pci
from iomemfuzz.model.event import Log
from iomemfuzz.model.pci_core import (
    PCI_NUM_RESOURCES,
    PCI_ROM_RESOURCE,
    PciBus,
    PciCore,
    PciDev,
    PciDriver,
    RegionBroker,
    TreeBroker,
)
from iomemfuzz.model.pci_proc import PciProc
from iomemfuzz.model.pci_setup_res import REBAR_MAX_CODE
from iomemfuzz.model.pci_spec import (
    HOST_ACPI,
    HOST_ASYNC,
    PCI_STD_NUM_BARS,
    BarSpec,
    PciDeviceSpec,
    bar_specs,
    parse_bdf,
    pci_name,
)
from iomemfuzz.model.pci_sysfs import PciSysfs
from iomemfuzz.model.profile import KernelProfile
from iomemfuzz.model.resource_tree import ResourceTree
from iomemfuzz.model.sched import Path, Scheduler
from iomemfuzz.model.sysfs import Sysfs

__all__ = [
    "HOST_ACPI", "HOST_ASYNC", "PCI_NUM_RESOURCES", "PCI_ROM_RESOURCE", "PCI_STD_NUM_BARS",
    "REBAR_MAX_CODE", "BarSpec", "Pci", "PciBus", "PciDev", "PciDeviceSpec", "PciDriver",
    "RegionBroker", "TreeBroker", "bar_specs", "parse_bdf", "pci_name",
]


class Pci(PciCore):
    """drivers/pci as one object: the core's state, ``files`` (pci-sysfs.c) and
    ``proc`` (proc.c), and the subsystem's entry points."""

    files: PciSysfs
    proc: PciProc

    def __init__(self, profile: KernelProfile, log: Log, resources: ResourceTree,
                 sysfs: Sysfs, sched: Scheduler, specs: tuple[PciDeviceSpec, ...] = (),
                 broker: RegionBroker | None = None) -> None:
        super().__init__(profile, log, resources, sysfs, sched, specs, broker)
        self.files = PciSysfs(profile, log, sysfs, sched, self)
        self.proc = PciProc(profile, log, sched, self)

    # --- initcalls and host bridges (model/boot.py calls these) ---------------------------

    def pci_driver_init(self) -> int:
        """Models `pci_driver_init()`, drivers/pci/pci-driver.c, v6.1 (postcore
        initcall): see pci_driver.py."""
        return pci_driver.pci_driver_init(self)

    def acpi_scan_roots(self) -> Path:
        """Models `acpi_init()`, drivers/acpi/bus.c, v6.1, its PCI part (subsys
        initcall): see acpi_pci_root.py."""
        return acpi_pci_root.acpi_scan_roots(self)

    def pcibios_resource_survey(self) -> int:
        """Models `pcibios_resource_survey()`, arch/x86/pci/i386.c, v6.1 (from
        `pci_subsys_init()`): see pci_x86.py."""
        return pci_x86.pcibios_resource_survey(self)

    def pcibios_assign_resources(self) -> int:
        """Models `pcibios_assign_resources()` (fs_initcall), arch/x86/pci/i386.c, v6.1:
        see pci_x86.py."""
        return pci_x86.pcibios_assign_resources(self)

    def register_builtin_drivers(self) -> Path:
        """Models the built-in PCI drivers' `module_init()` (device_initcall), v6.1: see
        pci_driver.py."""
        return pci_driver.register_builtin_drivers(self)

    def pci_host_probe(self, bus: PciBus) -> Path:
        """Models `pci_host_probe()`, drivers/pci/probe.c, v6.1, from a host bridge
        driver's probe: see pci_probe.py."""
        return pci_probe.pci_host_probe(self, bus)

    # --- user space and hardware events (the operations call these) ----------------------

    def remove(self, dev: PciDev) -> Path:
        """Models `remove_store()`, drivers/pci/pci-sysfs.c, v6.1: writing 1 to
        /sys/bus/pci/devices/<dev>/remove. -ENODEV if already gone."""
        return self.files.remove_store(dev)

    def rescan(self) -> Path:
        """Models `rescan_store()`, drivers/pci/pci-sysfs.c, v6.1: writing 1 to
        /sys/bus/pci/rescan."""
        return self.files.rescan_store()

    def bind(self, dev: PciDev, drv: PciDriver) -> Path:
        """Models `bind_store()`, drivers/base/bus.c, v6.1: writing the device to
        /sys/bus/pci/drivers/<drv>/bind. -EBUSY if bound, -ENODEV if gone."""
        return pci_driver.bind_store(self, dev, drv)

    def unbind(self, dev: PciDev) -> Path:
        """Models `unbind_store()`, drivers/base/bus.c, v6.1: writing to
        /sys/bus/pci/drivers/<drv>/unbind. -ENODEV if no driver is bound."""
        return pci_driver.unbind_store(self, dev)

    def hot_add(self, spec: PciDeviceSpec) -> Path:
        """Models `pciehp_configure_device()`, drivers/pci/hotplug/pciehp_pci.c, v6.1:
        a card inserted into its slot. -EBUSY if the slot is occupied."""
        return pciehp_pci.pciehp_configure_device(self, spec)

    def hot_remove(self, name: str) -> Path:
        """Models `pciehp_unconfigure_device()`, drivers/pci/hotplug/pciehp_pci.c, v6.1:
        the card in slot ``name`` pulled. -ENODEV if the slot is empty."""
        return pciehp_pci.pciehp_unconfigure_device(self, name)

    # --- narration -----------------------------------------------------------------------

    def describe(self) -> str:
        """One line per registered device: state, driver, BARs, dynamic files."""
        lines = []
        for dev in self.devices():
            bars = " ".join(f"BAR{i}={dev.resource[i]!r}" for i in range(PCI_STD_NUM_BARS)
                            if dev.bar_len(i))
            state = "added" if dev.added else "registered"
            drv = dev.driver.name if dev.driver else "-"
            files = ",".join(self.sysfs.files(dev.sd))
            lines.append(f"{dev.name} {state} driver={drv} {bars} files=[{files}]")
        return "\n".join(lines)
