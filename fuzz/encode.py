"""Program -> bytes: the inverse of :mod:`iomemfuzz.fuzz.decode`.

Encoding domain. ``decode(encode(p)) == p`` holds for every Program the decoder can
produce: no headers, notes, trailer, comments or expected outcomes; at most ``MAX_OPS``
lines; every handle reference bound by an earlier line (or nil); numbers inside their
field's bounds; names from ``NAMES`` (or the field's own suggestions) or at most 15
characters of ``NAME_ALPHABET``. ``encode`` raises ValueError outside that domain;
:func:`encode_ops` takes bare operations (and so ignores any metadata).

Each field's bytes are checked by decoding them (:mod:`iomemfuzz.fuzz.decode_fields`),
so encoding agrees with decoding by construction.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from iomemfuzz.fuzz.decode import MAX_OPS, MAX_RECORD, RECORD_MASK, op_table, selector
from iomemfuzz.fuzz.decode_fields import (
    POOL_HEAD,
    Reader,
    State,
    choice_options,
    handle_options,
    name_options,
    read_number,
    unbiased,
)
from iomemfuzz.fuzz.decode_tables import (
    DERIVE,
    FRAME,
    MAX_NAME,
    NAME_ALPHABET,
    OWN_NAME_BYTES,
    PAGE,
    POOL,
    RAW,
    RAW32,
    SIMPLEST,
    SMALL,
    TABLE,
    TRANSFORMS,
    U64_MAX,
    field_modes,
    fit,
    tables,
)
from iomemfuzz.fuzz.ops import Arg, Kind, Op
from iomemfuzz.fuzz.program import Program


@cache
def _first_mode_byte(modes: tuple[int, ...], mode: int) -> int:
    return modes.index(mode)


@cache
def _table_index(kind: Kind, lo: int, hi: int) -> dict[int, int]:
    """value (after fitting into [lo, hi]) -> its first index in the kind's table."""
    a = Arg(kind, 0, lo=lo, hi=hi)
    out: dict[int, int] = {}
    for i, v in enumerate(tables().get(kind, ())):
        out.setdefault(fit(v, a), i)
    return out


def _num_candidates(a: Arg, value: int, state: State) -> Iterable[bytes]:
    kind = a.kind
    modes = field_modes(kind)
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
            if fit(v, a) == value:
                yield bytes([m, unbiased(i, POOL_HEAD)])
                break
    if SMALL in modes and value < 256:
        yield bytes([_first_mode_byte(modes, SMALL), value & 0xFF])
    if DERIVE in modes and pool:
        m = _first_mode_byte(modes, DERIVE)
        found = False
        for i, base in enumerate(pool):
            for t, f in enumerate(TRANSFORMS):
                if fit(f(base), a) == value:
                    yield bytes([m, unbiased(i, POOL_HEAD), t])
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
        modes = field_modes(kind)
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
                          unbiased(pool.index(value), POOL_HEAD)])
        for candidate in _num_candidates(a, value, state):
            # Check the candidate by decoding it: encode agrees with decode by construction.
            r = Reader(candidate)
            if read_number(modes[r.byte() % len(modes)], r, a, state) == value:
                return candidate
        raise ValueError(f"cannot encode {value!r}")
    if kind in (Kind.HANDLE, Kind.NODE, Kind.CHOICE):
        choice = kind is Kind.CHOICE
        options = choice_options(a) if choice else handle_options(a, state)
        for i, option in enumerate(options):
            if option == value and type(option) is type(value):
                return bytes([i if choice else unbiased(i, 1)])
        raise ValueError(f"{value!r} is not a choice here (options: {options})")
    if kind is Kind.NAME:
        names, own = name_options(a)
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
