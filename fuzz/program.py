"""Program: a header plus a tuple of operation lines, and its canonical text form.

The text form is the one artefact every part of iomemfuzz prints and reads (corpus
files, reports, ``show``, hypothesis notes). The full grammar is specified in
``corpus/README.md``; in short::

    # profile: v6.1-deb
    # catalog: B16
    # expect: finding busy-consistency/release-without-claim
    # A driver releases half of what it claimed.

    r0 = __request_region(parent=iomem, start=0xfe000000, n=0x100)  # ok
    __release_region(parent=iomem, start=0xfe000000, n=0x80)  # ok

Laws (tested): ``parse(format(p)) == p`` for every Program and ``format(parse(t)) == t``
for canonical text ``t``. Handles are numbered densely in binding order; a reference to
a handle no earlier line binds is ``nil``, so deleting any line leaves a valid Program.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from iomemfuzz.fuzz.flags import format_flags, parse_flags
from iomemfuzz.fuzz.ops import REGISTRY, Arg, Kind, Op, load_families

# Header keys, in canonical order. ``expect@PROFILE`` keys sort after ``expect``.
HEADER_KEYS = ("profile", "machine", "catalog", "expect", "replay")
EXPECT_AT = "expect@"

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HANDLE = re.compile(r"r(0|[1-9][0-9]*)\b")
_INT = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")
_LABEL_ERR = re.compile(r"E[A-Z0-9]+")
_VALUE = re.compile(r"[^\s#]+")
_HEADER = re.compile(r"#\s?([a-z]+(?:@[A-Za-z0-9._:=,+-]+)?):\s*(.*?)\s*$")


class ProgramSyntaxError(ValueError):
    """Malformed Program text. Names the file, line and column, and what was expected."""

    def __init__(self, path: str, line: int, column: int, message: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.message = message
        super().__init__(f"{path}:{line}:{column}: {message}")


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
        return dataclasses.replace(self, headers=_sort_headers(headers))

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


def _sort_headers(headers: list[tuple[str, str]] | tuple[tuple[str, str], ...]
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


# --- formatting -------------------------------------------------------------------------


def format_value(a: Arg, value: object) -> str:
    kind = a.kind
    if kind in (Kind.ADDR, Kind.SIZE):
        return hex(value)  # type: ignore[arg-type]
    if kind is Kind.INT:
        return str(value)
    if kind is Kind.FLAGS:
        return format_flags(value)  # type: ignore[arg-type]
    if kind is Kind.CHOICE:
        return str(value)
    if kind is Kind.NAME:
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    # HANDLE / NODE
    if value is None:
        return "nil"
    if isinstance(value, int):
        return f"r{value}"
    return str(value)


def format_op(o: Op, binder: int | None = None) -> str:
    parts = []
    for name, a in type(o).args():
        value = getattr(o, name)
        if value == a.simplest and type(value) is type(a.simplest):
            continue
        parts.append(f"{name}={format_value(a, value)}")
    call = f"{type(o).NAME}({', '.join(parts)})"
    return f"r{binder} = {call}" if binder is not None else call


def format_program(program: Program) -> str:
    out: list[str] = []
    for key, value in program.headers:
        out.append(f"# {key}: {value}")
    out.extend(_comment(c) for c in program.notes)
    if out:
        out.append("")
    handle = 0
    for line in program.lines:
        out.extend(_comment(c) for c in line.comments)
        binder = None
        if type(line.op).BINDS:
            binder = handle
            handle += 1
        text = format_op(line.op, binder)
        if line.expect is not None:
            text += f"  # {line.expect}"
        out.append(text)
    out.extend(_comment(c) for c in program.trailer)
    return "\n".join(out) + "\n" if out else ""


def _comment(text: str) -> str:
    return f"# {text}" if text else "#"


# --- parsing ----------------------------------------------------------------------------


class _Cursor:
    """A position in one line, raising ProgramSyntaxError with file/line/column."""

    __slots__ = ("lineno", "path", "pos", "text")

    def __init__(self, path: str, lineno: int, text: str) -> None:
        self.path = path
        self.lineno = lineno
        self.text = text
        self.pos = 0

    def error(self, message: str, pos: int | None = None) -> ProgramSyntaxError:
        col = (self.pos if pos is None else pos) + 1
        return ProgramSyntaxError(self.path, self.lineno, col, message)

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect_char(self, ch: str, what: str) -> None:
        self.skip_ws()
        if self.peek() != ch:
            found = repr(self.peek()) if self.peek() else "end of line"
            raise self.error(f"expected {what}, found {found}")
        self.pos += 1

    def match(self, pattern: re.Pattern[str]) -> str | None:
        m = pattern.match(self.text, self.pos)
        if not m:
            return None
        self.pos = m.end()
        return m.group(0)


def parse_program(text: str, path: str = "<string>", *, lenient: bool = False) -> Program:
    """Parse Program text; raise ProgramSyntaxError naming path, line and column.

    ``lenient`` (fuzz inputs, which libFuzzer edits byte by byte): a malformed line or
    header is dropped instead, as if it had been deleted, so any text parses; a handle
    the dropped line would have bound reads as nil, as for any deleted line."""
    if lenient:
        return _parse_lenient(text, path)
    load_families()
    headers: list[tuple[str, str]] = []
    notes: list[str] = []
    lines: list[Line] = []
    pending: list[str] = []
    in_header = True
    binders: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped:
            if in_header and (headers or notes):
                in_header = False
            continue
        if stripped.startswith("#"):
            if in_header:
                m = _HEADER.match(stripped)
                if m and _is_header_key(m.group(1)):
                    if m.group(1) in ("profile", "machine", "replay") and any(
                            k == m.group(1) for k, _ in headers):
                        raise ProgramSyntaxError(path, lineno, 1,
                                                 f"header '{m.group(1)}' given twice")
                    if not m.group(2):
                        raise ProgramSyntaxError(path, lineno, len(raw) + 1,
                                                 f"header '{m.group(1)}' needs a value")
                    headers.append((m.group(1), m.group(2)))
                    continue
                notes.append(_comment_text(stripped))
            else:
                pending.append(_comment_text(stripped))
            continue
        if in_header and notes and not headers and not lines:
            # Comments directly above the first operation belong to it, not the header.
            pending, notes = notes, []
        in_header = False
        cur = _Cursor(path, lineno, raw)
        line = _parse_line(cur, binders, len(binders))
        lines.append(dataclasses.replace(line, comments=tuple(pending)))
        pending = []
    return Program(tuple(lines), _sort_headers(headers), tuple(notes), tuple(pending))


def _parse_lenient(text: str, path: str) -> Program:
    load_families()
    headers: list[tuple[str, str]] = []
    lines: list[Line] = []
    binders: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            m = _HEADER.match(stripped)
            if (not lines and m and _is_header_key(m.group(1)) and m.group(2)
                    and all(k != m.group(1) for k, _ in headers)):
                headers.append((m.group(1), m.group(2)))
            continue
        cur = _Cursor(path, lineno, raw)
        taken = dict(binders)
        try:
            line = _parse_line(cur, binders, len(binders))
        except ProgramSyntaxError:
            binders.clear()
            binders.update(taken)
            continue
        lines.append(Line(line.op))
    return Program(tuple(lines), _sort_headers(headers))


def _is_header_key(key: str) -> bool:
    return key in HEADER_KEYS or (key.startswith(EXPECT_AT) and len(key) > len(EXPECT_AT))


def _comment_text(stripped: str) -> str:
    body = stripped[1:]
    return body[1:] if body.startswith(" ") else body


def _parse_line(cur: _Cursor, binders: dict[str, int], next_handle: int) -> Line:
    cur.skip_ws()
    start = cur.pos
    binder_name = None
    m = _HANDLE.match(cur.text, cur.pos)
    if m:
        save = cur.pos
        cur.pos = m.end()
        cur.skip_ws()
        if cur.peek() == "=":
            binder_name = m.group(0)
            cur.pos += 1
            cur.skip_ws()
        else:
            cur.pos = save
    name_pos = cur.pos
    name = cur.match(_IDENT)
    if name is None:
        raise cur.error("expected an operation name")
    cls = REGISTRY.get(name)
    if cls is None:
        raise cur.error(f"unknown operation '{name}'", name_pos)
    if binder_name is not None and not cls.BINDS:
        raise cur.error(f"'{name}' does not create a handle; drop '{binder_name} ='", start)
    if binder_name is not None and binder_name in binders:
        raise cur.error(f"handle {binder_name} is bound twice", start)
    cur.expect_char("(", "'('")
    values: dict[str, object] = {}
    declared = dict(cls.args())
    cur.skip_ws()
    if cur.peek() != ")":
        while True:
            cur.skip_ws()
            arg_pos = cur.pos
            arg_name = cur.match(_IDENT)
            if arg_name is None:
                raise cur.error("expected an argument name")
            if arg_name not in declared:
                known = ", ".join(declared) or "none"
                raise cur.error(f"'{name}' has no argument '{arg_name}' (arguments: {known})",
                                arg_pos)
            if arg_name in values:
                raise cur.error(f"argument '{arg_name}' given twice", arg_pos)
            cur.expect_char("=", "'='")
            cur.skip_ws()
            values[arg_name] = _parse_value(cur, declared[arg_name], binders)
            cur.skip_ws()
            if cur.peek() == ",":
                cur.pos += 1
                continue
            break
    cur.expect_char(")", "',' or ')'")
    cur.skip_ws()
    expect = None
    if not cur.at_end():
        if cur.peek() != "#":
            raise cur.error("expected '#' and an expected outcome, or end of line")
        cur.pos += 1
        cur.skip_ws()
        expect = _parse_expectation(cur)
    if cls.BINDS:
        binders[binder_name or f"r{next_handle}"] = next_handle
    try:
        o = cls(**values)
    except (TypeError, ValueError) as exc:  # a dataclass rejecting a value is a syntax error
        raise cur.error(str(exc), name_pos) from None
    return Line(o, expect)


def _parse_expectation(cur: _Cursor) -> str:
    pos = cur.pos
    if cur.peek() == "=":
        cur.pos += 1
        cur.skip_ws()
        value = cur.match(_VALUE)
        if value is None:
            raise cur.error("expected a value after '='")
        label = f"= {value}"
    else:
        word = cur.match(re.compile(r"\S+"))
        if word in ("ok", "SIGBUS", "SIGSEGV", "blocked") or (word and _LABEL_ERR.fullmatch(word)):
            label = word
        else:
            raise cur.error("expected an outcome: ok, = VALUE, an errno name like EBUSY, "
                            "SIGBUS, SIGSEGV or blocked", pos)
    cur.skip_ws()
    if not cur.at_end():
        raise cur.error("expected end of line after the expected outcome")
    return label


def _parse_int(cur: _Cursor, a: Arg) -> int:
    pos = cur.pos
    text = cur.match(_INT)
    if text is None:
        raise cur.error("expected a number (hex 0x... or decimal)")
    if cur.peek() and (cur.peek().isalnum() or cur.peek() == "_"):
        raise cur.error("expected a number (hex 0x... or decimal)", pos)
    value = int(text, 0) if text.lower().startswith("0x") else int(text, 10)
    if not a.lo <= value <= a.hi:
        raise cur.error(f"number out of range [{a.lo:#x}, {a.hi:#x}]", pos)
    return value


def _parse_value(cur: _Cursor, a: Arg, binders: dict[str, int]) -> object:
    kind = a.kind
    pos = cur.pos
    if kind in (Kind.ADDR, Kind.SIZE, Kind.INT):
        return _parse_int(cur, a)
    if kind is Kind.FLAGS:
        text = cur.match(re.compile(r"[A-Za-z0-9_|]+"))
        if text is None:
            raise cur.error("expected flags (e.g. MEM|BUSY, 0 or 0x200)")
        try:
            return parse_flags(text)
        except ValueError as exc:
            raise cur.error(str(exc), pos) from None
    if kind is Kind.NAME:
        if cur.peek() != '"':
            raise cur.error('expected a quoted string ("...")')
        cur.pos += 1
        out = []
        while True:
            ch = cur.peek()
            if not ch:
                raise cur.error("unterminated string")
            cur.pos += 1
            if ch == '"':
                break
            if ch == "\\":
                nxt = cur.peek()
                if nxt not in ('"', "\\"):
                    raise cur.error("only \\\" and \\\\ escapes are allowed in strings")
                cur.pos += 1
                out.append(nxt)
                continue
            out.append(ch)
        return "".join(out)
    if kind is Kind.CHOICE:
        word = cur.match(_IDENT)
        if word is None or word not in a.choices:
            raise cur.error(f"expected one of: {', '.join(a.choices)}", pos)
        return word
    # HANDLE / NODE
    word = cur.match(re.compile(r"[A-Za-z_][A-Za-z0-9_]*"))
    if word is None:
        raise cur.error("expected a handle (rN or nil)" if kind is Kind.HANDLE
                        else f"expected {', '.join(a.choices)}, a handle rN, or nil")
    if word == "nil":
        return None
    if _HANDLE.fullmatch(word):
        # A handle no earlier line binds is a dangling reference: nil, never an error,
        # so that deleting lines keeps every Program valid.
        return binders.get(word)
    if kind is Kind.NODE and word in a.choices:
        return word
    raise cur.error("expected a handle (rN or nil)" if kind is Kind.HANDLE
                    else f"expected {', '.join(a.choices)}, a handle rN, or nil", pos)


def read_program(path: str) -> Program:
    """Read and parse a Program file (UTF-8)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return parse_program(text, path)
