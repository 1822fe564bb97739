"""atheris entry points (executable scripts) and the harness they share.

Invariant every target checks: any Program (the input is its text, read leniently by
:mod:`iomemfuzz.fuzz.textinput`) runs on a fresh modelled kernel of the chosen profile
without any oracle reporting a violation.

Only ``iomemfuzz.model`` is instrumented: coverage feedback should describe the kernel's
state space, not our parser or mutator. It is instrumented in place after the harness
built its kernel templates (:mod:`iomemfuzz.fuzz.targets.instrument`), so the boot inside
the templates, the same for every input, never counts.

Configuration comes from the environment (libFuzzer owns argv and passes it on when it
re-launches the script in -fork/-merge modes):

* ``IOMEMFUZZ_PROFILE``: kernel profile (default v6.1-deb); ``-iomemfuzz_profile=NAME``
  on the command line sets it too;
* ``IOMEMFUZZ_MUTATOR``: ``structure`` (default: :mod:`iomemfuzz.fuzz.mutate` plus a share
  of libFuzzer's byte mutations) or ``bytes`` (libFuzzer's alone);
* ``IOMEMFUZZ_QUEUE``: job mode. A violation with a signature not seen yet is written to
  this directory (atomically, named by signature and input hash) and fuzzing continues;
  ``iomemfuzz fuzz`` minimizes and stores it. Without it (standalone libFuzzer use) a
  violation raises :class:`FindingError`, so libFuzzer writes the crash input;
* ``IOMEMFUZZ_KNOWN``: a file of signatures (one a line) that need not be reported again.
  A line ``SIGNATURE<TAB>shorten`` asks for shorter reproducers of that one (see
  :class:`Refinds`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iomemfuzz.fuzz.executor import Trace
    from iomemfuzz.fuzz.ops import Op

ENV_PROFILE = "IOMEMFUZZ_PROFILE"
ENV_MUTATOR = "IOMEMFUZZ_MUTATOR"
ENV_QUEUE = "IOMEMFUZZ_QUEUE"
ENV_KNOWN = "IOMEMFUZZ_KNOWN"
PROFILE_FLAG = "-iomemfuzz_profile="
# A line a job-mode target prints when its queue refused a write: the job reads it from the
# target's output and stores the input itself ("UNQUEUED SIGNATURE HEX-INPUT WHY").
UNQUEUED = "iomemfuzz-unqueued:"


class FindingError(AssertionError):
    """An oracle reported a violation: carries the signature and the canonical Program."""

    def __init__(self, signature: str, profile: str, program_text: str, message: str) -> None:
        self.signature = signature
        self.profile = profile
        self.program_text = program_text
        super().__init__(f"finding {signature} on {profile}: {message}\n"
                         f"--- program ---\n{program_text}")


def queue_name(signature: str, data: bytes, suffix: str = ".prog") -> str:
    """File name of a queued finding: signature (filesystem-safe) and content hash."""
    safe = signature.replace("/", "+")
    return f"{safe}-{hashlib.sha1(data).hexdigest()[:16]}{suffix}"


SHORTEN = "shorten"
REFIND_PREFIX = "refind."


def refind_name(signature: str, data: bytes) -> str:
    """File name of a queued re-find (an input with an already-reported signature)."""
    return REFIND_PREFIX + queue_name(signature, data)


# A queue file named ACCEPTED_PREFIX + signature says a worker met a violation its
# profile accepts by design (once per worker and signature): the job counts them.
ACCEPTED_PREFIX = "accepted."


def accepted_name(signature: str) -> str:
    return ACCEPTED_PREFIX + signature.replace("/", "+")


def accepted_signature(name: str) -> str | None:
    """The signature an accepted-by-design marker names, or None for other files."""
    if not name.startswith(ACCEPTED_PREFIX):
        return None
    return name[len(ACCEPTED_PREFIX):].replace("+", "/")


def refind_signature(name: str) -> str | None:
    """The signature a queue file was queued as a re-find for, or None for a new one."""
    if not name.startswith(REFIND_PREFIX):
        return None
    return name[len(REFIND_PREFIX):].rsplit("-", 1)[0].replace("+", "/")


def read_known(path: str | None) -> tuple[set[str], set[str]]:
    """(signatures not to report again, those of them to find shorter reproducers of)."""
    known: set[str] = set()
    shorten: set[str] = set()
    if not path or not Path(path).is_file():
        return known, shorten
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        sig, _, mark = line.strip().partition("\t")
        if sig:
            known.add(sig)
            if mark == SHORTEN:
                shorten.add(sig)
    return known, shorten


class Refinds:
    """Which inputs with an already-reported signature to queue again, so the job can
    look for a shorter reproducer.

    Why: deleting lines cannot turn one route to a bug into another. B5 (a mapping that
    survives a claim) is usually met first through sysfs (hot-add, open resource0, mmap,
    bind, touch: 5 lines) and later through /dev/mem (4 lines); keeping only the first
    find would store the longer one for good. syzkaller likewise keeps reproducing a
    crash it knows. Minimizing every hit would swamp the job, so per signature an input
    is queued when it has fewer operations than every input queued for it so far (short
    inputs tend to minimize short), or when a back-off has passed (1 s, doubling: a
    sample of the other routes, about a dozen per signature in an hour).
    """

    FIRST_GAP = 1.0

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = set(wanted)
        # signature -> [fewest operations queued, next time a sample is due, gap]
        self.state: dict[str, list[float]] = {}

    def found(self, sig: str, length: int) -> None:
        """``sig`` was just queued as new, from an input of ``length`` operations."""
        self.wanted.add(sig)
        self.state[sig] = [length, time.monotonic() + self.FIRST_GAP, self.FIRST_GAP]

    def pick(self, sigs: Sequence[str], length: int) -> str | None:
        """The signature to queue this input for, if any (updates the state)."""
        now = time.monotonic()
        for sig in sigs:
            if sig not in self.wanted:
                continue
            st = self.state.setdefault(sig, [float("inf"), now, self.FIRST_GAP])
            if length < st[0]:
                st[0] = length
            elif now >= st[1]:
                st[2] *= 2
            else:
                continue
            st[1] = now + st[2]
            return sig
        return None


class Harness:
    """Read (Program text), run with every oracle, and report a violation (queue or raise).

    Every input starts on a copy of a template kernel (fuzz/snapshot.py), so only a
    Program that controls boot (``boot_to``) runs boot code, instrumented, where the
    interleavings are. The default machine's templates are built here, so the target
    instruments the model after constructing the harness (see ``main``)."""

    def __init__(self, profile: str | None = None, queue: str | None = None,
                 known: set[str] | None = None, shorten: set[str] | None = None) -> None:
        from iomemfuzz.fuzz import decode_tables, executor, features, textinput
        from iomemfuzz.fuzz.oracles import ORACLES
        from iomemfuzz.fuzz.snapshot import fresh_kernel
        from iomemfuzz.model.machine_file import load_machine
        from iomemfuzz.model.profile import resolve

        self.profile = resolve(profile)
        self.queue = Path(queue) if queue else None
        self.seen: set[str] = set(known or ())
        self.refinds = Refinds(shorten or set())
        # Semantic feedback (fuzz/features.py): set by main() once atheris is set up.
        self.feedback: Any = None
        self._features = features.features
        self._read = textinput.read
        # Signatures the profile accepts by design that this worker told the job about.
        self.accepted: set[str] = set()
        self._run_ops = executor.run_ops
        self._execution = executor.Execution
        self._needs_boot = executor.needs_boot
        self._fresh_kernel = fresh_kernel
        self._oracles = ORACLES
        # Machines an input may name (``# machine:``; textinput keeps only the built-in
        # ones and the shipped captures), each loaded when first named.
        self.machines: dict[str, Any] = {}
        self._load_machine = load_machine
        # Build the value tables and the default machine's templates now, before the
        # model is instrumented. Another machine's templates are built when an input
        # first names it (its boot then counts as coverage once, for that input).
        decode_tables.tables()
        decode_tables.machine_names()
        for booted in (True, False):
            fresh_kernel(self.profile, None, booted=booted)

    def run(self, ops: list[Op] | tuple[Op, ...]) -> Trace:
        return self._run_ops(ops, self.profile)

    def test_one_input(self, data: bytes) -> None:
        parsed = self._read(data)
        ops = parsed.ops
        machine = None
        if parsed.machine is not None:  # textinput keeps only machines that exist
            machine = self.machines.get(parsed.machine)
            if machine is None:
                machine = self.machines[parsed.machine] = self._load_machine(parsed.machine)
        if machine is None:  # the default machine
            trace = self.run(ops)
        else:  # run_ops on that machine's kernel
            ex = self._execution(self.profile, self._fresh_kernel(
                self.profile, machine, booted=self._needs_boot(ops)), self._oracles, False)
            for o in ops:
                ex.step(o)
            trace = ex.finish()
        if self.feedback is not None:
            self.feedback.hit(self._features(trace))
        if trace.accepted and self.queue is not None:
            self._note_accepted(trace)
        if not any(step.violations for step in trace.steps):
            return
        new = [s for s in trace.signatures if s not in self.seen]
        if not new:
            again = self.refinds.pick(trace.signatures, len(ops)) if self.queue else None
            if again is not None:
                self._enqueue(refind_name(again, data), again, data)
            return
        if self.queue is None:
            from iomemfuzz.fuzz.program_format import format_program

            program = parsed.program().with_headers(profile=self.profile.name)
            first = trace.first
            raise FindingError(new[0], self.profile.name, format_program(program),
                               first.message if first else "")
        self.seen.update(new)
        for sig in new:
            self.refinds.found(sig, len(ops))
        self._enqueue(queue_name(new[0], data), new[0], data)

    def _enqueue(self, name: str, sig: str, data: bytes) -> None:
        """Queue ``data`` for the job; when the disk refuses, hand it over on stdout
        (the job reads every line the target prints) and keep fuzzing."""
        from iomemfuzz.fuzz.corpus import write_atomic

        assert self.queue is not None
        try:
            write_atomic(self.queue / name, data)
        except OSError as exc:
            print(f"{UNQUEUED} {sig} {data.hex()} {self.queue / name}: "
                  f"{exc.strerror or exc}", flush=True)


    def _note_accepted(self, trace: Trace) -> None:
        from iomemfuzz.fuzz.corpus import write_atomic

        for v in trace.accepted:
            if v.signature not in self.accepted:
                self.accepted.add(v.signature)
                write_atomic(self.queue / accepted_name(v.signature), b"")


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (PR_SET_PDEATHSIG), so a
    job killed with SIGKILL leaves no fuzzer running behind it. A no-op elsewhere."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def main(argv: Sequence[str] | None = None) -> None:
    """Run libFuzzer on the decoder + executor with all oracles (never returns)."""
    import atheris

    argv = list(sys.argv if argv is None else argv)
    for flag in [a for a in argv if a.startswith(PROFILE_FLAG)]:
        # libFuzzer would warn about a flag it does not know; the environment also
        # reaches the processes it re-launches.
        os.environ[ENV_PROFILE] = flag[len(PROFILE_FLAG):]
        argv.remove(flag)
    if os.environ.get(ENV_QUEUE):
        die_with_parent()
    from iomemfuzz.fuzz import mutate
    from iomemfuzz.fuzz.targets.instrument import instrument_model

    known, shorten = read_known(os.environ.get(ENV_KNOWN))
    # The harness builds its kernel templates on the plain model; then the model is
    # instrumented, so the templates' boot never counts as coverage.
    harness = Harness(os.environ.get(ENV_PROFILE), os.environ.get(ENV_QUEUE), known, shorten)
    instrument_model()
    from iomemfuzz.fuzz import features

    if features.ENABLED:
        harness.feedback = features.Feedback()
    if os.environ.get(ENV_MUTATOR, "structure") == "bytes":
        atheris.Setup(argv, harness.test_one_input)
    else:
        atheris.Setup(
            argv, harness.test_one_input,
            custom_mutator=lambda data, max_size, seed: mutate.mutate(
                data, max_size, seed, atheris.Mutate),
            custom_crossover=mutate.crossover)
    atheris.Fuzz()
