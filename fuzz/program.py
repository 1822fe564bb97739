"""Program: a header plus a tuple of operation lines.

The text form of a Program is the one artefact every part of iomemfuzz prints and reads
(corpus files, reports, ``show``, hypothesis notes). The full grammar is specified in
``corpus/README.md``; in short::

    # profile: v6.1-deb
    # catalog: B16
    # expect: finding busy-consistency/release-without-claim
    # A driver releases half of what it claimed.

    r0 = __request_region(parent=iomem, start=0xfe000000, n=0x100)  # ok
    __release_region(parent=iomem, start=0xfe000000, n=0x80)  # ok

This module holds the data types and the operations on them; the text form is read by
:mod:`iomemfuzz.fuzz.program_parse` (and, from a file or bytes, by
:mod:`iomemfuzz.fuzz.program_file`) and written by :mod:`iomemfuzz.fuzz.program_format`.

Laws (tested): ``parse(format(p)) == p`` for every Program and ``format(parse(t)) == t``
for canonical text ``t``. Handles are numbered densely in binding order; a reference to
a handle no earlier line binds is ``nil``, so deleting any line leaves a valid Program.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from iomemfuzz.fuzz.ops import Kind, Op

# Header keys, in canonical order. ``expect@PROFILE`` keys sort after ``expect``.
HEADER_KEYS = ("profile", "machine", "catalog", "expect", "class", "replay")
EXPECT_AT = "expect@"


@dataclass(frozen=True, slots=True)
class Line:
    """One operation with the comment lines just above it and its expected outcome."""

    op: Op
    expect: str | None = None  # an Outcome label: "ok", "EBUSY", "= MIXED", "SIGBUS", ...
    comments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Program:
    lines: tuple[Line, ...] = ()
    # (key, value) pairs of the header in canonical order.
    headers: tuple[tuple[str, str], ...] = ()
    # Free comment lines of the header (what the file is about).
    notes: tuple[str, ...] = ()
    # Comment lines after the last operation.
    trailer: tuple[str, ...] = ()

    @property
    def ops(self) -> tuple[Op, ...]:
        return tuple(line.op for line in self.lines)

    def header(self, key: str) -> str | None:
        for k, v in self.headers:
            if k == key:
                return v
        return None

    def header_all(self, key: str) -> tuple[str, ...]:
        return tuple(v for k, v in self.headers if k == key)

    @property
    def profile(self) -> str | None:
        return self.header("profile")

    @property
    def catalog(self) -> tuple[str, ...]:
        value = self.header("catalog")
        return tuple(x.strip() for x in value.split(",")) if value else ()

    def expectations(self) -> dict[str | None, tuple[str, ...]]:
        """Program-level expectations: {None: main profile, "v5.7": ..., ...}."""
        out: dict[str | None, list[str]] = {}
        for key, value in self.headers:
            if key == "expect":
                out.setdefault(None, []).append(value)
            elif key.startswith(EXPECT_AT):
                out.setdefault(key[len(EXPECT_AT):], []).append(value)
        return {k: tuple(v) for k, v in out.items()}

    def with_headers(self, **changes: str | None) -> Program:
        """Set or drop (None) single-valued header keys, keeping canonical order."""
        headers = [(k, v) for k, v in self.headers if k not in changes]
        headers += [(k, v) for k, v in changes.items() if v is not None]
        return dataclasses.replace(self, headers=sort_headers(headers))

    def with_ops(self, ops: tuple[Op, ...] | list[Op]) -> Program:
        """Same header, these operations (expectations and comments dropped)."""
        return dataclasses.replace(self, lines=tuple(Line(o) for o in ops))

    def without_expectations(self) -> Program:
        return dataclasses.replace(
            self, lines=tuple(dataclasses.replace(ln, expect=None) for ln in self.lines))

    def delete(self, index: int) -> Program:
        """The Program without line ``index``; references to its handle become nil."""
        return self.delete_many((index,))

    def delete_many(self, indices: tuple[int, ...] | set[int] | frozenset[int]) -> Program:
        drop = set(indices)
        remap: dict[int, int | None] = {}
        handle = 0
        new_handle = 0
        for i, line in enumerate(self.lines):
            if type(line.op).BINDS:
                if i in drop:
                    remap[handle] = None
                else:
                    remap[handle] = new_handle
                    new_handle += 1
                handle += 1
        kept = []
        for i, line in enumerate(self.lines):
            if i in drop:
                continue
            new_op = remap_handles(line.op, remap)
            kept.append(line if new_op is line.op else dataclasses.replace(line, op=new_op))
        return dataclasses.replace(self, lines=tuple(kept))


def sort_headers(headers: list[tuple[str, str]] | tuple[tuple[str, str], ...]
                  ) -> tuple[tuple[str, str], ...]:
    def rank(item: tuple[str, str]) -> tuple[int, str]:
        key = item[0]
        if key.startswith(EXPECT_AT):
            return (HEADER_KEYS.index("expect"), key)
        return (HEADER_KEYS.index(key), "")

    # sorted() is stable, so repeated keys (several expect lines) keep their order.
    return tuple(sorted(headers, key=rank))


def remap_handles(o: Op, remap: dict[int, int | None]) -> Op:
    """Rewrite handle references of ``o`` through ``remap`` (unknown -> nil)."""
    changes = {}
    for name, a in type(o).args():
        if a.kind in (Kind.HANDLE, Kind.NODE):
            value = getattr(o, name)
            if isinstance(value, int):
                new = remap.get(value)
                if new != value:
                    changes[name] = new
    return dataclasses.replace(o, **changes) if changes else o


def handle_count(program: Program) -> int:
    return sum(1 for line in program.lines if type(line.op).BINDS)
