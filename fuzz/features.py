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

TABLE_SIZE = 4096
_NUMBER = re.compile(r"0x[0-9a-f]+|\b\d+\b")
_OFFSET = re.compile(r"\+0x[0-9a-f]+")

ENABLED = os.environ.get("IOMEMFUZZ_FEATURES", "0") != "0"


def _outcome(label: str) -> str:
    return _NUMBER.sub("num", _OFFSET.sub("", label))


def features(trace: Any) -> set[str]:
    """The feature strings of one run's trace (see the module docstring)."""
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
            if prev is not None:
                out.add(f"{prev}>{here}")
            prev = here
    return out


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
