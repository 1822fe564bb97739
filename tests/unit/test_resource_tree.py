"""Tree operations of kernel/resource.c: spec §8.3 vectors D1–D16, the edge paths of §2 and
the B29 quirks. The region API (__request_region, __release_region, memory hotplug) is in
test_resource_region.py."""

from __future__ import annotations

import pytest
from iomemfuzz.model import event
from iomemfuzz.model.errno import EBUSY, EINVAL
from iomemfuzz.model.ioport import (
    IORESOURCE_BUSY,
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_MUXED,
    IORESOURCE_PREFETCH,
    IORESOURCE_SYSTEM_RAM,
    IORESOURCE_WINDOW,
    U64_MAX,
    Resource,
)
from iomemfuzz.model.resource import REGION_MIXED
from iomemfuzz.model.resource_check import (
    I3_EMPTY,
    I3_INVERTED,
    preorder,
    problem_kind,
    tree_problems,
)
from iomemfuzz.model.resource_region import RegionClaim
from iomemfuzz.model.resource_tree import ResourceTree
from iomemfuzz.model.sched import WOULD_BLOCK

MEM = IORESOURCE_MEM
BUSY = IORESOURCE_BUSY


def layout(root: Resource) -> list[tuple[int, str | None, int, int]]:
    """The tree as (depth, name, start, end) in pre-order."""
    return [(d, r.name, r.start, r.end) for r, d in preorder(root)]


def kinds(tree: ResourceTree) -> list[str]:
    return [e.kind for e in tree.log.events]


def mem(start: int, end: int, name: str, flags: int = MEM, desc: int = 0) -> Resource:
    return Resource(start, end, name, flags, desc)


@pytest.fixture
def t() -> ResourceTree:
    """Spec §8.3 tree T: iomem with top-level A = [0x1000, 0x1fff] "win" (MEM)."""
    tree = ResourceTree()
    assert tree.request_resource(tree.iomem_resource, mem(0x1000, 0x1FFF, "win")) == 0
    return tree


def A(tree: ResourceTree) -> Resource:
    return tree.iomem_resource.child


# --- spec §8.3 ---------------------------------------------------------------------------


def test_roots():
    tree = ResourceTree()
    io, iomem = tree.ioport_resource, tree.iomem_resource
    assert (io.name, io.start, io.end, io.flags, io.desc, io.parent) == (
        "PCI IO", 0, 0xFFFF, IORESOURCE_IO, 0, None)
    assert (iomem.name, iomem.start, iomem.end, iomem.flags, iomem.desc, iomem.parent) == (
        "PCI mem", 0, U64_MAX, MEM, 0, None)


def test_d1_request_region_descends_into_non_busy_window(t):
    d1 = t._request_region(t.iomem_resource, 0x1000, 0x100, "d1", 0)
    assert (d1.start, d1.end, d1.flags, d1.parent) == (0x1000, 0x10FF, 0x80000200, A(t))
    assert d1.child is None and d1.slab


def test_d2_busy_overlap_fails(t):
    t._request_region(t.iomem_resource, 0x1000, 0x100, "d1", 0)
    assert t._request_region(t.iomem_resource, 0x10F0, 0x20, "d2", 0) is None


def test_d3_request_running_past_the_window_fails(t):
    assert t._request_region(t.iomem_resource, 0x1F00, 0x200, "d3", 0) is None
    assert A(t).child is None


def test_d4_top_level_request(t):
    d4 = t._request_region(t.iomem_resource, 0x2000, 0x1000, "d4", 0)
    assert (d4.start, d4.end, d4.flags, d4.parent) == (0x2000, 0x2FFF, 0x80000200,
                                                       t.iomem_resource)


def test_d5_release_with_wrong_size_warns_and_changes_nothing(t):
    t._request_region(t.iomem_resource, 0x1000, 0x100, "d1", 0)
    before = layout(t.iomem_resource)
    t._release_region(t.iomem_resource, 0x1000, 0x80)
    assert layout(t.iomem_resource) == before
    (ev,) = t.log.events
    assert ev.kind == event.RELEASE_NONEXISTENT
    assert ev.text == ("resource: Trying to free nonexistent resource "
                       "<0x0000000000001000-0x000000000000107f>")


