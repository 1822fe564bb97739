"""PCI sysfs resource files per kernel: D21-D23, Pali's two cases (B1, B2), the
pci_sysfs_init abort (B3), B23, and the derived races of removal and resize."""

from __future__ import annotations

import pytest
from iomemfuzz.model import errno
from iomemfuzz.model.event import (
    CRASH_KINDS,
    DOUBLE_FREE,
    DUP_FILENAME,
    INFO,
    INITCALL,
    USE_AFTER_FREE,
    WARN,
)
from iomemfuzz.model.pci import BarSpec
from pci_rig import HOST_ASYNC, Rig, dev, make_rig

D2, D3, D4 = "0000:00:02.0", "0000:00:03.0", "0000:00:04.0"
ASYNC = "0001:00:00.0"
ALL_FILES = ["resource0", "resource2", "resource2_wc", "resource4"]


def crashes(rig: Rig) -> list[str]:
    return [e.kind for e in rig.log.events if e.kind in CRASH_KINDS]


def dups(rig: Rig) -> list[str]:
    return [e.text for e in rig.events(DUP_FILENAME)]


def pci_sysfs_init_ret(rig: Rig) -> object:
    (ev,) = [e for e in rig.events(INITCALL) if e.get("name") == "pci_sysfs_init"]
    return ev.get("ret")


def remove(rig: Rig, name: str) -> object:
    d = rig.pci.find(name)
    assert d is not None
    return rig.run(rig.pci.remove(d))


# --- D21-D23 (spec §8.3) ----------------------------------------------------------------


def test_d21_files_methods_and_sizes():
    rig = make_rig("v6.1-deb", (dev(D2),))
    assert rig.resource_files(D2) == ALL_FILES
    d = rig.pci.find(D2)
    attrs = {a.name: a for a in (*d.res_attr, *d.res_attr_wc) if a is not None}
    assert sorted(attrs) == ALL_FILES
    r0, r2, r2wc, r4 = (attrs[n] for n in ALL_FILES)
    assert (r0.has_mmap, r0.wc, r0.has_rw, r0.size, r0.bar) == (True, False, False, 0x1000, 0)
    assert (r2.has_mmap, r2.wc, r2.size) == (True, False, 0x100000)
    assert (r2wc.has_mmap, r2wc.wc, r2wc.bar) == (True, True, 2)
    # I/O BAR on x86: port read/write, no mmap, so no f_mapping either.
    assert (r4.has_mmap, r4.has_rw, r4.f_mapping_at_open, r4.size) == (False, True, False, 0x20)
    assert all(a.mode == 0o600 and a.mapping is None and not a.freed for a in attrs.values())
    assert r0.f_mapping_at_open and r0.dev is d
    # The kernfs node carries the attribute it was created from.
    assert d.sd.children["resource2_wc"].priv is r2wc


def test_no_wc_file_without_pat():
    rig = make_rig("v6.1-deb:pat_enabled=0", (dev(D2),))
    assert rig.resource_files(D2) == ["resource0", "resource2", "resource4"]


def test_mapping_captured_at_create_on_5_13():
    rig = make_rig("v5.13", (dev(D2),), booted=False)
    sentinel = object()
    rig.pci.files.iomem_get_mapping = lambda: sentinel
    rig.boot.boot_fully()
    d = rig.pci.find(D2)
    assert d.res_attr[0].mapping is sentinel and d.res_attr_wc[2].mapping is sentinel
    assert d.res_attr[4].mapping is None
    assert not d.res_attr[0].f_mapping_at_open


def test_d22_second_create_unwinds_everything_and_leaves_stale_pointers():
    rig = make_rig("v6.1-deb", (dev(D2),))
    d = rig.pci.find(D2)
    before = [d.res_attr[0], d.res_attr[2], d.res_attr_wc[2], d.res_attr[4]]
    assert rig.run(rig.pci.files.pci_create_resource_files(d, "test")) == -errno.EEXIST
    assert dups(rig) == [f"sysfs: cannot create duplicate filename "
                         f"'/devices/pci0000:00/{D2}/resource0'"]
    assert rig.resource_files(D2) == []
    assert all(a.freed for a in before)
    assert [d.res_attr[0], d.res_attr[2], d.res_attr_wc[2], d.res_attr[4]] == before
    assert crashes(rig) == []
    # The stale pointers bite at removal: each is read after free and freed again.
    remove(rig, D2)
    assert crashes(rig) == [USE_AFTER_FREE, DOUBLE_FREE] * 4


