"""fuzz/ops/mapping.py + fuzz/oracles/mapping_survival.py: every violation kind comes out
of a small Program on the profile where the promise breaks, and not where it holds."""

from __future__ import annotations

import pytest
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.program_parse import parse_program

DEV = '"0000:00:03.0"'
HOTADD = f'r0 = hotadd(dev={DEV}, bars="mem:0x1000")\n'
MMIO = "0xfe000000"  # idle, inside the q35 32-bit PCI window


def _run(text: str, profile: str):
    return run(parse_program(text), profile)


def _signatures(text: str, profile: str) -> tuple[str, ...]:
    return _run(text, profile).signatures


def _labels(text: str, profile: str) -> list[str]:
    return [s.outcome.label for s in _run(text, profile).steps if s.outcome is not None]


# Dax kmem onlined CXL memory: System RAM nested under Soft Reserved (model/machine.py).
CXL_DAX = """# machine: cxl-dax
r0 = open_devmem()
r1 = mmap(file=r0, offset=0x2080000000)
touch(vma=r1)
"""

DEVMEM_CLAIM = f"""
r0 = open_devmem()
r1 = mmap(file=r0, offset={MMIO})
r2 = request_mem_region(start={MMIO}, n=0x100)
touch(vma=r1, offset=0x10)
"""

