"""PCI core: device specs, BAR placement, driver claims, removal, rescan and hotplug."""

from __future__ import annotations

import pytest
from iomemfuzz.model import errno
from iomemfuzz.model.event import CRASH_KINDS, DUP_FILENAME, USE_AFTER_FREE
from iomemfuzz.model.ioport import (
    IORESOURCE_BUSY,
    IORESOURCE_MEM_64,
    IORESOURCE_PREFETCH,
    IORESOURCE_UNSET,
)
from iomemfuzz.model.pci import (
    BarSpec,
    PciDeviceSpec,
    PciDriver,
    bar_specs,
    parse_bdf,
    pci_name,
)
from iomemfuzz.model.resource_check import preorder
from pci_rig import ASYNC_MEM, HOST_ASYNC, MEM32, dev, make_rig

D2, D3, D4 = "0000:00:02.0", "0000:00:03.0", "0000:00:04.0"
FILES = ["resource0", "resource2", "resource2_wc", "resource4"]


def busy(rig) -> list[tuple[int, int, str]]:
    return [(n.start, n.end, n.name)
            for root in (rig.tree.iomem_resource, rig.tree.ioport_resource)
            for n, _d in preorder(root) if n.flags & IORESOURCE_BUSY]


# --- specs --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["mem:0x1000", "mem:0x100000:pref", "mem:0x4000:pref:64",
                                  "io:0x20", "mem:0x1000@0xfe000000", "mem:0x10:64"])
def test_bar_text_round_trips(text):
    assert BarSpec.parse(text).text() == text


@pytest.mark.parametrize("text", ["rom:0x1000", "mem", "mem:0x1800", "io:0x20:pref",
                                  "mem:0x1000:wc", "mem:0x1000@0x800", "mem:0x1000:64:64"])
def test_bad_bar_text_is_rejected(text):
    with pytest.raises(ValueError):
        BarSpec.parse(text)


def test_bdf_parsing_and_names():
    assert parse_bdf("00:02.0") == (0, 0, 0x10)
    assert parse_bdf("0001:00:1f.7") == (1, 0, 0xFF)
    assert pci_name(*parse_bdf("1:0:3.1")) == "0001:00:03.1"
    for bad in ("00:20.0", "00:02", "zz:00.0", "00:02.8"):
        with pytest.raises(ValueError):
            parse_bdf(bad)
    spec = PciDeviceSpec("00:02.0", bar_specs({0: "mem:0x1000", 2: "io:0x20"}))
    assert spec.name == D2 and spec.bar(1) is None and spec.bar(2).io
    with pytest.raises(ValueError):
        PciDeviceSpec("00:02.0", host="dt")


# --- BAR placement --------------------------------------------------------------------------


def test_bars_take_the_lowest_free_aligned_fit_largest_first():
    rig = make_rig("v6.1-deb", (dev(D2), dev(D3)))
    d2, d3 = rig.pci.find(D2), rig.pci.find(D3)
    base = MEM32[0]
    # 1 MiB BARs first (D2 then D3), then the 4 KiB ones after them.
    assert (d2.resource[2].start, d3.resource[2].start) == (base, base + 0x100000)
    assert (d2.resource[0].start, d3.resource[0].start) == (base + 0x200000,
                                                            base + 0x201000)
    # I/O above PCIBIOS_MIN_IO, outside the ISA alias ranges.
    assert (d2.resource[4].start, d3.resource[4].start) == (0x1000, 0x1020)
    for d in (d2, d3):
        for i in (0, 2, 4):
            r = d.resource[i]
            assert r.parent is not None and not r.flags & (IORESOURCE_UNSET | IORESOURCE_BUSY)
            assert r.start % d.bar_len(i) == 0 and r.name == d.name
    assert d2.resource[2].flags & IORESOURCE_PREFETCH


def test_64bit_bar_goes_above_4g():
    rig = make_rig("v6.1-deb", (dev(D2, bars=(BarSpec(0x4000, prefetch=True, is64=True),)),))
    r = rig.pci.find(D2).resource[0]
    assert r.start >= 1 << 32 and r.flags & IORESOURCE_MEM_64


def test_io_bar_skips_isa_aliases():
    bars = tuple(BarSpec(0x100, io=True) for _ in range(2))
    rig = make_rig("v6.1-deb", (dev(D2, bars=bars),))
    d = rig.pci.find(D2)
    assert [d.resource[0].start, d.resource[1].start] == [0x1000, 0x1400]


def test_firmware_address_is_claimed_at_subsys_and_conflicts_are_reassigned():
    fw = MEM32[0] + 0x10_0000
    rig = make_rig("v6.1-deb", (dev(D2, bars=(BarSpec(0x1000, addr=fw),)),
                                dev(D3, bars=(BarSpec(0x1000, addr=fw),))), booted=False)
    assert rig.boot.boot_to("subsys") == 0
    d2, d3 = rig.pci.find(D2), rig.pci.find(D3)
    assert d2.resource[0].start == fw and d2.resource[0].parent is not None
    assert d3.resource[0].flags & IORESOURCE_UNSET and d3.resource[0].parent is None
    assert rig.boot.boot_to("fs") == 0
    assert d3.resource[0].start == MEM32[0] and d3.resource[0].parent is not None


