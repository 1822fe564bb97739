"""Minimize a Program while it keeps producing the same finding, coarse to fine.

The predicate is "run on the same profile, the target signature is still the first
violation" (or, when the original's first violation is another one, "still among the
violations"). It is cached on the operations, so no candidate runs twice. Passes, repeated
until none makes progress or the run budget is spent:

1. drop the tail after the step that broke the property (or halve the tail when only the
   end-of-program checks see it);
2. drop chunks of operations, then single operations, from the end towards the start;
3. drop schedule lines (``SCHEDULE`` operations) all together, then one by one;
4. reset the arguments of each line to their simplest values, all at once, then one by one;
5. shrink numbers towards simplest: every occurrence of a value in the Program together
   first (a start and the matching release stay equal), then each field alone, by
   rounding down (to a power of two, to its top hex digit, to a page), halving, and
   clearing flag bits.

Handles are renumbered by :meth:`Program.delete_many`, which also turns references to a
dropped line into nil. Everything is deterministic: the order of passes and candidates is
fixed, and the executor is a pure function of (profile, Program). Other signatures met
on the way are recorded with the smallest Program that produced each, never followed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from iomemfuzz.fuzz.executor import Trace, run
from iomemfuzz.fuzz.ops import Kind, Op
from iomemfuzz.fuzz.program import Line, Program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.model.profile import KernelProfile, resolve

PAGE = 0x1000
DEFAULT_MAX_RUNS = 3000
_NUMERIC = (Kind.ADDR, Kind.SIZE, Kind.INT)


class NothingToMinimize(ValueError):
    """The Program produces no finding on the profile (or not the requested one)."""


@dataclass
class Minimized:
    """The result: the smallest Program found, and what the search met on the way."""

    program: Program  # bare operations, headers of the original (machine) kept
    signature: str
    profile: str
    trace: Trace
    runs: int
    original_length: int
    others: dict[str, Program] = field(default_factory=dict)

    @property
    def message(self) -> str:
        for v in self.trace.violations:
            if v.signature == self.signature:
                return v.message
        return ""

    @property
    def catalog(self) -> str:
        for v in self.trace.violations:
            if v.signature == self.signature and v.catalog:
                return v.catalog
        return ""

    @property
    def cls(self) -> str:
        """Whose fault the finding is (fuzz/finding.py CLASSES)."""
        for v in self.trace.violations:
            if v.signature == self.signature:
                return v.cls
        return ""

    def finding_program(self, replay: str | None = None, note: str | None = None) -> Program:
        """The corpus form: profile, catalog, one ``expect: finding`` per signature the
        Program produces (the target first), the replay command, a note, and each line's
        outcome from the run."""
        sigs = [self.signature] + [s for s in self.trace.signatures if s != self.signature]
        headers: list[tuple[str, str]] = [("profile", self.profile)]
        machine = self.program.header("machine")
        if machine:
            headers.append(("machine", machine))
        if self.catalog:
            headers.append(("catalog", self.catalog))
        headers += [("expect", f"finding {s}") for s in sigs]
        if self.cls:
            headers.append(("class", self.cls))
        if replay:
            headers.append(("replay", replay))
        notes = []
        message = _one_line(self.message)
        if message:
            notes.append(message)
        if note:
            notes.append(_one_line(note))
        lines = tuple(
            Line(line.op, step.outcome.label if step.outcome is not None else None)
            for line, step in zip(self.program.lines, self.trace.steps, strict=False))
        return Program(lines, tuple(headers), tuple(notes))

    def text(self, replay: str | None = None, note: str | None = None) -> str:
        return format_program(self.finding_program(replay, note))


def _one_line(text: str) -> str:
    """A note line: the first line of ``text``, never readable as a header field."""
    from iomemfuzz.fuzz.program_parse import ProgramSyntaxError, parse_program

    stripped = text.strip()
    first = stripped.splitlines()[0].rstrip() if stripped else ""
    try:
        header_like = bool(parse_program(f"# {first}\n").headers)
    except ProgramSyntaxError:
        header_like = True
    return f"note {first}" if header_like else first


class _Search:
    """The cached predicate and the run budget."""

    def __init__(self, base: Program, profile: KernelProfile, target: str, strict: bool,
                 max_runs: int) -> None:
        self.base = base  # headers only matter (machine)
        self.profile = profile
        self.target = target
        self.strict = strict
        self.max_runs = max_runs
        self.runs = 0
        self.cache: dict[tuple[Op, ...], bool] = {}
        self.others: dict[str, Program] = {}

    @property
    def exhausted(self) -> bool:
        return self.runs >= self.max_runs

    def trace(self, program: Program) -> Trace:
        self.runs += 1
        return run(program, self.profile)

    def keeps(self, program: Program) -> bool:
        key = program.ops
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        if self.exhausted:
            return False
        sigs = self.trace(program).signatures
        ok = bool(sigs) and (sigs[0] == self.target if self.strict else self.target in sigs)
        if not ok and sigs:
            other = sigs[0] if sigs[0] != self.target else next(
                (s for s in sigs if s != self.target), None)
            if other is not None:
                known = self.others.get(other)
                if known is None or len(program.lines) < len(known.lines):
                    self.others[other] = program
        self.cache[key] = ok
        return ok


def _bare(program: Program) -> Program:
    machine = program.header("machine")
    headers = (("machine", machine),) if machine else ()
    return Program(tuple(Line(ln.op) for ln in program.lines), headers)


def _replace_arg(program: Program, index: int, name: str, value: object) -> Program:
    lines = list(program.lines)
    line = lines[index]
    lines[index] = dataclasses.replace(line, op=dataclasses.replace(line.op, **{name: value}))
    return dataclasses.replace(program, lines=tuple(lines))


def _first_index(trace: Trace, target: str) -> int:
    for step in trace.steps:
        if any(v.signature == target for v in step.violations):
            return step.index
    return len(trace.steps) - 1


def _pass_tail(s: _Search, cur: Program) -> Program:
    n = len(cur.lines)
    if n == 0:
        return cur
    at = _first_index(s.trace(cur), s.target)
    if at + 1 < n:
        cand = dataclasses.replace(cur, lines=cur.lines[:at + 1])
        if s.keeps(cand):
            return cand
    # Seen only at the end (or the prefix lost it): try dropping halves of the tail.
    keep = n // 2
    while keep < n and not s.exhausted:
        cand = dataclasses.replace(cur, lines=cur.lines[:keep])
        if s.keeps(cand):
            return cand
        keep = (keep + n + 1) // 2
    return cur


def _pass_chunks(s: _Search, cur: Program) -> Program:
    size = len(cur.lines) // 2
    while size >= 2 and not s.exhausted:
        end = len(cur.lines)
        while end - size >= 0 and not s.exhausted:
            cand = cur.delete_many(frozenset(range(end - size, end)))
            if s.keeps(cand):
                cur = cand
            end -= size
        size //= 2
    return cur


def _pass_singles(s: _Search, cur: Program) -> Program:
    i = len(cur.lines) - 1
    while i >= 0 and not s.exhausted:
        cand = cur.delete(i)
        if s.keeps(cand):
            cur = cand
        i = min(i - 1, len(cur.lines) - 1)
    return cur


def _pass_schedule(s: _Search, cur: Program) -> Program:
    sched = [i for i, ln in enumerate(cur.lines) if type(ln.op).SCHEDULE]
    if not sched:
        return cur
    cand = cur.delete_many(frozenset(sched))
    if s.keeps(cand):
        return cand
    for i in reversed(sched):
        if s.exhausted:
            break
        cand = cur.delete(i)
        if s.keeps(cand):
            cur = cand
    return cur


def _pass_reset(s: _Search, cur: Program) -> Program:
    for i in range(len(cur.lines)):
        o = cur.lines[i].op
        changed = {name: a.simplest for name, a in type(o).args()
                   if getattr(o, name) != a.simplest}
        if not changed or s.exhausted:
            continue
        if len(changed) > 1:
            cand = _replace_op(cur, i, changed)
            if cand is not None and s.keeps(cand):
                cur = cand
                continue
        for name, value in changed.items():
            cand = _replace_op(cur, i, {name: value})
            if cand is not None and s.keeps(cand):
                cur = cand
    return cur


def _replace_op(program: Program, index: int, changes: dict[str, object]) -> Program | None:
    try:
        new = dataclasses.replace(program.lines[index].op, **changes)
    except (TypeError, ValueError):
        return None
    lines = list(program.lines)
    lines[index] = dataclasses.replace(lines[index], op=new)
    return dataclasses.replace(program, lines=tuple(lines))


def _smaller(value: int, simplest: int, kind: Kind) -> Iterator[int]:
    """Simpler values than ``value``, most ambitious first: the simplest value, zero, then
    (flags) each set bit cleared, or (numbers) rounded down to a power of two, to its top
    hex digit, to a page, and halved."""
    if value == simplest:
        return
    if kind is Kind.FLAGS:
        bits = [value & ~(1 << b) for b in range(value.bit_length() - 1, -1, -1)
                if value >> b & 1]
        candidates = [simplest, 0, *bits]
    else:
        half = value >> 1
        top = 1 << (value.bit_length() - 1) if value else 0
        # Rounder values first (a power of two, the top hex digit), then halving.
        nibble = (value.bit_length() - 1) // 4 * 4 if value else 0
        candidates = [simplest, 0, top, value >> nibble << nibble, value & ~(PAGE - 1),
                      half, half & ~(PAGE - 1)]
    seen = {value}
    for v in candidates:
        if v in seen:
            continue
        seen.add(v)
        if v == simplest or v < value:
            yield v


def _numeric_fields(program: Program) -> list[tuple[int, str, Kind, int, int]]:
    out = []
    for i, line in enumerate(program.lines):
        for name, a in type(line.op).args():
            value = getattr(line.op, name)
            if (a.kind in (*_NUMERIC, Kind.FLAGS) and isinstance(value, int)
                    and value != a.simplest):
                out.append((i, name, a.kind, value, a.simplest))
    return out


def _substitute(program: Program, old: int, new: int, kinds: tuple[Kind, ...]
                ) -> Program | None:
    """Every numeric field of ``kinds`` equal to ``old`` set to ``new``."""
    lines = list(program.lines)
    for i, line in enumerate(lines):
        changes = {name: new for name, a in type(line.op).args()
                   if a.kind in kinds and getattr(line.op, name) == old
                   and a.lo <= new <= a.hi}
        if changes:
            try:
                lines[i] = dataclasses.replace(line, op=dataclasses.replace(line.op, **changes))
            except (TypeError, ValueError):
                return None
    return dataclasses.replace(program, lines=tuple(lines))


def _pass_numbers(s: _Search, cur: Program) -> Program:
    # Together first: a claim and its release share the start.
    tried: set[int] = set()
    for _i, _name, kind, value, simplest in _numeric_fields(cur):
        if kind is Kind.FLAGS or value in tried or s.exhausted:
            continue
        tried.add(value)
        for v in _smaller(value, simplest, kind):
            cand = _substitute(cur, value, v, _NUMERIC)
            if cand is not None and cand.ops != cur.ops and s.keeps(cand):
                cur = cand
                break
    # Then field by field, shrinking each as far as it goes.
    for i, name, kind, _value, simplest in _numeric_fields(cur):
        for _ in range(64):
            if s.exhausted:
                return cur
            value = getattr(cur.lines[i].op, name)
            a = dict(type(cur.lines[i].op).args())[name]
            for v in _smaller(value, simplest, kind):
                if not a.lo <= v <= a.hi:
                    continue
                cand = _replace_op(cur, i, {name: v})
                if cand is not None and s.keeps(cand):
                    cur = cand
                    break
            else:
                break
    return cur


PASSES: tuple[Callable[[_Search, Program], Program], ...] = (
    _pass_tail, _pass_chunks, _pass_singles, _pass_schedule, _pass_reset, _pass_numbers,
)


def minimize(program: Program, profile: KernelProfile | str | None = None,
             signature: str | None = None, *, max_runs: int = DEFAULT_MAX_RUNS) -> Minimized:
    """Shrink ``program`` while it keeps producing ``signature`` (default: its first).

    Raises NothingToMinimize when the Program produces no such finding."""
    prof = resolve(profile if profile is not None else program.profile)
    cur = _bare(program)
    first = run(cur, prof)
    sigs = first.signatures
    if not sigs:
        raise NothingToMinimize(f"the Program runs clean on {prof.name}")
    target = signature or sigs[0]
    if target not in sigs:
        raise NothingToMinimize(f"the Program does not produce {target} on {prof.name} "
                                f"(it produces {', '.join(sigs)})")
    s = _Search(cur, prof, target, strict=sigs[0] == target, max_runs=max_runs)
    s.cache[cur.ops] = True
    while not s.exhausted:
        before = cur.ops
        for p in PASSES:
            cur = p(s, cur)
            if s.exhausted:
                break
        if cur.ops == before:
            break
    final = run(cur, prof)
    return Minimized(cur, target, prof.name, final, s.runs, len(program.lines), s.others)


def expected_signature(program: Program) -> str | None:
    """The signature a corpus file says it reproduces on its own profile, if any."""
    for expect in program.expectations().get(None, ()):
        word, _, sig = expect.partition(" ")
        if word == "finding" and sig.strip():
            return sig.strip()
    return None


def minimize_file(path: str | Path, out: str | Path | None = None,
                  profile: str | None = None, *, max_runs: int = DEFAULT_MAX_RUNS
                  ) -> tuple[Minimized, str]:
    """``iomemfuzz minimize``: read a Program, minimize it for the finding its header
    expects (or its first), and write the corpus form to ``out`` (atomically) if given.

    Returns the result and the text."""
    from iomemfuzz.fuzz.corpus import write_atomic
    from iomemfuzz.fuzz.finding import Finding
    from iomemfuzz.fuzz.program_file import read_program

    program = read_program(str(path))
    prof = resolve(profile if profile is not None else program.profile)
    target = expected_signature(program) if profile is None else None
    result = minimize(program, prof, target, max_runs=max_runs)
    replay = Finding(result.signature, prof.name, "", path=str(out) if out else None
                     ).replay_command()
    note = (f"minimized by iomemfuzz from {result.original_length} to "
            f"{len(result.program.lines)} operations")
    text = result.text(replay, note)
    if out is not None:
        write_atomic(out, text)
    return result, text