def test_d6_release_exact_range(t):
    d1 = t._request_region(t.iomem_resource, 0x1000, 0x100, "d1", 0)
    t._release_region(t.iomem_resource, 0x1000, 0x100)
    assert A(t).child is None and t.log.events == []
    assert d1.freed


def test_d7_insert_with_partial_overlap_fails_unchanged(t):
    d4 = t._request_region(t.iomem_resource, 0x2000, 0x1000, "d4", 0)
    before = layout(t.iomem_resource)
    b = mem(0x800, 0x27FF, "B")
    assert t.insert_resource_conflict(t.iomem_resource, b) is d4
    assert t.insert_resource(t.iomem_resource, b) == -EBUSY
    assert layout(t.iomem_resource) == before and b.parent is None


def test_d8_d9_insert_adopts_then_remove_splices_back(t):
    t._request_region(t.iomem_resource, 0x2000, 0x1000, "d4", 0)
    c = mem(0x800, 0x2FFF, "C")
    assert t.insert_resource(t.iomem_resource, c) == 0
    assert layout(t.iomem_resource) == [(0, "C", 0x800, 0x2FFF), (1, "win", 0x1000, 0x1FFF),
                                        (1, "d4", 0x2000, 0x2FFF)]
    assert t.remove_resource(c) == 0
    assert layout(t.iomem_resource) == [(0, "win", 0x1000, 0x1FFF), (0, "d4", 0x2000, 0x2FFF)]
    assert all(r.parent is t.iomem_resource for r, _ in preorder(t.iomem_resource))
    assert c.parent is None and c.child is A(t)  # stale child pointer kept


def test_d10_identical_range_wraps_existing_node(t):
    d = mem(0x1000, 0x1FFF, "D")
    assert t.insert_resource(t.iomem_resource, d) == 0
    assert layout(t.iomem_resource) == [(0, "D", 0x1000, 0x1FFF), (1, "win", 0x1000, 0x1FFF)]


def test_d11_invalid_range_is_ebusy_not_einval(t):
    assert t.request_resource(t.iomem_resource, mem(0x3000, 0x2FFF, "bad")) == -EBUSY


def test_d12_adjust_childless_top_level(t):
    assert t.adjust_resource(A(t), 0x1000, 0x800) == 0
    assert (A(t).start, A(t).end) == (0x1000, 0x17FF)


def test_d13_adjust_excluding_a_child_fails(t):
    t._request_region(t.iomem_resource, 0x1800, 0x100, "kid", 0)
    assert t.adjust_resource(A(t), 0x1000, 0x800) == -EBUSY
    assert (A(t).start, A(t).end) == (0x1000, 0x1FFF)


def test_d14_request_beyond_ioport_limit():
    tree = ResourceTree()
    assert tree.request_region(0x10000, 1, "x") is None
    assert tree.request_region(0xFFFF, 2, "x") is None
    assert tree.request_region(0xFFFF, 1, "x") is not None


def test_d15_muxed_waits_until_release():
    tree = ResourceTree()
    woken = []
    tree.muxed_wake_hook = lambda: woken.append(1)
    a = tree.request_muxed_region(0x2E, 2, "a")
    assert a.flags == IORESOURCE_IO | BUSY | IORESOURCE_MUXED
    claim = RegionClaim()
    assert tree._request_region(tree.ioport_resource, 0x2E, 2, "b", IORESOURCE_MUXED,
                                claim) is WOULD_BLOCK
    assert claim.res is not None and claim.cur is tree.ioport_resource
    assert tree._request_region(tree.ioport_resource, 0x2E, 2, "b", IORESOURCE_MUXED,
                                claim) is WOULD_BLOCK
    tree.release_region(0x2E, 2)
    assert woken == [1]
    b = tree._request_region(tree.ioport_resource, 0x2E, 2, "b", IORESOURCE_MUXED, claim)
    assert b.name == "b" and claim.res is None


