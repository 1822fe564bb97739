"""What the hardware in a PCI slot is: BDF addresses, BARs as they decode, its ids, and
:class:`PciDeviceSpec`, the element type of ``Machine.pci_devices``; and
:class:`PciId`, the ``struct pci_device_id`` a driver's id table lists.

None of this is kernel state: a machine table, a Program's ``hotadd`` line and the
kernel model all describe devices with these values, and the kernel model turns one into
a ``struct pci_dev`` (:class:`iomemfuzz.model.pci_core.PciDev`) each time it enumerates
it. Kept apart from the PCI core so that the machine tables need nothing of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from iomemfuzz.model.ioport import (
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_MEM_64,
    IORESOURCE_PREFETCH,
    IORESOURCE_SIZEALIGN,
)

# A function has six standard BARs (include/uapi/linux/pci_regs.h).
PCI_STD_NUM_BARS = 6
# The low bits of a BAR register (include/uapi/linux/pci_regs.h).
PCI_BASE_ADDRESS_SPACE_IO = 0x01
PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04
PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08

# How a root bus is enumerated (spec §5.4, §6.3).
HOST_ACPI = "acpi"  # acpi_pci_root_add at subsys_initcall: bus_add under the rescan lock
HOST_ASYNC = "async"  # pci_host_probe from a (possibly async) driver probe (DT hosts)
# vmd_enable_domain(): Intel VMD scans, assigns and bus-adds its domain without the
# rescan lock on every kernel, where pci_host_probe() takes it since v6.12.
HOST_VMD = "vmd"
HOSTS = (HOST_ACPI, HOST_ASYNC, HOST_VMD)

# Ids a function gets when nothing names them: QEMU's PCI test device (pci-testdev,
# 1b36:0005), whose class is "other" (0xff). The class must not be 0x0000: the kernel
# never assigns the BARs of a classless function (__dev_sort_resources).
DEFAULT_VENDOR = 0x1B36
DEFAULT_DEVICE = 0x0005
DEFAULT_CLASS = 0xFF0000
# PCI_ANY_ID (include/linux/mod_devicetable.h): an id field that matches anything.
PCI_ANY_ID = 0xFFFFFFFF

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
    """Models `pci_name()`, include/linux/pci.h, v6.1 (the name `pci_setup_device()`
    gives the device): "0000:00:02.0"."""
    return f"{domain:04x}:{bus:02x}:{devfn >> 3:02x}.{devfn & 7:x}"


@lru_cache(maxsize=4096)
def _bdf_name(text: str) -> str:
    """pci_name() of the address ``text`` names. Cached like parse_bdf: every boot asks
    for the name of each machine device a dozen times (scan, device_add, sysfs, procfs)."""
    return pci_name(*parse_bdf(text))


# The smallest memory BAR and expansion ROM hardware can have: a memory BAR's low four
# bits are type bits, and the ROM BAR's address starts at bit 11.
MIN_MEM_BAR = 0x10
MIN_ROM_BAR = 0x800


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
        # A memory BAR register's low four bits are type bits, not address bits (PCI
        # Local Bus 3.0, 6.2.5.1): no device decodes less than 16 bytes, and the kernel's
        # sizing arithmetic (pci_resource_len() of a resource ending at 0) assumes as
        # much. I/O ranges of one byte exist: the legacy IDE quirk's 0x3f6.
        if not self.io and self.size < MIN_MEM_BAR:
            raise ValueError(f"BAR size {self.size:#x} below the smallest memory BAR "
                             f"({MIN_MEM_BAR:#x})")
        if self.io and (self.prefetch or self.is64):
            raise ValueError("an I/O BAR cannot be prefetchable or 64-bit")
        if self.addr is not None and self.addr % self.size:
            raise ValueError(f"BAR address {self.addr:#x} not aligned to {self.size:#x}")

    @property
    def flags(self) -> int:
        """The IORESOURCE flags `decode_bar()` / `__pci_read_base()` give the BAR's
        resource, with the BAR register's low type bits kept in the bus-specific byte
        (the I/O space bit 0x1, the 64-bit type 0x4, prefetchable 0x8), as sysfs
        ``resource`` prints them."""
        if self.io:
            return IORESOURCE_IO | IORESOURCE_SIZEALIGN | PCI_BASE_ADDRESS_SPACE_IO
        flags = IORESOURCE_MEM | IORESOURCE_SIZEALIGN
        if self.prefetch:
            flags |= IORESOURCE_PREFETCH | PCI_BASE_ADDRESS_MEM_PREFETCH
        if self.is64:
            flags |= IORESOURCE_MEM_64 | PCI_BASE_ADDRESS_MEM_TYPE_64
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
    ROM size (0: none) and ``rom_addr`` the address firmware programmed into the ROM BAR
    (None: none). ``vendor``/``device``/``sub_vendor``/``sub_device``/``pci_class`` are
    the config-space ids drivers match on (``pci_class`` is the 24-bit class code).
    ``fw_decode``: firmware left memory and I/O decoding on at hand-off (SeaBIOS does
    for every function it assigned; a function with no firmware-assigned BAR is left
    off whatever this says). ``vga``: a VGA-class device, whose ROM pci_fixup_video points at
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
    vendor: int = DEFAULT_VENDOR
    device: int = DEFAULT_DEVICE
    pci_class: int = DEFAULT_CLASS
    sub_vendor: int = 0
    sub_device: int = 0
    rom_addr: int | None = None
    fw_decode: bool = True

    def __post_init__(self) -> None:
        parse_bdf(self.bdf)
        if not (0 <= self.vendor <= 0xFFFF and 0 <= self.device <= 0xFFFF
                and 0 <= self.pci_class <= 0xFFFFFF):
            raise ValueError(f"{self.bdf}: ids out of range")
        if self.rom and (self.rom & (self.rom - 1) or self.rom < MIN_ROM_BAR):
            raise ValueError(f"{self.bdf}: ROM size {self.rom:#x} is not a power of two of "
                             f"at least {MIN_ROM_BAR:#x}")
        if self.rom_addr is not None and (not self.rom or self.rom_addr % self.rom):
            raise ValueError(f"{self.bdf}: ROM address {self.rom_addr:#x} without a ROM "
                             "of that alignment")
        if len(self.bars) > PCI_STD_NUM_BARS:
            raise ValueError(f"{self.bdf}: more than {PCI_STD_NUM_BARS} BARs")
        if self.host not in HOSTS:
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

    def id_text(self) -> str:
        """"8086:100e:020000": vendor, device and class, as a Program writes them."""
        return f"{self.vendor:04x}:{self.device:04x}:{self.pci_class:06x}"


def parse_ids(text: str) -> tuple[int, int, int | None]:
    """"8086:100e" or "8086:100e:020000" -> (vendor, device, class or None). ValueError
    if malformed."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"bad PCI ids {text!r} (want VVVV:DDDD[:CCCCCC])")
    vendor, device = int(parts[0], 16), int(parts[1], 16)
    cls = int(parts[2], 16) if len(parts) == 3 else None
    if not (0 <= vendor <= 0xFFFF and 0 <= device <= 0xFFFF
            and (cls is None or 0 <= cls <= 0xFFFFFF)):
        raise ValueError(f"PCI ids out of range in {text!r}")
    return vendor, device, cls


