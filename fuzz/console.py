"""A fuzz job's live output: one progress line kept current, and events above it."""

from __future__ import annotations

import time
from typing import TextIO

from iomemfuzz.fuzz.summary import Stats


class Console:
    """Live progress: one \\r-updated line on a terminal, periodic plain lines otherwise."""

    def __init__(self, out: TextIO, every: float) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every = every
        self._last = 0.0
        self._width = 0

    def say(self, text: str) -> None:
        if self.tty and self._width:
            self.out.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.out.write(text + "\n")
        self.out.flush()

    def progress(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            line = text[:160]
            self.out.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.out.flush()
        elif force or now - self._last >= self.every:
            self._last = now
            self.out.write(text + "\n")
            self.out.flush()

    def end(self) -> None:
        if self.tty and self._width:
            self.out.write("\n")
            self._width = 0
            self.out.flush()


def progress_line(engine: str, profile: str, elapsed: float, max_time: float, stats: Stats,
                  findings: int) -> str:
    parts = [f"[{engine} {profile}] {elapsed:5.1f}s", f"execs {stats.execs}",
             f"{stats.exec_s}/s"]
    if stats.cov is not None:
        parts.append(f"cov {stats.cov} ft {stats.ft}")
    if stats.corpus is not None:
        parts.append(f"corpus {stats.corpus}")
    parts.append(f"findings {findings}")
    parts.append(f"left {max(0.0, max_time - elapsed):.0f}s")
    return "  ".join(parts)
