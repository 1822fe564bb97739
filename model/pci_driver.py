"""drivers/pci/pci-driver.c: PCI drivers meeting devices — matching by id (static id table,
dynamic ids, ``driver_override``), the bus's probe and remove (which run a driver's
probe and remove as its :class:`~iomemfuzz.model.pci_core.PciDriver` row describes them),
driver registration and the ``new_id`` / ``remove_id`` files.

Functions take the :class:`~iomemfuzz.model.pci_core.PciCore` first (see pci_core's
docstring for the layout). The driver core (driver_core.py: dd.c, bus.c) calls
:data:`pci_bus_type`'s match/probe/remove; registration calls the driver core. Drivers
match by **id**, as the kernel does: a device's spec naming a driver only says which
module udev loads for it (pci_driver_table.driver_for).
"""

from __future__ import annotations

from iomemfuzz.model import errno
from iomemfuzz.model.driver_core import driver_attach, driver_register, driver_unregister
from iomemfuzz.model.ioport import IORESOURCE_IO, IORESOURCE_MEM
from iomemfuzz.model.pci_core import (
    ENABLE_ALL,
    ENABLE_MANAGED,
    ENABLE_MEM,
    PciCore,
    PciDev,
    PciDriver,
)
from iomemfuzz.model.pci_driver_table import driver_for
from iomemfuzz.model.pci_enable import (
    pci_disable_device,
    pci_enable_device,
    pci_enable_device_mem,
    pci_release_regions,
    pci_request_selected_regions,
    pci_select_bars,
    pcim_enable_device,
)
from iomemfuzz.model.pci_spec import PCI_ANY_ID, PciDeviceSpec, PciId, pci_match_one_id
from iomemfuzz.model.sched import Path, Point

# The wildcard id pci_match_device() hands back for a driver_override match.
_PCI_DEVICE_ID_ANY = PciId()


# --- matching ---------------------------------------------------------------------------

def do_pci_match_id(ids: tuple[PciId, ...], spec: object, include_override_only: bool
                    ) -> PciId | None:
    """Models `do_pci_match_id()`, drivers/pci/pci-driver.c, v6.1: the first entry that
    matches; override-only entries count only when asked to."""
    for pid in ids:
        if (not pid.override_only or include_override_only) and pci_match_one_id(pid, spec):
            return pid
    return None


def pci_match_device(pci: PciCore, drv: PciDriver, dev: PciDev) -> PciId | None:
    """Models `pci_match_device()`, drivers/pci/pci-driver.c, v6.1: a driver_override
    naming another driver matches nothing; then the dynamic ids, then the static table
    (its override-only entries only with an override set); an override naming this
    driver matches regardless of ids."""
    if dev.driver_override is not None and dev.driver_override != drv.name:
        return None
    found = do_pci_match_id(tuple(pci.state.dynids.get(drv.name, ())), dev.spec, False)
    if found is None:
        found = do_pci_match_id(drv.id_table, dev.spec, dev.driver_override is not None)
    if found is None and dev.driver_override is not None:
        found = _PCI_DEVICE_ID_ANY
    return found


def pci_bus_match(pci: PciCore, dev: PciDev, drv: PciDriver) -> bool:
    """Models `pci_bus_match()`, drivers/pci/pci-driver.c, v6.1: nothing matches until
    `pci_bus_add_device()` set ``match_driver``; then pci_match_device."""
    return dev.match_driver and pci_match_device(pci, drv, dev) is not None


# --- the bus's probe and remove ---------------------------------------------------------

def _uses_io(drv: PciDriver, dev: PciDev) -> bool:
    return drv.io_devices is None or dev.spec.device in drv.io_devices


