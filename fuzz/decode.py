"""bytes -> Program for atheris, and Program -> bytes for the mutator and seed export.

``decode`` is total: every byte string decodes to a valid Program and nothing raises. It
is built from the operation table (``ordered_ops()`` and each field's :class:`Arg`), so a
new family of operations is fuzzed as soon as it is registered.

Layout. The input is a sequence of *records*, one per operation::

    record  := length payload          length: low 6 bits; 0x3f means 0x3f + next byte
    payload := selector field*         selector: which operation (see below)

A record's payload is read as if padded with zero bytes, and bytes past what its fields
use are ignored; an empty record is padding (no operation). So a libFuzzer byte
mutation inside one record changes one operation, truncation keeps every earlier
operation, and a short input is a short Program.

A selector byte ``b >= 96`` picks a *family* (tree, mapping, pci, sched: slots in
proportion to ``FAMILY_WEIGHTS``, so the short PCI and boot families are not drowned by
the 28 tree operations) and the byte after it the operation within the family. Below 96
the selector encodes the two chains a kernel developer writes by hand, so they form by
themselves (the idea of syzkaller's choice table):

* ``b < 64``: an operation that takes the latest handle as an argument (``mmap`` after
  ``open_devmem``, ``touch`` after ``mmap``: HANDLE fields name the operations whose
  handles they take in ``Arg.choices``);
* ``64 <= b < 96``: an operation with an address field, whose first address field is
  the latest address of the Program (no mode byte): claim the page just mapped, release
  the region just claimed, map what was just hot-added. Without such slots, a claim of
  the mapped page took three independent choices (operation, "earlier value" mode, the
  right pool entry) and was ~2e-3 of the records appended to ``open_devmem; mmap``.

Values are chosen the way a kernel developer picks test inputs. Each numeric field starts
with a *mode* byte: the field's simplest value; an entry of a table of interesting values
(page and BAR edges, sizes 0/1/page-1/page/page+1, values near 2^64, and every start, end
and size of the default machine's /proc/iomem and /proc/ioports); a value already used by
an earlier field of the same kind in the Program (addresses and sizes are kept apart,
most recent first, with ``start + n`` and ``end - start + 1`` of each pair); such a
value nudged (+-1, +-page, halved, page
rounded); a small number; a page frame; or 8 raw bytes. Handle fields pick among the
handles earlier lines bind, most recent first (first those of the operations a HANDLE
field names in its ``choices``, if it does), so references almost always exist.

Encoding domain. ``decode(encode(p)) == p`` holds for every Program the decoder can
produce: no headers, notes, trailer, comments or expected outcomes; at most ``MAX_OPS``
lines; every handle reference bound by an earlier line (or nil); numbers inside their
field's bounds; names from ``NAMES`` (or the field's own suggestions) or at most 15
characters of ``NAME_ALPHABET``. ``encode`` raises ValueError outside that domain;
:func:`encode_ops` takes bare operations (and so ignores any metadata).

Stability. The encoder writes indices below the current table sizes, and value tables
and mode tables only grow at the end. What old bytes mean changes with:

* any new operation or a change to ``FAMILY_WEIGHTS``: family slots are re-divided, and
  the chain slots (selector < 96) index the operations that consume a handle or take
  an address, a list that grows in the middle;
* a change to ``OWN_NAME_BYTES`` or to a NAME field's own suggestions;
* a raw name (its escape index is the table length) once a table grows;
* the default machine: the value tables and the name domain (``machine_names()``)
  come from it.

The text corpus is the durable form; byte corpora are re-exported from it
(``iomemfuzz export-seeds``, which ``iomemfuzz fuzz`` runs at every start).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache

from iomemfuzz.fuzz.flags import BITS, TYPES
from iomemfuzz.fuzz.ops import Arg, Kind, Op, ordered_ops
from iomemfuzz.fuzz.program import Line, Program

U64 = 1 << 64
U64_MAX = U64 - 1
PAGE = 0x1000
MAX_OPS = 64
RECORD_MASK = 0x3F
MAX_RECORD = RECORD_MASK + 0xFF
POOL_SIZE = 16
POOL_HEAD = 2  # earlier values most often reused: the latest two of the field's kind
# Selector bytes that choose among the operations using the latest handle (a quarter),
# then those that choose an operation working on the latest address (an eighth), then
# the plain operation numbers.
CONSUMER_SLOTS = 64
FOLLOW_SLOTS = 32
SELECT_BASE = CONSUMER_SLOTS + FOLLOW_SLOTS

# Modes of numeric (ADDR/SIZE) fields: the mode byte modulo 16 picks one. Weights are the
# number of slots: interesting tables and earlier values dominate, raw bytes are rare.
SIMPLEST, TABLE, POOL, DERIVE, SMALL, FRAME, RAW, RAW32 = range(8)
NUM_MODES = (SIMPLEST, TABLE, TABLE, TABLE, POOL, POOL, POOL, DERIVE,
             DERIVE, DERIVE, SMALL, FRAME, RAW, TABLE, POOL, RAW)
INT_MODES = (SIMPLEST, SMALL, SMALL, SMALL, SMALL, SMALL, TABLE, RAW)
# Flags: mostly meaningful combinations; 32 raw bits sometimes, all 64 rarely.
FLAG_MODES = (SIMPLEST, TABLE, TABLE, TABLE, TABLE, TABLE, TABLE, TABLE, TABLE, TABLE,
              SMALL, RAW32, RAW32, RAW32, RAW32, RAW)

# Generic interesting values, independent of any machine. Append only.
GENERIC_ADDRS = (
    0x0, 0x1, 0xFFF, 0x1000, 0x1001, 0x9F000, 0xA0000, 0xC0000, 0xFFFFF, 0x100000,
    0xFFFF, 0x10000, 0xCF8, 0x3F8, 0x7FFFFFFF, 0x80000000, 0xFE000000, 0xFEE00000,
    0xFFFFFFFF, 0x100000000, 1 << 47, 1 << 63, U64 - PAGE, U64 - 2, U64_MAX,
)
GENERIC_SIZES = (
    0x0, 0x1, 0x2, 0x4, 0x7F, 0x80, 0xFF, 0x100, 0x7FF, 0x800, 0xFFF, 0x1000, 0x1001,
    0x2000, 0x4000, 0x10000, 0x100000, 0x200000, 0x1000000, 0x10000000, 0x100000000,
    1 << 63, U64 - PAGE, U64_MAX,
)
GENERIC_INTS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 31, 32, 255, 256, 4096, 65535,
                (1 << 31) - 1, (1 << 32) - 1, U64_MAX)
_MEM, _IO = TYPES["MEM"], TYPES["IO"]
_B = BITS
GENERIC_FLAGS = (
    0, _MEM, _IO, _MEM | _B["BUSY"], _IO | _B["BUSY"], _MEM | _B["BUSY"] | _B["EXCLUSIVE"],
    _MEM | _B["BUSY"] | _B["MUXED"], _IO | _B["BUSY"] | _B["MUXED"], _B["MUXED"],
    _MEM | _B["SYSRAM"], _MEM | _B["SYSRAM"] | _B["BUSY"],
    _MEM | _B["SYSRAM"] | _B["EXCLUSIVE"], _MEM | _B["SYSRAM"] | _B["BUSY"] | _B["EXCLUSIVE"],
    _MEM | _B["PREFETCH"], _MEM | _B["PREFETCH"] | _B["MEM_64"], _MEM | _B["DISABLED"],
    _MEM | _B["UNSET"], _B["BUSY"], _B["EXCLUSIVE"], _MEM | _B["SYSRAM_DRIVER_MANAGED"],
    _MEM | _B["WINDOW"], _IO | _B["WINDOW"], TYPES["REG"], TYPES["IRQ"],
)
NAMES = ("", "drv", "dev", "a", "System RAM", "reserved", "PCI Bus 0000:00",
         "Kernel code", "dax", "Soft Reserved")
NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 :._-"
# A NAME field with suggestions (``Arg.choices``: test devices, BAR layouts, preemption
# points) takes one of its own names (simplest or suggested) for this many of the 256
# byte values; the rest pick uniformly among every name, or escape to a raw name.
OWN_NAME_BYTES = 192
MAX_NAME = 15

# Nudges of an earlier value (DERIVE mode). Append only.
TRANSFORMS: tuple[Callable[[int], int], ...] = (
    lambda v: v + 1,
    lambda v: v - 1,
    lambda v: v + 0xFFF,
    lambda v: v + PAGE,
    lambda v: v - PAGE,
    lambda v: v >> 1,
    lambda v: v << 1,
    lambda v: v & ~(PAGE - 1),
    lambda v: (v + PAGE - 1) & ~(PAGE - 1),
    lambda v: v + 0x7F,
    lambda v: v + 0x80,
    lambda v: v + 0xFF,
    lambda v: v + 0x800,
    lambda v: v - 0x800,
    lambda v: v + 0x100,
    lambda v: -v,
)


def _biased(b: int, n: int, head: int) -> int:
    """An index in [0, n) from byte ``b``: half the byte values pick among the first
    ``head`` entries (the most recent value or handle, the field's usual root)."""
    if b < 128:
        return b % min(head, n)
    return (b - 128) % n


def _unbiased(i: int, head: int) -> int:
    """The byte :func:`_biased` maps to index ``i`` (any n > i, i < 128)."""
    return i if i < head else 128 + i


def _fit(value: int, a: Arg) -> int:
    """Bring any integer into the field's bounds (wrapping, so every value is reachable)."""
    value &= U64_MAX
    if a.lo <= value <= a.hi:
        return value
    return a.lo + (value - a.lo) % (a.hi - a.lo + 1)


def _dedup(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(v & U64_MAX for v in values))


@cache
def machine_values() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(addresses, sizes) worth trying on the default machine: every node's start, end,
    end + 1, a byte inside its first page and the page after it; its size and half size."""
    # Imported here so that importing this module does not build a kernel; the atheris
    # target imports the model under instrumentation first.
    from iomemfuzz.model.kernel import Kernel
    from iomemfuzz.model.resource_check import preorder

    kernel = Kernel()
    addrs: list[int] = []
    sizes: list[int] = []
    for root in (kernel.resources.iomem_resource, kernel.resources.ioport_resource):
        for node, depth in preorder(root):
            if depth == 0:
                continue
            size = node.end - node.start + 1
            addrs += [node.start, node.end, node.end + 1, node.start + 0x800,
                      node.start + PAGE]
            sizes += [size, size >> 1]
    return tuple(sorted(set(addrs))), tuple(sorted(set(sizes)))


@cache
def machine_names() -> tuple[str, ...]:
    """Names that exist on the default machine: its PCI devices ("0000:00:02.0") and the
    names of its resources, for NAME fields such as a device to open or remove."""
    from iomemfuzz.model.kernel import Kernel
    from iomemfuzz.model.resource_check import preorder

    kernel = Kernel()
    names = [getattr(spec, "name", "") for spec in getattr(kernel.machine, "pci_devices", ())]
    for node, _depth in preorder(kernel.resources.iomem_resource):
        names.append(node.name or "")
    return tuple(n for n in dict.fromkeys(names) if n and n not in NAMES)


@cache
def tables() -> dict[Kind, tuple[int, ...]]:
    """Interesting values per kind: generic ones first (stable), then the machine's."""
    addrs, sizes = machine_values()
    return {
        Kind.ADDR: _dedup(GENERIC_ADDRS + addrs)[:256],
        Kind.SIZE: _dedup(GENERIC_SIZES + sizes)[:256],
        Kind.INT: GENERIC_INTS,
        Kind.FLAGS: GENERIC_FLAGS,
    }


@cache
def op_table() -> tuple[tuple[type[Op], ...], dict[type[Op], int]]:
    ops = ordered_ops()
    return ops, {cls: i for i, cls in enumerate(ops)}


# Share of the plain selector bytes each family gets (a family not listed: DEFAULT_WEIGHT).
# By family rather than by operation: with one slot per operation the 28 tree operations
# took half of all records, and the short PCI and boot chains (hot-add behind the async
# host, then its probe) were rarer than one input in 600 of a minute's corpus.
FAMILY_WEIGHTS = {"tree": 7, "mapping": 6, "pci": 4, "sched": 3}
DEFAULT_WEIGHT = 4
PLAIN_SLOTS = 256 - SELECT_BASE


def families() -> tuple[tuple[type[Op], ...], ...]:
    """The registered operations by family (family order, then definition order)."""
    return _families(op_table()[0])


def family_slots() -> tuple[int, ...]:
    """Plain selector slot -> index into ``families()``, in proportion to the weights."""
    return _family_slots(op_table()[0])


# The tables derived from the operation table are cached per operation table, so a test
# that registers an operation (and clears ``op_table``) gets fresh ones.
@cache
def _families(ops: tuple[type[Op], ...]) -> tuple[tuple[type[Op], ...], ...]:
    out: dict[str, list[type[Op]]] = {}
    for cls in ops:
        out.setdefault(cls.FAMILY, []).append(cls)
    return tuple(tuple(v) for v in out.values())


@cache
def _family_slots(ops: tuple[type[Op], ...]) -> tuple[int, ...]:
    fams = _families(ops)
    weights = [FAMILY_WEIGHTS.get(f[0].FAMILY, DEFAULT_WEIGHT) for f in fams]
    total = sum(weights)
    slots: list[int] = []
    acc = 0
    for i, w in enumerate(weights):
        acc += w
        slots += [i] * (round(PLAIN_SLOTS * acc / total) - len(slots))
    return tuple(slots)


class State:
    """What the decoder remembers between fields: earlier values, handles bound so far.

    Addresses and sizes are remembered apart (``pool(kind)``): an address field reuses
    addresses (starts, last bytes, the byte past a region), a size field sizes.
    Decoding and encoding both update it through ``begin``, ``note_field`` and ``end``,
    so they agree."""

    __slots__ = ("addrs", "binders", "first_addr", "sizes")

    def __init__(self) -> None:
        self.addrs: list[int] = []
        self.sizes: list[int] = []
        self.binders: list[str] = []  # operation name of each handle's line
        self.first_addr: int | None = None

    @property
    def handles(self) -> int:
        return len(self.binders)

    def pool(self, kind: Kind) -> list[int]:
        return self.addrs if kind is Kind.ADDR else self.sizes

    def copy(self) -> State:
        s = State()
        s.restore(self)
        return s

    def restore(self, other: State) -> None:
        self.addrs = list(other.addrs)
        self.sizes = list(other.sizes)
        self.binders = list(other.binders)

    @staticmethod
    def _push(pool: list[int], value: int) -> None:
        value &= U64_MAX
        if pool and pool[0] == value:
            return
        if value in pool:
            pool.remove(value)
        pool.insert(0, value)
        del pool[POOL_SIZE:]

    def begin(self) -> None:
        """Start an operation: pairs (start, n) and (start, end) are formed within it."""
        self.first_addr = None

    def note_field(self, a: Arg, value: object) -> None:
        """Remember a field's value as soon as it is decoded, so that a later field of the
        same operation can reuse it (``end = start + 0xfff``)."""
        if not isinstance(value, int):
            return
        first = self.first_addr
        push = self._push
        if a.kind is Kind.ADDR:
            if first is None:
                self.first_addr = value
                push(self.addrs, value)
            else:  # [start, end]: its size is worth reusing; start stays on top
                push(self.sizes, value - first + 1)
                push(self.addrs, value)
                push(self.addrs, first)
        elif a.kind is Kind.SIZE:
            push(self.sizes, value)
            if first is not None:  # (start, n): the last byte, the byte past it
                push(self.addrs, first + value - 1)
                push(self.addrs, first + value)
                push(self.addrs, first)  # the start is what a later line most reuses

    def end(self, cls: type[Op]) -> None:
        if cls.BINDS:
            self.binders.append(cls.NAME)

    def advance(self, o: Op) -> None:
        """Update the state as if ``o`` had just been decoded."""
        self.begin()
        for name, a in type(o).args():
            self.note_field(a, getattr(o, name))
        self.end(type(o))


class _Reader:
    """Reads a byte string as if it were followed by zeros."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        pos = self.pos
        self.pos = pos + 1
        return self.data[pos] if pos < len(self.data) else 0

    def uint(self, n: int) -> int:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return int.from_bytes(chunk, "little")


# --- fields -------------------------------------------------------------------------------


def _modes(kind: Kind) -> tuple[int, ...]:
    if kind is Kind.INT:
        return INT_MODES
    if kind is Kind.FLAGS:
        return FLAG_MODES
    return NUM_MODES


def _num(mode: int, r: _Reader, a: Arg, state: State) -> int:
    kind = a.kind
    if mode == SIMPLEST:
        return a.simplest
    if mode == TABLE:
        table = tables()[kind]
        return _fit(table[r.byte() % len(table)], a)
    if mode == POOL:
        i = r.byte()
        pool = state.pool(kind)
        if not pool:
            return a.simplest
        return _fit(pool[_biased(i, len(pool), POOL_HEAD)], a)
    if mode == DERIVE:
        i, t = r.byte(), r.byte()
        pool = state.pool(kind)
        base = pool[_biased(i, len(pool), POOL_HEAD)] if pool else a.simplest
        return _fit(TRANSFORMS[t % len(TRANSFORMS)](base), a)
    if mode == SMALL:
        return _fit(r.byte(), a)
    if mode == FRAME:
        return _fit(r.uint(3) << 12, a)
    if mode == RAW32:
        return _fit(r.uint(4), a)
    return _fit(a.lo + r.uint(8), a)


def _handle_options(a: Arg, state: State) -> list[object]:
    recent = list(range(state.handles - 1, -1, -1))
    if a.kind is Kind.HANDLE:
        if a.choices:
            # A HANDLE field may name the operations whose handles it expects
            # (``choices=("process",)``): those first, then nil (which an operation may
            # read as "the default"), then the handles of other operations.
            typed = [h for h in recent if state.binders[h] in a.choices]
            return [*typed, None, *(h for h in recent if state.binders[h] not in a.choices)]
        return [*recent, None]
    # NODE: its simplest root first, the other roots, then handles, then nil.
    options: list[object] = [a.simplest]
    options += [c for c in a.choices if c != a.simplest]
    options += [h for h in recent if h != a.simplest]
    if None not in options:
        options.append(None)
    return options


@cache
def _choice_options(a: Arg) -> tuple[object, ...]:
    return (a.simplest, *(c for c in a.choices if c != a.simplest))


@cache
def _name_options(a: Arg) -> tuple[tuple[str, ...], int]:
    """The field's simplest name, the names it suggests (``Arg.choices`` of a NAME field:
    the test devices, BAR layouts, preemption points), the generic table, then the
    default machine's names; and how many of them are the field's own (simplest and
    suggestions), which ``OWN_NAME_BYTES`` of the byte values choose among."""
    own = tuple(dict.fromkeys((a.simplest, *a.choices)))
    return tuple(dict.fromkeys((*own, *NAMES, *machine_names()))), len(own)


def _field(r: _Reader, a: Arg, state: State) -> object:
    kind = a.kind
    if kind in (Kind.ADDR, Kind.SIZE, Kind.INT, Kind.FLAGS):
        modes = _modes(kind)
        return _num(modes[r.byte() % len(modes)], r, a, state)
    if kind in (Kind.HANDLE, Kind.NODE):
        options = _handle_options(a, state)
        return options[_biased(r.byte(), len(options), 1)]
    if kind is Kind.CHOICE:
        options = _choice_options(a)
        return options[r.byte() % len(options)]
    if kind is Kind.NAME:
        # Without the bias a field's own suggestions drowned among ~35 generic and
        # machine names: the async host's device was ~6 % of the hot-adds, and a valid
        # device and BAR layout together a third.
        names, own = _name_options(a)
        bias = OWN_NAME_BYTES if a.choices else 0
        b = r.byte()
        if b < bias:
            return names[b % own]
        i = (b - bias) % (len(names) + 1)
        if i < len(names):
            return names[i]
        length = r.byte() % (MAX_NAME + 1)
        return "".join(NAME_ALPHABET[r.byte() % len(NAME_ALPHABET)] for _ in range(length))
    # A kind this decoder does not know yet: leave the field at its simplest value.
    return a.simplest


def consumers(binder: str) -> tuple[type[Op], ...]:
    """Operations that take a handle made by ``binder``: those whose HANDLE fields name it
    in ``choices``; if none does, those with an untyped HANDLE or NODE field."""
    return _consumers(op_table()[0], binder)


@cache
def _consumers(ops: tuple[type[Op], ...], binder: str) -> tuple[type[Op], ...]:
    typed = tuple(c for c in ops if any(
        a.kind is Kind.HANDLE and binder in a.choices for _, a in c.args()))
    if typed:
        return typed
    return tuple(c for c in ops if any(
        (a.kind is Kind.HANDLE and not a.choices) or a.kind is Kind.NODE
        for _, a in c.args()))


def followers() -> tuple[type[Op], ...]:
    """Operations with an address field: what the follow slots choose from."""
    return _followers(op_table()[0])


@cache
def _followers(ops: tuple[type[Op], ...]) -> tuple[type[Op], ...]:
    return tuple(c for c in ops if any(a.kind is Kind.ADDR for _, a in c.args()))


def _select(r: _Reader, state: State) -> tuple[type[Op], bool]:
    """The operation of a record, and whether its first address field follows the
    latest address. Selector bytes below ``CONSUMER_SLOTS`` pick an operation that uses
    the latest handle (open -> mmap -> touch), the next ``FOLLOW_SLOTS`` one that works
    on the latest address (mmap -> claim that page), the rest any."""
    ops, _ = op_table()
    b = r.byte()
    if b < CONSUMER_SLOTS:
        users = consumers(state.binders[-1]) if state.binders else ()
        return (users[b % len(users)] if users else ops[b % len(ops)]), False
    if b < SELECT_BASE:
        near = followers()
        return near[b % len(near)], bool(state.addrs)
    family = families()[family_slots()[b - SELECT_BASE]]
    return family[r.byte() % len(family)], False


def _decode_op(payload: bytes, state: State) -> Op:
    r = _Reader(payload)
    cls, follow = _select(r, state)
    before = state.copy()
    state.begin()
    values = {}
    for name, a in cls.args():
        if follow and a.kind is Kind.ADDR:
            # The first address field takes the latest address (no mode byte); the
            # operation's other fields read as usual, so (start, n) pairs still form.
            value = _fit(state.addrs[0], a)
            follow = False
        else:
            value = _field(r, a, state)
        state.note_field(a, value)
        values[name] = value
    try:
        o = cls(**values)
    except (TypeError, ValueError):
        # No operation's constructor rejects values today (a bad combination, such as a
        # ROM size that is no power of two, is an errno at run time). Should one ever,
        # its simplest form never fails, and the state must be what encoding that
        # form would leave.
        o = cls()
        state.restore(before)
        state.advance(o)
        return o
    state.end(cls)
    return o


def records(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each record's payload in ``data`` (the last may run past the end).

    An empty record (length 0) is padding and decodes to nothing: as the first
    operation's selector, zeros would otherwise chain ``__request_region`` (which takes
    its own handle) once per zero byte, and runs of zeros are what libFuzzer inserts
    most; a minute's corpus was a third such lines. The encoder never writes one."""
    out = []
    pos = 0
    n = len(data)
    while pos < n and len(out) < MAX_OPS:
        length = data[pos] & RECORD_MASK
        pos += 1
        if length == RECORD_MASK:
            length += data[pos] if pos < n else 0
            pos += 1
        if length:
            out.append((pos, pos + length))
        pos += length
    return out


