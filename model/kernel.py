"""Kernel: one instance of every modelled subsystem, wired together, and the one door
every operation goes through.

A Kernel is a pure function of (profile, machine, the calls made on it): no clock, no
randomness, no I/O. The executor starts every run on a fresh one: a copy of one built
from scratch (fuzz/snapshot.py), which that purity makes indistinguishable from it.

**The door.** Each thing a Program line can make happen is one method here, named after
the kernel function or system call it stands for: the in-kernel API a driver calls
(``request_resource``, ``__request_region`` as :meth:`request_region`, ...), the system
calls and sysfs/procfs writes a process makes (:meth:`mmap`, :meth:`sysfs_bind`, ...),
hardware events (:meth:`hot_add`) and the scheduling of kernel paths (:meth:`spawn`,
:meth:`step`). Operations (fuzz/ops) call these and nothing below them.

**Who watches.** The kernel keeps no record of who believes it holds what (the real one
does not either: ``__release_region`` matches by range only). Whoever needs that — the
fuzzer's claim ledger, which the oracles compare the tree against, and the driver
contract it enforces — is the Kernel's :class:`Observer`. The door tells it, once per
call, what each caller did (:meth:`Observer.claimed`, :meth:`Observer.released`,
:meth:`Observer.tree_changed`, ...) and asks it before an in-kernel call whether that
caller may make it (:meth:`Observer.refuse`). Kernel code the model runs by itself (boot,
hotplug, driver probes) reaches the tree through :meth:`request_region` too, as the
broker of model/pci.py, but is never asked about: the contract binds callers the Program
plays, not the kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from iomemfuzz.model import errno
from iomemfuzz.model.boot import Boot
from iomemfuzz.model.devmem import DEFAULT_PHYS_BITS, Devmem, MemoryResolver
from iomemfuzz.model.event import RELEASE_NONEXISTENT, Log
from iomemfuzz.model.ioport import IORESOURCE_BUSY, Resource
from iomemfuzz.model.machine import (
    DEFAULT_MACHINE,
    READS_ONES,
    Machine,
    build_tree,
    physical_map,
    render_proc_iomem,
)
from iomemfuzz.model.mm import TARGET_NONE, Access, File, Mm, Process, Target, Vma
from iomemfuzz.model.pci import Pci, PciBus, PciDev, PciDeviceSpec, PciDriver
from iomemfuzz.model.pci_mmap import BarResolver, PciMmap
from iomemfuzz.model.profile import CLAIM_FAIL, DEFAULT, KernelProfile
from iomemfuzz.model.resource_check import descendants
from iomemfuzz.model.resource_tree import ResourceTree
from iomemfuzz.model.sched import WOULD_BLOCK, Path, Scheduler, Task
from iomemfuzz.model.sysfs import Sysfs


class _Refused:
    """Type of :data:`REFUSED`: no truth value, compare with ``is``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "REFUSED"

    def __bool__(self) -> bool:
        raise TypeError("REFUSED has no truth value; compare it with `is`")


# What a door method returns when the observer refused the call (the driver contract):
# the kernel function was not called and nothing changed.
REFUSED = _Refused()


class Observer:
    """Whoever watches the callers of one Kernel. This base watches nothing and refuses
    nothing (the model on its own, for tests and tools); the fuzzer's claim ledger
    (fuzz/ledger.py) overrides what it needs.

    Every notification comes from the door, after the kernel function returned, once per
    call; ``caller`` names who the Program line (or the kernel path) acts for."""

    __slots__ = ()

    def attach(self, kernel: Kernel) -> None:
        """The kernel is built (and booted, if it was asked to be): what is busy now
        belongs to firmware and boot."""

    def refuse(self, kernel: Kernel, call: str, caller: str, args: dict[str, Any]
               ) -> str | None:
        """Before an in-kernel ``call`` by ``caller``: the rule of the caller's
        contract it would break, or None to let it run."""
        return None

    def claimed(self, kernel: Kernel, node: Resource, caller: str, call: str) -> None:
        """``caller`` now holds the busy region ``node``, which ``call`` made."""

    def linked(self, kernel: Kernel, node: Resource, caller: str, call: str) -> None:
        """``caller`` linked a struct it allocated itself (busy or not) with ``call``."""

    def kernel_owned(self, kernel: Kernel, node: Resource) -> None:
        """The kernel made busy node ``node`` for itself (a boot-time reservation)."""

    def released(self, kernel: Kernel, root: Resource, start: int, n: int, caller: str,
                 matched: bool) -> None:
        """``caller`` released [start, start+n-1] under ``root``; ``matched``: the
        kernel found a region to release."""

    def splitting(self, kernel: Kernel, start: int, size: int) -> object:
        """Before release_mem_region_adjustable(start, size) trims or splits busy nodes:
        whatever :meth:`split` needs to know about them now."""
        return None

    def split(self, kernel: Kernel, before: object, caller: str) -> None:
        """After that call: the pieces it left (``before`` is what splitting returned)."""

    def tree_changed(self, kernel: Kernel, caller: str, call: str) -> None:
        """``caller`` may have changed the resource trees with ``call``."""


