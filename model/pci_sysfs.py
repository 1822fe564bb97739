"""PCI sysfs files: the static attribute groups of device_add, the dynamic resource files
of `pci_create_sysfs_dev_files()`, `pci_sysfs_init()`, BAR resize, legacy files, and the
``rescan`` and ``remove`` files.

pci-sysfs.c sits above the PCI core (pci_core.py), as in the kernel: it calls the core
(the klist walk, rescan, removal, BAR resize), and the core calls back only the
functions :class:`~iomemfuzz.model.pci_core.PciSysfsCalls` lists, which the facade
(pci.py) wires to a :class:`PciSysfs`.

Everything that differs between kernels is a profile field (spec §5.1, §5.5):

* ``dynamic_config_attrs`` (<= 5.12): ``config`` is the first dynamic file and ``rom``
  follows the resource files; a duplicate on ``config`` fails with no unwind at all;
* ``res_attr_store_after_create`` (6.1.3+ / 6.1-deb): ``pci_create_attr`` stores the
  pointer only once the file exists; before (v5.13–v6.1.2) the loser of a duplicate
  overwrites ``res_attr[k]`` with an attribute it then frees (immediate double free);
* ``static_resource_files`` (next-2026): resource files are static attributes made by
  device_add; there is no ``pci_sysfs_init`` and no ``sysfs_initialized``;
* ``mapping_at_open`` / ``revoke_pci_mmaps``: whether the attribute captures the iomem
  mapping when it is created (5.12–5.14), looks it up at open (5.15+), or neither;
* ``rom_visibility_at_device_add`` (5.13–5.16): see pci_probe.py's pci_device_add (B23);
* ``resize_attr`` (v6.1+): the ``resourceN_resize`` files exist.

The pointer slots ``res_attr[]``/``res_attr_wc[]`` are never NULLed after a free, as in
every kernel up to at least v7.1; what follows from that (B1, B3) is not patched here,
it is what the model predicts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from iomemfuzz.model import errno
from iomemfuzz.model.event import INFO, WARN, Log
from iomemfuzz.model.ioport import IORESOURCE_IO, IORESOURCE_PREFETCH
from iomemfuzz.model.pci_core import PCI_ROM_RESOURCE, PciBus, PciCore, PciDev
from iomemfuzz.model.pci_probe import pci_rescan_bus
from iomemfuzz.model.pci_remove import pci_stop_and_remove_bus_device_locked
from iomemfuzz.model.pci_setup_res import (
    pci_assign_unassigned_bus_resources,
    pci_resize_resource,
)
from iomemfuzz.model.pci_spec import PCI_STD_NUM_BARS
from iomemfuzz.model.profile import KernelProfile
from iomemfuzz.model.sched import Path, Point, Scheduler, mutex_lock, mutex_unlock
from iomemfuzz.model.sysfs import BinAttribute, Sysfs

ARCH_CAN_PCI_MMAP_IO = False  # x86

# Static attributes of every PCI device (pci_dev_groups' plain attributes, abridged to
# the ones that exist on every device; none of them races).
STATIC_DEVICE_FILES = ("class", "device", "enable", "irq", "remove", "rescan",
                       "resource", "vendor")

# The kind crash events give the attribute structures pci-sysfs kmallocs.
RES_ATTR = "res_attr"
ROM_ATTR = "rom_attr"
LEGACY_ATTR = "legacy_attr"


def resource_file_names(dev: PciDev, pat_enabled: bool) -> list[str]:
    """The resource files BAR layout calls for: resourceN for each non-empty BAR,
    resourceN_wc for each prefetchable memory BAR when PAT allows WC (spec §5.2)."""
    names = []
    for i in range(PCI_STD_NUM_BARS):
        if not dev.bar_len(i):
            continue
        names.append(f"resource{i}")
        res = dev.resource[i]
        if pat_enabled and res.flags & IORESOURCE_PREFETCH:
            names.append(f"resource{i}_wc")
    return names


class PciSysfs:
    """drivers/pci/pci-sysfs.c: ``sysfs_initialized`` and the functions around it."""

    def __init__(self, profile: KernelProfile, log: Log, sysfs: Sysfs, sched: Scheduler,
                 pci: PciCore) -> None:
        self.profile = profile
        self.log = log
        self.sysfs = sysfs
        self.sched = sched
        self.pci = pci
        # A plain static int in the kernel: no lock, no barrier (spec §5.2).
        self.sysfs_initialized = False
        # Devices pci_sysfs_init never reached because it stopped at an earlier one (B3).
        self.init_skipped: set[str] = set()
        # The tree's ResourceTree.iomem_get_mapping (set by the Kernel): called when a file
        # is created on 5.12-5.14, where the attribute captures the mapping pointer.
        self.iomem_get_mapping: Callable[[], object] | None = None

    # --- the rescan and remove files ----------------------------------------------------

    def rescan_store(self) -> Path:
        """Models `rescan_store()`, drivers/pci/pci-sysfs.c, v6.1: writing 1 to
        /sys/bus/pci/rescan rescans every root bus under the rescan lock."""
        pci = self.pci
        yield from mutex_lock(self.sched, pci.rescan_remove_lock, "rescan_store")
        for key in sorted(pci.buses):
            bus = pci.buses[key]
            if bus.registered:
                yield from pci_rescan_bus(pci, bus)
        mutex_unlock(self.sched, pci.rescan_remove_lock)
        return 0

    def remove_store(self, dev: PciDev) -> Path:
        """Models `remove_store()`, drivers/pci/pci-sysfs.c, v6.1: writing 1 to
        /sys/bus/pci/devices/<dev>/remove → `pci_stop_and_remove_bus_device_locked()`.
        -ENODEV if the device is already gone."""
        return (yield from pci_stop_and_remove_bus_device_locked(self.pci, dev))

    # --- static attributes (device_add) -------------------------------------------------

    def device_add_attrs(self, dev: PciDev) -> None:
        """Models `device_add_attrs()`, drivers/base/core.c, v6.1, for pci-sysfs.c's
        pci_dev_groups / pci_dev_attr_groups: the static files, whose ``is_visible``
        callbacks look at the device **now** (B23)."""
        sd = dev.sd
        for name in STATIC_DEVICE_FILES:
            self.sysfs.sysfs_create_file(sd, name)
        if dev.spec.vga:
            self.sysfs.sysfs_create_file(sd, "boot_vga")
        if not self.profile.dynamic_config_attrs:
            self._static_bin(dev, "config", size=4096)
            if dev.bar_len(PCI_ROM_RESOURCE):
                self._static_bin(dev, "rom", size=dev.bar_len(PCI_ROM_RESOURCE))
        if self.profile.resize_attr:
            for i in dev.spec.rebar:
                if dev.bar_len(i):
                    self.sysfs.sysfs_create_file(sd, f"resource{i}_resize")
        if self.profile.static_resource_files:
            self._create_static_resource_files(dev)

    def device_del_attrs(self, dev: PciDev) -> None:
        """Models `device_remove_attrs()`, drivers/base/core.c, v6.1: static groups go
        by name with the directory; nothing of theirs is freed (they are part of the
        kernel image)."""
        return None

    def _static_bin(self, dev: PciDev, name: str, *, size: int) -> int:
        attr = self.sysfs.alloc_bin_attribute(name, size=size, static=True, dev=dev,
                                              has_rw=True)
        return self.sysfs.sysfs_create_bin_file(dev.sd, attr)

    def _create_static_resource_files(self, dev: PciDev) -> None:
        """next-2026: resourceN/resourceN_wc as static attributes with ``is_bin_visible``
        on the BAR length and ``bin_size`` from it, created by device_add."""
        for i in range(PCI_STD_NUM_BARS):
            if not dev.bar_len(i):
                continue
            for wc in (False, True):
                if wc and not (self.profile.pat_enabled
                               and dev.resource[i].flags & IORESOURCE_PREFETCH):
                    continue
                attr = self._new_res_attr(dev, i, wc, static=True)
                self.sysfs.sysfs_create_bin_file(dev.sd, attr)

    def _remove_static_resource_files(self, dev: PciDev) -> None:
        for i in range(PCI_STD_NUM_BARS):
            for suffix in ("", "_wc"):
                self.sysfs.kernfs_remove_by_name(dev.sd, f"resource{i}{suffix}")

    # --- the dynamic resource files -----------------------------------------------------

    def _new_res_attr(self, dev: PciDev, num: int, wc: bool, *,
                      static: bool = False, by: str = "device_add") -> BinAttribute:
        """The attribute `pci_create_attr()` fills in (spec §5.2)."""
        res = dev.resource[num]
        io = bool(res.flags & IORESOURCE_IO)
        has_mmap = wc or not io or ARCH_CAN_PCI_MMAP_IO
        mapping = None
        at_open = False
        if has_mmap and self.profile.revoke_pci_mmaps:
            if self.profile.mapping_at_open:
                at_open = True
            elif self.iomem_get_mapping is not None:
                # 5.12-5.14: res_attr->mapping = iomem_get_mapping() at creation.
                mapping = self.iomem_get_mapping()
        name = f"resource{num}_wc" if wc else f"resource{num}"
        return self.sysfs.alloc_bin_attribute(
            name, kind=RES_ATTR, size=dev.bar_len(num), mode=0o600, bar=num, wc=wc,
            has_mmap=has_mmap, has_rw=io and not wc, mapping=mapping,
            f_mapping_at_open=at_open, dev=dev, static=static, made_by=by)

    def pci_create_attr(self, dev: PciDev, num: int, wc: bool, by: str) -> Path:
        """Models `pci_create_attr()`, drivers/pci/pci-sysfs.c, v6.1 / 6.1-deb.

        6.1-deb stores the pointer in res_attr[num] / res_attr_wc[num] only after
        `sysfs_create_bin_file()` succeeded; v5.13..v6.1.2 stored it before, so a
        failed create leaves the slot pointing at the attribute it just freed. ``by``
        names the kernel path that creates the files (pci_bus_add_device,
        pci_sysfs_init, resource_resize_store): a duplicate is told by which two met."""
        attr = self._new_res_attr(dev, num, wc, by=by)
        slots = dev.res_attr_wc if wc else dev.res_attr
        if not self.profile.res_attr_store_after_create:
            slots[num] = attr
        yield Point("pci_create_attr: before sysfs_create_bin_file",
                    f"{dev.name} {attr.name}")
        ret = self.sysfs.sysfs_create_bin_file(dev.sd, attr)
        if ret:
            self.sysfs.kfree(attr, "pci_create_attr")
            return ret
        if self.profile.res_attr_store_after_create:
            slots[num] = attr
        return 0

    def pci_create_resource_files(self, dev: PciDev, by: str) -> Path:
        """Models `pci_create_resource_files()`, drivers/pci/pci-sysfs.c, v6.1: for each
        non-empty BAR resourceN, plus resourceN_wc for a prefetchable BAR when PAT is on;
        the first failure removes **all** resource files (by name) and returns."""
        for i in range(PCI_STD_NUM_BARS):
            if not dev.bar_len(i):
                continue
            ret = yield from self.pci_create_attr(dev, i, False, by)
            if (not ret and self.profile.pat_enabled
                    and dev.resource[i].flags & IORESOURCE_PREFETCH):
                ret = yield from self.pci_create_attr(dev, i, True, by)
            if ret:
                yield from self.pci_remove_resource_files(dev, f"unwind of {by}")
                return ret
        return 0

    def pci_remove_resource_files(self, dev: PciDev, why: str) -> Path:
        """Models `pci_remove_resource_files()`, drivers/pci/pci-sysfs.c, v6.1: for every
        non-NULL slot, remove the file **by the attribute's name** and free the
        attribute. The slots are not cleared: a second call reads freed attributes and
        frees them again. ``why`` (removal, resize, the unwind of a creator) is where
        each free is said to come from."""
        where = f"pci_remove_resource_files ({why})"
        for i in range(PCI_STD_NUM_BARS):
            for slots in (dev.res_attr, dev.res_attr_wc):
                attr = slots[i]
                if attr is None:
                    continue
                yield Point("pci_remove_resource_files: before sysfs_remove_bin_file",
                            f"{dev.name} {attr.name}")
                self.sysfs.sysfs_remove_bin_file(dev.sd, attr)
                self.sysfs.kfree(attr, where)

    def pci_create_sysfs_dev_files(self, dev: PciDev, by: str) -> Path:
        """Models `pci_create_sysfs_dev_files()`, drivers/pci/pci-sysfs.c, v6.1 (and the
        <= 5.12 version that made config and rom too).

        -EACCES while ``sysfs_initialized`` is 0. In next-2026 the function is gone (the
        files are static), modelled as doing nothing."""
        if self.profile.static_resource_files:
            return 0
        if not self.sysfs_initialized:
            return -errno.EACCES
        if not self.profile.dynamic_config_attrs:
            return (yield from self.pci_create_resource_files(dev, by))
        # <= 5.12: config (a static struct, so nothing to free), resources, rom.
        config = self.sysfs.alloc_bin_attribute("config", size=4096, static=True, dev=dev,
                                                made_by=by,
                                                has_rw=True)
        yield Point("pci_create_sysfs_dev_files: before creating config", dev.name)
        ret = self.sysfs.sysfs_create_bin_file(dev.sd, config)
        if ret:
            return ret
        ret = yield from self.pci_create_resource_files(dev, by)
        if ret:
            self.sysfs.kernfs_remove_by_name(dev.sd, "config")
            return ret
        rom_size = dev.bar_len(PCI_ROM_RESOURCE)
        if rom_size:
            rom = self.sysfs.alloc_bin_attribute("rom", kind=ROM_ATTR, size=rom_size,
                                                 made_by=by,
                                                 dev=dev, has_rw=True)
            ret = self.sysfs.sysfs_create_bin_file(dev.sd, rom)
            if ret:
                self.sysfs.kfree(rom, "pci_create_sysfs_dev_files")
                yield from self.pci_remove_resource_files(dev, f"unwind of {by}")
                self.sysfs.kernfs_remove_by_name(dev.sd, "config")
                return ret
            dev.rom_attr = rom
        return 0

    def pci_remove_sysfs_dev_files(self, dev: PciDev) -> Path:
        """Models `pci_remove_sysfs_dev_files()`, drivers/pci/pci-sysfs.c, v6.1 (and
        <= 5.12): nothing while ``sysfs_initialized`` is 0."""
        if self.profile.static_resource_files or not self.sysfs_initialized:
            return
        if self.profile.dynamic_config_attrs:
            self.sysfs.kernfs_remove_by_name(dev.sd, "config")
        yield from self.pci_remove_resource_files(dev, "removal")
        if self.profile.dynamic_config_attrs and dev.rom_attr is not None:
            self.sysfs.sysfs_remove_bin_file(dev.sd, dev.rom_attr)
            self.sysfs.kfree(dev.rom_attr, "pci_remove_sysfs_dev_files")
            dev.rom_attr = None

    # --- pci_sysfs_init (late_initcall) -------------------------------------------------

    def pci_sysfs_init(self) -> Path:
        """Models `pci_sysfs_init()` (late_initcall), drivers/pci/pci-sysfs.c, v6.1.

        Sets the flag **first**, then walks every device on the bus klist — device_add'ed,
        whether or not pci_bus_add_device has run (Pali's case 1) — and stops at the
        **first** error, leaving every later device without its files (B3). Takes no
        lock. Absent in next-2026 (returns 0 without doing anything)."""
        if self.profile.static_resource_files:
            return 0
        self.sysfs_initialized = True
        yield Point("pci_sysfs_init: sysfs_initialized = 1")
        dev: PciDev | None = None
        visited: set[str] = set()
        while True:
            dev = self.pci.pci_get_device(dev)
            if dev is None:
                break
            visited.add(dev.name)
            ret = yield from self.pci_create_sysfs_dev_files(dev, "pci_sysfs_init")
            if ret:
                skipped = [d.name for d in self.pci.klist if d.name not in visited]
                self.init_skipped.update(skipped)
                self.pci.pci_dev_put(dev)
                self.log.emit(INFO, f"initcall pci_sysfs_init returned {ret} at {dev.name}; "
                              f"{len(skipped)} later device(s) get no resource files",
                              pci_sysfs_init_abort=True, err=ret, dev=dev.name,
                              skipped=tuple(skipped))
                return ret
            # Between two devices: holding only a device reference, not a klist node, so
            # a removal of ``dev`` here makes pci_get_device restart from the head.
            yield Point("pci_sysfs_init: after device", dev.name)
        for key in sorted(self.pci.buses):
            self.pci_create_legacy_files(self.pci.buses[key], "pci_sysfs_init")
        return 0

    # --- BAR resize (resourceN_resize) --------------------------------------------------

    def resource_resize_store(self, dev: PciDev, n: int, code: int) -> Path:
        """Models `__resource_resize_store()`, drivers/pci/pci-sysfs.c, 6.1-deb.

        -ENOENT when the file does not exist (no ReBAR capability on BAR n, or a kernel
        before v6.1). Under the device lock, -EBUSY with a driver bound; otherwise the
        resource files are removed (slots left stale), the BAR resized and the bus
        reassigned, and the files recreated — with **no** sysfs_initialized check, so a
        resize before pci_sysfs_init makes files that pci_sysfs_init then duplicates
        [D]. next-2026 removes and re-adds the static groups instead."""
        if (not self.profile.resize_attr or n not in dev.spec.rebar
                or not dev.registered):
            return -errno.ENOENT
        yield from mutex_lock(self.sched, dev.lock, "__resource_resize_store")
        if dev.driver is not None:
            mutex_unlock(self.sched, dev.lock)
            return -errno.EBUSY
        if self.profile.static_resource_files:
            self._remove_static_resource_files(dev)
        else:
            yield from self.pci_remove_resource_files(dev, "resize")
        ret = pci_resize_resource(self.pci, dev, n, code)
        pci_assign_unassigned_bus_resources(self.pci, dev.bus)
        if self.profile.static_resource_files:
            self._create_static_resource_files(dev)
        else:
            err = yield from self.pci_create_resource_files(dev, "resource_resize_store")
            if err:
                self.log.emit(WARN, f"pci {dev.name}: Failed to recreate resource files "
                              "after BAR resizing", dev=dev.name)
        mutex_unlock(self.sched, dev.lock)
        return ret

    # --- legacy files (HAVE_PCI_LEGACY arches) -----------------------------------------

    def pci_create_legacy_files(self, bus: PciBus, by: str) -> None:
        """Models `pci_create_legacy_files()`, drivers/pci/pci-sysfs.c, v6.1: legacy_io
        and legacy_mem as one allocation; on a failure both are freed and the pointer
        cleared. No protection against running twice. Only where ``have_pci_legacy``.

        5.12-5.14 capture the mapping at creation, and the legacy_mem assignment went to
        legacy_io a second time (B11a): legacy_mem's mapping stays unset."""
        if not self.profile.have_pci_legacy or self.profile.static_resource_files:
            return
        if not self.sysfs_initialized and self.profile.legacy_files_wait_for_sysfs_init:
            return
        capture = (self.profile.revoke_pci_mmaps and not self.profile.mapping_at_open
                   and self.iomem_get_mapping is not None)
        legacy_io = self.sysfs.alloc_bin_attribute(
            "legacy_io", kind=LEGACY_ATTR, size=0xffff, has_mmap=True, has_rw=True, made_by=by,
            f_mapping_at_open=self.profile.revoke_pci_mmaps and self.profile.mapping_at_open)
        bus.legacy_io = legacy_io
        if capture:
            legacy_io.mapping = self._get_mapping()
        err = self.sysfs.sysfs_create_bin_file(bus.class_sd, legacy_io)
        if err:
            self._legacy_failed(bus, legacy_io)
            return
        legacy_mem = BinAttribute(legacy_io.alloc_id, "legacy_mem", kind=LEGACY_ATTR,
                                  size=1 << 20, has_mmap=True, made_by=by,
                                  f_mapping_at_open=legacy_io.f_mapping_at_open)
        bus.legacy_mem = legacy_mem
        if capture:
            mapping = self._get_mapping()
            if self.profile.legacy_mem_mapping_typo:
                legacy_io.mapping = mapping
            else:
                legacy_mem.mapping = mapping
        err = self.sysfs.sysfs_create_bin_file(bus.class_sd, legacy_mem)
        if err:
            self.sysfs.sysfs_remove_bin_file(bus.class_sd, legacy_io)
            self._legacy_failed(bus, legacy_io)

    def _get_mapping(self) -> Any:
        assert self.iomem_get_mapping is not None
        return self.iomem_get_mapping()

    def _legacy_failed(self, bus: PciBus, legacy_io: BinAttribute) -> None:
        self.sysfs.kfree(legacy_io, "pci_create_legacy_files")
        bus.legacy_io = None
        bus.legacy_mem = None
        self.log.emit(WARN, f"pci_bus {bus.name}: could not create legacy I/O port and "
                      "ISA memory resources in sysfs", bus=bus.name)

    def pci_remove_legacy_files(self, bus: PciBus) -> None:
        """Models `pci_remove_legacy_files()`, v6.1: by name, one free, pointer kept."""
        if bus.legacy_io is None:
            return
        self.sysfs.sysfs_remove_bin_file(bus.class_sd, bus.legacy_io)
        if bus.legacy_mem is not None:
            self.sysfs.kernfs_remove_by_name(bus.class_sd, bus.legacy_mem.name)
        self.sysfs.kfree(bus.legacy_io, "pci_remove_legacy_files")
