"""User access to PCI BARs: sysfs ``resourceN``/``resourceN_wc`` and procfs
``/proc/bus/pci/BB/DD.F`` (drivers/pci/pci-sysfs.c, drivers/pci/proc.c, drivers/pci/mmap.c,
fs/sysfs/file.c, fs/kernfs/file.c).

The device side is duck-typed: a *pdev* has ``resource`` (a sequence of at least six
:class:`~iomemfuzz.model.ioport.Resource` BARs) and ``name`` ("0000:00:03.0"); a
resource file is a kernfs node (``removed``, ``priv``) whose ``priv`` is a
:class:`~iomemfuzz.model.sysfs.BinAttribute` (``name``, ``bar``, ``wc``, ``has_mmap``,
``has_rw``, ``mapping``, ``size``, ``dev``).

Which address space a BAR mmap joins is the whole story of revocation for PCI
(spec §4.6, §4.8, §5.5):

* <= v5.11: the kernfs node's own inode (zapped when the file is removed, never by a
  driver claim);
* v5.12-5.14: the pointer pci-sysfs captured when it created the file;
* v5.15+: the iomem space, looked up at open() by the attribute's f_mapping callback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from iomemfuzz.model import errno
from iomemfuzz.model.devmem import Devmem, security_locked_down
from iomemfuzz.model.event import INFO, Log
from iomemfuzz.model.ioport import (
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_PREFETCH,
)
from iomemfuzz.model.mm import (
    CAP_SYS_RAWIO,
    PAGE_SHIFT,
    PAGE_SIZE,
    SPACE_IO,
    TARGET_BAR,
    U64_MAX,
    File,
    FileOps,
    Mm,
    Process,
    Target,
    Vma,
)
from iomemfuzz.model.profile import KernelProfile
from iomemfuzz.model.resource_tree import ResourceTree

PCI_STD_NUM_BARS = 6

# enum pci_mmap_api
PCI_MMAP_SYSFS = "sysfs"
PCI_MMAP_PROCFS = "procfs"
# enum pci_mmap_state
PCI_MMAP_IO = "io"
PCI_MMAP_MEM = "mem"

# procfs ioctls (include/uapi/linux/pci.h: ('P' << 8) | n).
PCIIOC_CONTROLLER = 0x5000
PCIIOC_MMAP_IS_IO = 0x5001
PCIIOC_MMAP_IS_MEM = 0x5002
PCIIOC_WRITE_COMBINE = 0x5003

SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
# x86 never maps I/O BARs (arch_can_pci_mmap_io() is 0).
ARCH_CAN_PCI_MMAP_IO = False
# Where legacy_mem / legacy_io mmaps land: the host bridge's ISA memory and I/O windows
# (PowerPC's isa_mem_base / isa_io_base), placed far above any modelled memory. Only
# HAVE_PCI_LEGACY arches have the files; none of them has x86's low-MiB exemption, so the
# window is not put at physical 0.
LEGACY_MEM_PHYS = 1 << 44
LEGACY_IO_PHYS = 1 << 45


def pci_resource_len(pdev: object, bar: int) -> int:
    """Models the `pci_resource_len()` macro, include/linux/pci.h, v6.1: 0 when the BAR's
    end is 0 (unassigned), else end - start + 1."""
    res = pdev.resource[bar]  # type: ignore[attr-defined]
    if res.end == 0:
        return 0
    return (res.end - res.start + 1) & U64_MAX


def pci_resource_to_user(pdev: object, bar: int) -> tuple[int, int]:
    """Models the generic `pci_resource_to_user()`, drivers/pci/pci.c, v6.1: on x86 the
    "user address" of a BAR is its CPU physical address."""
    res = pdev.resource[bar]  # type: ignore[attr-defined]
    return res.start, res.end


def pci_mmap_fits(pdev: object, bar: int, vma: Vma, api: str) -> bool:
    """Models `pci_mmap_fits()`, drivers/pci/pci-sysfs.c, v6.1: the VMA's pages must lie
    inside the BAR's page span, counted from 0 (sysfs) or from the BAR's user address
    pfn (procfs). A BAR of length 0 never fits."""
    length = pci_resource_len(pdev, bar)
    if length == 0:
        return False
    nr = vma.npages
    start = vma.pgoff
    size = ((length - 1) >> PAGE_SHIFT) + 1
    pci_start = 0
    if api == PCI_MMAP_PROCFS:
        pci_start = pci_resource_to_user(pdev, bar)[0] >> PAGE_SHIFT
    return pci_start <= start < pci_start + size and start + nr <= pci_start + size


def _dev_name(pdev: object) -> str:
    return str(getattr(pdev, "name", pdev))


class ProcPciState:
    """Models `struct pci_filp_private`, drivers/pci/proc.c, v6.1: what the next mmap of
    a procfs bus entry maps. open() starts in I/O state, so on x86 an mmap fails until
    PCIIOC_MMAP_IS_MEM."""

    __slots__ = ("entry", "mmap_state", "pdev", "write_combine")

    def __init__(self, pdev: object, entry: object = None) -> None:
        self.pdev = pdev
        self.entry = entry
        self.mmap_state = PCI_MMAP_IO
        self.write_combine = False


class PciMmap:
    """sysfs and procfs access to BARs, over the shared Mm and Devmem."""

    def __init__(self, profile: KernelProfile, log: Log, resources: ResourceTree, mm: Mm,
                 devmem: Devmem) -> None:
        self.profile = profile
        self.log = log
        self.resources = resources
        self.mm = mm
        self.devmem = devmem
        # What answers an I/O port (the Kernel plugs in BarResolver.port); None: the
        # BAR the file names, always.
        self.port_decoder: Callable[[int], Target | None] | None = None

    # --- sysfs resource files ------------------------------------------------------------

    def sysfs_open(self, process: Process, kn: object, *, readable: bool = True,
                   writable: bool = True) -> File | int:
        """Models `kernfs_fop_open()` → `sysfs_kf_bin_open()`, fs/kernfs/file.c and
        fs/sysfs/file.c, v6.1, for a PCI resource file.

        -ENODEV once the node is removed. The file's f_mapping is the kernfs inode's own
        mapping unless the attribute has an mmap method and the kernel swaps it: v5.15+
        run the f_mapping callback (iomem_get_mapping(): a NULL dereference before
        iomem_init_inode or after it failed, B25); v5.12-5.14 copy the pointer captured
        at creation when it is non-NULL (the legacy_mem typo of B11a leaves it NULL);
        <= v5.11 keep the kernfs mapping."""
        if kn.removed:  # type: ignore[attr-defined]
            return -errno.ENODEV
        attr = kn.priv  # type: ignore[attr-defined]
        path = f"/sys{kn.path()}"  # type: ignore[attr-defined]
        f_mapping = self.mm.inode_mapping(kn, path, attr.size)
        if attr.has_mmap:
            if self.profile.mapping_at_open:
                swapped = self.resources.iomem_get_mapping()
                if swapped is None:
                    return -errno.EFAULT
                f_mapping = swapped
            elif attr.mapping is not None:
                f_mapping = attr.mapping
        f_op = FileOps(mmap=self.sysfs_mmap, read=self.sysfs_read, write=self.sysfs_write,
                       llseek=self.sysfs_llseek)
        return self.mm.install_file(process, path, f_op, f_mapping, inode_size=attr.size,
                                    private=kn, readable=readable, writable=writable)

    def sysfs_mmap(self, file: File, vma: Vma) -> int:
        """Models `kernfs_fop_mmap()` → `sysfs_kf_bin_mmap()` → the attribute's mmap,
        v6.1: -ENODEV without an mmap method or once the node is removed; on success
        the VMA's ops are wrapped by kernfs_vm_ops, whose ``.access`` refuses once the
        file is gone."""
        kn = file.private
        attr = kn.priv  # type: ignore[attr-defined]
        if not attr.has_mmap or kn.removed:  # type: ignore[attr-defined]
            return -errno.ENODEV
        if attr.bar is None:
            ret = self.pci_mmap_legacy(vma, io=attr.name == "legacy_io")
        else:
            ret = self.pci_mmap_resource(attr.dev, attr.bar, vma, attr.wc)
        if ret == 0:
            vma.access_gate = lambda: not kn.removed  # type: ignore[attr-defined]
        return ret

    def pci_mmap_resource(self, pdev: object, bar: int, vma: Vma, write_combine: bool
                          ) -> int:
        """Models `pci_mmap_resource()`, drivers/pci/pci-sysfs.c, v6.1, checks in order
        (spec §4.6): lockdown; a MEM BAR whose *first page* is exclusive → -EINVAL;
        pci_mmap_fits → -EINVAL; then pci_mmap_resource_range. No capability check and
        no devmem_is_allowed (the file is mode 0600)."""
        ret = security_locked_down(self.profile)
        if ret:
            return ret
        res = pdev.resource[bar]  # type: ignore[attr-defined]
        if res.flags & IORESOURCE_MEM and self.resources.iomem_is_exclusive(res.start):
            return -errno.EINVAL
        if not pci_mmap_fits(pdev, bar, vma, PCI_MMAP_SYSFS):
            return -errno.EINVAL
        state = PCI_MMAP_MEM if res.flags & IORESOURCE_MEM else PCI_MMAP_IO
        return self.pci_mmap_resource_range(pdev, bar, vma, state, write_combine)

    def pci_mmap_resource_range(self, pdev: object, bar: int, vma: Vma, mmap_state: str,
                                write_combine: bool) -> int:
        """Models `pci_mmap_resource_range()`, drivers/pci/mmap.c, v6.1: repeat the size
        check, pick WC or device (UC-) protection, add the BAR's start pfn to vm_pgoff
        (so the VMA is linked at its physical pfn, spec §4.6) and populate every PTE."""
        # unsigned long arithmetic: a zero-length BAR wraps to a huge size (callers have
        # already refused it through pci_mmap_fits).
        size = (((pci_resource_len(pdev, bar) - 1) & U64_MAX) >> PAGE_SHIFT) + 1
        if vma.pgoff + vma.npages > size:
            return -errno.EINVAL
        vma.prot = "wc" if write_combine else "uc"
        if mmap_state == PCI_MMAP_IO:
            # pci_iobar_pfn(): unreachable on x86, which gives I/O BARs no mmap method.
            return -errno.EINVAL
        res = pdev.resource[bar]  # type: ignore[attr-defined]
        vma.made_for = Target(TARGET_BAR, _dev_name(pdev), bar, 0)
        return self.mm.remap_pfn_range(vma, vma.pgoff + (res.start >> PAGE_SHIFT))

    def pci_mmap_legacy(self, vma: Vma, *, io: bool) -> int:
        """Models `pci_mmap_legacy_mem()` / `pci_mmap_legacy_io()` →
        `pci_mmap_legacy_page_range()` (HAVE_PCI_LEGACY arches only, never x86),
        drivers/pci/pci-sysfs.c, v6.1: the bus's first MiB of ISA memory (at
        :data:`LEGACY_MEM_PHYS`) or its 64 KiB of I/O ports (at :data:`LEGACY_IO_PHYS`)."""
        size = 0x10000 if io else 1 << 20
        if (vma.pgoff + vma.npages) << PAGE_SHIFT > size:
            return -errno.EINVAL
        vma.prot = "uc"
        base = (LEGACY_IO_PHYS if io else LEGACY_MEM_PHYS) >> PAGE_SHIFT
        return self.mm.remap_pfn_range(vma, base + vma.pgoff)

    def sysfs_read(self, file: File, pos: int, count: int) -> int:
        """Models `kernfs_fop_read_iter()` → `sysfs_kf_bin_read()` → `pci_read_resource_io()`,
        v6.1: -ENODEV once removed; clamp to the file size; -EIO for a MEM BAR (no read
        method); an I/O BAR reads 1, 2 or 4 bytes through port I/O."""
        return self._sysfs_rw(file, pos, count, write=False)

    def sysfs_write(self, file: File, pos: int, count: int) -> int:
        """Models `sysfs_kf_bin_write()` → `pci_write_resource_io()`, v6.1: as read, plus
        -EFBIG at or past the end and the lockdown check before the port write."""
        return self._sysfs_rw(file, pos, count, write=True)

    def _sysfs_rw(self, file: File, pos: int, count: int, *, write: bool) -> int:
        kn = file.private
        if kn.removed:  # type: ignore[attr-defined]
            return -errno.ENODEV
        attr = kn.priv  # type: ignore[attr-defined]
        count = min(count, PAGE_SIZE)  # kernfs bounces through one page
        size = file.inode_size
        if write:
            if size:
                if size <= pos:
                    return -errno.EFBIG
                count = min(count, size - pos)
            if not count:
                return 0
        else:
            if not count:
                return 0
            if size:
                if pos >= size:
                    return 0
                count = min(count, size - pos)
        if not attr.has_rw or attr.bar is None:
            # No read method (MEM BARs); legacy_io's port reads are not modelled (no
            # x86 profile has the file).
            return -errno.EIO
        if write:
            ret = security_locked_down(self.profile)
            if ret:
                return ret
        return self.pci_resource_io(file.process, attr.dev, attr.bar, pos, count,
                                    write=write)

    def pci_resource_io(self, process: Process, pdev: object, bar: int, off: int,
                        count: int, *, write: bool) -> int:
        """Models `pci_resource_io()`, drivers/pci/pci-sysfs.c, v6.1: one inb/inw/inl (or
        out) at BAR start + off; 0 past the end, -EINVAL for a straddling or odd-sized
        access. Nothing consults the resource tree: a driver's claim does not stop it."""
        res = pdev.resource[bar]  # type: ignore[attr-defined]
        port = (off + res.start) & U64_MAX
        if port > res.end:
            return 0
        if port + count - 1 > res.end:
            return -errno.EINVAL
        if count not in (1, 2, 4):
            return -errno.EINVAL
        # inb/outb go to whatever decodes the port (a function with I/O decoding off
        # answers nothing: the read is the machine's unclaimed value).
        if self.port_decoder is None:
            target = Target(TARGET_BAR, _dev_name(pdev), bar, port - res.start)
        else:
            target = self.port_decoder(port) or self.mm.unbacked
        self.mm.record_access("write" if write else "read", process, port, count, write,
                              target, space=SPACE_IO, path=f"{_dev_name(pdev)} resource{bar}")
        return count

    def sysfs_llseek(self, file: File, offset: int, whence: int) -> int:
        """Models lseek(2) on a PCI resource file, v6.1: `generic_file_llseek()` sizes the
        file by ``f_mapping->host``, which since v5.12 is the zero-sized iomem inode, so
        SEEK_END lands at 0 + offset (B11b). With the v6.7 fix (profile
        ``pci_resource_llseek_fixed``) `kernfs_fop_llseek()` refuses a removed file
        (-ENODEV) and `fixed_size_llseek()` uses the attribute's size and refuses
        positions past it."""
        if self.profile.pci_resource_llseek_fixed:
            # kernfs_fop_llseek() takes an active reference first.
            if file.private is not None and getattr(file.private, "removed", False):
                return -errno.ENODEV
            eof = maxsize = file.inode_size
        else:
            eof = file.f_mapping.host_size if file.f_mapping is not None else 0
            maxsize = (1 << 63) - 1  # MAX_LFS_FILESIZE of sysfs
        if whence == SEEK_SET:
            new = offset
        elif whence == SEEK_CUR:
            new = file.pos + offset
        elif whence == SEEK_END:
            new = eof + offset
        else:
            return -errno.EINVAL
        if new < 0 or new > maxsize:
            return -errno.EINVAL
        file.pos = new
        if whence == SEEK_END:
            # Narration for the resource-file oracle: where SEEK_END landed vs the size
            # the file has (the attribute's, i.e. the BAR length).
            self.log.emit(INFO, f"lseek({file.path}, {offset}, SEEK_END) = {new:#x}; file "
                          f"size {file.inode_size:#x}", seek_end=new - offset,
                          size=file.inode_size, path=file.path)
        return new

    # --- procfs ----------------------------------------------------------------------------

    def proc_open(self, process: Process, pdev: object, entry: object) -> File | int:
        """Models `proc_bus_pci_open()`, drivers/pci/proc.c, v6.1: per-file state in I/O
        mmap mode; since v5.12 f_mapping = iomem_get_mapping(), before that the proc
        inode's own mapping (which nothing ever zaps). ``entry`` identifies the proc
        entry (its inode)."""
        path = entry.path() if hasattr(entry, "path") else f"/proc/bus/pci/{_proc_name(pdev)}"
        if self.profile.revoke_pci_mmaps:
            f_mapping = self.resources.iomem_get_mapping()
            if f_mapping is None:
                return -errno.EFAULT
        else:
            f_mapping = self.mm.inode_mapping(entry, path)
        f_op = FileOps(mmap=self.proc_mmap)
        return self.mm.install_file(process, path, f_op, f_mapping,
                                    private=ProcPciState(pdev, entry))

    def proc_ioctl(self, file: File, cmd: int, arg: int = 0) -> int:
        """Models `proc_bus_pci_ioctl()`, drivers/pci/proc.c, v6.1: lockdown first; select
        I/O (refused on x86) or memory mmaps, or write-combining (needs PAT)."""
        ret = security_locked_down(self.profile)
        if ret:
            return ret
        state = file.private
        assert isinstance(state, ProcPciState)
        if cmd == PCIIOC_CONTROLLER:
            return 0  # pci_domain_nr(): one domain here
        if cmd == PCIIOC_MMAP_IS_IO:
            if not ARCH_CAN_PCI_MMAP_IO:
                return -errno.EINVAL
            state.mmap_state = PCI_MMAP_IO
            return 0
        if cmd == PCIIOC_MMAP_IS_MEM:
            state.mmap_state = PCI_MMAP_MEM
            return 0
        if cmd == PCIIOC_WRITE_COMBINE and self.profile.pat_enabled:
            state.write_combine = bool(arg)
            return 0
        return -errno.EINVAL

    def proc_mmap(self, file: File, vma: Vma) -> int:
        """Models `proc_bus_pci_mmap()`, drivers/pci/proc.c, v6.1 (spec §4.6): CAP_SYS_RAWIO
        and lockdown (-EPERM); I/O state (-EINVAL on x86); the first BAR of the right
        type the range fits (-ENODEV); WC on a non-prefetchable BAR (-EINVAL); since
        v5.12 an exclusive first page (-EINVAL); then vm_pgoff becomes the offset in the
        BAR and pci_mmap_resource_range adds the start pfn back."""
        state = file.private
        assert isinstance(state, ProcPciState)
        pdev = state.pdev
        if getattr(state.entry, "removed", False):
            return -errno.EIO  # proc_reg_mmap(): the entry is gone (use_pde fails)
        if not file.process.capable(CAP_SYS_RAWIO) or security_locked_down(self.profile):
            return -errno.EPERM
        res_bit = IORESOURCE_MEM
        if state.mmap_state == PCI_MMAP_IO:
            if not ARCH_CAN_PCI_MMAP_IO:
                return -errno.EINVAL
            res_bit = IORESOURCE_IO
        for bar in range(PCI_STD_NUM_BARS):
            if (pdev.resource[bar].flags & res_bit  # type: ignore[attr-defined]
                    and pci_mmap_fits(pdev, bar, vma, PCI_MMAP_PROCFS)):
                break
        else:
            return -errno.ENODEV
        res = pdev.resource[bar]  # type: ignore[attr-defined]
        write_combine = False
        if state.mmap_state == PCI_MMAP_MEM and state.write_combine:
            if not res.flags & IORESOURCE_PREFETCH:
                return -errno.EINVAL
            write_combine = True
        if (self.profile.procfs_mmap_checks_exclusive and res.flags & IORESOURCE_MEM
                and self.resources.iomem_is_exclusive(res.start)):
            return -errno.EINVAL
        start, _end = pci_resource_to_user(pdev, bar)
        vma.pgoff -= start >> PAGE_SHIFT
        return self.pci_mmap_resource_range(pdev, bar, vma, state.mmap_state,
                                            write_combine)


