"""Machines: the firmware and platform resources a kernel finds at boot, as /proc text.

A :class:`Machine` describes the hardware one program execution boots on: its
``/proc/iomem`` and ``/proc/ioports`` as the kernel prints them after boot *without* the
PCI device BARs (the PCI model creates those from ``pci_devices``), plus the PCI devices
themselves. Writing the resources as /proc text keeps machines readable and lets a dump from
a real host become a machine by pasting it.

``/proc`` text carries no flags, so :data:`IOMEM_NAME_FLAGS` / :data:`IOPORT_NAME_FLAGS`
give the flags and descriptor the kernel sets for each kind of name (e820, x86 setup, ACPI,
PCI, CXL, dax); anything unknown is taken as a driver's busy claim.

Boot speed matters (a fresh tree per program, thousands per second), so each text is parsed
once into an immutable shape (nested tuples) and :func:`build_tree` only instantiates
Resources from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .event import Log
from .ioport import (
    IORES_DESC_ACPI_NV_STORAGE,
    IORES_DESC_ACPI_TABLES,
    IORES_DESC_CRASH_KERNEL,
    IORES_DESC_CXL,
    IORES_DESC_NONE,
    IORES_DESC_PERSISTENT_MEMORY,
    IORES_DESC_PERSISTENT_MEMORY_LEGACY,
    IORES_DESC_RESERVED,
    IORES_DESC_SOFT_RESERVED,
    IORESOURCE_BUSY,
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_READONLY,
    IORESOURCE_SYSRAM_DRIVER_MANAGED,
    IORESOURCE_SYSTEM_RAM,
    IORESOURCE_TYPE_BITS,
    IORESOURCE_WINDOW,
    Resource,
)
from .pci_spec import PciDeviceSpec, bar_specs
from .profile import DEFAULT, KernelProfile
from .resource import MAX_IORES_LEVEL
from .resource_tree import ResourceTree

__all__ = [  # noqa: RUF022 - public API first, tables after
    "Machine", "MACHINES", "DEFAULT_MACHINE", "ProcIomemSyntaxError",
    "READS_ONES", "READS_ZEROS",
    "parse_proc_iomem", "render_proc_iomem", "shape", "build_tree", "build_resource_tree",
    "name_flags", "IOMEM_NAME_FLAGS", "IOPORT_NAME_FLAGS",
]

# One shape node: (start, end, name, flags, desc, children). Immutable, hashable, and what
# build_tree() instantiates; shape(root) gives the same form back from a live tree.
Shape = tuple[tuple[int, int, "str | None", int, int, "Shape"], ...]

_LOW_1M = 1 << 20
_BDF = r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]"
# ACPI device names as the driver core prints them: a 7-character EISA id or an 8-character
# ACPI id, then the instance ("PNP0103:00", "QEMU0002:00", "MSFT0101:00").
_ACPI_DEV = r"(?:[A-Z]{3}[0-9A-F]{4}|[A-Z0-9]{4}[0-9A-F]{4}):[0-9a-f]{2}"

# name (full match) -> flags, desc, extra flags when the node starts below 1 MiB.
# The last column is e820's do_mark_busy(): e820 entries below 1 MiB are always inserted
# busy; above it, reserved / soft reserved / persistent memory stay non-busy so that PCI
# and drivers can claim inside them. First matching row wins.
IOMEM_NAME_FLAGS: tuple[tuple[str, int, int, int], ...] = (
    # e820 (arch/x86/kernel/e820.c e820_type_to_string / _iomem_type / _iores_desc)
    ("System RAM", IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY, IORES_DESC_NONE, 0),
    ("ACPI Tables", IORESOURCE_MEM | IORESOURCE_BUSY, IORES_DESC_ACPI_TABLES, 0),
    ("ACPI Non-volatile Storage", IORESOURCE_MEM | IORESOURCE_BUSY,
     IORES_DESC_ACPI_NV_STORAGE, 0),
    ("Unusable memory", IORESOURCE_MEM | IORESOURCE_BUSY, IORES_DESC_NONE, 0),
    ("[Rr]eserved", IORESOURCE_MEM, IORES_DESC_RESERVED, IORESOURCE_BUSY),
    ("Soft Reserved", IORESOURCE_MEM, IORES_DESC_SOFT_RESERVED, IORESOURCE_BUSY),
    (r"Persistent Memory \(legacy\)", IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY_LEGACY,
     IORESOURCE_BUSY),
    ("Persistent Memory", IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY, IORESOURCE_BUSY),
    ("Unknown E820 type", IORESOURCE_MEM | IORESOURCE_BUSY, IORES_DESC_NONE, 0),
    # reserve_region_with_split(&iomem_resource, ..., "RAM buffer"): type of root | BUSY
    ("RAM buffer", IORESOURCE_MEM | IORESOURCE_BUSY, IORES_DESC_NONE, 0),
    # arch/x86/kernel/setup.c and probe_roms.c
    ("Kernel (code|rodata|data|bss)", IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY,
     IORES_DESC_NONE, 0),
    ("Crash kernel", IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY, IORES_DESC_CRASH_KERNEL, 0),
    ("(Video|System|Adapter|Extension) ROM",
     IORESOURCE_MEM | IORESOURCE_BUSY | IORESOURCE_READONLY, IORES_DESC_NONE, 0),
    ("Video RAM area", IORESOURCE_MEM | IORESOURCE_BUSY, IORES_DESC_NONE, 0),
    # APIC / HPET (io_apic.c, apic.c: busy; acpi/boot.c HPET: not busy)
    (r"IOAPIC \d+", IORESOURCE_MEM | IORESOURCE_BUSY, IORES_DESC_NONE, 0),
    ("Local APIC", IORESOURCE_MEM | IORESOURCE_BUSY, IORES_DESC_NONE, 0),
    (r"HPET \d+", IORESOURCE_MEM, IORES_DESC_NONE, 0),
    # PCI: host bridge windows (ACPI _CRS producers), MMCONFIG, device BARs
    (r"PCI Bus [0-9a-f]{4}:[0-9a-f]{2}", IORESOURCE_MEM | IORESOURCE_WINDOW,
     IORES_DESC_NONE, 0),
    (r"PCI MMCONFIG .*", IORESOURCE_MEM | IORESOURCE_BUSY, IORES_DESC_NONE, 0),
    (_BDF, IORESOURCE_MEM, IORES_DESC_NONE, 0),
    # platform / PNP device resources are inserted non-busy; pnp/system.c clears BUSY
    (_ACPI_DEV, IORESOURCE_MEM, IORES_DESC_NONE, 0),
    (r"pnp [0-9a-f]{2}:[0-9a-f]{2}", IORESOURCE_MEM, IORES_DESC_NONE, 0),
    # CXL (drivers/cxl/acpi.c windows, core/region.c regions) and dax
    (r"CXL Window \d+", IORESOURCE_MEM, IORES_DESC_CXL, 0),
    (r"region\d+", IORESOURCE_MEM, IORES_DESC_NONE, 0),
    # dax_hmem's platform device for a Soft Reserved range (inserted, not claimed)
    (r"hmem\.\d+", IORESOURCE_MEM, IORES_DESC_NONE, 0),
    # dax/kmem turns its device-dax claim into non-busy System RAM so that
    # add_memory_driver_managed() can put "System RAM (kmem)" under it.
    (r"dax\d+\.\d+", IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE, 0),
    (r"System RAM \(kmem\)",
     IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY | IORESOURCE_SYSRAM_DRIVER_MANAGED,
     IORES_DESC_NONE, 0),
)
# Anything else in iomem: a driver's request_mem_region().
IOMEM_DEFAULT_FLAGS = IORESOURCE_MEM | IORESOURCE_BUSY

IOPORT_NAME_FLAGS: tuple[tuple[str, int, int, int], ...] = (
    (r"PCI Bus [0-9a-f]{4}:[0-9a-f]{2}", IORESOURCE_IO | IORESOURCE_WINDOW, IORES_DESC_NONE,
     0),
    (_BDF, IORESOURCE_IO, IORES_DESC_NONE, 0),
    (_ACPI_DEV, IORESOURCE_IO, IORES_DESC_NONE, 0),
    (r"pnp [0-9a-f]{2}:[0-9a-f]{2}", IORESOURCE_IO, IORES_DESC_NONE, 0),
)
# Anything else in ioports: request_region() / request_resource() with BUSY (setup.c's
# standard_io_resources, ACPI PM blocks, drivers).
IOPORT_DEFAULT_FLAGS = IORESOURCE_IO | IORESOURCE_BUSY

# How a NULL name prints (r_show()).
_BAD_NAME = "<BAD>"


class ProcIomemSyntaxError(ValueError):
    """A /proc/iomem or /proc/ioports text that does not describe a resource tree."""

    def __init__(self, lineno: int, line: str, message: str) -> None:
        super().__init__(f"line {lineno}: {message}: {line!r}")
        self.lineno = lineno
        self.line = line


@lru_cache(maxsize=8)
def _compiled(table: tuple[tuple[str, int, int, int], ...]
              ) -> tuple[tuple[re.Pattern[str], int, int, int], ...]:
    return tuple((re.compile(pattern), flags, desc, low) for pattern, flags, desc, low in table)


def name_flags(name: str | None, start: int, io: bool) -> tuple[int, int]:
    """(flags, desc) the kernel gives a node called ``name`` starting at ``start``, from
    IOPORT_NAME_FLAGS (``io``) or IOMEM_NAME_FLAGS."""
    if name is not None:
        table = IOPORT_NAME_FLAGS if io else IOMEM_NAME_FLAGS
        for pattern, flags, desc, low in _compiled(table):
            if pattern.fullmatch(name):
                return (flags | low if start < _LOW_1M else flags), desc
    return (IOPORT_DEFAULT_FLAGS if io else IOMEM_DEFAULT_FLAGS), IORES_DESC_NONE


_LINE = re.compile(r"( *)([0-9a-f]+)-([0-9a-f]+) : (.*)")


@lru_cache(maxsize=256)
def _parse(text: str, root_start: int, root_end: int, io: bool) -> Shape:
    """Parse /proc text into a Shape under a root spanning [root_start, root_end]."""
    # Mutable nodes while parsing: [start, end, name, flags, desc, children-list].
    top: list[list] = []
    stack: list[list] = []  # open nodes, index = real depth
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.fullmatch(line)
        if m is None:
            raise ProcIomemSyntaxError(lineno, line, "expected 'START-END : NAME'")
        indent, start_hex, end_hex, name = m.groups()
        if len(indent) % 2 or len(indent) > 2 * MAX_IORES_LEVEL:
            raise ProcIomemSyntaxError(lineno, line, "indent must be 0-10 spaces, even")
        printed = len(indent) // 2
        start, end = int(start_hex, 16), int(end_hex, 16)
        flags, desc = name_flags(None if name == _BAD_NAME else name, start, io)
        node = [start, end, None if name == _BAD_NAME else name, flags, desc, []]
        if printed > len(stack):
            raise ProcIomemSyntaxError(lineno, line, "indented deeper than its parent")
        if printed < MAX_IORES_LEVEL:
            del stack[printed:]
        else:
            # Real depth >= MAX_IORES_LEVEL prints at the cap: a node inside the previous
            # capped node is its descendant (siblings never overlap), else pop outwards.
            while len(stack) > MAX_IORES_LEVEL and not (stack[-1][0] <= start
                                                        and end <= stack[-1][1]):
                stack.pop()
        if stack:
            parent_start, parent_end, siblings = stack[-1][0], stack[-1][1], stack[-1][5]
        else:
            parent_start, parent_end, siblings = root_start, root_end, top
        if start < parent_start or end > parent_end:
            raise ProcIomemSyntaxError(lineno, line, "not inside its parent")
        if start <= end:
            prev = next((s for s in reversed(siblings) if s[0] <= s[1]), None)
            if prev is not None and not prev[1] < start:
                raise ProcIomemSyntaxError(lineno, line,
                                           "overlaps or precedes its previous sibling")
        siblings.append(node)
        stack.append(node)
    return _freeze(top)


def _freeze(nodes: list[list]) -> Shape:
    return tuple((s, e, name, flags, desc, _freeze(kids)) for s, e, name, flags, desc, kids
                 in nodes)


def _instantiate(parent: Resource, nodes: Shape) -> None:
    """Link fresh Resources for ``nodes`` as ``parent``'s child list (which must be empty,
    or the nodes must all sort after it)."""
    prev = parent.child
    if prev is not None:
        while prev.sibling is not None:
            prev = prev.sibling
    for start, end, name, flags, desc, kids in nodes:
        res = Resource(start, end, name, flags, desc)
        res.parent = parent
        if prev is None:
            parent.child = res
        else:
            prev.sibling = res
        if kids:
            _instantiate(res, kids)
        prev = res


def _is_io(root: Resource) -> bool:
    return root.flags & IORESOURCE_TYPE_BITS == IORESOURCE_IO


def parse_proc_iomem(text: str, root: Resource) -> Resource:
    """Build the tree ``text`` describes under ``root`` (childless) and return ``root``.

    ``text`` is /proc/iomem or /proc/ioports output (kernel/resource.c r_show(), spec
    §2.15): nesting from the 2-space indent, capped at MAX_IORES_LEVEL (deeper nodes are
    placed by containment), flags and desc from the name tables (``root``'s type picks
    iomem or ioport), ``<BAD>`` read back as a NULL name. Raises ProcIomemSyntaxError for
    text that is not a well-formed tree inside ``root``."""
    if root.child is not None:
        raise ValueError("parse_proc_iomem: root already has children")
    _instantiate(root, _parse(text, root.start, root.end, _is_io(root)))
    return root


def render_proc_iomem(root: Resource, privileged: bool = True,
                      max_lines: int = 1 << 16) -> str:
    """Models `r_show()` / `r_next()` (/proc/iomem, /proc/ioports), kernel/resource.c, v6.1.

    Pre-order through the kernel's next_resource() (parent pointers), one line per node:
    indent 2 * depth with depth capped at MAX_IORES_LEVEL, hex width 4 when root.end <
    0x10000 else 8, NULL name as ``<BAD>``. Without CAP_SYS_ADMIN (``privileged`` False)
    every range reads 0-0. A cyclic tree would make the file endless; the model stops
    after ``max_lines`` lines."""
    width = 4 if root.end < 0x10000 else 8
    lines: list[str] = []
    p = root.child
    while p is not None and len(lines) < max_lines:
        depth = 0
        q: Resource | None = p
        while depth < MAX_IORES_LEVEL and q is not None and q.parent is not root:
            depth += 1
            q = q.parent
        start, end = (p.start, p.end) if privileged else (0, 0)
        name = _BAD_NAME if p.name is None else p.name
        lines.append(f"{'':{depth * 2}}{start:0{width}x}-{end:0{width}x} : {name}\n")
        if p.child is not None:
            p = p.child
            continue
        for _ in range(max_lines):
            if p.sibling is not None or p.parent is None:
                break
            p = p.parent
        p = p.sibling
    return "".join(lines)


def shape(root: Resource) -> Shape:
    """The tree under ``root`` as nested (start, end, name, flags, desc, children) tuples,
    following child/sibling pointers (a node seen twice is not followed again)."""
    seen: set[int] = set()

    def walk(node: Resource | None) -> Shape:
        out = []
        while node is not None and id(node) not in seen:
            seen.add(id(node))
            out.append((node.start, node.end, node.name, node.flags, node.desc,
                        walk(node.child)))
            node = node.sibling
        return tuple(out)

    return walk(root.child)


# What a CPU read of an address nothing decodes returns (Machine.unclaimed_read).
READS_ZEROS = "zeros"  # QEMU: unassigned_mem_read() returns 0, writes are dropped
READS_ONES = "all-ones"  # hardware: master abort / Unsupported Request completes as ~0


@dataclass(frozen=True, slots=True)
class Machine:
    """One bootable machine: firmware/platform resources as /proc text, and PCI devices.

    ``iomem``/``ioports`` are what /proc shows after boot minus PCI device BARs and
    firmware-placed ROMs (the PCI model claims both, as the kernel does). The elements
    of ``pci_devices`` are model/pci_spec.py's device specs (which also say whether
    firmware left each function decoding); this module only stores them.
    ``unclaimed_read``: what a read of an address no device decodes returns (a BAR of a
    function whose decoding is off included): READS_ZEROS on QEMU, READS_ONES on
    hardware."""

    name: str
    description: str
    iomem: str
    ioports: str
    pci_devices: tuple = ()
    # boot_cpu_data.x86_phys_bits: QEMU's default for its emulated CPUs.
    phys_bits: int = 40
    unclaimed_read: str = READS_ONES

    def iomem_shape(self) -> Shape:
        """The parsed iomem tree (cached per text)."""
        return _parse(self.iomem, 0, (1 << 64) - 1, False)

    def ioports_shape(self) -> Shape:
        """The parsed ioport tree (cached per text)."""
        return _parse(self.ioports, 0, 0xFFFF, True)


# --- what a physical address reaches ----------------------------------------------------

# Descriptors of memory that is not System RAM at boot but is memory all the same: the
# kernel may later online it (dax kmem, CXL regions) or hand it to a driver.
_MEMORY_DESCS = frozenset({IORES_DESC_SOFT_RESERVED, IORES_DESC_PERSISTENT_MEMORY,
                           IORES_DESC_PERSISTENT_MEMORY_LEGACY, IORES_DESC_CXL})


@dataclass(frozen=True, slots=True)
class PhysicalMap:
    """What the machine decodes at a physical address, apart from PCI devices' BARs: its
    memory (RAM, and the memory devices firmware describes: persistent, soft-reserved,
    CXL), and the platform's own decoders (firmware tables, ROMs, the APICs). Each is
    (start, end, name), in /proc/iomem order.

    It is the machine's, fixed at power-on: what the kernel later writes into its
    resource tree (a driver calling a range "System RAM", a window released) changes
    what the kernel believes, never what an address reaches."""

    memory: tuple[tuple[int, int, str], ...]
    platform: tuple[tuple[int, int, str], ...]

    def memory_at(self, addr: int) -> str | None:
        """The name of the memory range holding ``addr``, or None."""
        best = _smallest(self.memory, addr)
        return best[2] if best is not None else None

    def platform_at(self, addr: int) -> str | None:
        """The name of the platform decoder holding ``addr`` (the smallest), or None."""
        best = _smallest(self.platform, addr)
        return best[2] if best is not None else None


def _smallest(ranges: tuple[tuple[int, int, str], ...], addr: int
              ) -> tuple[int, int, str] | None:
    best: tuple[int, int, str] | None = None
    for start, end, name in ranges:
        if start <= addr <= end and (best is None or end - start < best[1] - best[0]):
            best = (start, end, name)
    return best


def physical_map_of(nodes: Shape) -> PhysicalMap:
    """The physical map of a machine whose boot-time /proc/iomem is ``nodes``: System RAM
    and the memory descriptors are memory (with everything nested in them: "Kernel
    code" is RAM too), bridge windows decode nothing themselves (their devices' BARs
    do), anything else is the platform's."""
    memory: list[tuple[int, int, str]] = []
    platform: list[tuple[int, int, str]] = []

    def walk(level: Shape, in_memory: bool) -> None:
        for start, end, name, flags, desc, children in level:
            is_memory = (flags & IORESOURCE_SYSTEM_RAM == IORESOURCE_SYSTEM_RAM
                         or desc in _MEMORY_DESCS)
            if is_memory and not in_memory:
                memory.append((start, end, name or "System RAM"))
            elif not (is_memory or in_memory or flags & IORESOURCE_WINDOW
                      or (name or "").startswith("PCI Bus")):
                platform.append((start, end, name or ""))
            walk(children, in_memory or is_memory)

    walk(nodes, False)
    return PhysicalMap(tuple(memory), tuple(platform))


