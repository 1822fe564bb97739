"""Files of libFuzzer-based engines <-> the text corpus.

ClusterFuzzLite, OSS-Fuzz and plain libFuzzer speak bytes: they take a seed corpus of
inputs and hand back crash files (``crash-<sha1>``). Both are Program text here (the
fuzz inputs are the project's one artefact), but a corpus file carries expectations and
notes, and a crash file only operations. This module moves them across, both ways:

* :func:`import_crashes` (``iomemfuzz import-crash FILE...``): read a crash file as the
  fuzz target does (its inputs are Program text, :mod:`iomemfuzz.fuzz.textinput`), run
  it, minimize it for each signature the corpus does not hold yet, and store it with
  :func:`corpus.save_finding` — so a crash downloaded from CI becomes an ordinary,
  replayable ``corpus/findings/<profile>/`` file.
  A crash file that no longer reproduces (the model changed since) is reported by name,
  never dropped silently.
* :func:`export_seeds` (``iomemfuzz export-seeds DIR``): write the text corpus as a seed
  corpus: each Program's operations and machine as canonical text, named by the SHA-1
  of its bytes (libFuzzer's own
  naming, so re-exporting into a corpus directory adds nothing twice), and optionally
  the list of signatures the corpus already records (:func:`known_signatures`), which a
  packaged fuzz target reads to crash only on findings that are new.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from iomemfuzz.fuzz import textinput
from iomemfuzz.fuzz.corpus import finding_path, program_files, safe_name, save_finding, write_atomic
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.finding import Finding
from iomemfuzz.fuzz.job_config import DEFAULT_TARGET
from iomemfuzz.fuzz.minimize import DEFAULT_MAX_RUNS, minimize
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_file import ProgramFileError, read_program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import ProgramSyntaxError
from iomemfuzz.fuzz.targets import ENV_KNOWN, ENV_PROFILE, ENV_QUEUE
from iomemfuzz.fuzz.workspace import Workspace
from iomemfuzz.model.profile import DEFAULT, resolve

# What libFuzzer names the inputs it keeps (crash-, timeout-, oom-, leak-, slow-unit-
# followed by the SHA-1 of the input); a directory argument is searched for these.
ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")

# Exceptions the model or an oracle raising on a Program would be (our bugs, which the
# fuzz target lets libFuzzer record as crashes too). Named, not `Exception`: anything
# else — KeyboardInterrupt, OSError — is not a property of the crash file.
MODEL_ERRORS = (AssertionError, ArithmeticError, AttributeError, LookupError,
                RecursionError, TypeError, ValueError)


# --- import -------------------------------------------------------------------------------


@dataclass
class Imported:
    """What became of one crash file."""

    path: Path
    profile: str
    status: str  # "imported", "known", "stale" or "error"
    operations: int = 0
    # signature -> corpus file (new or already present)
    findings: dict[str, Path] = field(default_factory=dict)
    new: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("imported", "known")


def crash_files(paths: Iterable[Path | str]) -> Iterator[Path]:
    """Files named, and libFuzzer artefacts (``crash-*`` ...) under directories named."""
    for p in paths:
        p = Path(p)
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*")
                              if f.is_file() and f.name.startswith(ARTIFACT_PREFIXES))
        else:
            yield p


def import_crash(path: Path | str, corpus: Path | str = "corpus",
                 profile: str | None = None, *, max_runs: int = DEFAULT_MAX_RUNS) -> Imported:
    """Turn one libFuzzer crash file into minimized corpus findings (one per new
    signature); see the module docstring. Raises OSError if the file cannot be read."""
    path = Path(path)
    prof = resolve(profile)
    program = textinput.read_program(path.read_bytes()).with_headers(profile=prof.name)
    result = Imported(path, prof.name, "stale", len(program.lines))
    try:
        signatures = run(program, prof).signatures
    except MODEL_ERRORS as exc:
        result.status = "error"
        result.message = (f"{path}: the model raised {type(exc).__name__}: {exc} — an "
                          f"iomemfuzz bug, not a finding; the Program (replay with "
                          f"`iomemfuzz show FILE`):\n{format_program(program)}")
        return result
    if not signatures:
        result.message = (f"{path}: does not reproduce on {prof.name}: its "
                          f"{len(program.lines)} operation(s) run clean (the model changed "
                          f"since?); not imported")
        return result
    for sig in signatures:
        stored = finding_path(corpus, prof.name, sig)
        if stored.exists():
            result.findings[sig] = stored
            continue
        m = minimize(program, prof, sig, max_runs=max_runs)
        replay = Finding(sig, prof.name, "", path=str(stored)).replay_command()
        note = (f"imported by iomemfuzz import-crash from {path.name}; minimized from "
                f"{m.original_length} to {len(m.program.lines)} operations")
        saved, _ = save_finding(corpus, Finding(sig, prof.name, m.text(replay, note),
                                                m.message, str(stored)))
        result.findings[sig] = saved
        result.new.append(sig)
    result.status = "imported" if result.new else "known"
    return result


def import_crashes(paths: Iterable[Path | str], corpus: Path | str = "corpus",
                   profile: str | None = None) -> list[Imported]:
    """:func:`import_crash` for every crash file named or under a named directory."""
    return [import_crash(p, corpus, profile) for p in crash_files(paths)]


def describe(result: Imported) -> str:
    """One report block per crash file, as ``iomemfuzz import-crash`` prints it."""
    if not result.ok:
        return result.message
    lines = []
    for sig, path in result.findings.items():
        if sig in result.new:
            lines.append(f"{result.path}: new finding {sig} -> {path}")
            replay = Finding(sig, result.profile, "", path=str(path)).replay_command()
            lines.append(f"  replay: {replay}")
        else:
            lines.append(f"{result.path}: {sig} is already in the corpus: {path}")
    return "\n".join(lines)


# --- export -------------------------------------------------------------------------------


@dataclass
class Exported:
    written: list[Path] = field(default_factory=list)
    present: list[Path] = field(default_factory=list)  # same bytes already in DIR
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    known: list[str] = field(default_factory=list)

    @property
    def files(self) -> int:
        return len(self.written) + len(self.present)


def corpus_programs(corpus: Path | str, profile: str | None = None) -> list[Path]:
    """The seed scenarios and the findings (of ``profile`` only, if given)."""
    corpus = Path(corpus)
    dirs = [corpus / "seeds"]
    findings = corpus / "findings"
    dirs.append(findings / safe_name(profile) if profile else findings)
    return list(program_files([d for d in dirs if d.is_dir()]))


def seed_bytes(program: Program) -> bytes:
    """The fuzz input for ``program``: its operations and machine as canonical text
    (every Program is one; expectations, notes and the profile are left out)."""
    return textinput.write_program(program)


def export_seeds(out: Path | str, corpus: Path | str = "corpus",
                 profile: str | None = None, known: Path | str | None = None) -> Exported:
    """Write every corpus Program as a byte seed into ``out`` (named by SHA-1); with
    ``known``, also write the signatures the corpus records for ``profile``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = Exported()
    for path in corpus_programs(corpus, profile):
        try:
            data = seed_bytes(read_program(path))
        except (ProgramSyntaxError, ProgramFileError, ValueError) as exc:
            # One bad file (malformed or unreadable) costs one seed,
            # reported by name, not the whole export or the fuzz job that exports first.
            report.skipped.append((path, str(exc)))
            continue
        target = out / hashlib.sha1(data).hexdigest()
        if target.exists():
            report.present.append(target)
            continue
        write_atomic(target, data)
        report.written.append(target)
    if known is not None:
        report.known = sorted(known_signatures(corpus, profile or DEFAULT.name))
        write_atomic(known, "".join(s + "\n" for s in report.known))
    return report


