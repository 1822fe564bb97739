"""Every finding kind comes out of a small Program, alone; and two mechanisms that once
shared a signature now get two (fuzz/finding.py: ORACLE/KIND/FUNCTION[/MECHANISM]).

The mapping-survival kinds have their own table, with exact signatures, in
tests/unit/test_mm_survival.py.
"""

from __future__ import annotations

import pytest
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.finding import DRIVER_MISUSE, RACE, USERSPACE
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_parse import parse_program

MISUSE = "v6.1-deb-misuse"
GAP = 0xFE000000


def _kinds(trace) -> set[str]:
    return {"/".join(s.split("/")[:2]) for s in trace.signatures}


# kind -> (profile, Program text or corpus file). Each run shows that kind and no other.
ALONE = {
    "busy-consistency/release-without-claim": (MISUSE, f"__release_region(start={GAP:#x})\n"),
    "busy-consistency/claim-lost": (MISUSE, f"r0 = request_mem_region(start={GAP:#x})\n"
                                            "release_resource(res=r0)\n"),
    "busy-consistency/i2-overlap": (
        MISUSE, "corpus/findings/v6.1-deb-misuse/"
                "busy-consistency+i2-overlap+release_mem_region_adjustable.prog"),
    "busy-consistency/i3-empty": (
        MISUSE, "corpus/findings/v6.1-deb-misuse/busy-consistency+i3-empty+adjust_resource.prog"),
    "busy-consistency/i4-parent": (
        MISUSE, "corpus/findings/v6.1-deb-misuse/"
                "busy-consistency+i4-parent+insert_resource_expand_to_fit.prog"),
    "kernel-sanity/null-deref": (MISUSE, "r0 = request_resource()\nrelease_resource(res=r0)\n"),
    "kernel-sanity/use-after-free": (
        MISUSE, "corpus/findings/v6.1-deb-misuse/"
                "kernel-sanity+use-after-free+release_child_resources.prog"),
    # Every kernel accepts B28 by design; a profile that does not shows the hang.
    "kernel-sanity/hang": ("v6.1-deb:by_design=", "corpus/seeds/tree-b28-muxed-waiter-hangs.prog"),
    "kernel-sanity/use-after-free-pci-dev": (
        "v6.1-deb", "corpus/findings/v6.1-deb/d-async-bus-add-meets-removal.prog"),
    "duplicate-attributes/duplicate-filename": (
        "v5.12", "corpus/findings/v6.1-deb/b2-hot-add-inside-pci-sysfs-init.prog"),
    "duplicate-attributes/duplicate-proc-entry": (
        "v5.12", "corpus/findings/v6.1/b27-pci-proc-init-meets-async-bus-add.prog"),
    "duplicate-attributes/missing-resource-files": (
        "v6.1-deb", "corpus/findings/v6.1-deb/b3-removal-aborts-pci-sysfs-init.prog"),
    "duplicate-attributes/missing-rom-file": (
        "v5.13", "corpus/findings/v5.13/b23-vga-shadow-rom-file-missing.prog"),
    "resource-file/seek-end-not-size": (
        "v6.1-deb", "corpus/findings/v6.1-deb/b11b-resource-seek-end-is-zero.prog"),
}

# Kinds that one mechanism always produces together with another: the same run shows
# both, and no Program can show one without the other.
TOGETHER = {
    # A release with the wrong length warns (release-without-claim) and leaves the claim
    # busy with nobody believing in it (busy-without-claim): B16.
    "busy-consistency/busy-without-claim": (
        MISUSE, f"r0 = __request_region(start={GAP:#x}, n=0x100)\n"
                f"__release_region(start={GAP:#x}, n=0x80)\n",
        {"busy-consistency/release-without-claim"}),
    # The loser of B1's race frees what the winner made: the files go (missing), the
    # pointers stay (dangling), and removing the device reads and frees them again.
    "duplicate-attributes/dangling-res-attr": (
        "v6.1-deb", "corpus/findings/v6.1-deb/b1-pci-sysfs-init-meets-async-bus-add.prog",
        {"duplicate-attributes/duplicate-filename", "duplicate-attributes/missing-resource-files",
         "kernel-sanity/use-after-free-res-attr", "kernel-sanity/double-free-res-attr"}),
    "kernel-sanity/double-free-res-attr": (
        "v6.1-deb", "corpus/findings/v6.1-deb/d-hot-remove-mid-creation-double-free.prog",
        {"kernel-sanity/use-after-free-res-attr"}),
    "kernel-sanity/use-after-free-res-attr": (
        "v6.1-deb", "corpus/findings/v6.1-deb/d-hot-remove-mid-creation-double-free.prog",
        {"kernel-sanity/double-free-res-attr"}),
}


def _program(source: str):
    return read_program(source) if source.endswith(".prog") else parse_program(source)


@pytest.mark.parametrize("kind", sorted(ALONE))
def test_a_program_shows_this_kind_and_no_other(kind):
    profile, source = ALONE[kind]
    assert _kinds(run(_program(source), profile)) == {kind}


@pytest.mark.parametrize("kind", sorted(TOGETHER))
def test_kinds_one_mechanism_always_pairs(kind):
    profile, source, companions = TOGETHER[kind]
    assert _kinds(run(_program(source), profile)) == {kind} | companions


# --- routes that used to share one signature ----------------------------------------

