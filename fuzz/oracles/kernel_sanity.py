"""The modelled kernel never crashes: no NULL dereference, no double free, no use after
free, and no task waits forever.

Kernel promise: whatever sequence of legal system calls and driver events happens, the
kernel stays up. The model reports each crash it predicts as an event (it keeps running so
the rest of the Program still means something); this oracle turns those events into
violations, titled the way the kernel's own report would be:

* kind: the crash and, where the model says, the kind of object (``double-free-res-attr``,
  ``use-after-free-pci-dev``), never its address;
* function: where the kernel crashes or sleeps (``__release_resource``,
  ``pci_remove_resource_files``, the wait a hung task sleeps in);
* mechanism: for a double free or a use after free, which path freed the object first
  (``freed-by-pci_create_resource_files``): the same crash site reached after a
  different first free is a different bug.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from iomemfuzz.fuzz.finding import Violation, slug
from iomemfuzz.model.event import CRASH_KINDS, DOUBLE_FREE, HANG, USE_AFTER_FREE

NAME = "kernel-sanity"
FAMILY = "kernel sanity"
EVENTS_ONLY = True
STATELESS = True


def _kind(event_kind: str, obj: object) -> str:
    # Kinds use '-' only ("double-free-res-attr"); functions keep their underscores.
    return f"{event_kind}-{slug(str(obj)).replace('_', '-')}" if obj else event_kind


def _function(event) -> str:
    """The crash site as a kernel function name: the event's ``function``, else the
    function part of ``where`` ("pci_bus_add_device: before ..." -> pci_bus_add_device)."""
    site = event.get("function") or event.get("where") or ""
    return slug(str(site).split(":", 1)[0].split(" (", 1)[0].strip()) if site else "unknown"


def _mechanism(event) -> str:
    if event.kind in (DOUBLE_FREE, USE_AFTER_FREE):
        return freed_in(str(event.get("freed_by") or ""))
    if event.kind == HANG:
        if event.get("lost_wakeup"):
            return "lost-wakeup"  # the wake-up came before the task slept (6.1 MUXED)
        holder = event.get("holder")
        return f"held-by-{slug(str(holder))}" if holder else ""
    return ""


def freed_in(freed_by: str) -> str:
    """The mechanism of a use of a freed object: where it was freed first. A free site
    written "fn (why)" (pci_remove_resource_files (unwind of pci_sysfs_init)) is told by
    its why; a bare one by the function."""
    if not freed_by:
        return ""
    why = freed_by.partition(" (")[2].rstrip(")") or freed_by
    return f"freed-in-{slug(why)}"


def check_step(kernel, step) -> Iterable[Violation]:
    # Almost every step logs nothing: answer () without creating a generator (this runs
    # after every step).
    return _step_events(kernel, step) if step.events else ()


def _step_events(kernel, step) -> Iterator[Violation]:
    for e in step.events:
        if e.kind in CRASH_KINDS:
            function = _function(e)
            catalog = str(e.get("catalog", ""))
            if e.kind == HANG and function == "__request_region":
                # A MUXED request waiting for a holder that keeps it (by design); a
                # waiter whose wake-up was lost sleeps on a free region: a bug (6.1).
                catalog = "BD8" if e.get("lost_wakeup") else "B28"
            elif (e.kind == USE_AFTER_FREE and e.get("object") == "pci_dev"
                  and function == "pci_bus_add_device"):
                # Only an unlocked host probe's bus-add outlives its device's removal.
                catalog = catalog or "BD1"
            yield Violation(NAME, _kind(e.kind, e.get("object")), e.text, catalog,
                            function, _mechanism(e))


def check_state(kernel) -> Iterator[Violation]:
    return iter(())


# What each kind and mechanism means, for the triage table (docs/FINDINGS.md).
KINDS = {
    "null-deref": "the kernel dereferences a NULL pointer",
    "double-free": "an object is freed twice",
    "use-after-free": "an object is used after it was freed",
    "hang": "a task sleeps forever",
}


def explain(kind: str, function: str, mechanism: str) -> str:
    base = next((text for prefix, text in KINDS.items() if kind.startswith(prefix)), kind)
    obj = ""
    if kind.startswith(("double-free-", "use-after-free-")):
        obj = kind.removeprefix("double-free-").removeprefix("use-after-free-")
    text = f"{base}{f' ({obj})' if obj else ''} in {function}"
    if mechanism.startswith("freed-in-"):
        text += f"; it was freed first by {mechanism.removeprefix('freed-in-')}".replace(
            "-", " ")
    elif mechanism == "lost-wakeup":
        text += "; the wake-up came between dropping the lock and sleeping"
    elif mechanism.startswith("held-by-"):
        text += f"; {mechanism.removeprefix('held-by-')} holds what it waits for"
    return text
