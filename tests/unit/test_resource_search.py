"""Queries over the iomem tree: region_intersects (spec §8.2 under both algorithms),
find_next_iomem_res and the walkers, page_is_ram, resource_is_exclusive /
iomem_is_exclusive, iomem_map_sanity_check and the free-region allocators."""

from __future__ import annotations

from dataclasses import replace

import pytest
from iomemfuzz.model import event
from iomemfuzz.model.errno import EINVAL, ENODEV, ERANGE
from iomemfuzz.model.ioport import (
    IORES_DESC_ACPI_TABLES,
    IORES_DESC_DEVICE_PRIVATE_MEMORY,
    IORES_DESC_NONE,
    IORESOURCE_BUSY,
    IORESOURCE_EXCLUSIVE,
    IORESOURCE_MEM,
    IORESOURCE_SYSTEM_RAM,
    U64_MAX,
    Resource,
)
from iomemfuzz.model.profile import DEFAULT, resolve
from iomemfuzz.model.resource import PAGE_SIZE, REGION_DISJOINT, REGION_INTERSECTS, REGION_MIXED
from iomemfuzz.model.resource_check import tree_problems
from iomemfuzz.model.resource_iomem import GFR_DEFAULT_ALIGN, PHYSMEM_END
from iomemfuzz.model.resource_tree import ResourceTree

MEM = IORESOURCE_MEM
BUSY = IORESOURCE_BUSY
RAM = IORESOURCE_SYSTEM_RAM | BUSY
M = 0x100000
K = 0x400
PAGE = PAGE_SIZE
B = 0x100000000  # a free base above 4 GiB

NESTED = DEFAULT  # 6.1-deb: b4afe4183ec7 backported
TOP_LEVEL = replace(DEFAULT, region_intersects_nested=False)  # v6.1.0 and before v6.12


def kunit_tree(profile) -> ResourceTree:
    """The layout of the v6.12 region_intersects kunit test (spec §8.2), at top level."""
    tree = ResourceTree(profile)
    root = tree.iomem_resource
    assert tree.request_resource(root, Resource(B, B + M - 1, "RAM0", RAM)) == 0
    assert tree.insert_resource(root, Resource(B + 2 * M, B + 3 * M - 1, "WIN0", MEM)) == 0
    assert tree.request_resource(root, Resource(B + 3 * M, B + 4 * M - 1, "RAM1", RAM)) == 0
    assert tree.insert_resource(root, Resource(B + 4 * M, B + 7 * M - 1, "WIN1", MEM)) == 0
    ram2 = tree._request_region(root, B + 4 * M, M, "RAM2", IORESOURCE_SYSTEM_RAM)
    assert ram2.flags == RAM and ram2.parent.name == "WIN1"
    code = Resource(B + 4 * M + 128 * K, B + 4 * M + 256 * K - 1, "CODE", RAM)
    assert tree.insert_resource(root, code) == 0 and code.parent is ram2
    assert tree._request_region(root, B + 5 * M, M, "RAM3", IORESOURCE_SYSTEM_RAM) is not None
    assert tree_problems(root) == []
    return tree


# (start, size, 6.1-deb / >= v6.12, v6.1.0 / pre-v6.12)
REGION_INTERSECTS_KUNIT = [
    (B, PAGE, REGION_INTERSECTS, REGION_INTERSECTS),
    (B + M - PAGE, 2 * PAGE, REGION_INTERSECTS, REGION_INTERSECTS),
    (B + M, PAGE, REGION_DISJOINT, REGION_DISJOINT),
    (B + 2 * M - PAGE, 2 * PAGE, REGION_DISJOINT, REGION_DISJOINT),
    (B + 3 * M - PAGE, 2 * PAGE, REGION_MIXED, REGION_MIXED),
    (B + 4 * M - PAGE, 2 * PAGE, REGION_INTERSECTS, REGION_MIXED),
    (B + 5 * M - PAGE, 2 * PAGE, REGION_INTERSECTS, REGION_DISJOINT),
    (B + 4 * M + 128 * K, PAGE, REGION_INTERSECTS, REGION_DISJOINT),
    (B + 4 * M, M + PAGE, REGION_INTERSECTS, REGION_DISJOINT),
    (B + 5 * M, M + PAGE, REGION_MIXED, REGION_DISJOINT),
]