class Kernel:
    """The modelled kernel. Construct with a profile and a machine; call the door."""

    def __init__(self, profile: KernelProfile | None = None,
                 machine: Machine | None = None, *, booted: bool = True,
                 observer: Observer | None = None) -> None:
        self.profile = profile or DEFAULT
        self.machine = machine or DEFAULT_MACHINE
        self.observer = observer or Observer()
        self.log = Log()
        self.resources = ResourceTree(self.profile, self.log)
        build_tree(self.machine, self.resources)
        # Mappings: processes and VMAs, /dev/mem + revoke_iomem, BAR mmaps. revoke_iomem
        # runs only where the tree calls its hook (__request_region with the iomem root
        # as argument, request_free_mem_region); the veto only under claim_policy "fail".
        self.mm = Mm(self.profile, self.log)
        self.devmem = Devmem(self.profile, self.log, self.resources, self.mm,
                             phys_bits=getattr(self.machine, "phys_bits", DEFAULT_PHYS_BITS))
        self.pci_mmap = PciMmap(self.profile, self.log, self.resources, self.mm, self.devmem)
        self.resources.revoke_hook = self.resources.revoke_iomem
        if self.profile.claim_policy == CLAIM_FAIL:
            self.resources.claim_veto_hook = self.devmem.claim_veto
        # Kernel paths as tasks (boot, hot-add, pci_sysfs_init, MUXED waits), sysfs, and
        # the PCI core. Driver claims go through this Kernel (the broker) so the observer
        # learns what each driver holds; BARs decode before the memory map.
        self.sched = Scheduler(self.log)
        self.resources.muxed_wake_hook = self.sched.muxed_wake
        self.sysfs = Sysfs(self.log)
        self.sysfs.drain_hook = self.mm.kernfs_drain_open_files
        self.pci = Pci(self.profile, self.log, self.resources, self.sysfs, self.sched,
                       tuple(self.machine.pci_devices), broker=CoreBroker(self))
        self.pci.files.iomem_get_mapping = self.resources.iomem_get_mapping
        # What an address reaches is the machine's: the cards' decoders, then memory and
        # platform decoders, then the machine's unclaimed-read value.
        bars = BarResolver(self.pci.hardware)
        self.mm.add_resolver(bars)
        self.mm.add_resolver(MemoryResolver(physical_map(self.machine)))
        self.mm.unbacked = Target(TARGET_NONE, "reads " + getattr(
            self.machine, "unclaimed_read", READS_ONES))
        self.pci_mmap.port_decoder = bars.port
        self.boot = Boot(self.profile, self.log, self.sched, self.pci, self.devmem)
        self.booted = booted
        if booted:
            self.boot.boot_fully()
        self.observer.attach(self)

    # --- what the observer and the oracles read ---------------------------------------

    @property
    def roots(self) -> tuple[Resource, Resource]:
        return self.resources.iomem_resource, self.resources.ioport_resource

    def in_tree(self, node: Resource) -> bool:
        """Is ``node`` linked under one of the two roots (every link checked)? A tree a
        misuse Program made cyclic (B29) answers no at the first node met twice."""
        seen: set[int] = set()
        while node.parent is not None:
            parent = node.parent
            child = parent.child
            while child is not None and child is not node:
                if id(child) in seen:
                    return False
                seen.add(id(child))
                child = child.sibling
            if child is None or id(parent) in seen:
                return False
            seen.add(id(parent))
            node = parent
        return node is self.resources.iomem_resource or node is self.resources.ioport_resource

    @property
    def userspace_ready(self) -> bool:
        """Can a process run yet (from the rootfs initcall slot on)?"""
        return self.boot.userspace_ready

    # --- the in-kernel resource API (kernel/resource.c) -------------------------------
    #
    # Each takes the ``caller`` the line acts for. The observer may refuse the call
    # (the caller's contract); otherwise it runs and the observer hears what changed.

    def _refused(self, call: str, caller: str, **args: Any) -> bool:
        return self.observer.refuse(self, call, caller, args) is not None

    def request_region(self, parent: Resource, start: int, n: int, name: str | None,
                       flags: int, caller: str, *, checked: bool = True) -> Any:
        """``__request_region()``: the Resource, None (busy), WOULD_BLOCK (a MUXED
        holder is in the way) or REFUSED. ``checked=False``: kernel code (a probe)
        calls, not a caller the Program plays."""
        if checked and self._refused("__request_region", caller, parent=parent,
                                     start=start, n=n, flags=flags):
            return REFUSED
        res = self.resources._request_region(parent, start, n, name, flags)
        if isinstance(res, Resource):
            self.observer.claimed(self, res, caller, "__request_region")
        return res

    def release_region(self, parent: Resource, start: int, n: int, caller: str, *,
                       checked: bool = True) -> Any:
        """``__release_region()`` (None, or REFUSED)."""
        if checked and self._refused("__release_region", caller, parent=parent,
                                     start=start, n=n):
            return REFUSED
        before = len(self.log.events)
        self.resources._release_region(parent, start, n)
        matched = not any(e.kind == RELEASE_NONEXISTENT for e in self.log.since(before))
        root = parent
        while root.parent is not None:
            root = root.parent
        self.observer.released(self, root, start, n, caller, matched)
        return None

    def request_muxed_region_task(self, parent: Resource, start: int, n: int,
                                  name: str | None, flags: int, caller: str
                                  ) -> Generator[object, None, Any]:
        """``__request_region()`` with IORESOURCE_MUXED as a kernel path that sleeps on
        the MUXED wait queue while another holder has the range."""
        if self._refused("__request_region", caller, parent=parent, start=start, n=n,
                         flags=flags):
            return REFUSED
        res = yield from self.resources.request_region_task(parent, start, n, name, flags)
        if isinstance(res, Resource):
            self.observer.claimed(self, res, caller, "__request_region")
        return res

    def _link(self, call: str, caller: str, parent: Resource, new: Resource,
              link: Callable[[], Any], **args: Any) -> Any:
        """A caller links a struct it allocated: run ``link``, then tell the observer
        about the tree and, if the struct is in, about the struct."""
        if self._refused(call, caller, parent=parent, new=new, **args):
            return REFUSED
        ret = link()
        self.observer.tree_changed(self, caller, call)
        if ret == 0:
            self.observer.linked(self, new, caller, call)
        return ret

    def request_resource(self, parent: Resource, new: Resource, caller: str) -> Any:
        """``request_resource()``: 0 / -EBUSY."""
        return self._link("request_resource", caller, parent, new,
                          lambda: self.resources.request_resource(parent, new))

    def insert_resource(self, parent: Resource, new: Resource, caller: str) -> Any:
        """``insert_resource()``: 0 / -EBUSY."""
        return self._link("insert_resource", caller, parent, new,
                          lambda: self.resources.insert_resource(parent, new))

    def devm_request_resource(self, dev: str, parent: Resource, new: Resource,
                              caller: str) -> Any:
        """``devm_request_resource()``: 0 / -EBUSY (logging the conflict)."""
        return self._link("devm_request_resource", caller, parent, new,
                          lambda: self.resources.devm_request_resource(dev, parent, new))

    def allocate_resource(self, root: Resource, new: Resource, size: int, lo: int,
                          hi: int, align: int, caller: str) -> Any:
        """``allocate_resource()`` of a new struct: 0 / -EBUSY."""
        return self._link("allocate_resource", caller, root, new,
                          lambda: self.resources.allocate_resource(root, new, size, lo, hi,
                                                                   align),
                          size=size, lo=lo, hi=hi, align=align)

    def insert_resource_expand_to_fit(self, root: Resource, new: Resource,
                                      caller: str) -> Any:
        """``insert_resource_expand_to_fit()`` (void; None or REFUSED)."""
        if self._refused("insert_resource_expand_to_fit", caller, parent=root, new=new):
            return REFUSED
        self.resources.insert_resource_expand_to_fit(root, new)
        self.observer.tree_changed(self, caller, "insert_resource_expand_to_fit")
        if self.in_tree(new):
            self.observer.linked(self, new, caller, "insert_resource_expand_to_fit")
        return None

    def _on_struct(self, call: str, caller: str, res: Resource,
                   fn: Callable[[], Any], **args: Any) -> Any:
        if self._refused(call, caller, res=res, **args):
            return REFUSED
        ret = fn()
        self.observer.tree_changed(self, caller, call)
        return ret

    def release_resource(self, old: Resource, caller: str) -> Any:
        """``release_resource()``: 0 / -EINVAL."""
        return self._on_struct("release_resource", caller, old,
                               lambda: self.resources.release_resource(old))

    def remove_resource(self, old: Resource, caller: str) -> Any:
        """``remove_resource()``: 0 / -EINVAL."""
        return self._on_struct("remove_resource", caller, old,
                               lambda: self.resources.remove_resource(old))

    def release_child_resources(self, r: Resource, caller: str) -> Any:
        """``release_child_resources()`` (void)."""
        return self._on_struct("release_child_resources", caller, r,
                               lambda: self.resources.release_child_resources(r))

    def adjust_resource(self, res: Resource, start: int, size: int, caller: str) -> Any:
        """``adjust_resource()``: 0 / -EBUSY."""
        return self._on_struct("adjust_resource", caller, res,
                               lambda: self.resources.adjust_resource(res, start, size),
                               start=start, size=size)

    def reallocate_resource(self, root: Resource, res: Resource, size: int, lo: int,
                            hi: int, align: int, caller: str) -> Any:
        """``allocate_resource()`` of a linked struct (``reallocate_resource()``)."""
        return self._on_struct("reallocate_resource", caller, res,
                               lambda: self.resources.allocate_resource(root, res, size, lo,
                                                                        hi, align),
                               root=root, size=size, lo=lo, hi=hi, align=align)

    def merge_system_ram_resource(self, res: Resource, caller: str) -> Any:
        """``merge_system_ram_resource()`` (void)."""
        return self._on_struct("merge_system_ram_resource", caller, res,
                               lambda: self.resources.merge_system_ram_resource(res))

    def release_mem_region_adjustable(self, start: int, size: int, caller: str) -> Any:
        """``release_mem_region_adjustable()`` (memory hot-unplug; void)."""
        if self._refused("release_mem_region_adjustable", caller, start=start, size=size):
            return REFUSED
        before = self.observer.splitting(self, start, size)
        self.resources.release_mem_region_adjustable(start, size)
        self.observer.split(self, before, caller)
        return None

    def request_free_mem_region(self, base: Resource, size: int, name: str | None,
                                caller: str) -> Any:
        """``request_free_mem_region()``: the claimed Resource, or -errno."""
        if self._refused("request_free_mem_region", caller, parent=base, size=size):
            return REFUSED
        res = self.resources.request_free_mem_region(base, size, name)
        if isinstance(res, Resource):
            self.observer.claimed(self, res, caller, "request_free_mem_region")
        return res

    def alloc_free_mem_region(self, base: Resource, size: int, align: int,
                              name: str | None, caller: str) -> Any:
        """``alloc_free_mem_region()``: the inserted Resource, or -errno."""
        if self._refused("alloc_free_mem_region", caller, parent=base, size=size,
                         align=align):
            return REFUSED
        res = self.resources.alloc_free_mem_region(base, size, align, name)
        if isinstance(res, Resource):
            self.observer.tree_changed(self, caller, "alloc_free_mem_region")
        return res

    def reserve_region_with_split(self, root: Resource, start: int, end: int,
                                  name: str | None, caller: str) -> Any:
        """``reserve_region_with_split()`` (boot-time reservation; void). The pieces are
        the kernel's own, like firmware entries."""
        if self._refused("reserve_region_with_split", caller, parent=root, start=start,
                         end=end):
            return REFUSED
        before = set(descendants(root))
        self.resources.reserve_region_with_split(root, start, end, name)
        for node in descendants(root):
            if node not in before and node.flags & IORESOURCE_BUSY:
                self.observer.kernel_owned(self, node)
        self.observer.tree_changed(self, caller, "reserve_region_with_split")
        return None

    # Queries change nothing: no observer, no contract.

    def region_intersects(self, start: int, size: int, flags: int, desc: int) -> int:
        return self.resources.region_intersects(start, size, flags, desc)

    def iomem_is_exclusive(self, addr: int) -> bool:
        return self.resources.iomem_is_exclusive(addr)

    def page_is_ram(self, pfn: int) -> bool:
        return self.resources.page_is_ram(pfn)

    def walk_iomem_res_desc(self, desc: int, flags: int, start: int, end: int,
                            arg: object, func: Callable[..., int]) -> int:
        return self.resources.walk_iomem_res_desc(desc, flags, start, end, arg, func)

    def walk_system_ram_res(self, start: int, end: int, arg: object,
                            func: Callable[..., int]) -> int:
        return self.resources.walk_system_ram_res(start, end, arg, func)

    def walk_mem_res(self, start: int, end: int, arg: object,
                     func: Callable[..., int]) -> int:
        return self.resources.walk_mem_res(start, end, arg, func)

    def walk_system_ram_range(self, start_pfn: int, nr_pages: int, arg: object,
                              func: Callable[..., int]) -> int:
        return self.resources.walk_system_ram_range(start_pfn, nr_pages, arg, func)

    def lookup_resource(self, root: Resource, start: int) -> Resource | None:
        return self.resources.lookup_resource(root, start)

    def iomem_map_sanity_check(self, addr: int, size: int) -> int:
        return self.resources.iomem_map_sanity_check(addr, size)

    # --- processes, files and mappings (system calls) --------------------------------

    def init_process(self) -> Process:
        return self.mm.init_process()

    def fork(self, caps: frozenset[str]) -> Process:
        return self.mm.spawn(caps)

    def exit(self, proc: Process) -> int:
        return self.mm.exit(proc)

    def open_mem(self, proc: Process, writable: bool) -> File | int:
        """open("/dev/mem")."""
        return self.devmem.open_mem(proc, writable=writable)

    def open_sysfs(self, proc: Process, path: str) -> File | int:
        """open() of a sysfs file by path: -ENOENT when there is no such file."""
        node = self.sysfs.lookup(path)
        if node is None or node.is_dir:
            return -errno.ENOENT
        return self.pci_mmap.sysfs_open(proc, node)

    def open_legacy(self, proc: Process, bus_name: str, which: str) -> File | int:
        """open(".../pci_bus/BUS/legacy_mem|legacy_io") (HAVE_PCI_LEGACY arches)."""
        bus = next((b for b in self.pci.buses.values() if b.name == bus_name), None)
        class_sd = getattr(bus, "class_sd", None)
        node = class_sd.children.get(f"legacy_{which}") if class_sd is not None else None
        if node is None or node.removed:
            return -errno.ENOENT
        return self.pci_mmap.sysfs_open(proc, node)

    def open_proc_bus_pci(self, proc: Process, dev_name: str) -> File | int:
        """open("/proc/bus/pci/BB/DD.F")."""
        dev = self.pci.find(dev_name)
        entry = getattr(dev, "procent", None) if dev is not None else None
        if entry is None or getattr(entry, "removed", False):
            return -errno.ENOENT
        return self.pci_mmap.proc_open(proc, dev, entry)

    def proc_ioctl(self, file: File, cmd: int, value: int) -> int:
        return self.pci_mmap.proc_ioctl(file, cmd, value)

    def mmap(self, file: File, pgoff: int, npages: int, shared: bool,
             writable: bool) -> Vma | int:
        return self.mm.mmap(file, pgoff, npages, shared=shared, writable=writable)

    def mmap_task(self, file: File, pgoff: int, npages: int, shared: bool) -> Task:
        """mmap(2) as a kernel path not yet run (it parks between filling the PTEs and
        linking the VMA)."""
        path = self.mm.mmap_region(file, pgoff, npages, shared=shared)
        return self.sched.spawn(path, f"mmap {file.path}")

    def munmap(self, vma: Vma) -> int:
        return self.mm.munmap(vma)

    def touch(self, vma: Vma, offset: int, write: bool) -> Access:
        return self.mm.touch(vma, offset, write=write)

    def access_remote(self, vma: Vma, offset: int, length: int,
                      write: bool) -> tuple[int, Target | None]:
        return self.mm.access_remote(vma, offset, length, write=write)

    def pread(self, file: File, offset: int, count: int) -> int:
        """pread64(2): the file's ->read at ``offset``; the file position does not move
        (ksys_pread64 hands the method a copy of the offset, never f_pos)."""
        pos = file.pos
        ret = file.f_op.read(file, offset, count)
        file.pos = pos
        return ret

    def pwrite(self, file: File, offset: int, count: int) -> int:
        """pwrite64(2): the file's ->write at ``offset``; the position does not move."""
        pos = file.pos
        ret = file.f_op.write(file, offset, count)
        file.pos = pos
        return ret

    def llseek(self, file: File, offset: int, whence: int) -> int:
        return file.f_op.llseek(file, offset, whence)

    def close(self, file: File) -> int:
        return self.mm.close(file)

    def read_proc_resources(self, root: Resource, privileged: bool) -> list[str]:
        """The lines of /proc/iomem or /proc/ioports as a reader with (or without)
        CAP_SYS_ADMIN sees them."""
        return render_proc_iomem(root, privileged=privileged).splitlines()

    # --- the PCI core: devices, sysfs writes, hardware events -------------------------

    def pci_device(self, name: str) -> PciDev | None:
        """The registered device named ``name`` (as sysfs names it), or None."""
        dev = self.pci.find(name)
        return dev if dev is not None and dev.registered else None

    def pci_root_bus(self, domain: int, number: int) -> PciBus | None:
        return self.pci.buses.get((domain, number))

    def hot_add(self, spec: PciDeviceSpec) -> Path:
        return self.pci.hot_add(spec)

    def hot_remove(self, name: str) -> Path:
        return self.pci.hot_remove(name)

    def sysfs_remove(self, dev: PciDev) -> Path:
        return self.pci.remove(dev)

    def sysfs_rescan(self) -> Path:
        return self.pci.rescan()

    def pci_driver(self, name: str) -> PciDriver | None:
        """The registered PCI driver called ``name`` (its /sys/bus/pci/drivers entry)."""
        return self.pci.state.drivers.get(name)

    def sysfs_bind(self, dev: PciDev | None, driver: str) -> Path:
        """drivers/DRIVER/bind; -ENOENT when no such driver is loaded (no such file)."""
        drv = self.pci_driver(driver)
        return _returns(-errno.ENOENT) if drv is None else self.pci.bind(dev, drv)

    def sysfs_unbind(self, dev: PciDev | None, driver: str) -> Path:
        """drivers/DRIVER/unbind; ``driver`` "" names the device's own driver."""
        drv = self.pci_driver(driver) if driver else getattr(dev, "driver", None)
        if drv is None:
            return _returns(-errno.ENOENT if driver else -errno.ENODEV)
        return self.pci.unbind(dev, drv)

    def sysfs_drivers_probe(self, dev: PciDev | None) -> Path:
        return self.pci.drivers_probe(dev)

    def sysfs_drivers_autoprobe(self, value: str) -> int:
        """echo VALUE > /sys/bus/pci/drivers_autoprobe (`drivers_autoprobe_store()`,
        drivers/base/bus.c, v6.1): text starting with '0' stops driver registration from
        probing, anything else turns it back on."""
        self.pci.state.drivers_autoprobe = not value.startswith("0")
        return 0

    def sysfs_new_id(self, driver: str, text: str) -> Path:
        drv = self.pci_driver(driver)
        return _returns(-errno.ENOENT) if drv is None else self.pci.new_id(drv, text)

    def sysfs_remove_id(self, driver: str, text: str) -> int:
        drv = self.pci_driver(driver)
        return -errno.ENOENT if drv is None else self.pci.remove_id(drv, text)

    def sysfs_driver_override(self, dev: PciDev, text: str) -> int:
        return self.pci.files.driver_override_store(dev, text)

    def sysfs_enable(self, dev: PciDev, value: str) -> Path:
        return self.pci.files.enable_store(dev, value)

    def sysfs_dev_rescan(self, dev: PciDev) -> Path:
        return self.pci.files.dev_rescan_store(dev)

    def sysfs_bus_rescan(self, bus: PciBus) -> Path:
        return self.pci.files.bus_rescan_store(bus)

    def module_load(self, drv: PciDriver) -> Path:
        """insmod of a PCI driver module: -EEXIST when one of that name is loaded."""
        if drv.name in self.pci.state.drivers:
            return _returns(-errno.EEXIST)
        return self.pci.module_load(drv)

    def module_unload(self, driver: str) -> Path:
        """rmmod: -ENOENT when no such module is loaded."""
        drv = self.pci_driver(driver)
        return _returns(-errno.ENOENT) if drv is None else self.pci.module_unload(drv)

    def sysfs_resize(self, dev: PciDev, bar: int, size: int) -> Path:
        return self.pci.files.resource_resize_store(dev, bar, size)

    def pci_host_probe(self, bus: PciBus) -> Path:
        return self.pci.pci_host_probe(bus)

    # Reads of sysfs and /proc a developer asserts with; they change nothing.

    def busy_entries(self, root: Resource, start: int, end: int) -> list[Resource]:
        """The busy nodes of /proc/iomem (or /proc/ioports) that overlap [start, end]."""
        return [n for n in descendants(root) if n.flags & IORESOURCE_BUSY
                and n.start <= end and n.end >= start]

    def sysfs_files(self, dev: PciDev) -> list[str]:
        """`ls /sys/bus/pci/devices/DEV`."""
        return self.sysfs.files(dev.sd)

    def sysfs_driver_link(self, dev: PciDev) -> str | None:
        """readlink of /sys/bus/pci/devices/DEV/driver: the driver's name, or None."""
        link = dev.driver_link
        return None if link is None or link.removed else str(link.priv)

    def sysfs_resource_file(self, dev: PciDev) -> list[str]:
        """The lines of /sys/bus/pci/devices/DEV/resource."""
        return self.pci.files.resource_show(dev)

    # --- kernel paths -----------------------------------------------------------------

    def spawn(self, path: Path, name: str) -> Task:
        return self.sched.spawn(path, name)

    def call(self, path: Path, name: str) -> Task:
        return self.sched.call(path, name)

    def run(self, task: Task) -> str:
        return self.sched.run(task)

    def step(self, task: Task) -> str:
        return self.sched.step(task)

    def boot_to(self, level: str) -> int:
        return self.boot.boot_to(level)

    def boot_async_task(self, bus_name: str) -> Task | None:
        return self.boot.async_task(bus_name)

    def finish(self) -> list[Task]:
        """End of a Program: pending kernel paths run to completion, lowest task id
        first; those that can never proceed are reported as HANG events and returned."""
        return self.sched.drain()

    # --- narration --------------------------------------------------------------------

    def describe(self) -> dict[str, str]:
        """State sections for ``iomemfuzz show``: title -> text."""
        sections = {
            "/proc/iomem": render_proc_iomem(self.resources.iomem_resource),
            "/proc/ioports": render_proc_iomem(self.resources.ioport_resource),
            "pci devices": self.pci.describe(),
            "/proc/bus/pci": "\n".join(self.pci.proc.entries()),
            "tasks": "\n".join(t.describe() for t in self.sched.pending()),
            "user mappings": self.mm.describe(),
        }
        return sections



