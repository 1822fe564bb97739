"""``iomemfuzz fuzz``: run an engine against the model, store every finding as it appears.

Two engines share one finding path:

* ``atheris`` (default where it imports): ``--jobs N`` independent libFuzzer processes
  run the executable target ``fuzz/targets/kernel_ops.py``, each with its own seed and
  artefact directory, with ``-use_value_profile=1``, ``-max_len`` and the
  structure-aware mutator. They share one byte corpus in the work directory (the first
  corpus argument: each writes its new inputs there and reloads the others' every
  second, libFuzzer's default ``-reload=1``) and one queue. Not libFuzzer's ``-fork``:
  it starts a new Python for every fork job, about three seconds of imports and
  instrumentation each, which made two forked workers 4 to 7 times slower than one
  plain process. The parent parses every worker's status lines, sums their executions
  and prints one progress line and one summary.
* ``hypothesis``: N worker processes draw Programs from
  :func:`iomemfuzz.fuzz.strategies.programs` until the time is up; a failing example is
  shrunk by hypothesis first.

Why the target queues findings instead of crashing: a crash ends a libFuzzer process
(the job has to start it again, imports and all), and a shallow bug such as a
wrong-size release would be hit over and over, so the job would spend its time restarting
instead of searching. In job mode the target writes each input with a signature it has
not seen to ``WORKDIR/<profile>/queue/`` (atomically, fsynced, named by signature and
input hash, so workers writing at once cannot clash) and keeps fuzzing. The
parent takes each queued input, minimizes it for each new signature, writes the result
to ``corpus/findings/<profile>/`` with ``corpus.write_atomic`` and only then prints it and
deletes the queue file. So at every moment each finding is either in the corpus (and was
reported) or still in the queue, which the next job drains first: a job killed with
SIGKILL loses nothing it reported, nor anything the target had seen.

A finding is kept as the shortest reproducer met so far, not the first: the target also
queues some later inputs with a reported signature (``refind.*`` files, chosen by
:class:`iomemfuzz.fuzz.targets.Refinds`), and the parent minimizes each and replaces the
stored file when the result is shorter. That is how another route to the same bug (B5
through /dev/mem in 4 lines, after sysfs in 5) reaches the corpus. Only files a job
wrote are replaced, never a hand-written one. Exceptions raised by
the model itself (our bugs) still crash the target; libFuzzer writes them under
``artifacts/worker<i>/`` and the parent keeps each as a Program in ``errors/``, then
starts that worker again with the time left.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from iomemfuzz.fuzz import textinput
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
from iomemfuzz.fuzz.program import (
    Program,
    ProgramSyntaxError,
    format_program,
    read_program,
)
from iomemfuzz.fuzz.targets import (
    ENV_KNOWN,
    ENV_MUTATOR,
    ENV_PROFILE,
    ENV_QUEUE,
    SHORTEN,
    die_with_parent,
    queue_name,
    refind_signature,
)
from iomemfuzz.model.profile import KernelProfile, resolve

ENGINES = ("atheris", "hypothesis")
TARGETS_DIR = Path(__file__).resolve().parent / "targets"
DEFAULT_TARGET = TARGETS_DIR / "kernel_ops.py"
ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")
EXIT_OK, EXIT_FINDING = 0, 1
# The note of a finding this job wrote: only such a file may be replaced by a shorter one.
MACHINE_NOTE = "found by iomemfuzz fuzz"


def default_engine() -> str:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "hypothesis"
    return "atheris"


@dataclass
class JobConfig:
    engine: str | None = None  # None: atheris where it imports, else hypothesis
    profile: str = "v6.1-deb"
    max_time: float = 60.0
    jobs: int = 1
    corpus: Path = Path("corpus")
    workdir: Path = Path("work")
    seed: int | None = None
    # 512 bytes is room for about 30 operations, beyond what any known bug needs.
    max_len: int = 4096  # bytes of Program text: ~60 lines
    mutator: str = "structure"  # or "bytes": libFuzzer's byte mutations only
    value_profile: bool = True
    minimize_runs: int = 2000
    progress_every: float = 10.0  # seconds between plain progress lines (not a terminal)
    target: Path = DEFAULT_TARGET
    libfuzzer_args: tuple[str, ...] = ()
    # Stop as soon as one of these signatures is stored (benchmarks, CI smoke runs), and
    # with until_length only once its stored reproducer is at most that many lines.
    until: frozenset[str] = frozenset()
    until_length: int | None = None


@dataclass
class Stats:
    execs: int = 0
    exec_s: int = 0
    cov: int | None = None
    ft: int | None = None
    corpus: int | None = None


@dataclass
class Reported:
    signature: str
    path: Path
    length: int
    original_length: int
    elapsed: float
    replay: str
    # When a shorter reproducer (another route) last replaced it, and the length first stored.
    shortened: float | None = None
    first_length: int | None = None


@dataclass
class Summary:
    engine: str
    profile: str
    elapsed: float
    stats: Stats
    findings: list[Reported] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    errors: list[Path] = field(default_factory=list)
    interrupted: bool = False
    workers: list[int] = field(default_factory=list)  # executions of each worker
    # Earlier findings replaced with a shorter reproducer: (signature, old, new, path).
    shortened: list[tuple[str, int, int, Path]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_FINDING if self.findings or self.errors else EXIT_OK


# --- output -------------------------------------------------------------------------------


class Console:
    """Live progress: one \\r-updated line on a terminal, periodic plain lines otherwise."""

    def __init__(self, out: TextIO, every: float) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every = every
        self._last = 0.0
        self._width = 0

    def say(self, text: str) -> None:
        if self.tty and self._width:
            self.out.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.out.write(text + "\n")
        self.out.flush()

    def progress(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            line = text[:160]
            self.out.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.out.flush()
        elif force or now - self._last >= self.every:
            self._last = now
            self.out.write(text + "\n")
            self.out.flush()

    def end(self) -> None:
        if self.tty and self._width:
            self.out.write("\n")
            self._width = 0
            self.out.flush()


def progress_line(engine: str, profile: str, elapsed: float, max_time: float, stats: Stats,
                  findings: int) -> str:
    parts = [f"[{engine} {profile}] {elapsed:5.1f}s", f"execs {stats.execs}",
             f"{stats.exec_s}/s"]
    if stats.cov is not None:
        parts.append(f"cov {stats.cov} ft {stats.ft}")
    if stats.corpus is not None:
        parts.append(f"corpus {stats.corpus}")
    parts.append(f"findings {findings}")
    parts.append(f"left {max(0.0, max_time - elapsed):.0f}s")
    return "  ".join(parts)


# --- findings -----------------------------------------------------------------------------


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
            program = read_program(str(path))
        except (ProgramSyntaxError, OSError, UnicodeDecodeError):
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
                 started: float, minimize_runs: int) -> None:
        self.corpus = Path(corpus)
        self.profile = profile
        self.engine = engine
        self.console = console
        self.started = started
        self.minimize_runs = minimize_runs
        self.known = known_signatures(self.corpus, profile)
        self.reported: dict[str, Reported] = {}
        # Corpus findings of earlier jobs this job replaced with a shorter reproducer:
        # signature -> (old length, new length, path).
        self.shortened: dict[str, tuple[int, int, Path]] = {}

    def is_new(self, sig: str) -> bool:
        return sig not in self.known and sig not in self.reported

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
            return MACHINE_NOTE in path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return False

    def known_lines(self) -> list[str]:
        """The target's IOMEMFUZZ_KNOWN file: every signature, marked where a shorter
        reproducer is wanted."""
        sigs = set(self.known) | set(self.reported)
        return [f"{sig}\t{SHORTEN}" if self.shortenable(sig) else sig for sig in sigs]

    def handle(self, program: Program, depth: int = 0) -> None:
        trace = run(program, self.profile)
        for sig in trace.signatures:
            if self.is_new(sig):
                self._store(program, sig, depth)

    def _store(self, program: Program, sig: str, depth: int) -> None:
        try:
            m = minimize(program, self.profile, sig, max_runs=self.minimize_runs)
        except NothingToMinimize:
            return
        path = finding_path(self.corpus, self.profile, sig)
        replay = Finding(sig, self.profile, "", path=str(path)).replay_command()
        note = (f"{MACHINE_NOTE} --engine {self.engine}; minimized from "
                f"{m.original_length} to {len(m.program.lines)} operations")
        text = m.text(replay, note)
        saved, _ = save_finding(self.corpus, Finding(sig, self.profile, text, m.message,
                                                     str(path)))
        rep = Reported(sig, saved, len(m.program.lines), m.original_length,
                       time.monotonic() - self.started, replay)
        self.reported[sig] = rep
        self.console.say(f"finding {sig} ({rep.length} ops, from {rep.original_length}) "
                         f"at {rep.elapsed:.1f}s -> {saved}")
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
            stored = len(read_program(str(path)).lines)
        except (ProgramSyntaxError, OSError, UnicodeDecodeError):
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
        saved, written = save_finding(self.corpus, Finding(
            sig, self.profile, m.text(replay, note), m.message, str(path)))
        if not written:
            return
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
        """Process every queued candidate, oldest name first, deleting each when done."""
        if not queue.is_dir():
            return
        for path in sorted(queue.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            # Queue files are Program text (fuzz inputs, or a hypothesis worker's find).
            program = textinput.read_program(path.read_bytes())
            again = refind_signature(path.name)
            if again is not None:
                self.shorten(program, again)
            else:
                self.handle(program)
            path.unlink(missing_ok=True)


def keep_error(artifact: Path, errors: Path, profile: str, tail: list[str]) -> Path:
    """A libFuzzer artefact (the target raised or hung): keep it as a Program."""
    data = artifact.read_bytes()
    program = textinput.read_program(data).with_headers(profile=profile)
    kind = artifact.name.split("-", 1)[0]
    notes = [f"libFuzzer {kind} artefact {artifact.name}: the model raised or hung on this",
             "replay with: iomemfuzz show FILE"]
    notes += [ln.rstrip() for ln in tail[-8:] if ln.strip()]
    program = Program(program.lines, program.headers,
                      tuple(_safe_note(n) for n in notes))
    out = errors / f"{kind}-{hashlib.sha1(data).hexdigest()[:16]}.prog"
    write_atomic(out, format_program(program))
    artifact.unlink(missing_ok=True)
    return out


def _safe_note(text: str) -> str:
    text = text.strip()
    return f"log {text}" if re.match(r"[a-z]+(@\S+)?:", text) else text


# --- engines --------------------------------------------------------------------------------

# libFuzzer's status lines as atheris 3.0.0 prints them (tests/unit/test_job.py has real
# ones): plain mode "#1570<TAB>NEW    cov: 1307 ft: 2696 corp: 188/10865b lim: 512 exec/s:
# 174 ...", fork mode "#3652: cov: 4010 ft: 4988 corp: 404 exec/s 115 ...". Anchored on
# the fields so that other lines starting with '#' (the recommended dictionary) never
# count as progress.
_STATUS = re.compile(r"^#(\d+)(?::|\t[A-Za-z]+)\s+cov: (\d+) ft: (\d+) corp: (\d+)")
# -print_final_stats=1: the exact count when a worker stops by itself; status lines only
# come with new coverage and at powers of two.
_FINAL = re.compile(r"^stat::number_of_executed_units:\s+(\d+)")


def parse_status(line: str, stats: Stats) -> bool:
    """Update ``stats`` from one line of a libFuzzer process (plain or fork mode); False
    when it is not a status line. libFuzzer's own exec/s is not taken: it is per process,
    and fork mode reports 0 for long stretches; the job measures the rate of all its
    workers together."""
    m = _STATUS.match(line)
    if m:
        stats.execs, stats.cov, stats.ft, stats.corpus = map(int, m.groups())
        return True
    m = _FINAL.match(line)
    if m:
        stats.execs = int(m.group(1))
        return True
    return False


class _Stop:
    """SIGINT/SIGTERM ask the job to stop; it then drains and summarises."""

    def __init__(self) -> None:
        self.requested = False
        self.interrupted = False
        self._old: dict[int, object] = {}

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True
        self.interrupted = True

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


class Workspace:
    """WORKDIR/<profile>/: libFuzzer's byte corpus, seeds, queue, artefacts, errors."""

    def __init__(self, workdir: Path, profile: str) -> None:
        self.root = Path(workdir) / safe_name(profile)
        self.corpus = self.root / "corpus"
        self.seeds = self.root / "seeds"
        self.queue = self.root / "queue"
        self.artifacts = self.root / "artifacts"
        self.errors = self.root / "errors"
        self.known = self.root / "known-signatures"
        self.skipped = self.root / "seeds-skipped"  # corpus files that are no seed, and why
        for d in (self.corpus, self.seeds, self.queue, self.artifacts):
            d.mkdir(parents=True, exist_ok=True)

    def write_known(self, lines: list[str]) -> None:
        write_atomic(self.known, "".join(s + "\n" for s in sorted(lines)))


