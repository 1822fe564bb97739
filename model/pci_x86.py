"""What arch/x86/pci adds to the PCI core: i386.c's boot-time claiming and assignment
initcalls, and fixup.c's VGA ROM fixup.

Functions take the :class:`~iomemfuzz.model.pci_core.PciCore` first (see pci_core's
docstring for the layout). i386.c's ``pcibios_align_resource`` hook is in
pci_setup_res.py, beside the setup-res.c code that calls it.
"""

from __future__ import annotations

from iomemfuzz.model.ioport import (
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_PCI_FIXED,
    IORESOURCE_ROM_ENABLE,
    IORESOURCE_ROM_SHADOW,
    Resource,
)
from iomemfuzz.model.pci_core import PCI_ROM_RESOURCE, PciBus, PciCore, PciDev
from iomemfuzz.model.pci_setup_res import (
    bus_windows,
    pci_assign_unassigned_bus_resources,
    pci_claim_resource,
)
from iomemfuzz.model.pci_spec import HOST_ACPI, PCI_STD_NUM_BARS

# The legacy VGA shadow ROM pci_fixup_video points a boot VGA device's ROM at.
VGA_SHADOW_ROM_START = 0xC0000
VGA_SHADOW_ROM_SIZE = 0x20000


# --- arch/x86/pci/i386.c ----------------------------------------------------------------

def pcibios_allocate_rom_resources(pci: PciCore, bus: PciBus) -> None:
    """Models `pcibios_allocate_rom_resources()` → `pcibios_allocate_dev_rom_resource()`,
    arch/x86/pci/i386.c, v6.1: each ROM firmware placed (a non-zero address) and not yet
    claimed is claimed where it is, as a non-busy node named after its device; one that
    cannot be is rebased to [0, size - 1] for assignment to place."""
    windows = bus_windows(pci, bus, False)
    for dev in bus.devices:
        rom = dev.resource[PCI_ROM_RESOURCE]
        if not rom.flags or not rom.start or rom.parent is not None:
            continue
        if pci_claim_resource(pci, dev, PCI_ROM_RESOURCE, windows) < 0:
            rom.end -= rom.start
            rom.start = 0


def pcibios_assign_resources(pci: PciCore) -> int:
    """Models `pcibios_assign_resources()` (fs_initcall), arch/x86/pci/i386.c, v6.1:
    claim the ROMs firmware placed (no ``pci=rom``), then
    `pci_assign_unassigned_resources()` places every BAR and ROM still unassigned
    (largest alignment first, pci_setup_res.py), and `pcibios_fw_addr_list_del()`
    forgets the firmware addresses of failed claims."""
    for key in sorted(pci.buses):
        if pci.buses[key].host == HOST_ACPI:
            pcibios_allocate_rom_resources(pci, pci.buses[key])
    for key in sorted(pci.buses):
        if pci.buses[key].host == HOST_ACPI:
            pci_assign_unassigned_bus_resources(pci, pci.buses[key])
    for dev in pci.devices():
        dev.fw_addr.clear()
    return 0


def pcibios_allocate_dev_resources(pci: PciCore, dev: PciDev, passno: int,
                                   windows: dict[bool, list[Resource]]) -> None:
    """Models `pcibios_allocate_dev_resources()`, arch/x86/pci/i386.c, v6.1: pass 0 claims
    the BARs of a type the function decodes (its command register), pass 1 the others;
    both skip BARs already linked and BARs at address 0 (never assigned). A BAR that
    cannot be claimed keeps its firmware address for `pci_revert_fw_address()` and is
    rebased to [0, size - 1] for fs_initcall to place. Pass 0 also turns off a ROM left
    enabled, without claiming it."""
    for i in range(PCI_STD_NUM_BARS):
        res = dev.resource[i]
        if res.parent is not None or not res.start or not res.flags:
            continue
        io = bool(res.flags & IORESOURCE_IO)
        if passno != (not dev.hw.decodes(io)):
            continue
        if io not in windows:
            windows[io] = bus_windows(pci, dev.bus, io)
        if pci_claim_resource(pci, dev, i, windows[io]) < 0 and not (
                res.flags & IORESOURCE_PCI_FIXED):
            dev.fw_addr[i] = res.start
            res.end -= res.start
            res.start = 0
    rom = dev.resource[PCI_ROM_RESOURCE]
    if passno == 0 and rom.flags & IORESOURCE_ROM_ENABLE:
        rom.flags &= ~IORESOURCE_ROM_ENABLE
        dev.hw.rom_enabled = False


def pcibios_resource_survey(pci: PciCore) -> int:
    """Models `pcibios_resource_survey()`, arch/x86/pci/i386.c, v6.1 (from
    `pci_subsys_init()`): claim the firmware-assigned BARs of the ACPI root buses as
    non-busy nodes, those of decoding functions first (pass 0, then pass 1 on every
    bus); a BAR that cannot be claimed is reassigned at fs_initcall."""
    buses = [pci.buses[key] for key in sorted(pci.buses) if pci.buses[key].host == HOST_ACPI]
    # A claim only links one BAR (named after its device) under a window, and nothing
    # else runs meanwhile, so each bus's windows stay the same through the survey: one
    # tree walk per bus and resource type instead of one per BAR.
    windows: dict[tuple[int, int], dict[bool, list[Resource]]] = {}
    for passno in (0, 1):
        for bus in buses:
            for dev in bus.devices:
                pcibios_allocate_dev_resources(pci, dev, passno,
                                               windows.setdefault(bus.key, {}))
    return 0


# --- arch/x86/pci/fixup.c ---------------------------------------------------------------

def pci_fixup_video(pci: PciCore, dev: PciDev) -> None:
    """Models `pci_fixup_video()`, arch/x86/pci/fixup.c, v6.1: the boot VGA device's
    ROM resource becomes the legacy shadow [0xC0000, 0xDFFFF] (ROM_SHADOW)."""
    if not dev.spec.vga:
        return
    rom = dev.resource[PCI_ROM_RESOURCE]
    if rom.parent is not None:
        pci.resources.release_resource(rom)
    rom.start = VGA_SHADOW_ROM_START
    rom.end = VGA_SHADOW_ROM_START + VGA_SHADOW_ROM_SIZE - 1
    rom.flags = IORESOURCE_MEM | IORESOURCE_ROM_SHADOW | IORESOURCE_PCI_FIXED
