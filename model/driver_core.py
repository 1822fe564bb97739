"""The driver core as the PCI bus uses it: drivers/base/dd.c (probe, attach, detach,
release), drivers/base/bus.c (the ``bind``, ``unbind`` and ``drivers_probe`` files) and
drivers/base/driver.c (driver registration).

Functions take the :class:`~iomemfuzz.model.pci_core.PciCore` first (see pci_core's
docstring for the layout). The driver core knows nothing of PCI: it reaches the bus's
``match``, ``probe`` and ``remove`` through ``pci.bus_type`` (``struct bus_type``), which
the facade wires to pci_driver.py, so this module sits below pci-driver.c in the import
graph as dd.c sits below it in the kernel.

The registered drivers are ``pci.state.drivers`` in registration order (the order
``device_attach()`` tries them), each driver's bound devices ``pci.state.bound[name]`` in
bind order (``driver_detach()`` releases the last first).
"""

from __future__ import annotations

from iomemfuzz.model import errno
from iomemfuzz.model.event import WARN
from iomemfuzz.model.pci_core import PciCore, PciDev, PciDriver
from iomemfuzz.model.sched import Path, mutex_lock, mutex_unlock

# The driver symlink a bound device's directory holds (driver_sysfs_add()).
DRIVER_LINK = "driver"
# Probe errors call_driver_probe() reports only at debug level ("rejects match").
_QUIET_PROBE_ERRORS = (-errno.ENODEV, -errno.ENXIO)


# --- drivers/base/dd.c ------------------------------------------------------------------

def driver_sysfs_add(pci: PciCore, dev: PciDev, drv: PciDriver) -> None:
    """Models `driver_sysfs_add()`, drivers/base/dd.c, v6.1: the device's ``driver``
    symlink (and the driver's link back), made **before** the probe runs."""
    if dev.sd is None:
        return
    if pci.sysfs.sysfs_create_file(dev.sd, DRIVER_LINK, priv=drv.name) == 0:
        dev.driver_link = dev.sd.children.get(DRIVER_LINK)


def driver_sysfs_remove(pci: PciCore, dev: PciDev) -> None:
    """Models `driver_sysfs_remove()`, drivers/base/dd.c, v6.1."""
    if dev.driver_link is not None and dev.sd is not None:
        pci.sysfs.kernfs_remove_by_name(dev.sd, DRIVER_LINK)
    dev.driver_link = None


def really_probe(pci: PciCore, dev: PciDev, drv: PciDriver) -> Path:
    """Models `really_probe()`, drivers/base/dd.c, v6.1: the ``driver`` link, then the
    bus's probe (pci_device_probe → the driver's probe). On failure the link goes again,
    devres is released (the bus's probe does its part) and the error is logged unless
    it is -ENODEV/-ENXIO; on success `driver_bound()`: the device joins the driver's
    klist. The caller holds the device lock. Returns 1 if bound, else -errno."""
    pci.kasan_check(dev, "really_probe")
    driver_sysfs_add(pci, dev, drv)
    ret = yield from pci.bus_type.probe(pci, dev, drv)
    if ret:
        driver_sysfs_remove(pci, dev)
        if ret not in _QUIET_PROBE_ERRORS:
            pci.log.emit(WARN, f"{drv.name}: probe of {dev.name} failed with error {ret}",
                         dev=dev.name, driver=drv.name, err=ret)
        return ret
    dev.driver = drv
    pci.state.bound.setdefault(drv.name, []).append(dev)
    return 1


def __driver_probe_device(pci: PciCore, dev: PciDev, drv: PciDriver) -> Path:
    """Models `__driver_probe_device()`, drivers/base/dd.c, v6.1: -ENODEV for a device
    that is gone or a driver no longer registered, -EBUSY for a bound device, else
    really_probe's result. The caller holds the device lock."""
    if not dev.registered or pci.state.drivers.get(drv.name) is not drv:
        return -errno.ENODEV
    if dev.driver is not None:
        return -errno.EBUSY
    return (yield from really_probe(pci, dev, drv))


def device_attach(pci: PciCore, dev: PciDev) -> Path:
    """Models `device_attach()` → `__device_attach()`, drivers/base/dd.c, v6.1: under the
    device lock, try every registered driver in registration order; a driver whose ids
    do not match is skipped, and so is one whose probe fails (`__device_attach_driver()`
    turns probe errors into "try the next"); the first successful probe binds. Returns
    1 if bound (or already bound), else 0."""
    yield from mutex_lock(pci.sched, dev.lock, "device_attach")
    ret = 0
    if dev.driver is not None:
        ret = 1
    elif dev.registered:
        for drv in list(pci.state.drivers.values()):
            if not pci.bus_type.match(pci, dev, drv):
                continue
            if (yield from __driver_probe_device(pci, dev, drv)) > 0:
                ret = 1
                break
    mutex_unlock(pci.sched, dev.lock)
    return ret


def driver_attach(pci: PciCore, drv: PciDriver) -> Path:
    """Models `driver_attach()` → `__driver_attach()`, drivers/base/dd.c, v6.1: every
    device on the bus klist the driver matches (so only bus-added ones) and that has no
    driver is probed under its lock; errors are ignored."""
    for dev in list(pci.klist):
        if not pci.bus_type.match(pci, dev, drv):
            continue
        yield from mutex_lock(pci.sched, dev.lock, "__driver_attach")
        if dev.driver is None and dev.registered:
            yield from __driver_probe_device(pci, dev, drv)
        mutex_unlock(pci.sched, dev.lock)
    return 0


