"""PCI lines: hot-add and hot-remove of a card, the sysfs files that act on devices and
drivers (remove, rescan, per-device and per-bus rescan, enable, bind, unbind, BAR
resize), and an async host bridge probe (drivers/pci, drivers/base).

Each line runs one kernel path. ``mode=call`` (the default) runs it now, as the system
call or interrupt thread would, and shows its result; if it has to sleep (a lock held by
a parked task) it shows ``blocked`` and stays pending. ``mode=spawn`` only creates the
task, for ``step`` lines to interleave. Either way the line's handle is the task.

Devices are named like sysfs does ("0000:00:02.0"); a device (or bus) that is not there
has no directory, so writing one of its files fails at the open with ENOENT (the
platform's hotremove answers ENODEV), and deleting a line never makes a Program invalid.
Drivers are named like /sys/bus/pci/drivers does: a driver that is not loaded has no
``bind`` file (ENOENT); ``module_load`` (the driver family) loads one; a driver file
naming a device that is not there is the store function's ENODEV (bind_store). Lines a
user writes through sysfs return EAGAIN before userspace can run.
"""

from __future__ import annotations

from iomemfuzz.fuzz.finding import PLATFORM
from iomemfuzz.fuzz.ops import (
    OK,
    Context,
    Kind,
    Op,
    Outcome,
    arg,
    op,
)
from iomemfuzz.fuzz.ops.sched import task_outcome
from iomemfuzz.model.machine import MACHINES
from iomemfuzz.model.machine_file import load_machine, shipped_machines
from iomemfuzz.model.pci import (
    HOST_ACPI,
    HOSTS,
    REBAR_MAX_CODE,
    BarSpec,
    PciDev,
    PciDeviceSpec,
    parse_bdf,
    parse_ids,
    pci_name,
)
from iomemfuzz.model.pci_driver_table import DRIVERS as KNOWN_DRIVERS
from iomemfuzz.model.pci_driver_table import EXAMPLE_IDS
from iomemfuzz.model.pci_spec import DEFAULT_CLASS, DEFAULT_DEVICE, DEFAULT_VENDOR
from iomemfuzz.model.sched import Path

FAMILY = "pci"
MODES = ("call", "spawn")
YES_NO = ("no", "yes")
ENODEV = Outcome("ENODEV")
# Writing a file of a device or bus that is not there: open() finds no such path (what
# `iomemfuzz confirm` saw 6.1 answer for a removed device's rescan file).
NO_FILE = Outcome("ENOENT")
EINVAL = Outcome("EINVAL")
EAGAIN = Outcome("EAGAIN")
DEV = "0000:00:02.0"


def _machine_devices() -> tuple[str, ...]:
    """Every function the built-in and shipped machines have, for suggestions."""
    names: dict[str, None] = {}
    for machine in MACHINES.values():
        names.update((spec.name, None) for spec in machine.pci_devices)
    for name in shipped_machines():
        try:
            machine = load_machine(name)
        except (OSError, ValueError):
            continue
        names.update((spec.name, None) for spec in machine.pci_devices)
    return tuple(names)


# Suggestions for the decoder and the strategies (any other text is still valid): the
# slots Programs hot-add into, then every function of the machines.
DEVS = tuple(dict.fromkeys((DEV, "0000:00:03.0", "0000:00:04.0", "0000:00:05.0",
                            "0001:00:00.0", "0001:00:01.0", *_machine_devices())))
BARS = ("mem:0x1000", "mem:0x1000,,mem:0x100000:pref,,io:0x20", "mem:0x4000:pref:64",
        "io:0x20", "mem:0x100,mem:0x100", "mem:0x200000:pref,mem:0x1000",
        "mem:0x20000,io:0x40", "mem:0x100")
# The drivers the model knows (their real id tables), then generic ones.
DRIVERS = (*KNOWN_DRIVERS, "drv", "nic")
# Ids: QEMU's e1000 (82540EM), edu, pci-testdev, and an e1000 model without I/O.
IDS = ("8086:100e:020000", "1234:11e8:00ff00", "1b36:0005", "8086:1019:020000")


def _start(ctx: Context, path: Path, name: str, mode: str) -> Outcome:
    """Create the task for ``path``; run it now unless ``mode`` is spawn. Binds it."""
    if mode == "spawn":
        task = ctx.kernel.spawn(path, name)
        ctx.bind(task)
        return OK
    task = ctx.kernel.call(path, name)
    ctx.bind(task)
    return task_outcome(task)


def _device(ctx: Context, name: str) -> PciDev | None:
    return ctx.kernel.pci_device(name)


def _userspace(ctx: Context) -> bool:
    return ctx.kernel.userspace_ready


