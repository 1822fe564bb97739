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
import os
import re
import stat
from dataclasses import dataclass

from iomemfuzz.fuzz.flags import format_flags, parse_flags
from iomemfuzz.fuzz.ops import REGISTRY, Arg, Kind, Op, load_families
from iomemfuzz.model.machine import MACHINES
from iomemfuzz.model.machine_file import shipped_machines
from iomemfuzz.model.profile import ProfileError, resolve

# Header keys, in canonical order. ``expect@PROFILE`` keys sort after ``expect``.
HEADER_KEYS = ("profile", "machine", "catalog", "expect", "class", "replay")
EXPECT_AT = "expect@"

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HANDLE = re.compile(r"r(0|[1-9][0-9]*)\b")
_INT = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")
_LABEL_ERR = re.compile(r"E[A-Z0-9]+")
_VALUE = re.compile(r"[^\s#]+")
_WORD = re.compile(r"\S+")
_FLAGS = re.compile(r"[A-Za-z0-9_|]+")
# Digits (leading zeros aside) of the largest argument value, 2**64 - 1, in decimal.
_MAX_DIGITS = 20
_MAX_MESSAGE = 300
# The key of a header line; the value is the rest of the line. No pattern here can
# backtrack more than linearly (an earlier `(.*?)\s*$` was quadratic in the line length).
_HEADER = re.compile(r"#[ \t]?([a-z]+(?:@[A-Za-z0-9._:=,+-]+)?):")


class ProgramSyntaxError(ValueError):
    """Malformed Program text. Names the file, line and column, and what was expected."""

    def __init__(self, path: str, line: int, column: int, message: str) -> None:
        if len(message) > _MAX_MESSAGE:
            # A message quotes what it found, which can be a line's worth of text.
            message = message[:_MAX_MESSAGE] + "..."
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


# --- reading ----------------------------------------------------------------------------

# Limits of what the reader accepts. Generous: the largest corpus file is about 3 KB and its
# longest line about 160 characters; they bound the work any input can cause.
MAX_PROGRAM_BYTES = 1 << 20
MAX_LINE_CHARS = 16384
# Whitespace around a line and between tokens: ASCII space and tab, and the CR of a CRLF
# line end. Lines end at LF only; every other control or separator character (form feed,
# U+0085, U+2028, ...) is part of its line, so line numbers are an editor's.
_LINE_WS = " \t\r"
_TOKEN_WS = " \t"
_BLANKS = re.compile(f"[{_TOKEN_WS}]*")


