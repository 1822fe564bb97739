"""lseek(fd, off, SEEK_END) on a PCI resource file lands at the file's size plus off.

Kernel promise (VFS): SEEK_END is relative to the size the file reports (``st_size``,
the BAR length for ``resourceN``). Since 636b21b50152 (v5.12) the open file's f_mapping
is the iomem address space, whose host inode has size 0, so generic_file_llseek puts
SEEK_END at 0 + off (B11b) until 0fedefd4c4e3 + 24de09c16f97 (v6.7) gave the files a
fixed-size llseek. Kind: ``seek-end-not-size``, in ``generic_file_llseek``, because
``iomem-inode-has-no-size``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from iomemfuzz.fuzz.finding import Violation

NAME = "resource-file"
FAMILY = "mapping survival"
EVENTS_ONLY = True
STATELESS = True


def check_state(kernel) -> Iterator[Violation]:
    """Judged on what each lseek did (events)."""
    return iter(())


def check_step(kernel, step) -> Iterable[Violation]:
    # Almost every step logs nothing: answer () without creating a generator (this runs
    # after every step).
    return _step_events(kernel, step) if step.events else ()


def _step_events(kernel, step) -> Iterator[Violation]:
    for event in step.events:
        end = event.get("seek_end")
        if end is None:
            continue
        size = event.get("size")
        if end != size:
            yield Violation(
                NAME, "seek-end-not-size",
                f"lseek(SEEK_END) on {event.get('path')} is relative to {end:#x}, but the "
                f"file is {size:#x} bytes", "B11b", "generic_file_llseek",
                "iomem-inode-has-no-size")


KINDS = {"seek-end-not-size": "lseek(SEEK_END) on a resource file ignores its size"}


def explain(kind: str, function: str, mechanism: str) -> str:
    return (f"{KINDS.get(kind, kind)}: {function} sizes the file by the iomem inode, which "
            "has size 0")
