"""The worker processes of ``iomemfuzz fuzz --engine generate|hypothesis``: N forked
workers search until the time is up and queue each Program that shows a signature they
have not seen.

A worker queues a Program as text in the work directory's queue, where the job (or, if
this one is killed, the next job) minimizes and stores it. When the disk refuses the queue
file, the worker hands the Program to the job through a pipe instead, so it is still
minimized and stored, and the job ends with the input/output exit code.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from iomemfuzz.fuzz.corpus import write_atomic
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.summary import Stats
from iomemfuzz.fuzz.targets import accepted_name, queue_name

# A worker: (profile, queue folder, known signatures, deadline, seed, execution counter,
# halt event, hand-off queue, corpus folder, feature counter) -> None.
Worker = Callable[..., None]


class Found(Exception):
    """A Program that showed a signature the worker had not seen."""

    def __init__(self, sig: str, program: Program) -> None:
        super().__init__(sig)
        self.sig = sig
        self.program = program


def random_seed() -> int:
    """A seed for a job run without --seed (printed, so the run can be repeated)."""
    return int.from_bytes(os.urandom(4), "little")


class WorkerPool:
    """``jobs`` forked workers, their execution counters and their hand-offs."""

    def __init__(self, worker: Worker, profile: str, queue: Path, known: list[str],
                 max_time: float, jobs: int, seed: int, stats: Stats,
                 corpus: Path | None = None) -> None:
        ctx = multiprocessing.get_context("fork")
        self.counters = [ctx.Value("q", 0, lock=False) for _ in range(jobs)]
        # Features a worker's engine has seen (the generate engine's state and trace
        # features; 0 from an engine without any): the job's stats report their sum.
        self.features = [ctx.Value("q", 0, lock=False) for _ in range(jobs)]
        self.halt = ctx.Event()
        self.handoff = ctx.SimpleQueue()
        self.stats = stats
        deadline = time.time() + max_time
        self.procs = [
            ctx.Process(target=worker, daemon=True,
                        args=(profile, str(queue), known, deadline, seed * 1000 + i,
                              self.counters[i], self.halt, self.handoff,
                              None if corpus is None else str(corpus), self.features[i]))
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
                self.stats.ft = sum(c.value for c in self.features) or None
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



def queue_found(queue: str, found: Found, seen: set[str], handoff: object | None) -> None:
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



def tell_accepted(queue: str, accepted: set[str], told: set[str]) -> None:
    """Tell the job the signatures accepted by design that this worker met (an empty file
    per signature in the queue): a count in the summary."""
    for sig in accepted - told:
        told.add(sig)
        with contextlib.suppress(OSError):  # a count in the summary, nothing to lose
            write_atomic(Path(queue) / accepted_name(sig), b"")