@dataclass
class _Worker:
    """One libFuzzer process of an atheris job, and the ones started in its place when the
    model raised and ended it early."""

    index: int
    artifacts: Path
    stats: Stats = field(default_factory=Stats)  # of the running process
    base: int = 0  # executions of the processes before it
    restarts: int = 0
    proc: subprocess.Popen[str] | None = None
    reader: threading.Thread | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))

    @property
    def execs(self) -> int:
        return self.base + self.stats.execs


def _libfuzzer_argv(cfg: JobConfig, ws: Workspace, seconds: int, worker: _Worker) -> list[str]:
    # The shared work corpus comes first: libFuzzer writes its new inputs into the first
    # directory and rereads it every -reload seconds (default 1) for the other workers'.
    argv = [str(cfg.target), str(ws.corpus), str(ws.seeds),
            f"-max_total_time={max(1, seconds)}", f"-max_len={cfg.max_len}",
            f"-artifact_prefix={worker.artifacts}/", "-print_final_stats=1"]
    if cfg.value_profile:
        argv.append("-use_value_profile=1")
    # Inputs are Program text: its vocabulary as a dictionary (fuzz/textinput.py).
    words = ws.root / "inputs.dict"
    if not words.exists():
        write_atomic(words, textinput.dictionary())
    argv.append(f"-dict={words}")
    if cfg.seed:
        # A distinct seed per worker and per restart, or they would walk the same path.
        # Without --seed libFuzzer mixes the clock with its pid: distinct already.
        argv.append(f"-seed={cfg.seed + worker.index + cfg.jobs * worker.restarts}")
    argv += list(cfg.libfuzzer_args)
    return argv