def pci_device_probe(pci: PciCore, dev: PciDev, drv: PciDriver) -> Path:
    """Models `pci_device_probe()` → `__pci_device_probe()` → `local_pci_probe()`,
    drivers/pci/pci-driver.c, v6.1, and the driver's probe as its row says: -ENODEV when
    the ids no longer match; enable (pci_enable_device, _mem for a memory-only model,
    pcim_enable_device, or nothing); fail with the driver's probe error; request the
    BARs it uses under its name (a failure disables again and is the probe's -EBUSY);
    for a device the driver cannot drive (``known_devices``), release them again and
    fail with -EIO. A failed probe's managed enable is undone (really_probe's devres
    release). 0 if the driver took the device."""
    pci.kasan_check(dev, "pci_device_probe")
    if pci_match_device(pci, drv, dev) is None:
        return -errno.ENODEV
    io = _uses_io(drv, dev)
    ret = 0
    if drv.enable == ENABLE_ALL:
        ret = pci_enable_device(pci, dev) if io else pci_enable_device_mem(pci, dev)
    elif drv.enable == ENABLE_MEM:
        ret = pci_enable_device_mem(pci, dev)
    elif drv.enable == ENABLE_MANAGED:
        ret = pcim_enable_device(pci, dev)
    if ret:
        return ret
    if drv.probe_error:
        ret = drv.probe_error
    elif drv.claims:
        yield Point("probe: before pci_request_regions", f"{drv.name} {dev.name}")
        pci.kasan_check(dev, "pci_device_probe")
        bars = pci_select_bars(dev, IORESOURCE_MEM | (IORESOURCE_IO if io else 0))
        ret = pci_request_selected_regions(pci, dev, bars, drv.name)
        if not ret and drv.known_devices is not None and \
                dev.spec.device not in drv.known_devices:
            # The claim already revoked user mappings; releasing it restores none.
            pci_release_regions(pci, dev, drv.name)
            ret = -errno.EIO
    if ret:
        if drv.enable in (ENABLE_ALL, ENABLE_MEM):
            pci_disable_device(pci, dev)
        _devres_release(pci, dev)
    return ret


def _devres_release(pci: PciCore, dev: PciDev) -> None:
    """The PCI part of `devres_release_all()`: a managed enable is undone."""
    if dev.managed_enable:
        dev.managed_enable = False
        pci_disable_device(pci, dev)


def pci_device_remove(pci: PciCore, dev: PciDev) -> None:
    """Models `pci_device_remove()`, drivers/pci/pci-driver.c, v6.1, with the driver's
    remove as its row says (release what probe requested, `pci_disable_device()`) and
    then devres. Memory and I/O decoding stay on: the function keeps answering at its
    BARs after unbind."""
    drv = dev.driver
    if drv is None:
        return
    if dev.devres:
        pci_release_regions(pci, dev, drv.name)
    if drv.enable in (ENABLE_ALL, ENABLE_MEM):
        pci_disable_device(pci, dev)
    _devres_release(pci, dev)


class PciBusType:
    """Models `pci_bus_type`'s match, probe and remove, drivers/pci/pci-driver.c, v6.1:
    what the driver core calls (pci_core.PciBusCalls)."""

    __slots__ = ()

    def match(self, pci: PciCore, dev: PciDev, drv: PciDriver) -> bool:
        return pci_bus_match(pci, dev, drv)

    def probe(self, pci: PciCore, dev: PciDev, drv: PciDriver) -> Path:
        return pci_device_probe(pci, dev, drv)

    def remove(self, pci: PciCore, dev: PciDev) -> None:
        pci_device_remove(pci, dev)


pci_bus_type = PciBusType()


# --- registration -------------------------------------------------------------------------

def pci_register_driver(pci: PciCore, drv: PciDriver) -> Path:
    """Models `pci_register_driver()` → `__pci_register_driver()`,
    drivers/pci/pci-driver.c, v6.1: an empty dynamic id list, then `driver_register()`
    (which probes every matching bus-added device). -EAGAIN before pci_driver_init."""
    if not pci.state.driver_core_ready:
        return -errno.EAGAIN
    if drv.name not in pci.state.drivers:
        pci.state.dynids[drv.name] = []
    return (yield from driver_register(pci, drv))


def pci_unregister_driver(pci: PciCore, drv: PciDriver) -> Path:
    """Models `pci_unregister_driver()`, drivers/pci/pci-driver.c, v6.1:
    `driver_unregister()` (every bound device released, the last bound first), then
    `pci_free_dynids()`."""
    yield from driver_unregister(pci, drv)
    pci.state.dynids.pop(drv.name, None)
    return 0


def pci_driver_init(pci: PciCore) -> int:
    """Models `pci_driver_init()` (postcore_initcall), drivers/pci/pci-driver.c, v6.1:
    registers pci_bus_type, so drivers can register from here on."""
    pci.state.driver_core_ready = True
    return 0


