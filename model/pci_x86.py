"""What arch/x86/pci adds to the PCI core: i386.c's boot-time claiming and assignment
initcalls, and fixup.c's VGA ROM fixup.

Functions take the :class:`~iomemfuzz.model.pci_core.PciCore` first (see pci_core's
docstring for the layout). i386.c's ``pcibios_align_resource`` hook is in
pci_setup_res.py, beside the setup-res.c code that calls it.
"""

from __future__ import annotations

from iomemfuzz.model.ioport import IORESOURCE_IO, IORESOURCE_MEM, IORESOURCE_UNSET, Resource
from iomemfuzz.model.pci_core import (
    IORESOURCE_PCI_FIXED,
    IORESOURCE_ROM_SHADOW,
    PCI_ROM_RESOURCE,
    PciCore,
    PciDev,
)
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

def pcibios_assign_resources(pci: PciCore) -> int:
    """Models `pcibios_assign_resources()` (fs_initcall), arch/x86/pci/i386.c, v6.1 →
    `pci_assign_unassigned_resources()`: place every BAR still unassigned."""
    for key in sorted(pci.buses):
        if pci.buses[key].host == HOST_ACPI:
            pci_assign_unassigned_bus_resources(pci, pci.buses[key])
    return 0


def pcibios_resource_survey(pci: PciCore) -> int:
    """Models `pcibios_resource_survey()`, arch/x86/pci/i386.c, v6.1 (from
    `pci_subsys_init()`): claim the firmware-assigned BARs of the ACPI root buses as
    non-busy nodes; a BAR that cannot be claimed becomes UNSET and is reassigned at
    fs_initcall."""
    for key in sorted(pci.buses):
        bus = pci.buses[key]
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
                    windows[io] = bus_windows(pci, bus, io)
                if pci_claim_resource(pci, dev, i, windows[io]):
                    size = dev.bar_len(i)
                    res.flags |= IORESOURCE_UNSET
                    res.start, res.end = 0, size - 1
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