def test_bar_that_does_not_fit_stays_unset_and_probe_refuses():
    huge = (BarSpec(1 << 30),)  # 1 GiB does not fit the 512 MiB window below 4 GiB
    rig = make_rig("v6.1-deb", (dev(D2, bars=huge, driver="big"),))
    d = rig.pci.find(D2)
    assert d.resource[0].flags & IORESOURCE_UNSET and d.driver is None
    assert rig.resource_files(D2) == ["resource0"]  # the length is still known


# --- drivers and claims --------------------------------------------------------------------


def test_builtin_driver_claims_every_bar_as_busy_children():
    rig = make_rig("v6.1-deb", (dev(D2, driver="nic"),))
    d = rig.pci.find(D2)
    assert d.driver == PciDriver("nic", True)
    claims = busy(rig)
    assert sorted(claims) == sorted((d.resource[i].start, d.resource[i].end, "nic")
                                    for i in (0, 2, 4))
    for i in (0, 2, 4):
        assert d.resource[i].child is not None and d.resource[i].child.name == "nic"


def test_claim_runs_the_revoke_hook_for_memory_bars_only():
    rig = make_rig("v6.1-deb", (dev(D2),))
    revoked = []
    rig.tree.revoke_hook = lambda res: revoked.append((res.start, res.name))
    d = rig.pci.find(D2)
    assert rig.run(rig.pci.bind(d, PciDriver("nic"))) == 0
    assert sorted(revoked) == sorted((d.resource[i].start, "nic") for i in (0, 2))


def test_non_claiming_driver_leaves_no_busy_region():
    """B13: bound, but nothing is busy, so nothing is exclusive or revoked."""
    rig = make_rig("v6.1-deb", (dev(D2, driver="i915-old", claims=False),))
    assert rig.pci.find(D2).driver.name == "i915-old" and busy(rig) == []


def test_unbind_releases_without_revoking_and_bind_again():
    rig = make_rig("v6.1-deb", (dev(D2, driver="nic"),))
    d = rig.pci.find(D2)
    revoked = []
    rig.tree.revoke_hook = lambda res: revoked.append(res)
    assert rig.run(rig.pci.unbind(d)) == 0
    assert d.driver is None and busy(rig) == [] and revoked == []
    assert rig.run(rig.pci.unbind(d)) == -errno.ENODEV
    assert rig.run(rig.pci.bind(d, PciDriver("vfio-pci"))) == 0
    assert rig.run(rig.pci.bind(d, PciDriver("other"))) == -errno.EBUSY
    assert {name for *_r, name in busy(rig)} == {"vfio-pci"}


def test_probe_fails_if_a_bar_is_busy_and_releases_what_it_took():
    rig = make_rig("v6.1-deb", (dev(D2),))
    d = rig.pci.find(D2)
    bar2 = d.resource[2]
    held = rig.tree._request_region(rig.tree.iomem_resource, bar2.start, 0x1000, "user", 0)
    assert held is not None
    assert rig.run(rig.pci.bind(d, PciDriver("nic"))) == -errno.EBUSY
    assert d.driver is None and busy(rig) == [(bar2.start, bar2.start + 0xFFF, "user")]


def test_probe_waits_for_the_device_lock():
    rig = make_rig("v6.1-deb", (dev(D2),))
    d = rig.pci.find(D2)
    a = rig.sched.spawn(rig.pci.bind(d, PciDriver("a")), "bind a")
    rig.step_until(a, "probe: before pci_request_regions")
    b = rig.sched.call(rig.pci.bind(d, PciDriver("b")), "bind b")
    assert b.state == "blocked" and "device_driver_attach" in str(b.parked)
    rig.sched.drain()
    assert a.result == 0 and b.result == -errno.EBUSY and d.driver.name == "a"


# --- removal, rescan, hotplug --------------------------------------------------------------


def test_removal_unbinds_removes_files_and_frees_bars_with_their_subtree():
    rig = make_rig("v6.1-deb", (dev(D2, driver="nic"), dev(D3)))
    d = rig.pci.find(D2)
    path = d.path()
    bar0 = d.resource[0]
    user = rig.tree._request_region(rig.tree.iomem_resource, rig.pci.find(D3).resource[0].start,
                                    0x100, "user", 0)
    assert rig.run(rig.pci.remove(d)) == 0
    assert rig.pci.find(D2) is None and rig.sysfs.lookup(path) is None
    assert bar0.parent is None and all(r.parent is None for r in d.resource)
    assert d not in rig.pci.klist and d.released and not d.registered
    assert d.procent is None and "/proc/bus/pci/00/02.0" not in rig.pci.proc.entries()
    assert busy(rig) == [(user.start, user.end, "user")]
    assert rig.run(rig.pci.remove(d)) == -errno.ENODEV
    assert [e for e in rig.log.events if e.kind in CRASH_KINDS] == []


