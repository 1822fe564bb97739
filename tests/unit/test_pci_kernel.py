"""The PCI subsystems as the Kernel wires them: boot on a Machine's devices, driver
claims in the ledger, kernfs drain into the mm model, the iomem mapping hook, finish()."""

from __future__ import annotations

from dataclasses import replace

from iomemfuzz.fuzz.ledger import ledger, watched_kernel
from iomemfuzz.model.event import HANG, UNMAP
from iomemfuzz.model.ioport import IORESOURCE_BUSY, IORESOURCE_MUXED
from iomemfuzz.model.kernel import Kernel
from iomemfuzz.model.machine import DEFAULT_MACHINE
from iomemfuzz.model.pci import BarSpec, PciDeviceSpec
from iomemfuzz.model.profile import resolve
from iomemfuzz.model.resource_check import preorder

DEVICES = (
    PciDeviceSpec("00:01.0", (BarSpec(0x1000000, prefetch=True), None, BarSpec(0x1000)),
                  vga=True, driver="bochs-drm"),
    PciDeviceSpec("00:02.0", (BarSpec(0x40, io=True), BarSpec(0x1000), None, None,
                              BarSpec(0x4000, prefetch=True, is64=True)), driver="virtio-pci"),
    PciDeviceSpec("00:03.0", (BarSpec(0x1000),)),
)
MACHINE = replace(DEFAULT_MACHINE, name="q35-with-devices", pci_devices=DEVICES)


def kernel(profile: str = "v6.1-deb", *, booted: bool = True) -> Kernel:
    return watched_kernel(resolve(profile), MACHINE, booted)


def test_booted_kernel_has_devices_files_and_driver_claims_in_the_ledger():
    k = kernel()
    assert k.boot.done and [d.name for d in k.pci.devices()] == [
        "0000:00:01.0", "0000:00:02.0", "0000:00:03.0"]
    assert "rom" in k.sysfs.files(k.pci.find("00:01.0").sd)
    busy = [n for root in (k.resources.iomem_resource, k.resources.ioport_resource)
            for n, _d in preorder(root) if n.flags & IORESOURCE_BUSY
            and n.name in ("bochs-drm", "virtio-pci")]
    assert len(busy) == 5
    assert set(busy) <= ledger(k).believed_busy()
    assert k.finish() == []


def test_unbooted_kernel_boots_through_the_program():
    k = kernel(booted=False)
    assert k.boot.task is None and k.pci.devices() == []
    assert k.boot.boot_to("fs") == 0 and k.devmem.iomem_inode is not None
    assert k.finish() == [] and k.boot.done


def test_removing_a_resource_file_zaps_its_kernfs_mmaps_before_5_12():
    """spec §4.8: <= v5.11 the sysfs mmap hangs off the kernfs inode, so removal zaps
    it; from v5.12 it hangs off the iomem inode and removal zaps nothing."""
    for profile, zapped in (("v5.8", True), ("v6.1-deb", False)):
        k = kernel(profile)
        dev = k.pci.find("00:03.0")
        node = k.sysfs.lookup(f"{dev.path()}/resource0")
        file = k.pci_mmap.sysfs_open(k.mm.init_process(), node)
        vma = k.mm.mmap(file, 0, 1)
        assert not isinstance(vma, int)
        mark = len(k.log)
        task = k.sched.call(k.pci.remove(dev), "remove")
        assert task.done and task.result == 0
        unmaps = [e for e in k.log.since(mark) if e.kind == UNMAP]
        assert bool(unmaps) is zapped, profile


def test_mapping_is_captured_from_devmem_on_5_13():
    k = kernel("v5.13")
    attr = k.pci.find("00:03.0").res_attr[0]
    assert attr.mapping is k.devmem.iomem_inode and attr.mapping is not None


def test_muxed_wait_wakes_through_the_tree_hook_and_hangs_otherwise():
    k = kernel()
    tree = k.resources
    first = tree.request_muxed_region(0x2E, 2, "a")
    task = k.sched.spawn(tree.request_region_task(tree.ioport_resource, 0x2E, 2, "b",
                                                  IORESOURCE_MUXED), "b")
    assert k.sched.step(task) == "blocked"
    tree.release_region(first.start, 2)
    assert k.finish() == [] and task.result is not None
    stuck = kernel()
    stuck.resources.request_muxed_region(0x2E, 2, "a")
    stuck.sched.call(stuck.resources.request_region_task(
        stuck.resources.ioport_resource, 0x2E, 2, "b", IORESOURCE_MUXED), "b")
    assert len(stuck.finish()) == 1
    assert [e.kind for e in stuck.log.events if e.kind == HANG] == [HANG]
