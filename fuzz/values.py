"""Values drawn from the kernel state, for the generator (fuzz/generate.py).

A chain of lines is a bug only when its links share values: the claim must cover the page
the mapping maps, the touch must land in it, the second hot-added card must sit in the
first card's page. Values drawn uniformly from 64-bit ranges never meet; these are drawn
from what the state and the Program already hold, the way syzkaller draws resources and
special values:

* a **physical address** (claims, /dev/mem offsets, tree calls): the start of a node of
  /proc/iomem, its last page, the byte after it, a few bytes or a page into it, an address
  an earlier line used (exactly, or nudged by a byte, 16 bytes, a page);
* a **port** the same way from /proc/ioports;
* an **offset in a mapping**: its first byte, 16 bytes in, the last byte of its first page,
  its second page, its last byte; in a **resource file**: its start, a page in, its end;
* a **size**: a table of telling sizes (none, a byte, a sub-page BAR, a page, two), the rest of
  the node an address lies in, a size an earlier line used, one that straddles a page end;
* a **device**: one a line named before, one present, or for a hot-add a free slot;
* a **handle**: only one a producer made, the latest most often.

Fields of other kinds take their simplest value often and any declared choice otherwise.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from iomemfuzz.fuzz.features import node_kind
from iomemfuzz.fuzz.ops import Arg, Kind, Op, load_families
from iomemfuzz.model.boot import ALL_LEVELS
from iomemfuzz.model.ioport import IORESOURCE_BUSY, IORESOURCE_IO, IORESOURCE_MEM, Resource
from iomemfuzz.model.resource_check import descendants

PAGE = 0x1000
LOW_MIB = 0x100000
# The type of the object a handle field takes, where its declaration lists no producer.
HANDLE_TYPES = {"task": "Task", "res": "Resource", "vma": "Vma", "file": "File",
                "proc": "Process"}

# Address spaces of ADDR fields that are not physical memory (the rest are).
VMA, FILE, PFN = "vma", "file", "pfn"
SPACE = {
    ("touch", "offset"): VMA, ("ptrace_access", "offset"): VMA,
    ("mmap", "offset"): FILE, ("spawn_mmap", "offset"): FILE, ("read", "offset"): FILE,
    ("write", "offset"): FILE, ("lseek", "offset"): FILE,
    ("page_is_ram", "pfn"): PFN, ("walk_system_ram_range", "start_pfn"): PFN,
}
# Port-space operations, whatever their parent field says.
PORT_OPS = frozenset({"request_muxed_region"})
PORT_MACROS = frozenset({"io", "io_muxed"})

SIZES = (0, 1, 0x10, 0x80, 0x100, 0x800, PAGE, 2 * PAGE, 0x10000, 0x100000)
LENGTHS = (PAGE, PAGE, PAGE, 2 * PAGE, 4 * PAGE, 0x100000)
NUDGES = (1, -1, 0x10, 0x100, PAGE, -PAGE, 2 * PAGE)
FLAGS = (0, IORESOURCE_MEM, IORESOURCE_MEM | IORESOURCE_BUSY, IORESOURCE_IO,
         IORESOURCE_IO | IORESOURCE_BUSY)
# Small integers that mean something for a field, by field name.
INTS = {"bar": (0, 0, 0, 1, 2, 6), "n": (1, 1, 1, 2, 3, 100), "line": (0, 1, 2, 3),
        "size": (0, 1, 2, 4, 8)}
# A physical address is one a live mapping reaches this often (when one exists): the
# claim that meets a mapping is the first link of every revocation bug.
P_MAPPED = 0.3
P_FOCUS = 0.85
# Operations that give a range back by address, and how often they take a held claim's.
RELEASES = frozenset({"__release_region", "release_mem_region",
                      "release_mem_region_adjustable"})
P_PAST_END = 0.3  # a touch of a mapping of a small file lands just past the file's end
P_HELD = 0.6  # a claim chosen for a mapping takes its address and size from it
P_SPAWN = 0.12  # a line that can start a kernel path as a task does so this often
# Operations whose ``ids``/``id`` field is a driver's id table, and how often it names a
# function present (the other choices name QEMU's cards, present or not).
ID_TABLE_OPS = frozenset({"module_load", "new_id", "remove_id"})
P_IDS = 0.5
# How often a step stops at a point a task of its producer was seen parked at (else:
# the declared race windows, or a number of slices).
P_SEEN_POINT = 0.6
# How often an access through a mapping lands at the edge of a claim someone holds: the
# bytes a revocation should take away, and the ones next to them it should leave.
P_CLAIMED = 0.5


@dataclass
class State:
    """What a line may draw from after a prefix: its usable handles, the nodes of the
    trees, the addresses, sizes and names the prefix used, the devices present."""

    handles: list[tuple[int, Any, str]]  # (handle number, object, producer op)
    made: list[tuple[str, str]]  # (producer op, handle type) per usable handle
    iomem: list[Resource]
    ioport: list[Resource]
    addrs: list[int]  # physical addresses earlier lines used, latest first
    ports: list[int]
    sizes: list[int]
    names: dict[str, list[str]]  # per NAME field, values earlier lines gave it
    devices: list[str]  # present PCI functions
    unbooted: bool  # the Program started before boot (boot_to may come again)
    mapped: list[int]  # physical addresses live user mappings reach, latest first
    held: list[tuple[int, int]]  # (start, size) of the claims callers hold, latest first
    held_io: set[tuple[int, int]]  # those of ``held`` that are port ranges
    ids: list[str]  # "vvvv:dddd" of the present PCI functions
    # Where tasks made by each producer operation were seen parked (the generator's
    # memory across Programs): the ``until`` a step of such a task stops at.
    points: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, ex: Any, ops: Sequence[Op]) -> State:
        handles = _usable(ex, ops)
        kernel = ex.kernel
        addrs: list[int] = []
        ports: list[int] = []
        sizes: list[int] = []
        names: dict[str, list[str]] = {}
        for o in reversed(ops):
            port = _port_op(o)
            for name, a in type(o).args():
                v = getattr(o, name)
                if a.kind is Kind.ADDR and SPACE.get((type(o).NAME, name)) in (None, FILE):
                    # A file offset of /dev/mem is a physical address too; of other files
                    # it is small and harmless among the anchors.
                    (ports if port else addrs).append(v)
                elif a.kind is Kind.SIZE:
                    sizes.append(v)
                elif a.kind is Kind.NAME and v and v != a.simplest:
                    names.setdefault(name, []).append(v)
        iomem_root, ioport_root = kernel.roots
        claims = [c for c in reversed(getattr(kernel.observer, "claims", {}).values())
                  if c.lost_by is None]
        devices = kernel.pci.devices()
        return cls(handles, [(p, type(obj).__name__) for _h, obj, p in handles],
                   descendants(iomem_root), descendants(ioport_root), list(dict.fromkeys(addrs)),
                   list(dict.fromkeys(ports)), list(dict.fromkeys(sizes)), names,
                   [d.name for d in devices],
                   any(type(o).CONTROLS_BOOT for o in ops),
                   _in_flight(kernel) + _mapped(handles),
                   [(c.node.start, c.node.end - c.node.start + 1) for c in claims],
                   {(c.node.start, c.node.end - c.node.start + 1) for c in claims
                    if c.node.flags & IORESOURCE_IO},
                   list(dict.fromkeys(f"{d.spec.vendor:04x}:{d.spec.device:04x}"
                                      for d in devices)))


def _usable(ex: Any, ops: Sequence[Op]) -> list[tuple[int, Any, str]]:
    """The handles whose lines succeeded (or parked: a task), with their producers."""
    out = []
    binders = [o for o in ops if type(o).BINDS]
    steps = [s for s in ex.steps if s.op is not None and type(s.op).BINDS]
    for h, (o, step, obj) in enumerate(zip(binders, steps, ex.ctx.handles, strict=False)):
        if obj is None or step.outcome is None \
                or step.outcome.status not in ("ok", "blocked"):
            continue
        if type(obj).__name__ == "Task" and getattr(obj, "state", None) == "done":
            continue  # a finished path: nothing left to step
        if getattr(obj, "closed", False) or getattr(obj, "unmapped", False) \
                or not getattr(obj, "alive", True):
            continue  # a closed file, an unmapped VMA, a process that exited
        out.append((h, obj, type(o).NAME))
    return out


def _mapped(handles: list[tuple[int, Any, str]]) -> list[int]:
    """Physical addresses the live mappings among ``handles`` reach: the first byte of
    each mapping, a byte into it and its last page (a claim there meets a mapping)."""
    out = []
    for _h, obj, _p in reversed(handles):
        pfn = getattr(obj, "pgoff", None)
        if type(obj).__name__ != "Vma" or pfn is None:
            continue
        start = pfn * PAGE
        out += [start, start + 0x10, start + (obj.npages - 1) * PAGE]
    return out


def claim_edges_in(state: State, vma: Any) -> list[int]:
    """Offsets into ``vma`` at the edges of a claim a caller holds: its first and last
    byte (what a revocation must take away) and the bytes just outside it (what a
    byte-exact one must leave), those of them that lie in the mapping."""
    pfn = getattr(vma, "pgoff", None)
    if pfn is None:
        return []
    lo, hi = pfn * PAGE, (pfn + vma.npages) * PAGE - 1
    out = []
    for start, size in state.held:
        last = start + max(size, 1) - 1
        if (start, size) in state.held_io or start > hi or last < lo:
            continue
        out += [a - lo for a in (start, last, start - 1, last + 1) if lo <= a <= hi]
    return out


def _in_flight(kernel: Any) -> list[int]:
    """Pages an mmap in progress has filled but not yet linked (a task parked inside
    mmap_region): no handle names that mapping yet, and a claim of its page is BD6's."""
    out = []
    for vma in getattr(kernel.mm, "pending", ()):
        if vma.populated:
            out += [vma.pgoff * PAGE, vma.pgoff * PAGE + 0x10]
    return out