@lru_cache(maxsize=64)
def physical_map(machine: Machine) -> PhysicalMap:
    """``machine``'s physical map (computed once per machine: a machine is immutable)."""
    return physical_map_of(machine.iomem_shape())


LAPIC = "Local APIC"  # arch/x86/kernel/apic/apic.c's lapic_resource


def build_tree(machine: Machine, tree: ResourceTree) -> ResourceTree:
    """Link ``machine``'s firmware and platform resources under ``tree``'s two roots (both
    must be empty) and return ``tree``. The nodes are not slab-allocated (e820 and setup
    resources come from memblock or static storage), so releasing them never frees."""
    if tree.iomem_resource.child is not None or tree.ioport_resource.child is not None:
        raise ValueError("build_tree: the resource tree is not empty")
    iomem = machine.iomem_shape()
    if not tree.profile.lapic_in_iomem:
        # lapic_insert_resource()'s insert fails on this kernel: the captured tree (taken
        # on a kernel where it worked) loses the node (KernelProfile.lapic_in_iomem).
        iomem = tuple(n for n in iomem if n[2] != LAPIC)
    _instantiate(tree.iomem_resource, iomem)
    _instantiate(tree.ioport_resource, machine.ioports_shape())
    return tree


def build_resource_tree(machine: Machine, profile: KernelProfile = DEFAULT,
                        log: Log | None = None) -> ResourceTree:
    """A fresh ResourceTree for ``profile`` holding ``machine``'s boot-time resources."""
    return build_tree(machine, ResourceTree(profile, log))


