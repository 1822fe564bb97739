"""PCI buses, devices and BARs: enumeration, bus_add_device, removal, rescan, hot-add,
BAR assignment and resize, and driver bind/unbind with the region claims probe makes.

The kernel paths that race (spec §5.4, §6.3) are generators that yield where another
path's interleaving changes the outcome; :mod:`iomemfuzz.model.sched` runs them. The
locks are the kernel's: ``pci_rescan_remove_lock`` around hot-add, rescan and removal
(and ACPI boot enumeration), each device's ``device_lock`` around probe, unbind and BAR
resize, and **none** around an async host bridge probe (``pci_host_probe``, vmd, hv_pci):
that is what lets ``pci_sysfs_init`` and ``pci_bus_add_device`` meet (B1, B2).

Devices are described by :class:`PciDeviceSpec` (the element type of
``Machine.pci_devices``): what the hardware is, not what the kernel made of it. A
:class:`PciDev` is the kernel's ``struct pci_dev`` for one enumeration of a spec; a
removed and rescanned device is a new PciDev.

Simplifications (each safe for the properties modelled): root buses only (no bridges,
so no bridge windows to resize); BARs decode at their assigned address while the device
is registered; config space is not modelled beyond the BARs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from iomemfuzz.model import errno
from iomemfuzz.model.event import INFO, USE_AFTER_FREE, WARN, Log
from iomemfuzz.model.ioport import (
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_MEM_64,
    IORESOURCE_PREFETCH,
    IORESOURCE_SIZEALIGN,
    IORESOURCE_UNSET,
    IORESOURCE_WINDOW,
    Resource,
)
from iomemfuzz.model.profile import KernelProfile
from iomemfuzz.model.resource_check import descendants
from iomemfuzz.model.resource_tree import ResourceTree
from iomemfuzz.model.sched import Mutex, Path, Point, Scheduler, mutex_lock, mutex_unlock
from iomemfuzz.model.sysfs import KernfsNode, Sysfs

PCI_STD_NUM_BARS = 6
PCI_ROM_RESOURCE = 6
PCI_NUM_RESOURCES = 7

# Bus-specific IORESOURCE bits for PCI ROMs (include/linux/ioport.h, spec §1.2).
IORESOURCE_ROM_ENABLE = 0x1
IORESOURCE_ROM_SHADOW = 0x2
IORESOURCE_PCI_FIXED = 0x10

# arch/x86/pci: PCIBIOS_MIN_IO, the end of the BIOS area pcibios_align_resource keeps
# memory BARs above, and the legacy VGA shadow ROM pci_fixup_video points the ROM at.
PCIBIOS_MIN_IO = 0x1000
BIOS_END = 0x100000
VGA_SHADOW_ROM_START = 0xC0000
VGA_SHADOW_ROM_SIZE = 0x20000
FOUR_GIB = 1 << 32
ASYNC_WINDOW_SIZE = 256 << 20
U64_MAX = (1 << 64) - 1

# How a root bus is enumerated (spec §5.4, §6.3).
HOST_ACPI = "acpi"  # acpi_pci_root_add at subsys_initcall: bus_add under the rescan lock
HOST_ASYNC = "async"  # pci_host_probe from a (possibly async) driver probe: no lock

# ReBAR size codes: 0 = 1 MiB ... (include/uapi/linux/pci_regs.h); the modelled
# capability offers 1 MiB .. 256 MiB.
REBAR_MAX_CODE = 8

_BDF = re.compile(r"^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-1]?[0-9a-fA-F])\.([0-7])$")


@lru_cache(maxsize=4096)
def parse_bdf(text: str) -> tuple[int, int, int]:
    """"0000:00:02.0" or "00:02.0" -> (domain, bus, devfn). ValueError if malformed.

    Cached: a pure function of the text that every PciDeviceSpec.address / .name /
    .bus_key asks again (dozens of times per boot). Errors are not cached."""
    m = _BDF.match(text.strip())
    if not m:
        raise ValueError(f"bad PCI address {text!r} (want DDDD:BB:DD.F)")
    domain = int(m.group(1) or "0", 16)
    bus = int(m.group(2), 16)
    slot = int(m.group(3), 16)
    if slot > 0x1f:
        raise ValueError(f"bad PCI slot in {text!r}")
    return domain, bus, (slot << 3) | int(m.group(4))


def pci_name(domain: int, bus: int, devfn: int) -> str:
    """Models `pci_name()` / dev_set_name in pci_setup_device: "0000:00:02.0"."""
    return f"{domain:04x}:{bus:02x}:{devfn >> 3:02x}.{devfn & 7:x}"


@lru_cache(maxsize=4096)
def _bdf_name(text: str) -> str:
    """pci_name() of the address ``text`` names. Cached like parse_bdf: every boot asks
    for the name of each machine device a dozen times (scan, device_add, sysfs, procfs)."""
    return pci_name(*parse_bdf(text))


@dataclass(frozen=True, slots=True)
class BarSpec:
    """One implemented BAR as the hardware decodes it.

    Text form (Program lines, machine tables): ``mem:0x1000``, ``mem:0x100000:pref:64``,
    ``io:0x20``, with ``@0xfe000000`` for a firmware-assigned address."""

    size: int
    io: bool = False
    prefetch: bool = False
    is64: bool = False
    addr: int | None = None

    def __post_init__(self) -> None:
        if self.size <= 0 or self.size & (self.size - 1):
            raise ValueError(f"BAR size {self.size:#x} is not a power of two")
        if self.io and (self.prefetch or self.is64):
            raise ValueError("an I/O BAR cannot be prefetchable or 64-bit")
        if self.addr is not None and self.addr % self.size:
            raise ValueError(f"BAR address {self.addr:#x} not aligned to {self.size:#x}")

    @property
    def flags(self) -> int:
        """The IORESOURCE flags `pci_read_bases()` gives the BAR's resource."""
        if self.io:
            return IORESOURCE_IO | IORESOURCE_SIZEALIGN
        flags = IORESOURCE_MEM | IORESOURCE_SIZEALIGN
        if self.prefetch:
            flags |= IORESOURCE_PREFETCH
        if self.is64:
            flags |= IORESOURCE_MEM_64
        return flags

    def text(self) -> str:
        parts = ["io" if self.io else "mem", hex(self.size)]
        if self.prefetch:
            parts.append("pref")
        if self.is64:
            parts.append("64")
        out = ":".join(parts)
        return out if self.addr is None else f"{out}@{self.addr:#x}"

    @classmethod
    def parse(cls, text: str) -> BarSpec:
        """Inverse of :meth:`text`. ValueError if malformed."""
        body, _, at = text.strip().partition("@")
        parts = body.split(":")
        if len(parts) < 2 or parts[0] not in ("mem", "io"):
            raise ValueError(f"bad BAR {text!r} (want mem:SIZE[:pref][:64][@ADDR])")
        extras = set(parts[2:])
        if extras - {"pref", "64"} or len(extras) != len(parts[2:]):
            raise ValueError(f"bad BAR attributes in {text!r}")
        return cls(int(parts[1], 0), io=parts[0] == "io", prefetch="pref" in extras,
                   is64="64" in extras, addr=int(at, 0) if at else None)


