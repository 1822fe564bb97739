"""No sysfs or procfs name is ever created twice, and once the system is quiet every
present PCI device has exactly the files its BARs call for.

Kernel promise: a device's ``resourceN`` files appear once, whichever path (boot's
``pci_sysfs_init``, ``pci_bus_add_device``, a hot-add) gets there first, and stay until
the device goes (Documentation/ABI/testing/sysfs-bus-pci; spec §5). Concretely:

* ``duplicate-filename`` / ``duplicate-proc-entry``: sysfs's "cannot create duplicate
  filename" or procfs's "already registered" (B1, B2, B27, BD1-BD3);
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

from iomemfuzz.fuzz.finding import Violation, slug
from iomemfuzz.fuzz.ledger import ledger
from iomemfuzz.fuzz.oracles.kernel_sanity import freed_in
from iomemfuzz.model.event import DUP_FILENAME
from iomemfuzz.model.pci_sysfs import PCI_ROM_RESOURCE, resource_file_names
from iomemfuzz.model.sysfs import BinAttribute

NAME = "duplicate-attributes"
FAMILY = "duplicate attributes"
EVENTS_ONLY = True


def _quiet(kernel) -> bool:
    """No kernel path is in flight (a parked task may be mid-way through creating or
    removing files, which is not an inconsistency yet)."""
    # Every task has finished (DONE), counted by the scheduler.
    sched = kernel.sched
    return sched.finished == len(sched.tasks)


def check_step(kernel, step) -> Iterable[Violation]:
    # Almost every step logs nothing: answer () without creating a generator (this runs
    # after every step).
    return _step_events(kernel, step) if step.events else ()


# Which catalog entry a duplicate name is an instance of, by the two paths that met.
_SYSFS_MET = {
    "pci_sysfs_init-then-pci_bus_add_device": "B1",
    "pci_bus_add_device-then-pci_sysfs_init": "B2",
    # A rescan bus-adds the device an unlocked host probe is still adding.
    "pci_bus_add_device-then-pci_bus_add_device": "BD1",
    # The walk restarted after a removal and met a device it had done.
    "pci_sysfs_init-then-pci_sysfs_init": "BD2",
    "resource_resize_store-then-pci_sysfs_init": "BD3",
}
_PROCFS_MET = {
    "pci_proc_init-then-pci_bus_add_device": "B27",
    "pci_bus_add_device-then-pci_proc_init": "B27",
    # Two bus-adds of one device (or of a freed one and its rescanned successor).
    "pci_bus_add_device-then-pci_bus_add_device": "BD1",
}


def _step_events(kernel, step) -> Iterator[Violation]:
    for e in step.events:
        if e.kind == DUP_FILENAME:
            met = _met(e)
            if e.get("fs") == "procfs":
                yield Violation(NAME, "duplicate-proc-entry", e.text, _PROCFS_MET.get(met, ""),
                                "pci_proc_attach_device", met)
            else:
                yield Violation(NAME, "duplicate-filename", e.text, _SYSFS_MET.get(met, ""),
                                _creator(str(e.get("name", ""))), met)


def _met(event) -> str:
    """Which two kernel paths met: the one that made the name first, then the loser."""
    first, then = event.get("existing_by") or "unknown", event.get("by") or "unknown"
    return f"{slug(str(first))}-then-{slug(str(then))}"


def _creator(name: str) -> str:
    """The PCI function whose sysfs_create_bin_file met the existing name."""
    if name.startswith("resource"):
        return "pci_create_attr"
    if name.startswith("legacy_"):
        return "pci_create_legacy_files"
    return "pci_create_sysfs_dev_files"


def check_state(kernel) -> tuple[Violation, ...]:
    """state_violations(), answered from the last check on this kernel when none of its
    inputs changed since: thorough mode asks after every step, and most steps create or
    remove no file and change no device. The memo lives on the kernel
    (the ledger's ``memo``), so it dies with it."""
    if not _quiet(kernel):
        return ()
    # What it reads changes only in two ways. The PCI model creates and removes files,
    # frees attributes and changes devices only from kernel paths, each inside a
    # scheduler slice (boot included; tests/unit/test_oracle_memo.py checks that nothing
    # moves outside one). A BAR is also a tree node a Program's driver line can move,
    # and callers change the trees only through the Kernel, which tells the ledger (its
    # tree clock). With both counts unchanged, the last answer still holds.
    book = ledger(kernel)
    counts = (kernel.sched.slices_run, book.tree_clock)
    memo = book.memo.get(NAME)
    if memo is not None and memo[0] == counts:
        return memo[1]
    found = tuple(state_violations(kernel))
    book.memo[NAME] = (counts, found)
    return found


def state_violations(kernel) -> Iterator[Violation]:
    """The whole-state check itself, without the memo."""
    if not _quiet(kernel):
        return iter(())
    return _violations(kernel, _file_owners(kernel.sysfs.root))


def _violations(kernel, owners: tuple) -> Iterator[Violation]:
    """The check of a quiet kernel; ``owners`` is _file_owners() of its sysfs."""
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
                                    f"{dev.name}: {attr.name} points at a freed attribute "
                                    f"(freed in {attr.freed_by})", "B1",
                                    "pci_remove_resource_files", freed_in(attr.freed_by))
                    break
        sd = dev.sd
        # sysfs.files(sd) as a set: the names of a live directory (no need to sort them).
        present = set(sd.children) if sd is not None and not sd.removed else set()
        if profile.static_resource_files or dev.added:
            want = set(resource_file_names(dev, profile.pat_enabled)) if files_due else set()
            have = {f for f in present if f.startswith("resource") and f != "resource"
                    and not f.endswith("_resize")}
            if want - have:
                function, why, catalog = _why_missing(pci, dev)
                yield Violation(NAME, "missing-resource-files",
                                f"{dev.name} lacks {', '.join(sorted(want - have))} ({why})",
                                catalog, function, why)
            if have - want:
                yield Violation(NAME, "extra-resource-files",
                                f"{dev.name} has {', '.join(sorted(have - want))}", "",
                                "pci_create_resource_files", "stale-bar")
            rom_due = profile.static_resource_files or not profile.dynamic_config_attrs \
                or files_due
            if rom_due and dev.bar_len(PCI_ROM_RESOURCE) and "rom" not in present:
                yield Violation(NAME, "missing-rom-file", f"{dev.name} has a ROM but no rom",
                                "B23", "pci_dev_rom_attr_is_visible",
                                "visibility-before-fixup"
                                if profile.rom_visibility_at_device_add else "not-created")
    # A file of a removed device is rare: ask the owners first, then walk in order (which
    # file is reported first must not depend on the order _file_owners visited).
    if all(getattr(dev, "registered", True) for dev in owners):
        return
    for node in kernel.sysfs.walk():
        if _of_removed_device(node):
            yield Violation(NAME, "files-after-removal",
                            f"{node.path()} belongs to a removed device", "",
                            "pci_stop_and_remove_bus_device", "left-behind")