def decode_ops(data: bytes) -> list[Op]:
    """The operations ``data`` decodes to (total, deterministic)."""
    state = State()
    return [_decode_op(data[s:e], state) for s, e in records(data)]


def decode(data: bytes) -> Program:
    """bytes -> Program. Never raises; every result is valid Program text."""
    return Program(tuple(Line(o) for o in decode_ops(data)))


def decode_record(payload: bytes, state: State) -> Op:
    """One operation from a record payload in the context ``state`` (updated)."""
    return _decode_op(payload, state)


def decode_field(data: bytes, a: Arg, state: State) -> object:
    """One field value from ``data`` in the context ``state`` (not updated)."""
    return _field(_Reader(data), a, state)


def state_after(ops: Iterable[Op]) -> State:
    """The decoder's state after ``ops`` (as if they had been decoded)."""
    state = State()
    for o in ops:
        state.advance(o)
    return state


# --- encoding -----------------------------------------------------------------------------


@cache
def _first_mode_byte(modes: tuple[int, ...], mode: int) -> int:
    return modes.index(mode)


@cache
def _table_index(kind: Kind, lo: int, hi: int) -> dict[int, int]:
    """value (after fitting into [lo, hi]) -> its first index in the kind's table."""
    a = Arg(kind, 0, lo=lo, hi=hi)
    out: dict[int, int] = {}
    for i, v in enumerate(tables().get(kind, ())):
        out.setdefault(_fit(v, a), i)
    return out