# --- the machines -----------------------------------------------------------------------

# QEMU/KVM q35 guest with OVMF, 4 GiB RAM (2 GiB below the 32-bit PCI hole), Debian 6.1
# kernel; PCI BARs removed (the PCI model adds them under the "PCI Bus 0000:00" windows).
_QEMU_Q35_IOMEM = """\
00000000-00000fff : Reserved
00001000-0009ffff : System RAM
000a0000-000bffff : PCI Bus 0000:00
000c0000-000c9bff : Video ROM
000ca000-000cadff : Adapter ROM
000cb000-000cb5ff : Adapter ROM
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-007fffff : System RAM
00800000-00807fff : ACPI Non-volatile Storage
00808000-0080afff : System RAM
0080b000-0080bfff : ACPI Non-volatile Storage
0080c000-0080ffff : System RAM
00810000-008fffff : ACPI Non-volatile Storage
00900000-7dd2dfff : System RAM
  2a000000-2b001ee7 : Kernel code
  2b200000-2b8b6fff : Kernel rodata
  2ba00000-2bcb54bf : Kernel data
  2c3f7000-2c7fffff : Kernel bss
7dd2e000-7e0adfff : Reserved
7e0ae000-7e0bdfff : ACPI Tables
7e0be000-7e13dfff : ACPI Non-volatile Storage
7e13e000-7eaf5fff : System RAM
7eaf6000-7eaf9fff : Reserved
7eafa000-7eafbfff : ACPI Non-volatile Storage
7eafc000-7fadffff : System RAM
7fae0000-7fffffff : Reserved
80000000-afffffff : PCI Bus 0000:00
b0000000-bfffffff : PCI MMCONFIG 0000 [bus 00-ff]
  b0000000-bfffffff : Reserved
c0000000-febfffff : PCI Bus 0000:00
fec00000-fec003ff : IOAPIC 0
fed00000-fed003ff : HPET 0
  fed00000-fed003ff : PNP0103:00
fed1c000-fed1ffff : Reserved
fee00000-fee00fff : Local APIC
ffc00000-ffffffff : Reserved
100000000-17fffffff : System RAM
380000000000-3807ffffffff : PCI Bus 0000:00
"""

