"""What the hardware in a PCI slot is: BDF addresses, BARs as they decode, and
:class:`PciDeviceSpec`, the element type of ``Machine.pci_devices``.

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

# How a root bus is enumerated (spec §5.4, §6.3).
HOST_ACPI = "acpi"  # acpi_pci_root_add at subsys_initcall: bus_add under the rescan lock
HOST_ASYNC = "async"  # pci_host_probe from a (possibly async) driver probe: no lock

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


def bar_specs(texts: dict[int, str]) -> tuple[BarSpec | None, ...]:
    """{index: "mem:0x1000"} -> a bars tuple for PciDeviceSpec (gaps are None)."""
    if not texts:
        return ()
    out: list[BarSpec | None] = [None] * (max(texts) + 1)
    for i, text in texts.items():
        out[i] = BarSpec.parse(text)
    return tuple(out)

