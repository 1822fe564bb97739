"""The kernfs-like name space: duplicates, removal by name, directory removal, lifetimes."""

from __future__ import annotations

from iomemfuzz.model import errno
from iomemfuzz.model.event import DOUBLE_FREE, DUP_FILENAME, USE_AFTER_FREE, WARN, Log
from iomemfuzz.model.sysfs import Sysfs


def fresh() -> tuple[Sysfs, Log]:
    log = Log()
    return Sysfs(log), log


def kinds(log: Log) -> list[str]:
    return [e.kind for e in log.events]


def test_duplicate_name_is_eexist_with_the_kernel_warning_and_keeps_the_original():
    sysfs, log = fresh()
    d = sysfs.mkdir_p("/devices/pci0000:00/0000:00:02.0")
    first = sysfs.alloc_bin_attribute("resource0", bar=0)
    second = sysfs.alloc_bin_attribute("resource0", bar=0)
    assert sysfs.sysfs_create_bin_file(d, first) == 0
    assert sysfs.sysfs_create_bin_file(d, second) == -errno.EEXIST
    (warning,) = log.events
    assert warning.kind == DUP_FILENAME
    assert warning.text == ("sysfs: cannot create duplicate filename "
                            "'/devices/pci0000:00/0000:00:02.0/resource0'")
    assert warning.get("name") == "resource0"
    assert d.children["resource0"].priv is first


def test_remove_by_name_removes_whoever_owns_the_name_and_missing_is_silent():
    sysfs, log = fresh()
    d = sysfs.mkdir_p("/devices/x")
    mine = sysfs.alloc_bin_attribute("resource0")
    theirs = sysfs.alloc_bin_attribute("resource0")
    assert sysfs.sysfs_create_bin_file(d, theirs) == 0
    # Removing "my" attribute removes their node: the name is all that matters.
    sysfs.sysfs_remove_bin_file(d, mine)
    assert sysfs.files(d) == []
    assert sysfs.kernfs_remove_by_name(d, "resource0") == -errno.ENOENT
    sysfs.sysfs_remove_bin_file(d, mine)
    assert log.events == []


def test_deleted_kobject_warns():
    sysfs, log = fresh()
    attr = sysfs.alloc_bin_attribute("resource0")
    assert sysfs.sysfs_create_bin_file(None, attr) == -errno.EINVAL
    sysfs.sysfs_remove_bin_file(None, attr)
    assert kinds(log) == [WARN, WARN]
    assert log.events[1].text == "kernfs: can not remove 'resource0', no directory"


def test_create_in_a_removed_directory_is_enoent():
    sysfs, _log = fresh()
    d = sysfs.mkdir_p("/devices/x")
    sysfs.kernfs_remove(d)
    assert sysfs.sysfs_create_file(d, "vendor") == -errno.ENOENT


def test_directory_removal_takes_every_file_and_drains_each():
    sysfs, _log = fresh()
    drained: list[str] = []
    sysfs.drain_hook = lambda node: drained.append(node.path())
    d = sysfs.mkdir_p("/devices/pci0000:00/0000:00:02.0")
    sysfs.sysfs_create_file(d, "vendor")
    sysfs.sysfs_create_bin_file(d, sysfs.alloc_bin_attribute("resource0"))
    node = d.children["resource0"]
    sysfs.kernfs_remove(d)
    assert sorted(drained) == ["/devices/pci0000:00/0000:00:02.0/resource0",
                               "/devices/pci0000:00/0000:00:02.0/vendor"]
    assert node.removed and d.removed
    assert sysfs.lookup("/devices/pci0000:00/0000:00:02.0") is None
    assert sysfs.lookup("/devices/pci0000:00") is not None
    assert sysfs.files(d) == []


def test_double_free_and_use_after_free_are_events_named_by_kind():
    sysfs, log = fresh()
    attr = sysfs.alloc_bin_attribute("resource2_wc", kind="res_attr", bar=2, wc=True)
    sysfs.kfree(attr, "pci_remove_resource_files")
    assert attr.freed and log.events == []
    sysfs.use(attr, "sysfs_remove_bin_file")
    sysfs.kfree(attr, "pci_remove_resource_files")
    uaf, df = log.events
    assert (uaf.kind, df.kind) == (USE_AFTER_FREE, DOUBLE_FREE)
    assert uaf.get("object") == df.get("object") == "res_attr"
    assert df.text.startswith("BUG: KASAN: double-free in pci_remove_resource_files")
    sysfs.kfree(None, "x")  # kfree(NULL) is a no-op
    assert len(log.events) == 2


def test_removing_a_freed_attribute_reads_its_old_name():
    """A use after free still reads the name (nothing reuses freed memory in the model)."""
    sysfs, log = fresh()
    d = sysfs.mkdir_p("/devices/x")
    stale = sysfs.alloc_bin_attribute("resource0", kind="res_attr")
    sysfs.kfree(stale, "t")
    fresh_attr = sysfs.alloc_bin_attribute("resource0", kind="res_attr")
    sysfs.sysfs_create_bin_file(d, fresh_attr)
    sysfs.sysfs_remove_bin_file(d, stale)
    assert kinds(log) == [USE_AFTER_FREE]
    assert sysfs.files(d) == []


def test_bin_attribute_fields_and_walk():
    sysfs, _log = fresh()
    d = sysfs.mkdir_p("/devices/x")
    attr = sysfs.alloc_bin_attribute("resource4", kind="res_attr", size=0x20, bar=4,
                                     has_rw=True)
    assert (attr.name, attr.bar, attr.wc, attr.has_mmap, attr.mapping, attr.freed) == (
        "resource4", 4, False, False, None, False)
    sysfs.sysfs_create_bin_file(d, attr)
    assert [n.path() for n in sysfs.walk()] == ["/", "/devices", "/devices/x",
                                                 "/devices/x/resource4"]
    assert "resource4" in repr(attr)
