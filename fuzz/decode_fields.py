"""Decoding one field value from bytes, in the context of the lines decoded before it.

:class:`State` is what the decoder remembers between fields (earlier addresses and sizes,
the handles bound so far); :class:`Reader` reads a record's payload as if padded with
zeros; :func:`read_field` turns the next bytes into a value of a field's kind, choosing
from the tables of :mod:`iomemfuzz.fuzz.decode_tables`. The encoder
(:mod:`iomemfuzz.fuzz.encode`) inverts these choices and checks each by decoding it.
"""

from __future__ import annotations

from functools import cache

from iomemfuzz.fuzz.decode_tables import (
    DERIVE,
    FRAME,
    MAX_NAME,
    NAME_ALPHABET,
    NAMES,
    OWN_NAME_BYTES,
    POOL,
    RAW32,
    SIMPLEST,
    SMALL,
    TABLE,
    TRANSFORMS,
    U64_MAX,
    field_modes,
    fit,
    machine_names,
    tables,
)
from iomemfuzz.fuzz.ops import Arg, Kind, Op

POOL_SIZE = 16
POOL_HEAD = 2  # earlier values most often reused: the latest two of the field's kind


def biased(b: int, n: int, head: int) -> int:
    """An index in [0, n) from byte ``b``: half the byte values pick among the first
    ``head`` entries (the most recent value or handle, the field's usual root)."""
    if b < 128:
        return b % min(head, n)
    return (b - 128) % n


def unbiased(i: int, head: int) -> int:
    """The byte :func:`biased` maps to index ``i`` (any n > i, i < 128)."""
    return i if i < head else 128 + i


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


class Reader:
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


def read_number(mode: int, r: Reader, a: Arg, state: State) -> int:
    kind = a.kind
    if mode == SIMPLEST:
        return a.simplest
    if mode == TABLE:
        table = tables()[kind]
        return fit(table[r.byte() % len(table)], a)
    if mode == POOL:
        i = r.byte()
        pool = state.pool(kind)
        if not pool:
            return a.simplest
        return fit(pool[biased(i, len(pool), POOL_HEAD)], a)
    if mode == DERIVE:
        i, t = r.byte(), r.byte()
        pool = state.pool(kind)
        base = pool[biased(i, len(pool), POOL_HEAD)] if pool else a.simplest
        return fit(TRANSFORMS[t % len(TRANSFORMS)](base), a)
    if mode == SMALL:
        return fit(r.byte(), a)
    if mode == FRAME:
        return fit(r.uint(3) << 12, a)
    if mode == RAW32:
        return fit(r.uint(4), a)
    return fit(a.lo + r.uint(8), a)


def handle_options(a: Arg, state: State) -> list[object]:
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
def choice_options(a: Arg) -> tuple[object, ...]:
    return (a.simplest, *(c for c in a.choices if c != a.simplest))


@cache
def name_options(a: Arg) -> tuple[tuple[str, ...], int]:
    """The field's simplest name, the names it suggests (``Arg.choices`` of a NAME field:
    the test devices, BAR layouts, preemption points), the generic table, then the
    default machine's names; and how many of them are the field's own (simplest and
    suggestions), which ``OWN_NAME_BYTES`` of the byte values choose among."""
    own = tuple(dict.fromkeys((a.simplest, *a.choices)))
    return tuple(dict.fromkeys((*own, *NAMES, *machine_names()))), len(own)


def read_field(r: Reader, a: Arg, state: State) -> object:
    kind = a.kind
    if kind in (Kind.ADDR, Kind.SIZE, Kind.INT, Kind.FLAGS):
        modes = field_modes(kind)
        return read_number(modes[r.byte() % len(modes)], r, a, state)
    if kind in (Kind.HANDLE, Kind.NODE):
        options = handle_options(a, state)
        return options[biased(r.byte(), len(options), 1)]
    if kind is Kind.CHOICE:
        options = choice_options(a)
        return options[r.byte() % len(options)]
    if kind is Kind.NAME:
        # Without the bias a field's own suggestions drowned among ~35 generic and
        # machine names: the async host's device was ~6 % of the hot-adds, and a valid
        # device and BAR layout together a third.
        names, own = name_options(a)
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

