"""``iomemfuzz fuzz``: run an engine against the model, store every finding as it appears.

The pieces, one module each: :mod:`~iomemfuzz.fuzz.job_config` (what was asked),
:mod:`~iomemfuzz.fuzz.workspace` (the work directory and its lock),
:mod:`~iomemfuzz.fuzz.supervisor` (libFuzzer workers of the atheris engine),
:mod:`~iomemfuzz.fuzz.worker_pool` (the generate and hypothesis engines' workers:
:mod:`~iomemfuzz.fuzz.generate_worker`, :mod:`~iomemfuzz.fuzz.hypothesis_pool`),
:mod:`~iomemfuzz.fuzz.sink`
(minimize, store, report), :mod:`~iomemfuzz.fuzz.console` and
:mod:`~iomemfuzz.fuzz.summary`. This module runs them in order.

Why the workers queue findings instead of crashing: a crash ends a libFuzzer process
(the job has to start it again, imports and all), and a shallow bug such as a
wrong-size release would be hit over and over, so the job would spend its time restarting
instead of searching. In job mode the target writes each input with a signature it has
not seen to ``WORKDIR/<profile>/queue/`` (atomically, fsynced, named by signature and
input hash, so workers writing at once cannot clash) and keeps fuzzing. The job takes
each queued input, minimizes it for each new signature, writes the result to
``corpus/findings/<profile>/`` with ``corpus.write_atomic`` and only then prints it and
deletes the queue file. So at every moment each finding is either in the corpus (and was
reported) or still in the queue, which the next job drains first: a job killed with
SIGKILL loses nothing it reported, nor anything the target had seen. A disk that refuses a
write ends the job the same way: what could not be stored stays queued (or is printed), is
listed in the summary, and the exit code is 2.

A finding is kept as the shortest reproducer met so far, not the first: the target also
queues some later inputs with a reported signature (``refind.*`` files, chosen by
:class:`iomemfuzz.fuzz.targets.Refinds`), and the job minimizes each and replaces the
stored file when the result is shorter. That is how another route to the same bug (B5
through /dev/mem in 4 lines, after sysfs in 5) reaches the corpus. Only files a job
wrote are replaced, never a hand-written one.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from iomemfuzz.fuzz import fuzz_stats, textinput
from iomemfuzz.fuzz.artefacts import export_seeds
from iomemfuzz.fuzz.console import Console, progress_line
from iomemfuzz.fuzz.corpus import write_atomic
from iomemfuzz.fuzz.generate_worker import generate_worker
from iomemfuzz.fuzz.hypothesis_pool import hypothesis_worker
from iomemfuzz.fuzz.job_config import ENGINES, JobConfig
from iomemfuzz.fuzz.program_parse import ProgramSyntaxError, parse_program
from iomemfuzz.fuzz.sink import FindingSink
from iomemfuzz.fuzz.summary import Stats, Summary, format_summary
from iomemfuzz.fuzz.supervisor import LibFuzzerPool, collect_artifacts
from iomemfuzz.fuzz.worker_pool import WorkerPool, random_seed
from iomemfuzz.fuzz.workspace import Workspace
from iomemfuzz.model.profile import resolve


def default_engine() -> str:
    """The engine of a job that names none: the state-aware generator, which finds the
    catalogued chains from an empty corpus faster than the others (docs/BENCHMARKS.md)
    and needs nothing beyond the model."""
    return "generate"


def atheris_installed() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


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


def _describe(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


class _Job:
    def __init__(self, cfg: JobConfig, out: TextIO, err: TextIO | None) -> None:
        self.cfg = cfg
        self.engine = cfg.engine or default_engine()
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r} (choose from {', '.join(ENGINES)})")
        self.profile = resolve(cfg.profile).name
        self.console = Console(out, cfg.progress_every)
        self.started = time.monotonic()
        self.ws = Workspace(cfg.workdir, self.profile)
        self.sink = FindingSink(cfg.corpus, self.profile, self.engine, self.console,
                                self.started, cfg.minimize_runs, err)
        self.stats = Stats()
        self.stats_file = fuzz_stats.StatsFile(self.ws.root / fuzz_stats.NAME,
                                               engine=self.engine, profile=self.profile,
                                               max_time=cfg.max_time, jobs=cfg.jobs)
        self.workers: list[int] = []
        self.errors: list[Path] = []
        self.io_error: str | None = None
        self._mark = (self.started, 0)
        self.stop: _Stop | None = None
        self.libfuzzer: LibFuzzerPool | None = None
        self.pool: WorkerPool | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.requested

    def tick(self, *, force: bool = False) -> None:
        self.sink.drain(self.ws.queue)
        self._take_handoffs()
        if self.stop is not None:
            if self.sink.unstored:
                # A disk refused a write: stop, store what can be stored, and say so.
                self.stop.requested = True
            hits = [r.length for sig, r in self.sink.reported.items() if sig in self.cfg.until]
            if hits and (self.cfg.until_length is None
                         or min(hits) <= self.cfg.until_length):
                self.stop.requested = True
            if self.cfg.until_each and all(
                    any(sig in self.sink.reported for sig in group)
                    for group in self.cfg.until_each):
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
        was = self.stats_file.broken
        self.stats_file.tick(self.elapsed(), self.stats, self.sink.reported, force=force,
                             known=len(self.sink.known), errors=len(self.errors))
        if self.stats_file.broken is not None and was is None:
            self.console.say(f"not writing {fuzz_stats.NAME} any more: "
                             f"{self.stats_file.broken}")

    def _take_handoffs(self) -> None:
        """Candidates workers could not queue (their disk refused) come through their
        output or a pipe instead; they are stored like queued ones."""
        if self.libfuzzer is not None:
            for _sig, data, why in self.libfuzzer.take_unqueued():
                self.sink.take(textinput.read_program(data), why)
        if self.pool is not None:
            for _sig, text, why in self.pool.take_handoffs():
                try:
                    program = parse_program(text, f"<{self.engine} worker>")
                except ProgramSyntaxError:
                    continue
                self.sink.take(program, why)

    def run(self) -> Summary:
        cfg = self.cfg
        with self.ws.locked():
            seed = "" if cfg.seed is None else f", seed {cfg.seed}"
            self.console.say(f"iomemfuzz fuzz: engine {self.engine}, profile {self.profile}, "
                             f"{cfg.max_time:g}s, {cfg.jobs} job(s){seed}; corpus "
                             f"{cfg.corpus}, workdir {self.ws.root}")
            with _Stop() as stop:
                self.stop = stop
                try:
                    # Leftovers of an earlier job (killed before it could store them) first.
                    self.errors += collect_artifacts(self.sink, self.console, self.ws,
                                                     self.ws.artifacts, [])
                    self.sink.drain(self.ws.queue)
                    self.ws.write_known(self.sink.known_lines())
                    if not self.sink.unstored:
                        if self.engine == "atheris":
                            self._atheris()
                        else:
                            self._workers()
                except OSError as exc:
                    self.io_error = _describe(exc)
                    self.console.say(f"stopping: a write failed: {self.io_error}")
                try:
                    self.tick(force=True)
                except OSError as exc:
                    self.io_error = self.io_error or _describe(exc)
                interrupted = stop.interrupted
            self.console.end()
            summary = Summary(self.engine, self.profile, self.elapsed(), self.stats,
                              list(self.sink.reported.values()), sorted(self.sink.known),
                              self.errors, interrupted, self.workers,
                              [(sig, old, new, path) for sig, (old, new, path)
                               in sorted(self.sink.shortened.items())],
                              list(self.sink.unstored), self.io_error,
                              set(self.sink.by_design))
            self.console.say(format_summary(summary))
            return summary

    def _atheris(self) -> None:
        cfg = self.cfg
        seeds = export_seeds(self.ws.seeds, cfg.corpus, self.profile)
        # A file that does not parse is no seed; say which and why, out of the way.
        write_atomic(self.ws.skipped, "".join(f"{path}: {why}\n"
                                              for path, why in seeds.skipped))
        self.console.say(f"target {cfg.target}; {seeds.files} seed input(s) from {cfg.corpus}"
                         + (f", {len(seeds.skipped)} skipped (reasons in {self.ws.skipped})"
                            if seeds.skipped else ""))
        self.libfuzzer = LibFuzzerPool(cfg, self.profile, self.ws, self.console, self.sink,
                                       self.stats, self.elapsed)
        try:
            self.libfuzzer.run(self.stopped, self.tick)
        finally:
            self.workers = self.libfuzzer.executions
            self.errors += self.libfuzzer.errors

    def _workers(self) -> None:
        cfg = self.cfg
        seed = cfg.seed if cfg.seed is not None else random_seed()
        if cfg.seed is None:
            self.console.say(f"{self.engine} seed {seed} (repeat this run with --seed {seed})")
        known = sorted(set(self.sink.known) | set(self.sink.reported))
        worker = generate_worker if self.engine == "generate" else hypothesis_worker
        try:
            self.pool = WorkerPool(worker, self.profile, self.ws.queue, known, cfg.max_time,
                                   cfg.jobs, seed, self.stats, cfg.corpus)
        except OSError as exc:
            # Its shared counters live in a temporary file (multiprocessing's heap).
            raise OSError(exc.errno, f"cannot start the {self.engine} workers: "
                          f"{exc.strerror}", exc.filename) from None
        try:
            self.pool.run(self.stopped, self.elapsed, cfg.max_time, self.tick)
        finally:
            self.workers = self.pool.executions


def run_job(cfg: JobConfig, out: TextIO | None = None, err: TextIO | None = None) -> Summary:
    """Run one fuzz job as configured; progress and findings go to ``out``, Programs the
    disk refused to ``err`` (default stderr). Raises WorkdirBusy when another live job
    holds the work directory."""
    return _Job(cfg, out or sys.stdout, err).run()