def test_d16_region_intersects_mixed_across_a_hole():
    tree = ResourceTree()
    root = tree.iomem_resource
    for r in (mem(0, 0x9FFFF, "System RAM", IORESOURCE_SYSTEM_RAM | BUSY),
              mem(0xA0000, 0xBFFFF, "PCI Bus 0000:00"),
              mem(0x100000, 0x7FFFFFFF, "System RAM", IORESOURCE_SYSTEM_RAM | BUSY)):
        assert tree.request_resource(root, r) == 0
    assert tree.region_intersects(0x9F000, 0x2000, IORESOURCE_SYSTEM_RAM, 0) == REGION_MIXED


# --- __request_resource and wrappers (§2.2) --------------------------------------------


@pytest.mark.parametrize(("start", "end"), [(0x3000, 0x2FFF), (0x10000, 0x10000),
                                            (0xFFFF, 0x10000)])
def test_request_resource_out_of_root_returns_root(start, end):
    tree = ResourceTree()
    new = Resource(start, end, "x", IORESOURCE_IO)
    assert tree.request_resource_conflict(tree.ioport_resource, new) is tree.ioport_resource


def test_request_resource_returns_lowest_overlapping_child():
    tree = ResourceTree()
    root = tree.iomem_resource
    a, b = mem(0x1000, 0x1FFF, "a"), mem(0x3000, 0x3FFF, "b")
    tree.request_resource(root, a)
    tree.request_resource(root, b)
    assert tree.request_resource_conflict(root, mem(0x1800, 0x37FF, "x")) is a


def test_request_resource_keeps_list_sorted_and_links():
    tree = ResourceTree()
    root = tree.iomem_resource
    nodes = [mem(s, s + 0xFF, hex(s)) for s in (0x500, 0x100, 0x300, 0x700)]
    for n in nodes:
        assert tree.request_resource(root, n) == 0
    assert [r.start for r in root.children()] == [0x100, 0x300, 0x500, 0x700]
    assert all(r.parent is root for r in root.children())
    assert tree_problems(root) == []


def test_request_resource_does_not_clear_child_b29h():
    tree = ResourceTree()
    root = tree.iomem_resource
    x = mem(0x1000, 0x1FFF, "x")
    tree.request_resource(root, x)
    kid = mem(0x1000, 0x10FF, "kid")
    tree.request_resource(x, kid)
    assert tree.release_resource(x) == 0
    assert x.child is kid and kid.parent is x  # the subtree stays hanging off x
    assert tree.request_resource(root, x) == 0
    assert layout(root) == [(0, "x", 0x1000, 0x1FFF), (1, "kid", 0x1000, 0x10FF)]


def test_request_resource_of_an_already_linked_node_is_its_own_conflict():
    tree = ResourceTree()
    x = mem(0x1000, 0x1FFF, "x")
    tree.request_resource(tree.iomem_resource, x)
    assert tree.request_resource_conflict(tree.iomem_resource, x) is x


def test_request_resource_ignores_flags():
    tree = ResourceTree()
    io_node = Resource(0x1000, 0x1FFF, "io-in-mem", IORESOURCE_IO | BUSY)
    assert tree.request_resource(tree.iomem_resource, io_node) == 0


def test_devm_request_resource_collision_message():
    tree = ResourceTree()
    tree.request_resource(tree.iomem_resource, mem(0x1000, 0x1FFF, "owner", MEM | BUSY))
    assert tree.devm_request_resource("dev0", tree.iomem_resource,
                                      mem(0x1800, 0x27FF, "late")) == -EBUSY
    (ev,) = tree.log.events
    assert ev.kind == event.RESOURCE_COLLISION
    assert ev.text == ("dev0: resource collision: [mem 0x00001800-0x000027ff] conflicts with "
                       "owner [mem 0x00001000-0x00001fff]")
    assert tree.devm_request_resource("dev0", tree.iomem_resource,
                                      mem(0x2000, 0x27FF, "ok")) == 0


# --- release / remove (§2.3) ------------------------------------------------------------