def _returns(value: int) -> Path:
    """A kernel path that returns ``value`` at once (a sysfs file that does not exist)."""
    return value
    yield  # a generator, so it runs as a task like every other path


class CoreBroker:
    """How the PCI core (model/pci.py) claims and releases BARs: through the door, as
    kernel code, so the observer learns what each driver holds but never refuses it
    (the caller contract binds the callers a Program plays, not the kernel)."""

    __slots__ = ("kernel",)

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def request_region(self, parent: Resource, start: int, n: int, name: str, flags: int,
                       holder: str = "") -> Any:
        return self.kernel.request_region(parent, start, n, name, flags, holder,
                                          checked=False)

    def release_region(self, parent: Resource, start: int, n: int, holder: str = "") -> None:
        self.kernel.release_region(parent, start, n, holder, checked=False)

    def tree_changed(self, holder: str = "") -> None:
        """Kernel code (a removal, a resize) changed the tree on ``holder``'s behalf
        ("remove 0000:00:03.0"): the observer hears the kernel function, never a name."""
        call = _CORE_CALLS.get(holder.split(" ", 1)[0], "pci_core")
        self.kernel.observer.tree_changed(self.kernel, holder, call)


# What the PCI core's tree changes are, by the first word of the holder it names.
_CORE_CALLS = {"remove": "pci_stop_and_remove_bus_device", "resize": "pci_resize_resource"}


__all__ = ["REFUSED", "WOULD_BLOCK", "CoreBroker", "Kernel", "Observer"]
