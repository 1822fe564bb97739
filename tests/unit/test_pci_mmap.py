"""model/pci_mmap.py: sysfs resourceN/_wc and procfs BAR mmaps (spec §4.6, D24, D25),
the address space each joins per version (§4.8, §5.5), lseek (B11b), port I/O reads,
and revocation / removal reaching them (B10, B7 for sysfs)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from iomemfuzz.model import errno
from iomemfuzz.model.devmem import Devmem, MemoryResolver
from iomemfuzz.model.event import NULL_DEREF, UNMAP, Log
from iomemfuzz.model.ioport import (
    IORESOURCE_BUSY,
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_PREFETCH,
    IORESOURCE_SYSTEM_RAM,
    Resource,
)
from iomemfuzz.model.machine import physical_map_of, shape
from iomemfuzz.model.mm import (
    ACCESS_KEY,
    ACCESS_SIGBUS,
    CAP_SYS_ADMIN,
    PTE_NONE,
    PTE_PFN,
    TARGET_BAR,
    Mm,
    Target,
)
from iomemfuzz.model.pci_mmap import (
    PCIIOC_MMAP_IS_IO,
    PCIIOC_MMAP_IS_MEM,
    PCIIOC_WRITE_COMBINE,
    SEEK_CUR,
    SEEK_END,
    SEEK_SET,
    BarResolver,
    PciMmap,
)
from iomemfuzz.model.profile import DEFAULT, LOCKDOWN_INTEGRITY, PROFILES
from iomemfuzz.model.resource_tree import ResourceTree
from iomemfuzz.model.sysfs import Sysfs

PAGE = 0x1000
BAR0 = 0xFEBF0000  # 4 KiB, non-prefetchable
BAR2 = 0xFD000000  # 1 MiB, prefetchable
SMALL = 0xFEBF1800  # a 256-byte BAR sharing page 0xfebf1 with nothing else
NEIGHBOUR = 0xFEBF1000  # another device's 256-byte BAR in the same page
IO4 = 0xC000


class Dev:
    """A minimal pdev: six BARs and a name (what pci_mmap reads)."""

    def __init__(self, name: str, bars: dict[int, tuple[int, int, int]]):
        self.name = name
        self.resource = [Resource(0, 0, name, 0) for _ in range(7)]
        for i, (start, size, flags) in bars.items():
            self.resource[i] = Resource(start, start + size - 1, name, flags)


class System:
    """Tree + sysfs + mm + devmem + pci_mmap, wired like model/kernel.py."""

    def __init__(self, profile=DEFAULT):
        self.profile = profile
        self.log = Log()
        self.tree = ResourceTree(profile, self.log)
        for start, end, name, flags in (
            (0x0, 0x9FFFF, "System RAM", IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY),
            (0x100000, 0x7FFFFFFF, "System RAM", IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY),
            (0xC0000000, 0xFEFFFFFF, "PCI Bus 0000:00", IORESOURCE_MEM),
        ):
            self.tree.request_resource(self.tree.iomem_resource,
                                       Resource(start, end, name, flags))
        self.window = next(self.tree.iomem_resource.children())
        for node in self.tree.iomem_resource.children():
            if node.start == 0xC0000000:
                self.window = node
        self.dev = Dev("0000:00:03.0", {
            0: (BAR0, PAGE, IORESOURCE_MEM),
            2: (BAR2, 0x100000, IORESOURCE_MEM | IORESOURCE_PREFETCH),
            3: (SMALL, 0x100, IORESOURCE_MEM),
            4: (IO4, 0x20, IORESOURCE_IO),
        })
        self.other = Dev("0000:00:04.0", {0: (NEIGHBOUR, 0x100, IORESOURCE_MEM)})
        for dev in (self.dev, self.other):
            for res in dev.resource:
                if res.flags & IORESOURCE_MEM:
                    assert self.tree.request_resource(self.window, res) == 0
        self.sysfs = Sysfs(self.log)
        self.mm = Mm(profile, self.log)
        self.devmem = Devmem(profile, self.log, self.tree, self.mm)
        self.pci = PciMmap(profile, self.log, self.tree, self.mm, self.devmem)
        self.tree.revoke_hook = self.tree.revoke_iomem
        self.sysfs.drain_hook = self.mm.kernfs_drain_open_files
        self.mm.add_resolver(MemoryResolver(physical_map_of(shape(self.tree.iomem_resource))))
        self.mm.add_resolver(BarResolver(lambda: (self.dev, self.other)), first=True)
        self.tree.iomem_init_inode()
        self.devmem.chr_dev_init()
        self.sd = self.sysfs.mkdir_p("/devices/pci0000:00/0000:00:03.0")
        self.other_sd = self.sysfs.mkdir_p("/devices/pci0000:00/0000:00:04.0")
        self.proc = self.mm.spawn()

    def create(self, bar: int, *, wc: bool = False, dev=None):
        """What pci_create_attr makes (C's pci_sysfs does this in the real wiring)."""
        dev = dev or self.dev
        sd = self.sd if dev is self.dev else self.other_sd
        existing = sd.children.get(f"resource{bar}_wc" if wc else f"resource{bar}")
        if existing is not None:
            return existing
        res = dev.resource[bar]
        io = bool(res.flags & IORESOURCE_IO)
        has_mmap = wc or not io
        mapping = None
        if has_mmap and self.profile.revoke_pci_mmaps and not self.profile.mapping_at_open:
            mapping = self.tree.iomem_get_mapping()
        attr = self.sysfs.alloc_bin_attribute(
            f"resource{bar}_wc" if wc else f"resource{bar}", size=res.end - res.start + 1,
            bar=bar, wc=wc, has_mmap=has_mmap, has_rw=io and not wc, mapping=mapping,
            dev=dev)
        assert self.sysfs.sysfs_create_bin_file(sd, attr) == 0
        return sd.children[attr.name]

    def open(self, bar: int, **kw):
        file = self.pci.sysfs_open(self.proc, self.create(bar, **kw))
        assert not isinstance(file, int), file
        return file

    def mmap(self, file, pgoff: int = 0, npages: int = 1, **kw):
        return self.mm.mmap(file, pgoff, npages, **kw)

    def proc_open(self, dev=None, *, mem: bool = True, proc=None):
        file = self.pci.proc_open(proc or self.proc, dev or self.dev, object())
        assert not isinstance(file, int)
        if mem:
            assert self.pci.proc_ioctl(file, PCIIOC_MMAP_IS_MEM) == 0
        return file


# --- sysfs mmap (spec §4.6) -------------------------------------------------------------

def test_sysfs_mmap_links_at_physical_pfn():
    s = System()
    file = s.open(0)
    assert file.f_mapping is s.devmem.iomem_inode
    vma = s.mmap(file)
    assert vma.pgoff == BAR0 >> 12 and vma.mapping is s.devmem.iomem_inode
    assert vma.made_for == Target(TARGET_BAR, "0000:00:03.0", 0, 0)
    hit = s.mm.touch(vma, 0x10)
    assert hit.target == Target(TARGET_BAR, "0000:00:03.0", 0, 0x10)


def test_d24_pgoff_past_bar():
    s = System()
    assert s.mmap(s.open(0), pgoff=1) == -errno.EINVAL
    assert s.mmap(s.open(0), npages=2) == -errno.EINVAL
    assert not isinstance(s.mmap(s.open(2), pgoff=0xFF), int)


def test_d25_claimed_bar_refuses_new_mmaps():
    s = System()
    s.tree.request_mem_region(BAR2, 0x100000, "drv")
    assert s.mmap(s.open(2)) == -errno.EINVAL
    assert s.mmap(s.open(2, wc=True)) == -errno.EINVAL


def test_exclusivity_checks_first_page_only():
    s = System()
    s.tree.request_mem_region(BAR2 + 0x10000, PAGE, "drv")  # a page in the middle
    vma = s.mmap(s.open(2), pgoff=0x10)  # maps exactly the claimed page
    assert not isinstance(vma, int)
    assert s.mm.touch(vma, 0).ok


def test_sysfs_mmap_lockdown_and_no_mmap_for_io_bar():
    s = System(replace(DEFAULT, lockdown=LOCKDOWN_INTEGRITY))
    assert s.mmap(s.open(0)) == -errno.EPERM
    t = System()
    assert t.mmap(t.open(4)) == -errno.ENODEV


def test_sysfs_mmap_needs_no_capability():
    s = System()
    weak = s.mm.spawn(frozenset({CAP_SYS_ADMIN}))
    file = s.pci.sysfs_open(weak, s.create(0))
    assert not isinstance(s.mmap(file), int)


def test_small_bar_maps_the_neighbours_registers():
    s = System()
    vma = s.mmap(s.open(3))
    assert vma.pgoff == SMALL >> 12
    neighbour = s.mm.touch(vma, 0x10)
    assert neighbour.target == Target(TARGET_BAR, "0000:00:04.0", 0, 0x10)
    own = s.mm.touch(vma, 0x810)
    assert own.target == Target(TARGET_BAR, "0000:00:03.0", 3, 0x10)


def test_b7_sysfs_neighbour_claim_zaps_whole_page():
    s = System()
    vma = s.mmap(s.open(3))
    s.tree.request_mem_region(NEIGHBOUR, 0x100, "other-drv")
    assert s.mm.touch(vma, 0x810).status == ACCESS_SIGBUS
    # The BAR's first page is now exclusive: new mmaps of resource3 fail.
    assert s.mmap(s.open(3)) == -errno.EINVAL


# --- claims, removal and versions -------------------------------------------------------------

def test_claim_revokes_sysfs_mapping_and_unbind_restores_nothing():
    s = System()
    vma = s.mmap(s.open(0))
    s.tree.request_mem_region(BAR0, PAGE, "drv")
    assert vma.pte(0) == PTE_NONE and s.mm.touch(vma, 0).status == ACCESS_SIGBUS
    s.tree.release_mem_region(BAR0, PAGE)
    assert s.mm.touch(vma, 0).status == ACCESS_SIGBUS  # still dead after unbind
    fresh = s.mmap(s.open(0))
    assert s.mm.touch(fresh, 0).ok


@pytest.mark.parametrize("name", ["v5.8", "v5.7"])
def test_b10_sysfs_mapping_not_revoked_before_512(name):
    s = System(PROFILES[name])
    node = s.create(0)
    file = s.pci.sysfs_open(s.proc, node)
    assert file.f_mapping is not s.devmem.iomem_inode
    vma = s.mmap(file)
    s.tree.request_mem_region(BAR0, PAGE, "drv")
    assert s.mm.touch(vma, 0).ok
    # Removing the file zaps it (the kernfs inode's own mapping).
    s.sysfs.kernfs_remove(node)
    assert vma.pte(0) == PTE_NONE


def test_48_removal_zaps_nothing_since_512():
    s = System()
    node = s.create(0)
    vma = s.mmap(s.pci.sysfs_open(s.proc, node))
    s.sysfs.kernfs_remove(node)
    assert vma.pte(0) == PTE_PFN and s.mm.touch(vma, 0).ok
    # ptrace goes through the kernfs wrapper, which refuses a removed file.
    assert s.mm.generic_access_phys(vma, 0)[0] == -errno.EINVAL
    assert s.mm.access_remote(vma, 0)[0] == -errno.EIO  # what the debugger sees
    assert s.pci.sysfs_open(s.proc, node) == -errno.ENODEV


def test_512_mapping_captured_at_creation():
    s = System(PROFILES["v5.12"])
    vma = s.mmap(s.open(0))
    assert vma.mapping is s.devmem.iomem_inode
    s.tree.request_mem_region(BAR0, PAGE, "drv")
    assert vma.pte(0) == PTE_NONE


def test_b11a_uncaptured_mapping_stays_on_kernfs():
    s = System(PROFILES["v5.12"])
    node = s.create(0)
    node.priv.mapping = None  # what the legacy_mem typo leaves behind
    vma = s.mmap(s.pci.sysfs_open(s.proc, node))
    s.tree.request_mem_region(BAR0, PAGE, "drv")
    assert vma.pte(0) == PTE_PFN


def test_b25_open_resource_file_oopses():
    s = System(PROFILES["test-iomem-inode-fails"])
    node = s.create(0)
    assert s.pci.sysfs_open(s.proc, node) == -errno.EFAULT
    assert [e.kind for e in s.log.events if e.kind == NULL_DEREF] == [NULL_DEREF]
    # An I/O BAR file has no mmap and no f_mapping callback: it opens fine.
    assert not isinstance(s.pci.sysfs_open(s.proc, s.create(4)), int)


# --- lseek (B11b) ---------------------------------------------------------------------

LSEEK = [
    ("v6.1-deb", SEEK_END, 0, 0),  # B11b: the iomem inode has size 0
    ("v6.1-deb", SEEK_END, -4, -errno.EINVAL),
    ("v6.1-deb", SEEK_SET, 0x2000, 0x2000),
    ("next-2026", SEEK_END, 0, PAGE),
    ("next-2026", SEEK_SET, 0x2000, -errno.EINVAL),
    ("v5.8", SEEK_END, 0, PAGE),  # kernfs inode sized by the attribute
]


@pytest.mark.parametrize(("name", "whence", "offset", "expected"), LSEEK)
def test_lseek(name, whence, offset, expected):
    s = System(PROFILES[name])
    file = s.open(0)
    assert s.pci.sysfs_llseek(file, offset, whence) == expected


def test_lseek_cur():
    s = System()
    file = s.open(0)
    s.pci.sysfs_llseek(file, 0x10, SEEK_SET)
    assert s.pci.sysfs_llseek(file, 0x10, SEEK_CUR) == 0x20


# --- read/write ------------------------------------------------------------------------

def test_sysfs_read_write():
    s = System()
    mem = s.open(0)
    assert s.pci.sysfs_read(mem, 0, 4) == -errno.EIO
    io = s.open(4)
    assert s.pci.sysfs_read(io, 0x4, 4) == 4
    access = [e for e in s.log.events if e.get(ACCESS_KEY)][-1]
    assert access.get("space") == "io" and access.get("phys") == IO4 + 4
    assert s.pci.sysfs_read(io, 0x4, 3) == -errno.EINVAL
    assert s.pci.sysfs_read(io, 0x1E, 4) == 2  # clamped to 2 bytes: an inw
    assert s.pci.sysfs_read(io, 0x20, 4) == 0
    assert s.pci.sysfs_write(io, 0x20, 4) == -errno.EFBIG
    assert s.pci.sysfs_write(io, 0x0, 1) == 1
    # Port I/O ignores claims entirely.
    s.tree.request_region(IO4, 0x20, "drv")
    assert s.pci.sysfs_read(io, 0x0, 1) == 1


# --- procfs ------------------------------------------------------------------------------

def test_procfs_mmap():
    s = System()
    file = s.proc_open(mem=False)
    assert s.mm.mmap(file, BAR0 >> 12, 1) == -errno.EINVAL  # opened in I/O state
    assert s.pci.proc_ioctl(file, PCIIOC_MMAP_IS_IO) == -errno.EINVAL
    assert s.pci.proc_ioctl(file, PCIIOC_MMAP_IS_MEM) == 0
    vma = s.mm.mmap(file, BAR0 >> 12, 1)
    assert vma.pgoff == BAR0 >> 12 and vma.mapping is s.devmem.iomem_inode
    assert s.mm.mmap(file, (BAR2 >> 12) + 0x100, 1) == -errno.ENODEV
    # The page after BAR0 holds the small BAR3, so it fits that one.
    assert s.mm.mmap(file, (BAR0 >> 12) + 1, 1).made_for.bar == 3
    vma2 = s.mm.mmap(file, (BAR2 >> 12) + 3, 2)
    assert vma2.pgoff == (BAR2 >> 12) + 3
    s.tree.request_mem_region(BAR0, PAGE, "drv")
    assert vma.pte(0) == PTE_NONE
    assert s.mm.mmap(file, BAR0 >> 12, 1) == -errno.EINVAL


def test_procfs_mmap_checks():
    s = System()
    weak = s.mm.spawn(frozenset({CAP_SYS_ADMIN}))
    assert s.mm.mmap(s.proc_open(proc=weak), BAR0 >> 12, 1) == -errno.EPERM
    file = s.proc_open()
    assert s.pci.proc_ioctl(file, PCIIOC_WRITE_COMBINE, 1) == 0
    assert s.mm.mmap(file, BAR0 >> 12, 1) == -errno.EINVAL  # WC on non-prefetchable
    assert not isinstance(s.mm.mmap(file, BAR2 >> 12, 1), int)
    locked = System(replace(DEFAULT, lockdown=LOCKDOWN_INTEGRITY))
    f = locked.pci.proc_open(locked.proc, locked.dev, object())
    assert locked.pci.proc_ioctl(f, PCIIOC_MMAP_IS_MEM) == -errno.EPERM


def test_b10_procfs_before_512():
    s = System(PROFILES["v5.8"])
    file = s.proc_open()
    vma = s.mm.mmap(file, BAR0 >> 12, 1)
    s.tree.request_mem_region(BAR0, PAGE, "drv")
    assert vma.pte(0) == PTE_PFN  # not in the revoked space
    assert not isinstance(s.mm.mmap(file, BAR0 >> 12, 1), int)  # no exclusivity check
    assert not [e for e in s.log.events if e.kind == UNMAP]


# --- D21 through the whole kernel (pci_sysfs makes the files) ------------------------------

def test_d21_resource_files_map_as_their_attribute_says():
    from iomemfuzz.model.kernel import Kernel
    from iomemfuzz.model.pci import PciDeviceSpec, bar_specs

    kernel = Kernel()
    spec = PciDeviceSpec("0000:00:03.0", bar_specs(
        {0: "mem:0x1000", 2: "mem:0x100000:pref", 4: "io:0x20"}))
    kernel.sched.call(kernel.pci.hot_add(spec), "hotadd")
    dev = kernel.pci.find("0000:00:03.0")
    files = kernel.sysfs.files(dev.sd)
    assert {"resource0", "resource2", "resource2_wc", "resource4"} <= set(files)
    proc = kernel.mm.init
    prots = {}
    for name in ("resource0", "resource2", "resource2_wc"):
        file = kernel.pci_mmap.sysfs_open(proc, kernel.sysfs.lookup(f"{dev.path()}/{name}"))
        vma = kernel.mm.mmap(file, 0, 1)
        prots[name] = vma.prot
        assert vma.mapping is kernel.devmem.iomem_inode
    assert prots == {"resource0": "uc", "resource2": "uc", "resource2_wc": "wc"}
    io = kernel.pci_mmap.sysfs_open(proc, kernel.sysfs.lookup(f"{dev.path()}/resource4"))
    assert io.f_mapping is not kernel.devmem.iomem_inode  # no mmap, no f_mapping callback
    assert io.inode_size == 0x20
    assert kernel.mm.mmap(io, 0, 1) == -errno.ENODEV
    assert kernel.pci_mmap.sysfs_read(io, 0, 1) == 1