def _three_level(tree: ResourceTree) -> tuple[Resource, Resource, Resource, Resource]:
    root = tree.iomem_resource
    p = mem(0x1000, 0x4FFF, "p")
    tree.request_resource(root, p)
    k1, k2 = mem(0x1000, 0x1FFF, "k1"), mem(0x3000, 0x3FFF, "k2")
    tree.request_resource(p, k1)
    tree.request_resource(p, k2)
    after = mem(0x8000, 0x8FFF, "after")
    tree.request_resource(root, after)
    return p, k1, k2, after


def test_release_resource_takes_the_subtree_and_keeps_pointers():
    tree = ResourceTree()
    p, k1, k2, after = _three_level(tree)
    assert tree.release_resource(p) == 0
    assert layout(tree.iomem_resource) == [(0, "after", 0x8000, 0x8FFF)]
    assert p.parent is None and p.child is k1 and p.sibling is after  # not cleared
    assert k1.parent is p and k2.parent is p


def test_remove_resource_splices_children_in_place():
    tree = ResourceTree()
    p, k1, k2, after = _three_level(tree)
    assert tree.remove_resource(p) == 0
    assert [r.name for r in tree.iomem_resource.children()] == ["k1", "k2", "after"]
    assert k1.parent is tree.iomem_resource and k2.sibling is after
    assert p.parent is None and p.child is k1
    assert tree_problems(tree.iomem_resource) == []


def test_release_of_node_not_in_parents_list_is_einval():
    tree = ResourceTree()
    p, _k1, _k2, _after = _three_level(tree)
    stranger = mem(0x9000, 0x9FFF, "stranger")
    stranger.parent = p
    assert tree.release_resource(stranger) == -EINVAL
    assert tree.log.events == []


@pytest.mark.parametrize("op", ["release_resource", "remove_resource"])
def test_release_without_parent_is_null_deref_b29f(op):
    tree = ResourceTree()
    _p, *_ = _three_level(tree)
    before = layout(tree.iomem_resource)
    assert getattr(tree, op)(mem(0x9000, 0x9FFF, "loose")) == -EINVAL
    assert kinds(tree) == [event.NULL_DEREF]
    assert layout(tree.iomem_resource) == before


def test_release_child_resources_detaches_and_rebases_post_order():
    tree = ResourceTree()
    root = tree.iomem_resource
    w = mem(0x10000, 0x1FFFF, "w", MEM | IORESOURCE_WINDOW)
    tree.request_resource(root, w)
    a = mem(0x10000, 0x13FFF, "a")
    tree.request_resource(w, a)
    aa = tree._request_region(w, 0x10000, 0x100, "aa", 0)
    b = mem(0x18000, 0x18FFF, "b", MEM | IORESOURCE_PREFETCH)
    tree.request_resource(w, b)
    tree.release_child_resources(w)
    assert w.child is None and w.parent is root
    assert [(r.start, r.end, r.parent, r.sibling, r.child) for r in (a, aa, b)] == [
        (0, 0x3FFF, None, None, None), (0, 0xFF, None, None, None),
        (0, 0xFFF, None, None, None)]
    assert b.flags == MEM | IORESOURCE_PREFETCH
    assert [e.text for e in tree.log.events] == [
        "release child resource [mem 0x00010000-0x000100ff]",
        "release child resource [mem 0x00010000-0x00013fff]",
        "release child resource [mem 0x00018000-0x00018fff pref]"]


# --- insert (§2.4) ----------------------------------------------------------------------


def test_insert_descends_into_busy_conflicts():
    tree = ResourceTree()
    ram = mem(0x100000, 0x7FFFFFFF, "System RAM", IORESOURCE_SYSTEM_RAM | BUSY)
    tree.request_resource(tree.iomem_resource, ram)
    code = mem(0x1000000, 0x1FFFFFF, "Kernel code", IORESOURCE_SYSTEM_RAM | BUSY)
    assert tree.insert_resource(tree.iomem_resource, code) == 0
    assert code.parent is ram