_QEMU_Q35_IOPORTS = """\
0000-0cf7 : PCI Bus 0000:00
  0000-001f : dma1
  0020-0021 : pic1
  0040-0043 : timer0
  0050-0053 : timer1
  0060-0060 : keyboard
  0064-0064 : keyboard
  0070-0077 : rtc0
  0080-008f : dma page reg
  00a0-00a1 : pic2
  00c0-00df : dma2
  00f0-00ff : fpu
  03c0-03df : vga+
  03f8-03ff : serial
  0510-051b : QEMU0002:00
    0510-051b : fw_cfg_io
  0600-067f : pnp 00:05
    0600-0603 : ACPI PM1a_EVT_BLK
    0604-0605 : ACPI PM1a_CNT_BLK
    0608-060b : ACPI PM_TMR
    0620-062f : ACPI GPE0_BLK
0cf8-0cff : PCI conf1
0d00-ffff : PCI Bus 0000:00
"""

# The smallest machine that still has the shapes the spec talks about: low RAM, the legacy
# VGA hole as a window, RAM above 1 MiB with the kernel inside, one PCI window.
_MINIMAL_IOMEM = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000f0000-000fffff : System ROM
00100000-3fffffff : System RAM
  01000000-01bfffff : Kernel code
  01c00000-01ffffff : Kernel data
