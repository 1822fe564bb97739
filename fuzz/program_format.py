"""The canonical text of a Program (the writer; :mod:`iomemfuzz.fuzz.program_parse` reads
it back): an argument at its simplest value is left out, a binding line is ``rN = ``,
an expected outcome follows as ``# LABEL``."""

from __future__ import annotations

from iomemfuzz.fuzz.flags import format_flags
from iomemfuzz.fuzz.ops import Arg, Kind, Op
from iomemfuzz.fuzz.program import Program


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