def test_repeated_identical_inserts_build_a_chain():
    tree = ResourceTree()
    for i in range(3):
        assert tree.insert_resource(tree.iomem_resource, mem(0x1000, 0x1FFF, f"n{i}")) == 0
    assert layout(tree.iomem_resource) == [(0, "n2", 0x1000, 0x1FFF), (1, "n1", 0x1000, 0x1FFF),
                                           (2, "n0", 0x1000, 0x1FFF)]


def test_insert_adopts_a_run_and_fails_on_a_partial_overlap_inside_it():
    tree = ResourceTree()
    root = tree.iomem_resource
    for s in (0x1000, 0x2000, 0x3000):
        tree.request_resource(root, mem(s, s + 0xFFF, hex(s)))
    straddler = mem(0x4800, 0x57FF, "straddler")
    tree.request_resource(root, straddler)
    assert tree.insert_resource_conflict(root, mem(0x1000, 0x4FFF, "big")) is straddler
    assert tree.insert_resource(root, mem(0x1800, 0x3FFF, "x")) == -EBUSY
    big = mem(0x800, 0x3FFF, "big")
    assert tree.insert_resource(root, big) == 0
    assert [r.name for r in big.children()] == ["0x1000", "0x2000", "0x3000"]
    assert big.sibling is straddler


def test_duplicated_insertion_warns_and_returns_new():
    tree = ResourceTree()
    x = mem(0x1000, 0x1FFF, "x")
    tree.insert_resource(tree.iomem_resource, x)
    assert tree.insert_resource_conflict(tree.iomem_resource, x) is x
    assert kinds(tree) == [event.DUPLICATED_INSERTION]


def test_insert_outside_parent_returns_parent():
    tree = ResourceTree()
    assert tree.insert_resource_conflict(tree.ioport_resource,
                                         Resource(0xFFF0, 0x1000F, "x")) is tree.ioport_resource


def test_expand_to_fit_widens_over_conflicts():
    tree = ResourceTree()
    root = tree.iomem_resource
    ram = mem(0x1000, 0x2FFF, "System RAM", IORESOURCE_SYSTEM_RAM | BUSY)
    tree.request_resource(root, ram)
    new = mem(0x2000, 0x3FFF, "CXL Window 0")
    tree.insert_resource_expand_to_fit(root, new)
    assert (new.start, new.end, new.parent) == (0x1000, 0x3FFF, root)
    assert ram.parent is new
    (ev,) = tree.log.events
    assert ev.kind == event.EXPANDED_RESOURCE
    assert ev.text == "resource: Expanded resource CXL Window 0 due to conflict with System RAM"


def test_expand_to_fit_gives_up_silently_when_conflict_is_root_b29b():
    tree = ResourceTree()
    new = Resource(0xFFF0, 0x1000F, "x", IORESOURCE_IO)
    assert tree.insert_resource_expand_to_fit(tree.ioport_resource, new) is None
    assert new.parent is None and tree.ioport_resource.child is None
    assert tree.log.events == []


def test_expand_to_fit_returns_at_once_when_parent_set():
    tree = ResourceTree()
    new = mem(0x1000, 0x1FFF, "x")
    new.parent = tree.iomem_resource  # claims to be linked already
    tree.insert_resource_expand_to_fit(tree.iomem_resource, new)
    assert tree.iomem_resource.child is None


def test_expand_to_fit_that_cannot_widen_is_a_hang():
    # A node reachable from the tree with parent NULL: duplicated insertion forever in C.
    tree = ResourceTree()
    root = tree.iomem_resource
    x = mem(0x1000, 0x1FFF, "x")
    c = mem(0x1000, 0x10FF, "c")
    tree.request_resource(root, x)
    tree.request_resource(x, c)
    tree.remove_resource(x)  # x.child still points at c, now top-level
    tree.release_resource(c)  # c detached: parent NULL, but x.child still points at it
    tree.request_resource(root, x)  # x relinked with its stale child c
    tree.insert_resource_expand_to_fit(root, c)
    assert kinds(tree)[-3:] == [event.DUPLICATED_INSERTION, event.EXPANDED_RESOURCE,
                                event.HANG]


# --- adjust (§2.5, B29a) -----------------------------------------------------------------


