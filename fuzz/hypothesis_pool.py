"""The hypothesis side of ``iomemfuzz fuzz --engine hypothesis``: N worker processes draw
Programs from :func:`iomemfuzz.fuzz.strategies.programs` until the time is up, and queue
each one that shows a signature they have not seen.

A worker queues a Program as text in the work directory's queue, where the job (or, if
this one is killed, the next job) minimizes and stores it. When the disk refuses the queue
file, the worker hands the Program to the job through a pipe instead, so it is still
minimized and stored, and the job ends with the input/output exit code.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from iomemfuzz.fuzz.corpus import write_atomic
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.summary import Stats
from iomemfuzz.fuzz.targets import accepted_name, die_with_parent, queue_name
from iomemfuzz.model.profile import KernelProfile, resolve


class _Found(Exception):
    def __init__(self, sig: str, program: Program) -> None:
        super().__init__(sig)
        self.sig = sig
        self.program = program


def random_seed() -> int:
    """A seed for a job run without --seed (printed, so the run can be repeated)."""
    return int.from_bytes(os.urandom(4), "little")


class HypothesisPool:
    """``jobs`` forked hypothesis workers, their execution counters and their hand-offs."""

    def __init__(self, profile: str, queue: Path, known: list[str], max_time: float,
                 jobs: int, seed: int, stats: Stats) -> None:
        ctx = multiprocessing.get_context("fork")
        self.counters = [ctx.Value("q", 0, lock=False) for _ in range(jobs)]
        self.halt = ctx.Event()
        self.handoff = ctx.SimpleQueue()
        self.stats = stats
        deadline = time.time() + max_time
        self.procs = [
            ctx.Process(target=hypothesis_worker, daemon=True,
                        args=(profile, str(queue), known, deadline, seed * 1000 + i,
                              self.counters[i], self.halt, self.handoff))
            for i in range(jobs)]

    def run(self, stopped: Callable[[], bool], elapsed: Callable[[], float], max_time: float,
            tick: Callable[[], None]) -> None:
        for w in self.procs:
            w.start()
        try:
            while any(w.is_alive() for w in self.procs):
                if stopped() or elapsed() > max_time + 15:
                    break
                time.sleep(0.2)
                self.stats.execs = sum(c.value for c in self.counters)
                tick()
        finally:
            self.halt.set()
            for w in self.procs:
                w.join(timeout=10)
                if w.is_alive():
                    w.kill()
                    w.join()
            self.stats.execs = sum(self.executions)

    @property
    def executions(self) -> list[int]:
        return [c.value for c in self.counters]

    def take_handoffs(self) -> list[tuple[str, str, str]]:
        """(signature, Program text, why) of Programs workers could not queue."""
        out = []
        while not self.handoff.empty():
            out.append(self.handoff.get())
        return out


# Signatures accepted by design that this worker process met, by its ``seen`` set (one per
# worker): the rounds add to it, the loop tells the job.
ACCEPTED: dict[int, set[str]] = {}

def hypothesis_worker(profile: str, queue: str, known: list[str], deadline: float,
                      seed: int, counter: object, halt: object,
                      handoff: object | None = None) -> None:
    """One hypothesis search process: rounds of @given(programs()) until the deadline.

    A Program with a signature not seen yet is queued as text (the job minimizes it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    prof = resolve(profile)
    seen = set(known)
    rounds = 0
    total = [0]
    told: set[str] = set()
    while time.time() < deadline and not halt.is_set():  # type: ignore[attr-defined]
        found = _hypothesis_round(prof, seen, seed * 100003 + rounds, counter, total)
        if found is not None:
            _queue_found(queue, found, seen, handoff)
        for sig in ACCEPTED.get(id(seen), set()) - told:
            told.add(sig)
            with contextlib.suppress(OSError):  # a count in the summary, nothing to lose
                write_atomic(Path(queue) / accepted_name(sig), b"")
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
    accepted = ACCEPTED.setdefault(id(seen), set())

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
        for v in trace.accepted:
            accepted.add(v.signature)
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


def _queue_found(queue: str, found: _Found, seen: set[str], handoff: object | None) -> None:
    seen.add(found.sig)
    text = format_program(found.program)
    path = Path(queue) / queue_name(found.sig, text.encode(), ".prog")
    try:
        write_atomic(path, text)
    except OSError as exc:
        why = f"{path}: {exc.strerror or exc}"
        if handoff is not None:
            handoff.put((found.sig, text, why))  # type: ignore[attr-defined]
        else:
            sys.stderr.write(f"# could not queue {found.sig} ({why}); its Program:\n{text}")

