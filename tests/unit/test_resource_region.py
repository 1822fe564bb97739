"""The region API of kernel/resource.c (model/resource_region.py): ``__request_region``
(spec §2.6, B29e), ``__release_region`` (§2.7, B29g) and the memory hotplug calls (§2.8).
The other tree operations are in test_resource_tree.py."""

from __future__ import annotations

from dataclasses import replace

import pytest
from iomemfuzz.model import event
from iomemfuzz.model.errno import EBUSY, EINVAL
from iomemfuzz.model.ioport import (
    IORES_DESC_ACPI_TABLES,
    IORES_DESC_DEVICE_PRIVATE_MEMORY,
    IORESOURCE_BUSY,
    IORESOURCE_EXCLUSIVE,
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_MEM_64,
    IORESOURCE_MUXED,
    IORESOURCE_PREFETCH,
    IORESOURCE_SYSRAM_MERGEABLE,
    IORESOURCE_SYSTEM_RAM,
    REGION_MACROS,
    U64_MAX,
    Resource,
)
from iomemfuzz.model.profile import CLAIM_FAIL, DEFAULT
from iomemfuzz.model.resource_check import tree_problems
from iomemfuzz.model.resource_region import RegionClaim
from iomemfuzz.model.resource_tree import ResourceTree
from iomemfuzz.model.sched import WOULD_BLOCK

MEM = IORESOURCE_MEM
BUSY = IORESOURCE_BUSY


def kinds(tree: ResourceTree) -> list[str]:
    return [e.kind for e in tree.log.events]


def mem(start: int, end: int, name: str, flags: int = MEM, desc: int = 0) -> Resource:
    return Resource(start, end, name, flags, desc)


# --- __request_region (§2.6, B29e) ---------------------------------------------------------


def test_request_region_start0_n0_asks_for_everything_b29e():
    tree = ResourceTree()
    whole = tree.request_mem_region(0, 0, "all")
    assert (whole.start, whole.end) == (0, U64_MAX)
    tree.release_mem_region(0, 0)
    assert tree.iomem_resource.child is None and tree.log.events == []
    tree.request_resource(tree.iomem_resource, mem(0x1000, 0x1FFF, "w"))
    assert tree.request_mem_region(0, 0, "all") is None  # descends into w, then too big
    assert tree.request_region(0, 0, "all") is None  # ioport root ends at 0xffff


@pytest.mark.parametrize(("start", "n"), [(0x1000, 0), (U64_MAX, 2), (U64_MAX - 0xF, 0x20)])
def test_request_region_invalid_ranges_fail(start, n):
    tree = ResourceTree()
    assert tree.request_mem_region(start, n, "x") is None


def test_exact_range_of_non_busy_node_gets_busy_child():
    tree = ResourceTree()
    bar = mem(0xFE000000, 0xFE003FFF, "0000:00:03.0", MEM | IORESOURCE_MEM_64
              | IORESOURCE_PREFETCH)
    tree.request_resource(tree.iomem_resource, bar)
    res = tree.request_mem_region(0xFE000000, 0x4000, "virtio")
    assert res.parent is bar and res.flags == MEM | BUSY  # PREFETCH, MEM_64 not inherited


def test_inherits_type_sysram_and_desc_of_deepest_container():
    tree = ResourceTree()
    ram = mem(0x100000, 0x1FFFFF, "dax0.0", IORESOURCE_SYSTEM_RAM | IORESOURCE_EXCLUSIVE,
              IORES_DESC_ACPI_TABLES)
    tree.request_resource(tree.iomem_resource, ram)
    res = tree.request_mem_region(0x100000, 0x1000, "kmem")
    assert res.flags == IORESOURCE_SYSTEM_RAM | BUSY  # EXCLUSIVE not inherited
    assert res.desc == IORES_DESC_ACPI_TABLES


def test_request_covering_two_non_busy_siblings_fails():
    tree = ResourceTree()
    root = tree.iomem_resource
    tree.request_resource(root, mem(0x1000, 0x1FFF, "w1"))
    tree.request_resource(root, mem(0x2000, 0x2FFF, "w2"))
    assert tree.request_mem_region(0x1800, 0x1000, "x") is None


def test_muxed_against_non_muxed_fails_both_ways():
    tree = ResourceTree()
    tree.request_region(0x2E, 2, "plain")
    assert tree.request_muxed_region(0x2E, 2, "m") is None
    tree.release_region(0x2E, 2)
    tree.request_muxed_region(0x2E, 2, "m")
    assert tree.request_region(0x2E, 2, "plain") is None


