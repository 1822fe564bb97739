"""No sysfs or procfs name is ever created twice, and once the system is quiet every
present PCI device has exactly the files its BARs call for.

Kernel promise: a device's ``resourceN`` files appear once, whichever path (boot's
``pci_sysfs_init``, ``pci_bus_add_device``, a hot-add) gets there first, and stay until
the device goes (Documentation/ABI/testing/sysfs-bus-pci; spec §5). Concretely:

* ``duplicate-filename`` / ``duplicate-proc-entry``: sysfs's "cannot create duplicate
  filename" or procfs's "already registered" (B1, B2, B27);
* ``missing-resource-files`` / ``extra-resource-files``: a quiet, added device (or, on a
  static-attribute kernel, any registered device) lacks a ``resourceN`` for a non-empty
  BAR or a ``resourceN_wc`` for a prefetchable memory BAR under PAT, or has one it
  should not (B1 on 6.1-deb, B3). Before ``pci_sysfs_init`` no dynamic file is due;
* ``missing-rom-file``: a device whose ROM resource has a length has no ``rom`` (B23);
* ``dangling-res-attr``: a present device's resource-attribute pointer refers to a freed
  attribute — the double free its removal will do (B1 on 6.1-deb, spec §5.2);
* ``files-after-removal``: a file whose attribute belongs to a removed device.

A double free or a use after free of an attribute is the kernel-sanity oracle's
(``double-free-res-attr``), not repeated here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from iomemfuzz.fuzz.finding import Violation
from iomemfuzz.model.event import DUP_FILENAME
from iomemfuzz.model.pci_sysfs import PCI_ROM_RESOURCE, resource_file_names
from iomemfuzz.model.sched import DONE
from iomemfuzz.model.sysfs import BinAttribute

NAME = "duplicate-attributes"
FAMILY = "duplicate attributes"


def _quiet(kernel) -> bool:
    """No kernel path is in flight (a parked task may be mid-way through creating or
    removing files, which is not an inconsistency yet)."""
    return all(t.state == DONE for t in kernel.sched.tasks)


def check_step(kernel, step) -> Iterable[Violation]:
    # Almost every step logs nothing: answer () without creating a generator (this runs
    # after every step).
    return _step_events(kernel, step) if step.events else ()


def _step_events(kernel, step) -> Iterator[Violation]:
    for e in step.events:
        if e.kind == DUP_FILENAME:
            if e.get("fs") == "procfs":
                yield Violation(NAME, "duplicate-proc-entry", e.text, "B27")
            else:
                yield Violation(NAME, "duplicate-filename", e.text, "B1")


def check_state(kernel) -> Iterator[Violation]:
    if not _quiet(kernel):
        return
    profile = kernel.profile
    pci = kernel.pci
    files_due = profile.static_resource_files or pci.files.sysfs_initialized
    for dev in pci.devices():
        if not dev.registered:
            continue
        for slots in (dev.res_attr, dev.res_attr_wc):
            for attr in slots:
                if attr is not None and attr.freed:
                    yield Violation(NAME, "dangling-res-attr",
                                    f"{dev.name}: {attr.name} points at a freed attribute",
                                    "B1")
                    break
        present = set(kernel.sysfs.files(dev.sd))
        if profile.static_resource_files or dev.added:
            want = set(resource_file_names(dev, profile.pat_enabled)) if files_due else set()
            have = {f for f in present if f.startswith("resource") and f != "resource"
                    and not f.endswith("_resize")}
            if want - have:
                yield Violation(NAME, "missing-resource-files",
                                f"{dev.name} lacks {', '.join(sorted(want - have))}", "B3")
            if have - want:
                yield Violation(NAME, "extra-resource-files",
                                f"{dev.name} has {', '.join(sorted(have - want))}")
            rom_due = profile.static_resource_files or not profile.dynamic_config_attrs \
                or files_due
            if rom_due and dev.bar_len(PCI_ROM_RESOURCE) and "rom" not in present:
                yield Violation(NAME, "missing-rom-file", f"{dev.name} has a ROM but no rom",
                                "B23")
    if not _any_file_of_removed_device(kernel.sysfs.root):
        return
    # Only now the ordered walk: which file is reported first must not depend on the
    # order the quick scan happened to visit.
    for node in kernel.sysfs.walk():
        if _of_removed_device(node):
            yield Violation(NAME, "files-after-removal",
                            f"{node.path()} belongs to a removed device")


def _of_removed_device(node) -> bool:
    attr = node.priv
    return (isinstance(attr, BinAttribute) and attr.dev is not None
            and not getattr(attr.dev, "registered", True))


def _any_file_of_removed_device(root) -> bool:
    """Does any node reachable from ``root`` belong to a removed device? The nodes of
    ``Sysfs.walk`` in no particular order: no sorting and no generator per directory,
    which matters because thorough mode asks after every step and the answer is almost
    always no."""
    stack = [root]
    while stack:
        node = stack.pop()
        # _of_removed_device(), inlined: directories (no priv) cost one test.
        attr = node.priv
        if (attr is not None and isinstance(attr, BinAttribute) and attr.dev is not None
                and not getattr(attr.dev, "registered", True)):
            return True
        stack.extend(node.children.values())
    return False
