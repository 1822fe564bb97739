"""Program text as the fuzz targets' input: what libFuzzer keeps, mutates and reports.

A fuzz input is the UTF-8 text of a Program (syzkaller's way): a corpus file is a seed as
it stands, a crash or queue file is readable and replays with ``iomemfuzz show``, and a
new operation, device name, BAR list or machine needs no encoding. Only the header that
changes what runs is kept (``# machine: NAME``); the job's profile is the target's.

:func:`read` is total: text is parsed leniently (:func:`parse_program` with
``lenient=True``), so a line libFuzzer's byte mutations broke is dropped as if deleted,
a handle it would have bound reads as nil, and any bytes give a valid Program. Bytes that
are no UTF-8 are replaced, never rejected; a machine header that names no shipped
machine is dropped (the default machine runs).

:func:`write` gives the canonical text of operations (and the machine header); the
structure mutator (:mod:`iomemfuzz.fuzz.mutate`) writes its outputs with it and leaves
what it parsed in :func:`remember`, so the target does not parse again what the mutator
just wrote (most inputs a job executes).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from functools import cache

from iomemfuzz.fuzz.ops import Op
from iomemfuzz.fuzz.program import Line, Program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import parse_program

MAX_OPS = 64
CACHE_SIZE = 4096


class Input:
    """A fuzz input read once: its operations and the machine it asks for (or None)."""

    __slots__ = ("machine", "ops")

    def __init__(self, ops: tuple[Op, ...], machine: str | None) -> None:
        self.ops = ops
        self.machine = machine

    def program(self) -> Program:
        headers = (("machine", self.machine),) if self.machine else ()
        return Program(tuple(Line(o) for o in self.ops), headers)


_CACHE: OrderedDict[bytes, Input] = OrderedDict()


@cache
def machine_names() -> frozenset[str]:
    """The machines a fuzz input may name: the built-in ones and the shipped captures."""
    from iomemfuzz.model.machine import MACHINES
    from iomemfuzz.model.machine_file import shipped_machines

    return frozenset((*MACHINES, *shipped_machines()))


def remember(data: bytes, parsed: Input) -> None:
    _CACHE[data] = parsed
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)


def read(data: bytes) -> Input:
    """The operations (at most ``MAX_OPS``) and machine of any bytes; never raises."""
    hit = _CACHE.get(data)
    if hit is not None:
        _CACHE.move_to_end(data)
        return hit
    program = parse_program(data.decode("utf-8", "replace"), "<input>", lenient=True)
    machine = program.header("machine")
    # A header naming no shipped machine (libFuzzer edits text; file:PATH would read any
    # file) reads as absent: the input runs on the default machine, and says so.
    parsed = Input(program.ops[:MAX_OPS], machine if machine in machine_names() else None)
    remember(data, parsed)
    return parsed


def read_program(data: bytes) -> Program:
    """The Program any bytes stand for (the machine header kept)."""
    return read(data).program()


def write(ops: Iterable[Op], machine: str | None = None) -> bytes:
    """Canonical text of ``ops`` with the machine header (when not the default)."""
    ops = tuple(ops)[:MAX_OPS]
    parsed = Input(ops, machine)
    data = format_program(parsed.program()).encode()
    remember(data, parsed)
    return data


def write_program(program: Program) -> bytes:
    """A corpus Program as a fuzz input: its operations and machine, nothing else."""
    return write(program.ops, program.header("machine"))


def dictionary() -> str:
    """A libFuzzer dictionary (``-dict=FILE``) of the Program text's vocabulary: each
    operation's simplest line (with and without a binder), each argument name, choice
    and suggested name, so byte mutations insert whole lines and words."""
    from iomemfuzz.fuzz.ops import Kind, ordered_ops
    from iomemfuzz.fuzz.program_format import format_op

    tokens: list[str] = []
    for cls in ordered_ops():
        tokens.append(format_op(cls()) + "\n")
        if cls.BINDS:
            tokens.append(format_op(cls(), 0) + "\n")
        for name, a in cls.args():
            tokens.append(f"{name}=")
            if a.kind is Kind.CHOICE:
                tokens += list(a.choices)
            elif a.kind is Kind.NAME:
                tokens += [f'"{c}"' for c in a.choices if '"' not in c and "\\" not in c]
    tokens += ["r0", "r1", "r2", "nil", "iomem", "ioport", "0x1000", "0xfff", "# machine: "]
    lines = []
    for token in dict.fromkeys(tokens):
        # libFuzzer's escapes: \\, \" and \xNN.
        escaped = token.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\x0A")
        lines.append(f'"{escaped}"')
    return "\n".join(lines) + "\n"
