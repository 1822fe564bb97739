"""Shared helpers of the robustness suite: run the real ``iomemfuzz`` command and check
that what a user sees on an error is one line and an exit code, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IOMEMFUZZ = str(Path(sys.executable).parent / "iomemfuzz")
B16 = ("r0 = __request_region(start=0xfe000000, n=0x100)\n"
       "__release_region(start=0xfe000000, n=0x80)\n")
# B16 needs callers that break their contract: the misuse profile.
PROFILE = "v6.1-deb-misuse"
RELEASE = "busy-consistency/release-without-claim/__release_region/wrong-size"


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("IOMEMFUZZ_")}
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    return out


def iomemfuzz(*args: object, timeout: float = 60, **kw: object
              ) -> subprocess.CompletedProcess[str]:
    """Run the installed command; a hang fails the test instead of stalling the suite."""
    return subprocess.run([IOMEMFUZZ, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env(), check=False, **kw)  # type: ignore[arg-type]


def one_line(err: str) -> str:
    """``err`` is exactly one line (what the user reads) and no traceback."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]