def machine_drivers(pci: PciCore) -> dict[str, PciDriver]:
    """Every driver some function in a slot names, as udev's modalias lookup would load
    it for those functions (pci_driver_table.driver_for), by name."""
    named: dict[str, list[PciDeviceSpec]] = {}
    for slot in pci.slots.values():
        if slot.spec is not None and slot.spec.driver:
            named.setdefault(slot.spec.driver, []).append(slot.spec)
    return {name: driver_for(name, tuple(specs)) for name, specs in named.items()}


def register_builtin_drivers(pci: PciCore) -> Path:
    """Models the built-in PCI drivers' `module_init()` (device_initcall), v6.1, in name
    order (a stand-in for link order): every driver some machine function names."""
    # The driver list is fixed when the initcall starts (the drivers are built in);
    # a device hot-removed while an earlier driver probes must not make a later
    # driver vanish, so read each driver up front.
    drivers = machine_drivers(pci)
    for name in sorted(drivers):
        if name in pci.state.drivers:
            continue
        yield from pci_register_driver(pci, drivers[name])
    return 0


# --- the new_id and remove_id files -------------------------------------------------------

def _hex_fields(text: str, limit: int) -> list[int] | None:
    """sscanf("%x %x ...")'s view of ``text``: the leading hex fields (at most
    ``limit``); None if even the first does not parse."""
    out = []
    for word in text.split()[:limit]:
        try:
            out.append(int(word, 16))
        except ValueError:
            break
    return out


def new_id_store(pci: PciCore, drv: PciDriver, text: str) -> Path:
    """Models `new_id_store()` → `do_pci_add_dynid()`, drivers/pci/pci-driver.c, 6.1-deb:
    "VENDOR DEVICE [SUBVENDOR SUBDEVICE CLASS CLASS_MASK DRIVER_DATA]" in hex. Fewer
    than two fields: -EINVAL. Without all seven, an id the static table already has is
    -EEXIST, and so is one already among the dynamic ids. Driver data must be one a
    static entry carries (the model's are all 0). The id is appended and
    `driver_attach()` probes every matching unbound device at once; probe failures
    there do not fail the write."""
    fields = _hex_fields(text, 7) or []
    if len(fields) < 2:
        return -errno.EINVAL
    full = fields + [PCI_ANY_ID, PCI_ANY_ID, 0, 0, 0][len(fields) - 2:]
    vendor, device, subvendor, subdevice, cls, mask, data = full[:7]
    pid = PciId(vendor, device, subvendor, subdevice, cls, mask)
    check_dup = len(fields) != 7
    if check_dup and do_pci_match_id(drv.id_table, _IdView(pid), False) is not None:
        return -errno.EEXIST
    if drv.id_table and data != 0:
        return -errno.EINVAL
    dynids = pci.state.dynids.setdefault(drv.name, [])
    if check_dup and any(pci_match_one_id(d, _IdView(pid)) for d in dynids):
        return -errno.EEXIST
    dynids.append(pid)
    yield from driver_attach(pci, drv)
    return 0


class _IdView:
    """A ``struct pci_device_id`` read as the device side of pci_match_one_id (what
    new_id_store compares against the tables)."""

    __slots__ = ("device", "pci_class", "sub_device", "sub_vendor", "vendor")

    def __init__(self, pid: PciId) -> None:
        self.vendor, self.device = pid.vendor, pid.device
        self.sub_vendor, self.sub_device = pid.subvendor, pid.subdevice
        self.pci_class = pid.pci_class


def remove_id_store(pci: PciCore, drv: PciDriver, text: str) -> int:
    """Models `remove_id_store()`, drivers/pci/pci-driver.c, v6.1: removes the first
    dynamic id with that vendor and device (and subsystem ids and class, if given);
    -ENODEV if there is none, -EINVAL for fewer than two fields. Devices already bound
    through it stay bound."""
    fields = _hex_fields(text, 6) or []
    if len(fields) < 2:
        return -errno.EINVAL
    full = fields + [PCI_ANY_ID, PCI_ANY_ID, 0, 0][len(fields) - 2:]
    vendor, device, subvendor, subdevice, cls, mask = full[:6]
    dynids = pci.state.dynids.get(drv.name, [])
    for pid in dynids:
        if (pid.vendor == vendor and pid.device == device
                and subvendor in (PCI_ANY_ID, pid.subvendor)
                and subdevice in (PCI_ANY_ID, pid.subdevice)
                and not (pid.pci_class ^ cls) & mask):
            dynids.remove(pid)
            return 0
    return -errno.ENODEV