def test_d23_v61_ordering_frees_the_losers_attribute_twice_during_the_unwind():
    rig = make_rig("v6.1", (dev(D2),))
    d = rig.pci.find(D2)
    winner = d.res_attr[0]
    assert rig.run(rig.pci.files.pci_create_resource_files(d, "test")) == -errno.EEXIST
    assert d.res_attr[0] is not winner and d.res_attr[0].freed
    assert not winner.freed  # leaked: nothing points at it any more
    assert crashes(rig) == [USE_AFTER_FREE, DOUBLE_FREE]
    (df,) = rig.events(DOUBLE_FREE)
    assert df.get("object") == "res_attr" and "'resource0'" in df.text


# --- B1: Pali case 1 --------------------------------------------------------------------


def b1(profile: str) -> Rig:
    """The async host probe stops in pci_bus_add_device; pci_sysfs_init (late) runs;
    then the probe finishes."""
    rig = make_rig(profile, (dev(D2), dev(ASYNC, host=HOST_ASYNC), dev(D3)), booted=False)
    assert rig.boot.boot_to("device") == 0
    probe = rig.boot.async_task("0001:00")
    assert probe is not None
    rig.step_until(probe, "before pci_create_sysfs_dev_files")
    assert rig.boot.boot_to("late") == 0
    assert rig.sched.drain() == []
    assert rig.boot.done
    return rig


def test_b1_v512_warning_on_config_only():
    rig = b1("v5.12")
    assert dups(rig) == [f"sysfs: cannot create duplicate filename "
                         f"'/devices/pci0001:00/{ASYNC}/config'"]
    assert rig.resource_files(ASYNC) == ALL_FILES and "config" in rig.files(ASYNC)
    assert crashes(rig) == []
    remove(rig, ASYNC)
    assert crashes(rig) == []


@pytest.mark.parametrize("profile", ["v5.13", "v5.15", "v6.1"])
def test_b1_513_to_612_immediate_double_free(profile):
    rig = b1(profile)
    assert dups(rig) == [f"sysfs: cannot create duplicate filename "
                         f"'/devices/pci0001:00/{ASYNC}/resource0'"]
    assert crashes(rig) == [USE_AFTER_FREE, DOUBLE_FREE]
    assert rig.resource_files(ASYNC) == []


def test_b1_61deb_no_files_then_double_free_at_removal():
    rig = b1("v6.1-deb")
    assert len(dups(rig)) == 1 and crashes(rig) == []
    assert rig.resource_files(ASYNC) == []
    assert rig.resource_files(D2) == ALL_FILES and rig.resource_files(D3) == ALL_FILES
    remove(rig, ASYNC)
    kinds = crashes(rig)
    assert kinds.count(DOUBLE_FREE) == 4 and kinds.count(USE_AFTER_FREE) == 4


def test_b1_61deb_partial_interleaving_leaves_a_subset():
    """pci_sysfs_init (the winner) has made resource0 only when the probe loses and
    unwinds: the winner's later files survive, resource0's pointer dangles."""
    rig = make_rig("v6.1-deb", (dev(D2), dev(ASYNC, host=HOST_ASYNC), dev(D3)),
                   booted=False)
    assert rig.boot.boot_to("device") == 0
    probe = rig.boot.async_task("0001:00")
    rig.step_until(probe, "before pci_create_sysfs_dev_files")
    rig.step_until(rig.boot.task, "pci_create_attr: before sysfs_create_bin_file",
                   f"{ASYNC} resource2")
    assert rig.sched.run(probe) == "done"
    rig.sched.drain()
    assert rig.resource_files(ASYNC) == ["resource2", "resource2_wc", "resource4"]
    d = rig.pci.find(ASYNC)
    assert d.res_attr[0].freed and not d.res_attr[2].freed
    assert pci_sysfs_init_ret(rig) == 0
    assert crashes(rig) == []
    remove(rig, ASYNC)
    assert crashes(rig) == [USE_AFTER_FREE, DOUBLE_FREE]