def _port_op(o: Op) -> bool:
    name = type(o).NAME
    return (name in PORT_OPS or getattr(o, "parent", None) == "ioport"
            or getattr(o, "root", None) == "ioport" or getattr(o, "macro", "") in PORT_MACROS)


# --- drawing one value ---------------------------------------------------------------------


def _address(rng: random.Random, nodes: list[Resource], recent: list[int], hi: int,
             mapped: Sequence[int] = ()) -> int:
    if mapped and rng.random() < P_MAPPED:
        return mapped[min(int(rng.expovariate(0.5)), len(mapped) - 1)]
    roll = rng.random()
    if recent and roll < 0.35:
        return recent[min(int(rng.expovariate(1.0)), len(recent) - 1)]
    if recent and roll < 0.45:
        return max(0, rng.choice(recent) + rng.choice(NUDGES))
    if nodes and roll < 0.92:
        node = _stratified(rng, nodes)
        pick = rng.random()
        if pick < 0.5:
            return node.start
        if pick < 0.65:
            return max(node.start, (node.end + 1 - PAGE) & ~(PAGE - 1))
        if pick < 0.75:
            return node.end + 1
        if pick < 0.9:
            return node.start + rng.choice((0x10, 0x100, PAGE))
        return node.end
    return rng.randrange(0, min(hi, 1 << 32)) & ~(PAGE - 1)


