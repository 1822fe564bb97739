"""Reading Program text (the grammar of ``corpus/README.md``): a strict parser that
names the path, line and column of the first thing wrong, and a lenient one for fuzz
inputs that drops what does not parse. :mod:`iomemfuzz.fuzz.program_format` writes the
text back."""

from __future__ import annotations

import dataclasses
import re

from iomemfuzz.fuzz.flags import parse_flags
from iomemfuzz.fuzz.ops import REGISTRY, Arg, Kind, load_families
from iomemfuzz.fuzz.program import EXPECT_AT, HEADER_KEYS, Line, Program, sort_headers
from iomemfuzz.model.machine import MACHINES
from iomemfuzz.model.machine_file import shipped_machines
from iomemfuzz.model.profile import ProfileError, resolve

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


def text_position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``, lines ending at LF only."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


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
        line, column = text_position(text, MAX_PROGRAM_BYTES)
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