def test_muxed_retry_continues_from_the_container_reached():
    tree = ResourceTree()
    root = tree.ioport_resource
    w = Resource(0x20, 0x3F, "w", IORESOURCE_IO)
    tree.request_resource(root, w)
    tree.request_muxed_region(0x2E, 2, "a")
    claim = RegionClaim()
    assert tree._request_region(root, 0x2E, 2, "b", IORESOURCE_MUXED, claim) is WOULD_BLOCK
    assert claim.cur is w
    tree.release_region(0x2E, 2)
    tree.remove_resource(w)  # the container leaves the tree while the task sleeps
    b = tree._request_region(root, 0x2E, 2, "b", IORESOURCE_MUXED, claim)
    assert b.parent is w  # the kernel retries on its stale container pointer
    again = tree.request_muxed_region(0x2E, 2, "c")  # a fresh call starts at the root
    assert again.parent is root


def test_request_region_task_yields_while_blocked():
    tree = ResourceTree()
    tree.request_muxed_region(0x2E, 2, "a")
    task = tree.request_region_task(tree.ioport_resource, 0x2E, 2, "b", IORESOURCE_MUXED)
    assert next(task) is WOULD_BLOCK
    tree.release_region(0x2E, 2)
    with pytest.raises(StopIteration) as stop:
        next(task)
    assert stop.value.value.name == "b"


def test_would_block_has_no_truth_value():
    with pytest.raises(TypeError):
        bool(WOULD_BLOCK)


def test_revoke_hook_only_for_iomem_argument():
    tree = ResourceTree()
    revoked = []
    tree.revoke_hook = revoked.append
    w = mem(0x10000, 0x1FFFF, "w")
    tree.request_resource(tree.iomem_resource, w)
    a = tree.request_mem_region(0x10000, 0x100, "a")
    b = tree._request_region(w, 0x10100, 0x100, "b", 0)  # lands in the same place
    tree.request_region(0x60, 1, "kbd")
    tree.request_mem_region(0x10000, 0x100, "conflict")
    assert revoked == [a] and b.parent is w


def test_claim_veto_under_claim_policy_fail():
    tree = ResourceTree(replace(DEFAULT, claim_policy=CLAIM_FAIL))
    asked = []
    tree.claim_veto_hook = lambda s, e: asked.append((s, e)) or s == 0x10000
    assert tree.request_mem_region(0x10000, 0x100, "vetoed") is None
    assert tree.request_mem_region(0x20000, 0x100, "ok") is not None
    assert tree.request_region(0x10, 1, "io") is not None  # ioport: never asked
    assert asked == [(0x10000, 0x100FF), (0x20000, 0x200FF)]
    revoke_tree = ResourceTree()
    revoke_tree.claim_veto_hook = lambda s, e: True  # ignored under "revoke"
    assert revoke_tree.request_mem_region(0x10000, 0x100, "x") is not None


def test_device_private_conflict_warns():
    tree = ResourceTree()
    tree.request_resource(tree.iomem_resource, mem(0x10000, 0x1FFFF, "hmm", MEM | BUSY,
                                                   IORES_DESC_DEVICE_PRIVATE_MEMORY))
    assert tree.request_mem_region(0x10000, 0x100, "x") is None
    (ev,) = tree.log.events
    assert ev.kind == event.WARN and ev.text.startswith("resource: Unaddressable device hmm")


def test_flags_argument_is_a_c_int():
    tree = ResourceTree()
    res = tree.request_mem_region(0x1000, 0x10, "x")
    tree.release_mem_region(0x1000, 0x10)
    res = tree._request_region(tree.iomem_resource, 0x1000, 0x10, "x", 0x80000000)
    assert res.flags == 0xFFFFFFFF80000200


def test_region_macros_table_matches_methods():
    tree = ResourceTree()
    for name, (root_attr, flags) in REGION_MACROS.items():
        if name.startswith("request"):
            res = getattr(tree, name)(0x10, 2, name)
            assert res.parent is getattr(tree, root_attr)
            assert res.flags & (IORESOURCE_MUXED | IORESOURCE_EXCLUSIVE) == flags
            getattr(tree, "release_region" if root_attr == "ioport_resource"
                    else "release_mem_region")(0x10, 2)
    assert tree.log.events == []


# --- __release_region (§2.7, B29g) -----------------------------------------------------------


def test_release_drops_busy_node_with_children_b29g():
    tree = ResourceTree()
    root = tree.iomem_resource
    busy = tree.request_mem_region(0x1000, 0x1000, "busy")
    kid = mem(0x1000, 0x10FF, "kid")
    tree.insert_resource(root, kid)  # insert descends into busy nodes
    assert kid.parent is busy
    tree.release_mem_region(0x1000, 0x1000)
    assert root.child is None and kid.parent is busy  # orphaned with it


