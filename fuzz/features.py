"""Semantic feedback: features of what a run reached, for the engines to reward.

Line coverage of the model says which code ran, not which *links of a chain* hold: a
touch that reaches a device BAR and one that reaches RAM run much the same lines, and
so do a claim that revoked a mapping and one that missed it. Each link should be
rewarded when it is first reached, not only the last one. So after every run the
trace is summarised as a set of short feature strings:

* ``op:outcome`` per line, with the value's class (``touch:=0000:00:03.0/bar0``,
  ``mmap:ok``, ``lseek:=num``, ``read:EPERM``);
* ``op:event`` per kernel event a line logged, with what an access reached
  (``touch:info:device``), a revoke (``__request_region:unmap``) or a skipped one;
* ``a>b`` for consecutive lines that succeeded (``open_devmem:ok>mmap:ok``): a chain;
* at the end, what the drain of the parked paths logged (``end:dup-filename``).

The atheris harness turns each new feature into coverage: :func:`hit` calls one of a
table of tiny functions, each instrumented separately, so libFuzzer sees a new edge when
a feature is first met (the issue's "table of feature branches"). The hypothesis engine
reports them with ``event()`` and maximises their number with ``target()``.
``IOMEMFUZZ_FEATURES=0`` turns the feedback off (to measure what it gives).
"""

from __future__ import annotations

import os
import re
import types
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from iomemfuzz.model.ioport import IORESOURCE_BUSY
from iomemfuzz.model.resource_check import covering, descendants

TABLE_SIZE = 4096
_NUMBER = re.compile(r"0x[0-9a-f]+|\b\d+\b")
_OFFSET = re.compile(r"\+0x[0-9a-f]+")

ENABLED = os.environ.get("IOMEMFUZZ_FEATURES", "0") != "0"


def _outcome(label: str) -> str:
    return _NUMBER.sub("num", _OFFSET.sub("", label))


def features(trace: Any, chains: bool = True) -> set[str]:
    """The feature strings of one run's trace (see the module docstring); ``chains``:
    with the ``a>b`` pairs."""
    out: set[str] = set()
    prev: str | None = None
    for step in trace.steps:
        if step.op is None:
            for event in step.events:
                if event.kind in ("hang", "null-deref", "double-free", "use-after-free",
                                  "dup-filename"):
                    out.add(f"end:{event.kind}")
            continue
        name = type(step.op).NAME
        label = _outcome(step.outcome.label) if step.outcome is not None else "-"
        here = f"{name}:{label}"
        out.add(here)
        for event in step.events:
            reached = event.get("target_kind")
            out.add(f"{name}:{event.kind}" + (f":{reached}" if reached else ""))
        if step.outcome is not None and step.outcome.status in ("ok", "blocked"):
            if prev is not None and chains:
                out.add(f"{prev}>{here}")
            prev = here
    return out


