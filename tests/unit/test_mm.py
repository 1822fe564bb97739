"""model/mm.py: VMAs, unmap_mapping_range rounding (spec §4.5), faults, COW, ptrace
access, the populate-before-link window (spec §4.7) and kernfs draining (spec §4.8)."""

from __future__ import annotations

import pytest
from iomemfuzz.model import errno
from iomemfuzz.model.event import INFO, SIGBUS, UNMAP, Log
from iomemfuzz.model.mm import (
    ACCESS_KEY,
    ACCESS_OK,
    ACCESS_SIGBUS,
    ACCESS_SIGSEGV,
    PTE_COW,
    PTE_NONE,
    PTE_PFN,
    TARGET_ANON,
    TARGET_NONE,
    U64_MAX,
    AddressSpace,
    FileOps,
    Mm,
    PageRanges,
    Target,
)
from iomemfuzz.model.profile import DEFAULT
from iomemfuzz.model.sched import Point


def _mm() -> Mm:
    return Mm(DEFAULT, Log())


def _open(mm: Mm, space: AddressSpace, *, proc=None):
    """A file whose ->mmap maps its offset as the physical pfn (like /dev/mem)."""
    proc = proc or mm.spawn()

    def mmap(file, vma):
        return mm.remap_pfn_range(vma, vma.pgoff)

    return mm.install_file(proc, "/dev/test", FileOps(mmap=mmap), space)


def _map(mm: Mm, space: AddressSpace, pfn: int, npages: int, **kw):
    vma = mm.mmap(_open(mm, space), pfn, npages, **kw)
    assert not isinstance(vma, int)
    return vma


# --- unmap_mapping_range rounding (spec §4.5) ----------------------------------------------

# (holebegin, holelen) -> zapped page indices (pfns) of a VMA mapping pfns 0..15.
ROUNDING = [
    (0x1000, 0x1000, (1, 1)),
    (0x1000, 0x1, (1, 1)),  # one byte zaps its whole page
    (0x1800, 0x1000, (1, 1)),  # D20: [0x1800, 0x27ff] zaps page 1 only, page 2 survives
    (0x1FFF, 0x2, (1, 1)),  # straddles pages 1-2, count ceil(2/4096) = 1
    (0x1800, 0x1801, (1, 2)),
    (0x2000, 0x2001, (2, 4)),  # count rounded up on its own
    (0x0, 0x0, (0, 15)),  # length 0: to the end of the file
    (0x3000, 0x0, (3, 15)),
    (0x0, U64_MAX, (0, 15)),  # (len + 4095) wraps to 4094 -> count 0 -> to the end
]


@pytest.mark.parametrize(("begin", "length", "zapped"), ROUNDING)
def test_unmap_mapping_range_rounding(begin, length, zapped):
    mm = _mm()
    space = AddressSpace("iomem")
    vma = _map(mm, space, 0, 16)
    touched = mm.unmap_mapping_range(space, begin, length, True)
    assert [(v, lo, hi) for v, lo, hi in touched] == [(vma, *zapped)]
    for page in range(16):
        expected = PTE_NONE if zapped[0] <= page <= zapped[1] else PTE_PFN
        assert vma.pte(page) == expected, page


def test_unmap_misses_disjoint_and_other_spaces():
    mm = _mm()
    iomem, other = AddressSpace("iomem"), AddressSpace("kernfs")
    a = _map(mm, iomem, 0x100, 2)
    b = _map(mm, other, 0x100, 2)
    assert mm.unmap_mapping_range(iomem, 0x102000, 0x1000, True) == []
    assert mm.unmap_mapping_range(iomem, 0x100000, 0x1000, True) == [(a, 0x100, 0x100)]
    assert b.pte(0) == PTE_PFN
    events = [e for e in mm.log.events if e.kind == UNMAP]
    assert len(events) == 1 and events[0].get("first_pfn") == 0x100