def test_b1_next2026_is_clean():
    rig = make_rig("next-2026", (dev(D2), dev(ASYNC, host=HOST_ASYNC), dev(D3)),
                   booted=False)
    assert rig.boot.boot_to("device") == 0
    probe = rig.boot.async_task("0001:00")
    rig.step_until(probe, "before pci_create_sysfs_dev_files")
    # Static files exist from device_add on, before pci_bus_add_device.
    assert rig.resource_files(ASYNC) == ALL_FILES
    assert rig.boot.boot_to("late") == 0
    rig.sched.drain()
    assert dups(rig) == [] and crashes(rig) == []
    for name in (D2, ASYNC, D3):
        assert rig.resource_files(name) == ALL_FILES
    remove(rig, ASYNC)
    assert crashes(rig) == [] and rig.pci.find(ASYNC) is None


# --- B2: Pali case 2 --------------------------------------------------------------------


def b2(profile: str) -> Rig:
    """pci_sysfs_init has set the flag; pciehp hot-adds a device (its own files); then
    pci_sysfs_init's walk reaches it."""
    rig = make_rig(profile, (dev(D2), dev(D3)), booted=False)
    assert rig.boot.boot_to("device") == 0
    rig.step_until(rig.boot.task, "pci_sysfs_init: sysfs_initialized = 1")
    assert rig.run(rig.pci.hot_add(dev(D4))) == 0
    assert rig.resource_files(D4) == ALL_FILES
    rig.sched.drain()
    assert rig.boot.done
    return rig


def test_b2_61deb_pci_sysfs_init_loses_and_strips_the_hot_added_device():
    rig = b2("v6.1-deb")
    assert dups(rig) == [f"sysfs: cannot create duplicate filename "
                         f"'/devices/pci0000:00/{D4}/resource0'"]
    assert pci_sysfs_init_ret(rig) == -errno.EEXIST
    assert rig.resource_files(D4) == [] and crashes(rig) == []
    remove(rig, D4)
    assert crashes(rig).count(DOUBLE_FREE) == 4


def test_b2_v512_loser_fails_on_config_and_touches_nothing():
    rig = b2("v5.12")
    assert pci_sysfs_init_ret(rig) == -errno.EEXIST
    assert rig.resource_files(D4) == ALL_FILES and crashes(rig) == []


def test_b2_v61_double_free_at_once():
    rig = b2("v6.1")
    assert crashes(rig) == [USE_AFTER_FREE, DOUBLE_FREE]


# --- B3: one failure aborts pci_sysfs_init ----------------------------------------------


def removal_during_pci_sysfs_init(profile: str) -> Rig:
    """D2 is removed (e.g. surprise hot-remove) while pci_sysfs_init is about to make
    its first file: kobj->sd is NULL, creation fails -EINVAL, the walk stops."""
    rig = make_rig(profile, (dev(D2), dev(D3), dev(D4)), booted=False)
    assert rig.boot.boot_to("device") == 0
    rig.step_until(rig.boot.task, "pci_sysfs_init: sysfs_initialized = 1")
    rig.step_until(rig.boot.task, "", D2)
    assert remove(rig, D2) == 0
    rig.sched.drain()
    return rig