c0000000-febfffff : PCI Bus 0000:00
fee00000-fee00fff : Local APIC
"""

_MINIMAL_IOPORTS = """\
0000-0cf7 : PCI Bus 0000:00
  0060-0060 : keyboard
  0064-0064 : keyboard
0cf8-0cff : PCI conf1
0d00-ffff : PCI Bus 0000:00
"""

# The functions of that guest as `lspci -nv` shows them, with the ids and addresses OVMF
# assigned (so /proc/iomem after boot matches the real guest): std VGA (bochs-drm),
# virtio-net with its iPXE ROM in the gap below the VGA's BAR2, the ICH9 AHCI controller
# and SMBus. Firmware left every function decoding; every driver requests its regions.
_QEMU_Q35_PCI = (
    PciDeviceSpec("0000:00:01.0", bar_specs({0: "mem:0x1000000:pref@0xc0000000",
                                             2: "mem:0x1000@0xc1040000"}),
                  rom=0x10000, vga=True, driver="bochs-drm",
                  vendor=0x1234, device=0x1111, pci_class=0x030000),
    PciDeviceSpec("0000:00:02.0", bar_specs({1: "mem:0x1000@0xc1041000",
                                             4: "mem:0x4000:pref:64@0x380000000000"}),
                  rom=0x40000, rom_addr=0xC1000000, driver="virtio-pci",
                  vendor=0x1AF4, device=0x1000, pci_class=0x020000),
    PciDeviceSpec("0000:00:1f.2", bar_specs({4: "io:0x20@0x6040",
                                             5: "mem:0x1000@0xc1042000"}),
                  driver="ahci", vendor=0x8086, device=0x2922, pci_class=0x010601),
    PciDeviceSpec("0000:00:1f.3", bar_specs({4: "io:0x40@0x6000"}), driver="i801_smbus",
                  vendor=0x8086, device=0x2930, pci_class=0x0C0500),
)

# A server with CXL memory that firmware reports as Soft Reserved and that dax kmem has
# onlined: System RAM nested three levels under a non-RAM node (spec B18's shape). PCI
# device BARs left out (this machine has no PCI functions of its own).
_CXL_DAX_IOMEM = """\
00000000-00000fff : Reserved
00001000-0009ffff : System RAM
000a0000-000fffff : Reserved
  000a0000-000bffff : PCI Bus 0000:00
  000f0000-000fffff : System ROM
