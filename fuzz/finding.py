"""Violations (a broken property, as data) and Findings (a Program that breaks one).

A signature is the oracle's name plus a normalized kind — ``busy-consistency/claim-lost``
— and never contains addresses, handles or names, so two Programs that break the same
property the same way deduplicate to one finding whatever numbers they use.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

_SIG_PART = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken property. ``message`` may name addresses; the signature never does."""

    oracle: str  # e.g. "busy-consistency"
    kind: str  # e.g. "claim-lost"
    message: str
    # The catalog entry (fuzz/catalog.toml) this is an instance of, when known (e.g. "B16").
    catalog: str = ""

    def __post_init__(self) -> None:
        if not (_SIG_PART.fullmatch(self.oracle) and _SIG_PART.fullmatch(self.kind)):
            raise ValueError(f"bad signature parts {self.oracle!r}/{self.kind!r}")

    @property
    def signature(self) -> str:
        return signature(self.oracle, self.kind)


def signature(oracle: str, kind: str) -> str:
    return f"{oracle}/{kind}"


@dataclass(frozen=True, slots=True)
class Finding:
    """A Program whose run on ``profile`` produces a violation with ``signature``."""

    signature: str
    profile: str
    program_text: str
    message: str = ""
    path: str | None = None

    def replay_command(self) -> str:
        target = self.path or "FILE.prog"
        return f"iomemfuzz replay --profile {shlex.quote(self.profile)} {shlex.quote(target)}"

    def report(self) -> str:
        """What a kernel developer needs: what broke, where, the Program, how to replay."""
        lines = [
            f"finding: {self.signature}",
            f"profile: {self.profile}",
        ]
        if self.message:
            lines.append(f"what:    {self.message}")
        lines.append(f"replay:  {self.replay_command()}")
        lines.append("program:")
        lines.extend("  " + ln for ln in self.program_text.rstrip("\n").splitlines())
        return "\n".join(lines) + "\n"
