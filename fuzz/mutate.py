"""Structure-aware mutation: change a Program by whole operations, then write it again.

libFuzzer's byte mutations know nothing about operations: an edit of the text mostly
breaks a line (which then reads as deleted) or changes one digit or letter. This
mutator parses the input, applies one to a few of

* insert a fresh operation (drawn by the decoder from random bytes in the context of the
  lines before it, so its handles and values are the interesting ones there),
* extend a chain: right after a line, an operation using that line's handle or address,
* delete, duplicate or move an operation, or swap two; truncate (keep a prefix),
* re-argument: give one field of one operation a fresh value (same value tables),
* splice (crossover): the head of one Program and the tail of another,

and writes the result as Program text (:mod:`iomemfuzz.fuzz.textinput`, the inputs
are text). New operations and values are drawn by the decoder (:mod:`iomemfuzz.fuzz.decode`)
from random bytes in the context of the lines before them. Handle references
are remapped so each still names the line it named (or nil when that line is gone or now
comes later), exactly as deleting a line from Program text does. A share of the calls is
handed to libFuzzer's own byte mutator, which keeps the dictionary/CMP feedback (value
profile) that finds exact constants.

Every function here is total: a mutation that cannot apply returns its input unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable
from functools import cache

from iomemfuzz.fuzz import decode, textinput
from iomemfuzz.fuzz.ops import Kind, Op
from iomemfuzz.fuzz.program import remap_handles

# Share of calls given to libFuzzer's byte mutator (when one is passed in): its CMP and
# value-profile guided mutations find exact constants the structural ones do not.
BYTE_SHARE = 0.4
MAX_STACK = 2

ByteMutator = Callable[[bytes, int], bytes]


def _binders(ops: list[Op]) -> list[int]:
    """Line index of each handle, in handle order."""
    return [i for i, o in enumerate(ops) if type(o).BINDS]


def reorder(ops: list[Op], order: list[int]) -> list[Op]:
    """The lines ``order`` (indices into ``ops``, repeats allowed) with handles remapped:
    a reference names the nearest earlier placement of the line it named, else nil."""
    binder_line = _binders(ops)
    placed: dict[int, int] = {}  # old line -> new handle of its latest placement so far
    out: list[Op] = []
    handle = 0
    for old in order:
        o = ops[old]
        remap = {h: placed.get(line) for h, line in enumerate(binder_line)}
        out.append(remap_handles(o, remap))
        if type(o).BINDS:
            placed[old] = handle
            handle += 1
    return out


def insert(ops: list[Op], at: int, new: Op) -> list[Op]:
    """``new`` inserted before line ``at``; ``new``'s references are already in terms of
    the lines before ``at``."""
    if not type(new).BINDS:
        return [*ops[:at], new, *ops[at:]]
    shift_from = sum(1 for o in ops[:at] if type(o).BINDS)
    remap = {h: (h + 1 if h >= shift_from else h) for h in range(len(_binders(ops)))}
    tail = [remap_handles(o, remap) for o in ops[at:]]
    return [*ops[:at], new, *tail]


def splice(head: list[Op], tail: list[Op], cut_head: int, cut_tail: int) -> list[Op]:
    """``head[:cut_head] + tail[cut_tail:]``: references into the kept part of ``tail``
    follow their lines; references to its dropped part name the same-numbered handle of
    ``head`` when there is one (a Program's rN is positional), else nil."""
    kept_head = head[:cut_head]
    h_head = len(_binders(kept_head))
    h_dropped = len(_binders(tail[:cut_tail]))
    remap: dict[int, int | None] = {}
    for h in range(len(_binders(tail))):
        if h >= h_dropped:
            remap[h] = h - h_dropped + h_head
        else:
            remap[h] = h if h < h_head else None
    return kept_head + [remap_handles(o, remap) for o in tail[cut_tail:]]


def _fresh_op(ops: list[Op], at: int, rng: random.Random,
              selectors: range | None = None) -> Op:
    """A new operation for position ``at``, drawn by the decoder in the context of the
    lines before it; ``selectors`` restricts its selector byte (a chain slot range)."""
    state = decode.state_after(ops[:at])
    payload = bytearray(rng.randbytes(rng.randrange(1, 28)))
    if selectors is not None:
        payload[0] = rng.choice(selectors)
    return decode.decode_record(bytes(payload), state)


# Chains grown anywhere in a Program, not only after its last line: a consumer of the
# handle a line binds, or an operation on the address a line used, inserted right after
# that line (the decoder's chain slots read "the latest handle/address" at that point).
# libFuzzer keeps an input with a new link (open_devmem, then a successful mmap) among
# hundreds of others; the next link must grow from wherever that line sits.
CONSUMER_SELECTORS = range(decode.CONSUMER_SLOTS)
FOLLOW_SELECTORS = range(decode.CONSUMER_SLOTS, decode.SELECT_BASE)


def _extend_chain(ops: list[Op], rng: random.Random) -> tuple[list[Op], int]:
    binders = _binders(ops)
    with_addr = [i for i, o in enumerate(ops)
                 if any(a.kind is Kind.ADDR for _, a in type(o).args())]
    if binders and (not with_addr or rng.random() < 0.5):
        i, selectors = rng.choice(binders), CONSUMER_SELECTORS
    elif with_addr:
        i, selectors = rng.choice(with_addr), FOLLOW_SELECTORS
    else:
        return insert(ops, len(ops), _fresh_op(ops, len(ops), rng)), len(ops)
    return insert(ops, i + 1, _fresh_op(ops, i + 1, rng, selectors)), i + 1


def _reargument(ops: list[Op], rng: random.Random) -> tuple[list[Op], int]:
    candidates = [i for i, o in enumerate(ops) if type(o).args()]
    if not candidates:
        return ops, len(ops)
    i = rng.choice(candidates)
    o = ops[i]
    args = type(o).args()
    k = rng.randrange(len(args))
    name, a = args[k]
    if a.kind in (Kind.ADDR, Kind.SIZE) and rng.random() < 0.25:
        # Copy the value of another numeric field of the Program (start of a claim into
        # its release, a size into an end ...).
        pool = [getattr(p, n) for p in ops for n, b in type(p).args()
                if b.kind in (Kind.ADDR, Kind.SIZE)]
        value = rng.choice(pool) if pool else a.simplest
        if not a.lo <= value <= a.hi:
            return ops, len(ops)
    else:
        state = decode.state_after(ops[:i])
        state.begin()
        for prior, b in args[:k]:
            state.note_field(b, getattr(o, prior))
        value = decode.decode_field(rng.randbytes(10), a, state)
    try:
        new = dataclasses.replace(o, **{name: value})
    except (TypeError, ValueError):
        return ops, len(ops)
    return [*ops[:i], new, *ops[i + 1:]], i


def mutate_ops(ops: list[Op], rng: random.Random) -> tuple[list[Op], int]:
    """One structural mutation: the new operations, and the first index that changed.

    Deleting is as likely as inserting, so Programs do not grow without bound (a longer
    Program always reaches a few more features, and libFuzzer would keep it). Of the
    inserts, a fresh operation goes to the end or anywhere; a chain link goes right
    after the line whose handle or address it uses."""
    n = len(ops)
    roll = rng.random()
    if n == 0 or roll < 0.15:
        at = n if rng.random() < 0.5 else rng.randrange(n + 1)
        return insert(ops, at, _fresh_op(ops, at, rng)), at
    if roll < 0.35:
        return _extend_chain(ops, rng)
    if roll < 0.50:
        i = rng.randrange(n)
        return reorder(ops, [j for j in range(n) if j != i]), i
    if roll < 0.58 and n > 1:
        # Truncate: where a Program ends matters here, not only what it does. At the end
        # the executor runs every path still parked (the rest of boot, tasks stopped
        # mid-way) to completion, interleaved, so a prefix that stops with a task parked
        # is a new race (B1: a seed that steps a host probe to just before it creates
        # sysfs files, cut there, meets pci_sysfs_init). One deletion at a time would
        # need every later line removed first.
        cut = rng.randrange(1, n)
        return ops[:cut], cut
    if roll < 0.63:
        i = rng.randrange(n)
        at = rng.randrange(i + 1, n + 1)
        order = list(range(n))
        order.insert(at, i)
        return reorder(ops, order), at
    if roll < 0.73 and n > 1:
        i, j = sorted(rng.sample(range(n), 2))
        order = list(range(n))
        if rng.random() < 0.5:
            order[i], order[j] = order[j], order[i]
        else:  # move line j to just before line i
            order.insert(i, order.pop(j))
        return reorder(ops, order), i
    return _reargument(ops, rng)


def _encode(ops: list[Op], machine: str | None, max_size: int) -> bytes:
    """The text of ``ops`` (and ``machine``), operations dropped from the end until it
    fits in ``max_size``."""
    ops = ops[:textinput.MAX_OPS]
    data = textinput.write(ops, machine)
    while len(data) > max_size and ops:
        # Lines are ~40-70 bytes: drop enough at once, then refine.
        over = len(data) - max_size
        ops = ops[:max(0, len(ops) - max(1, over // 80))]
        data = textinput.write(ops, machine)
    if len(data) > max_size:  # only the machine header left, and no room for it
        data = textinput.write((), None)[:max_size]
    return data


# Share of structural mutations that insert an operation drawn from the *state* the
# lines before it reach (iomemfuzz explore's domain: consumers only with a producer's
# handle, addresses from the prefix and the state's anchors: a device BAR, the legacy
# window, a free MMIO page, low RAM). It runs that prefix, about 0.3-4 ms; the other
# mutations draw from the byte decoder's tables without running anything.
STATE_SHARE = float(os.environ.get("IOMEMFUZZ_STATE_SHARE", "0"))


# Every anchor, two recent addresses, a page and a part of one (one operation per draw,
# so the domain can be wider than explore's).
_DOMAIN_ARGS = {"values": 4, "recent": 2, "sizes": (0x1000, 0x80)}


@cache
def _profile() -> object:
    from iomemfuzz.model.profile import resolve

    return resolve(os.environ.get("IOMEMFUZZ_PROFILE"))


def _state_insert(ops: list[Op], machine: str | None, rng: random.Random
                  ) -> tuple[list[Op], int]:
    """Insert an operation drawn from the state the lines before it reach."""
    from iomemfuzz.fuzz import explore
    from iomemfuzz.fuzz.program import Program
    from iomemfuzz.model.machine import MACHINES

    if machine is not None and machine not in MACHINES:
        return ops, len(ops)  # a machine file: loading it per mutation costs too much
    at = len(ops) if rng.random() < 0.6 else rng.randrange(len(ops) + 1)
    prefix = tuple(ops[:at])
    headers = (("machine", machine),) if machine else ()
    ex = explore.prefix_execution(prefix, _profile(), Program((), headers))
    new = explore.draw(ex, prefix, explore.Domain(**_DOMAIN_ARGS), rng)
    if new is None:
        return ops, len(ops)
    return insert(ops, at, new), at


def mutate(data: bytes, max_size: int, seed: int,
           byte_mutator: ByteMutator | None = None) -> bytes:
    """libFuzzer custom mutator: ``data`` -> a structurally mutated input <= max_size."""
    rng = random.Random(seed)
    if byte_mutator is not None and rng.random() < BYTE_SHARE:
        return byte_mutator(data, max_size)
    parsed = textinput.read(data)
    ops = list(parsed.ops)
    for _ in range(1 + rng.randrange(MAX_STACK)):
        if rng.random() < STATE_SHARE:
            ops, _at = _state_insert(ops, parsed.machine, rng)
        else:
            ops, _at = mutate_ops(ops, rng)
    return _encode(ops, parsed.machine, max_size)


def crossover(data1: bytes, data2: bytes, max_out_size: int, seed: int) -> bytes:
    """libFuzzer custom crossover: the head of one Program, the tail of the other."""
    rng = random.Random(seed)
    a = textinput.read(data1)
    b = textinput.read(data2)
    ops = splice(list(a.ops), list(b.ops), rng.randrange(len(a.ops) + 1),
                 rng.randrange(len(b.ops) + 1))
    return _encode(ops, a.machine, max_out_size)