def known_signatures(corpus: Path | str, profile: str) -> set[str]:
    """Signatures the corpus records on ``profile``: the ``expect: finding`` lines about
    that profile in seed and finding files (``expect@PROFILE`` included). A fuzz target
    given this list (``IOMEMFUZZ_KNOWN``) reports only what the corpus does not explain."""
    name = resolve(profile).name
    sigs: set[str] = set()
    for path in corpus_programs(corpus):
        try:
            program = read_program(path)
        except (ProgramSyntaxError, ProgramFileError):
            continue  # export_seeds lists it among the skipped files
        for key, expects in program.expectations().items():
            if (key or program.profile or DEFAULT.name) == name:
                sigs.update(e.partition(" ")[2].strip() for e in expects
                            if e.startswith("finding "))
    return sigs


# --- work corpus --------------------------------------------------------------------------


@dataclass
class Merged:
    """``iomemfuzz fuzz --merge``: the work corpus before and after libFuzzer's merge."""

    corpus: Path
    before: int
    after: int
    bytes_before: int
    bytes_after: int
    seconds: float
    status: int  # libFuzzer's exit status
    log: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if self.status == 0 else 2

    def __str__(self) -> str:
        if self.status != 0:
            tail = "\n".join("  | " + ln for ln in self.log[-15:])
            return (f"merge of {self.corpus} failed (libFuzzer status {self.status}); the "
                    f"corpus is unchanged. Last lines:\n{tail}")
        return (f"merged {self.corpus}: {self.before} -> {self.after} inputs, "
                f"{self.bytes_before} -> {self.bytes_after} bytes in {self.seconds:.1f}s "
                f"(same coverage and features)")


