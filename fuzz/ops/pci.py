"""PCI lines: hot-add and hot-remove of a card, sysfs remove / rescan / bind / unbind /
BAR resize, and an async host bridge probe (drivers/pci, drivers/base).

Each line runs one kernel path. ``mode=call`` (the default) runs it now, as the system
call or interrupt thread would, and shows its result; if it has to sleep (a lock held by
a parked task) it shows ``blocked`` and stays pending. ``mode=spawn`` only creates the
task, for ``step`` lines to interleave. Either way the line's handle is the task.

Devices are named like sysfs does ("0000:00:02.0"); a name that is not there gives
ENODEV, so deleting a line never makes a Program invalid. Lines a user writes through
sysfs (remove, rescan, bind, unbind, resize) return EAGAIN before userspace can run.
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
from iomemfuzz.model.pci import (
    HOST_ACPI,
    HOST_ASYNC,
    REBAR_MAX_CODE,
    BarSpec,
    PciDev,
    PciDeviceSpec,
    PciDriver,
    parse_bdf,
    pci_name,
)
from iomemfuzz.model.sched import Path

FAMILY = "pci"
MODES = ("call", "spawn")
YES_NO = ("no", "yes")
ENODEV = Outcome("ENODEV")
EINVAL = Outcome("EINVAL")
EAGAIN = Outcome("EAGAIN")
DEV = "0000:00:02.0"
# Suggestions for the decoder and the strategies (any other text is still valid).
DEVS = (DEV, "0000:00:03.0", "0000:00:04.0", "0001:00:00.0", "0001:00:01.0")
BARS = ("mem:0x1000", "mem:0x1000,,mem:0x100000:pref,,io:0x20", "mem:0x4000:pref:64",
        "io:0x20", "mem:0x100,mem:0x100", "mem:0x200000:pref,mem:0x1000")
DRIVERS = ("drv", "vfio-pci", "nic")


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
    """A card is inserted into slot ``dev`` and pciehp configures it (scan, BAR
    assignment, bus-add, probe) under the rescan lock. ``bars``: BAR0..5 comma
    separated ("mem:0x1000,,mem:0x100000:pref:64,,io:0x20"); ``host=async`` puts it
    behind a host bridge that a later ``host_probe`` enumerates without the lock."""

    dev: str = arg(Kind.NAME, DEV, choices=DEVS)
    bars: str = arg(Kind.NAME, "mem:0x1000", choices=BARS)
    host: str = arg(Kind.CHOICE, HOST_ACPI, choices=(HOST_ACPI, HOST_ASYNC))
    driver: str = arg(Kind.NAME, "", choices=DRIVERS)
    claims: str = arg(Kind.CHOICE, "yes", choices=YES_NO)
    rom: int = arg(Kind.SIZE, 0, hi=1 << 24)
    vga: str = arg(Kind.CHOICE, "no", choices=YES_NO)
    rebar: int = arg(Kind.INT, 6, hi=6, doc="BAR with a Resizable BAR capability (6: none)")
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def spec(self) -> PciDeviceSpec:
        rom = self.rom
        if rom and rom & (rom - 1):
            raise ValueError("ROM size is not a power of two")
        return PciDeviceSpec(self.dev, parse_bars(self.bars), rom=rom, vga=self.vga == "yes",
                             rebar=(self.rebar,) if self.rebar < 6 else (),
                             driver=self.driver or None, claims=self.claims == "yes",
                             host=self.host)

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
            return ENODEV
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
    """Load ``driver`` for the device and bind it (drivers/DRIVER/bind): probe under the
    device lock; unless ``claims=no`` (B13) probe claims every BAR, which revokes."""

    dev: str = arg(Kind.NAME, DEV, choices=DEVS)
    driver: str = arg(Kind.NAME, "drv", choices=DRIVERS)
    claims: str = arg(Kind.CHOICE, "yes", choices=YES_NO)
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        dev = _device(ctx, self.dev)
        if dev is None:
            return ENODEV
        drv = PciDriver(self.driver or "drv", self.claims == "yes")
        return _start(ctx, ctx.kernel.sysfs_bind(dev, drv), f"bind {drv.name} {dev.name}",
                      self.mode)


@op("unbind", binds=True, family=FAMILY)
class Unbind(Op):
    """drivers/DRIVER/unbind: the driver lets go; its regions are released (no
    mapping is revoked by a release)."""

    dev: str = arg(Kind.NAME, DEV, choices=DEVS)
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        dev = _device(ctx, self.dev)
        if dev is None:
            return ENODEV
        return _start(ctx, ctx.kernel.sysfs_unbind(dev), f"unbind {dev.name}", self.mode)


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
            return ENODEV
        return _start(ctx, ctx.kernel.sysfs_resize(dev, self.bar, self.size),
                      f"resize {dev.name} BAR{self.bar}", self.mode)


@op("host_probe", binds=True, family=FAMILY, who=PLATFORM)
class HostProbe(Op):
    """The host bridge driver of root bus ``bus`` probes: `pci_host_probe()` scans,
    assigns and bus-adds **without** the rescan lock (DT hosts, vmd, hv_pci). If boot
    queued this probe (device_initcall) and it has not finished, the line's handle is
    that task."""

    bus: str = arg(Kind.NAME, "0001:00", choices=("0001:00", "0000:00"))
    mode: str = arg(Kind.CHOICE, "call", choices=MODES)

    def run(self, ctx: Context) -> Outcome:
        kernel = ctx.kernel
        try:
            domain, number, _devfn = parse_bdf(f"{self.bus}:00.0")
        except ValueError:
            return ENODEV
        bus = kernel.pci_root_bus(domain, number)
        if bus is None or bus.host != HOST_ASYNC:
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