def _stratified(rng: random.Random, nodes: list[Resource]) -> Resource:
    """A node, its kind drawn first (below 1 MiB or above; RAM, a device's BAR, a bus
    window, a busy claim, anything else): the one low-MiB window is drawn as often as the
    dozens of BARs, so a mapping of it is not a rare event."""
    kinds: dict[tuple[bool, str], list[Resource]] = {}
    for n in nodes:
        kinds.setdefault((n.start < LOW_MIB, _kind(n)), []).append(n)
    return rng.choice(rng.choice(list(kinds.values())))


def _kind(node: Resource) -> str:
    kind = node_kind(node.name or "")
    return "busy" if kind == "other" and node.flags & IORESOURCE_BUSY else kind


def _size(rng: random.Random, nodes: list[Resource], start: int | None,
          recent: list[int]) -> int:
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(SIZES)
    if start is not None and roll < 0.7:
        inside = [n for n in nodes if n.start <= start <= n.end]
        if inside:
            node = min(inside, key=lambda n: n.end - n.start)
            return node.end - start + 1
    if recent and roll < 0.85:
        return rng.choice(recent)
    if start is not None:
        return PAGE - (start % PAGE) + 0x10  # straddles a page end
    return PAGE


def _offset_in(rng: random.Random, length: int) -> int:
    choices = [0, 0x10, PAGE - 1, length - 1]
    if length > PAGE:
        choices += [PAGE, PAGE + 0x10]
    if rng.random() < 0.15 and length > 1:
        return rng.randrange(length)
    return max(0, rng.choice(choices))


def _file_offset(rng: random.Random, state: State, file: Any, op: str) -> int:
    path = getattr(file, "path", "") or ""
    mapping = op in ("mmap", "spawn_mmap")
    if path == "/dev/mem" or (path.startswith("/proc/bus/pci") and mapping):
        addr = _address(rng, state.iomem, state.addrs, 1 << 48)
        return addr & ~(PAGE - 1) if mapping else addr
    if "legacy_io" in path:
        return _address(rng, state.ioport, state.ports, 0x10000)
    if "legacy_mem" in path:
        return _address(rng, [n for n in state.iomem if n.end < 0x100000], state.addrs,
                        0x100000)
    size = getattr(file, "inode_size", 0) or PAGE
    return _offset_in(rng, size) & ~(PAGE - 1) if op in ("mmap", "spawn_mmap") \
        else _offset_in(rng, size)