@pytest.mark.parametrize(("start", "size", "nested", "top_level"), REGION_INTERSECTS_KUNIT)
@pytest.mark.parametrize("profile", [NESTED, TOP_LEVEL], ids=["nested", "top-level"])
def test_region_intersects_kunit_table(profile, start, size, nested, top_level):
    tree = kunit_tree(profile)
    expected = nested if profile.region_intersects_nested else top_level
    assert tree.region_intersects(start, size, IORESOURCE_SYSTEM_RAM,
                                  IORES_DESC_NONE) == expected


def test_named_profiles_pick_the_algorithm():
    assert resolve("v6.1-deb").region_intersects_nested
    assert not resolve("v6.1").region_intersects_nested


def test_region_intersects_desc_and_flags_zero():
    tree = kunit_tree(NESTED)
    acpi = Resource(B + 8 * M, B + 9 * M - 1, "ACPI Tables", MEM | BUSY, IORES_DESC_ACPI_TABLES)
    tree.request_resource(tree.iomem_resource, acpi)
    assert tree.region_intersects(B + 8 * M, PAGE, MEM, IORES_DESC_ACPI_TABLES) == (
        REGION_INTERSECTS)
    assert tree.region_intersects(B, PAGE, MEM, IORES_DESC_ACPI_TABLES) == REGION_DISJOINT
    # flags 0 matches every node: anything overlapping counts.
    assert tree.region_intersects(B + 2 * M, PAGE, 0, IORES_DESC_NONE) == REGION_INTERSECTS


