"""``stats.json``: a fuzz job's state and its time series, rewritten at progress ticks.

Like AFL's ``fuzzer_stats`` (the current numbers) and ``plot_data`` (their history) in one
JSON file in the job's workdir (``WORKDIR/<profile>/stats.json``), so that a monitoring
script can read it at any moment and ``iomemfuzz plot WORKDIR`` can draw coverage and
findings over time (fuzz/pictures/progress.py). The job calls :meth:`StatsFile.tick` at
every progress tick; the file is replaced atomically, at most once per ``every`` seconds
unless forced (the job's last tick is). A long job's series stays small: when it passes
``MAX_POINTS`` every other point is dropped and the sampling interval doubles.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from iomemfuzz.fuzz.corpus import write_atomic

NAME = "stats.json"
VERSION = 1
MAX_POINTS = 600


class StatsFile:
    """The ``stats.json`` of one job."""

    def __init__(self, path: Path, *, engine: str, profile: str, max_time: float,
                 jobs: int, every: float = 1.0) -> None:
        self.path = Path(path)
        self.every = every
        self.head = {"version": VERSION, "engine": engine, "profile": profile,
                     "max_time": max_time, "jobs": jobs, "started": time.time()}
        self.series: list[dict[str, Any]] = []
        self.found: list[dict[str, Any]] = []
        self._last = -1e9
        # Why the file could not be written (the job then stops writing it), or None.
        self.broken: str | None = None

    def tick(self, elapsed: float, stats: Any, reported: dict[str, Any], *,
             force: bool = False, known: int = 0, errors: int = 0) -> bool:
        """Record a point and rewrite the file if ``every`` seconds passed (or ``force``).
        ``stats`` is the job's Stats, ``reported`` its signature -> Reported. True when
        the file was written."""
        if not force and elapsed - self._last < self.every:
            return False
        self._last = elapsed
        point = {"t": round(elapsed, 2), "execs": stats.execs, "exec_s": stats.exec_s,
                 "cov": stats.cov, "ft": stats.ft, "corpus": stats.corpus,
                 "findings": len(reported)}
        if self.series and self.series[-1]["t"] == point["t"]:
            self.series[-1] = point
        else:
            self.series.append(point)
        if len(self.series) > MAX_POINTS:
            # Keep the first and the latest points; thin the rest.
            self.series = [*self.series[:-1:2], self.series[-1]]
            self.every *= 2
        self.found = sorted(({"signature": sig, "t": round(r.elapsed, 2),
                              "length": r.length} for sig, r in reported.items()),
                            key=lambda f: (f["t"], f["signature"]))
        doc = {**self.head, "updated": time.time(), "elapsed": round(elapsed, 2),
               "executions": stats.execs, "exec_per_s": stats.exec_s,
               "coverage": stats.cov, "features": stats.ft, "corpus_size": stats.corpus,
               "findings": len(reported), "known": known, "errors": errors,
               "found": self.found, "series": self.series}
        if self.broken is not None:
            return False
        try:
            write_atomic(self.path, json.dumps(doc, indent=1) + "\n")
        except OSError as exc:
            # A picture's data, not a finding: the job goes on without it (nothing it
            # reports is lost) and says so once, in its summary's place.
            self.broken = f"{self.path}: {exc.strerror or exc}"
            return False
        return True


class StatsError(ValueError):
    """No stats.json where one was expected, or one that does not parse."""


def find(workdir: Path) -> list[Path]:
    """The stats files of a workdir: ``WORKDIR/stats.json`` or ``WORKDIR/*/stats.json``."""
    workdir = Path(workdir)
    if workdir.is_file():
        return [workdir]
    direct = workdir / NAME
    if direct.is_file():
        return [direct]
    return sorted(workdir.glob(f"*/{NAME}"))


def load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StatsError(f"{path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION or "series" not in doc:
        raise StatsError(f"{path}: not a version-{VERSION} iomemfuzz stats file")
    return doc