def _num_candidates(a: Arg, value: int, state: State) -> Iterable[bytes]:
    kind = a.kind
    modes = _modes(kind)
    if value == a.simplest:
        yield bytes([_first_mode_byte(modes, SIMPLEST)])
    if TABLE in modes:
        i = _table_index(kind, a.lo, a.hi).get(value)
        if i is not None:
            yield bytes([_first_mode_byte(modes, TABLE), i])
    pool = state.pool(kind)
    if POOL in modes:
        m = _first_mode_byte(modes, POOL)
        for i, v in enumerate(pool):
            if _fit(v, a) == value:
                yield bytes([m, _unbiased(i, POOL_HEAD)])
                break
    if SMALL in modes and value < 256:
        yield bytes([_first_mode_byte(modes, SMALL), value & 0xFF])
    if DERIVE in modes and pool:
        m = _first_mode_byte(modes, DERIVE)
        found = False
        for i, base in enumerate(pool):
            for t, f in enumerate(TRANSFORMS):
                if _fit(f(base), a) == value:
                    yield bytes([m, _unbiased(i, POOL_HEAD), t])
                    found = True
                    break
            if found:
                break
    if FRAME in modes and value % PAGE == 0 and value >> 12 < (1 << 24):
        yield bytes([_first_mode_byte(modes, FRAME)]) + (value >> 12).to_bytes(3, "little")
    if RAW32 in modes and value < (1 << 32):
        yield bytes([_first_mode_byte(modes, RAW32)]) + value.to_bytes(4, "little")
    yield bytes([_first_mode_byte(modes, RAW)]) + (value - a.lo).to_bytes(8, "little")