def _handle(rng: random.Random, state: State, name: str, a: Arg,
            focus: Any = None) -> int | bool | None:
    """A handle number for the field, None for nil, False when no producer made one;
    mostly ``focus``'s when the field takes it (the handle the operation was chosen for)."""
    want = HANDLE_TYPES.get(name)
    ok = [h for h, obj, p in state.handles
          if (p in a.choices if a.choices else type(obj).__name__ == want)]
    mine = [h for h, obj, _p in state.handles if obj is focus and h in ok]
    if mine and rng.random() < P_FOCUS:
        return mine[0]
    if name == "proc" and (not ok or rng.random() < 0.8):
        return None
    if not ok:
        return False
    return ok[-1 - min(int(rng.expovariate(1.0)), len(ok) - 1)]


def _name(rng: random.Random, state: State, op: str, name: str, a: Arg) -> str:
    earlier = state.names.get(name, [])
    if op in ID_TABLE_OPS and name in ("ids", "id") and state.ids and rng.random() < P_IDS:
        # A driver's id table that matches a function present: the driver then probes
        # it (a driver the model does not know, with claims=no, is B13's).
        ids = rng.choice(state.ids)
        return ids if name == "ids" else ids.replace(":", " ")
    if name == "dev":
        present = state.devices
        if op == "hotadd":
            free = [c for c in a.choices if c not in present]
            if free and rng.random() < 0.75:
                return rng.choice(free)
        elif present and rng.random() < 0.45:
            return rng.choice(present)
        if earlier and rng.random() < 0.7:
            return rng.choice(earlier)
    elif earlier and rng.random() < 0.4:
        return rng.choice(earlier)
    if a.choices and (not a.simplest or rng.random() < 0.7):
        return rng.choice(a.choices)
    return a.simplest


def _until(rng: random.Random, state: State, task: Any, a: Arg) -> str:
    """Where a step stops: often a point tasks of this one's producer were seen parked
    at (the declared windows are every path's; most of them are not on this task's)."""
    producer = next((p for h, _obj, p in state.handles if h == task), None)
    seen = state.points.get(producer or "", [])
    if seen and rng.random() < P_SEEN_POINT:
        return rng.choice(seen)
    return rng.choice(a.choices) if rng.random() < 0.5 else a.simplest


def parked_at(state: State) -> list[tuple[str, str]]:
    """(producer operation, where) of each task of ``state`` parked at a preemption point."""
    out = []
    for _h, obj, producer in state.handles:
        where = getattr(getattr(obj, "parked", None), "where", None)
        if type(obj).__name__ == "Task" and isinstance(where, str):
            out.append((producer, where))
    return out


def _choice(rng: random.Random, name: str, a: Arg) -> str:
    if name == "mode" and "spawn" in a.choices:
        return "spawn" if rng.random() < P_SPAWN else a.simplest
    if rng.random() < 0.4:
        return a.simplest
    return rng.choice(a.choices)


def boot_line(rng: random.Random, cls: type[Op] | None) -> Op:
    """A ``boot_to`` line to a random initcall level."""
    return (cls or load_families()["boot_to"])(level=rng.choice(ALL_LEVELS))