def device_driver_attach(pci: PciCore, dev: PciDev, drv: PciDriver) -> Path:
    """Models `device_driver_attach()`, drivers/base/dd.c, v6.1: under the device lock,
    probe ``drv`` on the device. 1 if bound, else -errno (-EBUSY if bound already,
    -ENODEV if gone, or the probe's error)."""
    yield from mutex_lock(pci.sched, dev.lock, "device_driver_attach")
    ret = yield from __driver_probe_device(pci, dev, drv)
    mutex_unlock(pci.sched, dev.lock)
    return ret


def __device_release_driver(pci: PciCore, dev: PciDev) -> None:
    """Models `__device_release_driver()`, drivers/base/dd.c, v6.1: the links go, the
    bus's remove runs (the driver's remove, then devres: `__release_region()` of what
    the probe claimed, no revoke on release), and the device leaves the driver's klist.
    The caller holds the device lock."""
    drv = dev.driver
    if drv is None:
        return
    driver_sysfs_remove(pci, dev)
    pci.bus_type.remove(pci, dev)
    dev.driver = None
    bound = pci.state.bound.get(drv.name, [])
    if dev in bound:
        bound.remove(dev)


def device_release_driver(pci: PciCore, dev: PciDev) -> Path:
    """Models `device_release_driver()`, drivers/base/dd.c, v6.1 (sysfs unbind,
    removal): under the device lock."""
    yield from mutex_lock(pci.sched, dev.lock, "device_release_driver")
    __device_release_driver(pci, dev)
    mutex_unlock(pci.sched, dev.lock)
    return 0


def driver_detach(pci: PciCore, drv: PciDriver) -> Path:
    """Models `driver_detach()`, drivers/base/dd.c, v6.1: release every device bound to
    the driver, the last bound first, each under its lock."""
    bound = pci.state.bound.get(drv.name, [])
    while bound:
        dev = bound[-1]
        yield from mutex_lock(pci.sched, dev.lock, "driver_detach")
        if dev.driver is drv:
            __device_release_driver(pci, dev)
        elif dev in bound:
            bound.remove(dev)
        mutex_unlock(pci.sched, dev.lock)
    return 0


# --- drivers/base/driver.c --------------------------------------------------------------

def driver_register(pci: PciCore, drv: PciDriver) -> Path:
    """Models `driver_register()` → `bus_add_driver()`, drivers/base/driver.c and bus.c,
    v6.1: -EBUSY if a driver of that name is registered ("is already registered,
    aborting"); otherwise it joins the end of the bus's driver list and, with
    ``drivers_autoprobe``, `driver_attach()` probes every matching unbound device."""
    if drv.name in pci.state.drivers:
        pci.log.emit(WARN, f"Error: Driver '{drv.name}' is already registered, aborting",
                     driver=drv.name)
        return -errno.EBUSY
    pci.state.drivers[drv.name] = drv
    pci.state.bound[drv.name] = []
    if pci.state.drivers_autoprobe:
        yield from driver_attach(pci, drv)
    return 0


def driver_unregister(pci: PciCore, drv: PciDriver) -> Path:
    """Models `driver_unregister()` → `bus_remove_driver()`, drivers/base/driver.c and
    bus.c, v6.1: the driver leaves the bus's list first (no new device can pick it),
    then `driver_detach()` releases its devices."""
    if pci.state.drivers.get(drv.name) is drv:
        del pci.state.drivers[drv.name]
    yield from driver_detach(pci, drv)
    pci.state.bound.pop(drv.name, None)
    return 0


# --- drivers/base/bus.c -----------------------------------------------------------------

def bind_store(pci: PciCore, drv: PciDriver, dev: PciDev | None) -> Path:
    """Models `bind_store()`, drivers/base/bus.c, v6.1: writing a device name to
    /sys/bus/pci/drivers/<drv>/bind. -ENODEV if there is no such device on the bus or
    the driver does not match it (ids, dynamic ids, driver_override); then
    `device_driver_attach()`: 0 once bound, -EBUSY if bound, or the probe's error."""
    if dev is None or not dev.registered or not pci.bus_type.match(pci, dev, drv):
        return -errno.ENODEV
    ret = yield from device_driver_attach(pci, dev, drv)
    return 0 if ret > 0 else ret


def unbind_store(pci: PciCore, drv: PciDriver, dev: PciDev | None) -> Path:
    """Models `unbind_store()`, drivers/base/bus.c, v6.1: writing a device name to
    /sys/bus/pci/drivers/<drv>/unbind; -ENODEV unless the device is bound to ``drv``."""
    if dev is None or not dev.registered or dev.driver is not drv:
        return -errno.ENODEV
    yield from device_release_driver(pci, dev)
    return 0


def drivers_probe_store(pci: PciCore, dev: PciDev | None) -> Path:
    """Models `drivers_probe_store()` → `bus_rescan_devices_helper()`, drivers/base/bus.c,
    v6.1: writing a device name to /sys/bus/pci/drivers_probe attaches an unbound device
    to the first driver that takes it. -ENODEV if there is no such device; otherwise
    the write succeeds whether or not anything bound."""
    if dev is None or not dev.registered:
        return -errno.ENODEV
    if dev.driver is None:
        yield from device_attach(pci, dev)
    return 0
