"""A small PCI test rig: the model's subsystems wired by hand on a known window layout.

The unit tests of sched/sysfs/pci/pci_sysfs/boot use it so they do not depend on the
Machine tables; the Kernel wiring is tested separately.
"""

from __future__ import annotations

from dataclasses import dataclass

from iomemfuzz.model.boot import Boot
from iomemfuzz.model.event import Event, Log
from iomemfuzz.model.ioport import IORESOURCE_IO, IORESOURCE_MEM, IORESOURCE_WINDOW, Resource
from iomemfuzz.model.pci import HOST_ACPI, HOST_ASYNC, BarSpec, Pci, PciDeviceSpec
from iomemfuzz.model.profile import KernelProfile, resolve
from iomemfuzz.model.resource_tree import ResourceTree
from iomemfuzz.model.sched import Path, Scheduler, Task
from iomemfuzz.model.sysfs import Sysfs

# Root bus windows, as x86 ACPI _CRS would give them.
MEM32 = (0xC000_0000, 0xDFFF_FFFF)
MEM64 = (0x40_0000_0000, 0x7F_FFFF_FFFF)
IO = (0x1000, 0x7FFF)
ASYNC_MEM = (0xE000_0000, 0xE0FF_FFFF)  # domain 1's windows (an async host bridge)
ASYNC_IO = (0x8000, 0xFFFF)

# A device with the spec's D21 layout: BAR0 MEM 4 KiB, BAR2 MEM 1 MiB prefetchable,
# BAR4 I/O 0x20.
D21_BARS = (BarSpec(0x1000), None, BarSpec(0x100000, prefetch=True), None,
            BarSpec(0x20, io=True))


def dev(bdf: str, bars: tuple[BarSpec | None, ...] = D21_BARS, **kw: object) -> PciDeviceSpec:
    return PciDeviceSpec(bdf, bars, **kw)  # type: ignore[arg-type]


@dataclass
class Rig:
    profile: KernelProfile
    log: Log
    tree: ResourceTree
    sysfs: Sysfs
    sched: Scheduler
    pci: Pci
    boot: Boot

    def events(self, kind: str) -> list[Event]:
        return [e for e in self.log.events if e.kind == kind]

    def files(self, name: str) -> list[str]:
        d = self.pci.find(name)
        return self.sysfs.files(d.sd) if d is not None else []

    def resource_files(self, name: str) -> list[str]:
        return [f for f in self.files(name) if f.startswith("resource")
                and not f.endswith("_resize") and f != "resource"]

    def call(self, path: Path, name: str = "test") -> Task:
        return self.sched.call(path, name)

    def run(self, path: Path, name: str = "test") -> object:
        task = self.sched.call(path, name)
        assert task.done, task.describe()
        return task.result

    def step_until(self, task: Task, where: str, what: str = "") -> None:
        """Step ``task`` until it is parked at a Point whose text contains ``where``
        (and ``what``)."""
        for _ in range(10_000):
            self.sched.step(task)
            parked = str(task.parked)
            if task.done:
                raise AssertionError(f"{task.name} finished before {where!r}")
            if where in parked and what in parked:
                return
        raise AssertionError(f"{task.name} never reached {where!r}")


def make_rig(profile: str | KernelProfile = "v6.1-deb", specs: tuple[PciDeviceSpec, ...] = (),
             *, booted: bool = True) -> Rig:
    prof = resolve(profile)
    log = Log()
    tree = ResourceTree(prof, log)
    windows = [
        (tree.iomem_resource, MEM32, "PCI Bus 0000:00", IORESOURCE_MEM),
        (tree.iomem_resource, MEM64, "PCI Bus 0000:00", IORESOURCE_MEM),
        (tree.ioport_resource, IO, "PCI Bus 0000:00", IORESOURCE_IO),
    ]
    if any(s.host == HOST_ASYNC for s in specs):
        windows.append((tree.iomem_resource, ASYNC_MEM, "PCI Bus 0001:00", IORESOURCE_MEM))
        windows.append((tree.ioport_resource, ASYNC_IO, "PCI Bus 0001:00", IORESOURCE_IO))
    for root, (start, end), name, flags in windows:
        assert tree.request_resource(root, Resource(start, end, name,
                                                    flags | IORESOURCE_WINDOW, 0)) == 0
    sysfs = Sysfs(log)
    sched = Scheduler(log)
    tree.muxed_wake_hook = sched.muxed_wake
    pci = Pci(prof, log, tree, sysfs, sched, specs)
    boot = Boot(prof, log, sched, pci)
    rig = Rig(prof, log, tree, sysfs, sched, pci, boot)
    if booted:
        assert boot.boot_fully() == 0
    return rig


__all__ = ["D21_BARS", "HOST_ACPI", "HOST_ASYNC", "Rig", "dev", "make_rig"]