def test_adjust_size_zero_leaves_an_empty_node_b29a(t):
    assert t.adjust_resource(A(t), 0x1800, 0) == 0
    assert (A(t).start, A(t).end) == (0x1800, 0x17FF)
    assert [problem_kind(p) for p in tree_problems(t.iomem_resource)] == [I3_EMPTY]


def test_adjust_with_wrapping_size_leaves_an_inverted_node(t):
    assert t.adjust_resource(A(t), 0x5000, U64_MAX - 0xFFF) == 0  # end = 0x3fff
    assert (A(t).start, A(t).end) == (0x5000, 0x3FFF)
    (p,) = tree_problems(t.iomem_resource)
    assert p.kind == I3_INVERTED


def test_adjust_checks_parent_bounds_and_both_siblings():
    tree = ResourceTree()
    root = tree.iomem_resource
    w = mem(0x10000, 0x1FFFF, "w")
    tree.request_resource(root, w)
    a, b, c = (tree._request_region(root, s, 0x1000, n, 0)
               for s, n in ((0x11000, "a"), (0x13000, "b"), (0x15000, "c")))
    assert tree.adjust_resource(b, 0x12000, 0x1000) == 0  # into the gap before
    assert tree.adjust_resource(b, 0x11FFF, 0x1000) == -EBUSY  # touches a
    assert tree.adjust_resource(b, 0x12000, 0x3001) == -EBUSY  # reaches c
    assert tree.adjust_resource(c, 0x1F000, 0x1001) == -EBUSY  # beyond w
    assert tree.adjust_resource(a, 0xF000, 0x1000) == -EBUSY  # before w
    assert tree_problems(root) == []


def test_adjust_detached_node_skips_parent_checks():
    tree = ResourceTree()
    lone = mem(0x1000, 0x1FFF, "lone")
    assert tree.adjust_resource(lone, 0, U64_MAX) == 0  # no parent: only children checked
    assert (lone.start, lone.end) == (0, U64_MAX - 1)


def test_adjust_with_stale_parent_is_null_deref():
    tree = ResourceTree()
    root = tree.iomem_resource
    node = mem(0x1000, 0x1FFF, "n", MEM | BUSY)
    tree.request_resource(root, node)
    tree.release_mem_region(0x1000, 0x1000)  # unlinked, parent pointer left stale
    assert node.parent is root
    assert tree.adjust_resource(node, 0x1000, 0x800) == -EBUSY
    assert kinds(tree) == [event.NULL_DEREF]


# --- reserve_region_with_split (§2.9) ----------------------------------------------------------


def test_reserve_region_with_split_fills_top_level_gaps_only():
    tree = ResourceTree()
    root = tree.iomem_resource
    tree.request_resource(root, mem(0x2000, 0x2FFF, "a"))
    tree.request_resource(root, mem(0x4000, 0x4FFF, "b"))
    tree.reserve_region_with_split(root, 0x1000, 0x5FFF, "RAM buffer")
    assert [(r.name, r.start, r.end, r.flags) for r in root.children()] == [
        ("RAM buffer", 0x1000, 0x1FFF, MEM | BUSY), ("a", 0x2000, 0x2FFF, MEM),
        ("RAM buffer", 0x3000, 0x3FFF, MEM | BUSY), ("b", 0x4000, 0x4FFF, MEM),
        ("RAM buffer", 0x5000, 0x5FFF, MEM | BUSY)]
    assert tree.log.events == []


def test_reserve_region_with_split_clips_and_aborts():
    tree = ResourceTree()
    io = tree.ioport_resource
    tree.reserve_region_with_split(io, 0xFF00, 0x1FFFF, "r")
    assert [(r.start, r.end) for r in io.children()] == [(0xFF00, 0xFFFF)]
    tree.reserve_region_with_split(io, 0x10000, 0x1FFFF, "r")
    first, second = (e.text for e in tree.log.events)
    assert first == ("resource: requested range [0xff00-0x1ffff] not in root "
                     "[io  0x0000-0xffff flags 0x100]\nresource: fixing request to "
                     "[0xff00-0xffff]")
    assert second.startswith("resource: requested range [0x10000-0x1ffff] not in root")
    assert len(list(io.children())) == 1