def _files(folder: Path) -> list[Path]:
    return [f for f in folder.iterdir() if f.is_file()] if folder.is_dir() else []


def merge_work_corpus(workdir: Path | str = "work", profile: str | None = None,
                      max_len: int = 4096, target: Path | None = None) -> Merged:
    """Shrink ``WORKDIR/<profile>/corpus`` to the smallest subset libFuzzer's ``-merge=1``
    keeps (every coverage feature still reached), replacing it only when the merge worked.

    The target runs in job mode (``IOMEMFUZZ_QUEUE``): an input that breaks a property is
    queued for the next ``iomemfuzz fuzz`` to minimize and store, not a crash that would
    interrupt the merge."""
    name = resolve(profile).name
    ws = Workspace(Path(workdir), name)
    # The merge replaces the corpus a running job's workers read: never while one runs.
    with ws.locked():
        return _merge(ws, name, max_len, target)


def _merge(ws: Workspace, name: str, max_len: int, target: Path | None) -> Merged:
    old = ws.root / "corpus.old"
    if old.is_dir() and not any(ws.corpus.iterdir()):
        # A merge was interrupted between its two renames: the old corpus is the corpus.
        ws.corpus.rmdir()
        old.rename(ws.corpus)
    merging = ws.root / "corpus.merging"
    shutil.rmtree(merging, ignore_errors=True)
    merging.mkdir()
    before = _files(ws.corpus)
    env = dict(os.environ)
    # libFuzzer runs the target by its path, so its `env python3` must be ours.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update({ENV_PROFILE: name, ENV_QUEUE: str(ws.queue), ENV_KNOWN: str(ws.known)})
    argv = [str(target or DEFAULT_TARGET), str(merging), str(ws.corpus), "-merge=1",
            f"-merge_control_file={ws.root / 'merge.control'}", f"-max_len={max_len}",
            f"-artifact_prefix={ws.artifacts}/"]
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", check=False)
    after = _files(merging)
    result = Merged(ws.corpus, len(before), len(after), sum(f.stat().st_size for f in before),
                    sum(f.stat().st_size for f in after), time.monotonic() - started,
                    proc.returncode, proc.stdout.splitlines())
    if proc.returncode != 0 or (before and not after):
        result.status = proc.returncode or 1
        shutil.rmtree(merging, ignore_errors=True)
        return result
    # Two renames: a reader sees the old corpus, then (briefly) none, then the new one.
    ws.corpus.rename(old)
    merging.rename(ws.corpus)
    shutil.rmtree(old)
    (ws.root / "merge.control").unlink(missing_ok=True)
    return result
