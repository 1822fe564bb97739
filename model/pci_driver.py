"""Drivers meeting devices: drivers/pci/pci-driver.c (registration), the driver core's
drivers/base/dd.c (probe, attach, release) and drivers/base/bus.c (the bind and unbind
files), and drivers/pci/pci.c's ``pci_request_regions``, the claim a probe makes.

Functions take the :class:`~iomemfuzz.model.pci_core.PciCore` first (see pci_core's
docstring for the layout). A driver's claims go through the core's RegionBroker, which
is where ``__request_region`` runs (and, on the kernels that have it, revoke_iomem) and
where the Kernel keeps its ledger of who believes it holds what.
"""

from __future__ import annotations

from iomemfuzz.model import errno
from iomemfuzz.model.event import INFO, WARN
from iomemfuzz.model.ioport import IORESOURCE_IO, Resource
from iomemfuzz.model.pci_core import PciCore, PciDev, PciDriver
from iomemfuzz.model.pci_setup_res import pci_enable_resources
from iomemfuzz.model.pci_spec import PCI_STD_NUM_BARS
from iomemfuzz.model.sched import Path, Point, mutex_lock, mutex_unlock


def _holder(dev: PciDev, drv: PciDriver) -> str:
    """Who the Kernel's claim ledger says holds a driver's regions of ``dev``."""
    return f"driver {drv.name} {dev.name}"


# --- drivers/pci/pci-driver.c -----------------------------------------------------------

def pci_register_driver(pci: PciCore, drv: PciDriver) -> Path:
    """Models `pci_register_driver()`, drivers/pci/pci-driver.c, v6.1 →
    `driver_register()` → `driver_attach()` (drivers/base/bus.c, dd.c): register, then
    probe every matching device already through pci_bus_add_device (``match_driver``
    set)."""
    if not pci.state.driver_core_ready:
        return -errno.EAGAIN
    if drv.name in pci.state.drivers:
        return -errno.EBUSY
    pci.state.drivers[drv.name] = drv
    for dev in list(pci.klist):
        if dev.spec.driver != drv.name or not dev.match_driver:
            continue
        yield from mutex_lock(pci.sched, dev.lock, "__driver_attach")
        if dev.driver is None and dev.registered:
            yield from really_probe(pci, dev, drv)
        mutex_unlock(pci.sched, dev.lock)
    return 0


def pci_bus_match(pci: PciCore, dev: PciDev) -> PciDriver | None:
    """Models `pci_bus_match()`, drivers/pci/pci-driver.c, v6.1: the registered driver
    the device's id table entry names, if it is registered."""
    name = dev.spec.driver
    return pci.state.drivers.get(name) if name else None


def pci_driver_init(pci: PciCore) -> int:
    """Models `pci_driver_init()` (postcore_initcall), drivers/pci/pci-driver.c, v6.1:
    registers pci_bus_type, so drivers can register from here on."""
    pci.state.driver_core_ready = True
    return 0


def register_builtin_drivers(pci: PciCore) -> Path:
    """Models the built-in PCI drivers' `module_init()` (device_initcall), v6.1, in name
    order: every driver some machine device names."""
    # The driver list is fixed when the initcall starts (the drivers are built in);
    # a device hot-removed while an earlier driver probes must not make a later
    # driver vanish, so read each driver's behaviour up front.
    drivers = {s.spec.driver: s.spec.claims for s in pci.slots.values()
               if s.spec is not None and s.spec.driver}
    for name in sorted(drivers):
        if name in pci.state.drivers:
            continue
        yield from pci_register_driver(pci, PciDriver(name, drivers[name]))
    return 0


# --- drivers/base/dd.c ------------------------------------------------------------------

def really_probe(pci: PciCore, dev: PciDev, drv: PciDriver) -> Path:
    """Models `really_probe()`, drivers/base/dd.c, v6.1 → `pci_device_probe()` → the
    driver's probe (enable, then claim its BARs unless it is a non-claiming driver).
    The caller holds the device lock. Returns 1 if bound, else -errno."""
    pci.kasan_check(dev, "really_probe")
    ret = pci_enable_resources(pci, dev)
    if not ret and drv.claims:
        yield Point("probe: before pci_request_regions", f"{drv.name} {dev.name}")
        pci.kasan_check(dev, "pci_device_probe")
        ret = pci_request_regions(pci, dev, drv)
    if ret:
        # call_driver_probe(): the driver matched but its probe failed.
        pci.log.emit(WARN, f"{drv.name}: probe of {dev.name} failed with error {ret}",
                     dev=dev.name, driver=drv.name, err=ret)
        return ret
    dev.driver = drv
    return 1


