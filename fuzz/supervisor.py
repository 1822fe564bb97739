"""The libFuzzer side of ``iomemfuzz fuzz --engine atheris``: start ``--jobs N`` processes of
the fuzz target, read their status lines, restart one the model crashed, stop them all.

Each worker is an independent libFuzzer process with its own seed and artefact directory;
they share one byte corpus in the work directory (the first corpus argument: each writes
its new inputs there and reloads the others' every second, libFuzzer's default
``-reload=1``) and one queue. Not libFuzzer's ``-fork``: it starts a new Python for every
fork job, about three seconds of imports and instrumentation each, which made two forked
workers 4 to 7 times slower than one plain process. The job parses every worker's status
lines, sums their executions and prints one progress line and one summary.

Exceptions raised by the model itself (our bugs) crash the target; libFuzzer writes them
under ``artifacts/worker<i>/``, the job keeps each as a Program in ``errors/`` and starts
that worker again with the time left.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from iomemfuzz.fuzz import textinput
from iomemfuzz.fuzz.artefacts import ARTIFACT_PREFIXES
from iomemfuzz.fuzz.console import Console
from iomemfuzz.fuzz.corpus import write_atomic
from iomemfuzz.fuzz.job_config import JobConfig
from iomemfuzz.fuzz.sink import FindingSink
from iomemfuzz.fuzz.summary import Stats
from iomemfuzz.fuzz.targets import ENV_KNOWN, ENV_MUTATOR, ENV_PROFILE, ENV_QUEUE, UNQUEUED
from iomemfuzz.fuzz.workspace import Workspace

# libFuzzer's -seed is an unsigned 32-bit number, and 0 means "pick one".
_SEED_RANGE = 1 << 32

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


def parse_unqueued(line: str) -> tuple[str, bytes, str] | None:
    """(signature, input, why) of a worker's "could not queue" line, or None."""
    if not line.startswith(UNQUEUED):
        return None
    parts = line[len(UNQUEUED):].strip().split(" ", 2)
    if len(parts) < 2:
        return None
    try:
        data = bytes.fromhex(parts[1])
    except ValueError:
        return None
    return parts[0], data, parts[2] if len(parts) > 2 else ""


@dataclass
class Worker:
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


def libfuzzer_seed(cfg: JobConfig, worker: Worker) -> int | None:
    """The -seed of ``worker``: distinct per worker and per restart, or they would walk the
    same path. None without --seed: libFuzzer mixes the clock with its pid, distinct
    already. Never 0, which libFuzzer reads as "choose one"."""
    if cfg.seed is None:
        return None
    seed = (cfg.seed + worker.index + cfg.jobs * worker.restarts) % _SEED_RANGE
    return seed or _SEED_RANGE - 1


def libfuzzer_argv(cfg: JobConfig, ws: Workspace, seconds: int, worker: Worker) -> list[str]:
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
    seed = libfuzzer_seed(cfg, worker)
    if seed is not None:
        argv.append(f"-seed={seed}")
    argv += list(cfg.libfuzzer_args)
    return argv


def child_env(cfg: JobConfig, ws: Workspace, profile: str) -> dict[str, str]:
    env = dict(os.environ)
    # libFuzzer re-launches the target by path, so its `env python3` must be ours.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env[ENV_PROFILE] = profile
    env[ENV_QUEUE] = str(ws.queue)
    env[ENV_KNOWN] = str(ws.known)
    env[ENV_MUTATOR] = cfg.mutator
    return env


def stop_children(procs: list[subprocess.Popen[str]]) -> None:
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


def collect_artifacts(sink: FindingSink, console: Console, ws: Workspace, folder: Path,
                      tail: list[str]) -> list[Path]:
    """Keep every libFuzzer artefact under ``folder`` (and its worker folders) as a
    model-error Program in ``ws.errors``; the paths kept."""
    kept_paths: list[Path] = []
    if not folder.is_dir():
        return kept_paths
    for path in sorted(folder.iterdir()):
        if path.is_dir() and path.name.startswith("worker"):
            kept_paths += collect_artifacts(sink, console, ws, path, tail)
        elif path.is_file() and path.name.startswith(ARTIFACT_PREFIXES):
            kept = sink.keep_error(path, ws.errors, tail)
            if kept is None:
                continue
            kept_paths.append(kept)
            console.say(f"internal error (the model raised or hung): {kept}")
            for line in tail[-6:]:
                console.say(f"  | {line.rstrip()}")
    return kept_paths


