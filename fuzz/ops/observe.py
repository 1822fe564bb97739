"""Observation lines: what a kernel developer reads to check a PCI device's state — the
busy entries of /proc/iomem or /proc/ioports in a range (who claimed what), a device's
``driver`` link, its sysfs directory, its ``resource`` file. They change nothing.

Values are printed without spaces (Program text needs one word): entries as
``START-END:NAME`` joined by ``,`` with spaces in names written ``_``, file lists
joined by ``,``, a ``resource`` line's three fields joined by ``,``. ``none`` when there
is nothing; ENOENT when the file does not exist (a removed device has no directory, an
unbound one no ``driver`` link).
"""

from __future__ import annotations

from iomemfuzz.fuzz.ops import Context, Kind, Op, Outcome, arg, op, value_outcome
from iomemfuzz.fuzz.ops.pci import DEVS

FAMILY = "observe"
ENOENT = Outcome("ENOENT")


def _word(name: str | None) -> str:
    return "<BAD>" if name is None else name.replace(" ", "_").replace("#", "_")


def busy_text(entries: list[tuple[int, int, str | None]], width: int) -> str:
    """``read_busy``'s value for (start, end, name) entries in file order: addresses
    zero-padded to ``width`` hex digits (4 for the I/O port tree, else 8), or ``none``
    (``iomemfuzz confirm`` prints a real kernel's entries the same way)."""
    if not entries:
        return "none"
    return ",".join(f"{s:0{width}x}-{e:0{width}x}:{_word(n)}" for s, e, n in entries)


@op("read_busy", family=FAMILY)
class ReadBusy(Op):
    """The busy entries of /proc/iomem (``root=ioport``: /proc/ioports) that overlap
    [start, end], in file order, with their names: what drivers and firmware claimed
    there."""

    root: str = arg(Kind.CHOICE, "iomem", choices=("iomem", "ioport"))
    start: int = arg(Kind.ADDR, 0)
    end: int = arg(Kind.ADDR, 0xFFFFFFFF)

    def run(self, ctx: Context) -> Outcome:
        root = ctx.node(self.root)
        nodes = ctx.kernel.busy_entries(root, self.start, self.end)
        width = 4 if root.end < 0x10000 else 8  # type: ignore[attr-defined]
        return value_outcome(busy_text([(n.start, n.end, n.name) for n in nodes], width))


@op("read_driver", family=FAMILY)
class ReadDriver(Op):
    """readlink /sys/bus/pci/devices/DEV/driver: the bound driver's name (the link
    exists from just before the probe until unbind). ENOENT without one."""

    dev: str = arg(Kind.NAME, "0000:00:02.0", choices=DEVS)

    def run(self, ctx: Context) -> Outcome:
        dev = ctx.kernel.pci_device(self.dev)
        name = ctx.kernel.sysfs_driver_link(dev) if dev is not None else None
        return ENOENT if name is None else value_outcome(name)


@op("list_files", family=FAMILY)
class ListFiles(Op):
    """ls /sys/bus/pci/devices/DEV: every file of the device, sorted. ENOENT for a
    device that is gone."""

    dev: str = arg(Kind.NAME, "0000:00:02.0", choices=DEVS)

    def run(self, ctx: Context) -> Outcome:
        dev = ctx.kernel.pci_device(self.dev)
        if dev is None:
            return ENOENT
        return value_outcome(",".join(sorted(ctx.kernel.sysfs_files(dev))) or "none")


@op("read_resource", family=FAMILY)
class ReadResource(Op):
    """Line ``line`` of /sys/bus/pci/devices/DEV/resource (0-5 the BARs, 6 the ROM, 7-12
    the SR-IOV BARs): start, end and flags, each 0x%016x; ``eof`` past the last line.
    ENOENT for a device that is gone."""

    dev: str = arg(Kind.NAME, "0000:00:02.0", choices=DEVS)
    line: int = arg(Kind.INT, 0, hi=15)

    def run(self, ctx: Context) -> Outcome:
        dev = ctx.kernel.pci_device(self.dev)
        if dev is None:
            return ENOENT
        lines = ctx.kernel.sysfs_resource_file(dev)
        if self.line >= len(lines):
            return value_outcome("eof")
        return value_outcome(lines[self.line].replace(" ", ","))
