"""Violations (a broken property, as data) and Findings (a Program that breaks one).

A signature says what broke, where, and how, the way a syzkaller title does ("KASAN:
use-after-free Read in foo"): ``ORACLE/KIND/FUNCTION[/MECHANISM]``, e.g.
``kernel-sanity/null-deref/__release_resource`` or
``mapping-survival/reaches-claimed/revoke_iomem/low-mib``. FUNCTION is the
kernel function where it happens (or that let it happen); MECHANISM is *why*, computed
by the oracle from the state at the moment of the violation, never assumed from the
kind. Two mechanisms never share a signature; the same mechanism reached by a longer
route does. A signature never contains addresses, handles or names, so two Programs that
break the same property the same way deduplicate to one finding whatever numbers they
use.

Each violation also carries a *class*, whose fault it is (:data:`CLASSES`), which the
executor decides from the lines that ran before it (:func:`program_class`).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

_SIG_PART = re.compile(r"[a-z0-9_][a-z0-9_-]*")

# Whose fault a finding is. Default jobs report the first two and count the others.
USERSPACE = "userspace"  # a process reaches it through system calls and files alone
RACE = "race"  # legal kernel paths (drivers, hotplug, boot) meet or interleave
DRIVER_MISUSE = "driver-misuse"  # only when an in-kernel caller breaks its contract
BY_DESIGN = "by-design"  # the profile says the kernel accepts it on purpose
CLASSES = (USERSPACE, RACE, DRIVER_MISUSE, BY_DESIGN)
REPORTED = frozenset({USERSPACE, RACE})

# Who a Program line acts for (an Op's WHO).
PROCESS = "process"  # a system call, or a sysfs/procfs write a (root) process makes
DRIVER = "driver"  # a caller of the in-kernel API, held to its contract
PLATFORM = "platform"  # hardware and firmware events: hot-plug, a host bridge, boot
SCHEDULE = "schedule"  # which kernel path runs when (spawn/step)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken property. ``message`` may name addresses; the signature never does."""

    oracle: str  # e.g. "busy-consistency"
    kind: str  # e.g. "claim-lost"
    message: str
    # The catalog entry (fuzz/catalog.toml) this is an instance of, when known (e.g. "B16").
    catalog: str = ""
    # The kernel function where it happens, or that let it happen.
    function: str = ""
    # Why, in a word or two computed from the state ("low-mib").
    mechanism: str = ""
    # Whose fault (CLASSES); the executor fills it in.
    cls: str = ""

    def __post_init__(self) -> None:
        parts = [self.oracle, self.kind]
        parts += [p for p in (self.function, self.mechanism) if p]
        if not all(_SIG_PART.fullmatch(p) for p in parts) or (self.mechanism
                                                               and not self.function):
            raise ValueError(f"bad signature parts {parts!r}")

    @property
    def signature(self) -> str:
        return signature(self.oracle, self.kind, self.function, self.mechanism)


def signature(oracle: str, kind: str, function: str = "", mechanism: str = "") -> str:
    return "/".join(p for p in (oracle, kind, function, mechanism) if p)


def slug(text: str) -> str:
    """Free text as a signature part: lower case, runs of other characters to '-'."""
    return re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-") or "unknown"


def program_class(lines: list[tuple[str, bool]], breaches: int) -> str:
    """Whose fault a violation is, from the lines that ran before it: (WHO, whether the
    line controls scheduling) of each line that did something, and how many driver
    contract breaches the run has made (only a misuse profile allows any)."""
    if breaches:
        return DRIVER_MISUSE
    if all(who == PROCESS and not scheduled for who, scheduled in lines):
        return USERSPACE
    return RACE


@dataclass(frozen=True, slots=True)
class Finding:
    """A Program whose run on ``profile`` produces a violation with ``signature``."""

    signature: str
    profile: str
    program_text: str
    message: str = ""
    path: str | None = None
    cls: str = ""

    def replay_command(self) -> str:
        target = self.path or "FILE.prog"
        return f"iomemfuzz replay --profile {shlex.quote(self.profile)} {shlex.quote(target)}"

    def report(self) -> str:
        """What a kernel developer needs: what broke, where, whose fault, the Program,
        how to replay."""
        lines = [
            f"finding: {self.signature}",
            f"profile: {self.profile}",
        ]
        if self.cls:
            lines.append(f"class:   {self.cls}")
        if self.message:
            lines.append(f"what:    {self.message}")
        lines.append(f"replay:  {self.replay_command()}")
        lines.append("program:")
        lines.extend("  " + ln for ln in self.program_text.rstrip("\n").splitlines())
        return "\n".join(lines) + "\n"