def test_reserve_region_with_split_whole_conflict_drops_pending_piece():
    tree = ResourceTree()
    root = tree.iomem_resource
    tree.request_resource(root, mem(0x2000, 0x2FFF, "a"))
    tree.request_resource(root, mem(0x1000, 0x1FFF, "b"))
    tree.reserve_region_with_split(root, 0x1800, 0x27FF, "r")
    assert [r.name for r in root.children()] == ["b", "a"]


def test_lookup_resource_top_level_only():
    tree = ResourceTree()
    root = tree.iomem_resource
    w = mem(0x1000, 0x1FFF, "w")
    tree.request_resource(root, w)
    tree.request_resource(w, mem(0x1800, 0x18FF, "k"))
    assert tree.lookup_resource(root, 0x1000) is w
    assert tree.lookup_resource(root, 0x1800) is None


# --- allocate_resource (§2.10) -----------------------------------------------------------------


def test_allocate_resource_first_fit_with_alignment():
    tree = ResourceTree()
    w = mem(0xC0000000, 0xC0FFFFFF, "PCI Bus 0000:00", MEM | IORESOURCE_WINDOW)
    tree.request_resource(tree.iomem_resource, w)
    tree.request_resource(w, mem(0xC0000000, 0xC0000FFF, "taken"))
    bar = mem(0, 0, "bar")
    assert tree.allocate_resource(w, bar, 0x4000, 0, U64_MAX, 0x4000) == 0
    assert (bar.start, bar.end, bar.parent) == (0xC0004000, 0xC0007FFF, w)
    too_big = mem(0, 0, "big")
    assert tree.allocate_resource(w, too_big, 0x2000000, 0, U64_MAX, 1) == -EBUSY


def test_allocate_resource_reallocates_in_place_or_moves():
    tree = ResourceTree()
    w = mem(0x10000, 0x1FFFF, "w")
    tree.request_resource(tree.iomem_resource, w)
    bar = mem(0, 0, "bar")
    tree.allocate_resource(w, bar, 0x1000, 0, U64_MAX, 0x1000)
    tree.request_resource(w, mem(0x11000, 0x11FFF, "next"))
    assert tree.allocate_resource(w, bar, 0x2000, 0, U64_MAX, 0x1000) == 0  # must move
    assert (bar.start, bar.end) == (0x12000, 0x13FFF) and bar.parent is w
    assert tree_problems(tree.iomem_resource) == []


def test_allocate_resource_avoids_bios_rom_area():
    tree = ResourceTree()
    w = mem(0xFFC00000, 0xFFFFFFFF, "w")
    tree.request_resource(tree.iomem_resource, w)
    bar = mem(0, 0, "bar")
    assert tree.allocate_resource(w, bar, 0x1000, 0, U64_MAX, 0x1000) == 0
    assert bar.start == 0xFFC00000
    bar2 = mem(0, 0, "bar2")
    tree.allocate_resource(w, bar2, 0x300000, 0, U64_MAX, 0x1000)
    assert bar2.parent is None  # only 0xffc01000-0xffdfffff is left, 0x1ff000 bytes


# --- tree_problems / preorder --------------------------------------------------------------


def test_tree_problems_classifies_every_kind():
    root = Resource(0, 0xFFFF, "root", IORESOURCE_IO)
    a, b, c = Resource(0x10, 0x2F, "a"), Resource(0x20, 0x3F, "b"), Resource(0x5, 0x8, "c")
    e, inv = Resource(0x100, 0xFF, "e"), Resource(0x300, 0x1FF, "inv")
    out = Resource(0xFFF0, 0x1000F, "out")
    root.child, a.sibling, b.sibling, c.sibling, e.sibling, inv.sibling = a, b, c, e, inv, out
    for n in (a, b, c, e, inv):
        n.parent = root
    loop = Resource(0xFFF0, 0xFFF1, "loop")
    out.child = loop
    loop.parent = out
    loop.sibling = loop
    found = sorted(p.kind for p in tree_problems(root))
    assert found == ["I1-nesting", "I2-order", "I2-overlap", "I3-empty", "I3-inverted",
                     "I4-parent", "I4-shared"]