def test_unmap_reaches_every_process():
    mm = _mm()
    space = AddressSpace("iomem")
    vmas = [_map(mm, space, 0x200, 1) for _ in range(3)]
    assert len({v.process.pid for v in vmas}) == 3
    assert len(mm.unmap_mapping_range(space, 0x200000, 0x1000, True)) == 3
    assert all(v.pte(0) == PTE_NONE for v in vmas)


# --- access -------------------------------------------------------------------------------

def test_touch_reaches_physical_then_sigbus_after_zap():
    mm = _mm()
    mm.add_resolver(lambda addr: Target("bar", "dev", 0, addr - 0xFE000000)
                    if 0xFE000000 <= addr < 0xFE002000 else None)
    space = AddressSpace("iomem")
    vma = _map(mm, space, 0xFE000, 2)
    hit = mm.touch(vma, 0x1010)
    assert hit.status == ACCESS_OK and hit.phys == 0xFE001010
    assert hit.target == Target("bar", "dev", 0, 0x1010)
    assert any(e.kind == INFO and e.get(ACCESS_KEY) == "mmap" for e in mm.log.events)
    mm.unmap_mapping_range(space, 0xFE001000, 0x100, True)
    assert mm.touch(vma, 0x10).ok
    assert mm.touch(vma, 0x1010).status == ACCESS_SIGBUS
    assert mm.log.events[-1].kind == SIGBUS
    # Nothing refaults: still SIGBUS.
    assert mm.touch(vma, 0x1000).status == ACCESS_SIGBUS


def test_touch_unbacked_and_out_of_range():
    mm = _mm()
    vma = _map(mm, AddressSpace("iomem"), 0x5000, 1)
    assert mm.touch(vma, 0).target.kind == TARGET_NONE
    assert mm.touch(vma, 0x1000).status == ACCESS_SIGSEGV
    ro = _map(mm, AddressSpace("iomem"), 0x5000, 1, writable=False)
    assert mm.touch(ro, 0, write=True).status == ACCESS_SIGSEGV


def test_private_write_copies_and_even_cows():
    mm = _mm()
    space = AddressSpace("iomem")
    vma = _map(mm, space, 0x300, 2, shared=False)
    assert mm.touch(vma, 0).phys == 0x300000
    wrote = mm.touch(vma, 0x8, write=True)
    assert wrote.target.kind == TARGET_ANON and vma.pte(0) == PTE_COW
    assert mm.touch(vma, 0).target.kind == TARGET_ANON  # reads see the copy now
    mm.unmap_mapping_range(space, 0x300000, 0x2000, False)  # even_cows=0 keeps copies
    assert vma.pte(0) == PTE_COW and vma.pte(1) == PTE_NONE
    mm.unmap_mapping_range(space, 0x300000, 0x2000, True)
    assert vma.pte(0) == PTE_NONE
    assert mm.touch(vma, 0).status == ACCESS_SIGBUS


def test_generic_access_phys():
    mm = _mm()
    space = AddressSpace("iomem")
    shared = _map(mm, space, 0x400, 1)
    private = _map(mm, space, 0x400, 1, shared=False)
    assert mm.access_remote(shared, 0x10, 4)[0] == 4
    assert mm.access_remote(shared, 0x10, 4, write=True)[0] == 4
    assert mm.generic_access_phys(private, 0x10, 4, write=True)[0] == -errno.EINVAL
    mm.unmap_mapping_range(space, 0x400000, 0x1000, True)
    assert mm.generic_access_phys(shared, 0x10, 4) == (-errno.EINVAL, None)
    gated = _map(mm, space, 0x400, 1)
    gated.access_gate = lambda: False
    assert mm.generic_access_phys(gated, 0, 4)[0] == -errno.EINVAL


# --- lifecycle ----------------------------------------------------------------------------

def test_munmap_and_exit_unlink():
    mm = _mm()
    space = AddressSpace("iomem")
    vma = _map(mm, space, 0x10, 1)
    assert space.i_mmap == [vma]
    assert mm.munmap(vma) == 0 and space.i_mmap == []
    # Unmapping a range where nothing is mapped any more succeeds (do_mas_munmap).
    assert mm.munmap(vma) == 0 and space.i_mmap == []
    assert mm.touch(vma, 0).status == ACCESS_SIGSEGV
    other = _map(mm, space, 0x10, 1)
    assert mm.exit(other.process) == 0
    assert space.i_mmap == [] and not other.process.alive and other.process.files == []
    assert mm.unmap_mapping_range(space, 0, 0, True) == []