@pytest.mark.parametrize("profile", [NESTED, TOP_LEVEL], ids=["nested", "top-level"])
def test_region_intersects_size_zero_counts_straddling_nodes_b29d(profile):
    tree = kunit_tree(profile)
    # R = [B+M/2, B+M/2-1]: RAM0 contains both ends of that inverted range.
    assert tree.region_intersects(B + M // 2, 0, IORESOURCE_SYSTEM_RAM, 0) == REGION_INTERSECTS
    # At RAM0's first byte the node does not contain start-1.
    assert tree.region_intersects(B, 0, IORESOURCE_SYSTEM_RAM, 0) == REGION_DISJOINT
    # start 0, size 0 is the whole address space: RAM and windows -> MIXED (top level)
    assert tree.region_intersects(0, 0, IORESOURCE_SYSTEM_RAM, 0) == REGION_MIXED


# --- find_next_iomem_res / walkers / page_is_ram --------------------------------------------


def ram_tree(profile=DEFAULT) -> ResourceTree:
    """Top-level RAM [0x1000, 0x9ffff]; a window holding nested RAM (dax/kmem style)
    [0x200000, 0x3fffff] and a busy non-RAM node; RAM [0x400000, 0x4007ff] (half a page)."""
    tree = ResourceTree(profile)
    root = tree.iomem_resource
    tree.request_resource(root, Resource(0x1000, 0x9FFFF, "System RAM", RAM))
    win = Resource(0x100000, 0x3FFFFF, "CXL Window 0", MEM)
    tree.request_resource(root, win)
    tree.request_resource(win, Resource(0x100000, 0x1FFFFF, "dev", MEM | BUSY))
    tree.request_resource(win, Resource(0x200000, 0x3FFFFF, "System RAM (kmem)", RAM))
    tree.request_resource(root, Resource(0x400000, 0x4007FF, "System RAM", RAM))
    return tree


def test_find_next_iomem_res_arguments_and_clipping():
    tree = ram_tree()
    out = Resource()
    assert tree.find_next_iomem_res(0, U64_MAX, RAM, 0, None) == -EINVAL
    assert tree.find_next_iomem_res(5, 5, RAM, 0, out) == -EINVAL  # one byte is refused
    assert tree.find_next_iomem_res(0xA0000, 0xFFFFF, RAM, 0, out) == -ENODEV
    assert tree.find_next_iomem_res(0x2000, 0x2FFF, RAM, 0, out) == 0
    assert (out.start, out.end, out.flags, out.parent) == (0x2000, 0x2FFF, RAM,
                                                           tree.iomem_resource)
    assert tree.find_next_iomem_res(0xA0000, 0x2FFFFF, RAM, 0, out) == 0
    assert (out.start, out.end) == (0x200000, 0x2FFFFF) and out.parent.name == "CXL Window 0"
    assert tree.find_next_iomem_res(0, U64_MAX, MEM | BUSY, 0, out) == 0
    assert (out.start, out.end) == (0x1000, 0x9FFFF)


def collect(tree: ResourceTree, walk: str, *args) -> tuple[int, list[tuple[int, int]]]:
    seen = []

    def fn(res, arg):
        seen.append((res.start, res.end))
        return 0

    return getattr(tree, walk)(*args, None, fn), seen


@pytest.mark.parametrize(("nested", "expected"), [
    (True, [(0x1000, 0x9FFFF), (0x200000, 0x3FFFFF), (0x400000, 0x4007FF)]),
    (False, [(0x1000, 0x9FFFF), (0x400000, 0x4007FF)]),  # <= v5.13: top level only
])
def test_walk_system_ram_res_profile_switch(nested, expected):
    tree = ram_tree(replace(DEFAULT, walkers_nested=nested))
    assert collect(tree, "walk_system_ram_res", 0, U64_MAX) == (0, expected)


def test_walk_mem_res_and_walk_iomem_res_desc():
    tree = ram_tree()
    ret, seen = collect(tree, "walk_mem_res", 0, U64_MAX)
    assert ret == 0 and seen == [(0x1000, 0x9FFFF), (0x100000, 0x1FFFFF), (0x200000, 0x3FFFFF),
                                 (0x400000, 0x4007FF)]
    # walk_iomem_res_desc always searched nested nodes; the window itself matches MEM and
    # hides its children (the cursor jumps past it).
    assert collect(tree, "walk_iomem_res_desc", 0, MEM, 0xA0000, U64_MAX) == (
        0, [(0x100000, 0x3FFFFF), (0x400000, 0x4007FF)])
    assert collect(tree, "walk_iomem_res_desc", IORES_DESC_ACPI_TABLES, MEM, 0, U64_MAX) == (
        -EINVAL, [])


def test_walk_stops_on_nonzero_callback():
    tree = ram_tree()
    calls = []
    assert tree.walk_system_ram_res(0, U64_MAX, None,
                                    lambda r, a: calls.append(r.start) or 7) == 7
    assert calls == [0x1000]


def test_walk_with_a_match_ending_at_the_top_hangs():
    tree = ResourceTree()
    tree.request_resource(tree.iomem_resource, Resource(U64_MAX - 0xFFF, U64_MAX, "top", RAM))
    ret, seen = collect(tree, "walk_system_ram_res", 0, U64_MAX)
    assert (ret, seen) == (0, [(U64_MAX - 0xFFF, U64_MAX)])
    assert [e.kind for e in tree.log.events] == [event.HANG]


def test_walk_system_ram_range_whole_pages_only():
    tree = ram_tree()
    pages = []
    assert tree.walk_system_ram_range(0, 0x401, None,
                                      lambda pfn, n, a: pages.append((pfn, n)) or 0) == 0
    assert pages == [(1, 0x9F), (0x200, 0x200)]  # the half page at 0x400000 is skipped
    # A first match without a whole page keeps ret = -EINVAL and ends the walk.
    assert tree.walk_system_ram_range(0x400, 1, None, lambda pfn, n, a: 0) == -EINVAL
    assert tree.walk_system_ram_range(0x10, 0, None, lambda pfn, n, a: 0) == -EINVAL


def test_page_is_ram():
    tree = ram_tree()
    assert tree.page_is_ram(1) and tree.page_is_ram(0x9F)
    assert not tree.page_is_ram(0) and not tree.page_is_ram(0xA0)
    assert tree.page_is_ram(0x200)  # nested System RAM (kmem)
    assert not tree.page_is_ram(0x400)  # half a page


def test_page_split_between_two_ram_nodes_is_not_ram():
    tree = ResourceTree()
    root = tree.iomem_resource
    tree.request_resource(root, Resource(0x1000, 0x17FF, "System RAM", RAM))
    tree.request_resource(root, Resource(0x1800, 0x1FFF, "System RAM", RAM))
    assert not tree.page_is_ram(1)


# --- resource_is_exclusive / iomem_is_exclusive (§2.13) ----------------------------------------


def excl_tree(profile) -> ResourceTree:
    tree = ResourceTree(profile)
    root = tree.iomem_resource
    bar = Resource(0xFE000000, 0xFE0FFFFF, "0000:00:03.0", MEM)
    tree.request_resource(root, bar)
    tree._request_region(root, 0xFE000000, 0x1000, "drv", 0)
    tree._request_region(root, 0xFE002000, 0x1000, "excl", IORESOURCE_EXCLUSIVE)
    tree.request_resource(root, Resource(0x100000000, 0x1FFFFFFFF, "virtio-mem",
                                         IORESOURCE_SYSTEM_RAM | IORESOURCE_EXCLUSIVE))
    return tree


# addr -> (6.1-deb, relaxed, IO_STRICT=n, v5.15, v5.15 relaxed)
EXCLUSIVE = [
    (0xFE000000, (True, False, False, True, False)),  # busy driver claim
    (0xFE001000, (False, False, False, False, False)),  # BAR only, not busy
    (0xFE002000, (True, False, True, True, False)),  # busy + EXCLUSIVE
    (0x100000000, (True, True, True, False, False)),  # SYSRAM|EXCLUSIVE, not busy
]
PROFILES = [DEFAULT, replace(DEFAULT, iomem_cmdline="relaxed"),
            replace(DEFAULT, io_strict_devmem=False),
            replace(DEFAULT, iomem_is_exclusive_v516=False),
            replace(DEFAULT, iomem_is_exclusive_v516=False, iomem_cmdline="relaxed")]


@pytest.mark.parametrize(("addr", "answers"), EXCLUSIVE)
@pytest.mark.parametrize("which", range(5), ids=["6.1-deb", "relaxed", "no-io-strict",
                                                  "v5.15", "v5.15-relaxed"])
def test_iomem_is_exclusive_matrix(which, addr, answers):
    tree = excl_tree(PROFILES[which])
    assert tree.iomem_is_exclusive(addr + 0x123) is answers[which]


def test_iomem_is_exclusive_top_page_is_false_b29c():
    tree = ResourceTree()
    tree.request_resource(tree.iomem_resource,
                          Resource(U64_MAX - 0xFFF, U64_MAX, "top", MEM | BUSY))
    assert tree.iomem_is_exclusive(U64_MAX) is False
    assert tree.resource_is_exclusive(tree.iomem_resource, U64_MAX - 0xFFF, 0x800) is True


def test_resource_is_exclusive_arbitrary_range_and_subtree_skip():
    tree = excl_tree(DEFAULT)
    root = tree.iomem_resource
    assert tree.resource_is_exclusive(root, 0xFE001000, 0x1000) is False
    assert tree.resource_is_exclusive(root, 0xFE001000, 0x1001) is True
    assert tree.resource_is_exclusive(root, 0, 0xFE000000) is False


def test_iomem_map_sanity_check():
    tree = excl_tree(DEFAULT)
    assert tree.iomem_map_sanity_check(0xFE000000, 0x2000) == 0
    assert tree.iomem_map_sanity_check(0xFE0FF000, 0x2000) == -1
    (ev,) = tree.log.events
    assert ev.text == ("resource: resource sanity check: requesting [mem 0x00000000fe0ff000-"
                       "0x00000000fe100fff], which spans more than 0000:00:03.0 "
                       "[mem 0xfe000000-0xfe0fffff]")


# --- free-region allocators (§2.14) -------------------------------------------------------------


def test_request_free_mem_region_descends_from_physmem_end_and_revokes():
    tree = ResourceTree()
    revoked = []
    tree.revoke_hook = revoked.append
    res = tree.request_free_mem_region(tree.iomem_resource, 0x1000, "hmm")
    assert (res.start, res.end) == (PHYSMEM_END + 1 - GFR_DEFAULT_ALIGN, PHYSMEM_END)
    assert res.desc == IORES_DESC_DEVICE_PRIVATE_MEMORY and res.flags == MEM | BUSY
    assert revoked == [res]
    again = tree.request_free_mem_region(tree.iomem_resource, 0x1000, "hmm2")
    assert again.end == res.start - 1


def test_alloc_free_mem_region_ascends_and_inserts_without_revoke():
    tree = ResourceTree()
    revoked = []
    tree.revoke_hook = revoked.append
    root = tree.iomem_resource
    win = Resource(0x10000000, 0x1FFFFFFF, "CXL Window 0", MEM)
    tree.request_resource(root, win)
    tree.request_resource(win, Resource(0x10000000, 0x10FFFFFF, "used", MEM))
    res = tree.alloc_free_mem_region(win, 0x1000000, 0x1000000, "region0")
    assert (res.start, res.end, res.parent, res.flags) == (0x11000000, 0x11FFFFFF, win, MEM)
    assert revoked == []
    assert tree.alloc_free_mem_region(win, 0x20000000, 0x1000000, "big") == -ERANGE


def naive_candidate(tree, base, size, align, descending):
    """get_free_mem_region's loop stepping one candidate at a time (the reference)."""
    size = ((size + align - 1) & ~(align - 1)) & U64_MAX
    cap = min(base.end, tree.physmem_end)
    if descending:
        addr = (cap - size + 1) & U64_MAX
        while addr > size and addr >= base.start:
            if tree._region_intersects(base, addr, size, 0, 0) == REGION_DISJOINT:
                return addr
            addr -= size
    else:
        addr = (base.start + align - 1) & ~(align - 1)
        while addr > (addr - size) & U64_MAX and addr <= cap:
            if tree._region_intersects(base, addr, size, 0, 0) == REGION_DISJOINT:
                return addr
            addr = (addr + size) & U64_MAX
    return None


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize(("size", "align"), [(0x100, 0x100), (0x300, 0x100), (0x1000, 0x10),
                                             (0x40, 0x40), (0x2000, 0x1000)])
def test_free_region_jumps_match_single_stepping(descending, size, align):
    tree = ResourceTree()
    root = tree.iomem_resource
    base = Resource(0x10000, 0x1FFFF, "base", MEM)
    tree.request_resource(root, base)
    for s, e in ((0x10000, 0x10FFF), (0x11100, 0x113FF), (0x1C000, 0x1CFFF),
                 (0x1E000, 0x1FFFF)):
        tree.request_resource(base, Resource(s, e, "busy", MEM | BUSY))
    expected = naive_candidate(tree, base, size, align, descending)
    res = tree.get_free_mem_region(base, size, align, "x", 0, int(descending))
    assert (res.start if isinstance(res, Resource) else None) == expected


def test_free_region_descending_size_zero_hangs():
    tree = ResourceTree()
    root = tree.iomem_resource
    tree.request_resource(root, Resource(PHYSMEM_END - 0xFFF, PHYSMEM_END + 0x1000, "x", MEM))
    assert tree.get_free_mem_region(root, 0, 1, "z", 0, 3) == -ERANGE
    assert [e.kind for e in tree.log.events] == [event.HANG]
