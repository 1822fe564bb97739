"""The worker of ``iomemfuzz fuzz --engine generate``: one state-aware generator
(:mod:`iomemfuzz.fuzz.generate`) per process, seeded with the corpus Programs of the
job's profile, writing and running Programs until the deadline. Each Program that shows
a signature the worker has not seen is queued (:mod:`iomemfuzz.fuzz.worker_pool`); the
job minimizes and stores it."""

from __future__ import annotations

import random
import signal
import time

from iomemfuzz.fuzz.artefacts import corpus_programs
from iomemfuzz.fuzz.generate import Generator
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_file import ProgramFileError, read_program
from iomemfuzz.fuzz.program_parse import ProgramSyntaxError
from iomemfuzz.fuzz.targets import die_with_parent
from iomemfuzz.fuzz.worker_pool import Found, queue_found, tell_accepted
from iomemfuzz.model.profile import resolve

# Executions between looks at the clock, the halt flag and the shared counter.
BATCH = 16


def corpus_seeds(corpus: str | None, profile: str) -> list[Program]:
    """The corpus Programs a generator starts from: those for ``profile`` (or for none);
    a file that does not read is no seed (the job's own export reports it)."""
    if not corpus:
        return []
    out = []
    for path in corpus_programs(corpus, profile):
        try:
            out.append(read_program(path))
        except (ProgramSyntaxError, ProgramFileError):
            continue
    return out


def generate_worker(profile: str, queue: str, known: list[str], deadline: float,
                    seed: int, counter: object, halt: object,
                    handoff: object | None = None, corpus: str | None = None,
                    features: object | None = None) -> None:
    """One generator process until the deadline (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    prof = resolve(profile)
    gen = Generator(prof, random.Random(seed))
    gen.seed(corpus_seeds(corpus, prof.name))
    seen = set(known)
    accepted: set[str] = set()
    told: set[str] = set()
    total = 0
    while time.time() < deadline and not halt.is_set():  # type: ignore[attr-defined]
        for _ in range(BATCH):
            program, trace = gen.program()
            total += 1
            accepted.update(v.signature for v in trace.accepted)
            for sig in trace.signatures:
                if sig not in seen:
                    queue_found(queue, Found(sig, program), seen, handoff)
        counter.value = total  # type: ignore[attr-defined]
        if features is not None:
            features.value = len(gen.ever)  # type: ignore[attr-defined]
        tell_accepted(queue, accepted, told)