@dataclass(frozen=True, slots=True)
class PciDeviceSpec:
    """A PCI function as the hardware presents it (element type of
    ``Machine.pci_devices``).

    ``bars[i]`` is BAR i (None or absent: not implemented). ``rom`` is the expansion
    ROM size (0: none). ``vga``: a VGA-class device, whose ROM pci_fixup_video points at
    the legacy shadow at 0xC0000 (B23). ``rebar``: BAR indices with a Resizable BAR
    capability (``resourceN_resize`` files). ``driver``: the built-in driver that binds
    it at device_initcall (None: no driver). ``claims``: whether that driver's probe
    calls pci_request_regions (False: B13). ``host``: how its root bus is enumerated
    (HOST_ACPI / HOST_ASYNC). ``present``: in the slot at power-on (False: an empty
    slot a hot-add fills later)."""

    bdf: str
    bars: tuple[BarSpec | None, ...] = ()
    rom: int = 0
    vga: bool = False
    rebar: tuple[int, ...] = ()
    driver: str | None = None
    claims: bool = True
    host: str = HOST_ACPI
    present: bool = True

    def __post_init__(self) -> None:
        parse_bdf(self.bdf)
        if len(self.bars) > PCI_STD_NUM_BARS:
            raise ValueError(f"{self.bdf}: more than {PCI_STD_NUM_BARS} BARs")
        if self.host not in (HOST_ACPI, HOST_ASYNC):
            raise ValueError(f"{self.bdf}: unknown host kind {self.host!r}")

    @property
    def address(self) -> tuple[int, int, int]:
        return parse_bdf(self.bdf)

    @property
    def name(self) -> str:
        return _bdf_name(self.bdf)

    @property
    def bus_key(self) -> tuple[int, int]:
        domain, bus, _devfn = self.address
        return domain, bus

    def bar(self, i: int) -> BarSpec | None:
        return self.bars[i] if i < len(self.bars) else None


@dataclass(frozen=True, slots=True)
class PciDriver:
    """A PCI driver: its name and whether its probe claims the BARs
    (`pci_request_regions`) — drivers that never do are B13."""

    name: str
    claims: bool = True


class RegionBroker(Protocol):
    """Where driver claims go: ``__request_region`` / ``__release_region`` plus the
    bookkeeping of who believes it holds what (the Kernel implements this)."""

    def request_region(self, parent: Resource, start: int, n: int, name: str, flags: int,
                       holder: str = ...) -> Any: ...

    def release_region(self, parent: Resource, start: int, n: int,
                       holder: str = ...) -> None: ...

    def tree_changed(self, holder: str = ...) -> None: ...


class TreeBroker:
    """A RegionBroker straight onto a ResourceTree (no ledger): for tests and tools."""

    def __init__(self, tree: ResourceTree) -> None:
        self.tree = tree

    def request_region(self, parent: Resource, start: int, n: int, name: str, flags: int,
                       holder: str = "") -> Any:
        return self.tree._request_region(parent, start, n, name, flags)

    def release_region(self, parent: Resource, start: int, n: int, holder: str = "") -> None:
        self.tree._release_region(parent, start, n)

    def tree_changed(self, holder: str = "") -> None:
        return None


class PciBus:
    """Models `struct pci_bus` of a root bus (domain, number, windows, procfs dir)."""

    __slots__ = ("class_sd", "devices", "domain", "host", "legacy_io", "legacy_mem",
                 "number", "procdir", "registered", "sd")

    def __init__(self, domain: int, number: int, host: str) -> None:
        self.domain = domain
        self.number = number
        self.host = host
        self.devices: list[PciDev] = []  # bus->devices, in scan order
        self.sd: KernfsNode | None = None  # /devices/pciDDDD:BB (host bridge device)
        self.class_sd: KernfsNode | None = None  # .../pci_bus/DDDD:BB (legacy files)
        self.procdir: object = None  # /proc/bus/pci/BB
        self.legacy_io: Any = None
        self.legacy_mem: Any = None
        self.registered = False

    @property
    def name(self) -> str:
        return f"{self.domain:04x}:{self.number:02x}"

    @property
    def key(self) -> tuple[int, int]:
        return self.domain, self.number

    def __repr__(self) -> str:
        return f"<PciBus {self.name} {self.host}>"