class LibFuzzerPool:
    """The job's libFuzzer workers: started, watched, restarted, stopped."""

    def __init__(self, cfg: JobConfig, profile: str, ws: Workspace, console: Console,
                 sink: FindingSink, stats: Stats, elapsed: Callable[[], float]) -> None:
        self.cfg = cfg
        self.profile = profile
        self.ws = ws
        self.console = console
        self.sink = sink
        self.stats = stats
        self.elapsed = elapsed
        self.workers = [Worker(i, ws.artifacts / f"worker{i}") for i in range(max(1, cfg.jobs))]
        self.errors: list[Path] = []
        # Inputs a worker could not queue (its disk refused), read from its output.
        self._unqueued: list[tuple[str, bytes, str]] = []
        self._lock = threading.Lock()

    def take_unqueued(self) -> list[tuple[str, bytes, str]]:
        with self._lock:
            out, self._unqueued = self._unqueued, []
        return out

    def run(self, stopped: Callable[[], bool], tick: Callable[[], None]) -> None:
        """Fuzz until the time is up or ``stopped()``; ``tick`` runs every 0.2 s."""
        cfg = self.cfg
        if cfg.max_time - self.elapsed() < 1:
            return
        try:
            for w in self.workers:
                self._launch(w)
            while any(w.proc is not None for w in self.workers):
                if stopped() or self.elapsed() > cfg.max_time + 15:
                    break
                for w in self.workers:
                    if w.proc is not None and w.proc.poll() is not None:
                        self._ended(w, restart=not stopped())
                self._aggregate()
                tick()
                time.sleep(0.2)
        finally:
            # Whatever ended the loop (time, SIGINT, an `until` signature, an error in
            # the parent), no worker outlives the job.
            running = [w for w in self.workers if w.proc is not None]
            stop_children([w.proc for w in running if w.proc is not None])
            for w in running:
                self._ended(w, restart=False)
            self._aggregate()

    def collect_artifacts(self, folder: Path, tail: list[str]) -> None:
        self.errors += collect_artifacts(self.sink, self.console, self.ws, folder, tail)

    def _read(self, proc: subprocess.Popen[str], tail: deque[str], stats: Stats) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            unqueued = parse_unqueued(line)
            if unqueued is not None:
                with self._lock:
                    self._unqueued.append(unqueued)
                continue
            tail.append(line)
            parse_status(line, stats)

    def _launch(self, w: Worker) -> None:
        cfg = self.cfg
        self.ws.write_known(self.sink.known_lines())
        w.artifacts.mkdir(parents=True, exist_ok=True)
        # A fresh deque, as for Stats below: a reader that outlived its join must not
        # append the old process's last lines to the new one's.
        w.tail = deque(maxlen=40)
        w.proc = subprocess.Popen(
            libfuzzer_argv(cfg, self.ws, int(cfg.max_time - self.elapsed()), w),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            env=child_env(cfg, self.ws, self.profile), start_new_session=True)
        w.reader = threading.Thread(target=self._read, args=(w.proc, w.tail, w.stats),
                                    daemon=True)
        w.reader.start()
        again = f" (restart {w.restarts})" if w.restarts else ""
        self.console.say(f"worker {w.index}: libFuzzer pid {w.proc.pid}{again}")

    def _ended(self, w: Worker, *, restart: bool) -> None:
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

    def _aggregate(self) -> None:
        """Executions add up; coverage, features and corpus size are the best worker's
        (they share one corpus), never going down when a worker restarts."""
        self.stats.execs = sum(w.execs for w in self.workers)
        for key in ("cov", "ft", "corpus"):
            values = [v for v in [getattr(self.stats, key)] + [getattr(w.stats, key)
                                                                for w in self.workers]
                      if v is not None]
            if values:
                setattr(self.stats, key, max(values))

    @property
    def executions(self) -> list[int]:
        return [w.execs for w in self.workers]