def test_release_has_no_owner_check_and_removes_caller_structs():
    tree = ResourceTree()
    mine = mem(0x1000, 0x1FFF, "mine", MEM | BUSY)
    tree.request_resource(tree.iomem_resource, mine)
    tree.release_mem_region(0x1000, 0x1000)
    assert tree.iomem_resource.child is None
    assert not mine.freed and mine.parent is tree.iomem_resource  # stale, not freed


def test_busy_under_busy_can_never_be_released():
    tree = ResourceTree()
    outer = tree.request_mem_region(0x1000, 0x1000, "outer")
    inner = mem(0x1000, 0x10FF, "inner", MEM | BUSY)
    tree.insert_resource(tree.iomem_resource, inner)
    assert inner.parent is outer
    tree.release_mem_region(0x1000, 0x100)
    assert kinds(tree) == [event.RELEASE_NONEXISTENT] and inner.parent is outer


def test_release_scan_descends_and_wakes_on_muxed():
    tree = ResourceTree()
    woken = []
    tree.muxed_wake_hook = lambda: woken.append(1)
    w = Resource(0x20, 0x3F, "w", IORESOURCE_IO)
    tree.request_resource(tree.ioport_resource, w)
    tree.request_muxed_region(0x2E, 2, "m")
    tree.request_region(0x30, 2, "plain")
    tree.release_region(0x30, 2)
    assert woken == []
    tree.release_region(0x2E, 2)
    assert woken == [1] and w.child is None


def test_use_after_free_of_a_released_region():
    tree = ResourceTree()
    res = tree.request_mem_region(0x1000, 0x100, "r")
    tree.release_mem_region(0x1000, 0x100)
    assert tree.release_resource(res) == -EINVAL
    assert tree.adjust_resource(res, 0x1000, 0x10) == -EBUSY
    assert tree.request_resource(tree.iomem_resource, res) == -EBUSY
    assert kinds(tree) == [event.USE_AFTER_FREE] * 3


# --- memory hotplug (§2.8) ----------------------------------------------------------------


def _ram_tree() -> tuple[ResourceTree, Resource]:
    tree = ResourceTree()
    win = mem(0x100000000, 0x1FFFFFFFF, "win")
    tree.request_resource(tree.iomem_resource, win)
    ram = tree._request_region(tree.iomem_resource, 0x100000000, 0x40000000, "System RAM",
                               IORESOURCE_SYSTEM_RAM)
    return tree, ram


@pytest.mark.parametrize(("start", "size", "expected"), [
    (0x100000000, 0x40000000, []),
    (0x100000000, 0x10000000, [(0x110000000, 0x13FFFFFFF)]),
    (0x130000000, 0x10000000, [(0x100000000, 0x12FFFFFFF)]),
    (0x110000000, 0x10000000, [(0x100000000, 0x10FFFFFFF), (0x120000000, 0x13FFFFFFF)]),
    (0x100000000, 1, [(0x100000000, 0x13FFFFFFF)]),  # scan stops at start >= end
    (0x140000000, 0x1000, [(0x100000000, 0x13FFFFFFF)]),  # not inside any busy node
])
def test_release_mem_region_adjustable(start, size, expected):
    tree, ram = _ram_tree()
    tree.release_mem_region_adjustable(start, size)
    win = tree.iomem_resource.child
    assert [(r.start, r.end) for r in win.children()] == expected
    assert all(r.flags == ram.flags and r.parent is win for r in win.children())
    assert tree_problems(tree.iomem_resource) == []


def test_release_mem_region_adjustable_split_keeps_children_low():
    tree, _ram = _ram_tree()
    kid = mem(0x100000000, 0x100000FFF, "kid")
    tree.insert_resource(tree.iomem_resource, kid)
    tree.release_mem_region_adjustable(0x110000000, 0x10000000)
    low, high = tree.iomem_resource.child.children()
    assert kid.parent is low and high.child is None and high.slab


def test_merge_system_ram_resource():
    tree = ResourceTree()
    root = tree.iomem_resource
    rams = [tree._request_region(root, s, 0x1000, "System RAM (kmem)", IORESOURCE_SYSTEM_RAM)
            for s in (0x10000, 0x11000, 0x12000)]
    for r in rams:
        r.flags |= IORESOURCE_SYSRAM_MERGEABLE
    tree.merge_system_ram_resource(rams[1])
    (merged,) = root.children()
    assert merged is rams[0] and (merged.start, merged.end) == (0x10000, 0x12FFF)
    assert rams[1].freed and rams[2].freed
    tree.merge_system_ram_resource(mem(0, 1, "not ram"))
    assert kinds(tree) == [event.WARN]