@pytest.mark.parametrize(("profile", "crash"), [
    ("v6.1-deb", []),
    # v5.13..v6.1.2 stored res_attr[0] before creating the file, so the removal freed
    # pci_sysfs_init's new attribute under it: freed again on the failed create, then
    # read and freed once more by the unwind.
    ("v6.1", [DOUBLE_FREE, USE_AFTER_FREE, DOUBLE_FREE]),
    ("v5.13", [DOUBLE_FREE, USE_AFTER_FREE, DOUBLE_FREE]),
])
def test_b3_later_devices_get_no_resource_files(profile, crash):
    rig = removal_during_pci_sysfs_init(profile)
    assert pci_sysfs_init_ret(rig) == -errno.EINVAL
    assert "WARNING: sysfs_create_bin_file: kobj->sd is NULL" in [
        e.text for e in rig.events(WARN)]
    assert rig.resource_files(D3) == [] and rig.resource_files(D4) == []
    (abort,) = [e for e in rig.events(INFO) if e.get("pci_sysfs_init_abort")]
    assert abort.get("skipped") == (D3, D4)
    assert crashes(rig) == crash


def test_b3_v512_later_devices_lack_config_too():
    rig = removal_during_pci_sysfs_init("v5.12")
    assert pci_sysfs_init_ret(rig) == -errno.EINVAL
    assert "config" not in rig.files(D3) and rig.resource_files(D3) == []


def test_b3_does_not_exist_on_next2026():
    rig = make_rig("next-2026", (dev(D2), dev(D3), dev(D4)), booted=False)
    assert rig.boot.boot_to("device") == 0
    assert remove(rig, D2) == 0
    rig.boot.boot_fully()
    assert rig.resource_files(D3) == ALL_FILES and rig.resource_files(D4) == ALL_FILES
    assert crashes(rig) == []


def test_removal_mid_creation_double_frees_on_61deb():
    """[D] pci_sysfs_init has made D2's first three files when D2 is removed: removal
    frees them (pointers stale), pci_sysfs_init's next create fails and its unwind frees
    the same attributes again."""
    rig = make_rig("v6.1-deb", (dev(D2), dev(D3)), booted=False)
    assert rig.boot.boot_to("device") == 0
    rig.step_until(rig.boot.task, "pci_create_attr: before sysfs_create_bin_file",
                   f"{D2} resource4")
    assert remove(rig, D2) == 0
    rig.sched.drain()
    assert pci_sysfs_init_ret(rig) == -errno.EINVAL
    assert crashes(rig) == [USE_AFTER_FREE, DOUBLE_FREE] * 3


def test_removal_between_devices_restarts_the_walk():
    """[D] from lib/klist.c: D3 is removed while pci_sysfs_init sits between D3 and D4;
    pci_get_device(D3) cannot resume from a dead klist node and starts over at D2,
    whose files exist: -EEXIST, D2 loses its files, D4 never gets any."""
    rig = make_rig("v6.1-deb", (dev(D2), dev(D3), dev(D4)), booted=False)
    assert rig.boot.boot_to("device") == 0
    rig.step_until(rig.boot.task, "pci_sysfs_init: after device", D3)
    assert remove(rig, D3) == 0
    rig.sched.drain()
    assert dups(rig) == [f"sysfs: cannot create duplicate filename "
                         f"'/devices/pci0000:00/{D2}/resource0'"]
    assert rig.resource_files(D2) == [] and rig.resource_files(D4) == []


def test_resize_before_pci_sysfs_init_makes_files_it_then_duplicates():
    """[D] __resource_resize_store recreates the resource files without looking at
    sysfs_initialized; done by a usermode helper before late_initcall, pci_sysfs_init
    then fails on that device and every later one goes without files."""
    rig = make_rig("v6.1-deb", (dev(D2, rebar=(2,)), dev(D3)), booted=False)
    assert rig.boot.boot_to("rootfs") == 0 and rig.boot.userspace_ready
    d2 = rig.pci.find(D2)
    assert rig.run(rig.pci.files.resource_resize_store(d2, 2, 1)) == 0
    assert rig.resource_files(D2) == ALL_FILES
    rig.boot.boot_fully()
    assert pci_sysfs_init_ret(rig) == -errno.EEXIST
    assert rig.resource_files(D2) == [] and rig.resource_files(D3) == []


# --- BAR resize ---------------------------------------------------------------------------