def _child_env(cfg: JobConfig, ws: Workspace) -> dict[str, str]:
    env = dict(os.environ)
    # libFuzzer re-launches the target by path, so its `env python3` must be ours.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env[ENV_PROFILE] = cfg.profile
    env[ENV_QUEUE] = str(ws.queue)
    env[ENV_KNOWN] = str(ws.known)
    env[ENV_MUTATOR] = cfg.mutator
    return env


def _stop_children(procs: list[subprocess.Popen[str]]) -> None:
    """SIGINT each worker's process group, all at once; SIGKILL what is left after 5 s."""
    live = [p for p in procs if p.poll() is None]
    for proc in live:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + 5
    for proc in live:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _read(proc: subprocess.Popen[str], tail: deque[str], stats: Stats) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        tail.append(line)
        parse_status(line, stats)


class _Job:
    def __init__(self, cfg: JobConfig, out: TextIO) -> None:
        self.cfg = cfg
        self.engine = cfg.engine or default_engine()
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r} (choose from {', '.join(ENGINES)})")
        self.profile = resolve(cfg.profile).name
        self.console = Console(out, cfg.progress_every)
        self.started = time.monotonic()
        self.ws = Workspace(cfg.workdir, self.profile)
        self.sink = FindingSink(cfg.corpus, self.profile, self.engine, self.console,
                                self.started, cfg.minimize_runs)
        self.stats = Stats()
        self.workers: list[int] = []
        self.errors: list[Path] = []
        self._mark = (self.started, 0)
        self.stop: _Stop | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def tick(self, *, force: bool = False) -> None:
        self.sink.drain(self.ws.queue)
        hits = [r.length for sig, r in self.sink.reported.items() if sig in self.cfg.until]
        if hits and self.stop is not None and (self.cfg.until_length is None
                                               or min(hits) <= self.cfg.until_length):
            self.stop.requested = True
        # Our own rate over a few seconds: of all workers together, and the hypothesis
        # workers report only counts.
        now = time.monotonic()
        if now - self._mark[0] >= 3:
            self.stats.exec_s = int((self.stats.execs - self._mark[1]) / (now - self._mark[0]))
            self._mark = (now, self.stats.execs)
        self.console.progress(progress_line(self.engine, self.profile, self.elapsed(),
                                            self.cfg.max_time, self.stats,
                                            len(self.sink.reported)), force=force)

    def collect_artifacts(self, folder: Path, tail: list[str]) -> None:
        if not folder.is_dir():
            return
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.name.startswith(ARTIFACT_PREFIXES):
                kept = keep_error(path, self.ws.errors, self.profile, tail)
                self.errors.append(kept)
                self.console.say(f"internal error (the model raised or hung): {kept}")
                for line in tail[-6:]:
                    self.console.say(f"  | {line.rstrip()}")

    def run(self) -> Summary:
        cfg = self.cfg
        self.console.say(f"iomemfuzz fuzz: engine {self.engine}, profile {self.profile}, "
                         f"{cfg.max_time:g}s, {cfg.jobs} job(s); corpus {cfg.corpus}, "
                         f"workdir {self.ws.root}")
        # Leftovers of an earlier job (killed before it could store them) come first.
        self.sink.drain(self.ws.queue)
        self.ws.write_known(self.sink.known_lines())
        with _Stop() as stop:
            self.stop = stop
            if self.engine == "atheris":
                self._atheris(stop)
            else:
                self._hypothesis(stop)
            interrupted = stop.interrupted
        self.tick(force=True)
        self.console.end()
        summary = Summary(self.engine, self.profile, self.elapsed(), self.stats,
                          list(self.sink.reported.values()), sorted(self.sink.known),
                          self.errors, interrupted, self.workers,
                          [(sig, old, new, path) for sig, (old, new, path)
                           in sorted(self.sink.shortened.items())])
        self.console.say(format_summary(summary))
        return summary

    def _atheris(self, stop: _Stop) -> None:
        cfg = self.cfg
        # Imported here: artefacts builds on this module's Workspace.
        from iomemfuzz.fuzz.artefacts import export_seeds

        seeds = export_seeds(self.ws.seeds, cfg.corpus, self.profile)
        # A file that does not parse is no seed; say which and why, out of the way.
        write_atomic(self.ws.skipped, "".join(f"{path}: {why}\n"
                                              for path, why in seeds.skipped))
        self.console.say(f"target {cfg.target}; {seeds.files} seed input(s) from {cfg.corpus}"
                         + (f", {len(seeds.skipped)} skipped (reasons in {self.ws.skipped})"
                            if seeds.skipped else ""))
        workers = [_Worker(i, self.ws.artifacts / f"worker{i}") for i in range(max(1, cfg.jobs))]
        if cfg.max_time - self.elapsed() < 1:
            return
        try:
            for w in workers:
                self._launch(w)
            while any(w.proc is not None for w in workers):
                if stop.requested or self.elapsed() > cfg.max_time + 15:
                    break
                for w in workers:
                    if w.proc is not None and w.proc.poll() is not None:
                        self._ended(w, restart=not stop.requested)
                self._aggregate(workers)
                self.tick()
                time.sleep(0.2)
        finally:
            # Whatever ended the loop (time, SIGINT, an `until` signature, an error in
            # the parent), no worker outlives the job.
            running = [w for w in workers if w.proc is not None]
            _stop_children([w.proc for w in running if w.proc is not None])
            for w in running:
                self._ended(w, restart=False)
            self._aggregate(workers)
            # Left by an earlier job's workers or by `iomemfuzz fuzz --merge`.
            self.collect_artifacts(self.ws.artifacts, [])

    def _launch(self, w: _Worker) -> None:
        cfg = self.cfg
        self.ws.write_known(self.sink.known_lines())
        w.artifacts.mkdir(parents=True, exist_ok=True)
        # A fresh deque, as for Stats below: a reader that outlived its join must not
        # append the old process's last lines to the new one's.
        w.tail = deque(maxlen=40)
        w.proc = subprocess.Popen(
            _libfuzzer_argv(cfg, self.ws, int(cfg.max_time - self.elapsed()), w),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            env=_child_env(cfg, self.ws), start_new_session=True)
        w.reader = threading.Thread(target=_read, args=(w.proc, w.tail, w.stats), daemon=True)
        w.reader.start()
        again = f" (restart {w.restarts})" if w.restarts else ""
        self.console.say(f"worker {w.index}: libFuzzer pid {w.proc.pid}{again}")

    def _ended(self, w: _Worker, *, restart: bool) -> None:
        """``w``'s process ended: keep its artefacts, and start it again if it ended
        before its time (the model raised) unless it cannot start at all."""
        assert w.proc is not None and w.reader is not None
        w.reader.join(timeout=5)
        status = w.proc.returncode
        w.proc = None
        tail = list(w.tail)
        self.collect_artifacts(w.artifacts, tail)
        # A fresh Stats for the next process: a reader that outlived its join writes
        # into the old one, never into the count of its successor.
        ran = w.stats.execs > 0  # it printed a status line: it started fuzzing
        w.base += w.stats.execs
        w.stats = Stats(cov=w.stats.cov, ft=w.stats.ft, corpus=w.stats.corpus)
        if not restart or status == 0 or self.cfg.max_time - self.elapsed() < 1:
            return
        if w.restarts >= 20 or not ran:
            # The target cannot start at all: show why; the other workers go on.
            self.console.say(f"worker {w.index}: libFuzzer ended with status {status}; "
                             "last lines:")
            for line in tail[-15:]:
                self.console.say(f"  | {line.rstrip()}")
            return
        w.restarts += 1
        self._launch(w)

    def _aggregate(self, workers: list[_Worker]) -> None:
        """Executions add up; coverage, features and corpus size are the best worker's
        (they share one corpus), never going down when a worker restarts."""
        self.stats.execs = sum(w.execs for w in workers)
        self.workers = [w.execs for w in workers]
        for key in ("cov", "ft", "corpus"):
            values = [v for v in [getattr(self.stats, key)] + [getattr(w.stats, key)
                                                                for w in workers]
                      if v is not None]
            if values:
                setattr(self.stats, key, max(values))

    def _hypothesis(self, stop: _Stop) -> None:
        cfg = self.cfg
        ctx = multiprocessing.get_context("fork")
        counters = [ctx.Value("q", 0, lock=False) for _ in range(cfg.jobs)]
        halt = ctx.Event()
        deadline = time.time() + cfg.max_time
        known = sorted(set(self.sink.known) | set(self.sink.reported))
        workers = [
            ctx.Process(target=hypothesis_worker, daemon=True,
                        args=(self.profile, str(self.ws.queue), known, deadline,
                              (cfg.seed or 0) * 1000 + i, counters[i], halt))
            for i in range(cfg.jobs)]
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            if stop.requested or self.elapsed() > cfg.max_time + 15:
                halt.set()
                break
            time.sleep(0.2)
            self.stats.execs = sum(c.value for c in counters)
            self.tick()
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.kill()
                w.join()
        self.workers = [c.value for c in counters]
        self.stats.execs = sum(self.workers)