def test_mmap_errors():
    mm = _mm()
    space = AddressSpace("iomem")
    file = _open(mm, space)
    assert mm.mmap(file, 0, 0) == -errno.EINVAL
    assert mm.mmap(file, 0, 1 << 40) == -errno.ENOMEM
    bare = mm.install_file(mm.spawn(), "/x", FileOps(), space)
    assert mm.mmap(bare, 0, 1) == -errno.ENODEV
    ro = mm.install_file(mm.spawn(), "/x", file.f_op, space, writable=False)
    assert mm.mmap(ro, 0, 1) == -errno.EACCES
    assert not isinstance(mm.mmap(ro, 0, 1, writable=False), int)
    mm.close(file)
    assert mm.mmap(file, 0, 1) == -errno.EBADF


# --- the populate-before-link window (spec §4.7) ----------------------------------------

def test_mmap_window_hides_vma_from_revocation():
    mm = _mm()
    space = AddressSpace("iomem")
    file = _open(mm, space)
    path = mm.mmap_region(file, 0x500, 1)
    parked = next(path)
    assert isinstance(parked, Point)
    assert mm.pending and space.i_mmap == []
    assert mm.live_pages_over(0x500000, 0x500fff) == []
    assert len(mm.live_pages_over(0x500000, 0x500fff, linked_only=False)) == 1
    # The revocation runs now: it walks i_mmap and finds nothing.
    assert mm.unmap_mapping_range(space, 0x500000, 0x1000, True) == []
    with pytest.raises(StopIteration) as done:
        next(path)
    vma = done.value.value
    assert space.i_mmap == [vma] and vma.pte(0) == PTE_PFN
    assert mm.touch(vma, 0).ok  # live PTEs over a claimed range
    assert mm.unmap_mapping_range(space, 0x500000, 0x1000, True) != []


def test_mmap_window_process_killed():
    mm = _mm()
    space = AddressSpace("iomem")
    file = _open(mm, space)
    path = mm.mmap_region(file, 0x500, 1)
    next(path)
    mm.exit(file.process)
    with pytest.raises(StopIteration) as done:
        next(path)
    assert done.value.value == -errno.EBADF and space.i_mmap == [] and not mm.pending


# --- kernfs (spec §4.8) ---------------------------------------------------------------

def test_kernfs_drain_zaps_only_the_nodes_own_inode():
    mm = _mm()
    node, iomem = object(), AddressSpace("iomem")
    own = mm.inode_mapping(node, "/sys/x/resource0", 0x1000)
    assert mm.inode_mapping(node, "ignored") is own
    pre512 = _map(mm, own, 0x600, 1)
    post512 = _map(mm, iomem, 0x600, 1)
    mm.kernfs_drain_open_files(node)
    assert pre512.pte(0) == PTE_NONE
    assert post512.pte(0) == PTE_PFN
    mm.kernfs_drain_open_files(object())  # a node nobody opened: nothing happens


def test_page_ranges():
    ranges = PageRanges()
    ranges.add(5, 9)
    ranges.add(1, 2)
    ranges.add(3, 4)
    assert ranges.spans() == ((1, 9),)
    assert list(ranges.complement(0, 12)) == [(0, 0), (10, 12)]
    assert 9 in ranges and 10 not in ranges


def test_live_pages_over():
    mm = _mm()
    space = AddressSpace("iomem")
    vma = _map(mm, space, 0x700, 4)
    mm.unmap_mapping_range(space, 0x701000, 0x1000, True)
    assert mm.live_pages_over(0x700800, 0x7028ff) == [(vma, 0x700, 0x700), (vma, 0x702, 0x702)]
    assert mm.live_pages_over(0x701000, 0x701fff) == []