def _proc_name(pdev: object) -> str:
    # "0000:00:03.0" -> "00/03.0" (the /proc/bus/pci/BB/DD.F layout).
    name = _dev_name(pdev)
    parts = name.split(":")
    if len(parts) == 3:
        return f"{parts[1]}/{parts[2]}"
    return name


class BarResolver:
    """A physical-address decoder for Mm: what the cards in the slots decode now, as
    (device, BAR, offset). ``hardware()`` yields (slot name, registers) for every card
    (pci_core's ``hardware``); a card answers a memory address inside a memory BAR only
    while its command register has memory decoding on, at the address its BAR register
    holds — whether or not the kernel still has a device for it (issue 17, point 1). If
    two cards decode the same address (the kernel reassigned a removed card's range to
    another), the one in the lower slot answers. Register it before the memory map's
    resolver.

    A class, not a closure: the fuzz harness instruments the model's functions in place
    after it has built the kernel templates (fuzz/targets/instrument.py), and a method is
    reached through its class, where the instrumentation finds it."""

    def __init__(self, hardware: Callable[[], Iterable[tuple[str, object]]]) -> None:
        self.hardware = hardware

    def __call__(self, addr: int) -> Target | None:
        return self._decode(addr, io=False)

    def port(self, port: int) -> Target | None:
        """What answers an I/O cycle at ``port``: the same rule with I/O decoding."""
        return self._decode(port, io=True)

    def _decode(self, addr: int, *, io: bool) -> Target | None:
        for name, hw in self.hardware():
            for bar, first, last in hw.windows(io):  # type: ignore[attr-defined]
                if first <= addr <= last:
                    return Target(TARGET_BAR, name, bar, addr - first)
        return None