class PciDev:
    """Models `struct pci_dev`, include/linux/pci.h, v6.1, as far as the races need.

    ``resource`` holds the six BARs and the ROM as Resource nodes (an unimplemented BAR
    is [0, 0] with no flags, so ``pci_resource_len`` is 0). ``res_attr``/``res_attr_wc``
    are the raw pointer slots pci-sysfs fills — never cleared after a free, exactly as
    the kernel leaves them. ``sd`` is ``dev.kobj.sd`` (None before device_add and after
    device_del). ``added`` is ``pci_dev_is_added()``; ``on_klist`` says
    ``for_each_pci_dev`` can find it. ``refcount`` reaching 0 frees it (``released``)."""

    __slots__ = (
        "added",
        "bus",
        "devfn",
        "devres",
        "driver",
        "lock",
        "match_driver",
        "name",
        "on_klist",
        "procent",
        "refcount",
        "registered",
        "released",
        "res_attr",
        "res_attr_wc",
        "resource",
        "rom_attr",
        "sd",
        "spec",
        "uaf_reported",
    )

    def __init__(self, spec: PciDeviceSpec, bus: PciBus) -> None:
        self.spec = spec
        self.bus = bus
        _domain, _bus, self.devfn = spec.address
        self.name = spec.name
        self.resource: list[Resource] = [Resource(0, 0, self.name, 0, 0)
                                         for _ in range(PCI_NUM_RESOURCES)]
        self.res_attr: list[Any] = [None] * PCI_STD_NUM_BARS
        self.res_attr_wc: list[Any] = [None] * PCI_STD_NUM_BARS
        self.rom_attr: Any = None
        self.sd: KernfsNode | None = None
        self.registered = False  # device_add done and not yet device_del'ed
        self.on_klist = False
        self.added = False
        self.match_driver = False
        self.driver: PciDriver | None = None
        self.devres: list[tuple[Resource, int, int]] = []  # (root, start, n) claimed
        self.procent: object = None
        self.lock = Mutex(f"device_lock({self.name})")
        self.refcount = 1  # device_initialize
        self.released = False
        self.uaf_reported = False

    def bar_len(self, i: int) -> int:
        """Models `pci_resource_len()`: 0 if the resource's end is 0."""
        res = self.resource[i]
        if res.end == 0:
            return 0
        return (res.end - res.start + 1) & U64_MAX

    def path(self) -> str:
        return f"/devices/pci{self.bus.domain:04x}:{self.bus.number:02x}/{self.name}"

    def __repr__(self) -> str:
        state = "added" if self.added else ("registered" if self.registered else "gone")
        return f"<PciDev {self.name} {state}>"


@dataclass(slots=True)
class _Slot:
    """A physical slot: the hardware in it (None: empty)."""

    spec: PciDeviceSpec | None = None


@dataclass(slots=True)
class PciState:
    """Globals of drivers/pci that are not per device."""

    driver_core_ready: bool = False  # pci_driver_init (postcore) registered the bus type
    pciehp_ready: bool = False  # pcie_portdrv_init (device) bound the hotplug service
    drivers: dict[str, PciDriver] = field(default_factory=dict)
    probed_hosts: set[tuple[int, int]] = field(default_factory=set)