class ProgramFileError(OSError):
    """A path that cannot be read as a Program file: missing, unreadable, not a regular
    file. The message is one line that starts with the path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``, lines ending at LF only."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def decode_program(data: bytes, path: str = "<bytes>") -> str:
    """Program file bytes -> text: UTF-8 (a leading byte-order mark is dropped), at most
    MAX_PROGRAM_BYTES. Raises ProgramSyntaxError naming the line, column and byte offset."""
    skip = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    if len(data) > MAX_PROGRAM_BYTES:
        head = data[skip:MAX_PROGRAM_BYTES].decode("utf-8", "replace")
        line, column = _position(head, len(head))
        raise ProgramSyntaxError(path, line, column,
                                 f"file larger than {MAX_PROGRAM_BYTES} bytes")
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        head = data[skip:skip + exc.start].decode("utf-8")
        line, column = _position(head, len(head))
        offset = skip + exc.start
        raise ProgramSyntaxError(path, line, column,
                                 f"not UTF-8: byte {data[offset]:#04x} at byte offset "
                                 f"{offset}") from None


def read_program_bytes(path: str) -> bytes:
    """The bytes of a Program file. Refuses what is not a regular file without reading
    it (a FIFO would block, a device never end) and stops after MAX_PROGRAM_BYTES + 1
    bytes. Raises ProgramFileError."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ProgramFileError(path, exc.strerror or str(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ProgramFileError(path, f"not a regular file ({_file_kind(mode)})")
        chunks = []
        left = MAX_PROGRAM_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except ProgramFileError:
        raise
    except OSError as exc:
        raise ProgramFileError(path, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"


def read_program(path: str | os.PathLike[str]) -> Program:
    """Read and parse a Program file. Raises ProgramFileError (the file) or
    ProgramSyntaxError (its content), nothing else."""
    path = os.fspath(path)
    return parse_program_bytes(read_program_bytes(path), path)


def parse_program_bytes(data: bytes, path: str = "<bytes>") -> Program:
    """Parse the bytes of a Program file; raises ProgramSyntaxError only."""
    return parse_program(decode_program(data, path), path)


def program_lines(text: str) -> list[str]:
    """The lines of Program text as the parser numbers them (from 1): split at LF only."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def op_line_numbers(text: str) -> list[int]:
    """1-based line number of each operation line of ``text``, in order."""
    out = []
    for lineno, raw in enumerate(program_lines(text), start=1):
        stripped = raw.strip(_LINE_WS)
        if stripped and not stripped.startswith("#"):
            out.append(lineno)
    return out


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
        self.pos = _BLANKS.match(self.text, self.pos).end()  # type: ignore[union-attr]

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
    """Parse Program text; raise ProgramSyntaxError naming path, line and column (and
    nothing else, whatever the text).

    ``lenient`` (fuzz inputs, which libFuzzer edits byte by byte): a malformed line or
    header is dropped instead, as if it had been deleted, so any text parses; a handle
    the dropped line would have bound reads as nil, as for any deleted line."""
    if lenient:
        return _parse_lenient(text, path)
    load_families()
    if len(text) > MAX_PROGRAM_BYTES:
        line, column = _position(text, MAX_PROGRAM_BYTES)
        raise ProgramSyntaxError(path, line, column,
                                 f"text longer than {MAX_PROGRAM_BYTES} characters")
    headers: list[tuple[str, str]] = []
    notes: list[str] = []
    lines: list[Line] = []
    pending: list[str] = []
    in_header = True
    binders: dict[str, int] = {}
    for lineno, raw in enumerate(program_lines(text), start=1):
        if len(raw) > MAX_LINE_CHARS:
            raise ProgramSyntaxError(path, lineno, MAX_LINE_CHARS + 1,
                                     f"line longer than {MAX_LINE_CHARS} characters")
        stripped = raw.strip(_LINE_WS)
        if not stripped:
            if in_header and (headers or notes):
                in_header = False
            continue
        if stripped.startswith("#"):
            if in_header:
                header = _header(path, lineno, raw, stripped, headers)
                if header is not None:
                    headers.append(header)
                    continue
                notes.append(_comment_text(stripped))
            else:
                pending.append(_comment_text(stripped))
            continue
        if in_header and notes and not headers and not lines:
            # Comments directly above the first operation belong to it, not the header.
            pending, notes = notes, []
        in_header = False
        cur = _Cursor(path, lineno, raw.rstrip(_LINE_WS))
        line = _parse_line(cur, binders, len(binders))
        lines.append(dataclasses.replace(line, comments=tuple(pending)))
        pending = []
    return Program(tuple(lines), sort_headers(headers), tuple(notes), tuple(pending))


def _header(path: str, lineno: int, raw: str, stripped: str,
            headers: list[tuple[str, str]]) -> tuple[str, str] | None:
    """``(key, value)`` when a header-block comment line is a header field, else None."""
    m = _HEADER.match(stripped)
    if not m or not _is_header_key(m.group(1)):
        return None
    key = m.group(1)
    # Columns count from the raw line: the stripped one may have lost leading blanks.
    indent = len(raw) - len(raw.lstrip(_LINE_WS))
    value_text = stripped[m.end():]
    value = value_text.strip(_TOKEN_WS)
    value_col = indent + m.end() + len(value_text) - len(value_text.lstrip(_TOKEN_WS)) + 1
    if key in ("profile", "machine", "replay") and any(k == key for k, _ in headers):
        raise ProgramSyntaxError(path, lineno, indent + 1, f"header '{key}' given twice")
    if not value:
        raise ProgramSyntaxError(path, lineno, len(raw.rstrip(_LINE_WS)) + 1,
                                 f"header '{key}' needs a value")
    problem = None
    if key == "profile":
        problem = _profile_problem(value)
    elif key.startswith(EXPECT_AT):
        problem = _profile_problem(key[len(EXPECT_AT):])
        if problem is not None:
            value_col = indent + m.start(1) + len(EXPECT_AT) + 1
    elif key == "machine":
        problem = _machine_problem(value)
    if problem is not None:
        raise ProgramSyntaxError(path, lineno, value_col, problem)
    return key, value


def _machine_problem(spec: str) -> str | None:
    """Why a ``# machine:`` value names no machine: a built-in name, a machine file
    shipped in model/machines/, or ``file:PATH`` (read when the Program runs)."""
    if spec in MACHINES or spec.startswith("file:"):
        return None
    shipped = shipped_machines()
    if spec in shipped:
        return None
    return f"unknown machine {spec!r} (machines: {', '.join([*MACHINES, *shipped])})"


def _profile_problem(spec: str) -> str | None:
    try:
        resolve(spec)
    except ProfileError as exc:
        return str(exc)
    return None


def _parse_lenient(text: str, path: str) -> Program:
    load_families()
    headers: list[tuple[str, str]] = []
    lines: list[Line] = []
    binders: dict[str, int] = {}
    for lineno, raw in enumerate(program_lines(text), start=1):
        stripped = raw.strip(_LINE_WS)
        if not stripped or len(raw) > MAX_LINE_CHARS:
            continue
        if stripped.startswith("#"):
            if not lines:
                try:
                    header = _header(path, lineno, raw, stripped, headers)
                except ProgramSyntaxError:
                    header = None  # a bad value or a second profile: dropped
                if header is not None:
                    headers.append(header)
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
    return Program(tuple(lines), sort_headers(headers))


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
        word = cur.match(_WORD)
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
    hexadecimal = text[:2] in ("0x", "0X")
    digits = (text[2:] if hexadecimal else text).lstrip("0")
    # Too many digits for any argument: out of range, and never converted (Python refuses
    # decimal strings over 4,300 digits, and a long one costs quadratic time).
    if len(digits) > _MAX_DIGITS:
        raise cur.error(f"number out of range [{a.lo:#x}, {a.hi:#x}]", pos)
    value = int(digits or "0", 16 if hexadecimal else 10)
    if not a.lo <= value <= a.hi:
        raise cur.error(f"number out of range [{a.lo:#x}, {a.hi:#x}]", pos)
    return value


def _parse_value(cur: _Cursor, a: Arg, binders: dict[str, int]) -> object:
    kind = a.kind
    pos = cur.pos
    if kind in (Kind.ADDR, Kind.SIZE, Kind.INT):
        return _parse_int(cur, a)
    if kind is Kind.FLAGS:
        text = cur.match(_FLAGS)
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
    word = cur.match(_IDENT)
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
