"""What a fuzz job reports at the end: counts, findings, and what it could not store.

One record, two renderings: the text summary a person reads and the JSON object
``iomemfuzz fuzz --json`` prints. A finding is a row keyed by its signature; a column added
later (such as the signature's class) is one field of :class:`Reported` and one key in
:func:`summary_json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iomemfuzz.fuzz import exit_codes


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
    # Whose fault it is (fuzz/finding.py CLASSES).
    cls: str = ""


@dataclass
class Unstored:
    """Something the job found but could not write where it belongs, and where it is."""

    what: str  # a signature, or "model error" for a libFuzzer artefact
    error: str  # the path and the reason the write failed
    kept: str  # where it is instead: a queue or artefact file, or "stderr"


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
    # Findings and model errors the disk refused, and where each was kept instead.
    unstored: list[Unstored] = field(default_factory=list)
    # A write of the job's own (work directory, seeds) that failed and ended the job.
    io_error: str | None = None
    # Signatures the profile accepts by design that the job met (counted, not reported).
    by_design: set[str] = field(default_factory=set)

    @property
    def exit_code(self) -> int:
        codes = set()
        if self.interrupted:
            codes.add(exit_codes.INTERRUPTED)
        if self.unstored or self.io_error:
            codes.add(exit_codes.INPUT)
        if self.errors:
            codes.add(exit_codes.INTERNAL)
        if self.findings:
            codes.add(exit_codes.FINDING)
        return exit_codes.worst(codes)


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
            lines.append(f"  {r.signature}  [{r.cls or '?'}]  {r.length} ops  at "
                         f"{r.elapsed:.1f}s{shorter}  {r.path}")
            lines.append(f"    replay: {r.replay}")
    else:
        lines.append("new findings: none")
    if s.shortened:
        lines.append(f"shorter reproducers for earlier findings: {len(s.shortened)}")
        lines.extend(f"  {sig}  {old} -> {new} ops  {path}"
                     for sig, old, new, path in s.shortened)
    classes: dict[str, int] = {}
    for r in s.findings:
        classes[r.cls or "?"] = classes.get(r.cls or "?", 0) + 1
    if classes:
        lines.append("by class: " + ", ".join(f"{n} {c}" for c, n in sorted(classes.items())))
    if s.by_design:
        lines.append(f"accepted by design on this profile (not reported): "
                     f"{len(s.by_design)} signature(s)")
        lines.extend(f"  {sig}" for sig in sorted(s.by_design))
    if s.known:
        lines.append(f"already in the corpus (not reported again): {len(s.known)} "
                     f"signature(s)")
    if s.errors:
        lines.append(f"internal errors (model raised or hung): {len(s.errors)}")
        lines.extend(f"  {p}" for p in s.errors)
    if s.io_error:
        lines.append(f"stopped by a write that failed: {s.io_error}")
    if s.unstored:
        lines.append(f"could not store: {len(s.unstored)} (nothing is lost; each is kept "
                     "where it says)")
        lines.extend(f"  {u.what}: {u.error}; kept in {u.kept}" for u in s.unstored)
    lines.append(f"exit code {s.exit_code}")
    return "\n".join(lines)


def summary_json(s: Summary) -> dict[str, object]:
    """The summary as ``iomemfuzz fuzz --json`` prints it."""
    return {
        "engine": s.engine,
        "profile": s.profile,
        "elapsed": round(s.elapsed, 3),
        "executions": s.stats.execs,
        "coverage": s.stats.cov,
        "features": s.stats.ft,
        "workers": list(s.workers),
        "interrupted": s.interrupted,
        "findings": [
            {"signature": r.signature, "class": r.cls, "path": str(r.path),
             "length": r.length,
             "original_length": r.original_length, "elapsed": round(r.elapsed, 3),
             "replay": r.replay, "first_length": r.first_length,
             "shortened_at": None if r.shortened is None else round(r.shortened, 3)}
            for r in s.findings],
        "shortened": [{"signature": sig, "old_length": old, "new_length": new,
                       "path": str(path)} for sig, old, new, path in s.shortened],
        "known": len(s.known),
        "by_design": sorted(s.by_design),
        "errors": [str(p) for p in s.errors],
        "io_error": s.io_error,
        "unstored": [{"what": u.what, "error": u.error, "kept": u.kept}
                     for u in s.unstored],
        "exit_code": s.exit_code,
    }
