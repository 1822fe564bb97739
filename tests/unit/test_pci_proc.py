"""/proc/bus/pci entries and the procfs twin of the sysfs race (B27)."""

from __future__ import annotations

from iomemfuzz.model.event import CRASH_KINDS, DUP_FILENAME
from pci_rig import HOST_ASYNC, Rig, dev, make_rig

D2 = "0000:00:02.0"
ASYNC = "0001:00:00.0"


def test_entries_after_boot():
    rig = make_rig("v6.1-deb", (dev(D2), dev(ASYNC, host=HOST_ASYNC)))
    assert rig.pci.proc.entries() == ["/proc/bus/pci/00/02.0", "/proc/bus/pci/0001:00/00.0"]
    entry = rig.pci.proc.lookup("/proc/bus/pci/00/02.0")
    assert entry is not None and entry.data is rig.pci.find(D2)
    assert rig.pci.proc.lookup("/proc/bus/pci/devices") is not None


def b27(profile: str) -> Rig:
    """An async probe (started before device_initcall, e.g. ACPI dependency work)
    device_adds its device and stops before pci_proc_attach_device; pci_proc_init then
    attaches every klist device; then the probe attaches its device again."""
    rig = make_rig(profile, (dev(D2), dev(ASYNC, host=HOST_ASYNC)), booted=False)
    assert rig.boot.boot_to("rootfs") == 0
    probe = rig.sched.spawn(rig.pci.pci_host_probe(rig.pci.buses[(1, 0)]), "async probe")
    rig.step_until(probe, "before pci_proc_attach_device", ASYNC)
    assert rig.boot.boot_to("device") == 0
    rig.sched.drain()
    assert rig.boot.done
    return rig


def test_b27_v61_duplicate_proc_entry():
    rig = b27("v6.1")
    assert [e.text for e in rig.events(DUP_FILENAME)] == [
        "proc_dir_entry '0001:00/00.0' already registered"]
    assert rig.events(DUP_FILENAME)[0].get("fs") == "procfs"
    # The winner's entry stays and is the device's.
    d = rig.pci.find(ASYNC)
    assert d.procent is rig.pci.proc.lookup("/proc/bus/pci/0001:00/00.0")


def test_b27_fixed_in_61deb():
    rig = b27("v6.1-deb")
    assert rig.events(DUP_FILENAME) == []
    assert "/proc/bus/pci/0001:00/00.0" in rig.pci.proc.entries()


def test_v61_bus_directory_race_overwrites_procdir():
    """Unlocked attach can also lose the bus-directory race: both threads see no
    directory, the second proc_mkdir warns and leaves bus->procdir NULL."""
    rig = make_rig("v6.1", (dev(ASYNC, host=HOST_ASYNC),), booted=False)
    assert rig.boot.boot_to("rootfs") == 0
    probe = rig.sched.spawn(rig.pci.pci_host_probe(rig.pci.buses[(1, 0)]), "async probe")
    rig.step_until(probe, "before pci_proc_attach_device", ASYNC)
    boot = rig.boot.task
    rig.step_until(boot, "pci_proc_init: proc_initialized = 1")
    rig.step_until(probe, "before proc_mkdir(bus)")
    rig.step_until(boot, "before proc_mkdir(bus)")
    rig.sched.drain()
    texts = [e.text for e in rig.events(DUP_FILENAME)]
    assert "proc_dir_entry 'pci/0001:00' already registered" in texts
    assert [e for e in rig.log.events if e.kind in CRASH_KINDS] == []


def test_detach_on_removal():
    rig = make_rig("v6.1-deb", (dev(D2),))
    assert rig.run(rig.pci.remove(rig.pci.find(D2))) == 0
    assert rig.pci.proc.entries() == []
    assert rig.run(rig.pci.rescan()) == 0
    assert rig.pci.proc.entries() == ["/proc/bus/pci/00/02.0"]