def fill(cls: type[Op], state: State, rng: random.Random, focus: Any = None) -> Op | None:
    """An operation of ``cls`` with values drawn from ``state``; None when it cannot be
    written here (a consumer without a producer, boot control on a booted kernel).
    ``focus``: the object the operation was chosen for (a mapping a claim should meet)."""
    op = cls.NAME
    mapping = focus if type(focus).__name__ == "Vma" else None
    held = state.held[min(int(rng.expovariate(1.0)), len(state.held) - 1)] \
        if op in RELEASES and state.held and rng.random() < P_HELD else None
    if op in RELEASES and type(focus).__name__ == "Resource":
        # Chosen for a claim's handle: the release of that claim.
        mine = (focus.start, focus.end - focus.start + 1)
        held = mine if mine in state.held and rng.random() < P_FOCUS else held
    if cls.CONTROLS_BOOT:
        return boot_line(rng, cls) if state.unbooted else None
    vals: dict[str, Any] = {}
    port = op in PORT_OPS
    start: int | None = None
    for name, a in cls.args():
        kind = a.kind
        if kind is Kind.HANDLE:
            h = _handle(rng, state, name, a, focus)
            if h is False:
                return None
            vals[name] = h
        elif kind is Kind.NODE:
            roll = rng.random()
            if held is not None:
                # A release goes to the tree its claim is in.
                vals[name] = "ioport" if held in state.held_io else a.simplest
            else:
                vals[name] = "ioport" if roll < 0.15 else a.simplest
            port = port or vals[name] == "ioport"
        elif kind is Kind.CHOICE:
            vals[name] = _choice(rng, name, a)
            port = port or vals[name] in PORT_MACROS or vals[name] == "ioport"
        elif kind is Kind.ADDR:
            if held is not None and start is None:
                vals[name] = start = _clamp(held[0], a)
                continue
            if mapping is not None and start is None and not port \
                    and SPACE.get((op, name)) is None and rng.random() < P_FOCUS:
                vals[name] = start = _clamp(_inside(rng, mapping), a)
                continue
            vals[name] = start = _addr_field(rng, state, op, name, a, vals, start, port)
        elif kind is Kind.SIZE:
            if name == "length":  # of a mapping: pages
                vals[name] = _clamp(rng.choice(LENGTHS), a)
                continue
            if held is not None:
                # The size it was claimed with, or one that is not (a release of part
                # of a claim, or of more than it).
                vals[name] = _clamp(rng.choice((held[1], held[1], held[1] // 2 or 1,
                                                held[1] * 2, 1)), a)
                continue
            if mapping is not None and start is not None and rng.random() < P_FOCUS:
                room = mapping.pgoff * PAGE + mapping.npages * PAGE - start
                vals[name] = _clamp(min(rng.choice(SIZES[:6]), max(room, 1)), a)
                continue
            vals[name] = _clamp(_size(rng, state.ioport if port else state.iomem, start,
                                      state.sizes), a)
        elif kind is Kind.NAME:
            if name == "until":
                vals[name] = _until(rng, state, vals.get("task"), a)
                continue
            vals[name] = _name(rng, state, op, name, a)
        elif kind is Kind.FLAGS:
            vals[name] = a.simplest if rng.random() < 0.5 else rng.choice(FLAGS)
        elif kind is Kind.INT:
            table = INTS.get(name)
            vals[name] = rng.choice(table) if table and rng.random() < 0.7 else a.simplest
            vals[name] = _clamp(vals[name], a)
    try:
        return cls(**vals)
    except (TypeError, ValueError):
        return None


def _inside(rng: random.Random, vma: Any) -> int:
    """A physical address inside what ``vma`` maps: its first byte, a few bytes in, the
    start of its last page, a byte before the end of its first page."""
    start = vma.pgoff * PAGE
    return start + rng.choice((0, 0, 0x10, 0x80, (vma.npages - 1) * PAGE, PAGE - 0x10))


def _addr_field(rng: random.Random, state: State, op: str, name: str, a: Arg,
                vals: dict[str, Any], start: int | None, port: bool) -> int:
    """An ADDR field: the first of an operation is a start; a later one (an end, a
    ``hi``) ends a range from it."""
    if start is not None:
        if rng.random() < 0.8:
            nodes = state.ioport if port else state.iomem
            return _clamp(start + _size(rng, nodes, start, state.sizes) - 1, a)
        return a.simplest
    space = SPACE.get((op, name))
    if space == VMA:
        vma = _resolve(state, vals.get("vma"))
        length = getattr(vma, "npages", 1) * PAGE
        claimed = claim_edges_in(state, vma) if vma is not None else []
        if claimed and rng.random() < P_CLAIMED:
            return rng.choice(claimed)
        size = getattr(getattr(vma, "file", None), "inode_size", 0)
        if 0 < size < length and rng.random() < P_PAST_END:
            # A resource file smaller than the page it maps (a sub-page BAR): the bytes
            # past its end in that page belong to whatever decodes them.
            return rng.choice((size, size - 1, size + 0x10))
        return _offset_in(rng, length)
    if space == FILE:
        return _clamp(_file_offset(rng, state, _resolve(state, vals.get("file")), op), a)
    if space == PFN:
        return _clamp(_address(rng, state.iomem, state.addrs, 1 << 40) >> 12, a)
    if port:
        return _clamp(_address(rng, state.ioport, state.ports, 0x10000), a)
    return _clamp(_address(rng, state.iomem, state.addrs, a.hi, state.mapped), a)


def _resolve(state: State, handle: Any) -> Any:
    for h, obj, _p in state.handles:
        if h == handle:
            return obj
    return None


def _clamp(v: int, a: Arg) -> int:
    return min(max(v, a.lo), a.hi)
