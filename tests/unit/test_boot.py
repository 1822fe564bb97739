"""Boot: initcall order, boot_to, when userspace may act, async host probes, blocking."""

from __future__ import annotations

import pytest
from iomemfuzz.model import errno
from iomemfuzz.model.boot import ALL_LEVELS, INITCALLS, level_index
from iomemfuzz.model.event import INITCALL
from iomemfuzz.model.sched import BLOCKED, DONE, NEW, Point, mutex_lock, mutex_unlock
from pci_rig import HOST_ASYNC, dev, make_rig

D2 = "0000:00:02.0"
ASYNC = "0001:00:00.0"


def test_levels_are_in_kernel_order_and_the_table_follows_them():
    assert ALL_LEVELS == ("pure", "core", "postcore", "arch", "subsys", "fs", "rootfs",
                          "device", "late", "done")
    positions = [level_index(level) for level, _name, _m in INITCALLS]
    assert positions == sorted(positions)
    with pytest.raises(ValueError):
        level_index("module")


def test_booted_rig_ran_every_initcall_once_in_order():
    rig = make_rig("v6.1-deb", (dev(D2),))
    assert rig.boot.done and rig.boot.level == "done" and rig.boot.userspace_ready
    names = [e.get("name") for e in rig.events(INITCALL)]
    assert names == [name for _level, name, _m in INITCALLS]
    assert all(e.get("ret") == 0 for e in rig.events(INITCALL))
    assert rig.pci.files.sysfs_initialized and rig.pci.proc.proc_initialized
    assert rig.pci.state.pciehp_ready


def test_boot_to_stops_after_the_named_level():
    rig = make_rig("v6.1-deb", (dev(D2),), booted=False)
    assert rig.boot.level is None and not rig.boot.userspace_ready
    assert rig.boot.boot_to("subsys") == 0
    assert rig.boot.level == "subsys" and rig.pci.find(D2).added
    assert rig.boot.current == "iomem_init_inode"  # parked before fs's first initcall
    assert rig.boot.boot_to("fs") == 0 and not rig.boot.userspace_ready
    assert rig.boot.boot_to("rootfs") == 0 and rig.boot.userspace_ready
    assert not rig.pci.files.sysfs_initialized
    assert rig.boot.boot_to("arch") == 0  # already past: nothing to do
    assert rig.boot.boot_to("late") == 0 and rig.pci.files.sysfs_initialized
    assert not rig.boot.done
    assert rig.boot.boot_to("done") == 0 and rig.boot.done


def test_early_userspace_profile():
    rig = make_rig("test-early-userspace", (), booted=False)
    assert rig.boot.userspace_ready


def test_boot_blocks_on_a_rescan_lock_held_by_another_task():
    rig = make_rig("v6.1-deb", (dev(D2),), booted=False)
    lock = rig.pci.rescan_remove_lock

    def holder():
        yield from mutex_lock(rig.sched, lock, "holder")
        yield Point("holding the rescan lock")
        mutex_unlock(rig.sched, lock)

    h = rig.sched.spawn(holder(), "holder")
    rig.sched.step(h)
    assert rig.boot.boot_to("subsys") == -errno.EAGAIN
    assert rig.boot.task.state == BLOCKED
    assert "acpi_pci_root_add: mutex_lock(pci_rescan_remove_lock)" in rig.boot.task.describe()
    rig.sched.run(h)
    assert rig.boot.boot_to("subsys") == 0


def test_async_host_probe_is_a_task_boot_waits_for_at_the_end():
    rig = make_rig("v6.1-deb", (dev(D2), dev(ASYNC, host=HOST_ASYNC)), booted=False)
    assert rig.boot.boot_to("device") == 0
    probe = rig.boot.async_task("0001:00")
    assert probe is not None and probe.state == NEW
    assert rig.pci.find(ASYNC) is None  # nothing ran it yet
    assert rig.boot.boot_to("late") == 0
    assert rig.boot.boot_to("done") == -errno.EAGAIN  # async_synchronize_full waits
    assert "async_synchronize_full" in rig.boot.task.describe()
    assert rig.sched.drain() == []
    assert probe.state == DONE and rig.boot.done
    assert rig.boot.async_task("0001:00") is None
    assert rig.resource_files(ASYNC) == ["resource0", "resource2", "resource2_wc",
                                         "resource4"]


def test_boot_fully_is_cheap_and_deterministic():
    specs = tuple(dev(f"0000:00:{slot:02x}.0", driver="nic" if slot % 2 else None)
                  for slot in range(1, 9))
    a = make_rig("v6.1-deb", specs)
    b = make_rig("v6.1-deb", specs)
    assert [(e.kind, e.text) for e in a.log.events] == [(e.kind, e.text) for e in b.log.events]
    assert a.pci.describe() == b.pci.describe()