def parse_bars(text: str) -> tuple[BarSpec | None, ...]:
    """"mem:0x1000,,io:0x20" -> BAR0, no BAR1, BAR2 (ValueError if malformed)."""
    if not text.strip():
        return ()
    parts = text.split(",")
    if len(parts) > 6:
        raise ValueError("more than 6 BARs")
    return tuple(BarSpec.parse(p) if p.strip() else None for p in parts)


@op("hotadd", binds=True, family=FAMILY, who=PLATFORM)
class HotAdd(Op):
    """A card is inserted into slot ``dev`` and pciehp configures it (scan, BAR and ROM
    assignment, bus-add, probe by any loaded driver whose ids match) under the rescan
    lock; the card decodes nothing until a probe or ``enable`` enables it. ``bars``:
    BAR0..5 comma separated ("mem:0x1000,,mem:0x100000:pref:64,,io:0x20"); ``ids``:
    "VVVV:DDDD[:CLASS]" (default: one ``driver`` binds if it is a known driver, else
    1b36:0005); ``driver``: the module udev loads for it (a driver the model does not
    know gets the card's ids); ``host=async`` puts it behind a host bridge that a later
    ``host_probe`` enumerates (``vmd``: a VMD domain)."""

    dev: str = arg(Kind.NAME, DEV, choices=DEVS)
    bars: str = arg(Kind.NAME, "mem:0x1000", choices=BARS)
    host: str = arg(Kind.CHOICE, HOST_ACPI, choices=HOSTS)
    driver: str = arg(Kind.NAME, "", choices=DRIVERS)
    claims: str = arg(Kind.CHOICE, "yes", choices=YES_NO)
    rom: int = arg(Kind.SIZE, 0, hi=1 << 24)
    vga: str = arg(Kind.CHOICE, "no", choices=YES_NO)
    rebar: int = arg(Kind.INT, 6, hi=6, doc="BAR with a Resizable BAR capability (6: none)")
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)
    ids: str = arg(Kind.NAME, "", choices=IDS)

    def spec(self) -> PciDeviceSpec:
        rom = self.rom
        if rom and rom & (rom - 1):
            raise ValueError("ROM size is not a power of two")
        vendor, device, cls = EXAMPLE_IDS.get(self.driver, (DEFAULT_VENDOR, DEFAULT_DEVICE,
                                                            DEFAULT_CLASS))
        if self.ids:
            vendor, device, given = parse_ids(self.ids)
            cls = cls if given is None else given
        return PciDeviceSpec(self.dev, parse_bars(self.bars), rom=rom, vga=self.vga == "yes",
                             rebar=(self.rebar,) if self.rebar < 6 else (),
                             driver=self.driver or None, claims=self.claims == "yes",
                             host=self.host, vendor=vendor, device=device, pci_class=cls)

    def run(self, ctx: Context) -> Outcome:
        try:
            spec = self.spec()
        except ValueError:
            return EINVAL
        return _start(ctx, ctx.kernel.hot_add(spec), f"pciehp add {spec.name}",
                      self.mode)


@op("hotremove", binds=True, family=FAMILY, who=PLATFORM)
class HotRemove(Op):
    """The card in slot ``dev`` is pulled and pciehp unconfigures it (stop, remove)
    under the rescan lock."""

    dev: str = arg(Kind.NAME, DEV, choices=DEVS)
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        try:
            name = pci_name(*parse_bdf(self.dev))
        except ValueError:
            return ENODEV
        return _start(ctx, ctx.kernel.hot_remove(name), f"pciehp remove {name}",
                      self.mode)


@op("remove", binds=True, family=FAMILY)
class Remove(Op):
    """echo 1 > /sys/bus/pci/devices/DEV/remove: stop and remove under the rescan lock
    (the card stays in its slot; a rescan finds it again)."""

    dev: str = arg(Kind.NAME, DEV, choices=DEVS)
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        dev = _device(ctx, self.dev)
        if dev is None:
            return NO_FILE
        return _start(ctx, ctx.kernel.sysfs_remove(dev), f"remove {dev.name}", self.mode)


@op("rescan", binds=True, family=FAMILY)
class Rescan(Op):
    """echo 1 > /sys/bus/pci/rescan: every root bus rescanned under the rescan lock."""

    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        return _start(ctx, ctx.kernel.sysfs_rescan(), "rescan", self.mode)


@op("bind", binds=True, family=FAMILY)
class Bind(Op):
    """echo DEV > /sys/bus/pci/drivers/DRIVER/bind: ENOENT if DRIVER is not loaded,
    ENODEV if the device is gone or DRIVER does not match it (ids, new_id,
    driver_override); otherwise probe under the device lock: EBUSY if bound, or the
    probe's error (a claiming driver's claim revokes user mappings)."""

    dev: str = arg(Kind.NAME, DEV, choices=DEVS)
    driver: str = arg(Kind.NAME, "e1000", choices=DRIVERS)
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        dev = _device(ctx, self.dev)
        return _start(ctx, ctx.kernel.sysfs_bind(dev, self.driver),
                      f"bind {self.driver} {self.dev}", self.mode)


