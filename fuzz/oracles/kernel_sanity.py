"""The modelled kernel never crashes: no NULL dereference, no double free, no use after
free, and no task waits forever.

Kernel promise: whatever sequence of legal system calls and driver events happens, the
kernel stays up. The model reports each crash it predicts as an event (it keeps running so
the rest of the Program still means something); this oracle turns those events into
violations whose kind names the crash and, where the model says, the kind of object
(``double-free-res-attr``), never its address.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from iomemfuzz.fuzz.finding import Violation
from iomemfuzz.model.event import CRASH_KINDS

NAME = "kernel-sanity"
FAMILY = "kernel sanity"
EVENTS_ONLY = True
STATELESS = True
_NORMAL = re.compile(r"[^a-z0-9]+")


def _kind(event_kind: str, obj: object) -> str:
    if not obj:
        return event_kind
    return f"{event_kind}-{_NORMAL.sub('-', str(obj).lower()).strip('-')}"


def check_step(kernel, step) -> Iterable[Violation]:
    # Almost every step logs nothing: answer () without creating a generator (this runs
    # after every step).
    return _step_events(kernel, step) if step.events else ()


def _step_events(kernel, step) -> Iterator[Violation]:
    for e in step.events:
        if e.kind in CRASH_KINDS:
            yield Violation(NAME, _kind(e.kind, e.get("object")), e.text,
                            str(e.get("catalog", "")))


def check_state(kernel) -> Iterator[Violation]:
    return iter(())