def _encode_field(a: Arg, value: object, state: State) -> bytes:
    kind = a.kind
    if kind in (Kind.ADDR, Kind.SIZE, Kind.INT, Kind.FLAGS):
        if not isinstance(value, int) or not a.lo <= value <= a.hi:
            raise ValueError(f"{value!r} is outside [{a.lo:#x}, {a.hi:#x}]")
        modes = _modes(kind)
        # Fast paths that decode back to ``value`` by construction (value is in range):
        # the simplest value, a table entry (the index map holds fitted values), a pool
        # entry of a full-range field.
        if value == a.simplest:
            return bytes([_first_mode_byte(modes, SIMPLEST)])
        i = _table_index(kind, a.lo, a.hi).get(value)
        if i is not None:
            return bytes([_first_mode_byte(modes, TABLE), i])
        pool = state.pool(kind)
        if POOL in modes and a.lo == 0 and a.hi == U64_MAX and value in pool:
            return bytes([_first_mode_byte(modes, POOL),
                          _unbiased(pool.index(value), POOL_HEAD)])
        for candidate in _num_candidates(a, value, state):
            # Check the candidate by decoding it: encode agrees with decode by construction.
            r = _Reader(candidate)
            if _num(modes[r.byte() % len(modes)], r, a, state) == value:
                return candidate
        raise ValueError(f"cannot encode {value!r}")
    if kind in (Kind.HANDLE, Kind.NODE, Kind.CHOICE):
        choice = kind is Kind.CHOICE
        options = _choice_options(a) if choice else _handle_options(a, state)
        for i, option in enumerate(options):
            if option == value and type(option) is type(value):
                return bytes([i if choice else _unbiased(i, 1)])
        raise ValueError(f"{value!r} is not a choice here (options: {options})")
    if kind is Kind.NAME:
        names, own = _name_options(a)
        bias = OWN_NAME_BYTES if a.choices else 0
        if value in names:
            i = names.index(value)
            if i < own and bias:
                return bytes([i])
            if bias + i < 256:
                return bytes([bias + i])
        text = str(value)
        if len(text) > MAX_NAME or any(c not in NAME_ALPHABET for c in text):
            raise ValueError(f"name {text!r} is outside the decoder's domain")
        if bias + len(names) >= 256:
            raise ValueError(f"name {text!r}: the name table is too long to escape")
        return bytes([bias + len(names), len(text), *(NAME_ALPHABET.index(c) for c in text)])
    if value != a.simplest:
        raise ValueError(f"field kind {kind} carries only its simplest value")
    return b""