def test_resize_recreates_files_with_the_new_size():
    rig = make_rig("v6.1-deb", (dev(D2, rebar=(2,)), dev(D3)))
    d2 = rig.pci.find(D2)
    assert "resource2_resize" in rig.files(D2)
    assert rig.run(rig.pci.files.resource_resize_store(d2, 2, 2)) == 0
    assert d2.bar_len(2) == 4 << 20 and d2.resource[2].parent is not None
    assert d2.res_attr[2].size == 4 << 20
    assert rig.resource_files(D2) == ALL_FILES and crashes(rig) == []


def test_resize_refused_with_a_driver_or_without_the_file():
    rig = make_rig("v6.1-deb", (dev(D2, rebar=(2,), driver="gpu"), dev(D3)))
    d2, d3 = rig.pci.find(D2), rig.pci.find(D3)
    assert rig.run(rig.pci.files.resource_resize_store(d2, 2, 1)) == -errno.EBUSY
    assert rig.run(rig.pci.files.resource_resize_store(d3, 2, 1)) == -errno.ENOENT
    old = make_rig("v5.15", (dev(D2, rebar=(2,)),))
    assert "resource2_resize" not in old.files(D2)
    assert old.run(old.pci.files.resource_resize_store(old.pci.find(D2), 2, 1)) == (
        -errno.ENOENT)


def test_resize_on_next2026_recreates_static_files():
    rig = make_rig("next-2026", (dev(D2, rebar=(2,)),))
    d2 = rig.pci.find(D2)
    assert rig.run(rig.pci.files.resource_resize_store(d2, 2, 1)) == 0
    assert rig.resource_files(D2) == ALL_FILES
    assert d2.sd.children["resource2"].priv.size == 2 << 20
    assert dups(rig) == [] and crashes(rig) == []


# --- B23 and static attributes --------------------------------------------------------------

VGA = dict(vga=True)


@pytest.mark.parametrize(("profile", "has_rom"), [
    ("v5.12", True),  # rom is dynamic, created after the FINAL fixup
    ("v5.13", False),  # static, visibility decided before the FINAL fixup (B23)
    ("v5.15", False),
    ("v6.1-deb", True),  # pci_fixup_video is a HEADER fixup since 66d28b21fe6b
    ("next-2026", True),
])
def test_b23_shadow_rom_file(profile, has_rom):
    rig = make_rig(profile, (dev(D2, **VGA),))
    assert ("rom" in rig.files(D2)) is has_rom
    d = rig.pci.find(D2)
    assert d.bar_len(6) == 0x20000  # the shadow ROM is there either way


def test_static_files_exist_from_device_add():
    rig = make_rig("v6.1-deb", (dev(D2, rom=0x10000),), booted=False)
    assert rig.boot.boot_to("subsys") == 0
    files = rig.files(D2)
    assert {"config", "rom", "vendor", "resource"} <= set(files)
    assert rig.resource_files(D2) == []  # dynamic: not before pci_sysfs_init
    nxt = make_rig("next-2026", (dev(D2),), booted=False)
    assert nxt.boot.boot_to("subsys") == 0
    assert nxt.resource_files(D2) == ALL_FILES


def test_legacy_files_on_have_pci_legacy():
    rig = make_rig("v6.1-deb:have_pci_legacy=1", (dev(D2),))
    bus = rig.pci.buses[(0, 0)]
    assert rig.sysfs.files(bus.class_sd) == ["legacy_io", "legacy_mem"]
    assert bus.legacy_mem.has_mmap and bus.legacy_io.f_mapping_at_open


def test_legacy_mem_mapping_typo_on_5_13():
    rig = make_rig("v5.13:have_pci_legacy=1", (dev(D2),), booted=False)
    sentinel = object()
    rig.pci.files.iomem_get_mapping = lambda: sentinel
    rig.boot.boot_fully()
    bus = rig.pci.buses[(0, 0)]
    assert bus.legacy_io.mapping is sentinel and bus.legacy_mem.mapping is None


def test_io_only_device_gets_no_wc_file():
    rig = make_rig("v6.1-deb", (dev(D2, bars=(BarSpec(0x100, io=True),)),))
    assert rig.resource_files(D2) == ["resource0"]