def device_attach(pci: PciCore, dev: PciDev) -> Path:
    """Models `device_attach()`, drivers/base/dd.c, v6.1 → `__device_attach()`: under
    the device lock, bind the first registered driver matching the device.
    Returns 1 if bound, 0 if no driver matched or its probe failed."""
    yield from mutex_lock(pci.sched, dev.lock, "device_attach")
    ret = 0
    drv = pci_bus_match(pci, dev)
    if dev.driver is not None:
        ret = 1
    elif drv is not None and dev.match_driver and dev.registered:
        # really_probe() hands probe errors back as positive values, which
        # __device_attach_driver() turns into "no match": the device stays unbound
        # and device_attach() reports 0.
        ret = max(0, (yield from really_probe(pci, dev, drv)))
    mutex_unlock(pci.sched, dev.lock)
    return ret


def device_driver_attach(pci: PciCore, dev: PciDev, drv: PciDriver) -> Path:
    """Models `device_driver_attach()`, drivers/base/dd.c, v6.1: under the device lock,
    probe ``drv`` on the device. -EBUSY if bound, -ENODEV if gone, else really_probe's
    result."""
    yield from mutex_lock(pci.sched, dev.lock, "device_driver_attach")
    if not dev.registered:
        ret = -errno.ENODEV
    elif dev.driver is not None:
        ret = -errno.EBUSY
    else:
        ret = yield from really_probe(pci, dev, drv)
    mutex_unlock(pci.sched, dev.lock)
    return ret


def __device_release_driver(pci: PciCore, dev: PciDev) -> None:
    """Models `__device_release_driver()`, drivers/base/dd.c, v6.1: the driver's remove,
    then devres release: `__release_region()` of everything probe claimed (no revoke
    on release). The caller holds the device lock."""
    drv = dev.driver
    if drv is None:
        return
    holder = _holder(dev, drv)
    for root, start, n in reversed(dev.devres):
        pci.broker.release_region(root, start, n, holder)
    dev.devres.clear()
    dev.driver = None


def device_release_driver(pci: PciCore, dev: PciDev) -> Path:
    """Models `device_release_driver()`, drivers/base/dd.c, v6.1 (sysfs unbind,
    removal): under the device lock."""
    yield from mutex_lock(pci.sched, dev.lock, "device_release_driver")
    __device_release_driver(pci, dev)
    mutex_unlock(pci.sched, dev.lock)
    return 0


# --- drivers/base/bus.c -----------------------------------------------------------------

def unbind_store(pci: PciCore, dev: PciDev) -> Path:
    """Models `unbind_store()`, drivers/base/bus.c, v6.1: writing to
    /sys/bus/pci/drivers/<drv>/unbind; -ENODEV if no driver is bound."""
    if dev.driver is None:
        return -errno.ENODEV
    yield from device_release_driver(pci, dev)
    return 0


def bind_store(pci: PciCore, dev: PciDev, drv: PciDriver) -> Path:
    """Models `bind_store()`, drivers/base/bus.c, v6.1: writing the device to
    /sys/bus/pci/drivers/<drv>/bind, the driver loaded with the device's id →
    `device_driver_attach()`. 0 once bound, -EBUSY if bound, -ENODEV if gone."""
    pci.state.drivers.setdefault(drv.name, drv)
    drv = pci.state.drivers[drv.name]
    ret = yield from device_driver_attach(pci, dev, drv)
    return 0 if ret > 0 else ret


# --- drivers/pci/pci.c ------------------------------------------------------------------

def pci_request_regions(pci: PciCore, dev: PciDev, drv: PciDriver) -> int:
    """Models `pci_request_regions()`, drivers/pci/pci.c, v6.1 →
    `__pci_request_region()`: a busy region per BAR via `__request_region()` on
    iomem/ioport (which is where revoke_iomem runs); on any failure the earlier ones
    are released and the call fails with -EBUSY."""
    taken: list[tuple[Resource, int, int]] = []
    holder = _holder(dev, drv)
    for i in range(PCI_STD_NUM_BARS):
        n = dev.bar_len(i)
        res = dev.resource[i]
        if not n:
            continue
        root = (pci.resources.ioport_resource if res.flags & IORESOURCE_IO
                else pci.resources.iomem_resource)
        got = pci.broker.request_region(root, res.start, n, drv.name, 0, holder)
        if not isinstance(got, Resource):
            pci.log.emit(INFO, f"pci {dev.name}: BAR {i}: can't reserve {res!r}",
                         dev=dev.name, bar=i)
            for root2, start, size in reversed(taken):
                pci.broker.release_region(root2, start, size, holder)
            return -errno.EBUSY
        taken.append((root, res.start, n))
    dev.devres.extend(taken)
    return 0
