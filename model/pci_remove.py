"""drivers/pci/remove.c: taking a device away — stop it (unbind, procfs entry, dynamic
sysfs files), destroy it (device_del, off the lists, BARs out of the tree, last
reference), and the locked entry point the ``remove`` file and pciehp use.

Functions take the :class:`~iomemfuzz.model.pci_core.PciCore` first (see pci_core's
docstring for the layout), in remove.c's order.
"""

from __future__ import annotations

from iomemfuzz.model import errno
from iomemfuzz.model.driver_core import device_release_driver
from iomemfuzz.model.pci_core import PciCore, PciDev
from iomemfuzz.model.sched import Path, Point, mutex_lock, mutex_unlock


def pci_free_resources(pci: PciCore, dev: PciDev) -> None:
    """Models `pci_free_resources()`, drivers/pci/remove.c, v6.1: `release_resource()`
    of every resource with a parent — each leaves **with its subtree**, so busy
    claims still inside a BAR vanish with it."""
    for res in dev.resource:
        if res.parent is not None:
            pci.resources.release_resource(res)
    pci.broker.tree_changed(f"remove {dev.name}")


def pci_stop_dev(pci: PciCore, dev: PciDev) -> Path:
    """Models `pci_stop_dev()`, drivers/pci/remove.c, v6.1: only for an "added"
    device: unbind, procfs detach, remove the dynamic sysfs files (by name, pointers
    left stale), clear "added"."""
    if not dev.added:
        return
    yield from device_release_driver(pci, dev)
    pci.proc.pci_proc_detach_device(dev)
    yield from pci.files.pci_remove_sysfs_dev_files(dev)
    dev.added = False


def pci_destroy_dev(pci: PciCore, dev: PciDev) -> Path:
    """Models `pci_destroy_dev()`, drivers/pci/remove.c, v6.1: `device_del()` (the
    device is marked dead first, so nothing binds it from then on; its attributes go;
    `bus_remove_device()` unbinds a driver that bound it after `pci_stop_dev()` let
    go, e.g. through ``drivers_probe`` while the removal was on its way; the sysfs
    directory goes with every file left in it; off the klist), off the bus list,
    `pci_free_resources()`, `put_device()`."""
    if not dev.registered:
        return
    # kill_device() under the device lock: a probe that holds the lock (drivers_probe,
    # bind, a rescan's attach) finishes first, and nothing binds the device after.
    yield from mutex_lock(pci.sched, dev.lock, "device_del")
    dev.registered = False
    mutex_unlock(pci.sched, dev.lock)
    pci.files.device_del_attrs(dev)
    if dev.driver is not None:
        yield from device_release_driver(pci, dev)
    if dev.sd is not None:
        pci.sysfs.kernfs_remove(dev.sd)
    dev.sd = None
    if dev in pci.klist:
        pci.klist.remove(dev)
    dev.on_klist = False
    if dev in dev.bus.devices:
        dev.bus.devices.remove(dev)
    pci_free_resources(pci, dev)
    pci.pci_dev_put(dev)


def pci_stop_and_remove_bus_device(pci: PciCore, dev: PciDev) -> Path:
    """Models `pci_stop_and_remove_bus_device()`, drivers/pci/remove.c, v6.1 (the
    caller holds the rescan lock)."""
    yield from pci_stop_dev(pci, dev)
    yield Point("pci_stop_and_remove_bus_device: before pci_destroy_dev", dev.name)
    yield from pci_destroy_dev(pci, dev)
    return 0


def pci_stop_and_remove_bus_device_locked(pci: PciCore, dev: PciDev) -> Path:
    """Models `pci_stop_and_remove_bus_device_locked()`, drivers/pci/remove.c, v6.1:
    the same under the rescan lock. -ENODEV if the device is already gone."""
    # The wait is named for the one caller the model has, the ``remove`` file.
    yield from mutex_lock(pci.sched, pci.rescan_remove_lock, "remove_store")
    ret = -errno.ENODEV
    if dev.registered:
        ret = yield from pci_stop_and_remove_bus_device(pci, dev)
    mutex_unlock(pci.sched, pci.rescan_remove_lock)
    return ret
