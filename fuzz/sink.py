"""Where a fuzz job's discoveries go: minimized findings into the corpus, model errors into
the work directory, and, when a disk refuses a write, somewhere they are not lost.

Order of events for a candidate: minimize it for each new signature, write the corpus file
(atomically), and only then say "finding" and let the job delete the queue file it came
from. A write that fails keeps the candidate: its queue file stays (the next job drains it
first) when that file reproduces the signature, and otherwise the minimized Program is
printed to stderr. Either way the job's summary lists it under "could not store".
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from pathlib import Path
from typing import TextIO

from iomemfuzz.fuzz import textinput
from iomemfuzz.fuzz.console import Console
from iomemfuzz.fuzz.corpus import (
    finding_path,
    program_files,
    safe_name,
    save_finding,
    write_atomic,
)
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.finding import Finding
from iomemfuzz.fuzz.minimize import NothingToMinimize, minimize
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_file import ProgramFileError, read_program, read_program_bytes
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import MAX_LINE_CHARS, ProgramSyntaxError
from iomemfuzz.fuzz.summary import Reported, Unstored
from iomemfuzz.fuzz.targets import SHORTEN, accepted_signature, refind_signature

# The note of a finding this job wrote: only such a file may be replaced by a shorter one.
MACHINE_NOTE = "found by iomemfuzz fuzz"
# Longest log line kept as a note of a model-error Program.
_NOTE_CHARS = min(200, MAX_LINE_CHARS - 10)


def known_signatures(corpus: Path, profile: str) -> dict[str, Path]:
    """Signatures the corpus already holds a finding for on ``profile``: every
    ``expect: finding`` line of the files in corpus/findings/<profile>/ (hand-written
    ones may name several)."""
    out: dict[str, Path] = {}
    folder = Path(corpus) / "findings" / safe_name(profile)
    if not folder.is_dir():
        return out
    for path in program_files([folder]):
        try:
            program = read_program(path)
        except (ProgramSyntaxError, ProgramFileError):
            continue
        for expect in program.expectations().get(None, ()):
            word, _, sig = expect.partition(" ")
            if word == "finding" and sig.strip():
                out.setdefault(sig.strip(), path)
    return out


class FindingSink:
    """Turns raw candidates into minimized, deduplicated corpus findings, one per new
    signature, each written before it is reported."""

    def __init__(self, corpus: Path, profile: str, engine: str, console: Console,
                 started: float, minimize_runs: int, err: TextIO | None = None) -> None:
        self.corpus = Path(corpus)
        self.profile = profile
        self.engine = engine
        self.console = console
        self.started = started
        # The same instant on the wall clock: a queue file's mtime says when a worker
        # found what it holds, which is when the finding was found, however long the
        # findings queued before it took to minimize.
        self.started_wall = time.time() - (time.monotonic() - started)
        self._found_at: float | None = None
        self.minimize_runs = minimize_runs
        self.err = err
        self.known = known_signatures(self.corpus, profile)
        self.reported: dict[str, Reported] = {}
        # Corpus findings of earlier jobs this job replaced with a shorter reproducer:
        # signature -> (old length, new length, path).
        self.shortened: dict[str, tuple[int, int, Path]] = {}
        # What a disk refused, and the signatures concerned (not tried again this job).
        self.unstored: list[Unstored] = []
        # Signatures accepted by design that workers met (their queue markers).
        self.by_design: set[str] = set()
        self.failed: set[str] = set()
        # Queue and artefact files kept because what they hold could not be stored.
        self.kept: set[Path] = set()
        # The queue file being drained and the signatures it reproduces.
        self._source: Path | None = None
        self._source_sigs: set[str] = set()
        self._keep_source = False

    def is_new(self, sig: str) -> bool:
        return sig not in self.known and sig not in self.reported and sig not in self.failed

    def shortenable(self, sig: str) -> bool:
        """May a shorter reproducer replace the stored one? Yes for what this job
        reported, and for a finding an earlier job wrote under the signature's own name;
        never for a hand-written file (it has a name of its own and comments)."""
        if sig in self.reported:
            return True
        path = self.known.get(sig)
        if path is None or path != finding_path(self.corpus, self.profile, sig):
            return False
        try:
            return MACHINE_NOTE.encode() in read_program_bytes(str(path))
        except ProgramFileError:
            return False

    def known_lines(self) -> list[str]:
        """The target's IOMEMFUZZ_KNOWN file: every signature, marked where a shorter
        reproducer is wanted."""
        sigs = set(self.known) | set(self.reported) | self.failed
        return [f"{sig}\t{SHORTEN}" if self.shortenable(sig) else sig for sig in sigs]

    def handle(self, program: Program, depth: int = 0) -> None:
        trace = run(program, self.profile)
        self._source_sigs = set(trace.signatures)
        for sig in trace.signatures:
            if self.is_new(sig):
                self._store(program, sig, depth)

    def _save(self, sig: str, text: str, message: str, path: Path) -> tuple[Path, bool] | None:
        """save_finding, or None (recorded, kept) when the disk refuses."""
        try:
            return save_finding(self.corpus, Finding(sig, self.profile, text, message,
                                                     str(path)))
        except OSError as exc:
            self._could_not_store(sig, f"{path}: {exc.strerror or exc}", text)
            return None

    def _could_not_store(self, sig: str, error: str, text: str) -> None:
        if self._source is not None and sig in self._source_sigs:
            kept = f"the queue: {self._source}"
            self._keep_source = True
        else:
            err = self.err or sys.stderr
            err.write(f"# iomemfuzz fuzz could not store {sig} ({error}); its Program:\n"
                      f"{text}")
            err.flush()
            kept = "stderr (its Program text was printed there)"
        self.failed.add(sig)
        self.unstored.append(Unstored(sig, error, kept))
        self.console.say(f"could not store {sig}: {error}; kept in {kept}")

    def _store(self, program: Program, sig: str, depth: int) -> None:
        try:
            m = minimize(program, self.profile, sig, max_runs=self.minimize_runs)
        except NothingToMinimize:
            return
        path = finding_path(self.corpus, self.profile, sig)
        replay = Finding(sig, self.profile, "", path=str(path)).replay_command()
        note = (f"{MACHINE_NOTE} --engine {self.engine}; minimized from "
                f"{m.original_length} to {len(m.program.lines)} operations")
        done = self._save(sig, m.text(replay, note), m.message, path)
        if done is not None:
            saved = done[0]
            now = time.monotonic() - self.started
            found = now if self._found_at is None or depth else min(self._found_at, now)
            rep = Reported(sig, saved, len(m.program.lines), m.original_length, found,
                           replay, cls=m.cls)
            self.reported[sig] = rep
            self.console.say(f"finding {sig} [{rep.cls}] ({rep.length} ops, from "
                             f"{rep.original_length}) at {rep.elapsed:.1f}s -> {saved}")
            self.console.say(f"  replay: {replay}")
        # Signatures met while minimizing are findings too; each gets its own search.
        if depth < 2:
            for other, smaller in sorted(m.others.items()):
                if self.is_new(other):
                    self._store(smaller, other, depth + 1)

    def shorten(self, program: Program, sig: str) -> None:
        """``program`` reproduces ``sig`` again: store its minimized form if it is
        shorter than the stored reproducer (another route to the same bug)."""
        self.handle(program)  # it may carry new signatures too
        if not self.shortenable(sig):
            return
        path = finding_path(self.corpus, self.profile, sig)
        try:
            stored = len(read_program(path).lines)
        except (ProgramSyntaxError, ProgramFileError):
            return
        try:
            m = minimize(program, self.profile, sig, max_runs=self.minimize_runs)
        except NothingToMinimize:
            return
        length = len(m.program.lines)
        replay = Finding(sig, self.profile, "", path=str(path)).replay_command()
        note = (f"{MACHINE_NOTE} --engine {self.engine}; minimized from "
                f"{m.original_length} to {length} operations (replacing a "
                f"{stored}-operation reproducer)")
        # save_finding keeps the stored file unless this one is shorter.
        done = self._save(sig, m.text(replay, note), m.message, path)
        if done is None or not done[1]:
            return
        saved = done[0]
        elapsed = time.monotonic() - self.started
        rep = self.reported.get(sig)
        if rep is not None:
            if rep.first_length is None:
                rep.first_length = rep.length
            rep.length, rep.original_length, rep.shortened = length, m.original_length, elapsed
        else:
            first = self.shortened.get(sig, (stored, 0, saved))[0]
            self.shortened[sig] = (first, length, saved)
        self.console.say(f"shorter reproducer for {sig}: {stored} -> {length} ops at "
                         f"{elapsed:.1f}s -> {saved}")

    def drain(self, queue: Path) -> None:
        """Process every queued candidate, oldest name first, deleting each when done
        (or keeping it, when what it holds could not be stored)."""
        if not queue.is_dir():
            return
        for path in sorted(queue.iterdir()):
            if path.name.startswith(".") or path in self.kept or not path.is_file():
                continue
            accepted = accepted_signature(path.name)
            if accepted is not None:
                self.by_design.add(accepted)
                path.unlink(missing_ok=True)
                continue
            program = _queued_program(path)
            self._source, self._source_sigs, self._keep_source = path, set(), False
            try:
                self._found_at = max(0.0, path.stat().st_mtime - self.started_wall)
            except OSError:
                self._found_at = None
            try:
                again = refind_signature(path.name)
                if again is not None:
                    self.shorten(program, again)
                else:
                    self.handle(program)
            finally:
                self._source, self._found_at = None, None
            if self._keep_source:
                self.kept.add(path)
            else:
                path.unlink(missing_ok=True)

    def take(self, program: Program, why: str) -> None:
        """A candidate a worker could not queue (its disk refused): handled now, and the
        refusal is recorded so the job ends with the input/output exit code."""
        self.unstored.append(Unstored("queue", why, "handed to the job directly"))
        self.handle(program)

    def keep_error(self, artifact: Path, errors: Path, tail: list[str]) -> Path | None:
        """A libFuzzer artefact (the target raised or hung): keep it as a Program in
        ``errors``, then delete it. When the write fails, the artefact stays and the
        Program goes to stderr; returns None then."""
        if artifact in self.kept:
            return None
        data = artifact.read_bytes()
        name, text = error_program(data, artifact.name, self.profile, tail)
        out = errors / name
        try:
            write_atomic(out, text)
        except OSError as exc:
            error = f"{out}: {exc.strerror or exc}"
            err = self.err or sys.stderr
            err.write(f"# iomemfuzz fuzz could not keep a model error ({error}); its "
                      f"Program:\n{text}")
            err.flush()
            self.kept.add(artifact)
            self.unstored.append(Unstored("model error", error,
                                          f"{artifact} and stderr"))
            self.console.say(f"could not keep a model error: {error}; kept in {artifact} "
                             "and on stderr")
            return None
        artifact.unlink(missing_ok=True)
        return out


def _queued_program(path: Path) -> Program:
    """A queue file as a Program: Program text from either engine (a libFuzzer worker's
    input read as the target read it; only operations and machine count)."""
    return textinput.read_program(path.read_bytes())


def error_program(data: bytes, name: str, profile: str, tail: list[str]) -> tuple[str, str]:
    """(file name, Program text) keeping libFuzzer artefact ``name`` as a model error."""
    program = textinput.read_program(data).with_headers(profile=profile)
    kind = name.split("-", 1)[0]
    notes = [f"libFuzzer {kind} artefact {name}: the model raised or hung on this",
             "replay with: iomemfuzz show FILE"]
    notes += [ln.rstrip() for ln in tail[-8:] if ln.strip()]
    program = Program(program.lines, program.headers, tuple(_safe_note(n) for n in notes))
    return f"{kind}-{hashlib.sha1(data).hexdigest()[:16]}.prog", format_program(program)


def _safe_note(text: str) -> str:
    """A log line as a note: one line, short, never readable as a header field."""
    text = text.strip()[:_NOTE_CHARS]
    return f"log {text}" if re.match(r"[a-z]+(@\S+)?:", text) else text
