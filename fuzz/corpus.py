"""The corpus on disk: text Programs under ``corpus/``; the only file I/O in fuzz/.

Writes are atomic (temporary file in the same directory, fsync, rename), so a fuzz job
killed at any moment leaves every finding it had written whole and replayable. Findings are
deduplicated by (profile, signature): one file each, named after the signature, and a
new Program replaces the stored one only when it is shorter.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from iomemfuzz.fuzz.finding import Finding
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import parse_program

SUFFIX = ".prog"
_UMASK = os.umask(0)
os.umask(_UMASK)
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def write_atomic(path: Path | str, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    replaced = False
    try:
        # mkstemp creates 0600; corpus files are ordinary shared data files.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        replaced = True
    finally:
        # Never leave a temporary file behind, whatever interrupted the write (even
        # KeyboardInterrupt); any exception still propagates.
        if not replaced:
            Path(tmp).unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def program_files(paths: Iterable[Path | str]) -> Iterator[Path]:
    """Every ``*.prog`` file named or under a named directory, sorted, each once."""
    seen: set[Path] = set()
    for p in paths:
        p = Path(p)
        found = sorted(p.rglob(f"*{SUFFIX}")) if p.is_dir() else [p]
        for f in found:
            if f.name.startswith("."):
                continue
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                yield f


def safe_name(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("_") or "unnamed"


def signature_file_name(sig: str) -> str:
    """A signature as a file name: its parts joined by '+', which no part contains (a
    kernel function such as ``__release_region`` does contain underscores)."""
    return safe_name(sig.replace("/", "+"))


def finding_path(corpus_dir: Path | str, profile: str, sig: str) -> Path:
    """corpus/findings/<profile>/<oracle>+<kind>+<function>[+<mechanism>].prog"""
    return Path(corpus_dir) / "findings" / safe_name(profile) / (
        signature_file_name(sig) + SUFFIX)


def save_finding(corpus_dir: Path | str, finding: Finding) -> tuple[Path, bool]:
    """Store ``finding`` unless an equal-or-shorter Program with its signature exists.

    Returns (path, written)."""
    path = finding_path(corpus_dir, finding.profile, finding.signature)
    if path.exists():
        try:
            old = parse_program(path.read_text(encoding="utf-8"), str(path))
            new = parse_program(finding.program_text, "<finding>")
            if len(old.lines) <= len(new.lines):
                return path, False
        except ValueError:
            # An unreadable stored file is replaced by a readable one.
            pass
    write_atomic(path, finding.program_text)
    return path, True


def canonical_text(text: str, path: str = "<string>") -> str:
    return format_program(parse_program(text, path))
