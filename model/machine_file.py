"""Machine files: a dump of a real system (``tools/capture-machine.sh``) as a Machine.

A machine file (format: docs/MACHINES.md) holds what a running system shows: its
``/proc/iomem`` and ``/proc/ioports`` as root reads them, and per PCI function the ids,
class, bound driver and every resource line of sysfs ``resource``. :func:`machine_from_dump`
turns that into the :class:`~iomemfuzz.model.machine.Machine` the model boots on:

* each device BAR (resource lines 0-5) becomes a firmware-assigned
  :class:`~iomemfuzz.model.pci.BarSpec`, and its node (named after the function) is taken
  out of the /proc text together with the driver claim under it: the PCI model puts both
  back when it enumerates the device and binds its driver, as the kernel did;
* everything else stays as /proc text: firmware and platform ranges, bridge windows
  ("PCI Bus 0000:01"), claimed expansion ROMs (resource line 6: the model does not claim
  ROMs at boot) and resources PCI quirks added beyond the BARs;
* a driver whose claims cover every BAR (named after it) is a claiming driver; a driver
  with no claims is a B13 driver (``claims=False``). Anything in between (a driver that
  claims some BARs, or names its claims otherwise, as virtio-pci's "virtio-pci-modern")
  cannot be told to the model: the device boots with a claiming driver and the difference
  is recorded in :attr:`MachineDump.lossy`.

Machines are found by :func:`load_machine`: the built-in names of model/machine.py, the
files shipped in ``model/machines/`` by base name, or ``file:PATH`` (relative paths
against the current directory). The same text always gives the same Machine object, which
keeps the executor's per-machine snapshot cache effective.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .ioport import (
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_MEM_64,
    IORESOURCE_PREFETCH,
    IORESOURCE_UNSET,
)
from .machine import MACHINES, Machine
from .pci import PCI_STD_NUM_BARS, BarSpec, PciDeviceSpec, parse_bdf

__all__ = [
    "FORMAT_VERSION", "MACHINE_DIR", "DeviceDump", "MachineDump", "MachineFileError",
    "load_dump", "load_machine", "machine_from_dump", "parse_machine_file",
    "shipped_machines",
]

FORMAT_VERSION = 1
MAGIC = "iomemfuzz-machine"
MACHINE_DIR = Path(__file__).resolve().parent / "machines"
SUFFIX = ".machine"
FILE_PREFIX = "file:"
PCI_ROM_LINE = 6
# PCI class codes (sysfs ``class``, 24 bits) that mark a VGA-compatible display device.
VGA_CLASS = 0x0300
_RANGE = re.compile(r"( *)([0-9a-f]+)-([0-9a-f]+) : (.*)")


class MachineFileError(ValueError):
    """A machine file that does not follow the format (message: file, line, why)."""


@dataclass(frozen=True, slots=True)
class DeviceDump:
    """One ``[pci BDF]`` section: what sysfs showed for the function."""

    bdf: str
    vendor: int = 0
    device: int = 0
    subsystem: tuple[int, int] = (0, 0)
    pci_class: int = 0
    revision: int = 0
    driver: str | None = None
    # (line index, start, end, flags) of every non-zero line of sysfs ``resource``.
    resources: tuple[tuple[int, int, int, int], ...] = ()

    def resource(self, index: int) -> tuple[int, int, int] | None:
        """(start, end, flags) of resource line ``index``, None if all zero."""
        for i, start, end, flags in self.resources:
            if i == index:
                return start, end, flags
        return None


@dataclass(frozen=True, slots=True)
class MachineDump:
    """A parsed machine file."""

    meta: tuple[tuple[str, str], ...]
    iomem: str
    ioports: str
    devices: tuple[DeviceDump, ...] = ()
    path: str = ""
    # What the model cannot reproduce of this dump (empty: the round trip is exact).
    lossy: tuple[str, ...] = ()

    def get(self, key: str, default: str = "") -> str:
        return next((v for k, v in self.meta if k == key), default)

    def get_all(self, key: str) -> tuple[str, ...]:
        return tuple(v for k, v in self.meta if k == key)

    @property
    def name(self) -> str:
        return self.get("name") or Path(self.path).stem


# --- parsing ----------------------------------------------------------------------------

def _int(text: str, where: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise MachineFileError(f"{where}: expected a number, got {text!r}") from None


def _device(bdf: str, fields: list[tuple[str, str, str]]) -> DeviceDump:
    values: dict[str, object] = {}
    resources = []
    for where, key, value in fields:
        words = value.split()
        if key == "resource":
            if len(words) != 4:
                raise MachineFileError(f"{where}: resource wants INDEX START END FLAGS")
            resources.append(tuple(_int(w, where) for w in words))
        elif key in ("vendor", "device", "class", "revision"):
            values[key] = _int(value, where) if value != "-" else 0
        elif key == "subsystem":
            values[key] = tuple(_int(w, where) if w != "-" else 0 for w in words[:2])
        elif key == "driver":
            values[key] = None if value in ("-", "") else value
        # Unknown keys are kept readable for people and ignored here (format 1 may grow).
    return DeviceDump(bdf, values.get("vendor", 0), values.get("device", 0),
                      values.get("subsystem", (0, 0)), values.get("class", 0),
                      values.get("revision", 0), values.get("driver"), tuple(resources))


def parse_machine_file(text: str, path: str = "<machine>") -> MachineDump:
    """Parse machine-file text (MachineFileError names the line of any problem)."""
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None or not lines[first].startswith(MAGIC):
        raise MachineFileError(f"{path}:1: not a machine file (want '{MAGIC} 1' first)")
    version = lines[first][len(MAGIC):].strip()
    if version != str(FORMAT_VERSION):
        raise MachineFileError(f"{path}:{first + 1}: format {version!r} is not supported "
                               f"(this iomemfuzz reads format {FORMAT_VERSION})")
    meta: list[tuple[str, str]] = []
    proc: dict[str, list[str]] = {"iomem": [], "ioports": []}
    devices: list[DeviceDump] = []
    section: str | None = None
    pci: tuple[str, list[tuple[str, str, str]]] | None = None
    seen: set[str] = set()

    def close_pci() -> None:
        if pci is not None:
            devices.append(_device(*pci))

    for lineno, line in enumerate(lines[first + 1:], first + 2):
        where = f"{path}:{lineno}"
        if line.startswith("["):
            if not line.endswith("]"):
                raise MachineFileError(f"{where}: section header without ']'")
            close_pci()
            pci = None
            section = line[1:-1].strip()
            if section.startswith("pci "):
                bdf = section[4:].strip()
                try:
                    parse_bdf(bdf)
                except ValueError:
                    raise MachineFileError(f"{where}: bad PCI address {bdf!r}") from None
                pci = (bdf, [])
            elif section not in ("machine", "iomem", "ioports"):
                raise MachineFileError(f"{where}: unknown section [{section}]")
            if section in seen:
                raise MachineFileError(f"{where}: section [{section}] repeated")
            seen.add(section)
            continue
        if section in ("iomem", "ioports"):
            if line.strip():
                if not _RANGE.fullmatch(line):
                    raise MachineFileError(f"{where}: expected 'START-END : NAME'")
                proc[section].append(line)
            continue
        if not line.strip() or line.startswith("#"):
            continue
        if section is None:
            raise MachineFileError(f"{where}: text before the first section")
        key, _, value = line.partition(" ")
        if pci is not None:
            pci[1].append((where, key, value.strip()))
        else:
            meta.append((key, value.strip()))
    close_pci()
    for name in ("machine", "iomem", "ioports"):
        if name not in seen:
            raise MachineFileError(f"{path}: no [{name}] section")
    dump = MachineDump(tuple(meta), "\n".join(proc["iomem"]) + "\n",
                       "\n".join(proc["ioports"]) + "\n", tuple(devices), path)
    return _with_lossy(dump)


# --- dump -> Machine --------------------------------------------------------------------

def _bar(start: int, end: int, flags: int) -> BarSpec | None:
    """A resource line as a BarSpec (None for lines that are not a memory or I/O BAR)."""
    if not flags & (IORESOURCE_IO | IORESOURCE_MEM):
        return None
    size = end - start + 1
    if size <= 0 or size & (size - 1):
        return None
    io = bool(flags & IORESOURCE_IO)
    assigned = not flags & IORESOURCE_UNSET and start != 0
    return BarSpec(size, io=io, prefetch=not io and bool(flags & IORESOURCE_PREFETCH),
                   is64=not io and bool(flags & IORESOURCE_MEM_64),
                   addr=start if assigned else None)


def _cut(text: str, wanted: dict[tuple[int, int, str], list[str]]) -> str:
    """``text`` without the lines keyed in ``wanted`` ((start, end, name)) and their
    subtrees; each removed line's direct children's names go into its list."""
    out: list[str] = []
    cutting: tuple[int, list[str]] | None = None  # (depth of the cut node, its children)
    for line in text.splitlines():
        m = _RANGE.fullmatch(line)
        if m is None:
            continue
        depth = len(m.group(1)) // 2
        if cutting is not None:
            if depth > cutting[0]:
                if depth == cutting[0] + 1:
                    cutting[1].append(line.strip())
                continue
            cutting = None
        key = (int(m.group(2), 16), int(m.group(3), 16), m.group(4))
        if key in wanted:
            cutting = (depth, wanted[key])
            continue
        out.append(line)
    return "".join(ln + "\n" for ln in out)


def _split(dump: MachineDump) -> tuple[str, str, dict[tuple[str, int], list[str]]]:
    """(iomem, ioports) without the device BARs, and the lines that were under each BAR."""
    under: dict[tuple[str, int], list[str]] = {}
    mem: dict[tuple[int, int, str], list[str]] = {}
    io: dict[tuple[int, int, str], list[str]] = {}
    for dev in dump.devices:
        for i, start, end, flags in dev.resources:
            if i >= PCI_STD_NUM_BARS:
                continue
            bar = _bar(start, end, flags)
            if bar is None or bar.addr is None:
                continue
            children: list[str] = []
            under[dev.bdf, i] = children
            (io if bar.io else mem)[start, end, dev.bdf] = children
    return _cut(dump.iomem, mem), _cut(dump.ioports, io), under


def _claims(dev: DeviceDump, under: dict[tuple[str, int], list[str]]) -> bool | str:
    """True: the driver claimed every assigned BAR under its own name; False: nothing
    is claimed; otherwise why the model cannot express the claims."""
    bars = [(i, s, e, f) for i, s, e, f in dev.resources if (dev.bdf, i) in under]
    if not any(under[dev.bdf, i] for i, _s, _e, _f in bars):
        return False
    for i, start, end, flags in bars:
        width = 4 if flags & IORESOURCE_IO else 8
        whole = f"{start:0{width}x}-{end:0{width}x} : "
        kids = under[dev.bdf, i]
        if dev.driver is None:
            return f"BAR{i} is claimed ({'; '.join(kids)}) but no driver is bound"
        if not kids:
            return f"{dev.driver} claims some BARs but not BAR{i}"
        if len(kids) != 1 or not kids[0].startswith(whole):
            return f"BAR{i} is claimed in parts ({'; '.join(kids)})"
        if kids[0] != whole + dev.driver:
            return (f"BAR{i} is claimed as {kids[0][len(whole):]!r}, not under the driver's "
                    f"name {dev.driver!r}")
    return True


def _spec(dev: DeviceDump, claims: bool | str) -> PciDeviceSpec:
    bars: list[BarSpec | None] = [None] * PCI_STD_NUM_BARS
    for i, start, end, flags in dev.resources:
        if i < PCI_STD_NUM_BARS:
            bars[i] = _bar(start, end, flags)
    while bars and bars[-1] is None:
        bars.pop()
    rom = dev.resource(PCI_ROM_LINE)
    rom_size = rom[1] - rom[0] + 1 if rom is not None else 0
    if rom_size & (rom_size - 1):
        rom_size = 0
    return PciDeviceSpec(dev.bdf, tuple(bars), rom=rom_size,
                         vga=dev.pci_class >> 8 == VGA_CLASS, driver=dev.driver,
                         claims=claims is not False)


def _with_lossy(dump: MachineDump) -> MachineDump:
    _iomem, _ioports, under = _split(dump)
    lossy = []
    for dev in dump.devices:
        claims = _claims(dev, under)
        if isinstance(claims, str):
            lossy.append(f"{dev.bdf}: {claims}")
    return MachineDump(dump.meta, dump.iomem, dump.ioports, dump.devices, dump.path,
                       tuple(lossy))


def machine_from_dump(dump: MachineDump) -> Machine:
    """The Machine a dump describes (see the module docstring for what goes where)."""
    iomem, ioports, under = _split(dump)
    specs = tuple(_spec(dev, _claims(dev, under)) for dev in dump.devices)
    description = dump.get("description") or "; ".join(dump.get_all("note")) or \
        f"captured on {dump.name}"
    phys_bits = dump.get("phys-bits")
    kwargs = {"phys_bits": int(phys_bits)} if phys_bits.isdigit() else {}
    return Machine(dump.name, f"{description} (kernel {dump.get('kernel', '?')})", iomem,
                   ioports, specs, **kwargs)


# --- finding machines -------------------------------------------------------------------

def shipped_machines() -> dict[str, Path]:
    """Base name -> path of every machine file shipped in model/machines/."""
    if not MACHINE_DIR.is_dir():
        return {}
    return {p.name[:-len(SUFFIX)]: p for p in sorted(MACHINE_DIR.glob("*" + SUFFIX))}


@lru_cache(maxsize=64)
def _load_text(text: str, path: str) -> tuple[MachineDump, Machine]:
    dump = parse_machine_file(text, path)
    return dump, machine_from_dump(dump)


def _path_of(spec: str) -> Path:
    if spec.startswith(FILE_PREFIX):
        return Path(spec[len(FILE_PREFIX):]).expanduser()
    shipped = shipped_machines()
    if spec in shipped:
        return shipped[spec]
    known = sorted([*MACHINES, *shipped])
    raise KeyError(f"unknown machine {spec!r} (known: {', '.join(known)}; or file:PATH)")


def load_dump(spec: str) -> MachineDump:
    """The parsed machine file ``spec`` names (a shipped base name or ``file:PATH``)."""
    path = _path_of(spec)
    return _load_text(path.read_text(encoding="utf-8"), str(path))[0]


def load_machine(spec: str) -> Machine:
    """The Machine a ``# machine:`` header value names: a built-in name, a shipped
    machine file's base name, or ``file:PATH``. KeyError for an unknown name; OSError or
    MachineFileError for a file that cannot be read."""
    if spec in MACHINES:
        return MACHINES[spec]
    path = _path_of(spec)
    return _load_text(path.read_text(encoding="utf-8"), str(path))[1]
