"""Driver lines: loading and unloading a PCI driver module, and the driver files that
change what a driver matches (``new_id``, ``remove_id``, a device's ``driver_override``)
or ask the bus to match again (``drivers_probe``) (drivers/pci/pci-driver.c,
drivers/base).

A module is named as ``modprobe`` names it. The drivers the model knows (e1000,
uio_pci_generic, vfio-pci) load with their real id tables and probes; any other name is a
generic driver whose id table is ``ids`` and whose probe enables the device and, unless
``claims=no``, requests every BAR under its name. Loading binds every matching unbound
device (driver_attach), unloading releases its devices, last bound first. The device
keeps decoding after either. Lines run as root through sysfs and return EAGAIN before
userspace can run.
"""

from __future__ import annotations

from iomemfuzz.fuzz.ops import Context, Kind, Op, Outcome, arg, errno_outcome, op
from iomemfuzz.fuzz.ops.pci import (
    DEVS,
    DRIVERS,
    EAGAIN,
    ENODEV,
    IDS,
    MODES,
    NO_FILE,
    YES_NO,
    _start,
)
from iomemfuzz.model.pci import PciId, parse_ids
from iomemfuzz.model.pci_driver_table import DRIVERS as KNOWN_DRIVERS
from iomemfuzz.model.pci_driver_table import generic_driver
from iomemfuzz.model.pci_spec import PCI_ANY_ID

FAMILY = "driver"
EINVAL = Outcome("EINVAL")
# new_id / remove_id text: "VENDOR DEVICE [SUBVENDOR SUBDEVICE CLASS MASK DATA]" in hex.
NEW_IDS = ("8086 100e", "1234 11e8", "1b36 0005", "8086 100e ffffffff ffffffff 0 0 0",
           "8086")


def parse_id_table(text: str) -> tuple[PciId, ...]:
    """"8086:100e,1234:11e8" -> id table entries ("*" for any vendor or device; a class
    after a second colon must match exactly). ValueError if malformed."""
    out = []
    for word in text.split(","):
        word = word.strip()
        if not word:
            continue
        parts = word.split(":")
        any_id = [p == "*" for p in parts]
        filled = ":".join("0" if a else p for p, a in zip(parts, any_id, strict=True))
        vendor, device, cls = parse_ids(filled)
        out.append(PciId(PCI_ANY_ID if any_id[0] else vendor,
                         PCI_ANY_ID if any_id[1] else device,
                         pci_class=cls or 0, class_mask=0xFFFFFF if cls is not None else 0))
    return tuple(out)


def _userspace(ctx: Context) -> bool:
    return ctx.kernel.userspace_ready


@op("module_load", binds=True, family=FAMILY)
class ModuleLoad(Op):
    """insmod DRIVER: `pci_register_driver()`, which probes every bus-added unbound
    device the driver matches. EEXIST if a module of that name is loaded. A known
    driver ignores ``ids`` and ``claims``; any other gets ``ids``
    ("VVVV:DDDD[,...]", "*" for any; "" none: it binds only through new_id or
    driver_override)."""

    driver: str = arg(Kind.NAME, "e1000", choices=DRIVERS)
    ids: str = arg(Kind.NAME, "", choices=IDS)
    claims: str = arg(Kind.CHOICE, "yes", choices=YES_NO)
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        drv = KNOWN_DRIVERS.get(self.driver)
        if drv is None:
            try:
                table = parse_id_table(self.ids)
            except ValueError:
                return EINVAL
            drv = generic_driver(self.driver, table, self.claims == "yes")
        return _start(ctx, ctx.kernel.module_load(drv), f"insmod {drv.name}", self.mode)


@op("module_unload", binds=True, family=FAMILY)
class ModuleUnload(Op):
    """rmmod DRIVER: `pci_unregister_driver()` releases every device bound to it (the
    last bound first: its remove releases the claims, the devices keep decoding) and
    forgets its dynamic ids. ENOENT if no such module is loaded."""

    driver: str = arg(Kind.NAME, "e1000", choices=DRIVERS)
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        return _start(ctx, ctx.kernel.module_unload(self.driver), f"rmmod {self.driver}",
                      self.mode)


@op("new_id", binds=True, family=FAMILY)
class NewId(Op):
    """echo "VVVV DDDD ..." > /sys/bus/pci/drivers/DRIVER/new_id: add a dynamic id and
    probe every matching unbound device (a failing probe does not fail the write).
    EEXIST for an id the driver already has, EINVAL for fewer than two fields, ENOENT
    if DRIVER is not loaded."""

    driver: str = arg(Kind.NAME, "e1000", choices=DRIVERS)
    id: str = arg(Kind.NAME, "8086 100e", choices=NEW_IDS)
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        return _start(ctx, ctx.kernel.sysfs_new_id(self.driver, self.id),
                      f"new_id {self.driver}", self.mode)


@op("remove_id", family=FAMILY)
class RemoveId(Op):
    """echo "VVVV DDDD" > /sys/bus/pci/drivers/DRIVER/remove_id: drop the first matching
    dynamic id (devices bound through it stay bound). ENODEV if there is none, ENOENT
    if DRIVER is not loaded."""

    driver: str = arg(Kind.NAME, "e1000", choices=DRIVERS)
    id: str = arg(Kind.NAME, "8086 100e", choices=NEW_IDS)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        return errno_outcome(ctx.kernel.sysfs_remove_id(self.driver, self.id))


@op("driver_override", family=FAMILY)
class DriverOverride(Op):
    """echo DRIVER > /sys/bus/pci/devices/DEV/driver_override ("" clears it): from then on
    only that driver matches the device, whatever its ids. Binds and unbinds nothing
    (follow with bind or drivers_probe). ENOENT for a device that is gone."""

    dev: str = arg(Kind.NAME, "0000:00:02.0", choices=DEVS)
    driver: str = arg(Kind.NAME, "vfio-pci", choices=DRIVERS)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        dev = ctx.kernel.pci_device(self.dev)
        if dev is None:
            return NO_FILE
        return errno_outcome(ctx.kernel.sysfs_driver_override(dev, self.driver))


@op("drivers_probe", binds=True, family=FAMILY)
class DriversProbe(Op):
    """echo DEV > /sys/bus/pci/drivers_probe: an unbound device is offered to every
    loaded driver in load order, the first that matches and probes binds it. ok even
    when none does; ENODEV for a device that is gone."""

    dev: str = arg(Kind.NAME, "0000:00:02.0", choices=DEVS)
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        dev = ctx.kernel.pci_device(self.dev)
        if dev is None:
            return ENODEV
        return _start(ctx, ctx.kernel.sysfs_drivers_probe(dev), f"drivers_probe {dev.name}",
                      self.mode)


@op("drivers_autoprobe", family=FAMILY)
class DriversAutoprobe(Op):
    """echo VALUE > /sys/bus/pci/drivers_autoprobe: with 0, loading a module binds
    nothing by itself (bind, drivers_probe, new_id and bus-add of a new device still
    probe); anything not starting with 0 restores the default."""

    value: str = arg(Kind.NAME, "0", choices=("0", "1"))

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        return errno_outcome(ctx.kernel.sysfs_drivers_autoprobe(self.value))
