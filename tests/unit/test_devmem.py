"""model/devmem.py: devmem_is_allowed (spec §3.1, D17), open/mmap/read/write of /dev/mem
(§3.2-3.4), the config matrix (§3.6), revoke_iomem (§4.2, D18-D20), the iomem inode
lifecycle (§4.4, B24, B25) and the fail-instead-of-revoke design (B15)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from iomemfuzz.model import errno
from iomemfuzz.model.devmem import (
    DEVMEM_ALLOW,
    DEVMEM_DENY,
    DEVMEM_ZERO,
    Devmem,
    MemoryResolver,
)
from iomemfuzz.model.event import NULL_DEREF, REVOKE_SKIPPED, UNMAP, WARN, Log
from iomemfuzz.model.ioport import (
    IORESOURCE_BUSY,
    IORESOURCE_EXCLUSIVE,
    IORESOURCE_MEM,
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
    TARGET_FIRMWARE,
    TARGET_RAM,
    Mm,
)
from iomemfuzz.model.profile import (
    CLAIM_FAIL,
    DEFAULT,
    IOMEM_RELAXED,
    IOMEM_STRICT,
    LOCKDOWN_INTEGRITY,
    PROFILES,
)
from iomemfuzz.model.resource_tree import ResourceTree

RAM_BUSY = IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY
MMIO = 0xFE000000  # an idle MMIO page inside the PCI window, well above RAM
PAGE = 0x1000


class System:
    """Tree + mm + devmem wired the way model/kernel.py wires them, booted to userspace."""

    def __init__(self, profile=DEFAULT, *, boot: bool = True, high_ram: bool = False):
        self.log = Log()
        self.tree = ResourceTree(profile, self.log)
        # D16's tree plus a PCI window: RAM [0, 0x9ffff], a non-busy legacy window,
        # RAM from 1 MiB, and a window holding MMIO.
        layout = [
            (0x0, 0x9FFFF, "System RAM", RAM_BUSY),
            (0xA0000, 0xBFFFF, "PCI Bus 0000:00", IORESOURCE_MEM),
            (0xF0000, 0xFFFFF, "System ROM", IORESOURCE_MEM | IORESOURCE_BUSY),
            (0x100000, 0x7FFFFFFF, "System RAM", RAM_BUSY),
            (0xC0000000, 0xFEFFFFFF, "PCI Bus 0000:00", IORESOURCE_MEM),
        ]
        if high_ram:  # RAM above 4 GiB puts the MMIO hole below high_memory
            layout.append((0x100000000, 0x13FFFFFFF, "System RAM", RAM_BUSY))
        for start, end, name, flags in layout:
            assert self.tree.request_resource(self.tree.iomem_resource,
                                              Resource(start, end, name, flags)) == 0
        self.mm = Mm(profile, self.log)
        self.devmem = Devmem(profile, self.log, self.tree, self.mm)
        self.tree.revoke_hook = self.tree.revoke_iomem
        if profile.claim_policy == CLAIM_FAIL:
            self.tree.claim_veto_hook = self.devmem.claim_veto
        self.mm.add_resolver(MemoryResolver(physical_map_of(shape(self.tree.iomem_resource))))
        if boot:
            self.tree.iomem_init_inode()
            self.devmem.chr_dev_init()
        self.proc = self.mm.spawn()

    def open(self, proc=None):
        file = self.devmem.open_mem(proc or self.proc)
        assert not isinstance(file, int), file
        return file

    def mmap(self, addr: int, size: int = PAGE, **kw):
        return self.mm.mmap(self.open(), addr >> 12, (size + PAGE - 1) >> 12, **kw)

    def claim(self, start: int, n: int, flags: int = 0):
        return self.tree.request_mem_region(start, n, "drv") if not flags else \
            self.tree._request_region(self.tree.iomem_resource, start, n, "drv", flags)

    def kinds(self, kind: str):
        return [e for e in self.log.events if e.kind == kind]


def profile(**changes):
    return replace(DEFAULT, **changes)


# --- devmem_is_allowed (spec §3.1) ---------------------------------------------------------

def test_d17_devmem_is_allowed():
    s = System()
    assert s.devmem.devmem_is_allowed(0x9F) == DEVMEM_ZERO  # low-1 MiB RAM
    assert s.devmem.devmem_is_allowed(0xA0) == DEVMEM_ALLOW  # non-busy legacy window
    assert s.devmem.devmem_is_allowed(0x200) == DEVMEM_DENY  # RAM above 1 MiB
    assert s.devmem.devmem_is_allowed(0xF0) == DEVMEM_ALLOW  # busy, but below 1 MiB
    assert s.devmem.devmem_is_allowed(MMIO >> 12) == DEVMEM_ALLOW
    s.claim(MMIO, PAGE)
    assert s.devmem.devmem_is_allowed(MMIO >> 12) == DEVMEM_DENY


# --- open (spec §3.2, §4.4) -------------------------------------------------------------

def test_open_mem_checks():
    s = System()
    assert s.devmem.open_mem(s.mm.spawn(frozenset({CAP_SYS_ADMIN}))) == -errno.EPERM
    file = s.open()
    assert file.f_mapping is s.devmem.iomem_inode
    locked = System(profile(lockdown=LOCKDOWN_INTEGRITY))
    assert locked.devmem.open_mem(locked.proc) == -errno.EPERM
    early = System(boot=False)
    assert early.devmem.open_mem(early.proc) == -errno.ENOENT


def test_b25_iomem_init_inode_fails():
    s = System(PROFILES["test-iomem-inode-fails"])
    assert s.devmem.iomem_inode is None and s.kinds(WARN)
    assert s.devmem.open_mem(s.proc) == -errno.EFAULT
    assert [e.get("where") for e in s.kinds(NULL_DEREF)] == ["iomem_get_mapping"]
    # Revocation is silently off forever.
    s.claim(MMIO, PAGE)
    assert [e.get("reason") for e in s.kinds(REVOKE_SKIPPED)] == ["no-inode"]


def test_b25_on_v58_is_a_missing_node():
    s = System(replace(PROFILES["v5.8"], iomem_init_inode_fails=True))
    assert s.devmem.open_mem(s.proc) == -errno.ENOENT
    assert not s.kinds(NULL_DEREF)


def test_b24_premerge_null_mapping():
    s = System(PROFILES["test-premerge-null-mapping"])
    assert s.devmem.open_mem(s.proc) == -errno.EFAULT
    assert [e.get("where") for e in s.kinds(NULL_DEREF)] == ["do_dentry_open"]
    fixed = System(replace(PROFILES["test-premerge-null-mapping"],
                           premerge_null_mapping_without_io_strict=False))
    assert not isinstance(fixed.devmem.open_mem(fixed.proc), int)


def test_early_userspace_open_before_init_oopses():
    s = System(PROFILES["test-early-userspace"], boot=False)
    assert s.devmem.open_mem(s.proc) == -errno.EFAULT
    assert s.kinds(NULL_DEREF)


# --- mmap_mem (spec §3.3) ---------------------------------------------------------------

MMAP_CASES = [
    # (addr, size, expected)  on the default profile
    (MMIO, PAGE, None),
    (0x0, 0x100000, None),  # B22: all of the low MiB, RAM included (value 2 is allowed)
    (0x200000, PAGE, -errno.EPERM),  # RAM above 1 MiB
    (0x9F000, 0x2000, None),  # RAM page + legacy window page
    (0xFF000, 0x2000, -errno.EPERM),  # System ROM page ok, then RAM page at 1 MiB
    (1 << 40, PAGE, -errno.EINVAL),  # beyond the CPU's 40 address bits
]


@pytest.mark.parametrize(("addr", "size", "expected"), MMAP_CASES)
def test_mmap_mem(addr, size, expected):
    s = System()
    vma = s.mmap(addr, size)
    if expected is None:
        assert not isinstance(vma, int) and vma.pte(0) == PTE_PFN
        assert vma.mapping is s.devmem.iomem_inode
    else:
        assert vma == expected


def test_mmap_mem_refuses_claimed_then_allows_after_release():
    s = System()
    s.claim(MMIO, PAGE)
    assert s.mmap(MMIO) == -errno.EPERM
    s.tree.release_mem_region(MMIO, PAGE)
    assert not isinstance(s.mmap(MMIO), int)


# --- read/write (spec §3.4) -------------------------------------------------------------

def test_read_mem():
    s = System()
    file = s.open()
    assert s.devmem.read_mem(file, 0x400, 0x10) == 0x10  # zeros: no access recorded
    assert not [e for e in s.log.events if e.get(ACCESS_KEY)]
    assert s.devmem.read_mem(file, 0x200000, 4) == -errno.EPERM
    assert s.devmem.read_mem(file, MMIO, 4) == -errno.EFAULT  # above the end of RAM
    assert s.devmem.read_mem(file, 0x9FFF0, 0x20) == 0x20  # zero page then window page
    assert s.devmem.read_mem(file, 0xFFFF0, 0x20) == -errno.EPERM  # earlier bytes lost
    assert s.devmem.read_mem(file, 0x0, 0) == -errno.EFAULT  # 0 + 0 - 1 wraps
    assert s.devmem.read_mem(file, 0x1000, 0) == 0


def test_read_mem_mmio_below_top_of_ram_reaches_it():
    s = System(high_ram=True)
    file = s.open()
    assert s.devmem.read_mem(file, MMIO, 4) == 4
    access = [e for e in s.log.events if e.get(ACCESS_KEY)]
    assert access[-1].get("phys") == MMIO
    s.claim(MMIO, PAGE)
    assert s.devmem.read_mem(file, MMIO, 4) == -errno.EPERM


def test_write_mem():
    s = System()
    file = s.open()
    assert s.devmem.write_mem(file, 0x400, 8) == 8  # skipped but counted
    assert not [e for e in s.log.events if e.get(ACCESS_KEY)]
    assert s.devmem.write_mem(file, 0xA0000, 8) == 8
    assert s.devmem.write_mem(file, 0x200000, 8) == -errno.EPERM
    assert s.devmem.write_mem(file, MMIO, 8) == -errno.EFAULT


def test_b22_read_zeros_but_mmap_real_bytes():
    s = System()
    file = s.open()
    assert s.devmem.read_mem(file, 0x400, 4) == 4
    assert not [e for e in s.log.events if e.get(ACCESS_KEY)]
    vma = s.mmap(0)
    access = s.mm.touch(vma, 0x400)
    assert access.ok and access.target.kind == TARGET_RAM


def test_memory_resolver_firmware():
    s = System()
    vma = s.mmap(0xF0000)
    assert s.mm.touch(vma, 0).target.kind == TARGET_FIRMWARE


# --- §3.6 config matrix ---------------------------------------------------------------

# Profile overrides -> (mmap of RAM at 2 MiB, idle MMIO, busy MMIO, busy+EXCLUSIVE MMIO,
# what a claim over an existing /dev/mem mapping does).
MATRIX = [
    (dict(strict_devmem=False, io_strict_devmem=False),
     (-errno.EINVAL, 0, 0, 0, "io_strict_devmem=n")),
    (dict(strict_devmem=False, io_strict_devmem=False, iomem_cmdline=IOMEM_STRICT),
     (-errno.EINVAL, 0, 0, -errno.EINVAL, "io_strict_devmem=n")),
    (dict(io_strict_devmem=False), (-errno.EPERM, 0, 0, -errno.EPERM, "io_strict_devmem=n")),
    (dict(io_strict_devmem=False, iomem_cmdline=IOMEM_RELAXED),
     (-errno.EPERM, 0, 0, 0, "io_strict_devmem=n")),
    (dict(), (-errno.EPERM, 0, -errno.EPERM, -errno.EPERM, "unmap")),
    (dict(iomem_cmdline=IOMEM_RELAXED), (-errno.EPERM, 0, 0, 0, "ends-allowed")),
]


def _result(vma) -> int:
    return vma if isinstance(vma, int) else 0


@pytest.mark.parametrize(("changes", "expected"), MATRIX)
def test_config_matrix(changes, expected):
    s = System(profile(**changes))
    ram = _result(s.mmap(0x200000))
    idle = _result(s.mmap(MMIO))
    s.claim(MMIO + 0x10000, PAGE)
    busy = _result(s.mmap(MMIO + 0x10000))
    s.claim(MMIO + 0x20000, PAGE, IORESOURCE_EXCLUSIVE)
    excl = _result(s.mmap(MMIO + 0x20000))
    victim = s.mmap(MMIO + 0x30000)
    s.claim(MMIO + 0x30000, PAGE)
    if s.kinds(UNMAP):
        revoke = "unmap"
        assert victim.pte(0) == PTE_NONE
    else:
        revoke = s.kinds(REVOKE_SKIPPED)[-1].get("reason")
        assert victim.pte(0) == PTE_PFN
    assert (ram, idle, busy, excl, revoke) == expected


def test_pat_off_without_strict_devmem_maps_ram():
    s = System(profile(strict_devmem=False, io_strict_devmem=False, pat_enabled=False))
    assert not isinstance(s.mmap(0x200000), int)


# --- revoke_iomem (spec §4.2, §4.5) --------------------------------------------------------

def test_d18_low_claim_never_revokes():
    s = System()
    vma = s.mmap(0xA0000, 0x20000)
    res = s.claim(0xA0000, 0x20000)
    assert res is not None and res.parent.name == "PCI Bus 0000:00"
    assert [e.get("reason") for e in s.kinds(REVOKE_SKIPPED)] == ["ends-allowed"]
    assert s.mm.touch(vma, 0x10).ok


def test_d19_claim_unmaps_one_page():
    s = System()
    vma = s.mmap(MMIO - PAGE, 3 * PAGE)
    s.claim(MMIO, PAGE)
    assert [(e.get("first_pfn"), e.get("last_pfn")) for e in s.kinds(UNMAP)] == \
        [(0xFE000, 0xFE000)]
    assert [vma.pte(i) for i in range(3)] == [PTE_PFN, PTE_NONE, PTE_PFN]
    assert s.mm.touch(vma, PAGE).status == ACCESS_SIGBUS
    assert s.mm.generic_access_phys(vma, PAGE)[0] == -errno.EINVAL
    assert s.mm.access_remote(vma, PAGE)[0] == -errno.EIO  # what the debugger sees


def test_d20_unaligned_claim_leaves_last_page_mapped():
    s = System()
    vma = s.mmap(MMIO, 3 * PAGE)
    s.claim(MMIO + 0x1800, 0x1000)  # [0xfe001800, 0xfe0027ff]
    assert [vma.pte(i) for i in range(3)] == [PTE_PFN, PTE_NONE, PTE_PFN]
    assert s.mm.touch(vma, 0x2010).ok  # a claimed byte, still reachable
    assert s.mmap(MMIO + 0x2000) == -errno.EPERM  # though page 2 refuses new mmaps


def test_b7_collateral_on_neighbour():
    s = System()
    vma = s.mmap(MMIO)
    s.claim(MMIO + 0x800, 0x100)
    assert s.mm.touch(vma, 0x10).status == ACCESS_SIGBUS  # an unclaimed byte
    assert s.mmap(MMIO) == -errno.EPERM


def test_revoke_reaches_private_cow_copies():
    s = System()
    vma = s.mmap(MMIO, shared=False)
    s.mm.touch(vma, 0, write=True)
    s.claim(MMIO, PAGE)
    assert vma.pte(0) == PTE_NONE


def test_revocation_only_through_request_region():
    """B14: request_resource with BUSY and __request_region under a child never revoke."""
    s = System()
    vma = s.mmap(MMIO, 2 * PAGE)
    node = Resource(MMIO, MMIO + PAGE - 1, "busy", IORESOURCE_MEM | IORESOURCE_BUSY)
    window = _window(s)
    assert s.tree.request_resource(window, node) == 0
    assert s.tree._request_region(window, MMIO + PAGE, PAGE, "child", 0) is not None
    assert not s.kinds(UNMAP) and not s.kinds(REVOKE_SKIPPED)
    assert s.mm.touch(vma, 0).ok and s.mm.touch(vma, PAGE).ok
    assert s.mmap(MMIO) == -errno.EPERM


def _window(s: System) -> Resource:
    for node in s.tree.iomem_resource.children():
        if node.start == 0xC0000000:
            return node
    raise AssertionError("no window")


def test_no_revocation_before_v58():
    s = System(PROFILES["v5.7"])
    vma = s.mmap(MMIO)
    assert vma.mapping is not None and vma.mapping.name == "/dev/mem inode"
    s.claim(MMIO, PAGE)
    assert not s.kinds(UNMAP) and not s.kinds(REVOKE_SKIPPED)
    assert s.mm.touch(vma, 0).ok
    assert s.mmap(MMIO) == -errno.EPERM  # IO_STRICT still refuses new mappings


def test_v58_revokes_devmem():
    s = System(PROFILES["v5.8"])
    vma = s.mmap(MMIO)
    s.claim(MMIO, PAGE)
    assert vma.pte(0) == PTE_NONE


def test_request_free_mem_region_revokes():
    s = System()
    first = s.tree.request_free_mem_region(_window(s), 0x8000000, "hmm")
    assert isinstance(first, Resource)
    start, size = first.start, first.end - first.start + 1
    s.tree.release_mem_region(start, size)
    vma = s.mmap(start)
    again = s.tree.request_free_mem_region(_window(s), 0x8000000, "hmm")
    assert isinstance(again, Resource) and again.start == start
    assert vma.pte(0) == PTE_NONE


def test_revoke_window_race_leaves_live_ptes():
    """Spec §4.7: the claim's revoke runs while the mmap is parked before vma_link."""
    s = System()
    path = s.mm.mmap_region(s.open(), MMIO >> 12, 1)
    next(path)
    s.claim(MMIO, PAGE)
    with pytest.raises(StopIteration) as done:
        next(path)
    vma = done.value.value
    assert vma.pte(0) == PTE_PFN and s.mm.touch(vma, 0).ok
    assert s.mmap(MMIO) == -errno.EPERM


# --- the fail-instead-of-revoke design (B15) -----------------------------------------------

def test_claim_fails_while_mapped():
    s = System(PROFILES["v6.1-deb-claim-fails"])
    vma = s.mmap(MMIO)
    assert s.claim(MMIO + 0x800, 0x100) is None  # a byte of a mapped page
    assert s.mm.touch(vma, 0x10).ok
    assert s.claim(MMIO + PAGE, PAGE) is not None  # the next page is not mapped
    s.mm.munmap(vma)
    assert s.claim(MMIO, 0x800) is not None


def test_claim_fails_only_where_revocation_would_apply():
    s = System(replace(PROFILES["v6.1-deb-claim-fails"], iomem_cmdline=IOMEM_RELAXED))
    s.mmap(MMIO)
    assert s.claim(MMIO, PAGE) is not None
