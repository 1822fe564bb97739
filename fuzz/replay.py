"""Replay a corpus file and check every expectation it states.

Expectations come in two layers:

* per line, ``# EBUSY`` etc.: the operation's outcome on the file's own profile;
* per Program, ``# expect: clean`` / ``# expect: finding SIG`` for the file's profile and
  ``# expect@PROFILE: ...`` for others, which is how one file says "reproduces on v6.1,
  clean on next-2026".

A file with no program-level expectation is expected to be clean on its profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iomemfuzz.fuzz.executor import Trace, run
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_file import ProgramFileError, decode_program, read_program_bytes
from iomemfuzz.fuzz.program_parse import ProgramSyntaxError, op_line_numbers, parse_program
from iomemfuzz.model.profile import DEFAULT, resolve

CLEAN = "clean"
FINDING = "finding"
ACCEPTED = "accepted"


@dataclass
class Mismatch:
    path: str
    line: int  # 1-based line in the file, 0 for a program-level expectation
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass
class Result:
    path: str
    profiles: list[str] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    traces: dict[str, Trace] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _check_program_level(path: str, profile: str, expects: tuple[str, ...], trace: Trace,
                         out: list[Mismatch]) -> None:
    """``clean``: no finding; ``finding SIG``: SIG found (and no finding not listed);
    ``accepted SIG``: the profile accepts SIG by design, and it happened (no finding
    unless one is listed too)."""
    sigs = trace.signatures
    findings: list[str] = []
    accepted: list[str] = []
    for expect in expects or (CLEAN,):
        word, _, sig = expect.partition(" ")
        sig = sig.strip()
        if word == FINDING and sig:
            findings.append(sig)
        elif word == ACCEPTED and sig:
            accepted.append(sig)
        elif word != CLEAN or sig:
            out.append(Mismatch(path, 0, f"bad expectation {expect!r} (use 'clean', "
                                         "'finding SIGNATURE' or 'accepted SIGNATURE')"))
    for sig in findings:
        if sig not in sigs:
            found = ", ".join(sigs) or "nothing"
            out.append(Mismatch(path, 0, f"[{profile}] expected finding {sig}, found {found}"))
    extra = [s for s in sigs if s not in findings]
    if extra:
        if findings:
            out.append(Mismatch(path, 0, f"[{profile}] unexpected finding {extra[0]}"))
        else:
            first = trace.first
            out.append(Mismatch(path, 0, f"[{profile}] expected clean, found {extra[0]}: "
                                         f"{first.message if first else ''}"))
    taken = {v.signature for v in trace.accepted}
    for sig in accepted:
        if sig not in taken:
            out.append(Mismatch(path, 0, f"[{profile}] expected {sig} accepted by design, "
                                         f"accepted {', '.join(sorted(taken)) or 'nothing'}"))


def check_program(program: Program, path: str, text: str,
                  profile_override: str | None = None) -> Result:
    """Run ``program`` on the profiles its header names (or only ``profile_override``)."""
    result = Result(path)
    main = program.profile or DEFAULT.name
    expectations = program.expectations()
    if profile_override is not None:
        targets = [profile_override]
    else:
        targets = [main] + [p for p in expectations if p is not None and p != main]
    lines = op_line_numbers(text)
    for name in targets:
        profile = resolve(name)
        trace = run(program, profile)
        result.profiles.append(name)
        result.traces[name] = trace
        if name == main:
            for i, line in enumerate(program.lines):
                if line.expect is None:
                    continue
                got = trace.steps[i].outcome
                if got is None or got.label != line.expect:
                    lineno = lines[i] if i < len(lines) else 0
                    result.mismatches.append(Mismatch(
                        path, lineno, f"[{name}] expected {line.expect}, got "
                                      f"{got.label if got else 'nothing'}"))
            expects = expectations.get(None, ()) or expectations.get(name, ())
        else:
            # A profile the file says nothing about is expected to be clean.
            expects = expectations.get(name, ())
        _check_program_level(path, name, expects, trace, result.mismatches)
    return result


@dataclass
class Replayed:
    """One file of ``iomemfuzz replay``: its result, or why it could not be replayed."""

    path: str
    result: Result | None = None
    error: ProgramSyntaxError | ProgramFileError | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.ok

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "ok": self.ok}
        if self.error is not None:
            syntax = isinstance(self.error, ProgramSyntaxError)
            out["error"] = {
                "message": self.error.message if syntax else str(self.error),
                "line": self.error.line if syntax else None,
                "column": self.error.column if syntax else None}
        if self.result is not None:
            out["profiles"] = self.result.profiles
            out["mismatches"] = [{"line": m.line or None, "message": m.message}
                                 for m in self.result.mismatches]
        return out


def replay_bytes(data: bytes, path: str, profile_override: str | None = None) -> Replayed:
    """Parse and check the bytes of one Program file; a malformed one is a Replayed with
    its syntax error (file:line:column), never an exception."""
    try:
        text = decode_program(data, path)
        program = parse_program(text, path)
    except ProgramSyntaxError as exc:
        return Replayed(path, error=exc)
    return Replayed(path, check_program(program, path, text, profile_override))


def replay_file(path: str, profile_override: str | None = None) -> Replayed:
    """:func:`replay_bytes` of a file; a file that cannot be read is a Replayed too."""
    try:
        data = read_program_bytes(path)
    except ProgramFileError as exc:
        return Replayed(path, error=exc)
    return replay_bytes(data, path, profile_override)
