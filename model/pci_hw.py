"""What a PCI function's own registers hold, which outlives the kernel's ``struct pci_dev``:
the command register's decode bits and the address in each BAR register.

The kernel only ever *writes* these (``pci_enable_resources()`` sets the decode bits,
``pci_update_resource()`` programs a BAR), and the function decodes whatever they say, whether
or not the kernel still has a ``pci_dev`` for it. That is the whole of issue 17's point 1:
``remove`` forgets the function but leaves it decoding its old addresses, a hot-added
function comes out of reset with decoding off until a probe or the sysfs ``enable`` file
enables it, and what a CPU access to a physical address reaches is decided here, not by
the kernel's resource tree.

Not kernel state: like :mod:`~iomemfuzz.model.pci_spec` this is the hardware, one object per
card in a slot (``PciSlot.hw``), made when the card powers on (with the machine) or is
hot-plugged, gone when it is pulled.
"""

from __future__ import annotations

from collections.abc import Iterator

from iomemfuzz.model.pci_spec import PCI_STD_NUM_BARS, PciDeviceSpec

# include/uapi/linux/pci_regs.h
PCI_COMMAND_IO = 0x1
PCI_COMMAND_MEMORY = 0x2
PCI_COMMAND_MASTER = 0x4
# Index of the expansion ROM BAR in ``PciHw.bars`` (the kernel's PCI_ROM_RESOURCE).
ROM_BAR = PCI_STD_NUM_BARS


class PciHw:
    """One function's config-space registers as far as decoding goes.

    ``command``: the PCI_COMMAND register (IO, MEMORY, MASTER bits). ``bars[i]``: the
    address BAR i (i < 6) or the ROM BAR (index 6) holds; 0 when never programmed (a
    function out of reset). ``sizes[i]``: the size BAR i decodes (0: not implemented),
    the spec's unless a Resizable BAR control changed it. ``rom_enabled``: the ROM BAR's
    enable bit."""

    __slots__ = ("bars", "command", "rom_enabled", "sizes", "spec")

    def __init__(self, spec: PciDeviceSpec, command: int, bars: list[int]) -> None:
        self.spec = spec
        self.command = command
        self.bars = bars
        self.sizes = [bar.size if (bar := spec.bar(i)) is not None else 0
                      for i in range(PCI_STD_NUM_BARS)] + [spec.rom]
        self.rom_enabled = False

    @classmethod
    def power_on(cls, spec: PciDeviceSpec) -> PciHw:
        """The function as firmware hands it to the kernel: every BAR firmware assigned
        programmed (SeaBIOS ``pci_bios_init_device()``, OVMF's PCI bus driver), and I/O
        and memory decoding on when ``spec.fw_decode`` says firmware enabled it. A
        function firmware assigned nothing is left off: there is nothing to decode."""
        bars = [0] * (PCI_STD_NUM_BARS + 1)
        assigned = False
        for i in range(PCI_STD_NUM_BARS):
            bar = spec.bar(i)
            if bar is not None and bar.addr is not None:
                bars[i] = bar.addr
                assigned = True
        if spec.rom_addr is not None:
            bars[ROM_BAR] = spec.rom_addr
        command = PCI_COMMAND_IO | PCI_COMMAND_MEMORY if spec.fw_decode and assigned else 0
        return cls(spec, command, bars)

    @classmethod
    def hot_plugged(cls, spec: PciDeviceSpec) -> PciHw:
        """A card inserted into a running machine: out of reset, the command register is
        0 (no decoding, no bus mastering) and no BAR is programmed; neither pciehp nor
        acpiphp writes PCI_COMMAND."""
        return cls(spec, 0, [0] * (PCI_STD_NUM_BARS + 1))

    def decodes(self, io: bool) -> bool:
        """Does the function answer I/O (``io``) or memory cycles at all?"""
        return bool(self.command & (PCI_COMMAND_IO if io else PCI_COMMAND_MEMORY))

    def windows(self, io: bool) -> Iterator[tuple[int, int, int]]:
        """(BAR, first, last address) of every BAR of one type the function decodes now.
        A BAR still at address 0 is left out: it was never programmed, and a decoder at
        physical 0 would shadow RAM (QEMU likewise maps no BAR at 0)."""
        if not self.decodes(io):
            return
        for i in range(PCI_STD_NUM_BARS):
            bar = self.spec.bar(i)
            if bar is None or bar.io != io or not self.bars[i] or not self.sizes[i]:
                continue
            yield i, self.bars[i], self.bars[i] + self.sizes[i] - 1

    def describe(self) -> str:
        """"mem+io", "mem", "io" or "off": what the command register decodes."""
        parts = [name for bit, name in ((PCI_COMMAND_MEMORY, "mem"), (PCI_COMMAND_IO, "io"))
                 if self.command & bit]
        return "+".join(parts) or "off"