@dataclass(frozen=True, slots=True)
class PciId:
    """Models `struct pci_device_id`, include/linux/mod_devicetable.h, v6.1: one entry
    of a driver's id table or of its dynamic ids. PCI_ANY_ID fields match anything;
    the class matches under ``class_mask``. ``override_only``: the entry counts only
    for a device whose ``driver_override`` names the driver (vfio-pci's catch-all)."""

    vendor: int = PCI_ANY_ID
    device: int = PCI_ANY_ID
    subvendor: int = PCI_ANY_ID
    subdevice: int = PCI_ANY_ID
    pci_class: int = 0
    class_mask: int = 0
    override_only: bool = False

    def text(self) -> str:
        def f(v: int) -> str:
            return "*" if v == PCI_ANY_ID else f"{v:04x}"
        out = f"{f(self.vendor)}:{f(self.device)}"
        if self.class_mask:
            out += f":{self.pci_class:06x}/{self.class_mask:06x}"
        return out


def pci_match_one_id(pid: PciId, spec: PciDeviceSpec) -> bool:
    """Models `pci_match_one_id()`, drivers/pci/pci.h, v6.1: every id field is
    PCI_ANY_ID or equal to the device's, and the class agrees under the mask."""
    return ((pid.vendor == PCI_ANY_ID or pid.vendor == spec.vendor)
            and (pid.device == PCI_ANY_ID or pid.device == spec.device)
            and (pid.subvendor == PCI_ANY_ID or pid.subvendor == spec.sub_vendor)
            and (pid.subdevice == PCI_ANY_ID or pid.subdevice == spec.sub_device)
            and not (pid.pci_class ^ spec.pci_class) & pid.class_mask)


def bar_specs(texts: dict[int, str]) -> tuple[BarSpec | None, ...]:
    """{index: "mem:0x1000"} -> a bars tuple for PciDeviceSpec (gaps are None)."""
    if not texts:
        return ()
    out: list[BarSpec | None] = [None] * (max(texts) + 1)
    for i, text in texts.items():
        out[i] = BarSpec.parse(text)
    return tuple(out)

