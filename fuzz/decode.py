"""bytes -> Program: operations drawn from bytes, each in the context of the lines before it.

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

How a field's bytes become a value is :mod:`iomemfuzz.fuzz.decode_fields` (with the
value tables of :mod:`iomemfuzz.fuzz.decode_tables`); :mod:`iomemfuzz.fuzz.encode` is the
inverse, Program -> bytes.

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

from collections.abc import Iterable
from functools import cache

from iomemfuzz.fuzz.decode_fields import Reader, State, read_field
from iomemfuzz.fuzz.decode_tables import fit
from iomemfuzz.fuzz.ops import Arg, Kind, Op, ordered_ops
from iomemfuzz.fuzz.program import Line, Program

MAX_OPS = 64
RECORD_MASK = 0x3F
MAX_RECORD = RECORD_MASK + 0xFF
# Selector bytes that choose among the operations using the latest handle (a quarter),
# then those that choose an operation working on the latest address (an eighth), then
# the plain operation numbers.
CONSUMER_SLOTS = 64
FOLLOW_SLOTS = 32
SELECT_BASE = CONSUMER_SLOTS + FOLLOW_SLOTS


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


def _select(r: Reader, state: State) -> tuple[type[Op], bool]:
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


def selector(cls: type[Op]) -> bytes:
    """The plain selector bytes of ``cls``: its family's first slot, its index there."""
    return _selector(op_table()[0], cls)


@cache
def _selector(ops: tuple[type[Op], ...], cls: type[Op]) -> bytes:
    fams = _families(ops)
    f = next(k for k, fam in enumerate(fams) if cls in fam)
    return bytes([SELECT_BASE + _family_slots(ops).index(f), fams[f].index(cls)])


def _decode_op(payload: bytes, state: State) -> Op:
    r = Reader(payload)
    cls, follow = _select(r, state)
    before = state.copy()
    state.begin()
    values = {}
    for name, a in cls.args():
        if follow and a.kind is Kind.ADDR:
            # The first address field takes the latest address (no mode byte); the
            # operation's other fields read as usual, so (start, n) pairs still form.
            value = fit(state.addrs[0], a)
            follow = False
        else:
            value = read_field(r, a, state)
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
    return read_field(Reader(data), a, state)


def state_after(ops: Iterable[Op]) -> State:
    """The decoder's state after ``ops`` (as if they had been decoded)."""
    state = State()
    for o in ops:
        state.advance(o)
    return state