def _sigs(text: str, profile: str = "v6.1-deb") -> tuple[str, ...]:
    return run(parse_program(text), profile).signatures


def test_two_null_dereferences_at_two_sites_are_two_findings():
    merge = _sigs("r0 = request_resource(flags=MEM|SYSRAM|BUSY)\n"
                  "merge_system_ram_resource(res=r0)\n", MISUSE)
    release = _sigs("r0 = request_resource()\nrelease_resource(res=r0)\n", MISUSE)
    assert merge == ("kernel-sanity/null-deref/merge_system_ram_resource",)
    assert release == ("kernel-sanity/null-deref/__release_resource",)


def test_the_merge_of_a_struct_that_was_never_linked_is_refused_by_default():
    trace = run(parse_program("r0 = request_resource(flags=MEM|SYSRAM|BUSY)\n"
                              "merge_system_ram_resource(res=r0)\n"), "v6.1-deb")
    assert [s.outcome.label for s in trace.steps[:2]] == ["EBUSY", "illegal"]
    assert trace.signatures == ()


@pytest.mark.parametrize(("text", "function"), [
    (f"r0 = request_mem_region(start={GAP:#x})\nrelease_resource(res=r0)\n",
     "release_resource"),
    (f"r0 = request_mem_region(start={GAP:#x})\nremove_resource(res=r0)\n",
     "remove_resource"),
    (f"r0 = insert_resource(start={GAP:#x}, end={GAP + 0xffff:#x})\n"
     f"r1 = request_mem_region(start={GAP:#x})\nrelease_child_resources(res=r0)\n",
     "release_child_resources"),
    # virtio-pci holds its BAR1 from boot; memory hot-unplug takes it away.
    ("release_mem_region_adjustable(start=0xc1041000, size=0x1000)\n",
     "release_mem_region_adjustable"),
], ids=["release_resource", "remove_resource", "release_child_resources",
        "release_mem_region_adjustable"])
def test_each_way_to_lose_a_claim_is_its_own_finding(text, function):
    assert _sigs(text, MISUSE) == (f"busy-consistency/claim-lost/{function}",)


def test_a_mapping_made_after_a_claim_is_told_by_the_check_that_let_it_through():
    devmem = _sigs("r0 = request_mem_region(start=0xa0000)\nr1 = open_devmem()\n"
                   "r2 = mmap(file=r1, offset=0xa0000)\ntouch(vma=r2)\n")
    sysfs = _sigs('r0 = hotadd(dev="0000:00:03.0", bars="mem:0x2000")\n'
                  "r1 = request_mem_region(start=0x80001000, n=0x1000)\n"
                  'r2 = open_resource(dev="0000:00:03.0")\n'
                  "r3 = mmap(file=r2, length=0x2000)\ntouch(vma=r3, offset=0x1000)\n")
    assert devmem == ("mapping-survival/reaches-claimed/mmap_mem/low-mib",)
    assert sysfs == ("mapping-survival/reaches-claimed/pci_mmap_resource/"
                     "checks-bar-start-only",)


def test_a_grown_claim_is_not_a_rounding_miss():
    mmio = f"r0 = open_devmem()\nr1 = mmap(file=r0, offset={GAP:#x}, length=0x3000)\n"
    rounding = _sigs(mmio + f"r2 = request_mem_region(start={GAP + 0x1800:#x}, n=0x1000)\n"
                            "touch(vma=r1, offset=0x2010)\n")
    grown = _sigs(mmio + f"r2 = request_mem_region(start={GAP:#x})\n"
                         f"adjust_resource(res=r2, start={GAP:#x}, size=0x2000)\n"
                         "touch(vma=r1, offset=0x1010)\n", MISUSE)
    assert rounding == ("mapping-survival/reaches-claimed/unmap_mapping_range/page-rounding",)
    assert grown == ("mapping-survival/reaches-claimed/adjust_resource/grown-without-revoke",)


def test_a_resize_meeting_pci_sysfs_init_is_not_b1():
    b1 = run(read_program("corpus/findings/v6.1-deb/b1-pci-sysfs-init-meets-async-bus-add.prog"))
    resize = run(read_program("corpus/findings/v6.1-deb/d-resize-before-pci-sysfs-init.prog"))
    dup = "duplicate-attributes/duplicate-filename/pci_create_attr/"
    assert f"{dup}pci_sysfs_init-then-pci_bus_add_device" in b1.signatures
    assert f"{dup}resource_resize_store-then-pci_sysfs_init" in resize.signatures
    assert not set(b1.signatures) & set(resize.signatures) - {
        s for s in b1.signatures if "freed-in-unwind-of-pci_sysfs_init" in s}


def test_whose_fault_it_is():
    lseek = run(read_program("corpus/findings/v6.1-deb/b11b-resource-seek-end-is-zero.prog"))
    b1 = run(read_program("corpus/findings/v6.1-deb/b1-pci-sysfs-init-meets-async-bus-add.prog"))
    b16 = run(read_program("corpus/findings/v6.1-deb-misuse/"
                           "b16-wrong-size-release-keeps-claim.prog"))
    assert lseek.first.cls == USERSPACE  # open and lseek of a sysfs file, nothing else
    assert b1.first.cls == RACE  # a host bridge probe and boot interleaved
    assert b16.first.cls == DRIVER_MISUSE