def selector(cls: type[Op]) -> bytes:
    """The plain selector bytes of ``cls``: its family's first slot, its index there."""
    return _selector(op_table()[0], cls)


@cache
def _selector(ops: tuple[type[Op], ...], cls: type[Op]) -> bytes:
    fams = _families(ops)
    f = next(k for k, fam in enumerate(fams) if cls in fam)
    return bytes([SELECT_BASE + _family_slots(ops).index(f), fams[f].index(cls)])


def encode_op(o: Op, state: State) -> bytes:
    """One record (length and payload) for ``o`` in the context ``state`` (updated)."""
    _ops, index = op_table()
    cls = type(o)
    if cls not in index:
        raise ValueError(f"{cls.__name__} is not a registered operation")
    payload = bytearray(selector(cls))
    state.begin()
    for name, a in cls.args():
        value = getattr(o, name)
        payload += _encode_field(a, value, state)
        state.note_field(a, value)
    state.end(cls)
    # The decoder pads with zeros, so trailing zeros need not be stored.
    while payload and payload[-1] == 0:
        payload.pop()
    n = len(payload)
    if n < RECORD_MASK:
        return bytes([n]) + payload
    if n > MAX_RECORD:
        raise ValueError(f"{cls.NAME} needs {n} bytes, more than a record holds")
    return bytes([RECORD_MASK, n - RECORD_MASK]) + payload


def encode_ops(ops: Iterable[Op]) -> bytes:
    """Bare operations -> bytes with ``decode_ops(encode_ops(ops)) == list(ops)``."""
    state = State()
    out = bytearray()
    for count, o in enumerate(ops, start=1):
        if count > MAX_OPS:
            raise ValueError(f"more than {MAX_OPS} operations")
        out += encode_op(o, state)
    return bytes(out)


def encode(program: Program) -> bytes:
    """Program -> bytes with ``decode(encode(p)) == p`` on the domain described above."""
    if program.headers or program.notes or program.trailer or any(
            line.comments or line.expect is not None for line in program.lines):
        raise ValueError("headers, comments and expectations cannot be encoded; "
                         "use encode_ops(program.ops)")
    return encode_ops(program.ops)
