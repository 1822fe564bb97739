"""drivers/pci/bus.c: making enumerated devices visible — `pci_bus_add_device()` (the
dynamic sysfs files, the procfs entry, driver probe, the "added" flag) and
`pci_bus_add_devices()`.

Functions take the :class:`~iomemfuzz.model.pci_core.PciCore` first (see pci_core's
docstring for the layout). bus.c's allocator (`pci_bus_alloc_resource()`) is modelled
inside ``pci_assign_resource`` in pci_setup_res.py.
"""

from __future__ import annotations

from iomemfuzz.model.event import WARN
from iomemfuzz.model.pci_core import PciBus, PciCore, PciDev
from iomemfuzz.model.pci_driver import device_attach
from iomemfuzz.model.pci_x86 import pci_fixup_video
from iomemfuzz.model.sched import Path, Point


def pci_bus_add_device(pci: PciCore, dev: PciDev) -> Path:
    """Models `pci_bus_add_device()`, drivers/pci/bus.c, v6.1.

    FINAL fixups, then the dynamic sysfs files (only once ``sysfs_initialized``),
    the procfs entry, driver matching and probe — and the "added" flag **last**. The
    gap between device_add (klist) and this point is Pali's case 1 (B1)."""
    pci.kasan_check(dev, "pci_bus_add_device")
    if pci.profile.rom_visibility_at_device_add:
        pci_fixup_video(pci, dev)
    yield Point("pci_bus_add_device: before pci_create_sysfs_dev_files", dev.name)
    pci.kasan_check(dev, "pci_bus_add_device")
    yield from pci.files.pci_create_sysfs_dev_files(dev, "pci_bus_add_device")  # ret ignored
    yield Point("pci_bus_add_device: before pci_proc_attach_device", dev.name)
    pci.kasan_check(dev, "pci_bus_add_device")
    yield from pci.proc.pci_proc_attach_device(dev, "pci_bus_add_device")
    dev.match_driver = True
    ret = yield from device_attach(pci, dev)
    if ret < 0:
        pci.log.emit(WARN, f"pci {dev.name}: device attach failed ({ret})", dev=dev.name)
    pci.kasan_check(dev, "pci_bus_add_device")
    dev.added = True


def pci_bus_add_devices(pci: PciCore, bus: PciBus) -> Path:
    """Models `pci_bus_add_devices()`, drivers/pci/bus.c, v6.1: every device on the
    bus list not yet "added" goes through pci_bus_add_device."""
    for dev in list(bus.devices):
        if dev.added or dev not in bus.devices:
            continue
        yield from pci_bus_add_device(pci, dev)