# (name, program, profile, expected signature or None for clean)
CASES = [
    ("revoked", DEVMEM_CLAIM, "v6.1-deb", None),
    ("relaxed", DEVMEM_CLAIM, "v6.1-deb:iomem_cmdline=relaxed",
     "mapping-survival/reaches-claimed/revoke_iomem/relaxed"),
    ("relaxed-by-design", DEVMEM_CLAIM, "v6.1-deb-relaxed", None),
    ("no-io-strict", DEVMEM_CLAIM, "v6.1-deb:io_strict_devmem=n",
     "mapping-survival/reaches-claimed/revoke_iomem/io-strict-off"),
    ("v5.7", DEVMEM_CLAIM, "v5.7", "mapping-survival/reaches-claimed/__request_region/no-revoke"),
    ("b25", DEVMEM_CLAIM, "test-iomem-inode-fails", "kernel-sanity/null-deref/iomem_get_mapping"),
    ("rounding", f"""
r0 = open_devmem()
r1 = mmap(file=r0, offset={MMIO}, length=0x3000)
r2 = request_mem_region(start=0xfe001800, n=0x1000)
touch(vma=r1, offset=0x2010)
""", "v6.1-deb", "mapping-survival/reaches-claimed/unmap_mapping_range/page-rounding"),
    ("race", f"""
r0 = open_devmem()
r1 = spawn_mmap(file=r0, offset={MMIO})
step(task=r1)
r2 = request_mem_region(start={MMIO}, n=0x1000)
step(task=r1)
touch(vma=r1, offset=0x10)
""", "v6.1-deb", "mapping-survival/reaches-claimed/mmap_region/populated-before-link"),
    ("race-not-interleaved", f"""
r0 = open_devmem()
r1 = spawn_mmap(file=r0, offset={MMIO})
step(task=r1, n=2)
r2 = request_mem_region(start={MMIO}, n=0x1000)
touch(vma=r1, offset=0x10)
""", "v6.1-deb", None),
    ("b14", f"""
r0 = open_devmem()
r1 = mmap(file=r0, offset={MMIO})
r2 = insert_resource(start={MMIO}, end=0xfe000fff, flags=MEM|BUSY)
touch(vma=r1, offset=0x10)
""", "v6.1-deb", "mapping-survival/reaches-claimed/insert_resource/no-revoke-path"),
    ("end-pages-only", """
r0 = open_devmem()
r1 = mmap(file=r0, offset=0xa0000, length=0x20000)
r2 = request_mem_region(start=0xa0000, n=0x20000)
touch(vma=r1, offset=0x10000)
""", "v6.1-deb", "mapping-survival/reaches-claimed/revoke_iomem/checks-end-pages-only"),
    ("low-mib", """
r0 = open_devmem()
r1 = mmap(file=r0, offset=0xa0000)
r2 = request_mem_region(start=0xa0000)
touch(vma=r1, offset=0x10)
""", "v6.1-deb", "mapping-survival/reaches-claimed/revoke_iomem/low-mib"),
    ("grown", f"""
r0 = open_devmem()
r1 = mmap(file=r0, offset={MMIO}, length=0x2000)
r2 = request_mem_region(start={MMIO})
touch(vma=r1, offset=0x10)
adjust_resource(res=r2, start={MMIO}, size=0x2000)
touch(vma=r1, offset=0x1010)
""", "v6.1-deb-misuse", "mapping-survival/reaches-claimed/adjust_resource/grown-without-revoke"),
    ("read-after-claim", """
r0 = open_devmem()
r1 = request_mem_region(start=0xa0000, n=0x1000)
read(file=r0, offset=0xa0000)
""", "v6.1-deb", "mapping-survival/reaches-claimed/read_mem/low-mib"),
    ("collateral", f"""
r0 = open_devmem()
r1 = mmap(file=r0, offset={MMIO})
r2 = request_mem_region(start=0xfe000800, n=0x100)
""", "v6.1-deb-byte-exact", "mapping-survival/collateral-revocation/revoke_iomem/page-granular"),
    ("collateral-page-ok", f"""
r0 = open_devmem()
r1 = mmap(file=r0, offset={MMIO})
r2 = request_mem_region(start=0xfe000800, n=0x100)
""", "v6.1-deb", None),
    ("low-ram-mapped", """
r0 = open_devmem()
r1 = mmap(file=r0, offset=0x1000)
touch(vma=r1)
""", "v6.1-deb", "mapping-survival/devmem-low-ram-mapped/mmap_mem/read-zero-fills"),
    ("sysfs-revoked", HOTADD + f"""
r1 = open_resource(dev={DEV})
r2 = mmap(file=r1)
r3 = module_load(driver="drv", ids="1b36:0005")
touch(vma=r2)
""", "v6.1-deb", None),
    ("b10-sysfs", HOTADD + f"""
r1 = open_resource(dev={DEV})
r2 = mmap(file=r1)
r3 = module_load(driver="drv", ids="1b36:0005")
touch(vma=r2)
""", "v5.8", "mapping-survival/reaches-claimed/sysfs_kf_bin_open/outside-iomem-space"),
    ("b10-procfs", HOTADD + f"""
r1 = open_procfs(dev={DEV})
procfs_ioctl(file=r1)
r2 = module_load(driver="drv", ids="1b36:0005")
r3 = mmap(file=r1, offset=0x80000000)
touch(vma=r3)
""", "v5.8", "mapping-survival/reaches-claimed/proc_bus_pci_mmap/no-exclusive-check"),
    ("removed-device", HOTADD + f"""
r1 = open_resource(dev={DEV})
r2 = mmap(file=r1)
r3 = hotremove(dev={DEV})
touch(vma=r2)
""", "v6.1-deb", None),
    ("b11b", HOTADD + f"""
r1 = open_resource(dev={DEV})
lseek(file=r1, whence=end)
""", "v6.1-deb", "resource-file/seek-end-not-size/generic_file_llseek/iomem-inode-has-no-size"),
    ("b11b-fixed", HOTADD + f"""
r1 = open_resource(dev={DEV})
lseek(file=r1, whence=end)
""", "next-2026", None),
    ("b13", HOTADD + f"""
r1 = open_resource(dev={DEV})
r2 = mmap(file=r1)
r3 = module_load(driver="drv", ids="1b36:0005", claims=no)
touch(vma=r2)
""", "v6.1-deb", "mapping-survival/driver-bar-unclaimed/pci_device_probe/never-claimed"),
    ("b11a", """
r0 = open_legacy()
r1 = mmap(file=r0)
r2 = request_mem_region(start=0x100000000000)
touch(vma=r1)
""", "v5.13:have_pci_legacy=y",
     "mapping-survival/reaches-claimed/pci_create_legacy_files/outside-iomem-space"),
    ("b11a-fixed", """
r0 = open_legacy()
r1 = mmap(file=r0)
r2 = request_mem_region(start=0x100000000000)
touch(vma=r1)
""", "v5.15:have_pci_legacy=y", None),
    ("b18", CXL_DAX, "v6.1:io_strict_devmem=n,by_design=B5",
     "mapping-survival/devmem-reaches-ram/devmem_is_allowed/nested-ram-invisible"),
    ("b18-fixed", CXL_DAX, "v6.1-deb:io_strict_devmem=n,by_design=B5", None),
    # What an address reaches is the machine's: a driver calling a hole "System RAM"
    # makes the kernel refuse it, but the hole stays a hole.
    ("ram-named-in-a-hole", f"""
r0 = open_devmem()
r1 = mmap(file=r0, offset={MMIO})
r2 = __request_region(start={MMIO}, flags=SYSRAM)
touch(vma=r1)
""", "v6.1:io_strict_devmem=n,by_design=B5", None),
    ("removed-device-pre512", HOTADD + f"""
r1 = open_resource(dev={DEV})
r2 = mmap(file=r1)
r3 = hotremove(dev={DEV})
touch(vma=r2)
""", "v5.8", None),
]


