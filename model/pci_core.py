"""The PCI core's shared state: `struct pci_bus`, `struct pci_dev`, `struct pci_driver`,
the globals of drivers/pci, and :class:`PciCore`, the object every PCI module works on.

How the PCI model is laid out, and why. The kernel's drivers/pci is C: each file's
functions take the structures they work on, and call functions of other files that a
header declares. The model keeps that shape. This module is the "header and globals":
the structures, the bus klist, the root buses, the slots, the rescan/remove lock, the
registered drivers. Each kernel file is one module of functions that take the
:class:`PciCore` first, in that file's order: :mod:`~iomemfuzz.model.pci_probe`
(probe.c), :mod:`~iomemfuzz.model.pci_bus` (bus.c), :mod:`~iomemfuzz.model.pci_remove`
(remove.c), :mod:`~iomemfuzz.model.pci_setup_res` (setup-res.c, setup-bus.c, rebar.c),
:mod:`~iomemfuzz.model.pci_x86` (arch/x86/pci), :mod:`~iomemfuzz.model.pci_enable`
(pci.c: enable, disable, region requests), :mod:`~iomemfuzz.model.pci_driver`
(pci-driver.c: matching, the bus's probe and remove, new_id), whose drivers are the data
of :mod:`~iomemfuzz.model.pci_driver_table`, :mod:`~iomemfuzz.model.driver_core` (the
driver core's dd.c, bus.c and driver.c), :mod:`~iomemfuzz.model.pciehp_pci` and
:mod:`~iomemfuzz.model.acpi_pci_root` (who enumerates); a module modelling several files
has a section per file. A call from one kernel file into
another is an import of one module by another, so the import graph is the call graph
between kernel files, and tools/import_cycles.py keeps it free of cycles. Module
functions rather than mixins or per-file objects: a call names the file it goes to, as
in C, and there is no per-file object for kernel snapshots (fuzz/snapshot.py) to copy.
:class:`iomemfuzz.model.pci.Pci` is the facade the rest of the model holds: a PciCore
that wires in pci-sysfs.c and proc.c and offers the entry points (remove, rescan,
hot-add, bind, ...).

The driver core reaches PCI only through ``pci_bus_type`` (match, probe, remove), as dd.c
does in the kernel: :class:`PciBusCalls` here, which the facade wires to pci_driver.py.

pci-sysfs.c and proc.c sit *above* the core, as in the kernel, where they call core
functions (for_each_pci_dev, pci_rescan_bus) and the core calls them only through the
prototypes of drivers/pci/pci.h. Here those prototypes are :class:`PciSysfsCalls` and
:class:`PciProcCalls`; the facade plugs :class:`~iomemfuzz.model.pci_sysfs.PciSysfs`
and :class:`~iomemfuzz.model.pci_proc.PciProc` into them.

The kernel paths that race (spec §5.4, §6.3) are generators that yield where another
path's interleaving changes the outcome; :mod:`iomemfuzz.model.sched` runs them. The
locks are the kernel's: ``pci_rescan_remove_lock`` around hot-add, rescan and removal
(and ACPI boot enumeration), each device's ``device_lock`` around probe, unbind and BAR
resize, and **none** around an async host bridge probe (``pci_host_probe``, vmd, hv_pci):
that is what lets ``pci_sysfs_init`` and ``pci_bus_add_device`` meet (B1, B2).

Devices are described by :class:`~iomemfuzz.model.pci_spec.PciDeviceSpec`: what the
hardware is, not what the kernel made of it. A :class:`PciDev` is the kernel's
``struct pci_dev`` for one enumeration of a spec; a removed and rescanned device is a
new PciDev.

What the function itself holds (its command register and BAR registers) is
:class:`~iomemfuzz.model.pci_hw.PciHw`, one per card in a slot: it outlives the PciDev, so a
removed function keeps decoding where it last decoded, and what a physical address
reaches is read from it, not from the kernel's view.

Simplifications (each safe for the properties modelled): root buses only (no bridges,
so no bridge windows to resize); config space is not modelled beyond the ids, the
command register's decode bits and the BARs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from iomemfuzz.model.event import USE_AFTER_FREE, Log
from iomemfuzz.model.ioport import U64_MAX, Resource
from iomemfuzz.model.pci_hw import PciHw
from iomemfuzz.model.pci_spec import (
    HOST_ACPI,
    HOST_ASYNC,
    HOST_VMD,
    PCI_STD_NUM_BARS,
    PciDeviceSpec,
    PciId,
    parse_bdf,
    pci_name,
)
from iomemfuzz.model.profile import KernelProfile
from iomemfuzz.model.resource_tree import ResourceTree
from iomemfuzz.model.sched import Mutex, Path, Scheduler
from iomemfuzz.model.sysfs import KernfsNode, Sysfs

PCI_ROM_RESOURCE = 6
PCI_NUM_RESOURCES = 7

# Bus-specific IORESOURCE bits for PCI ROMs (include/linux/ioport.h, spec §1.2).
IORESOURCE_ROM_ENABLE = 0x1
IORESOURCE_ROM_SHADOW = 0x2
IORESOURCE_PCI_FIXED = 0x10


# What a driver's probe enables (PciDriver.enable).
ENABLE_ALL = "all"  # pci_enable_device(): memory and I/O decoding
ENABLE_MEM = "mem"  # pci_enable_device_mem(): memory only
ENABLE_MANAGED = "managed"  # pcim_enable_device(): both, undone by devres at detach
ENABLE_NONE = "none"  # the probe enables nothing


@dataclass(frozen=True, slots=True)
class PciDriver:
    """Models `struct pci_driver`, include/linux/pci.h, v6.1, with its probe and remove
    reduced to data (pci_driver.py runs them).

    ``id_table``: the static ids it binds. ``enable``: what probe enables (ENABLE_*).
    ``claims``: whether probe requests the BARs it uses (`pci_request_regions`; drivers
    that never do are B13), under the driver's name. ``io_devices``: device ids for which
    the driver uses its I/O BARs too (e1000_is_need_ioport); for any other device it
    enables and claims memory only. None: always both. ``probe_error``: the errno probe
    returns after whatever it enabled (vfio-pci with no IOMMU group: -EINVAL).
    ``known_devices``: the device ids probe can drive; a device it was matched to some
    other way (a dynamic id, driver_override) fails the probe with -EIO after the claim,
    which the unwind releases (e1000's MAC type lookup). None: any device."""

    name: str
    claims: bool = True
    id_table: tuple[PciId, ...] = ()
    enable: str = ENABLE_ALL
    io_devices: frozenset[int] | None = None
    probe_error: int = 0
    known_devices: frozenset[int] | None = None


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
        "driver_link",
        "driver_override",
        "enable_cnt",
        "fw_addr",
        "hw",
        "lock",
        "managed_enable",
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

    def __init__(self, spec: PciDeviceSpec, bus: PciBus, hw: PciHw | None = None) -> None:
        self.spec = spec
        self.bus = bus
        # The card's registers (config reads and writes go there); a removed card's
        # PciHw stays with its slot, a pulled card's with nothing.
        self.hw = hw if hw is not None else PciHw.hot_plugged(spec)
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
        self.enable_cnt = 0  # pci_enable_device() calls not yet undone
        self.managed_enable = False  # pcim_enable_device(): devres disables at detach
        self.driver_override: str | None = None
        self.driver_link: KernfsNode | None = None  # the "driver" symlink while it exists
        # pcibios_save_fw_addr(): BAR -> the firmware address a failed boot claim had.
        self.fw_addr: dict[int, int] = {}
        self.procent: object = None
        self.lock = Mutex(f"device_lock({self.name})")
        self.refcount = 1  # device_initialize
        self.released = False
        self.uaf_reported = False

    def bar_len(self, i: int) -> int:
        """Models `pci_resource_len()`, include/linux/pci.h, v6.1: 0 if the resource's
        end is 0."""
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
class PciSlot:
    """A physical slot: the card in it (None: empty) and that card's registers."""

    spec: PciDeviceSpec | None = None
    hw: PciHw | None = None


@dataclass(slots=True)
class PciState:
    """Globals of drivers/pci that are not per device."""

    driver_core_ready: bool = False  # pci_driver_init (postcore) registered the bus type
    pciehp_ready: bool = False  # pcie_portdrv_init (device) bound the hotplug service
    # The bus's driver list, in registration order (what device_attach walks).
    drivers: dict[str, PciDriver] = field(default_factory=dict)
    # Each registered driver's dynamic ids (new_id), in the order they were added.
    dynids: dict[str, list[PciId]] = field(default_factory=dict)
    # Each registered driver's klist of bound devices, in bind order.
    bound: dict[str, list[PciDev]] = field(default_factory=dict)
    drivers_autoprobe: bool = True  # /sys/bus/pci/drivers_autoprobe
    probed_hosts: set[tuple[int, int]] = field(default_factory=set)


class PciSysfsCalls(Protocol):
    """The pci-sysfs.c functions the PCI core calls (declared in drivers/pci/pci.h);
    :class:`~iomemfuzz.model.pci_sysfs.PciSysfs` implements them."""

    def device_add_attrs(self, dev: PciDev) -> None: ...

    def device_del_attrs(self, dev: PciDev) -> None: ...

    def pci_create_legacy_files(self, bus: PciBus, by: str) -> None: ...

    def pci_create_sysfs_dev_files(self, dev: PciDev) -> Path: ...

    def pci_remove_sysfs_dev_files(self, dev: PciDev) -> Path: ...


class PciProcCalls(Protocol):
    """The proc.c functions the PCI core calls (declared in drivers/pci/pci.h);
    :class:`~iomemfuzz.model.pci_proc.PciProc` implements them."""

    def pci_proc_attach_device(self, dev: PciDev) -> Path: ...

    def pci_proc_detach_device(self, dev: PciDev) -> None: ...


class PciBusCalls(Protocol):
    """What the driver core (driver_core.py) calls through ``pci_bus_type``: match,
    probe and remove (drivers/pci/pci-driver.c implements them, pci_driver.py models
    that; the facade plugs it in)."""

    def match(self, pci: PciCore, dev: PciDev, drv: PciDriver) -> bool: ...

    def probe(self, pci: PciCore, dev: PciDev, drv: PciDriver) -> Path: ...

    def remove(self, pci: PciCore, dev: PciDev) -> None: ...


class PciCore:
    """drivers/pci's shared state: the root buses, the klist of every registered
    device, the hardware in the slots, the registered drivers, the rescan/remove lock,
    and the sysfs/procfs halves (``files``, ``proc``) the facade plugs in."""

    # Set by the facade (iomemfuzz.model.pci.Pci) once the core exists.
    files: PciSysfsCalls
    proc: PciProcCalls
    bus_type: PciBusCalls

    def __init__(self, profile: KernelProfile, log: Log, resources: ResourceTree,
                 sysfs: Sysfs, sched: Scheduler, specs: tuple[PciDeviceSpec, ...] = (),
                 broker: RegionBroker | None = None) -> None:
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
        self.slots: dict[str, PciSlot] = {}
        for spec in specs:
            if spec.name in self.slots and self.slots[spec.name].spec is not None:
                raise ValueError(f"two devices at {spec.name}")
            if spec.present:
                self.slots[spec.name] = PciSlot(spec, PciHw.power_on(spec))
            else:
                self.slots[spec.name] = PciSlot()
            self.root_bus(spec.bus_key, spec.host)
        if not any(b.host == HOST_ACPI for b in self.buses.values()):
            self.root_bus((0, 0), HOST_ACPI)

    # --- lookups -----------------------------------------------------------------------

    def root_bus(self, key: tuple[int, int], host: str) -> PciBus:
        """The root bus ``key`` (domain, number), made on first use: the firmware
        describes every host bridge a machine has before anything enumerates it."""
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

    def hardware(self) -> Iterator[tuple[str, PciHw]]:
        """(slot name, registers) of every card in a slot, in slot order, whether or not
        the kernel has a device for it: what decodes physical addresses."""
        for name in sorted(self.slots, key=parse_bdf):
            hw = self.slots[name].hw
            if hw is not None:
                yield name, hw

    def async_buses(self) -> list[PciBus]:
        """Root buses enumerated by an async host probe, in bus order."""
        return [self.buses[k] for k in sorted(self.buses)
                if self.buses[k].host in (HOST_ASYNC, HOST_VMD)]

    def kasan_check(self, dev: PciDev, where: str) -> None:
        """A path touches ``dev``: KASAN's use-after-free report (a USE_AFTER_FREE
        event) if its last reference is gone, once per device."""
        if dev.released and not dev.uaf_reported:
            dev.uaf_reported = True
            self.log.emit(USE_AFTER_FREE, f"BUG: KASAN: use-after-free in {where}: "
                          f"pci_dev {dev.name}", where=where, object="pci_dev",
                          dev=dev.name)

    # --- references and the klist (pci-driver.c, search.c) ---------------------------

    def pci_dev_get(self, dev: PciDev) -> None:
        """Models `pci_dev_get()`, drivers/pci/pci-driver.c, v6.1."""
        dev.refcount += 1

    def pci_dev_put(self, dev: PciDev | None) -> None:
        """Models `pci_dev_put()`, drivers/pci/pci-driver.c, v6.1 → `pci_release_dev()`
        on the last reference."""
        if dev is None:
            return
        dev.refcount -= 1
        if dev.refcount == 0:
            dev.released = True

    def pci_get_device(self, start: PciDev | None) -> PciDev | None:
        """Models `pci_get_device()`, drivers/pci/search.c + lib/klist.c, v6.1, as
        for_each_pci_dev calls it (any vendor, any device): the next device on the bus
        klist after ``start`` (a new reference), dropping ``start``'s.

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