def test_removing_a_bar_takes_a_busy_claim_inside_it_along():
    rig = make_rig("v6.1-deb", (dev(D2),))
    d = rig.pci.find(D2)
    user = rig.tree._request_region(rig.tree.iomem_resource, d.resource[0].start, 0x100,
                                    "user", 0)
    assert user.parent is d.resource[0]
    rig.run(rig.pci.remove(d))
    assert busy(rig) == []


def test_remove_rescan_hotadd_cycles_leave_no_duplicates_and_reuse_the_lowest_space():
    """On 6.1-deb, hot remove / rescan / hot-add under the rescan lock never creates a
    name twice, and a re-added device's BARs land at the lowest free addresses."""
    rig = make_rig("v6.1-deb", (dev(D2), dev(D3)))
    first_d2 = {i: rig.pci.find(D2).resource[i].start for i in (0, 2, 4)}
    for _ in range(3):
        assert rig.run(rig.pci.remove(rig.pci.find(D2))) == 0
        assert rig.run(rig.pci.hot_add(dev(D4))) == 0
        # D4 takes D2's old (lowest) space.
        assert {i: rig.pci.find(D4).resource[i].start for i in (0, 2, 4)} == first_d2
        assert rig.run(rig.pci.rescan()) == 0  # D2 is still in its slot: found again
        d2 = rig.pci.find(D2)
        assert rig.resource_files(D2) == FILES and rig.resource_files(D4) == FILES
        assert all(d2.resource[i].start > first_d2[i] for i in (0, 2, 4))
        assert rig.run(rig.pci.hot_remove(D4)) == 0
        assert rig.pci.find(D4) is None
        assert rig.run(rig.pci.remove(d2)) == 0
        assert rig.run(rig.pci.rescan()) == 0
        assert {i: rig.pci.find(D2).resource[i].start for i in (0, 2, 4)} == first_d2
    assert rig.events(DUP_FILENAME) == []
    assert [e for e in rig.log.events if e.kind in CRASH_KINDS] == []
    assert rig.pci.proc.entries() == ["/proc/bus/pci/00/02.0", "/proc/bus/pci/00/03.0"]


def test_hotplug_slot_rules():
    rig = make_rig("v6.1-deb", (dev(D2),))
    assert rig.run(rig.pci.hot_add(dev(D2))) == -errno.EBUSY
    assert rig.run(rig.pci.hot_remove(D4)) == -errno.ENODEV
    early = make_rig("v6.1-deb", (dev(D2),), booted=False)
    assert early.boot.boot_to("fs") == 0
    # No pciehp before pcie_portdrv_init: the card sits in the slot until a scan.
    assert early.run(early.pci.hot_add(dev(D3))) == 0
    assert early.pci.find(D3) is None
    early.boot.boot_fully()
    assert early.pci.find(D3) is None
    assert early.run(early.pci.rescan()) == 0
    assert early.resource_files(D3) == FILES


def test_hot_add_holds_the_rescan_lock_against_removal():
    rig = make_rig("v6.1-deb", (dev(D2),))
    add = rig.sched.spawn(rig.pci.hot_add(dev(D3)), "pciehp")
    rig.step_until(add, "before pci_create_sysfs_dev_files", D3)
    rm = rig.sched.call(rig.pci.remove(rig.pci.find(D3)), "remove")
    assert rm.state == "blocked"
    rig.sched.drain()
    assert rm.result == 0 and rig.pci.find(D3) is None
    assert [e for e in rig.log.events if e.kind in CRASH_KINDS] == []


def test_unlocked_async_probe_meets_removal_use_after_free():
    """[D] pci_host_probe holds no rescan lock and no reference while it bus-adds: a
    removal in between frees the pci_dev under it."""
    name = "0001:00:00.0"
    rig = make_rig("v6.1-deb", (dev(D2), dev(name, host=HOST_ASYNC)), booted=False)
    assert rig.boot.boot_to("device") == 0
    probe = rig.boot.async_task("0001:00")
    rig.step_until(probe, "before pci_create_sysfs_dev_files", name)
    d = rig.pci.find(name)
    assert d.resource[0].start >= ASYNC_MEM[0]
    assert rig.run(rig.pci.remove(d)) == 0
    rig.sched.drain()
    (uaf,) = rig.events(USE_AFTER_FREE)
    assert uaf.get("object") == "pci_dev"


def test_async_host_probe_runs_once():
    name = "0001:00:00.0"
    rig = make_rig("v6.1-deb", (dev(name, host=HOST_ASYNC),))
    bus = rig.pci.buses[(1, 0)]
    assert rig.run(rig.pci.pci_host_probe(bus)) == -errno.EBUSY
    assert rig.resource_files(name) == FILES


def test_describe_mentions_each_device():
    rig = make_rig("v6.1-deb", (dev(D2, driver="nic"),))
    text = rig.pci.describe()
    assert D2 in text and "driver=nic" in text and "resource2_wc" in text
