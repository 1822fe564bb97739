"""A fuzz job's work directory, ``WORKDIR/<profile>/``, and the lock that keeps it one job's.

What lives there: libFuzzer's byte corpus, the seeds exported from the text corpus, the
queue of candidates the workers hand to the job, libFuzzer's artefacts and the model errors
kept from them. The queue is drained by exactly one job: two jobs sharing it would take
each other's files away mid-read. So a job holds ``WORKDIR/<profile>/lock`` (an exclusive
``flock``, with the holder's pid written in the file for the message) while it runs. The
kernel drops the lock when the holder dies, however it dies, so a lock file left by a dead
job is simply taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from iomemfuzz.fuzz.corpus import safe_name, write_atomic
from iomemfuzz.fuzz.exit_codes import InputError


class WorkdirBusy(InputError):
    """Another live job holds the work directory."""


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
        self.lock_file = self.root / "lock"
        for d in (self.corpus, self.seeds, self.queue, self.artifacts):
            d.mkdir(parents=True, exist_ok=True)

    def write_known(self, lines: list[str]) -> None:
        write_atomic(self.known, "".join(s + "\n" for s in sorted(lines)))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the work directory for the duration; raise WorkdirBusy naming the pid of
        the job that holds it."""
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
                raise WorkdirBusy(
                    f"work directory {self.root} is in use by another iomemfuzz job "
                    f"(pid {holder}); wait for it to end or give another --workdir") from None
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, str(self.lock_file)) from None
            yield
        finally:
            # Closing the descriptor drops the lock; the file (and its stale pid) stays.
            os.close(fd)
