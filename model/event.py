"""What the modelled kernel says and suffers: its log lines, unmaps, faults and crashes.

An Event is data, never an exception: the executor attaches the events a step produced
to that step, and oracles read them. Crashes the real kernel would suffer (NULL
dereference, double free, use after free, a task that can never run again) are events of
their own kinds so that a "kernel stays sane" oracle can report them while the model
keeps running deterministically.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Kinds. Oracles and signatures match on these strings, so they are part of the
# corpus format: rename one only together with every finding that names it.
WARN = "warn"  # pr_warn()/WARN() text without a more specific kind
RELEASE_NONEXISTENT = "release-nonexistent"  # __release_region found no match
RESOURCE_COLLISION = "resource-collision"  # devm_request_resource conflict message
EXPANDED_RESOURCE = "expanded-resource"  # insert_resource_expand_to_fit widened `new`
DUPLICATED_INSERTION = "duplicated-insertion"  # __insert_resource WARN
DUP_FILENAME = "dup-filename"  # sysfs: cannot create duplicate filename
UNMAP = "unmap"  # unmap_mapping_range removed PTEs of user mappings
REVOKE_SKIPPED = "revoke-skipped"  # revoke_iomem returned without unmapping
SIGBUS = "sigbus"  # a user access faulted on a revoked (pte_none) page
NULL_DEREF = "null-deref"  # the kernel would oops on a NULL pointer
DOUBLE_FREE = "double-free"  # kfree of an object already freed
USE_AFTER_FREE = "use-after-free"  # an object read after it was freed
HANG = "hang"  # a task waits for a wake-up that can never come
INITCALL = "initcall"  # an initcall ran (and what it returned)
INFO = "info"  # anything else worth narrating

CRASH_KINDS = frozenset({NULL_DEREF, DOUBLE_FREE, USE_AFTER_FREE, HANG})


@dataclass(frozen=True, slots=True, init=False)
class Event:
    """One thing the kernel logged or suffered. ``data`` holds sorted (key, value) pairs."""

    kind: str
    text: str
    data: tuple[tuple[str, object], ...] = ()

    def __init__(self, kind: str, text: str, data: tuple[tuple[str, object], ...] = ()
                 ) -> None:
        # The generated __init__ of a frozen dataclass sets each field with
        # object.__setattr__; the slots' own descriptors do the same (bypassing the
        # frozen __setattr__ the same way) for a third less, and every log line is one.
        _set_kind(self, kind)
        _set_text(self, text)
        _set_data(self, data)

    def get(self, key: str, default: object = None) -> object:
        for k, v in self.data:
            if k == key:
                return v
        return default


_set_kind = Event.kind.__set__  # type: ignore[attr-defined]
_set_text = Event.text.__set__  # type: ignore[attr-defined]
_set_data = Event.data.__set__  # type: ignore[attr-defined]


@dataclass(slots=True)
class Log:
    """The kernel log: an append-only list of Events the executor slices per step."""

    events: list[Event] = field(default_factory=list)

    def emit(self, kind: str, text: str, **data: object) -> Event:
        event = Event(kind, text, tuple(sorted(data.items())))
        self.events.append(event)
        return event

    def __len__(self) -> int:
        return len(self.events)

    def since(self, mark: int) -> tuple[Event, ...]:
        if mark >= len(self.events):
            return ()  # most steps log nothing: no slice to copy
        return tuple(self.events[mark:])