@op("unbind", binds=True, family=FAMILY)
class Unbind(Op):
    """echo DEV > /sys/bus/pci/drivers/DRIVER/unbind (``driver`` "": the driver the
    device is bound to): the driver lets go; its regions are released (no mapping is
    revoked by a release) and the device keeps decoding. ENODEV unless bound to it."""

    dev: str = arg(Kind.NAME, DEV, choices=DEVS)
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)
    driver: str = arg(Kind.NAME, "", choices=DRIVERS)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        dev = _device(ctx, self.dev)
        if dev is None:
            return ENODEV
        return _start(ctx, ctx.kernel.sysfs_unbind(dev, self.driver), f"unbind {dev.name}",
                      self.mode)


@op("resize", binds=True, family=FAMILY)
class Resize(Op):
    """echo SIZE > /sys/bus/pci/devices/DEV/resourceBAR_resize (1 MiB << size): the
    resource files are removed, the BAR resized and reassigned, the files recreated."""

    dev: str = arg(Kind.NAME, DEV, choices=DEVS)
    bar: int = arg(Kind.INT, 0, hi=5)
    size: int = arg(Kind.INT, 0, hi=REBAR_MAX_CODE)
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        dev = _device(ctx, self.dev)
        if dev is None:
            return NO_FILE
        return _start(ctx, ctx.kernel.sysfs_resize(dev, self.bar, self.size),
                      f"resize {dev.name} BAR{self.bar}", self.mode)


@op("host_probe", binds=True, family=FAMILY, who=PLATFORM)
class HostProbe(Op):
    """The host bridge driver of root bus ``bus`` probes: `pci_host_probe()` (or VMD's
    `vmd_enable_domain()`) scans, assigns and bus-adds — without the rescan lock on 6.1
    and for VMD, holding it since v6.12 otherwise. If boot queued this probe
    (device_initcall) and it has not finished, the line's handle is that task."""

    bus: str = arg(Kind.NAME, "0001:00", choices=("0001:00", "0000:00"))
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        kernel = ctx.kernel
        bus = _bus(ctx, self.bus)
        if bus is None or bus.host == HOST_ACPI:
            return ENODEV
        queued = kernel.boot_async_task(bus.name)
        if queued is None:
            return _start(ctx, kernel.pci_host_probe(bus), f"pci_host_probe {bus.name}",
                          self.mode)
        ctx.bind(queued)
        if self.mode == "spawn":
            return OK
        kernel.run(queued)
        return task_outcome(queued)


def _bus(ctx: Context, name: str):
    try:
        domain, number, _devfn = parse_bdf(f"{name}:00.0")
    except ValueError:
        return None
    return ctx.kernel.pci_root_bus(domain, number)


@op("enable", binds=True, family=FAMILY)
class Enable(Op):
    """echo VALUE > /sys/bus/pci/devices/DEV/enable: under the device lock, EBUSY while
    a driver is bound; non-zero runs pci_enable_device() (memory and I/O decoding on;
    EINVAL if a BAR is unassigned), 0 pci_disable_device() (decoding stays on; EIO if
    not enabled)."""

    dev: str = arg(Kind.NAME, DEV, choices=DEVS)
    value: str = arg(Kind.NAME, "1", choices=("1", "0", "x"))
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        dev = _device(ctx, self.dev)
        if dev is None:
            return NO_FILE
        return _start(ctx, ctx.kernel.sysfs_enable(dev, self.value), f"enable {dev.name}",
                      self.mode)


@op("dev_rescan", binds=True, family=FAMILY)
class DevRescan(Op):
    """echo 1 > /sys/bus/pci/devices/DEV/rescan: the device's whole bus is rescanned
    (new functions found, every unassigned resource there assigned) under the rescan
    lock. ENOENT for a device that is gone (it has no such file)."""

    dev: str = arg(Kind.NAME, DEV, choices=DEVS)
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        dev = _device(ctx, self.dev)
        if dev is None:
            return NO_FILE
        return _start(ctx, ctx.kernel.sysfs_dev_rescan(dev), f"rescan {dev.name}",
                      self.mode)


@op("bus_rescan", binds=True, family=FAMILY)
class BusRescan(Op):
    """echo 1 > /sys/class/pci_bus/BUS/rescan: that root bus rescanned under the rescan
    lock. ENOENT for a bus that is not registered (no such file)."""

    bus: str = arg(Kind.NAME, "0000:00", choices=("0000:00", "0001:00"))
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        bus = _bus(ctx, self.bus)
        if bus is None or not bus.registered:
            return NO_FILE
        return _start(ctx, ctx.kernel.sysfs_bus_rescan(bus), f"rescan {bus.name}",
                      self.mode)