def state_features(kernel: Any) -> set[str]:
    """Features of the state itself, for the links a trace does not show: what each user
    mapping's live pages lie in now (low MiB, RAM, a device BAR, a bus window, a hole) and
    whether a busy node covers them; per busy node a caller holds, whether a live mapping
    still reaches it; where each pending kernel path is parked, alone and in pairs; per
    device, which of its sysfs states it is in. Cheap enough to take after every line."""
    out: set[str] = set()
    iomem = kernel.resources.iomem_resource
    mm = kernel.mm
    live: list[tuple[int, int]] = []
    for vma in [*mm.vmas, *mm.pending]:
        kind = _file_kind(vma.path)
        spans = list(vma.live_spans())
        if not vma.populated:
            out.add(f"vma:{kind}:unpopulated")
            continue
        if not spans:
            out.add(f"vma:{kind}:{_region(iomem, vma.pgoff << 12)}:dead")
            continue
        for lo, hi in spans:
            start, end = (vma.pgoff + lo) << 12, ((vma.pgoff + hi + 1) << 12) - 1
            live.append((start, end))
            busy = "busy" if _busy_over(iomem, start, end) else "free"
            out.add(f"vma:{kind}:{_region(iomem, start)}:{busy}"
                    + ("" if vma.linked else ":unlinked"))
    claims = getattr(kernel.observer, "claims", {})
    for node in _busy_claims(iomem):
        mapped = any(s <= node.end and node.start <= e for s, e in live)
        # How the node became busy: a driver's claim revokes what maps it, a struct a
        # caller inserted does not; the two are different links.
        claim = claims.get(node)
        how = claim.how if claim is not None else "boot"
        out.add(f"busy:{_region(iomem, node.start)}:{'mapped' if mapped else 'unmapped'}"
                f":{how}")
    parked = sorted({f"{t.name.split(' ')[0].split('(')[0]}@"
                     f"{getattr(t.parked, 'where', t.state)}"
                     for t in kernel.sched.pending()})
    out.update(f"task:{p}" for p in parked)
    out.update(f"tasks:{a}|{b}" for i, a in enumerate(parked) for b in parked[i + 1:])
    for dev in kernel.pci.devices():
        files = sum(1 for a in dev.res_attr if a is not None)
        out.add(f"dev:{int(dev.registered)}{int(dev.added)}:{files}")
    return out


def _file_kind(path: str) -> str:
    if path == "/dev/mem":
        return "devmem"
    for word in ("legacy_mem", "legacy_io", "resource", "/proc/bus/pci"):
        if word in path:
            return word.strip("/").replace("/", "-")
    return "other"


def _region(root: Any, addr: int) -> str:
    """What the innermost node holding ``addr`` is, in words."""
    path = covering(root, addr)
    name = (path[-1].name or "") if path else ""
    low = "low-" if addr < 0x100000 else ""
    return low + ("hole" if not name else node_kind(name))


def node_kind(name: str) -> str:
    """What a /proc/iomem node is, by its name: RAM, a device's BAR (named after the
    device, 0000:00:02.0), a bus window, or something else."""
    if name == "System RAM":
        return "ram"
    if len(name) == 12 and name[4] == ":" and name[7] == ":":
        return "bar"
    if name.startswith("PCI Bus"):
        return "window"
    return "other"


def _busy_over(root: Any, start: int, end: int) -> bool:
    return any(n.start <= end and start <= n.end for n in _busy_claims(root))


def _busy_claims(root: Any) -> list[Any]:
    """The busy nodes a caller claimed (not RAM's or firmware's reservations), found with
    the walk that ends on any pointer structure (a fuzzed Program can break the tree)."""
    return [n for n in descendants(root)
            if n.flags & IORESOURCE_BUSY and n.name not in ("System RAM", "Reserved")]


def _slot() -> None:
    return None


def _table() -> list[Callable[[], None]]:
    """``TABLE_SIZE`` distinct functions for :func:`hit`: copies of ``_slot`` with their
    own code objects, so each gets its own coverage counter when instrumented."""
    code = _slot.__code__
    return [types.FunctionType(code.replace(co_name=f"feature_{i}", co_firstlineno=i + 1),
                               {}) for i in range(TABLE_SIZE)]


class Feedback:
    """Turns features into coverage for atheris: one instrumented function per slot."""

    def __init__(self) -> None:
        from atheris import instrument_bytecode

        self.table = _table()
        for fn in self.table:
            fn.__code__ = instrument_bytecode.patch_code(fn.__code__, False, True)

    def hit(self, names: Iterable[str]) -> None:
        table = self.table
        for name in names:
            table[zlib.crc32(name.encode()) % TABLE_SIZE]()


def report_to_hypothesis(names: Iterable[str]) -> None:
    """``event()`` per feature and ``target()`` on how many there are (inside a test)."""
    from hypothesis import event, target

    names = sorted(names)
    for name in names:
        event(name)
    target(float(len(names)), label="semantic features")
