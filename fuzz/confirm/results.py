"""What a confirm run found: per line and per Program, and the helper's answers in the
model's words (errno names, SIGBUS)."""

from __future__ import annotations

import errno as errno_mod
from dataclasses import dataclass, field

from iomemfuzz.fuzz.confirm.qemu import Reply


@dataclass
class LineResult:
    index: int
    text: str
    model: str
    real: str | None = None  # None: not run
    agree: bool | None = None
    note: str = ""  # why not run, or what differs in the environment
    detail: str = ""  # raw facts: the value a load returned, the real address
    env: str = ""  # for a disagreement: how the real system differs from the model's
    dmesg: tuple[str, ...] = ()


@dataclass
class ProgramResult:
    path: str
    machine: str
    profile: str
    qemu: tuple[str, ...] = ()
    kernel: str = ""
    accel: str = ""
    lines: list[LineResult] = field(default_factory=list)
    skip: str = ""
    error: str = ""
    iomem_boot: str = ""
    ioports_boot: str = ""
    iomem_end: str = ""
    model_iomem_end: str = ""
    oops: str = ""  # the console's end when the kernel crashed
    # What the Program changed in /proc/iomem, real (in the model's names and addresses)
    # and modelled, and whether the two agree (None: not compared).
    iomem_changes: tuple[str, ...] = ()
    model_iomem_changes: tuple[str, ...] = ()
    iomem_changes_agree: bool | None = None
    notes: tuple[str, ...] = ()

    @property
    def disagreements(self) -> list[LineResult]:
        return [ln for ln in self.lines if ln.agree is False]


@dataclass
class RealFile:
    fd: int
    kind: str  # devmem, resource, procfs, legacy
    dev: str = ""  # model device name (resource/procfs)
    bar: int = 0


@dataclass
class RealMap:
    mid: int
    file: RealFile
    offset: int  # the real mmap offset
    # Where the mapping's first page points: fixed at mmap time (the page tables hold the
    # BAR's address then), so a BAR that moves later does not move the mapping.
    phys: int = 0


def errname(reply: Reply) -> str:
    number = int(reply.values[0]) if reply.values else 0
    return errno_mod.errorcode.get(number, f"E{number}")


def status(reply: Reply) -> str:
    if reply.status == "sig":
        return reply.values[0]
    if reply.status == "err":
        return errname(reply)
    return "ok"


def iomem_changes(before: str, after: str) -> list[str]:
    """"+ line" / "- line" for each /proc/iomem line added or removed (indent dropped:
    a card behind a root port nests one level deeper than the model's)."""
    old, new = before.splitlines(), after.splitlines()
    out = [f"- {ln.strip()}" for ln in old if ln not in new]
    out += [f"+ {ln.strip()}" for ln in new if ln not in old]
    return sorted(out, key=lambda t: (t[2:], t[0]))