def _why_missing(pci, dev) -> tuple[str, str, str]:
    """(function, mechanism, catalog) of a device lacking resource files: an unwind
    removed them by name (its slots point at what it freed), pci_sysfs_init stopped at an
    earlier device (B3), or nothing ever created them."""
    for attr in (*dev.res_attr, *dev.res_attr_wc):
        if attr is not None and attr.freed:
            return "pci_remove_resource_files", freed_in(attr.freed_by) or "freed", "B1"
    if dev.name in pci.files.init_skipped:
        return "pci_sysfs_init", "stopped-at-earlier-device", "B3"
    return "pci_create_sysfs_dev_files", "never-created", ""


def _of_removed_device(node) -> bool:
    attr = node.priv
    return (isinstance(attr, BinAttribute) and attr.dev is not None
            and not getattr(attr.dev, "registered", True))


def _file_owners(root) -> tuple:
    """The distinct owners (``attr.dev``) of the attributes of the nodes reachable from
    ``root``, the objects whose ``registered`` decides files-after-removal."""
    owners: dict[int, object] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        attr = node.priv
        if attr is not None and isinstance(attr, BinAttribute) and attr.dev is not None:
            owners[id(attr.dev)] = attr.dev
        if node.children:  # most nodes are files
            stack.extend(node.children.values())
    return tuple(owners.values())


# What each kind and mechanism means, for the triage table (docs/FINDINGS.md).
KINDS = {
    "duplicate-filename": "a sysfs file is created twice",
    "duplicate-proc-entry": "a /proc/bus/pci entry is registered twice",
    "missing-resource-files": "a device lacks resource files its BARs call for",
    "extra-resource-files": "a device has resource files for BARs it no longer has",
    "missing-rom-file": "a device with a ROM has no rom file",
    "dangling-res-attr": "a device keeps a pointer to a freed resource attribute",
    "files-after-removal": "files of a removed device are left behind",
}
WHY = {
    "stopped-at-earlier-device": "pci_sysfs_init stopped at an earlier device's error",
    "never-created": "nothing created them",
    "visibility-before-fixup": "visibility was decided before the fixup set the ROM shadow",
    "stale-bar": "the BAR changed after the files were made",
    "left-behind": "removal did not take them",
}


def explain(kind: str, function: str, mechanism: str) -> str:
    text = f"{KINDS.get(kind, kind)} ({function})"
    if "-then-" in mechanism:
        first, then = mechanism.split("-then-", 1)
        return f"{text}: {first} made it first, then {then} tried again"
    if mechanism.startswith("freed-in-"):
        return f"{text}: freed by {mechanism.removeprefix('freed-in-').replace('-', ' ')}"
    return f"{text}: {WHY[mechanism]}" if mechanism in WHY else text