class _Found(Exception):
    def __init__(self, sig: str, program: Program) -> None:
        super().__init__(sig)
        self.sig = sig
        self.program = program


def hypothesis_worker(profile: str, queue: str, known: list[str], deadline: float,
                      seed: int, counter: object, halt: object) -> None:
    """One hypothesis search process: rounds of @given(programs()) until the deadline.

    A Program with a signature not seen yet is queued as text (the job minimizes it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    prof = resolve(profile)
    seen = set(known)
    rounds = 0
    total = [0]
    while time.time() < deadline and not halt.is_set():  # type: ignore[attr-defined]
        found = _hypothesis_round(prof, seen, seed * 100003 + rounds, counter, total)
        if found is not None:
            _queue_found(queue, found, seen)
        rounds += 1


def _hypothesis_round(prof: KernelProfile, seen: set[str], seed: int, counter: object,
                      total: list[int]) -> _Found | None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st
    from hypothesis.errors import FlakyFailure
    from iomemfuzz.fuzz import features
    from iomemfuzz.fuzz.strategies import programs, state_programs

    first: list[_Found] = []

    # Generation only: hypothesis' shrinker re-draws whole Programs and took ~30 s per
    # finding, while the job's minimizer needs well under a second. No deadline test
    # inside the test function (a replay returning early reads as flaky): rounds are
    # short, and the deadline is checked between them.
    @settings(max_examples=100, deadline=None, database=None, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), print_blob=False,
              phases=(Phase.generate, Phase.target))
    @hseed(seed)
    # Half the Programs drawn line by line from the state each prefix reaches.
    @given(st.one_of(programs(max_lines=24, metadata=False), state_programs(prof)))
    def probe(program: Program) -> None:
        total[0] += 1
        counter.value = total[0]  # type: ignore[attr-defined]
        trace = run(program, prof)
        if features.ENABLED:  # semantic feedback: fuzz/features.py
            features.report_to_hypothesis(features.features(trace))
        new = [s for s in trace.signatures if s not in seen]
        if new:
            found = _Found(new[0], program)
            first.append(found)
            raise found

    try:
        probe()
    except _Found as found:
        return found
    except FlakyFailure:
        # Cannot happen with a deterministic model; keep the first failing example.
        return first[0] if first else None
    return None


def _queue_found(queue: str, found: _Found, seen: set[str]) -> None:
    seen.add(found.sig)
    text = format_program(found.program)
    write_atomic(Path(queue) / queue_name(found.sig, text.encode(), ".prog"), text)


def format_summary(s: Summary) -> str:
    rate = int(s.stats.execs / s.elapsed) if s.elapsed > 0 else 0
    lines = [f"== iomemfuzz fuzz {'(interrupted) ' if s.interrupted else ''}summary: "
             f"engine {s.engine}, profile {s.profile}, {s.elapsed:.1f}s, "
             f"{s.stats.execs} executions ({rate}/s)"
             + (f", cov {s.stats.cov} ft {s.stats.ft}" if s.stats.cov is not None else "")]
    if len(s.workers) > 1:
        lines.append(f"{len(s.workers)} workers: "
                     f"{' + '.join(str(n) for n in s.workers)} executions")
    if s.findings:
        lines.append(f"new findings: {len(s.findings)}")
        for r in s.findings:
            shorter = (f" (first {r.first_length} ops; shorter route at {r.shortened:.1f}s)"
                       if r.shortened is not None else "")
            lines.append(f"  {r.signature}  {r.length} ops  at {r.elapsed:.1f}s{shorter}  "
                         f"{r.path}")
            lines.append(f"    replay: {r.replay}")
    else:
        lines.append("new findings: none")
    if s.shortened:
        lines.append(f"shorter reproducers for earlier findings: {len(s.shortened)}")
        lines.extend(f"  {sig}  {old} -> {new} ops  {path}"
                     for sig, old, new, path in s.shortened)
    if s.known:
        lines.append(f"already in the corpus (not reported again): {len(s.known)} "
                     f"signature(s)")
    if s.errors:
        lines.append(f"internal errors (model raised or hung): {len(s.errors)}")
        lines.extend(f"  {p}" for p in s.errors)
    return "\n".join(lines)


def run_job(cfg: JobConfig, out: TextIO | None = None) -> Summary:
    """Run one fuzz job as configured; progress and findings go to ``out``."""
    return _Job(cfg, out or sys.stdout).run()
