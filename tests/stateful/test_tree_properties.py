"""Property: no sequence of resource-tree operations breaks the tree unless a caller
misuses a struct.

Invariant (spec §1.5): after every operation both roots satisfy I1–I4, except for empty
nodes that ``adjust_resource(r, s, 0)`` leaves by design (B29a, problem kind I3-empty).
Operations are every public operation of ResourceTree on both roots, with addresses
and sizes drawn near 0, page boundaries, existing node boundaries, the ioport limit and
2^64. A caller that links a struct that is still (or stalely) linked or whose stale subtree
points into the tree, that releases the children of a node through stale child pointers
(a node it removed), that adjusts or hot-removes with a size wrapping past 2^64, or that
reallocates a node under a root that is not its parent, is *misusing* the API; after that the kernel
promises nothing, so the invariant is only checked until the first misuse, while the model
must still never raise and stay bounded. Crash events are allowed where the kernel would
crash on a well-formed tree (double release of a struct, use after free, a walk whose
cursor wraps at 2^64, a descending free-region search of size 0); a HANG anywhere else
before misuse fails the test.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from iomemfuzz.model import event
from iomemfuzz.model.ioport import (
    IORES_DESC_ACPI_TABLES,
    IORES_DESC_DEVICE_PRIVATE_MEMORY,
    IORES_DESC_NONE,
    IORESOURCE_BUSY,
    IORESOURCE_EXCLUSIVE,
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_MUXED,
    IORESOURCE_PREFETCH,
    IORESOURCE_SYSRAM_MERGEABLE,
    IORESOURCE_SYSTEM_RAM,
    IORESOURCE_WINDOW,
    U64_MAX,
    Resource,
)
from iomemfuzz.model.machine import (
    MACHINES,
    build_resource_tree,
    parse_proc_iomem,
    render_proc_iomem,
    shape,
)
from iomemfuzz.model.profile import DEFAULT, resolve
from iomemfuzz.model.resource import IO_SPACE_LIMIT, PAGE_SIZE
from iomemfuzz.model.resource_check import I3_EMPTY, preorder, tree_problems
from iomemfuzz.model.resource_tree import ResourceTree
from iomemfuzz.model.sched import WOULD_BLOCK

# The CI budget: at least this many operations across all runs, in well under a minute.
MIN_OPERATIONS = int(os.environ.get("IOMEMFUZZ_TREE_OPS", "20000"))
# Typically 15-30 s on a loaded 2-core box; the budget only stops a runaway loop.
TIME_BUDGET_S = 120.0 * max(1, MIN_OPERATIONS // 20_000)
# Shrinking these sequences can take minutes; CI reports the failing run as generated (it
# replays with the printed seed). Set IOMEMFUZZ_SHRINK=1 to shrink locally.
PHASES = tuple(Phase) if os.environ.get("IOMEMFUZZ_SHRINK") else (
    Phase.explicit, Phase.reuse, Phase.generate)

FLAG_CHOICES = [
    IORESOURCE_MEM, IORESOURCE_MEM | IORESOURCE_BUSY,
    IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY,
    IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY | IORESOURCE_SYSRAM_MERGEABLE,
    IORESOURCE_SYSTEM_RAM | IORESOURCE_EXCLUSIVE, IORESOURCE_MEM | IORESOURCE_WINDOW,
    IORESOURCE_MEM | IORESOURCE_PREFETCH, IORESOURCE_MEM | IORESOURCE_BUSY | IORESOURCE_MUXED,
    IORESOURCE_IO, IORESOURCE_IO | IORESOURCE_BUSY, IORESOURCE_IO | IORESOURCE_MUXED, 0,
]
REQUEST_FLAGS = [0, 0, 0, IORESOURCE_MUXED, IORESOURCE_EXCLUSIVE, IORESOURCE_SYSTEM_RAM,
                 IORESOURCE_BUSY, 0x7FFFFFFF, 0xFFFFFFFF]
QUERY_FLAGS = [0, IORESOURCE_MEM, IORESOURCE_SYSTEM_RAM, IORESOURCE_MEM | IORESOURCE_BUSY,
               IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY, IORESOURCE_BUSY]
DESCS = [IORES_DESC_NONE, IORES_DESC_NONE, IORES_DESC_ACPI_TABLES,
         IORES_DESC_DEVICE_PRIVATE_MEMORY]
NAMES = ["a", "b", "System RAM", "reserved", None]
SPECIAL_SIZES = [0, 1, 2, 0xFF, 0xFFF, PAGE_SIZE, PAGE_SIZE + 1, 0x10000, 0x100000, 1 << 32,
                 1 << 63, U64_MAX - PAGE_SIZE + 1, U64_MAX - 1, U64_MAX]
# A HANG before any misuse is only allowed from these (the kernel loops on a clean tree too).
CLEAN_TREE_HANGS = {"__walk_iomem_res_desc", "walk_system_ram_range", "get_free_mem_region"}

PROFILES = [DEFAULT, resolve("v6.1"), resolve("v5.13"), resolve("v5.7"),
            resolve("v6.1-deb-relaxed"), replace(DEFAULT, claim_policy="fail")]


# Hypothesis costs far more per drawn value than the model costs per operation, so each
# rule draws one byte string and decodes all its arguments from it (Args). Shrinking the
# bytes towards zeros still shrinks the arguments towards the simplest values.
RAW = st.binary(max_size=32)  # missing bytes read as zeros


class Args:
    """Arguments decoded from drawn bytes, each against the current state."""

    def __init__(self, raw: bytes, machine: TreeOperations) -> None:
        self.raw = raw
        self.pos = 0
        self.machine = machine

    def int(self, nbytes: int) -> int:
        chunk = self.raw[self.pos:self.pos + nbytes]
        self.pos += nbytes
        return int.from_bytes(chunk, "little")

    def below(self, n: int) -> int:
        return self.int(2) % n if n else 0

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def flag(self) -> bool:
        return bool(self.int(1) & 1)

    def root(self) -> Resource:
        return self.machine.roots()[self.int(1) & 1]

    def addr(self, root: Resource) -> int:
        kind = self.below(3)
        if kind == 1:
            return self.int(3) % 0x200000
        if kind == 2:
            return self.int(8)
        pool = [0, 1, PAGE_SIZE - 1, PAGE_SIZE, PAGE_SIZE + 1, 0xFFFFF, 0x100000, 0x100001,
                IO_SPACE_LIMIT, IO_SPACE_LIMIT + 1, root.end, root.end - 1,
                root.end - PAGE_SIZE + 1, U64_MAX, U64_MAX - 1, 1 << 46]
        for node, _ in preorder(root):
            pool.extend((node.start, node.end, (node.end + 1) & U64_MAX,
                         (node.start - 1) & U64_MAX, node.start + PAGE_SIZE))
        return self.choice(pool) & U64_MAX

    def size(self) -> int:
        if self.flag():
            return self.choice(SPECIAL_SIZES)
        return self.int(3) % 0x20000

    def node(self) -> Resource | None:
        candidates = list(self.machine.handles)
        for root in self.machine.roots():
            candidates.extend(r for r, _ in preorder(root))
        return self.choice(candidates) if candidates else None

    def struct(self) -> Resource | None:
        """A handle to link: mostly a detached one without children (correct use), now and
        then any handle at all (misuse, or the B29h stale-subtree relink)."""
        handles = self.machine.handles
        if self.below(8):
            free = [r for r in handles if r.parent is None and r.child is None]
            if free:
                return self.choice(free)
        return self.choice(handles) if handles else None

    def parent(self) -> Resource:
        """Mostly a root, sometimes any node."""
        if self.below(4):
            return self.root()
        return self.node() or self.machine.roots()[0]


class Counter:
    operations = 0


class TreeOperations(RuleBasedStateMachine):
    """Every resource-tree operation, on handles the program holds."""

    def __init__(self) -> None:
        super().__init__()
        self.tree = ResourceTree()
        self.handles: list[Resource] = []
        self.misused = False

    @initialize(profile=st.sampled_from(PROFILES),
                machine=st.sampled_from([None, "minimal", "qemu-q35"]))
    def boot(self, profile, machine):
        if machine is None:
            self.tree = ResourceTree(profile)
        else:
            self.tree = build_resource_tree(MACHINES[machine], profile)
            for root in self.roots():
                self.handles.extend(r for r, _ in preorder(root))
        if profile.claim_policy == "fail":
            self.tree.claim_veto_hook = lambda start, end: start & 0x10000 != 0
        self.tree.revoke_hook = lambda res: None
        self.tree.muxed_wake_hook = lambda: None

    def roots(self) -> tuple[Resource, Resource]:
        return self.tree.iomem_resource, self.tree.ioport_resource

    # --- misuse tracking ------------------------------------------------------------------

    def subtree_is_stale(self, node: Resource, live: set[int] | None) -> bool:
        """Some node reachable through ``node``'s child pointers is not owned by the list
        it sits in (a stale pointer), repeats, or (with ``live``) is part of the tree."""
        seen: set[int] = set()
        stack = [node]
        while stack:
            owner = stack.pop()
            c = owner.child
            while c is not None:
                if id(c) in seen or c.parent is not owner or (live and id(c) in live):
                    return True
                seen.add(id(c))
                stack.append(c)
                c = c.sibling
        return False

    def linking_is_misuse(self, new: Resource, parent: Resource) -> bool:
        """Linking ``new`` under ``parent`` can corrupt the tree: ``new`` is (or stalely
        thinks it is) linked, is a root, is ``parent`` or one of its ancestors (a cycle),
        or carries a stale subtree that is inconsistent or partly in the tree."""
        if new.parent is not None or new in self.roots():
            return True
        up: Resource | None = parent
        for _ in range(1000):
            if up is None:
                break
            if up is new:
                return True
            up = up.parent
        else:
            return True
        if new.child is None:
            return False
        live = {id(r) for root in self.roots() for r, _ in preorder(root)}
        return self.subtree_is_stale(new, live)

    def note_link(self, new: Resource, parent: Resource) -> None:
        if self.linking_is_misuse(new, parent):
            self.misused = True

    # --- structs --------------------------------------------------------------------------

    @rule(raw=RAW)
    def new_struct(self, raw):
        a = Args(raw, self)
        start = a.addr(a.root())
        res = Resource(start, (start + a.size() - 1) & U64_MAX, a.choice(NAMES),
                       a.choice(FLAG_CHOICES), a.choice(DESCS))
        res.slab = a.flag()
        self.handles.append(res)
        Counter.operations += 1

    # --- linking ---------------------------------------------------------------------------

    @rule(op=st.sampled_from(["request_resource", "request_resource_conflict",
                              "insert_resource", "insert_resource_conflict",
                              "devm_request_resource", "insert_resource_expand_to_fit"]),
          raw=RAW)
    def link(self, op, raw):
        a = Args(raw, self)
        new = a.struct()
        if new is None:
            return
        parent = a.parent()
        if op != "insert_resource_expand_to_fit" or new.parent is None:
            self.note_link(new, parent)
        if op == "devm_request_resource":
            self.tree.devm_request_resource("dev", parent, new)
        else:
            getattr(self.tree, op)(parent, new)
        Counter.operations += 1

    @rule(raw=RAW)
    def allocate(self, raw):
        a = Args(raw, self)
        new = a.struct()
        if new is None:
            return
        root = a.parent()
        if new.parent is None:
            self.note_link(new, root)
        elif a.below(8):
            root = new.parent  # reallocation under its own parent: correct use
        elif new.parent is not root:
            self.misused = True
        lo = a.addr(root)
        hi = a.choice((U64_MAX, root.end, (lo + 0x100000) & U64_MAX))
        align = a.choice((0, 1, 0x10, PAGE_SIZE, 0x100000, 3))
        self.tree.allocate_resource(root, new, a.size(), lo, hi, align)
        Counter.operations += 1

    # --- unlinking -------------------------------------------------------------------------

    @rule(op=st.sampled_from(["release_resource", "remove_resource", "release_child_resources",
                              "merge_system_ram_resource"]), raw=RAW)
    def unlink(self, op, raw):
        node = Args(raw, self).node()
        if node is not None:
            if op == "release_child_resources" and self.subtree_is_stale(node, None):
                # e.g. on a removed node: its stale child pointer leads into the live tree,
                # and those nodes are cut loose while their list still links them.
                self.misused = True
            getattr(self.tree, op)(node)
        Counter.operations += 1

    @rule(raw=RAW)
    def adjust(self, raw):
        a = Args(raw, self)
        node = a.node()
        if node is None:
            return
        start = a.addr(self.roots()[1 if node.flags & IORESOURCE_IO else 0])
        size = a.size()
        if size and start + size - 1 > U64_MAX:
            self.misused = True  # end wraps: an inverted node (not the B29a empty one)
        self.tree.adjust_resource(node, start, size)
        Counter.operations += 1

    # --- regions ---------------------------------------------------------------------------

    @rule(raw=RAW)
    def request_region(self, raw):
        a = Args(raw, self)
        root = a.root()
        res = self.tree._request_region(root, a.addr(root), a.size(), a.choice(NAMES),
                                        a.choice(REQUEST_FLAGS))
        if res is not None and res is not WOULD_BLOCK:
            self.handles.append(res)
        Counter.operations += 1

    @rule(raw=RAW)
    def release_region(self, raw):
        a = Args(raw, self)
        root = a.root()
        busy = [r for r, _ in preorder(root) if r.flags & IORESOURCE_BUSY]
        if busy and a.flag():
            node = a.choice(busy)
            start, n = node.start, (node.end - node.start + 1) & U64_MAX
        else:
            start, n = a.addr(root), a.size()
        self.tree._release_region(root, start, n)
        Counter.operations += 1

    @rule(raw=RAW)
    def release_mem_region_adjustable(self, raw):
        a = Args(raw, self)
        start, size = a.addr(self.tree.iomem_resource), a.size()
        if size and start + size - 1 > U64_MAX:
            # The range check misses a wrapping end: a node containing [start, end] by the
            # numbers gets "split" into overlapping siblings ([D], no real caller does it).
            self.misused = True
        self.tree.release_mem_region_adjustable(start, size)
        Counter.operations += 1

    @rule(raw=RAW)
    def reserve_region_with_split(self, raw):
        a = Args(raw, self)
        root = a.root()
        start = a.addr(root)
        self.tree.reserve_region_with_split(root, start, (start + a.size()) & U64_MAX,
                                            "RAM buffer")
        Counter.operations += 1

    @rule(raw=RAW, request=st.booleans())
    def free_region(self, raw, request):
        a = Args(raw, self)
        base = a.parent()
        size = a.size()
        if request:
            res = self.tree.request_free_mem_region(base, size, "hmm")
        else:
            res = self.tree.alloc_free_mem_region(base, size,
                                                  a.choice((PAGE_SIZE, 0x100000, 1 << 28)),
                                                  "region")
        if isinstance(res, Resource):
            self.handles.append(res)
        Counter.operations += 1

    # --- queries ---------------------------------------------------------------------------

    @rule(op=st.sampled_from(["region_intersects", "iomem_is_exclusive",
                              "resource_is_exclusive", "iomem_map_sanity_check",
                              "lookup_resource", "page_is_ram"]), raw=RAW)
    def query(self, op, raw):
        a = Args(raw, self)
        addr = a.addr(self.tree.iomem_resource)
        if op == "region_intersects":
            self.tree.region_intersects(addr, a.size(), a.choice(QUERY_FLAGS), a.choice(DESCS))
        elif op == "iomem_is_exclusive":
            self.tree.iomem_is_exclusive(addr)
        elif op == "resource_is_exclusive":
            self.tree.resource_is_exclusive(a.parent(), addr, a.size())
        elif op == "iomem_map_sanity_check":
            self.tree.iomem_map_sanity_check(addr, a.size())
        elif op == "lookup_resource":
            self.tree.lookup_resource(a.parent(), addr)
        else:
            self.tree.page_is_ram(addr >> 12)
        Counter.operations += 1

    @rule(op=st.sampled_from(["find_next_iomem_res", "walk_iomem_res_desc",
                              "walk_system_ram_res", "walk_mem_res", "walk_system_ram_range"]),
          raw=RAW)
    def walk(self, op, raw):
        a = Args(raw, self)
        start = a.addr(self.tree.iomem_resource)
        end = a.choice((U64_MAX, (start + 0x100000) & U64_MAX, start))
        stop_after = a.below(4)
        flags, desc = a.choice(QUERY_FLAGS), a.choice(DESCS)
        calls = []

        def fn(*args):
            calls.append(args)
            return 1 if len(calls) > stop_after else 0

        if op == "find_next_iomem_res":
            self.tree.find_next_iomem_res(start, end, flags, desc, Resource())
        elif op == "walk_iomem_res_desc":
            self.tree.walk_iomem_res_desc(desc, flags, start, end, None, fn)
        elif op == "walk_system_ram_range":
            self.tree.walk_system_ram_range(start >> 12, a.size(), None, fn)
        else:
            getattr(self.tree, op)(start, end, None, fn)
        Counter.operations += 1

    @rule(root=st.integers(0, 1))
    def proc_round_trip(self, root):
        root = self.roots()[root]
        # A misused tree may be cyclic: the file is then endless and only the line cap
        # ends the render, which is slow and proves nothing here.
        text = render_proc_iomem(root, max_lines=64 if self.misused else 1 << 16)
        if not self.misused and not any(p.kind == I3_EMPTY for p in tree_problems(root)):
            again = parse_proc_iomem(text, Resource(root.start, root.end, root.name,
                                                    root.flags))
            assert [(r.start, r.end, r.name, d) for r, d in preorder(again)] == [
                (r.start, r.end, r.name, d) for r, d in preorder(root)]
            assert len(shape(again)) == len(shape(root))
        Counter.operations += 1

    # --- the property ----------------------------------------------------------------------

    @invariant()
    def tree_is_well_formed(self):
        for root in self.roots():
            problems = tree_problems(root)
            if not self.misused:
                assert all(p.kind == I3_EMPTY for p in problems), problems
        if not self.misused:
            bad = [e for e in self.tree.log.events
                   if e.kind == event.HANG and e.get("function") not in CLEAN_TREE_HANGS]
            assert not bad, bad


def test_tree_operations_keep_the_invariants():
    """Run the state machine until MIN_OPERATIONS operations have been executed."""
    from hypothesis.stateful import run_state_machine_as_test

    Counter.operations = 0
    started = time.monotonic()
    rounds = 0
    while Counter.operations < MIN_OPERATIONS:
        run_state_machine_as_test(TreeOperations, settings=settings(
            max_examples=60, stateful_step_count=120, deadline=None, database=None,
            phases=PHASES,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                   HealthCheck.filter_too_much]))
        rounds += 1
        assert time.monotonic() - started < TIME_BUDGET_S, (
            f"only {Counter.operations} operations in {TIME_BUDGET_S}s")
    assert Counter.operations >= MIN_OPERATIONS
    assert rounds >= 1