@pytest.mark.parametrize(("name", "text", "profile", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_violation_kinds(name, text, profile, expected):
    sigs = _signatures(text, profile)
    if expected is None:
        assert sigs == ()
    else:
        # The case shows its kind and nothing else.
        assert sigs == (expected,)


def test_violation_names_the_catalog_entry():
    trace = _run(DEVMEM_CLAIM, "v6.1-deb:iomem_cmdline=relaxed")
    assert trace.first.catalog == "B5"
    assert "claimed by drv" in trace.first.message
    accepted = _run(DEVMEM_CLAIM, "v6.1-deb-relaxed").accepted
    assert [v.catalog for v in accepted] == ["B5"]


def test_small_bar_reaches_neighbour():
    text = f"""
r0 = hotadd(dev={DEV}, bars="mem:0x100")
r1 = hotadd(dev="0000:00:04.0", bars="mem:0x100")
r2 = enable(dev={DEV})
r3 = enable(dev="0000:00:04.0")
r4 = open_resource(dev={DEV})
r5 = mmap(file=r4)
touch(vma=r5, offset=0x0)
touch(vma=r5, offset=0x100)
"""
    trace = _run(text, "v6.1-deb")
    touched = [s.outcome.label for s in trace.steps[6:8]]
    assert touched[0].startswith("= 0000:00:03.0/bar0")
    assert trace.signatures == (
        "mapping-survival/reaches-other-device/pci_mmap_resource/sub-page-bar",)


def test_outcomes_of_mapping_lines():
    text = f"""
r0 = process(caps=no_rawio)
r1 = open_devmem(proc=r0)
r2 = open_devmem()
r3 = mmap(file=r2, offset=0x1001)
r4 = mmap(file=r2, offset={MMIO}, length=0x0)
r5 = mmap(file=r2, offset=0x200000)
r6 = mmap(file=r2, offset={MMIO}, flags=private)
touch(vma=r6, access=write)
touch(vma=r6)
ptrace_access(vma=r6, access=write)
read(file=r2, offset=0x200000)
lseek(file=r2, whence=end)
close(file=r2)
touch(vma=r6)
exit()
touch(vma=r6)
"""
    assert _labels(text, "v6.1-deb") == [
        "ok", "EPERM", "ok", "EINVAL", "EINVAL", "EPERM", "ok", "= anon", "= anon",
        "EIO", "EPERM", "EINVAL", "ok", "= anon", "ok", "SIGSEGV"]


def test_qemu_observed_sequence():
    """6.1 in QEMU: a sysfs mapping made before the driver loads gets SIGBUS after the
    claim and stays dead after unbind, while a fresh mmap works again (the device keeps
    decoding after unbind: the probe enabled it and nothing disables decoding)."""
    text = f"""
r0 = hotadd(dev={DEV}, bars="mem:0x1000", ids="8086:100e")
r1 = open_resource(dev={DEV})
r2 = mmap(file=r1)
r3 = module_load(driver="e1000")
touch(vma=r2)
r4 = mmap(file=r1)
r5 = open_devmem()
r6 = mmap(file=r5, offset=0x80000000)
r7 = unbind(dev={DEV})
touch(vma=r2)
r8 = mmap(file=r1)
touch(vma=r8)
"""
    assert _labels(text, "v6.1-deb") == [
        "ok", "ok", "ok", "ok", "SIGBUS", "EINVAL", "ok", "EPERM", "ok", "SIGBUS", "ok",
        "= 0000:00:03.0/bar0+0x0"]