def test_preorder_depths_and_cycle_safety():
    tree = ResourceTree()
    p, _k1, k2, _after = _three_level(tree)
    assert [(r.name, d) for r, d in preorder(tree.iomem_resource)] == [
        ("p", 0), ("k1", 1), ("k2", 1), ("after", 0)]
    k2.sibling = p  # corrupt: cycle back to an ancestor
    assert [r.name for r, _ in preorder(tree.iomem_resource)] == ["p", "k1", "k2", "after"]


def test_cyclic_list_is_a_hang_not_an_endless_loop():
    # Only public operations: remove_resource leaves x.child stale, and relinking x after
    # its former child makes x -> child c -> sibling x a pre-order cycle.
    tree = ResourceTree()
    root = tree.iomem_resource
    x = mem(0x2000, 0x2FFF, "x")
    c = mem(0x2000, 0x20FF, "c")
    tree.request_resource(root, x)
    tree.request_resource(x, c)
    assert tree.remove_resource(x) == 0
    assert tree.adjust_resource(c, 0x1000, 0x100) == 0
    assert tree.request_resource(root, x) == 0
    assert c.sibling is x and x.child is c
    assert [p.kind for p in tree_problems(root)] == ["I4-shared"]
    assert tree.iomem_is_exclusive(0x2000) is False
    assert kinds(tree) == [event.HANG]
    assert tree.region_intersects(0x2000, 0x100, IORESOURCE_SYSTEM_RAM, 0) == 1
    assert kinds(tree) == [event.HANG, event.HANG]


# --- [D] findings the model reproduces ---------------------------------------------------------


def test_inverted_node_lets_a_busy_request_overlap_a_busy_sibling():
    # adjust_resource does not check start + size - 1 for overflow: B becomes [0x7000,
    # 0x3fff] between A and N, and the sorted-list walk then links a request for
    # [0x6800, 0x68ff] before B, overlapping the busy N.
    tree = ResourceTree()
    root = tree.iomem_resource
    tree.request_mem_region(0x1000, 0x1000, "A")
    b = tree.request_mem_region(0x3000, 0x1000, "B")
    n = tree.request_mem_region(0x6000, 0x1000, "N")
    assert tree.adjust_resource(b, 0x7000, (0x3FFF - 0x7000 + 1) & U64_MAX) == 0
    assert (b.start, b.end) == (0x7000, 0x3FFF)
    x = tree.request_mem_region(0x6800, 0x100, "X")
    assert x is not None and x.sibling is b and b.sibling is n
    assert sorted(p.kind for p in tree_problems(root)) == ["I2-overlap", "I3-inverted"]


def test_muxed_request_overrunning_a_muxed_container_waits_forever():
    # conflict == the container itself, and it carries MUXED: the kernel sleeps, and no
    # release can ever make the range fit.
    tree = ResourceTree()
    w = Resource(0x20, 0x2F, "w", IORESOURCE_IO | IORESOURCE_MUXED)
    tree.request_resource(tree.ioport_resource, w)
    claim = RegionClaim()
    for _ in range(3):
        assert tree._request_region(tree.ioport_resource, 0x2E, 4, "m", IORESOURCE_MUXED,
                                    claim) is WOULD_BLOCK
    assert claim.cur is w


def test_release_mem_region_adjustable_with_wrapping_end_splits_into_overlap():
    tree = ResourceTree()
    root = tree.iomem_resource
    tree.reserve_region_with_split(root, 0, 0xFF, "RAM buffer")
    start = U64_MAX - 0xFFB  # end = start + 0xffe wraps to 2
    tree.release_mem_region_adjustable(start, 0xFFF)
    (node, split) = root.children()
    assert (node.start, node.end, split.start, split.end) == (0, start - 1, 3, 0xFF)
    assert [p.kind for p in tree_problems(root)] == ["I2-overlap"]