class Pci:
    """drivers/pci as one object: the buses, the klist of every registered device, the
    hardware in the slots, the registered drivers, and the sysfs/procfs halves."""

    def __init__(self, profile: KernelProfile, log: Log, resources: ResourceTree,
                 sysfs: Sysfs, sched: Scheduler, specs: tuple[PciDeviceSpec, ...] = (),
                 broker: RegionBroker | None = None) -> None:
        from iomemfuzz.model.pci_proc import PciProc
        from iomemfuzz.model.pci_sysfs import PciSysfs

        self.profile = profile
        self.log = log
        self.resources = resources
        self.sysfs = sysfs
        self.sched = sched
        self.broker: RegionBroker = broker or TreeBroker(resources)
        self.state = PciState()
        self.rescan_remove_lock = Mutex("pci_rescan_remove_lock")
        # The pci_bus_type klist: every device_add'ed device, in device_add order.
        self.klist: list[PciDev] = []
        self.buses: dict[tuple[int, int], PciBus] = {}
        self.slots: dict[str, _Slot] = {}
        self.files = PciSysfs(profile, log, sysfs, sched, self)
        self.proc = PciProc(profile, log, sched, self)
        for spec in specs:
            if spec.name in self.slots and self.slots[spec.name].spec is not None:
                raise ValueError(f"two devices at {spec.name}")
            self.slots[spec.name] = _Slot(spec if spec.present else None)
            self._bus(spec.bus_key, spec.host)
        if not any(b.host == HOST_ACPI for b in self.buses.values()):
            self._bus((0, 0), HOST_ACPI)

    # --- lookups -----------------------------------------------------------------------

    def _bus(self, key: tuple[int, int], host: str) -> PciBus:
        bus = self.buses.get(key)
        if bus is None:
            bus = PciBus(key[0], key[1], host)
            self.buses[key] = bus
        return bus

    def devices(self) -> list[PciDev]:
        """Every registered device (on some bus list), in bus then scan order."""
        return [d for key in sorted(self.buses) for d in self.buses[key].devices]

    def find(self, name: str) -> PciDev | None:
        """The registered device called ``name`` ("0000:00:02.0" or "00:02.0")."""
        try:
            canonical = pci_name(*parse_bdf(name))
        except ValueError:
            return None
        for dev in self.devices():
            if dev.name == canonical:
                return dev
        return None

    def present_devices(self) -> Iterator[PciDev]:
        """Devices decoding their BARs (for the mm model's physical-address resolver)."""
        return (d for d in self.devices() if d.registered)

    def _use(self, dev: PciDev, where: str) -> None:
        """A path touches ``dev``: a USE_AFTER_FREE event if its last reference is gone
        (reported once per device)."""
        if dev.released and not dev.uaf_reported:
            dev.uaf_reported = True
            self.log.emit(USE_AFTER_FREE, f"BUG: KASAN: use-after-free in {where}: "
                          f"pci_dev {dev.name}", where=where, object="pci_dev",
                          dev=dev.name)

    # --- references and the klist -----------------------------------------------------

    def pci_dev_get(self, dev: PciDev) -> None:
        """Models `pci_dev_get()`."""
        dev.refcount += 1

    def pci_dev_put(self, dev: PciDev | None) -> None:
        """Models `pci_dev_put()` → `pci_release_dev()` on the last reference."""
        if dev is None:
            return
        dev.refcount -= 1
        if dev.refcount == 0:
            dev.released = True

    def pci_get_device(self, start: PciDev | None) -> PciDev | None:
        """Models `pci_get_device(PCI_ANY_ID, PCI_ANY_ID, from)` (for_each_pci_dev),
        drivers/pci/search.c + lib/klist.c, v6.1: the next device on the bus klist after
        ``start`` (a new reference), dropping ``start``'s.

        If ``start`` was device_del'ed meanwhile, its klist node is dead and
        `klist_iter_init_node()` cannot take a reference on it, so the walk restarts at
        the head of the list [D, read from lib/klist.c]: a device loop that sleeps can
        visit the same devices twice."""
        if start is not None and start in self.klist:
            index = self.klist.index(start) + 1
        else:
            index = 0
        nxt = self.klist[index] if index < len(self.klist) else None
        if nxt is not None:
            self.pci_dev_get(nxt)
        self.pci_dev_put(start)
        return nxt

    # --- enumeration ---------------------------------------------------------------------

    def pci_driver_init(self) -> int:
        """Models `pci_driver_init()` (postcore_initcall), drivers/pci/pci-driver.c, v6.1:
        registers pci_bus_type, so drivers can register from here on."""
        self.state.driver_core_ready = True
        return 0

    def pci_register_host_bridge(self, bus: PciBus) -> None:
        """Models `pci_register_host_bridge()`, drivers/pci/probe.c, v6.1: the host
        bridge device and the root bus's class device appear in sysfs; legacy files are
        made here once sysfs is initialised."""
        if bus.registered:
            return
        bus.registered = True
        bus.sd = self.sysfs.mkdir_p(f"/devices/pci{bus.domain:04x}:{bus.number:02x}")
        bus.class_sd = self.sysfs.mkdir_p(f"{bus.sd.path()}/pci_bus/{bus.name}")
        self.files.pci_create_legacy_files(bus)

    def pci_scan_child_bus(self, bus: PciBus, slot: int | None = None) -> Path:
        """Models `pci_scan_child_bus()` → `pci_scan_slot()` →
        `pci_scan_single_device()`, drivers/probe.c, v6.1: every function present in a
        slot (only slot ``slot`` if given, as pciehp scans) and not yet known is read
        (BARs sized, firmware addresses kept) and `pci_device_add()`ed. Yields after
        each device_add: from then on the device is on the klist pci_sysfs_init walks."""
        for name in sorted(self.slots, key=lambda n: parse_bdf(n)):
            spec = self.slots[name].spec
            if spec is None or spec.bus_key != bus.key:
                continue
            if slot is not None and spec.address[2] >> 3 != slot:
                continue
            if any(d.name == spec.name for d in bus.devices):
                continue  # pci_get_slot found it: already enumerated
            dev = PciDev(spec, bus)
            self.pci_read_bases(dev)
            self.pci_device_add(dev)
            yield Point("pci_scan_child_bus: after pci_device_add", dev.name)

    def pci_read_bases(self, dev: PciDev) -> None:
        """Models `pci_read_bases()` / `__pci_read_base()`, drivers/pci/probe.c, v6.1: a
        BAR with a firmware address keeps it; one without is UNSET [0, size - 1]."""
        for i in range(PCI_STD_NUM_BARS):
            bar = dev.spec.bar(i)
            res = dev.resource[i]
            if bar is None:
                continue
            res.flags = bar.flags
            if bar.addr is not None:
                res.start, res.end = bar.addr, bar.addr + bar.size - 1
            else:
                res.flags |= IORESOURCE_UNSET
                res.start, res.end = 0, bar.size - 1
        if dev.spec.rom:
            rom = dev.resource[PCI_ROM_RESOURCE]
            rom.flags = IORESOURCE_MEM | IORESOURCE_SIZEALIGN | IORESOURCE_UNSET
            rom.start, rom.end = 0, dev.spec.rom - 1

    def pci_fixup_video(self, dev: PciDev) -> None:
        """Models `pci_fixup_video()`, arch/x86/pci/fixup.c, v6.1: the boot VGA device's
        ROM resource becomes the legacy shadow [0xC0000, 0xDFFFF] (ROM_SHADOW)."""
        if not dev.spec.vga:
            return
        rom = dev.resource[PCI_ROM_RESOURCE]
        if rom.parent is not None:
            self.resources.release_resource(rom)
        rom.start = VGA_SHADOW_ROM_START
        rom.end = VGA_SHADOW_ROM_START + VGA_SHADOW_ROM_SIZE - 1
        rom.flags = IORESOURCE_MEM | IORESOURCE_ROM_SHADOW | IORESOURCE_PCI_FIXED

    def pci_device_add(self, dev: PciDev) -> None:
        """Models `pci_device_add()` → `device_add()`, drivers/pci/probe.c +
        drivers/base/core.c, v6.1.

        HEADER fixups run first (since 66d28b21fe6b pci_fixup_video is one; on
        5.13–5.16 it was a FINAL fixup, ``profile.rom_visibility_at_device_add``). Then
        the device joins its bus list, gets its sysfs directory and its *static*
        attributes (whose visibility is decided now, B23), and joins the bus klist."""
        if not self.profile.rom_visibility_at_device_add:
            self.pci_fixup_video(dev)
        dev.bus.devices.append(dev)
        sd = self.sysfs.create_dir(dev.bus.sd or self.sysfs.mkdir_p("/devices"), dev.name)
        if isinstance(sd, int):
            self.log.emit(WARN, f"WARNING: pci_device_add: device_add failed ({sd})",
                          dev=dev.name)
            return
        dev.sd = sd
        dev.registered = True
        self.files.device_add_attrs(dev)
        self.klist.append(dev)
        dev.on_klist = True

    def pci_bus_add_devices(self, bus: PciBus) -> Path:
        """Models `pci_bus_add_devices()`, drivers/pci/bus.c, v6.1: every device on the
        bus list not yet "added" goes through pci_bus_add_device."""
        for dev in list(bus.devices):
            if dev.added or dev not in bus.devices:
                continue
            yield from self.pci_bus_add_device(dev)

    def pci_bus_add_device(self, dev: PciDev) -> Path:
        """Models `pci_bus_add_device()`, drivers/pci/bus.c, v6.1.

        FINAL fixups, then the dynamic sysfs files (only once ``sysfs_initialized``),
        the procfs entry, driver matching and probe — and the "added" flag **last**. The
        gap between device_add (klist) and this point is Pali's case 1 (B1)."""
        self._use(dev, "pci_bus_add_device")
        if self.profile.rom_visibility_at_device_add:
            self.pci_fixup_video(dev)
        yield Point("pci_bus_add_device: before pci_create_sysfs_dev_files", dev.name)
        self._use(dev, "pci_bus_add_device")
        yield from self.files.pci_create_sysfs_dev_files(dev)  # return value ignored
        yield Point("pci_bus_add_device: before pci_proc_attach_device", dev.name)
        self._use(dev, "pci_bus_add_device")
        yield from self.proc.pci_proc_attach_device(dev)
        dev.match_driver = True
        ret = yield from self.device_attach(dev)
        if ret < 0:
            self.log.emit(WARN, f"pci {dev.name}: device attach failed ({ret})",
                          dev=dev.name)
        self._use(dev, "pci_bus_add_device")
        dev.added = True

    # --- resource claiming and assignment ---------------------------------------------

    def _windows(self, bus: PciBus, io: bool) -> list[Resource]:
        """The root bus's windows of one type ("PCI Bus DDDD:BB" nodes, in address
        order); without any, the whole root (as x86 does without _CRS)."""
        root = self.resources.ioport_resource if io else self.resources.iomem_resource
        name = f"PCI Bus {bus.name}"
        found = [n for n in descendants(root) if n.name == name]
        if not found and bus.host == HOST_ASYNC:
            return []  # a DT host decodes only its own ranges
        return sorted(found, key=lambda r: r.start) or [root]

    def pci_claim_resource(self, dev: PciDev, i: int,
                           windows: list[Resource] | None = None) -> int:
        """Models `pci_claim_resource()`, drivers/pci/setup-res.c, v6.1: link a
        firmware-assigned BAR into the window containing it as a **non-busy** node.
        ``windows``: the bus's windows of the BAR's type when the caller has them."""
        res = dev.resource[i]
        io = bool(res.flags & IORESOURCE_IO)
        if windows is None:
            windows = self._windows(dev.bus, io)
        parent = next((w for w in windows
                       if w.start <= res.start and res.end <= w.end), None)
        if parent is None:
            self.log.emit(INFO, f"pci {dev.name}: can't claim BAR {i} {res!r}: no "
                          "compatible bridge window", dev=dev.name, bar=i)
            return -errno.EINVAL
        conflict = self.resources.request_resource_conflict(parent, res)
        if conflict is not None:
            self.log.emit(INFO, f"pci {dev.name}: can't claim BAR {i} {res!r}: address "
                          f"conflict with {conflict.name} {conflict!r}", dev=dev.name, bar=i)
            return -errno.EBUSY
        return 0

    @staticmethod
    def pcibios_align_resource(data: object, res: Resource, size: int, align: int) -> int:
        """Models `pcibios_align_resource()`, arch/x86/pci/i386.c, v6.1: I/O BARs avoid
        the ISA alias ranges (start & 0x300), memory BARs stay above 1 MiB."""
        start = res.start
        if res.flags & IORESOURCE_IO:
            if start & 0x300:
                start = (start + 0x3FF) & ~0x3FF
        elif res.flags & IORESOURCE_MEM and start < BIOS_END:
            start = BIOS_END
        return start

    def pci_assign_resource(self, dev: PciDev, i: int) -> int:
        """Models `pci_assign_resource()` → `pci_bus_alloc_resource()` →
        `pci_bus_alloc_from_region()` → `allocate_resource()`, drivers/pci/setup-res.c +
        bus.c, v6.1: the lowest free, size-aligned fit in the bus windows, as a non-busy
        node. A 64-bit BAR tries above 4 GiB first; a 32-bit one stays below; a
        non-prefetchable BAR never goes into a prefetchable window."""
        res = dev.resource[i]
        size = (res.end - res.start + 1) & U64_MAX
        io = bool(res.flags & IORESOURCE_IO)
        if io or dev.bus.host == HOST_ASYNC:
            # DT hosts translate bus addresses: the CPU window can sit above 4 GiB and
            # still serve 32-bit BARs.
            regions = [(0, U64_MAX)]
        elif res.flags & IORESOURCE_MEM_64:
            regions = [(FOUR_GIB, U64_MAX), (0, U64_MAX)]
        else:
            regions = [(0, FOUR_GIB - 1)]
        for lo, hi in regions:
            for window in self._windows(dev.bus, io):
                if window.flags & IORESOURCE_PREFETCH and not res.flags & IORESOURCE_PREFETCH:
                    continue
                avail_lo, avail_hi = max(window.start, lo), min(window.end, hi)
                if avail_lo > avail_hi:
                    continue
                # "min" is PCIBIOS_MIN_IO/MEM unless the window's own start overrides it.
                low = avail_lo or (PCIBIOS_MIN_IO if io else 0)
                if self.resources.allocate_resource(window, res, size, low, avail_hi, size,
                                                    self.pcibios_align_resource, dev) == 0:
                    res.flags &= ~IORESOURCE_UNSET
                    return 0
        res.flags |= IORESOURCE_UNSET
        res.start, res.end = 0, size - 1
        self.log.emit(INFO, f"pci {dev.name}: BAR {i}: failed to assign [size {size:#x}]",
                      dev=dev.name, bar=i)
        return -errno.ENOMEM

    def pci_assign_unassigned_bus_resources(self, bus: PciBus) -> None:
        """Models `pci_assign_unassigned_bus_resources()` / `pci_bus_assign_resources()`,
        drivers/pci/setup-bus.c, v6.1: every BAR of the bus's devices not linked into the
        tree is assigned, largest alignment first (`pdev_sort_resources`)."""
        todo = []
        for order, dev in enumerate(bus.devices):
            if not dev.registered:
                continue
            for i in range(PCI_STD_NUM_BARS):
                res = dev.resource[i]
                if dev.bar_len(i) and res.parent is None and res.flags & (
                        IORESOURCE_IO | IORESOURCE_MEM):
                    todo.append((-dev.bar_len(i), order, i, dev))
        for _size, _order, i, dev in sorted(todo, key=lambda t: t[:3]):
            self.pci_assign_resource(dev, i)

    def pcibios_resource_survey(self) -> int:
        """Models `pci_subsys_init()` → `pcibios_resource_survey()`, arch/x86/pci/i386.c,
        v6.1: claim the firmware-assigned BARs of the ACPI root buses as non-busy nodes;
        a BAR that cannot be claimed becomes UNSET and is reassigned at fs_initcall."""
        for key in sorted(self.buses):
            bus = self.buses[key]
            if bus.host != HOST_ACPI:
                continue
            # A claim only links one BAR (named after its device) under a window, and
            # nothing else runs meanwhile, so the bus's windows stay the same through
            # this loop: one tree walk per resource type instead of one per BAR.
            windows: dict[bool, list[Resource]] = {}
            for dev in bus.devices:
                for i in range(PCI_STD_NUM_BARS):
                    res = dev.resource[i]
                    if (not dev.bar_len(i) or res.parent is not None
                            or res.flags & IORESOURCE_UNSET):
                        continue
                    io = bool(res.flags & IORESOURCE_IO)
                    if io not in windows:
                        windows[io] = self._windows(bus, io)
                    if self.pci_claim_resource(dev, i, windows[io]):
                        size = dev.bar_len(i)
                        res.flags |= IORESOURCE_UNSET
                        res.start, res.end = 0, size - 1
        return 0

    def pcibios_assign_resources(self) -> int:
        """Models `pcibios_assign_resources()` (fs_initcall), arch/x86/pci/i386.c, v6.1 →
        `pci_assign_unassigned_resources()`: place every BAR still unassigned."""
        for key in sorted(self.buses):
            if self.buses[key].host == HOST_ACPI:
                self.pci_assign_unassigned_bus_resources(self.buses[key])
        return 0

    def pci_free_resources(self, dev: PciDev) -> None:
        """Models `pci_free_resources()`, drivers/pci/remove.c, v6.1: `release_resource()`
        of every resource with a parent — each leaves **with its subtree**, so busy
        claims still inside a BAR vanish with it."""
        for res in dev.resource:
            if res.parent is not None:
                self.resources.release_resource(res)
        self.broker.tree_changed(f"remove {dev.name}")

    # --- drivers -----------------------------------------------------------------------

    def _holder(self, dev: PciDev, drv: PciDriver) -> str:
        return f"driver {drv.name} {dev.name}"

    def pci_enable_device(self, dev: PciDev) -> int:
        """Models `pci_enable_resources()`, drivers/pci/setup-res.c, v6.1: every BAR
        with a length must be assigned and claimed."""
        for i in range(PCI_STD_NUM_BARS):
            res = dev.resource[i]
            if not dev.bar_len(i) or not res.flags & (IORESOURCE_IO | IORESOURCE_MEM):
                continue
            if res.flags & IORESOURCE_UNSET or res.parent is None:
                self.log.emit(INFO, f"pci {dev.name}: can't enable device: BAR {i} "
                              f"{res!r} not assigned", dev=dev.name, bar=i)
                return -errno.EINVAL
        return 0

    def pci_request_regions(self, dev: PciDev, drv: PciDriver) -> int:
        """Models `pci_request_regions()` → `__pci_request_region()`, drivers/pci/pci.c,
        v6.1: a busy region per BAR via `__request_region()` on iomem/ioport (which is
        where revoke_iomem runs); on any failure the earlier ones are released and the
        call fails with -EBUSY."""
        taken: list[tuple[Resource, int, int]] = []
        holder = self._holder(dev, drv)
        for i in range(PCI_STD_NUM_BARS):
            n = dev.bar_len(i)
            res = dev.resource[i]
            if not n:
                continue
            root = (self.resources.ioport_resource if res.flags & IORESOURCE_IO
                    else self.resources.iomem_resource)
            got = self.broker.request_region(root, res.start, n, drv.name, 0, holder)
            if not isinstance(got, Resource):
                self.log.emit(INFO, f"pci {dev.name}: BAR {i}: can't reserve {res!r}",
                              dev=dev.name, bar=i)
                for root2, start, size in reversed(taken):
                    self.broker.release_region(root2, start, size, holder)
                return -errno.EBUSY
            taken.append((root, res.start, n))
        dev.devres.extend(taken)
        return 0

    def really_probe(self, dev: PciDev, drv: PciDriver) -> Path:
        """Models `really_probe()` → `pci_device_probe()` → the driver's probe (enable,
        then claim its BARs unless it is a non-claiming driver), drivers/base/dd.c,
        v6.1. The caller holds the device lock. Returns 1 if bound, else -errno."""
        self._use(dev, "really_probe")
        ret = self.pci_enable_device(dev)
        if not ret and drv.claims:
            yield Point("probe: before pci_request_regions", f"{drv.name} {dev.name}")
            self._use(dev, "pci_device_probe")
            ret = self.pci_request_regions(dev, drv)
        if ret:
            # call_driver_probe(): the driver matched but its probe failed.
            self.log.emit(WARN, f"{drv.name}: probe of {dev.name} failed with error {ret}",
                          dev=dev.name, driver=drv.name, err=ret)
            return ret
        dev.driver = drv
        return 1

    def _match(self, dev: PciDev) -> PciDriver | None:
        name = dev.spec.driver
        return self.state.drivers.get(name) if name else None

    def device_attach(self, dev: PciDev) -> Path:
        """Models `device_attach()` → `__device_attach()`, drivers/base/dd.c, v6.1: under
        the device lock, bind the first registered driver matching the device.
        Returns 1 if bound, 0 if no driver matched or its probe failed."""
        yield from mutex_lock(self.sched, dev.lock, "device_attach")
        ret = 0
        drv = self._match(dev)
        if dev.driver is not None:
            ret = 1
        elif drv is not None and dev.match_driver and dev.registered:
            # really_probe() hands probe errors back as positive values, which
            # __device_attach_driver() turns into "no match": the device stays unbound
            # and device_attach() reports 0.
            ret = max(0, (yield from self.really_probe(dev, drv)))
        mutex_unlock(self.sched, dev.lock)
        return ret

    def driver_register(self, drv: PciDriver) -> Path:
        """Models `pci_register_driver()` → `driver_register()` → `driver_attach()`,
        drivers/base/bus.c + dd.c, v6.1: register, then probe every matching device
        already through pci_bus_add_device (``match_driver`` set)."""
        if not self.state.driver_core_ready:
            return -errno.EAGAIN
        if drv.name in self.state.drivers:
            return -errno.EBUSY
        self.state.drivers[drv.name] = drv
        for dev in list(self.klist):
            if dev.spec.driver != drv.name or not dev.match_driver:
                continue
            yield from mutex_lock(self.sched, dev.lock, "__driver_attach")
            if dev.driver is None and dev.registered:
                yield from self.really_probe(dev, drv)
            mutex_unlock(self.sched, dev.lock)
        return 0

    def register_builtin_drivers(self) -> Path:
        """Models the built-in PCI drivers' `module_init()` (device_initcall), v6.1, in
        name order: every driver some machine device names."""
        # The driver list is fixed when the initcall starts (the drivers are built in);
        # a device hot-removed while an earlier driver probes must not make a later
        # driver vanish, so read each driver's behaviour up front.
        drivers = {s.spec.driver: s.spec.claims for s in self.slots.values()
                   if s.spec is not None and s.spec.driver}
        for name in sorted(drivers):
            if name in self.state.drivers:
                continue
            yield from self.driver_register(PciDriver(name, drivers[name]))
        return 0

    def bind(self, dev: PciDev, drv: PciDriver) -> Path:
        """Models writing the device to /sys/bus/pci/drivers/<drv>/bind (the driver
        loaded with the device's id): `bind_store()` → `device_driver_attach()`,
        drivers/base/bus.c + dd.c, v6.1. -EBUSY if bound, -ENODEV if gone."""
        self.state.drivers.setdefault(drv.name, drv)
        drv = self.state.drivers[drv.name]
        yield from mutex_lock(self.sched, dev.lock, "device_driver_attach")
        if not dev.registered:
            ret = -errno.ENODEV
        elif dev.driver is not None:
            ret = -errno.EBUSY
        else:
            ret = yield from self.really_probe(dev, drv)
        mutex_unlock(self.sched, dev.lock)
        return 0 if ret > 0 else ret

    def _release_driver_locked(self, dev: PciDev) -> None:
        """Models `__device_release_driver()`: the driver's remove, then devres release:
        `__release_region()` of everything probe claimed (no revoke on release)."""
        drv = dev.driver
        if drv is None:
            return
        holder = self._holder(dev, drv)
        for root, start, n in reversed(dev.devres):
            self.broker.release_region(root, start, n, holder)
        dev.devres.clear()
        dev.driver = None

    def device_release_driver(self, dev: PciDev) -> Path:
        """Models `device_release_driver()`, drivers/base/dd.c, v6.1 (sysfs unbind,
        removal): under the device lock."""
        yield from mutex_lock(self.sched, dev.lock, "device_release_driver")
        self._release_driver_locked(dev)
        mutex_unlock(self.sched, dev.lock)
        return 0

    def unbind(self, dev: PciDev) -> Path:
        """Models writing to /sys/bus/pci/drivers/<drv>/unbind, v6.1: -ENODEV if no
        driver is bound."""
        if dev.driver is None:
            return -errno.ENODEV
        yield from self.device_release_driver(dev)
        return 0

    # --- removal -------------------------------------------------------------------------

    def pci_stop_dev(self, dev: PciDev) -> Path:
        """Models `pci_stop_dev()`, drivers/pci/remove.c, v6.1: only for an "added"
        device: unbind, procfs detach, remove the dynamic sysfs files (by name, pointers
        left stale), clear "added"."""
        if not dev.added:
            return
        yield from self.device_release_driver(dev)
        self.proc.pci_proc_detach_device(dev)
        yield from self.files.pci_remove_sysfs_dev_files(dev)
        dev.added = False

    def pci_destroy_dev(self, dev: PciDev) -> None:
        """Models `pci_destroy_dev()`, drivers/pci/remove.c, v6.1: `device_del()` (the
        sysfs directory goes with every file left in it; off the klist), off the bus
        list, `pci_free_resources()`, `put_device()`."""
        if not dev.registered:
            return
        dev.registered = False
        self.files.device_del_attrs(dev)
        if dev.sd is not None:
            self.sysfs.kernfs_remove(dev.sd)
        dev.sd = None
        if dev in self.klist:
            self.klist.remove(dev)
        dev.on_klist = False
        if dev in dev.bus.devices:
            dev.bus.devices.remove(dev)
        self.pci_free_resources(dev)
        self.pci_dev_put(dev)

    def pci_stop_and_remove_bus_device(self, dev: PciDev) -> Path:
        """Models `pci_stop_and_remove_bus_device()`, drivers/pci/remove.c, v6.1 (the
        caller holds the rescan lock)."""
        yield from self.pci_stop_dev(dev)
        yield Point("pci_stop_and_remove_bus_device: before pci_destroy_dev", dev.name)
        self.pci_destroy_dev(dev)
        return 0

    def remove(self, dev: PciDev) -> Path:
        """Models writing 1 to /sys/bus/pci/devices/<dev>/remove:
        `pci_stop_and_remove_bus_device_locked()`, v6.1. -ENODEV if already gone."""
        yield from mutex_lock(self.sched, self.rescan_remove_lock, "remove_store")
        ret = -errno.ENODEV
        if dev.registered:
            ret = yield from self.pci_stop_and_remove_bus_device(dev)
        mutex_unlock(self.sched, self.rescan_remove_lock)
        return ret

    # --- rescan and hotplug ----------------------------------------------------------------

    def pci_rescan_bus(self, bus: PciBus) -> Path:
        """Models `pci_rescan_bus()`, drivers/pci/probe.c, v6.1: scan for new functions,
        assign their BARs, bus-add them (caller holds the rescan lock)."""
        self.pci_register_host_bridge(bus)
        yield from self.pci_scan_child_bus(bus)
        self.pci_assign_unassigned_bus_resources(bus)
        yield from self.pci_bus_add_devices(bus)
        return 0

    def rescan(self) -> Path:
        """Models writing 1 to /sys/bus/pci/rescan (`rescan_store()`), drivers/pci/
        pci-sysfs.c, v6.1: every root bus rescanned under the rescan lock."""
        yield from mutex_lock(self.sched, self.rescan_remove_lock, "rescan_store")
        for key in sorted(self.buses):
            bus = self.buses[key]
            if bus.registered:
                yield from self.pci_rescan_bus(bus)
        mutex_unlock(self.sched, self.rescan_remove_lock)
        return 0

    def hot_add(self, spec: PciDeviceSpec) -> Path:
        """Models `pciehp_configure_device()`, drivers/pci/hotplug/pciehp_pci.c, v6.1,
        after a card is inserted into its slot — scan that
        slot, assign BARs, bus-add (every not-yet-added device of the bus), all under
        the rescan lock.

        -EBUSY if the slot is occupied. Before pcie_portdrv_init (device_initcall) no
        hotplug service runs: the device just sits in the slot until a scan finds it."""
        slot = self.slots.setdefault(spec.name, _Slot())
        if slot.spec is not None:
            return -errno.EBUSY
        slot.spec = spec
        if spec.driver and self.state.driver_core_ready:
            # Its driver module is loaded (udev's modprobe, or built in).
            self.state.drivers.setdefault(spec.driver, PciDriver(spec.driver, spec.claims))
        bus = self._bus(spec.bus_key, spec.host)
        if not self.state.pciehp_ready or not bus.registered:
            return 0
        yield from mutex_lock(self.sched, self.rescan_remove_lock, "pciehp_configure_device")
        yield from self.pci_scan_child_bus(bus, spec.address[2] >> 3)
        self.pci_assign_unassigned_bus_resources(bus)
        yield from self.pci_bus_add_devices(bus)
        mutex_unlock(self.sched, self.rescan_remove_lock)
        return 0

    def hot_remove(self, name: str) -> Path:
        """Models `pciehp_unconfigure_device()`, drivers/pci/hotplug/pciehp_pci.c, v6.1,
        after the card left its slot — stop and remove under the rescan lock.
        -ENODEV if the slot is empty."""
        slot = self.slots.get(name)
        if slot is None or slot.spec is None:
            return -errno.ENODEV
        spec = slot.spec
        slot.spec = None
        if not self.state.pciehp_ready:
            return 0  # no hotplug service yet: the kernel does not notice
        yield from mutex_lock(self.sched, self.rescan_remove_lock,
                              "pciehp_unconfigure_device")
        dev = self.find(spec.name)
        if dev is not None and dev.registered:
            yield from self.pci_stop_and_remove_bus_device(dev)
        mutex_unlock(self.sched, self.rescan_remove_lock)
        return 0

    # --- boot-time enumeration -----------------------------------------------------------

    def acpi_pci_root_add(self, bus: PciBus) -> Path:
        """Models `acpi_pci_root_add()` → `pci_acpi_scan_root()`, drivers/acpi/
        pci_root.c, v6.1 at boot: scan (device_add each function), then
        `pci_bus_add_devices()` under the rescan lock. BARs are claimed later, by
        pcibios_resource_survey."""
        self.pci_register_host_bridge(bus)
        yield from self.pci_scan_child_bus(bus)
        yield from mutex_lock(self.sched, self.rescan_remove_lock, "acpi_pci_root_add")
        yield from self.pci_bus_add_devices(bus)
        mutex_unlock(self.sched, self.rescan_remove_lock)
        return 0

    def acpi_scan_roots(self) -> Path:
        """Models the PCI part of `acpi_init()` (subsys_initcall), drivers/acpi/bus.c,
        v6.1: every ACPI root bus is added."""
        for key in sorted(self.buses):
            if self.buses[key].host == HOST_ACPI:
                yield from self.acpi_pci_root_add(self.buses[key])
        return 0

    def pci_host_probe(self, bus: PciBus) -> Path:
        """Models `pci_host_probe()`, drivers/pci/probe.c, v6.1, run from a host bridge
        driver's probe (DT controllers; vmd and hv_pci behave alike): scan, assign every
        BAR, `pci_bus_add_devices()` — **without** the rescan lock. -EBUSY if the host
        was already probed."""
        if bus.key in self.state.probed_hosts:
            return -errno.EBUSY
        self.state.probed_hosts.add(bus.key)
        self._host_windows(bus)
        self.pci_register_host_bridge(bus)
        yield from self.pci_scan_child_bus(bus)
        self.pci_assign_unassigned_bus_resources(bus)
        yield Point("pci_host_probe: before pci_bus_add_devices", bus.name)
        yield from self.pci_bus_add_devices(bus)
        return 0

    def _host_windows(self, bus: PciBus) -> None:
        """A DT host bridge requests the memory window its "ranges" describe
        (`devm_request_resource(&iomem_resource, ...)` in
        `pci_parse_request_of_pci_ranges()`). A machine that lists no "PCI Bus DDDD:BB"
        window for the bus gets the lowest free, naturally aligned 256 MiB above 4 GiB;
        its I/O space is not modelled (I/O BARs there stay unassigned)."""
        name = f"PCI Bus {bus.name}"
        if any(n.name == name for n in descendants(self.resources.iomem_resource)):
            return
        win = Resource(0, 0, name, IORESOURCE_MEM | IORESOURCE_WINDOW, 0)
        self.resources.allocate_resource(self.resources.iomem_resource, win,
                                         ASYNC_WINDOW_SIZE, FOUR_GIB, U64_MAX,
                                         ASYNC_WINDOW_SIZE)

    def async_buses(self) -> list[PciBus]:
        """Root buses enumerated by an async host probe, in bus order."""
        return [self.buses[k] for k in sorted(self.buses) if self.buses[k].host == HOST_ASYNC]

    # --- BAR resize ------------------------------------------------------------------------

    def pci_resize_resource(self, dev: PciDev, n: int, code: int) -> int:
        """Models `pci_resize_resource()` → `pci_do_resource_release_and_resize()`,
        drivers/pci/rebar.c + setup-bus.c, 6.1-deb: release every BAR of the device in
        the same window as BAR ``n``, set the new size (1 MiB << code), reassign; on
        failure restore the old placement."""
        if n not in dev.spec.rebar or not 0 <= code <= REBAR_MAX_CODE:
            return -errno.EINVAL
        res = dev.resource[n]
        window = res.parent
        saved = []
        for i in range(PCI_STD_NUM_BARS):
            r = dev.resource[i]
            if not dev.bar_len(i):
                continue
            if (r.parent is not window) if window is not None else (r.flags != res.flags):
                continue
            saved.append((i, r.start, r.end, r.flags))
            if r.parent is not None:
                self.resources.release_resource(r)
        res.end = res.start + (BIOS_END << code) - 1
        self.pci_assign_unassigned_bus_resources(dev.bus)
        self.broker.tree_changed(f"resize {dev.name}")
        if all(dev.resource[i].parent is not None for i, *_ in saved):
            return 0
        for i, start, end, flags in saved:
            r = dev.resource[i]
            if r.parent is not None:
                self.resources.release_resource(r)
            r.start, r.end, r.flags = start, end, flags
            self.pci_claim_resource(dev, i)
        return -errno.ENOSPC

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


def bar_specs(texts: dict[int, str]) -> tuple[BarSpec | None, ...]:
    """{index: "mem:0x1000"} -> a bars tuple for PciDeviceSpec (gaps are None)."""
    if not texts:
        return ()
    out: list[BarSpec | None] = [None] * (max(texts) + 1)
    for i, text in texts.items():
        out[i] = BarSpec.parse(text)
    return tuple(out)

