"""The hypothesis worker of ``iomemfuzz fuzz --engine hypothesis``: rounds of
:func:`iomemfuzz.fuzz.strategies.programs` until the time is up; each Program that shows
a signature the worker has not seen is queued (:mod:`iomemfuzz.fuzz.worker_pool`)."""

from __future__ import annotations

import signal
import time

from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.targets import die_with_parent
from iomemfuzz.fuzz.worker_pool import Found, queue_found, tell_accepted
from iomemfuzz.model.profile import KernelProfile, resolve

# Signatures accepted by design that this worker process met, by its ``seen`` set (one per
# worker): the rounds add to it, the loop tells the job.
ACCEPTED: dict[int, set[str]] = {}


def hypothesis_worker(profile: str, queue: str, known: list[str], deadline: float,
                      seed: int, counter: object, halt: object,
                      handoff: object | None = None, corpus: str | None = None,
                      features: object | None = None) -> None:
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
            queue_found(queue, found, seen, handoff)
        tell_accepted(queue, ACCEPTED.get(id(seen), set()), told)
        rounds += 1


def _hypothesis_round(prof: KernelProfile, seen: set[str], seed: int, counter: object,
                      total: list[int]) -> Found | None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st
    from hypothesis.errors import FlakyFailure
    from iomemfuzz.fuzz import features
    from iomemfuzz.fuzz.strategies import programs, state_programs

    first: list[Found] = []
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
            found = Found(new[0], program)
            first.append(found)
            raise found

    try:
        probe()
    except Found as found:
        return found
    except FlakyFailure:
        # Cannot happen with a deterministic model; keep the first failing example.
        return first[0] if first else None
    return None