00100000-5d7fefff : System RAM
  3e000000-3f002a27 : Kernel code
  3f200000-3fa2dfff : Kernel rodata
  3fc00000-3ff3a9bf : Kernel data
  404be000-40dfffff : Kernel bss
5d7ff000-6dffefff : Reserved
6dfff000-6f5fefff : ACPI Non-volatile Storage
6f5ff000-6fffefff : ACPI Tables
6ffff000-6fffffff : System RAM
70000000-8fffffff : Reserved
  70000000-7fffffff : PCI MMCONFIG 0000 [bus 00-ff]
90000000-c7ffffff : PCI Bus 0000:00
fec00000-fec003ff : IOAPIC 0
fed00000-fed003ff : HPET 0
  fed00000-fed003ff : PNP0103:00
fee00000-fee00fff : Local APIC
ff000000-ffffffff : Reserved
100000000-207fffffff : System RAM
2080000000-407fffffff : Soft Reserved
  2080000000-407fffffff : hmem.0
    2080000000-407fffffff : dax1.0
      2080000000-407fffffff : System RAM (kmem)
"""

_ROWS: tuple[Machine, ...] = (
    Machine("qemu-q35", "QEMU/KVM q35 + OVMF guest, 4 GiB, Debian 6.1 kernel",
            _QEMU_Q35_IOMEM, _QEMU_Q35_IOPORTS, _QEMU_Q35_PCI, unclaimed_read=READS_ZEROS),
    # The same guest with an empty PCI bus: Programs that hot-add their own devices.
    Machine("qemu-q35-bare", "the qemu-q35 guest with no PCI functions present",
            _QEMU_Q35_IOMEM, _QEMU_Q35_IOPORTS, unclaimed_read=READS_ZEROS),
    Machine("minimal", "smallest realistic x86 layout (RAM, VGA hole, one PCI window)",
            _MINIMAL_IOMEM, _MINIMAL_IOPORTS),
    Machine("cxl-dax", "server with CXL memory onlined by dax kmem (System RAM nested "
            "under Soft Reserved)", _CXL_DAX_IOMEM, _MINIMAL_IOPORTS, phys_bits=46),
    # Only the two roots: the spec's hand-executed vectors (§8.3) start from this.
    Machine("empty", "no firmware resources at all (the spec's test-vector setting)", "", ""),
)

MACHINES: dict[str, Machine] = {m.name: m for m in _ROWS}
DEFAULT_MACHINE = MACHINES["qemu-q35"]
